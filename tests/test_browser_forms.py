"""The sign-up and preferences pages in headless Chromium: what a screen reader is told about
a field with a mistake, and what fits on a phone.

Chromium comes from the system (/usr/bin/chromium); playwright never downloads one.
DIGEST_SKIP_BROWSER=1 skips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from digest import tokens
from digest.config import Config
from digest.models import Profile
from digest.store import Store
from digest.web import create_app
from tests.fixtures.browser import serving
from tests.fixtures.config import SECRET, make_config

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(os.environ.get("DIGEST_SKIP_BROWSER") == "1",
                       reason="DIGEST_SKIP_BROWSER=1"),
]

PHONE = {"width": 375, "height": 800}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Config, str, Store]]:
    outbox: list[EmailMessage] = []
    config = make_config(tmp_path / "var")
    app = create_app(config, send=outbox.append)
    with serving(make_server("127.0.0.1", 0, app, threaded=True), config) as served:
        yield served


@pytest.fixture
def browser(chromium: Any) -> Any:
    return chromium


def described_by(page: Any, selector: str) -> str:
    """Return the text of every element a field's aria-describedby names, as parsed."""
    return str(page.locator(selector).evaluate(
        "e => (e.getAttribute('aria-describedby') || '').split(/\\s+/)"
        ".map(id => document.getElementById(id)).filter(Boolean)"
        ".map(d => d.textContent.trim()).join(' | ')"))


def test_a_field_with_help_text_names_its_error_to_screen_readers(
    served: tuple[Config, str, Store], browser: Any, tmp_path: Path
) -> None:
    _config, base, _store = served
    bib = tmp_path / "refs.bib"
    bib.write_text("@article{x, title={No preprint}, journal={Nature}}\n", encoding="utf-8")
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(f"{base}/")
    page.fill("#email", "ada@example.org")
    page.fill("#interests", "graph neural networks")
    page.fill("#keywords", "k" * 121)
    page.fill("#seeds", "2401.01234\nnot-an-id")
    page.set_input_files("#bibtex", str(bib))
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_selector("text=Please fix the marked fields")
    for field, error in (("#keywords", "at most 120 characters"),
                         ("#seeds", "no arXiv id in 'not-an-id'"),
                         ("#bibtex", "cites no arXiv paper")):
        assert page.locator(field).get_attribute("aria-invalid") == "true", field
        text = described_by(page, field)
        assert error in text, (field, text)
        # The help text stays part of the description.
        assert page.locator(f"{field}-help").inner_text() in text, (field, text)
    context.close()


def test_the_preferences_page_fits_a_phone_with_long_unbroken_keywords(
    served: tuple[Config, str, Store], browser: Any
) -> None:
    _config, base, store = served
    word = "retrieval-augmented-generation-for-scientific-question-answering"
    sub = store.add_subscriber(
        "a-rather-long-address-of-a-research-group@department.example.org",
        Profile(interests=f"{word}suffix " * 3, keywords=("x" * 110, word),
                authors=("Maximilian Alexander Friedrich-Wilhelm von Hohenzollern",)),
        now=datetime(2026, 5, 25, 9, 0, tzinfo=UTC), status="active",
    )
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(tokens.preferences_url(base, SECRET, sub.id))
    page.wait_for_selector("text=What the ranker thinks you like")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways on a phone ({width}px)"
    context.close()


def contrast(page: Any, selector: str) -> float:
    """Return the contrast ratio (WCAG 2) of an element's text colour on its background."""
    return float(page.locator(selector).first.evaluate(r"""e => {
        const rgb = c => c.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number);
        const lum = c => {
            const [r, g, b] = rgb(c).map(v => {
                v /= 255;
                return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
            });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b;
        };
        // The background is the nearest one that is not transparent.
        let back = e;
        while (back.parentElement && /rgba\(.*, 0\)$|transparent/.test(
            getComputedStyle(back).backgroundColor)) { back = back.parentElement; }
        const [a, b] = [lum(getComputedStyle(e).color),
                        lum(getComputedStyle(back).backgroundColor)];
        return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    }"""))


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_button_labels_are_readable_in_both_colour_schemes(
    served: tuple[Config, str, Store], browser: Any, scheme: str
) -> None:
    _config, base, store = served
    sub = store.add_subscriber("a@example.org", Profile(interests="graph neural networks"),
                               now=datetime(2026, 5, 25, 9, 0, tzinfo=UTC), status="active")
    context = browser.new_context(viewport=PHONE, color_scheme=scheme)
    page = context.new_page()
    page.goto(f"{base}/")
    assert contrast(page, "button[type=submit]") >= 4.5, "Subscribe"
    page.goto(tokens.preferences_url(base, SECRET, sub.id))
    for selector in ("button:text('Save preferences')", "button.danger",
                     "button.secondary"):
        ratio = contrast(page, selector)
        assert ratio >= 4.5, (selector, ratio)
    context.close()
