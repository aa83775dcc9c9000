"""Reused paper blocks and pages: render_digest gives, byte for byte, what rendering every
template afresh and inlining the whole page gives."""

from __future__ import annotations

import dataclasses
import json
import random
import textwrap
from datetime import date
from urllib.parse import urlsplit

import jinja2
import pytest

from digest.config import SAMPLE_BATCH, TEMPLATES_DIR
from digest.ingest.jsonl import paper_from_record
from digest.mail.message import _encode_pieces, _quoted_printable, _quoted_printable_html
from digest.models import Digest, DigestLinks, Paper, RenderedEmail, ScoredPaper, Subscriber
from digest.render import make_environment, render_digest, safe_url, wrap_text

NASTY = 'A & B <b>bold</b> "quoted" \'single\' \u00a0nbsp\u00a0 =3D ?= #847 é 李雷 \r\n'
NAMES = ["", "Ada Lovelace", "Zoë O'Neil", NASTY, "&amp; <script>alert(1)</script>"]
REASONS = [
    "",
    'matched "diffusion policy", "humanoid"',
    "close to your seed paper: " + NASTY,
    "by Jane Doe & John Roe",
    "trending: 42 upvotes " * 6,  # long enough to wrap in the text part
]
LINKS = [
    "https://digest.example.org",
    "https://digest.example.org/base?a=1&b=\"2\"<x>",
]


@pytest.fixture(scope="module")
def env() -> jinja2.Environment:
    return make_environment(TEMPLATES_DIR)


@pytest.fixture(scope="module")
def papers() -> list[Paper]:
    lines = SAMPLE_BATCH.read_text(encoding="utf-8").splitlines()
    real = [paper_from_record(json.loads(line)) for line in lines if line.strip()][:40]
    odd = [
        Paper(key="doi:10.1/odd", title=NASTY, abstract=NASTY * 3, url="javascript:alert(1)"),
        Paper(key="rss:bare", title="A bare paper with nothing else"),
        Paper(key="rss:votes", title="Upvoted", upvotes=12, categories=("cs.LG", "<x>")),
    ]
    return real + odd


def make_digest(rng: random.Random, papers: list[Paper], sub_id: int) -> tuple[Digest, DigestLinks]:
    count = rng.randint(1, 10)
    picked = rng.sample(papers, count)
    items = tuple(ScoredPaper(p, 1.0, rng.choice(REASONS)) for p in picked)
    base = rng.choice(LINKS)
    links = DigestLinks(
        unsubscribe=rng.choice([f"{base}/unsubscribe/tok{sub_id}", ""]),
        preferences=rng.choice([f"{base}/preferences/tok{sub_id}", "", "ftp://nope"]),
        more={p.key: f"{base}/feedback/m{sub_id}.{n}" for n, p in enumerate(picked)
              if rng.random() < 0.9},
        less={p.key: f"{base}/feedback/l{sub_id}.{n}" for n, p in enumerate(picked)
              if rng.random() < 0.9},
    )
    subscriber = Subscriber(id=sub_id, email=f"u{sub_id}@example.org", name=rng.choice(NAMES))
    day = date(2026, 5, 25 + rng.randint(0, 2))
    return Digest(subscriber, day, items, batch_size=rng.choice([0, 213])), links


def test_reused_rendering_equals_fresh_rendering(
    env: jinja2.Environment, papers: list[Paper]
) -> None:
    rng = random.Random(20260525)
    for sub_id in range(300):  # the same papers again and again, as in a real run
        digest, links = make_digest(rng, papers, sub_id)
        fresh = render_digest(digest, links, env=env, reuse=False)
        reused = render_digest(digest, links, env=env)
        assert reused.subject == fresh.subject
        assert reused.preheader == fresh.preheader
        assert reused.text == fresh.text, sub_id
        assert reused.html == fresh.html, sub_id
        assert "".join(text for text, _ in reused.html_pieces) == reused.html


def test_html_encoded_through_its_shared_pieces_equals_the_whole_body_encoding(
    env: jinja2.Environment, papers: list[Paper]
) -> None:
    # The MIME writer encodes shared pieces once and looks them up after; the body must
    # be what one binascii call over the whole HTML writes (the same papers come back
    # again and again, so most digests hit the cache).
    rng = random.Random(7)
    used = 0
    for sub_id in range(300):
        digest, links = make_digest(rng, papers, sub_id)
        rendered = render_digest(digest, links, env=env)
        assert _encode_pieces(rendered.html_pieces) is not None
        assert _quoted_printable_html(rendered) == _quoted_printable(rendered.html), sub_id
        used += sum(shared for _, shared in rendered.html_pieces)
    assert used > 300 * 3  # the page's and every row's whole lines are shared


def test_html_pieces_that_do_not_make_up_the_html_are_not_used(
    env: jinja2.Environment, papers: list[Paper]
) -> None:
    digest, links = make_digest(random.Random(1), papers, 1)
    rendered = render_digest(digest, links, env=env)
    stale = dataclasses.replace(rendered, html=rendered.html.replace("<p", "<P", 1))
    assert _quoted_printable_html(stale) == _quoted_printable(stale.html)
    # A shared piece that does not start or end at a line break is encoded with its
    # neighbours, never alone; a body not ending in one gets it added, as before.
    odd = [("a=b\n" + "c" * 50, True), ("e" * 50 + " é\n", False), ("d" * 80 + "\n", True),
           ("end ", True), ("tail", True)]
    text = "".join(t for t, _ in odd)
    unaligned = RenderedEmail("s", "p", "t", text, html_pieces=tuple(odd))
    assert _quoted_printable_html(unaligned) == _quoted_printable(text)
    crlf = RenderedEmail("s", "p", "t", "a\r\nb\n", html_pieces=(("a\r\nb\n", True),))
    assert _quoted_printable_html(crlf) == _quoted_printable("a\r\nb\n")


def test_a_paper_block_carries_each_subscribers_own_links_and_reason(
    env: jinja2.Environment, papers: list[Paper]
) -> None:
    paper = papers[0]
    outputs = []
    for sub_id, reason in ((1, "matched unlearning"), (2, 'by "Jane" & co')):
        digest = Digest(Subscriber(sub_id, f"u{sub_id}@example.org"), date(2026, 5, 25),
                        (ScoredPaper(paper, 1.0, reason),))
        links = DigestLinks(
            unsubscribe=f"https://d.example/u/{sub_id}",
            preferences=f"https://d.example/p/{sub_id}",
            more={paper.key: f"https://d.example/more/{sub_id}"},
            less={paper.key: f"https://d.example/less/{sub_id}?a=1&b=2"},
        )
        outputs.append(render_digest(digest, links, env=env))
    first, second = outputs
    assert "https://d.example/more/1" in first.html and "https://d.example/more/1" in first.text
    assert "https://d.example/more/2" in second.html and "more/1" not in second.html
    assert 'href="https://d.example/less/2?a=1&amp;b=2"' in second.html
    assert "Why: by &quot;Jane&quot; &amp; co" not in second.html  # text, not an attribute
    assert 'Why: by "Jane" &amp; co' in second.html
    assert "Why: matched unlearning" in first.html and "unlearning" not in second.html


def old_safe_url(url: str | None) -> str:
    cleaned = "".join((url or "").split())
    if not cleaned:
        return ""
    parts = urlsplit(cleaned)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    return cleaned


def test_safe_url_judges_every_url_as_urlsplit_on_the_whole_url_does() -> None:
    rng = random.Random(3)
    pieces = ["http", "https", "HTTPS", "javascript", "data", ":", "//", "/", "?", "#", "a.org",
              "x", "@", " ", "\x01", "[::1]", "[", "]", "é", ".", "mailto"]
    urls = ["https://a.org/x", "javascript:alert(1)", "http:/a.org", "//a.org/x", "https://",
            "ftp://a.org", " https://a.org/x\n", "https:a.org//b", "data:text/html,hi", None, ""]
    urls += ["".join(rng.choices(pieces, k=rng.randint(1, 8))) for _ in range(3000)]
    for url in urls:
        try:
            expected = old_safe_url(url)
        except ValueError:  # urlsplit refuses a malformed IPv6 host; so must we
            with pytest.raises(ValueError):
                safe_url(url)
            continue
        assert safe_url(url) == expected, url


def test_wrap_text_fills_lines_as_textwrap_does() -> None:
    rng = random.Random(11)
    words = ["a", "bb", "word", "https://example.org/a/long/url/that/never/breaks", "x" * 80,
             "tab\tbed", "", " ", "\u00a0", "é", "li-ne", "end."]
    plain = [w for w in words if w == " ".join(w.split()) and w]  # the fast path's input
    for n in range(6000):
        pick = words if n % 2 else plain
        text = rng.choice([" ", " ", "  ", "\n"]).join(rng.choices(pick, k=rng.randint(0, 25)))
        width = rng.choice([1, 3, 10, 40, 72])
        indent = rng.choice(["", "   "])
        expected = textwrap.fill(text, width=width, initial_indent=indent,
                                 subsequent_indent=indent, break_long_words=False,
                                 break_on_hyphens=False)
        assert wrap_text(text, width, indent) == expected, (text, width, indent)
