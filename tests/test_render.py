"""Rendering tests: golden files for every email template, plus escaping and trimming rules.

The expected output lives in tests/golden/. After an intended template change, regenerate
it with one switch and review the diff like code:

    DIGEST_REGEN_GOLDEN=1 .venv/bin/pytest tests/test_render.py
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from datetime import date
from pathlib import Path

import jinja2
import pytest

from digest.config import TEMPLATES_DIR
from digest.ingest.hf import hf_paper
from digest.models import Digest, DigestLinks, Paper, RenderedEmail, ScoredPaper, Subscriber
from digest.render import (
    digest_subject,
    long_date,
    make_environment,
    render_confirmation,
    render_digest,
    render_empty_note,
    safe_url,
    short_authors,
    shorten,
)

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("DIGEST_REGEN_GOLDEN") == "1"
DAY = date(2026, 5, 25)
NASTY_TITLE = "When $a<b$ & <b>bold</b> claims \"fail\":\n   a <script>alert(1)</script> study"


def sample_digest(papers: int = 3, *, name: str = "Ada Lovelace") -> tuple[Digest, DigestLinks]:
    """Return a fixed digest with tricky text, and its links."""
    items = [
        ScoredPaper(
            Paper(
                key="arxiv:2605.22894",
                title="SCRIPT: Scalable Diffusion Policy with Multi-stage Training for "
                "Language-driven Physics-Based Humanoid Control",
                abstract=(
                    "Controlling physics-based humanoids from natural-language instructions "
                    "is a critical step toward general-purpose embodied agents. However, "
                    "existing methods remain constrained by a tension between semantic "
                    "expressiveness and physical feasibility, often failing to jointly achieve "
                    "faithful instruction following, high-quality motion, and stable "
                    "long-horizon control."
                ),
                authors=("Jingyan Zhang", "Han Liang", "Ruichi Zhang", "Bin Li", "Juze Zhang"),
                categories=("cs.GR", "cs.LG", "cs.RO"),
                url="https://arxiv.org/abs/2605.22894",
                upvotes=17,
            ),
            0.61,
            'matched "diffusion policy", "humanoid"',
        ),
        ScoredPaper(
            Paper(
                key="arxiv:2605.00002",
                title=NASTY_TITLE,
                abstract="We show that $x<y$ && y>z implies <nothing> for  A&B. " * 3,
                authors=("Émile Noether", "Zoë Ångström"),
                categories=("math.CO",),
                url="https://arxiv.org/abs/2605.00002?x=1&y=2",
            ),
            0.42,
            'matched "bounds" & "graphs"',
        ),
        ScoredPaper(
            Paper(
                key="doi:10.1101/2026.05.01.123456",
                title="A paper from a feed with a hostile link",
                abstract="",
                authors=(),
                categories=(),
                url="javascript:alert(1)",
            ),
            0.10,
            "",
        ),
    ][:papers]
    digest = Digest(
        subscriber=Subscriber(id=42, email="ada@example.org", name=name),
        day=DAY,
        papers=tuple(items),
        batch_size=213,
    )
    links = DigestLinks(
        unsubscribe="https://digest.example.org/u/tok.en?a=1&b=2",
        preferences="https://digest.example.org/p/tok.en",
        more={item.paper.key: f"https://digest.example.org/f/more/{n}" for n, item in
              enumerate(items[:2])},
        less={item.paper.key: "https://digest.example.org/f/less/0" for item in items[:1]},
    )
    return digest, links


@pytest.fixture(scope="module")
def env() -> jinja2.Environment:
    return make_environment(TEMPLATES_DIR)


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if REGEN:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"{path} missing: run DIGEST_REGEN_GOLDEN=1 pytest tests/test_render.py"
    assert actual == path.read_text(encoding="utf-8"), (
        f"{name} differs from the golden file; if the change is intended, regenerate with "
        "DIGEST_REGEN_GOLDEN=1 pytest tests/test_render.py and review the diff"
    )


def check_rendered(stem: str, rendered: RenderedEmail) -> None:
    header = f"Subject: {rendered.subject}\nPreheader: {rendered.preheader}\n\n"
    check_golden(f"{stem}.txt", header + rendered.text)
    check_golden(f"{stem}.html", rendered.html)


def test_digest_matches_golden_files(env: jinja2.Environment) -> None:
    digest, links = sample_digest()
    check_rendered("digest", render_digest(digest, links, env=env))


def test_single_paper_digest_matches_golden_files(env: jinja2.Environment) -> None:
    digest, links = sample_digest(1, name="")
    check_rendered("digest_one", render_digest(digest, links, env=env, list_name="Lab Digest"))


def test_empty_note_matches_golden_files(env: jinja2.Environment) -> None:
    digest, links = sample_digest(0)
    check_rendered("empty", render_empty_note(digest, links, env=env))


def test_render_digest_with_no_papers_gives_the_empty_note(env: jinja2.Environment) -> None:
    digest, links = sample_digest(0)
    assert render_digest(digest, links, env=env) == render_empty_note(digest, links, env=env)


def test_confirmation_matches_golden_files(env: jinja2.Environment) -> None:
    rendered = render_confirmation(
        email="new<user>@example.org",
        confirm_url="https://digest.example.org/confirm/tok?x=1&y=2",
        schedule="every Thursday at 18:00 (Europe/Berlin)",
        cadence="weekly",
        env=env,
    )
    check_rendered("confirm", rendered)


@pytest.mark.parametrize("reuse", [True, False])
def test_a_weekly_digest_does_not_call_its_week_of_papers_today(
    env: jinja2.Environment, reuse: bool
) -> None:
    # A weekly digest picks from the papers of its whole week (batch_size counts them),
    # but said "picked for you from 1200 new today"; its quiet-week note spoke of
    # "today's papers".
    digest, links = sample_digest(2)
    weekly = replace(digest, batch_size=1200,
                     subscriber=replace(digest.subscriber, cadence="weekly"))
    rendered = render_digest(weekly, links, env=env, reuse=reuse)
    for part in (rendered.text, rendered.html):
        flat = " ".join(part.split())
        assert "from 1200 new this week." in flat and "today" not in flat
    note = render_empty_note(replace(weekly, papers=()), links, env=env)
    assert note.subject == "Nothing matched your interests in the week to Mon 25 May 2026"
    for part in (note.text, note.html):
        flat = " ".join(part.split())
        assert "in this week's papers" in flat and "today" not in flat
    # A daily digest still speaks of today.
    daily = render_digest(digest, links, env=env, reuse=reuse)
    assert "new today." in " ".join(daily.text.split())


def test_subject_has_the_date_and_count() -> None:
    assert digest_subject(DAY, 10) == "Your research digest for Mon 25 May 2026: 10 papers"
    assert digest_subject(DAY, 1).endswith(": 1 paper")
    assert long_date(date(2026, 1, 4)) == "Sun 4 Jan 2026"


def test_untrusted_text_is_escaped_in_html_and_verbatim_in_text(env: jinja2.Environment) -> None:
    digest, links = sample_digest()
    rendered = render_digest(digest, links, env=env)
    assert "<script>" not in rendered.html
    assert "<b>bold</b>" not in rendered.html
    assert "$a&lt;b$ &amp; &lt;b&gt;bold&lt;/b&gt;" in rendered.html
    flat_text = " ".join(rendered.text.split())
    title = 'When $a<b$ & <b>bold</b> claims "fail": a <script>alert(1)</script> study'
    assert title in flat_text
    assert "$x<y$ && y>z" in rendered.text
    assert "&amp;" not in rendered.text


def test_only_http_links_reach_the_html(env: jinja2.Environment) -> None:
    digest, links = sample_digest()
    rendered = render_digest(digest, links, env=env)
    assert "javascript:" not in rendered.html
    assert "javascript:" not in rendered.text
    hrefs = re.findall(r'href="([^"]*)"', rendered.html)
    assert hrefs and all(h.startswith("https://") for h in hrefs)
    assert safe_url(" https://a.org/x\n") == "https://a.org/x"
    assert safe_url("data:text/html,hi") == ""


def test_css_is_inlined_and_nothing_remote_is_loaded(env: jinja2.Environment) -> None:
    digest, links = sample_digest()
    html = render_digest(digest, links, env=env).html
    assert '<h2 style="font-size:17px;' in html
    assert "<link" not in html
    # @media rules cannot be inlined; they stay for phones and dark mode.
    assert "prefers-color-scheme: dark" in html
    assert "max-width: 640px" in html


def test_each_paper_has_title_link_authors_reason_and_feedback_links(
    env: jinja2.Environment,
) -> None:
    digest, links = sample_digest()
    rendered = render_digest(digest, links, env=env)
    assert 'href="https://arxiv.org/abs/2605.22894"' in rendered.html
    assert 'href="https://arxiv.org/abs/2605.00002?x=1&amp;y=2"' in rendered.html
    assert "Jingyan Zhang, Han Liang, Ruichi Zhang et al." in rendered.text
    assert "Why: matched \"diffusion policy\", \"humanoid\"" in rendered.text
    assert "More like this: https://digest.example.org/f/more/0" in rendered.text
    assert "Less like this: https://digest.example.org/f/less/0" in rendered.text
    assert "https://digest.example.org/f/more/1" in rendered.html
    assert "17 upvotes" in rendered.text
    assert "Unsubscribe: https://digest.example.org/u/tok.en?a=1&b=2" in rendered.text
    assert 'href="https://digest.example.org/u/tok.en?a=1&amp;b=2"' in rendered.html


def test_a_paper_with_one_upvote_says_one_upvote(env: jinja2.Environment) -> None:
    # Real Hugging Face papers of the day with a single upvote read "1 upvotes".
    capture = Path(__file__).parent / "data/feeds/captured/hf_daily_papers"
    items = json.loads((capture / "hf_daily_papers_2026-06-12_30papers.json").read_text())
    papers = [hf_paper(item, source="hf-daily") for item in items]
    once = [paper for paper in papers if paper is not None and paper.upvotes == 1]
    assert once, "the capture has papers with one upvote"
    digest, links = sample_digest(1)
    digest = replace(digest, papers=tuple(ScoredPaper(paper, 0.5, "") for paper in once))
    rendered = render_digest(digest, links, env=env)
    assert rendered.text.count("1 upvote\n") == len(once)
    assert rendered.html.count("1 upvote</span>") == len(once)
    assert "1 upvotes" not in rendered.text + rendered.html


def test_preheader_is_hidden_and_starts_with_the_first_title(env: jinja2.Environment) -> None:
    digest, links = sample_digest()
    rendered = render_digest(digest, links, env=env)
    assert rendered.preheader.startswith("SCRIPT: Scalable Diffusion Policy")
    assert len(rendered.preheader) <= 140
    assert re.search(r'<div class="preheader" style="display:none;', rendered.html)


def test_abstract_is_trimmed_at_a_word_boundary() -> None:
    text = "word " * 100
    short = shorten(text.strip(), 300)
    assert len(short) <= 300
    assert short.endswith("word…")
    assert shorten("short enough", 300) == "short enough"


def test_authors_are_shortened_after_three() -> None:
    assert short_authors(("A", "B", "C", "D", "E")) == "A, B, C et al."
    assert short_authors(("A", "B", "C", "D")) == "A, B, C, D"
    assert short_authors(()) == ""


def test_a_missing_template_variable_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "x.txt.j2").write_text("{{ nope }}")
    with pytest.raises(jinja2.UndefinedError):
        make_environment(tmp_path).get_template("x.txt.j2").render()
