"""The store on a real PostgreSQL schema: what test_store.py checks on SQLite, and the dialect.

Each test gets an empty schema (tests/fixtures/config.py); skipped only when
DIGEST_TEST_POSTGRES_URL is unset (`.ci/run` starts a server and sets it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, inspect, text

from digest.errors import SchemaError, UsageError
from digest.models import Paper, Profile, SourceResult
from digest.store import SCHEMA_VERSION, Store, open_store
from tests.fixtures.config import fresh_postgres_url

NOW = datetime(2026, 5, 25, 6, 0, tzinfo=UTC)
DAY = date(2026, 5, 25)


def paper(key: str, **kw: object) -> Paper:
    return Paper(key=key, title=kw.pop("title", f"Title {key}"), **kw)  # type: ignore[arg-type]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return fresh_postgres_url(f"store-postgres:{tmp_path}")


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    db = open_store(url)
    yield db
    db.close()


def test_the_url_selects_postgresql(store: Store) -> None:
    assert store.engine.dialect.name == "postgresql" and not store.is_sqlite


def test_schema_is_created_once_and_version_checked(url: str) -> None:
    store = open_store(url)
    assert store.schema_version() == SCHEMA_VERSION
    store.create()  # safe to repeat
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value='999' WHERE key='schema_version'"))
    store.close()
    with pytest.raises(SchemaError) as err:
        open_store(url)
    assert "999" in err.value.message and err.value.hint


def test_a_database_made_before_the_ledger_leases_gets_them(url: str) -> None:
    # The leases came within schema version 1; opening such a database added only
    # missing tables, and every run failed on the missing column (exit 75, for good).
    store = open_store(url)
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE deliveries DROP COLUMN claimed_by"))
        conn.execute(text("ALTER TABLE deliveries DROP COLUMN claimed_until"))
    store.add_subscriber("a@example.org", Profile(interests="x"), now=NOW)
    store.close()
    store = open_store(url)
    try:
        store.plan_delivery(1, DAY, picks=[("arxiv:1", 1.0, "")], message_id="<m@x>", now=NOW)
        [row] = store.claim_deliveries("w", now=NOW, lease=timedelta(minutes=5), limit=10,
                                       max_attempts=5)
        assert row.subscriber_id == 1
        with store.engine.connect() as conn:
            found = {c["name"] for c in inspect(conn).get_columns("deliveries")}
        assert {"claimed_by", "claimed_until"} <= found
    finally:
        store.close()


def test_empty_database_without_create_says_run_init(url: str) -> None:
    with pytest.raises(SchemaError, match="no digest schema") as err:
        open_store(url, create=False)
    assert "digest init" in err.value.hint


def test_known_paper_keeps_its_batch_day_and_merges_json_fields(store: Store) -> None:
    first = paper("arxiv:2401.00001", categories=("cs.CL",), authors=("Ada",), abstract="short")
    assert store.save_papers([first], batch_day=DAY, now=NOW) == (1, 0)
    later = paper(
        "arxiv:2401.00001", categories=("cs.LG",), abstract="a longer abstract", upvotes=12,
        version=2, ai_keywords=("agents", "ünïcode"),
    )
    assert store.save_papers([later], batch_day=date(2026, 5, 26), now=NOW) == (0, 1)
    rows = store.batch(DAY, date(2026, 5, 26))
    assert [(p.key, d) for p, d in rows] == [("arxiv:2401.00001", DAY)]
    merged = rows[0][0]
    assert merged.categories == ("cs.CL", "cs.LG") and merged.authors == ("Ada",)
    assert merged.ai_keywords == ("agents", "ünïcode")
    assert merged.upvotes == 12 and merged.version == 2


def test_datetimes_come_back_aware_and_in_utc(store: Store) -> None:
    berlin = datetime(2026, 5, 25, 10, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    sub = store.add_subscriber("tz@example.org", Profile(interests="x"), now=berlin)
    assert sub.created_at == berlin and sub.created_at is not None
    assert sub.created_at.tzinfo == UTC and sub.created_at.hour == 8


def test_one_ledger_row_per_subscriber_and_day(store: Store) -> None:
    sub = store.add_subscriber("A@Example.org", Profile(interests="x"), now=NOW)
    picks = [("arxiv:1", 0.5, "matched: agents")]
    assert store.plan_delivery(sub.id, DAY, picks=picks, message_id="<m>", now=NOW)
    assert not store.plan_delivery(sub.id, DAY, picks=[], message_id="<n>", now=NOW)
    # The batch insert leaves an existing row alone too.
    assert store.plan_deliveries([(sub.id, DAY, [], "<o>", "planned")], now=NOW) == 0
    planned = store.get_delivery(sub.id, DAY)
    assert planned is not None and planned.picks == tuple(picks) and planned.message_id == "<m>"
    assert store.set_delivery_status(sub.id, DAY, "sending", now=NOW, attempt=True,
                                     expect=("planned",))
    assert not store.set_delivery_status(sub.id, DAY, "sending", now=NOW, expect=("planned",))
    assert store.set_delivery_status(sub.id, DAY, "sent", now=NOW)
    assert store.set_delivery_status(sub.id, DAY, "sent", now=NOW)  # sent papers: no conflict
    assert store.sent_keys([sub.id], ["arxiv:1", "arxiv:2"]) == {sub.id: {"arxiv:1"}}
    row = store.get_delivery(sub.id, DAY)
    assert row is not None and row.status == "sent" and row.attempts == 1


def test_stale_sending_rows_become_unknown(store: Store) -> None:
    sub = store.add_subscriber("b@example.org", Profile(interests="x"), now=NOW)
    store.plan_delivery(sub.id, DAY, picks=[], message_id="<m>", now=NOW)
    store.set_delivery_status(sub.id, DAY, "sending", now=NOW)
    assert store.mark_stale_sending(now=NOW) == 1
    row = store.get_delivery(sub.id, DAY)
    assert row is not None and row.status == "unknown"


def test_duplicate_subscriber_is_a_usage_error(store: Store) -> None:
    store.add_subscriber("c@example.org", Profile(interests="x"), now=NOW)
    with pytest.raises(UsageError, match="already subscribed"):
        store.add_subscriber("C@example.org", Profile(interests="y"), now=NOW)


def test_a_deleted_subscribers_id_is_never_reused(store: Store) -> None:
    first = store.add_subscriber("old@example.org", Profile(interests="x"), now=NOW)
    store.remove_subscriber(first.id, now=NOW, reason="deleted")
    second = store.add_subscriber("new@example.org", Profile(interests="x"), now=NOW)
    assert second.id > first.id


def test_removed_subscriber_leaves_only_a_hashed_suppression(store: Store) -> None:
    sub = store.add_subscriber("d@example.org", Profile(interests="x"), now=NOW)
    store.record_vote(sub.id, "arxiv:1", 1, now=NOW)
    store.plan_delivery(sub.id, DAY, picks=[], message_id="<m>", now=NOW)
    store.remove_subscriber(sub.id, now=NOW, reason="deleted")
    store.suppress("d@example.org", reason="again", now=NOW)  # idempotent
    assert store.find_subscriber("d@example.org") is None
    assert store.is_suppressed("D@example.org")
    with store.engine.connect() as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        ).scalars().all()
        dumped = "\n".join(
            str(row) for table in tables for row in conn.execute(text(f"SELECT * FROM {table}"))
        )
    assert "d@example.org" not in dumped


def test_latest_vote_wins(store: Store) -> None:
    sub = store.add_subscriber("e@example.org", Profile(interests="x"), now=NOW)
    store.record_vote(sub.id, "arxiv:1", 1, now=NOW)
    store.record_vote(sub.id, "arxiv:1", -1, now=NOW)
    assert store.votes() == {sub.id: {"arxiv:1": -1}}


def test_ranker_state_bytes_round_trip(store: Store) -> None:
    blob = bytes(range(256)) * 4
    store.save_ranker_state(blob, now=NOW)
    store.save_ranker_state(blob[::-1], now=NOW)
    assert store.load_ranker_state() == blob[::-1]


def test_a_claim_skips_rows_another_worker_has_locked(store: Store) -> None:
    ids = [
        store.add_subscriber(f"s{n}@example.org", Profile(interests="x"), now=NOW).id
        for n in range(6)
    ]
    store.plan_deliveries([(i, DAY, [], f"<{i}>", "planned") for i in ids], now=NOW)
    with store.engine.connect() as other:
        # Another worker is between its SELECT ... FOR UPDATE and its UPDATE on 3 rows.
        other.execute(text("SELECT id FROM deliveries ORDER BY id LIMIT 3 FOR UPDATE")).all()
        claimed = store.claim_deliveries(
            "w1", now=NOW, lease=timedelta(minutes=1), limit=10, max_attempts=5
        )
        other.rollback()
    assert sorted(row.subscriber_id for row in claimed) == ids[3:]
    again = store.claim_deliveries(
        "w2", now=NOW, lease=timedelta(minutes=1), limit=10, max_attempts=5
    )
    assert sorted(row.subscriber_id for row in again) == ids[:3]
    assert store.release_claims("w2") == 3


def test_papers_are_found_by_their_lowered_title_through_an_index(store: Store) -> None:
    store.save_papers([paper("arxiv:1", title="Attention Is All You Need",
                             authors=("Ashish Vaswani",)),
                       paper("arxiv:2", title="Deep Residual Learning"),
                       paper("arxiv:3", title="ATTENTION IS ALL YOU NEED",
                             authors=("Ana Ruiz",))],  # another paper: other authors
                      batch_day=DAY, now=NOW)
    found = store.keys_titled(["attention is all you need", "no such title"])
    assert sorted(found) == ["arxiv:1", "arxiv:3"]
    with store.engine.connect() as conn:
        definition = conn.execute(text(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_papers_title_lower'"
        )).scalar()
    assert definition is not None and "lower(title)" in definition


def test_a_paper_filed_by_a_racing_save_is_merged_not_an_error(url: str) -> None:
    # A manual `digest ingest` beside a cron run over the same feed: the other process
    # files arxiv:2 after this save has read it as new and before it inserts it. The
    # save failed on the primary key (nothing of the feed filed); now it reads again
    # and merges its copy into the paper the other one filed.
    store, racer = open_store(url), open_store(url)
    raced: list[str] = []

    def file_it_first(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith("INSERT INTO papers") and not raced:
            raced.append(statement)
            racer.save_papers([paper("arxiv:2", categories=("cs.CL",))],
                              batch_day=DAY, now=NOW)

    event.listen(store.engine, "before_cursor_execute", file_it_first)
    try:
        later = date(2026, 5, 26)
        saved = store.save_papers(
            [paper("arxiv:1"), paper("arxiv:2", categories=("cs.LG",), upvotes=4)],
            batch_day=later, now=NOW)
    finally:
        event.remove(store.engine, "before_cursor_execute", file_it_first)
    assert raced, "the racing save never ran"
    assert saved == (1, 1)
    rows = {p.key: (p, day) for p, day in store.batch(DAY, later)}
    assert sorted(rows) == ["arxiv:1", "arxiv:2"]
    merged, day = rows["arxiv:2"]
    assert day == DAY  # the racer filed it first: its batch day stands
    assert merged.categories == ("cs.CL", "cs.LG") and merged.upvotes == 4
    assert rows["arxiv:1"][1] == later
    store.close()
    racer.close()


def race_before(store: Store, prefix: str, racer: Callable[[], object]) -> list[str]:
    """Run ``racer`` (another store's commit) once, just before ``store`` runs an
    SQL statement that starts with ``prefix``; return the statements it ran before."""
    raced: list[str] = []

    def first(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith(prefix) and not raced:
            raced.append(statement)
            racer()

    event.listen(store.engine, "before_cursor_execute", first)
    return raced


def test_two_votes_on_one_paper_at_once_both_count_the_later_winning(url: str) -> None:
    # The same thumbs form sent twice at once (a double click, two tabs): each request
    # deleted the earlier vote (none), then inserted; on PostgreSQL the second insert
    # failed on the primary key, and the web page answered 500.
    store, racer = open_store(url), open_store(url)
    sub = store.add_subscriber("v@example.org", Profile(interests="x"), now=NOW)
    raced = race_before(store, "INSERT INTO feedback",
                        lambda: racer.record_vote(sub.id, "arxiv:1", -1, now=NOW))
    store.record_vote(sub.id, "arxiv:1", 1, now=NOW + timedelta(seconds=1))
    assert raced, "the racing vote never ran"
    assert store.votes() == {sub.id: {"arxiv:1": 1}}
    store.close()
    racer.close()


def test_a_new_source_recorded_by_two_runs_at_once_is_one_row(url: str) -> None:
    # A manual `digest ingest` beside the cron run, both reading a source added since
    # the last run: each found no health row and inserted one; on PostgreSQL the second
    # run stopped on the primary key after filing the source's papers.
    store, racer = open_store(url), open_store(url)
    raced = race_before(store, "INSERT INTO source_state", lambda: racer.record_source(
        SourceResult("rss:new", "error", error="timed out"), now=NOW))
    store.record_source(SourceResult("rss:new", "ok"), now=NOW + timedelta(seconds=1))
    assert raced, "the racing run never recorded the source"
    [health] = store.source_health()
    assert health["source"] == "rss:new" and health["status"] == "ok"
    assert health["last_ok_at"] == (NOW + timedelta(seconds=1)).isoformat()
    store.close()
    racer.close()


def test_the_ranker_state_saved_by_two_planners_at_once_is_one_row(url: str) -> None:
    # Two planners on a first day (README: "planning twice is harmless"): each deleted
    # the state (none yet) and inserted its own; on PostgreSQL the second stopped on
    # the primary key before planning anything.
    store, racer = open_store(url), open_store(url)
    raced = race_before(store, "INSERT INTO ranker_state",
                        lambda: racer.save_ranker_state(b"theirs", now=NOW))
    store.save_ranker_state(b"mine", now=NOW)
    assert raced, "the racing planner never saved"
    assert store.load_ranker_state() == b"mine"
    store.close()
    racer.close()


def test_a_bounce_whose_report_holds_a_nul_character_is_recorded(store: Store) -> None:
    # A failure report is a stranger's server's text: its diagnostic may hold a NUL,
    # which PostgreSQL refuses in text ("cannot contain NUL"), and the mailbox scan
    # stopped at that report, every later one unread.
    assert store.record_bounce(
        "x@example.org", kind="hard", status="5.1.1", action="failed",
        diagnostic="550 5.1.1 no such user\x00\x00", report_id="<r1\x00@mx>",
        source="imap\x00", at=NOW, now=NOW,
    )
    [row] = store.list_bounces()
    assert row["diagnostic"] == "550 5.1.1 no such user" and row["source"] == "imap"
    assert not store.record_bounce(  # the same report again: recorded once
        "x@example.org", kind="hard", status="5.1.1", action="failed",
        diagnostic="550 5.1.1 no such user\x00\x00", report_id="<r1\x00@mx>",
        source="imap\x00", at=NOW, now=NOW,
    )


def test_the_test_sandbox_drops_its_database_with_a_session_still_in_it() -> None:
    """The suite's cleanup: a connection a test left open does not keep the database."""
    from tests.fixtures.config import PostgresSandbox, postgres_url

    admin = postgres_url()
    if admin is None:
        pytest.skip("DIGEST_TEST_POSTGRES_URL is not set (make test sets it up)")
    sandbox = PostgresSandbox(admin)
    # A name the start-of-run sweep also drops if this test dies: digest_test_..._<pid>.
    sandbox.name = sandbox.name.replace("digest_test_", "digest_test_drop_")
    sandbox.url = sandbox.admin.set(database=sandbox.name)
    left_open = open_store(sandbox.schema_url("left-open"))
    left_open.save_papers([paper("2501.00001")], batch_day=DAY, now=NOW)  # a pooled session
    sandbox.drop()
    with sandbox._connect() as conn:
        names = conn.execute(
            "SELECT datname FROM pg_database WHERE datname = %s", (sandbox.name,)
        ).fetchall()
    assert names == []
    left_open.close()
