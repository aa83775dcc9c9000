"""The store on a real SQLite file: schema version, papers, ledger, suppression."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from digest.errors import ConfigError, SchemaError, UsageError
from digest.models import Paper, Profile
from digest.store import SCHEMA_VERSION, open_store
from tests.fixtures.disk import PYTHON, child_env, no_room_past

NOW = datetime(2026, 5, 25, 6, 0, tzinfo=UTC)
DAY = date(2026, 5, 25)


def paper(key: str, **kw: object) -> Paper:
    return Paper(key=key, title=kw.pop("title", f"Title {key}"), **kw)  # type: ignore[arg-type]


def test_schema_is_created_once_and_version_checked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.sqlite3'}"
    store = open_store(url)
    assert store.schema_version() == SCHEMA_VERSION
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value='999' WHERE key='schema_version'"))
    store.close()
    with pytest.raises(SchemaError) as err:
        open_store(url)
    assert "999" in err.value.message and err.value.hint


def test_empty_database_without_create_says_run_init(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="no digest schema") as err:
        open_store(f"sqlite:///{tmp_path / 'e.sqlite3'}", create=False)
    assert "digest init" in err.value.hint


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_the_sqlite_wal_file_shrinks_back_after_a_large_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A WAL file keeps the size of its largest transaction for good unless a size limit
    # is set: filling a year of history once left 1.28 GB beside the database.
    from digest.store import base

    monkeypatch.setattr(base, "WAL_SIZE_LIMIT", 256 * 1024, raising=False)
    path = tmp_path / "w.sqlite3"
    store = open_store(f"sqlite:///{path}")
    try:
        with store.begin() as conn:  # ~6 MB in one transaction
            for n in range(6):
                conn.execute(text("INSERT INTO meta (key, value) VALUES (:k, :v)"),
                             {"k": f"big{n}", "v": "x" * 1_000_000})
        wal = Path(f"{path}-wal")
        assert wal.stat().st_size > 4_000_000
        # Its commit checkpointed it (SQLite's automatic checkpoint, past 1,000 pages);
        # the next write starts the WAL over, cut to the limit.
        with store.begin() as conn:
            conn.execute(text("INSERT INTO meta (key, value) VALUES ('small', 'y')"))
        assert wal.stat().st_size <= 256 * 1024
    finally:
        store.close()


def test_saving_a_feed_again_writes_only_what_changed(tmp_path: Path) -> None:
    # An hourly run reads the same feed again: every known paper was rewritten (and its
    # updated_at moved) though nothing about it had changed.
    store = open_store(f"sqlite:///{tmp_path / 'p.sqlite3'}")
    first = [paper("arxiv:1", upvotes=3), paper("arxiv:2", categories=("cs.CL",))]
    assert store.save_papers(first, batch_day=DAY, now=NOW) == (2, 0)
    later = datetime(2026, 5, 25, 7, 0, tzinfo=UTC)
    again = [
        paper("arxiv:1", upvotes=3),  # unchanged
        paper("arxiv:2", categories=("cs.LG",)),  # cross-listed since
        paper("arxiv:3", categories=("cs.IR",)),
        paper("arxiv:3", categories=("cs.DL",), upvotes=1),  # twice in one feed
        paper("arxiv:2", categories=("cs.AI",)),  # and a known one twice
    ]
    assert store.save_papers(again, batch_day=date(2026, 5, 26), now=later) == (1, 1)
    with store.engine.connect() as conn:
        rows = {r.key: r for r in conn.execute(text("SELECT * FROM papers ORDER BY key"))}
    assert list(rows) == ["arxiv:1", "arxiv:2", "arxiv:3"]
    stamps = {key: str(row.updated_at) for key, row in rows.items()}
    assert stamps["arxiv:1"].startswith("2026-05-25 06:00")  # untouched
    assert stamps["arxiv:2"].startswith("2026-05-25 07:00")
    found = store.get_papers(["arxiv:2", "arxiv:3"])
    assert found["arxiv:2"].categories == ("cs.CL", "cs.LG", "cs.AI")
    assert found["arxiv:3"].categories == ("cs.IR", "cs.DL")
    assert found["arxiv:3"].upvotes == 1
    assert [(p.key, d) for p, d in store.batch(DAY, date(2026, 5, 26))] == [
        ("arxiv:1", DAY), ("arxiv:2", DAY), ("arxiv:3", date(2026, 5, 26))]
    assert store.save_papers(again, batch_day=date(2026, 5, 27), now=later) == (0, 0)


def test_known_paper_keeps_its_batch_day_and_merges_signals(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'p.sqlite3'}")
    first = paper("arxiv:2401.00001", categories=("cs.CL",), abstract="short")
    assert store.save_papers([first], batch_day=DAY, now=NOW) == (1, 0)
    later = paper(
        "arxiv:2401.00001", categories=("cs.LG",), abstract="a longer abstract", upvotes=12,
        version=2,
    )
    assert store.save_papers([later], batch_day=date(2026, 5, 26), now=NOW) == (0, 1)
    rows = store.batch(DAY, date(2026, 5, 26))
    assert [(p.key, d) for p, d in rows] == [("arxiv:2401.00001", DAY)]
    merged = rows[0][0]
    assert merged.categories == ("cs.CL", "cs.LG")
    assert merged.abstract == "a longer abstract"
    assert merged.upvotes == 12 and merged.version == 2


def test_a_paper_under_another_key_with_the_same_title_is_the_stored_one(
    tmp_path: Path,
) -> None:
    # A feed without DOIs keys its entries by source: the same article in two of a
    # publisher's feeds, or a preprint and its journal version, were two new papers.
    store = open_store(f"sqlite:///{tmp_path / 'p.sqlite3'}")
    title = "Sparse probes of cortical dynamics in behaving mice"
    first = paper("rss:a:https://pub.example.org/1", title=title, authors=("Ana Ruiz",))
    assert store.save_papers([first], batch_day=DAY, now=NOW) == (1, 0)
    nextday = date(2026, 5, 26)
    again = [
        # The same title (other capitals, a final period), an author in common.
        paper("rss:b:https://pub.example.org/1", title=title.upper() + ".",
              authors=("Ruiz, A.", "B. Chen"), abstract="An abstract."),
        # The same title by other people: another paper.
        paper("doi:10.5555/2", title=title, authors=("Kenji Sato",)),
        # A short title names many papers ("Editorial"): never one paper by it alone.
        paper("rss:a:https://pub.example.org/3", title="Editorial"),
        paper("rss:b:https://pub.example.org/4", title="Editorial"),
        # Twice in one save under two keys: one paper, the first key.
        paper("doi:10.5555/5", title="Four words are enough", authors=("Li Wei",)),
        paper("rss:b:https://pub.example.org/5", title="four  words are enough"),
    ]
    assert store.save_papers(again, batch_day=nextday, now=NOW) == (4, 1)
    assert [(p.key, d) for p, d in store.batch(DAY, nextday)] == [
        ("rss:a:https://pub.example.org/1", DAY),
        ("doi:10.5555/2", nextday),
        ("doi:10.5555/5", nextday),
        ("rss:a:https://pub.example.org/3", nextday),
        ("rss:b:https://pub.example.org/4", nextday),
    ]
    kept = store.get_papers(["rss:a:https://pub.example.org/1"])
    assert kept["rss:a:https://pub.example.org/1"].abstract == "An abstract."


def test_two_arxiv_ids_with_one_title_stay_two_papers(tmp_path: Path) -> None:
    # The corpus holds one such pair (2509.21801 and 2601.11002, one first author): a
    # seed asked for by the older id must be stored under it, not taken for the newer.
    store = open_store(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    title = "Redefining machine simultaneous interpretation from incremental translation"
    store.save_papers([paper("arxiv:2601.11002", title=title, authors=("Qianen Zhang",))],
                      batch_day=DAY, now=NOW)
    older = paper("arxiv:2509.21801", title=title, authors=("Qianen Zhang",))
    assert store.save_papers([older], batch_day=DAY, now=NOW) == (1, 0)
    assert sorted(store.get_papers(["arxiv:2509.21801", "arxiv:2601.11002"])) == [
        "arxiv:2509.21801", "arxiv:2601.11002"]
    # A journal's record of it (another key) is still the stored paper.
    journal = paper("doi:10.5555/9", title=title, authors=("Q. Zhang",))
    assert store.save_papers([journal], batch_day=DAY, now=NOW)[0] == 0  # nothing new


def test_a_paper_fetched_by_its_arxiv_id_is_stored_under_it_beside_its_journal_version(
        tmp_path: Path) -> None:
    # A subscriber seeds 2401.01234, whose journal version a journal's feed brought
    # (its own DOI, the same title, an author in common). arXiv's API answered the
    # id, but the same-title merge filed the answer under the DOI: nothing was stored
    # under the id, so the seed named nothing, in the ranker or in `subscribers show`.
    store = open_store(f"sqlite:///{tmp_path / 'n.sqlite3'}")
    title = "Sparse autoencoders find interpretable features in protein language models"
    store.save_papers([paper("doi:10.1101/2024.01.01.000001", title=title,
                             authors=("A. Trull",))], batch_day=DAY, now=NOW)
    named = paper("arxiv:2401.01234", title=title, authors=("Anna Trull",),
                  announce_type="named")
    store.save_papers([named], batch_day=DAY, now=NOW)
    assert "arxiv:2401.01234" in store.get_papers(["arxiv:2401.01234"])
    # A feed's record under another key is still merged (mailed once).
    rss = paper("rss:j:https://journal.example.org/1", title=title, authors=("Trull, A.",))
    assert store.save_papers([rss], batch_day=DAY, now=NOW)[0] == 0
    store.close()


def test_a_stored_title_ending_in_a_period_is_the_same_title_without_it(
        tmp_path: Path) -> None:
    # PubMed's titles end with a period, bioRxiv's and most journals' do not: the
    # merge read "a final period aside" only one way, so a record without the period
    # was not found beside a stored one with it, and the paper was mailed twice.
    store = open_store(f"sqlite:///{tmp_path / 'p.sqlite3'}")
    title = "Deep learning for single cell genomics analysis"
    store.save_papers([paper("doi:10.1/pubmed", title=f"{title}.", authors=("Ann Lee",))],
                      batch_day=DAY, now=NOW)
    again = paper("rss:b:https://biorxiv.example.org/1", title=title, authors=("Lee, A.",))
    assert store.save_papers([again], batch_day=DAY, now=NOW)[0] == 0
    assert store.get_papers([again.key]) == {}
    store.close()


def test_one_ledger_row_per_subscriber_and_day(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'l.sqlite3'}")
    sub = store.add_subscriber("A@Example.org", Profile(interests="x"), now=NOW)
    assert sub.email == "a@example.org"
    picks = [("arxiv:1", 0.5, "matched: agents")]
    assert store.plan_delivery(sub.id, DAY, picks=picks, message_id="<m>", now=NOW)
    planned = store.get_delivery(sub.id, DAY)
    assert planned is not None and planned.status == "planned" and planned.picks == tuple(picks)
    again = store.plan_delivery(sub.id, DAY, picks=[("arxiv:2", 1.0, "")], message_id="<n>",
                                now=NOW)
    assert again is False
    assert store.set_delivery_status(sub.id, DAY, "sending", now=NOW, attempt=True,
                                     expect=("planned",))
    # A second claim from "planned" fails: the row has moved on.
    assert not store.set_delivery_status(sub.id, DAY, "sending", now=NOW, expect=("planned",))
    assert store.set_delivery_status(sub.id, DAY, "sent", now=NOW)
    assert store.sent_keys([sub.id], ["arxiv:1", "arxiv:2"]) == {sub.id: {"arxiv:1"}}
    row = store.get_delivery(sub.id, DAY)
    assert row is not None and row.status == "sent" and row.attempts == 1


def test_stale_sending_rows_become_unknown(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'u.sqlite3'}")
    sub = store.add_subscriber("b@example.org", Profile(interests="x"), now=NOW)
    store.plan_delivery(sub.id, DAY, picks=[], message_id="<m>", now=NOW)
    store.set_delivery_status(sub.id, DAY, "sending", now=NOW)
    assert store.mark_stale_sending(now=NOW) == 1
    row = store.get_delivery(sub.id, DAY)
    assert row is not None and row.status == "unknown"


def test_duplicate_subscriber_is_a_usage_error(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    store.add_subscriber("c@example.org", Profile(interests="x"), now=NOW)
    with pytest.raises(UsageError, match="already subscribed"):
        store.add_subscriber("C@example.org", Profile(interests="y"), now=NOW)


def test_removed_subscriber_leaves_only_a_hashed_suppression(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    sub = store.add_subscriber("d@example.org", Profile(interests="x"), now=NOW)
    store.record_vote(sub.id, "arxiv:1", 1, now=NOW)
    store.remove_subscriber(sub.id, now=NOW, reason="deleted")
    assert store.find_subscriber("d@example.org") is None
    assert store.is_suppressed("D@example.org")
    with store.engine.connect() as conn:
        dumped = "\n".join(conn.connection.iterdump())  # type: ignore[attr-defined]
    assert "d@example.org" not in dumped


def test_latest_vote_wins(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'v.sqlite3'}")
    sub = store.add_subscriber("e@example.org", Profile(interests="x"), now=NOW)
    store.record_vote(sub.id, "arxiv:1", 1, now=NOW)
    store.record_vote(sub.id, "arxiv:1", -1, now=NOW)
    assert store.votes() == {sub.id: {"arxiv:1": -1}}


def test_papers_are_found_by_their_lowered_title_through_an_index(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 't.sqlite3'}")
    store.save_papers([paper("arxiv:1", title="Attention Is All You Need",
                             authors=("Ashish Vaswani",)),
                       paper("arxiv:2", title="Deep Residual Learning"),
                       paper("arxiv:3", title="attention is all you need",
                             authors=("Ana Ruiz",))],  # another paper: other authors
                      batch_day=DAY, now=NOW)
    found = store.keys_titled(["attention is all you need", "no such title", ""])
    assert sorted(found) == ["arxiv:1", "arxiv:3"]
    assert store.keys_titled([]) == set()
    with store.engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(text(
            "EXPLAIN QUERY PLAN SELECT key FROM papers WHERE lower(title) IN ('a', 'b')")))
    assert "ix_papers_title_lower" in plan


# -- the writer lock: this host's transactions queue on flock ------------------------------


@contextmanager
def _child_holding(target: Callable[[str, Any, Any], None], url: str) -> Iterator[Any]:
    """Run ``target(url, ready, release)`` in a spawned process; yield ``release`` once
    it is ready; release it (if the test has not) and wait for it at the end."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    child = context.Process(target=target, args=(url, ready, release))
    child.start()
    try:
        assert ready.wait(60)
        yield release
    finally:
        release.set()
        child.join(30)


def _hold_writer_in_child(url: str, ready: Any, release: Any) -> None:
    store = open_store(url)
    assert store._writer is not None
    with store._writer.hold():
        ready.set()
        release.wait(30)
    store.close()


def test_a_transaction_waits_for_another_process_holding_the_writer_lock(
    tmp_path: Path,
) -> None:
    import threading

    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    store = open_store(url)
    with _child_holding(_hold_writer_in_child, url) as release:
        done = threading.Event()

        def write() -> None:
            store.add_subscriber("a@example.org", Profile(interests="x"), now=NOW)
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        # The child holds no SQLite lock, only the lock file: the write still waits.
        assert not done.wait(1.0)
        release.set()
        assert done.wait(30)
        writer.join()
    assert store.find_subscriber("a@example.org") is not None
    store.close()


def _write_and_hold_in_child(url: str, ready: Any, release: Any) -> None:
    store = open_store(url)
    with store.begin() as conn:  # the lock file and SQLite's write lock, a write pending
        conn.execute(text("UPDATE subscribers SET name = 'changed'"))
        ready.set()
        release.wait(30)
    store.close()


def test_the_send_phase_reads_take_no_write_lock_and_see_the_last_commit(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    store = open_store(url)
    sub = store.add_subscriber("r@example.org", Profile(interests="x"), now=NOW, name="Ann")
    store.save_papers([paper("arxiv:1")], batch_day=NOW.date(), now=NOW)
    with _child_holding(_write_and_hold_in_child, url):
        # A writer in another process holds both locks: a send worker's chunk reads
        # neither wait for it (busy_timeout is 10 s) nor see its uncommitted change.
        started = time.monotonic()
        assert store.get_subscribers([sub.id])[sub.id].name == "Ann"
        assert set(store.get_papers(["arxiv:1"])) == {"arxiv:1"}
        assert store.stored_messages([(sub.id, NOW.date())]) == {}
        assert time.monotonic() - started < 5
    assert store.get_subscribers([sub.id])[sub.id].name == "changed"
    store.close()


def test_stores_on_one_file_share_the_lock_and_nest_without_waiting_on_it(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    first, second = open_store(url), open_store(url)
    assert first._writer is not None and first._writer is second._writer
    lock = first._writer
    assert (tmp_path / "db.sqlite3-writer").exists()
    # A transaction inside another one of the same thread does not wait on the lock
    # (SQLite's busy timeout decides, as it did before the lock); a read-only nested
    # one gets through.
    with first.begin() as conn:
        conn.execute(text("SELECT 1"))
        with lock.hold():
            pass
    first.close()
    assert second._writer is lock and lock.users == 1  # still open for the other store
    second.add_subscriber("b@example.org", Profile(interests="x"), now=NOW)
    second.close()
    assert lock.users == 0
    third = open_store(url)
    assert third._writer is not lock  # a fresh lock once every store closed
    third.close()


def test_an_in_memory_database_has_no_writer_lock() -> None:
    memory = open_store("sqlite://")
    assert memory._writer is None
    memory.add_subscriber("c@example.org", Profile(interests="x"), now=NOW)
    memory.close()


def test_a_url_whose_driver_is_missing_names_the_install_from_the_checkout() -> None:
    # The hint said `pip install 'digest[postgres]'`: the project is installed from its
    # checkout, and that line asks a package index for another project's package.
    with pytest.raises(ConfigError) as caught:
        open_store("postgresql+nosuchdriver://u:p@127.0.0.1/db")
    assert "pip install -e '.[postgres]'" in caught.value.hint
    assert "digest[postgres]" not in caught.value.hint


def test_a_full_disk_is_named_with_what_to_do_and_the_next_run_recovers(
    tmp_path: Path,
) -> None:
    # SQLite cannot write (a full disk; here a child allowed no file past 64 KB, so the
    # database opens and the day's papers do not fit). The run stops with 75, as
    # before, but the hint sent the operator to DIGEST_DATABASE_URL and to other runs
    # holding a lock, and the next runs failed alike until someone looked at the disk.
    var = tmp_path / "var"
    store = open_store(f"sqlite:///{var}/digest.sqlite3")
    store.add_subscriber("a@example.org", Profile(interests="language models"),
                         now=datetime(2026, 5, 25, tzinfo=UTC), send_hour=0)
    store.close()
    env = child_env({"DIGEST_VAR_DIR": str(var), "DIGEST_SECRET_KEY": "s" * 32})
    command = [PYTHON, "-m", "digest", "--env-file", os.devnull, "run",
               "--date", "2026-05-25"]
    full = subprocess.run(command, env=env, capture_output=True, text=True,
                          preexec_fn=no_room_past(64 * 1024), check=False)
    assert full.returncode == 75, full.stderr
    assert "database error: disk I/O error" in full.stderr
    hint = full.stderr.partition("hint: ")[2]
    assert "free space on the disk that holds the database" in hint, hint
    assert "DIGEST_DATABASE_URL" not in hint and "locked" not in hint
    # With room again the next run files the papers and sends the digest, once.
    again = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert "sent 1," in again.stdout
