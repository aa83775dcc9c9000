"""The whole subscriber journey in headless Chromium against a real HTTP server and SMTP server.

Sign up on the form, receive the confirmation at aiosmtpd, open the link (the GET must not
activate), confirm, get a digest from the real pipeline, vote "more like this" from the
email, open the preferences page, and unsubscribe through the List-Unsubscribe link.
Screenshots of every page land in tests/artifacts/ (gitignored). Chromium comes from the
system (/usr/bin/chromium); playwright never downloads one. DIGEST_SKIP_BROWSER=1 skips.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from digest import mail, pipeline, tokens
from digest.config import Config
from digest.store import Store
from digest.web import create_app
from tests.fixtures.browser import serving
from tests.fixtures.config import SECRET, make_config

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(os.environ.get("DIGEST_SKIP_BROWSER") == "1",
                       reason="DIGEST_SKIP_BROWSER=1"),
]

ARTIFACTS = Path(__file__).parent / "artifacts" / "web"
DAY = date(2026, 5, 25)
NOW = datetime(2026, 5, 25, 9, 0, tzinfo=UTC)
EMAIL = "ada@example.org"


class Holder:
    """A WSGI app that forwards to one set later: the port must be known before the app."""

    def __init__(self) -> None:
        self.app: Callable[..., Any] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        assert self.app is not None
        return self.app(environ, start_response)


@pytest.fixture
def served(tmp_path: Path, smtp_server: Any) -> Iterator[tuple[Config, str, Store]]:
    holder = Holder()
    server = make_server("127.0.0.1", 0, holder, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    config = make_config(tmp_path / "var", base_url=base, smtp=smtp_server.settings())

    def send(message: EmailMessage) -> None:
        with mail.open_transport(config.smtp, config.maildir) as transport:
            transport.send(message)

    app = create_app(config, now=lambda: NOW, send=send)
    holder.app = app
    with serving(server, config) as served:
        yield served


@pytest.fixture
def browser(chromium: Any) -> Any:
    return chromium


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_sign_up_confirm_receive_vote_and_unsubscribe(
    served: tuple[Config, str, Store], browser: Any, smtp_server: Any
) -> None:
    config, base, store = served
    # A phone-sized window in Berlin: the form must fit, and tz.js must pick the zone.
    context = browser.new_context(viewport={"width": 390, "height": 844},
                                  timezone_id="Europe/Berlin", device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    # 1. Sign up.
    page.goto(f"{base}/")
    assert page.input_value("#timezone") == "Europe/Berlin"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the form scrolls sideways on a phone ({width}px)"
    shot(page, "1-signup")
    # The field for scripts (a person who fills it in is not mailed) is off screen,
    # out of the tab order, and hidden from screen readers.
    box = page.locator("#homepage").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 0, box
    assert page.get_attribute("#homepage", "tabindex") == "-1"
    assert page.locator("#homepage").evaluate(
        "e => e.closest('[aria-hidden=true]') !== null")
    page.get_by_label("Email", exact=True).fill(EMAIL)
    page.get_by_label("Your interests, in your own words").fill(
        "LLM agents that use tools, plan and reflect; agent memory and skills")
    page.get_by_label("Keywords", exact=True).fill("agent\ntool")
    page.locator("summary", has_text="Computer Science").click()
    page.get_by_label(re.compile(r"cs\.AI\s+Artificial Intelligence")).check()
    page.select_option("#send_hour", "7")
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_selector("text=Check your email")
    shot(page, "2-check-email")
    sub = store.find_subscriber(EMAIL)
    assert sub is not None and sub.status == "pending"
    assert sub.timezone == "Europe/Berlin" and sub.profile.categories == ("cs.AI",)

    # 2. The confirmation arrives at the SMTP server; the GET shows a button only.
    [confirmation] = wait_for(lambda: smtp_server.by_recipient(EMAIL))
    text = confirmation.message.get_body(("plain",)).get_content()
    confirm = re.search(rf"{re.escape(base)}/confirm/\S+", text)
    assert confirm
    page.goto(confirm.group(0))
    shot(page, "3-confirm")
    assert store.find_subscriber(EMAIL).status == "pending"  # type: ignore[union-attr]
    page.get_by_role("button", name="Yes, start my digest").click()
    page.wait_for_selector("text=You are subscribed")
    shot(page, "4-confirmed")
    assert store.find_subscriber(EMAIL).status == "active"  # type: ignore[union-attr]

    # 3. The real daily run sends the digest to the same SMTP server.
    report = pipeline.run(
        replace(config), now=NOW, day=DAY, force=True,
        transport=lambda: mail.open_transport(config.smtp, config.maildir),
    )
    assert report.sent == 1, report.to_dict()
    digest = wait_for(lambda: [m for m in smtp_server.by_recipient(EMAIL)
                               if "List-Unsubscribe" in m.message])[0].message
    unsubscribe_url = str(digest["List-Unsubscribe"]).strip().strip("<>")
    assert unsubscribe_url.startswith(f"{base}/unsubscribe/")
    html = digest.get_body(("html",)).get_content()

    # 4. Open the email in the browser and follow "More like this".
    # (Its own blank page: the email's inline styles are not under the site's CSP.)
    inbox = context.new_page()
    inbox.set_content(html)
    shot(inbox, "5-digest-email")
    href = inbox.get_by_role("link", name="More like this").first.get_attribute("href")
    inbox.close()
    sub_id, paper_key, vote = tokens.verify_feedback(SECRET, href.rsplit("/", 1)[1])
    assert vote == 1
    page.goto(href)
    page.wait_for_selector("text=More like this?")
    shot(page, "6-feedback")
    assert store.votes([sub_id]) == {}  # the GET recorded nothing
    page.get_by_role("button", name="Yes, more like this").click()
    page.wait_for_selector("text=Thanks, noted")
    shot(page, "7-feedback-recorded")
    assert store.votes([sub_id]) == {sub_id: {paper_key: 1}}

    # 5. The preferences page shows the liked paper.
    page.get_by_role("link", name="See what the ranker thinks you like").click()
    page.wait_for_selector("text=What the ranker thinks you like")
    title = store.get_papers([paper_key])[paper_key].title
    assert title[:40] in page.inner_text("main")
    shot(page, "8-preferences")

    # 6. Unsubscribe from the List-Unsubscribe link: the GET shows a button.
    page.goto(unsubscribe_url)
    shot(page, "9-unsubscribe")
    assert store.get_subscriber(sub_id).status == "active"  # type: ignore[union-attr]
    page.get_by_role("button", name="Unsubscribe").click()
    page.wait_for_selector("text=You are unsubscribed")
    shot(page, "10-unsubscribed")
    assert store.get_subscriber(sub_id).status == "unsubscribed"  # type: ignore[union-attr]
    assert errors == [], errors  # no CSP violations or script errors on any page
    context.close()
