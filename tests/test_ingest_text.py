"""Paper text as researchers read it: entities, invisible characters, wrong charsets."""

from __future__ import annotations

import re
from datetime import date

from digest.ingest import HttpFetcher, collect
from digest.ingest.text import readable, separate_headings
from digest.models import Paper, SourceResult, SourceSpec
from tests.fixtures.http_server import FeedServer

UA = "digest-tests/1 (mailto:ops@example.org)"
TUESDAY = date(2026, 5, 5)
HANDMADE = "handmade"


def one(server: FeedServer, kind: str, path: str) -> SourceResult:
    spec = SourceSpec(name="s", kind=kind, location=server.url(path))
    fetch = HttpFetcher(user_agent=UA, sleep=lambda _: None, retries=0)
    [result] = collect([spec], day=TUESDAY, user_agent=UA, fetch=fetch)
    return result


def test_entities_in_feed_text_without_tags_are_decoded(feed_server: FeedServer) -> None:
    """A title escaped twice, a CDATA abstract of entities: text without tags was left as
    it came, so readers saw "Gene &amp; protein" and "an &alpha;-helix where a &lt; b".
    """
    result = one(feed_server, "rss", f"{HANDMADE}/rss_entities_without_tags.xml")
    assert result.status == "ok"
    [paper] = result.papers
    assert paper.title == "Gene & protein networks in “dark” matter – a review"
    assert paper.abstract == (
        "Cells & tissues with an α-helix where a < b holds, so $a<b$ and $c > d$ stay – "
        "and AT&T, Q&A or R&D stay as typed."
    )
    assert paper.authors == ("José Raúl Romero", "Karl Bäckström")


def test_windows_1252_quotes_in_a_feed_declared_latin_1(feed_server: FeedServer) -> None:
    """A feed declared ISO-8859-1 holding Windows-1252 bytes (what Windows editors save,
    and what browsers read such a feed as): its curly quotes and dashes came out as C1
    control characters, invisible or boxes in the email and in the stored title.
    """
    result = one(feed_server, "rss", f"{HANDMADE}/rss_latin1_declared_cp1252_quotes.xml")
    assert result.status == "ok"
    [paper] = result.papers
    assert paper.title == "The “best” model – not … café™ trade€ marks"
    assert paper.abstract == "It’s a survey of naïve Bayes — with „quotes“ and $a<b$."
    assert not any("\x80" <= c <= "\x9f" for c in paper.title + paper.abstract)


def test_utf_8_read_as_latin_1_is_repaired(feed_server: FeedServer) -> None:
    """A real arXiv API answer as a client recorded it (captured/, from arxiv.py's test
    fixtures): its accents had been read as Latin-1 once, so digest listed
    "Karl BÃ¤ckstrÃ¶m" and a follower of "Karl Bäckström" never got his papers.
    """
    path = "captured/arxiv_api/arxiv_api_2026_search_testing_100results.xml"
    result = one(feed_server, "arxiv-api", path)
    assert result.status == "ok" and len(result.papers) == 100
    authors = {a for p in result.papers for a in p.authors}
    for name in ("Karl Bäckström", "Sólrún Einarsdóttir", "Oliver Weißl",
                 "Aurora Ramírez", "José Raúl Romero", "Mika V. Mäntylä",
                 "Jean-Marc Azaïs", "Lasse Møldrup", "Betül Karagöz"):
        assert name in authors
    assert not any("Ã" in a or "Â" in a for a in authors)
    [strip] = [p for p in result.papers if "strip planarity" in p.abstract]
    assert "a function $γ:V \\rightarrow \\{1,2,\\dots,k\\}$" in strip.abstract
    assert "$γ(u)<γ(v)$, it holds $y(u)<y(v)$" in strip.abstract


def test_text_that_only_looks_like_latin_1_mojibake_stays() -> None:
    for text in ("café’s naïve SÃO Paulo", "Zoë Ørsted and Weiß", "â or Ã alone",
                 "São Paulo — 5 °C ± 2", "$a<b$ and $c > d$"):
        paper = readable(Paper(key="k", title=text, abstract=text, authors=(text,)))
        assert (paper.title, paper.abstract, paper.authors) == (text, text, (text,))


def test_latex_accents_read_as_the_letters_they_make(feed_server: FeedServer) -> None:
    """arXiv hands out its authors' TeX: a real API answer (captured/) said
    "R\\'{e}nyi entanglement entropy", and a subscriber's "Rényi" never matched it.
    """
    path = "captured/arxiv_api/arxiv_api_2016_search_andnot_query.xml"
    result = one(feed_server, "arxiv-api", path)
    assert result.status == "ok"
    [paper] = [p for p in result.papers if "entanglement entropy" in p.abstract]
    assert paper.abstract.startswith("We consider the Rényi entanglement entropy of bosonic")
    assert "\\'" not in paper.abstract


def test_latex_accent_forms_and_math_that_stays() -> None:
    written = {
        r"R\'{e}nyi and Fr\'echet": "Rényi and Fréchet",
        r"Sch{\"o}lkopf, G\"odel, Erd\H{o}s": "Schölkopf, Gödel, Erdős",
        r"Mar\'{\i}a Garc{\'\i}a, Gar\c{c}on, Ha\v{s}ek, {\'E}cole, na\"\i ve": (
            "María García, Garçon, Hašek, École, naïve"),
    }
    for tex, text in written.items():
        paper = readable(Paper(key="k", title=tex, abstract=tex, authors=(tex,)))
        assert (paper.title, paper.abstract, paper.authors) == (text, text, (text,))
    math = r"If $a<b$ and $c > d$ then $\hat{x} \cdot \vec{v} = \tilde{y}'$; \c c stays."
    assert readable(Paper(key="k", title="t", abstract=math)).abstract == math


def test_structured_abstract_headings_are_not_run_into_their_text(
    feed_server: FeedServer,
) -> None:
    """bioRxiv's feed drops the markup of a structured abstract's headings: readers saw
    "BackgroundBacterial exotoxins ... sequences. ResultsWe introduce Exo-Tox", and the
    ranker read the words "backgroundbacterial" and "resultswe".
    """
    result = one(feed_server, "rss", "captured/other_scholarly/biorxiv_20250413.xml")
    assert result.status == "ok" and len(result.papers) == 30
    [exotox] = [p for p in result.papers if "Exo-Tox" in p.abstract]
    assert exotox.abstract.startswith("Background: Bacterial exotoxins are secreted proteins")
    assert "from protein sequences. Results: We introduce Exo-Tox" in exotox.abstract
    assert "non-secreted proteins. Conclusion: Exo-Tox reliably identifies" in exotox.abstract
    assert "research. Methods & Results: The target hypothetical" in " ".join(
        p.abstract for p in result.papers)
    glued = re.compile(r"\b(?:Background|Results|Conclusions?|Methods)[A-Z][a-z]")
    assert not [p.key for p in result.papers if glued.search(p.abstract)]
    # The headings bioRxiv did separate stay as they were.
    [perseu] = [p for p in result.papers if p.title.startswith("PERSEUcpp")]
    assert perseu.abstract.startswith("Motivation: Cell-penetrating")
    assert "Availability and Implementation: All the source code" in perseu.abstract


def test_a_heading_is_split_off_only_before_a_word_that_begins_a_sentence() -> None:
    assert separate_headings("BackgroundRNA-seq is used. MethodsWe did. ResultsA gain.") \
        == "Background: RNA-seq is used. Methods: We did. Results: A gain."
    for text in ("MethodsX publishes protocols.", "The ResultsWe tab.", "Results show it.",
                 "ContextNet and DesignBench win. ContactNets too.",
                 "We used Methods. Results: fine.", "$a<b$ Background"):
        assert separate_headings(text) == text


def test_invisible_characters_do_not_split_or_hide_in_words(feed_server: FeedServer) -> None:
    """Soft hyphens, zero-width spaces, a word joiner, a BOM and a control character:
    unseen in the email, but "un\\u00adlearning" was two words to the ranker (a
    subscriber's keyword "unlearning" missed it) and "Lovelace\\u200b" not the author
    a follower typed.
    """
    result = one(feed_server, "hf-daily", f"{HANDMADE}/hf_daily_invisible_characters.json")
    assert result.status == "ok"
    [paper] = result.papers
    assert paper.title == "Machine unlearning for diffusion models"
    assert paper.abstract == (
        "We forget concepts in text-to-image models without retraining; "
        "see https://example.org/a/very/long/path."
    )
    assert paper.authors == ("Ada Lovelace", "Emmy Noether")


def test_mathml_and_small_capitals_in_titles_read_as_text(feed_server: FeedServer) -> None:
    """MathML without the "mml:" prefix and Wiley's <scp> were not known tags: readers got
    'Kitaev spin liquid in <mrow><msub><mi mathvariant="normal">Na</mi>...' as the title.
    """
    result = one(feed_server, "rss", f"{HANDMADE}/rss_mathml_titles.xml")
    assert result.status == "ok"
    formula, capitals = result.papers
    assert formula.title == "Kitaev spin liquid in Na2IrO3 crystals"
    assert formula.abstract == "We measure the mass mt with a<b, and $a<b$ stays."
    assert capitals.title == "DNA repair in Escherichia coli under uv light"
    assert capitals.abstract == "Small capitals in a title."


def test_sciencedirect_metadata_is_not_the_abstract(feed_server: FeedServer) -> None:
    """Elsevier's feeds put the date, the journal and the authors in the description:
    the digest showed "Publication date: Available online 20 May 2026 Source: Neural
    Networks Author(s): ..." as the paper's abstract, ranked those words, and listed
    no authors, so nobody following them got the paper.
    """
    result = one(feed_server, "rss", f"{HANDMADE}/rss_sciencedirect_metadata.xml")
    assert result.status == "ok"
    online, issue = result.papers
    assert online.abstract == ""
    assert online.authors == ("Laura E. Tibbs-Cortes", "Linqian Han", "Jeremy B. Jewell")
    assert online.published == date(2026, 5, 20)
    assert issue.abstract == (
        "We survey graph transformers for molecular property prediction & generation.")
    assert issue.authors == ("Zoë Müller", "José Ramírez")
    assert issue.published is None  # an issue's month names no day
