"""Papers from real feeds as a subscriber reads them: ingested over HTTP, ranked, mailed."""

from __future__ import annotations

import mailbox
from datetime import UTC, date, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path

from digest import pipeline
from digest.config import Config, parse_sources
from digest.ingest import HttpFetcher, collect
from digest.models import Paper, Profile, SourceResult, SourceSpec
from digest.render import short_authors
from digest.store import Store, open_store
from tests.fixtures.config import make_config
from tests.fixtures.http_server import FeedServer

THURSDAY = date(2026, 9, 24)
NOW = datetime(2026, 9, 24, 9, 0, tzinfo=UTC)
COMBINED = ("captured/arxiv_rss/"
            "arxiv_rss_cs.LG+cs.AI+cs.CL+stat.ML_2026-09-24_new_cross_replace_4items.xml")
BIORXIV = "captured/other_scholarly/biorxiv_20250413.xml"
SHORT_NAMES = "handmade/arxiv_rss_two_authors_short_names.xml"
UA = "digest-tests/1 (mailto:ops@example.org)"


def texts(config: Config) -> list[str]:
    """Return the text part of every message in the Maildir."""
    box = mailbox.Maildir(str(config.maildir), create=False)
    messages = [BytesParser(policy=policy.default).parsebytes(box.get_bytes(key))
                for key in box.keys()]  # noqa: SIM118 (Maildir is not a dict)
    return [str(m.get_body(("plain",)).get_content()) for m in messages]  # type: ignore[union-attr]


def test_an_old_paper_revised_today_is_kept_but_not_mailed_as_new(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    # The capture lists two new papers and arXiv:2009.13987 (2020) replaced at v3; the
    # store has never seen that paper. A reader of random polytopes in cs.LG would
    # have had it first, as one of "3 new today".
    config = make_config(tmp_path / "var",
                         sources=parse_sources(f"arxiv-rss:{feed_server.url(COMBINED)}"))
    store = open_store(config.database_url)
    store.add_subscriber("reader@example.org", Profile(
        interests="random polytopes for classification and clustering",
        categories=("cs.LG",)), now=NOW, send_hour=7, max_papers=10)
    report = pipeline.run(config, now=NOW, day=THURSDAY, store=store)
    assert report.sent == 1
    [text] = texts(config)
    assert "2009.13987" not in text and "Random Polytope Descriptors" not in text
    assert "https://arxiv.org/abs/2609.26811" in text
    assert "from 2 new today" in text
    # Kept all the same: the ranker's history, a typed title, later versions update it.
    kept = store.get_papers(["arxiv:2009.13987"])["arxiv:2009.13987"]
    assert kept.version == 3 and kept.announce_type == "replace"
    store.close()


def test_a_paper_one_source_lists_as_new_stays_new_when_another_listed_it_replaced(
    tmp_path: Path,
) -> None:
    # Sources are saved one after the other: arXiv's replacement of a paper first, then
    # Hugging Face's list of the day's papers holding it. Saved the other way round, or
    # in one source, it was new; the order of DIGEST_SOURCES must not hide it.
    store = open_store(make_config(tmp_path / "var").database_url)
    replaced = Paper(key="arxiv:2609.00001", title="A paper", announce_type="replace",
                     version=2)
    store.save_papers([replaced], batch_day=THURSDAY, now=NOW)
    store.save_papers([Paper(key="arxiv:2609.00001", title="A paper", upvotes=40)],
                      batch_day=THURSDAY, now=NOW)
    stored = store.get_papers(["arxiv:2609.00001"])["arxiv:2609.00001"]
    assert stored.announce_type == "new" and stored.version == 2 and stored.upvotes == 40
    store.close()


def read_one(server: FeedServer, kind: str, path: str) -> SourceResult:
    spec = SourceSpec(name=f"{kind}:test", kind=kind, location=server.url(path))
    [result] = collect([spec], day=THURSDAY, user_agent=UA,
                       fetch=HttpFetcher(user_agent=UA, sleep=lambda _: None))
    return result


def test_biorxiv_names_without_initials_keep_the_authors_apart(feed_server: FeedServer) -> None:
    # bioRxiv lists "Surname, I., Surname, I." and closes a name that has no initials (a
    # group, a one-word name) with a second comma: "Trull, A., nf-core community,, ...".
    result = read_one(feed_server, "rss", BIORXIV)
    assert result.status == "ok" and len(result.papers) == 30
    authors = {p.key: p.authors for p in result.papers}
    assert authors["doi:10.1101/2025.04.08.647887"] == (
        "A. Trull", "nf-core community", "E. A. Worthey", "L. Ianov")
    assert authors["doi:10.1101/2025.04.06.647478"] == (
        "X. Qiu", "Y. Liu", "E. Agmon", "P. Vera-Licona", "Kshitiz", "Y. Suhail")
    # What the email's author line says (it showed "Trull, A., nf-core community et al.").
    assert short_authors(authors["doi:10.1101/2025.04.06.647478"]) == (
        "X. Qiu, Y. Liu, E. Agmon et al.")
    # Every other item of the capture still pairs each surname with its initials.
    assert authors["doi:10.1101/2025.04.07.647590"][:2] == ("N. Hou", "Z. Wu")
    assert all(len(name.split()) >= 2 or name == "Kshitiz"
               for names in authors.values() for name in names)


def test_two_authors_whose_second_has_a_short_name_stay_two(feed_server: FeedServer) -> None:
    # "Bo Li" looked like bioRxiv's initials ("Hou, N."): the two authors became one
    # person, "Bo Li Guanglin Niu", whom no follower of Bo Li or Guanglin Niu matched.
    result = read_one(feed_server, "arxiv-rss", SHORT_NAMES)
    assert result.status == "ok"
    assert [(p.key, p.authors) for p in result.papers] == [
        ("arxiv:2604.25693", ("Guanglin Niu", "Bo Li")),
        ("arxiv:2603.12677", ("Shuxin Liu", "Ou Wu")),
    ]
    assert short_authors(result.papers[0].authors) == "Guanglin Niu, Bo Li"


JOURNAL = "handmade/rss_journal_version_of_a_biorxiv_preprint.xml"
PREPRINT = "doi:10.1101/2025.04.08.647887"
MONDAY = date(2025, 4, 14)


def _nanopore_reader(tmp_path: Path, sources: str) -> tuple[Config, Store]:
    config = make_config(tmp_path / "var", sources=parse_sources(sources))
    store = open_store(config.database_url)
    store.add_subscriber("reader@example.org", Profile(
        interests="single-cell RNA sequencing with Oxford Nanopore long reads"),
        now=datetime(2025, 4, 14, 6, 0, tzinfo=UTC), send_hour=7, max_papers=10)
    return config, store


def test_a_paper_two_sources_list_under_two_dois_is_mailed_once(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    # bioRxiv lists the preprint (10.1101/...), the journal its published version under
    # its own DOI with the same title: two keys, so the digest held the paper twice, at
    # 1 and 3, and "from 32 new today" counted it twice.
    config, store = _nanopore_reader(
        tmp_path, f"rss:{feed_server.url(BIORXIV)},rss:{feed_server.url(JOURNAL)}")
    report = pipeline.run(config, now=datetime(2025, 4, 14, 7, 0, tzinfo=UTC), day=MONDAY,
                          store=store)
    assert report.sent == 1
    [text] = texts(config)
    assert text.lower().count("scnanoseq: an nf-core pipeline") == 1
    assert "from 31 new today" in text
    assert "Barcode collision rates" in text  # the journal's other paper is its own
    assert store.count_batch(MONDAY) == 31
    kept = store.get_papers([PREPRINT])[PREPRINT]
    assert kept.url.startswith("https://www.biorxiv.org/")
    assert kept.doi == "10.1101/2025.04.08.647887"
    store.close()


def test_the_journal_version_of_a_paper_mailed_yesterday_is_not_mailed_again(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    config, store = _nanopore_reader(tmp_path, f"rss:{feed_server.url(BIORXIV)}")
    first = pipeline.run(config, now=datetime(2025, 4, 14, 7, 0, tzinfo=UTC), day=MONDAY,
                         store=store)
    assert first.sent == 1
    assert "scnanoseq" in texts(config)[0]
    # The next day the journal's feed is read too: its copy of Monday's paper is that
    # paper, not a new one of Tuesday's batch.
    config = make_config(tmp_path / "var", sources=parse_sources(
        f"rss:{feed_server.url(BIORXIV)},rss:{feed_server.url(JOURNAL)}"))
    tuesday = date(2025, 4, 15)
    second = pipeline.run(config, now=datetime(2025, 4, 15, 7, 0, tzinfo=UTC), day=tuesday,
                          store=store)
    assert [p.key for p, _ in store.batch(tuesday, tuesday)] == ["doi:10.5555/jlm.2025.0043"]
    assert second.sent == 1
    later = [t for t in texts(config) if "Barcode collision rates" in t]
    assert len(later) == 1 and "scnanoseq" not in later[0].lower()
    store.close()


def test_a_reader_of_categories_alone_is_told_the_feeds_list_none(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    # A lab's instance reads bioRxiv: no paper is in an arXiv category. Someone who
    # ticked q-bio.GN on the form got "nothing matched your interests ... broaden your
    # interests" every day, never why; their categories can pick nothing here.
    config = make_config(tmp_path / "var", sources=parse_sources(f"rss:{feed_server.url(BIORXIV)}"))
    store = open_store(config.database_url)
    signed_up = datetime(2025, 4, 14, 6, 0, tzinfo=UTC)
    store.add_subscriber("genomics@example.org", Profile(categories=("q-bio.GN",)),
                         now=signed_up, empty_digest="note")
    store.add_subscriber("words@example.org", Profile(interests="zebrafish fin regeneration"),
                         now=signed_up, empty_digest="note")
    report = pipeline.run(config, now=datetime(2025, 4, 14, 7, 0, tzinfo=UTC), day=MONDAY,
                          store=store)
    assert report.sent == 2
    [categories] = [t for t in texts(config) if "q-bio.GN" in t]
    assert "we looked at 30 new" in categories
    assert ("None of them is filed under an arXiv category: this digest's sources\n"
            "list none, so your categories (q-bio.GN) pick no paper here.") in categories
    assert "Add\ninterests, keywords or authors" in categories
    # A profile without categories gets the note as before.
    [words] = [t for t in texts(config) if "q-bio.GN" not in t]
    assert "matched your interests" in words and "arXiv category" not in words
    store.close()


def test_a_day_without_a_readers_categories_says_which(
    feed_server: FeedServer, tmp_path: Path,
) -> None:
    # An arXiv feed lists categories, just none of this reader's today.
    config = make_config(tmp_path / "var",
                         sources=parse_sources(f"arxiv-rss:{feed_server.url(COMBINED)}"))
    store = open_store(config.database_url)
    store.add_subscriber("astro@example.org", Profile(categories=("astro-ph.GA", "cs.LG")),
                         now=NOW, empty_digest="note")
    store.add_subscriber("galaxies@example.org", Profile(categories=("astro-ph.GA",)),
                         now=NOW, empty_digest="note")
    report = pipeline.run(config, now=NOW, day=THURSDAY, store=store)
    assert report.sent == 2
    digest, note = sorted(texts(config), key=lambda t: "matched your interests" in t)
    assert "None of them" not in digest  # cs.LG papers came: a digest, no note
    assert "None of them is in astro-ph.GA." in note
    assert "arXiv category:" not in note
    store.close()
