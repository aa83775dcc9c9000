"""Canonical keys, merging duplicates, and the small text helpers."""

from __future__ import annotations

from datetime import date

import pytest

from digest.ingest import arxiv_key, doi_key, merge, normalize_doi, paper_key, parse_arxiv_id
from digest.ingest.sources import arxiv_api_url, arxiv_rss_url, doi_from_url
from digest.ingest.text import html_to_text, split_authors, strip_arxiv_prefix
from digest.models import Paper


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("2401.01234", "arxiv:2401.01234"),
        ("2401.01234v3", "arxiv:2401.01234"),
        ("arXiv:2401.01234v2", "arxiv:2401.01234"),
        ("https://arxiv.org/abs/2401.01234v2", "arxiv:2401.01234"),
        ("https://arxiv.org/pdf/2401.01234", "arxiv:2401.01234"),
        ("oai:arXiv.org:2609.26811v1", "arxiv:2609.26811"),
        ("0704.0001", "arxiv:0704.0001"),
        ("hep-th/9901001", "arxiv:hep-th/9901001"),
        ("http://arxiv.org/abs/astro-ph/0601001v1", "arxiv:astro-ph/0601001"),
        ("math.CO/0101001v2", "arxiv:math.CO/0101001"),
        ("not an id", None),
    ],
)
def test_arxiv_keys_drop_the_version(text: str, key: str | None) -> None:
    assert arxiv_key(text) == key


def test_parse_arxiv_id_returns_the_version() -> None:
    assert parse_arxiv_id("2401.01234v12") == ("2401.01234", 12)
    assert parse_arxiv_id("hep-th/9901001") == ("hep-th/9901001", None)


@pytest.mark.parametrize(
    "text",
    ["10.1101/2025.04.07.647590", "doi:10.1101/2025.04.07.647590",
     "https://doi.org/10.1101/2025.04.07.647590", "DOI: 10.1101/2025.04.07.647590."],
)
def test_dois_are_normalised(text: str) -> None:
    assert normalize_doi(text) == "10.1101/2025.04.07.647590"
    assert doi_key(text) == "doi:10.1101/2025.04.07.647590"


def test_doi_case_is_folded() -> None:
    assert normalize_doi("10.1103/PhysRevB.85.115117") == "10.1103/physrevb.85.115117"


def test_paper_key_prefers_arxiv_then_doi_then_source_entry() -> None:
    assert paper_key(arxiv="2401.01234v2", doi="10.1000/x", source="s") == "arxiv:2401.01234"
    assert paper_key(doi="https://doi.org/10.1000/X", source="s") == "doi:10.1000/x"
    assert paper_key(source="blog", entry_id=" post-1 ") == "blog:post-1"


@pytest.mark.parametrize(
    ("url", "doi"),
    [
        ("https://www.biorxiv.org/content/10.1101/2025.04.07.647590v1?rss=1",
         "10.1101/2025.04.07.647590"),
        ("https://bmcbioinformatics.biomedcentral.com/articles/10.1186/s12859-025-06113-4",
         "10.1186/s12859-025-06113-4"),
        ("https://academic.oup.com/bioinformatics/advance-article/doi/10.1093/bioinformatics/"
         "btaf119/8090439?rss=1", "10.1093/bioinformatics/btaf119"),
        ("https://www.nature.com/articles/s41598-025-86513-x", "10.1038/s41598-025-86513-x"),
        ("https://example.org/post/1", None),
    ],
)
def test_doi_from_publisher_urls(url: str, doi: str | None) -> None:
    assert doi_from_url(url) == doi


def test_source_locations_become_urls() -> None:
    assert arxiv_rss_url("cs.LG+cs.AI") == "https://rss.arxiv.org/rss/cs.LG+cs.AI"
    assert arxiv_rss_url("https://rss.arxiv.org/atom/cs.LG") == "https://rss.arxiv.org/atom/cs.LG"
    assert arxiv_api_url("cat:cs.LG") == "https://export.arxiv.org/api/query?search_query=cat%3Acs.LG"
    assert arxiv_api_url("id_list=2401.01234") == (
        "https://export.arxiv.org/api/query?id_list=2401.01234")


def test_same_paper_from_arxiv_and_hugging_face_merges_into_one() -> None:
    arxiv = Paper(key="arxiv:2606.00467", title="On the Limits", abstract="Short.",
                  authors=("A", "B", "C"), categories=("cs.CL", "cs.AI"),
                  url="https://arxiv.org/abs/2606.00467", source="arxiv-rss",
                  published=date(2026, 6, 12), version=1)
    hf = Paper(key="arxiv:2606.00467", title="On the Limits", abstract="A longer abstract.",
               authors=("A", "B"), source="hf-daily", published=date(2026, 5, 30),
               upvotes=12, ai_summary="Summary.", ai_keywords=("llm",))
    cross = Paper(key="arxiv:2606.00467", title="On the Limits", categories=("stat.ML",),
                  announce_type="cross", version=2)
    other = Paper(key="doi:10.1/x", title="Other")
    merged = merge([hf, other, arxiv, cross])
    assert [p.key for p in merged] == ["arxiv:2606.00467", "doi:10.1/x"]
    paper = merged[0]
    assert paper.categories == ("cs.CL", "cs.AI", "stat.ML")
    assert paper.abstract == "A longer abstract."
    assert paper.authors == ("A", "B", "C")
    assert (paper.upvotes, paper.ai_summary, paper.ai_keywords) == (12, "Summary.", ("llm",))
    assert paper.url == "https://arxiv.org/abs/2606.00467"
    assert paper.announce_type == "new" and paper.version == 2
    assert paper.published == date(2026, 5, 30)


def test_text_helpers() -> None:
    assert strip_arxiv_prefix("arXiv:2609.26811v1 Announce Type: new \nAbstract: Local") == "Local"
    assert strip_arxiv_prefix("arXiv:2009.13987v3 Announce Type: replace-cross \nAbstract: X") \
        == "X"
    assert html_to_text("$a<b$ and $c > d$") == "$a<b$ and $c > d$"
    assert html_to_text("<p>x &amp;lt; y</p>") == "x &lt; y"
    assert split_authors("Hou, N., Wu, Z., Yu, Y.") == ("N. Hou", "Z. Wu", "Y. Yu")
    assert split_authors("Grigoriy Gogoshin and Andrei S. Rodin") == (
        "Grigoriy Gogoshin", "Andrei S. Rodin")
    assert split_authors("  ") == ()


@pytest.mark.parametrize(
    "text",
    ["10.48550/arXiv.2401.01234", "https://doi.org/10.48550/arXiv.2401.01234",
     "doi:10.48550/ARXIV.2401.01234", "https://doi.org/10.48550/arxiv.2401.01234v2"],
)
def test_an_arxiv_doi_is_the_arxiv_key(text: str) -> None:
    assert arxiv_key(text) == "arxiv:2401.01234"
    assert paper_key(doi=text, source="s") == "arxiv:2401.01234"


def test_other_dois_holding_dotted_numbers_are_no_arxiv_ids() -> None:
    assert arxiv_key("10.1101/2025.04.07.647590") is None
    assert paper_key(doi="10.1101/2025.04.07.647590", source="s") == (
        "doi:10.1101/2025.04.07.647590")
    assert arxiv_key("10.48550/arXiv.hep-th/9901001") == "arxiv:hep-th/9901001"
