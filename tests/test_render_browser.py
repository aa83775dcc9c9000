"""Render a digest in headless Chromium: a screenshot for review and layout checks.

The screenshot lands in tests/artifacts/email.png (gitignored). Chromium comes from the
system (/usr/bin/chromium); playwright never downloads a browser here. Set
DIGEST_SKIP_BROWSER=1 to skip on a machine without it.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from digest.config import SAMPLE_BATCH, TEMPLATES_DIR
from digest.models import Digest, DigestLinks, Paper, ScoredPaper, Subscriber
from digest.render import make_environment, render_digest

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).parent / "artifacts"
PHONE_WIDTH = 375


def ten_paper_digest() -> tuple[Digest, DigestLinks]:
    """Return a digest of ten real sample papers plus one with an unbreakable URL-ish title."""
    papers: list[ScoredPaper] = []
    with SAMPLE_BATCH.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            papers.append(
                ScoredPaper(
                    Paper(
                        key=f"arxiv:{record['id']}",
                        title=record["title"],
                        abstract=record["abstract"],
                        authors=tuple(record["authors"]),
                        categories=tuple(record["categories"]),
                        url=f"https://arxiv.org/abs/{record['id']}",
                    ),
                    0.5,
                    'matched "learning", "model"',
                )
            )
            if len(papers) == 9:
                break
    papers.append(
        ScoredPaper(
            Paper(
                key="arxiv:2605.99999",
                title="Supercalifragilistic" * 6 + " $a<b$ & <i>not italic</i>",
                abstract="https://example.org/" + "very-long-path-segment/" * 12,
                authors=("Ünïcödé Äuthor",),
                categories=("cs.LG",),
                url="https://arxiv.org/abs/2605.99999",
                upvotes=42,
            ),
            0.3,
            "long words must wrap",
        )
    )
    digest = Digest(
        subscriber=Subscriber(id=1, email="ada@example.org", name="Ada"),
        day=date(2026, 5, 25),
        papers=tuple(papers),
        batch_size=213,
    )
    keys = [p.paper.key for p in papers]
    links = DigestLinks(
        unsubscribe="https://digest.example.org/u/token",
        preferences="https://digest.example.org/p/token",
        more={k: f"https://digest.example.org/f/more/{i}" for i, k in enumerate(keys)},
        less={k: f"https://digest.example.org/f/less/{i}" for i, k in enumerate(keys)},
    )
    return digest, links


@pytest.fixture
def browser(chromium: Any) -> Any:
    return chromium


@pytest.fixture(scope="module")
def html() -> str:
    digest, links = ten_paper_digest()
    return render_digest(digest, links, env=make_environment(TEMPLATES_DIR)).html


def open_page(browser: Any, html: str, *, width: int, color_scheme: str = "light") -> Any:
    context = browser.new_context(
        viewport={"width": width, "height": 800}, color_scheme=color_scheme
    )
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.set_content(html, wait_until="load")
    page.requests = requests
    return page


def test_phone_screenshot_has_every_paper_and_no_horizontal_overflow(
    browser: Any, html: str
) -> None:
    page = open_page(browser, html, width=PHONE_WIDTH)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "email.png"), full_page=True)
    assert page.locator("h2 a").count() == 10
    assert page.get_by_text("More like this").count() == 10
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= PHONE_WIDTH, f"page is {scroll_width}px wide on a {PHONE_WIDTH}px phone"
    # The preheader is for the inbox list only, never on the page.
    assert not page.locator("div.preheader").is_visible()
    # Untrusted markup stays text: no <script> or <i> element came from a title.
    assert page.locator("i").count() == 0
    assert page.get_by_text("$a<b$ & <i>not italic</i>").count() == 1
    # Nothing was fetched: the email is self-contained.
    assert [u for u in page.requests if not u.startswith(("about:", "data:"))] == []
    page.context.close()


def test_desktop_layout_caps_the_column_at_640px(browser: Any, html: str) -> None:
    page = open_page(browser, html, width=1280)
    width = page.evaluate("document.querySelector('table.frame').getBoundingClientRect().width")
    assert 600 <= width <= 640
    page.context.close()


def test_dark_mode_switches_to_a_dark_background(browser: Any, html: str) -> None:
    page = open_page(browser, html, width=PHONE_WIDTH, color_scheme="dark")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "email-dark.png"), full_page=True)
    background = page.evaluate(
        "getComputedStyle(document.querySelector('table.frame')).backgroundColor"
    )
    red, green, blue = (int(v) for v in background[background.index("(") + 1 : -1].split(","))
    assert max(red, green, blue) < 80, background
    page.context.close()



def test_a_screen_reader_finds_each_paper_by_its_heading(browser: Any, html: str) -> None:
    # A screen reader lists a page's headings to jump from one item to the next; the
    # titles looked like headings (bold, larger) but were paragraphs.
    page = open_page(browser, html, width=1280)
    digest, _ = ten_paper_digest()
    titles = [" ".join(item.paper.title.split()) for item in digest.papers]
    headings = page.get_by_role("heading", level=2)
    assert [" ".join(text.split()) for text in headings.all_inner_texts()] == titles
    # Each heading sits above its own paper's feedback links.
    for number, heading in enumerate(headings.all()):
        row = heading.locator("xpath=ancestor::td[1]")
        assert row.get_by_role("link", name="More like this").get_attribute("href") == (
            f"https://digest.example.org/f/more/{number}"
        )
    page.context.close()


def test_right_to_left_titles_and_abstracts_run_right_to_left(browser: Any) -> None:
    # Feeds in Arabic or Hebrew (a journal's RSS) were laid out left to right, as the
    # page is: lines started at the left and a title's question mark sat at its start.
    def paper(key: str, title: str, abstract: str, authors: tuple[str, ...]) -> ScoredPaper:
        return ScoredPaper(
            Paper(key=key, title=title, abstract=abstract, authors=authors,
                  categories=("cs.CL",), url=f"https://example.org/{key}"),
            0.5,
            'matched "language models"',
        )

    digest = Digest(
        subscriber=Subscriber(id=1, email="ada@example.org", name="Ada"),
        day=date(2026, 5, 25),
        papers=(
            paper("doi:10.1/ar", "نماذج اللغة الكبيرة للغة العربية: هل يكفي BERT؟",
                  "نقدم مراجعة شاملة لنماذج اللغة الكبيرة (LLM) للغة العربية.",
                  ("أحمد علي", "سارة حسن")),
            paper("doi:10.1/he", "מודלי שפה גדולים לעברית: האם BERT מספיק?",
                  "אנו מציגים מודל חדש. התוצאות מראות שיפור של 12% לעומת BERT.",
                  ("דוד כהן",)),
            paper("doi:10.1/en", "Arabic and Hebrew language models: a survey",
                  "We survey language models for Arabic (العربية) and Hebrew (עברית).",
                  ("Ada Lovelace",)),
        ),
        batch_size=3,
    )
    links = DigestLinks(unsubscribe="https://digest.example.org/u/t",
                        preferences="https://digest.example.org/p/t")
    html = render_digest(digest, links, env=make_environment(TEMPLATES_DIR)).html
    page = open_page(browser, html, width=640)
    direction = "el => getComputedStyle(el).direction"
    titles = page.get_by_role("heading", level=2)
    abstracts = page.locator("p.abstract")
    metas = page.locator("p.meta")
    for number, expected in enumerate(("rtl", "rtl", "ltr")):
        assert titles.nth(number).evaluate(direction) == expected, number
        assert abstracts.nth(number).evaluate(direction) == expected, number
        assert metas.nth(number).evaluate(direction) == expected, number
    # The Hebrew title is set against the right margin and ends at the left, where its
    # question mark is read last.
    found = page.evaluate(
        """() => {
            const heading = document.querySelectorAll('h2')[1];
            const text = heading.querySelector('a').firstChild;
            const range = document.createRange();
            range.selectNodeContents(text);
            const whole = range.getBoundingClientRect();
            range.setStart(text, text.length - 1);
            const mark = range.getBoundingClientRect();
            return [heading.getBoundingClientRect().right, whole.left, whole.right, mark.left];
        }"""
    )
    heading_right, text_left, text_right, mark_left = found
    assert heading_right - text_right < 2, found
    assert mark_left - text_left < 2, found
    page.context.close()
