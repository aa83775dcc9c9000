"""The daily job where an audit found it wrong: several digests of one subscriber in
flight (after downtime, after an SMTP outage, of unknown outcome: one email where one is
due, no paper twice), a dry run of a past day, a killed run's unknown rows, Message-ID
and List-Id headers.

Real parts: the shipped sample batch (real arXiv papers) split into three days, a
SQLite file, delivery into a Maildir.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from digest import pipeline
from digest.config import SAMPLE_BATCH, Config, parse_sources
from digest.store import Store, open_store
from tests.fixtures.config import make_config
from tests.test_pipeline import PROFILES, maildir_messages

DAYS = [date(2026, 5, 24), date(2026, 5, 25), date(2026, 5, 26)]


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, 0, tzinfo=UTC)


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    """The sample batch dealt into three days of real papers."""
    lines = [line for line in SAMPLE_BATCH.read_text(encoding="utf-8").splitlines() if line]
    out = []
    for i in range(3):
        path = tmp_path / f"day{i}.jsonl"
        path.write_text("\n".join(lines[i::3]) + "\n", encoding="utf-8")
        out.append(path)
    return out


def sources(files: list[Path], upto: int) -> tuple[object, ...]:
    return parse_sources(",".join(f"jsonl:{f}" for f in files[: upto + 1]))


def setup(tmp_path: Path, files: list[Path], **overrides: object) -> tuple[Config, Store]:
    config = make_config(tmp_path / "var", sources=sources(files, 0), **overrides)
    store = open_store(config.database_url)
    for email, profile in PROFILES.items():
        store.add_subscriber(email, profile, now=at(DAYS[0], 5), send_hour=7, max_papers=8)
    # Day 0 goes out as usual.
    report = pipeline.run(config, now=at(DAYS[0], 9), store=store)
    assert report.sent == 3
    return config, store


def mailed(store: Store) -> dict[str, list[tuple[date, tuple[str, ...]]]]:
    """Per address: (day, papers) of every digest sent."""
    out: dict[str, list[tuple[date, tuple[str, ...]]]] = {}
    for row, email in store.list_deliveries(status="sent"):
        out.setdefault(email, []).append((row.day, row.paper_keys))
    return out


def assert_no_paper_twice(store: Store) -> None:
    for email, digests in mailed(store).items():
        keys = [k for _, papers in digests for k in papers]
        assert len(keys) == len(set(keys)), (email, digests)


def test_a_run_after_downtime_sends_one_digest_covering_the_missed_days(
    tmp_path: Path, files: list[Path]
) -> None:
    config, store = setup(tmp_path, files, grace_hours=48)
    # Down from day 0 evening to day 2 morning: day 1's papers came in, nothing ran.
    pipeline.ingest_sources(replace(config, sources=sources(files, 1)), store, day=DAYS[1],
                            now=at(DAYS[1], 1))
    config = replace(config, sources=sources(files, 2))
    report = pipeline.run(config, now=at(DAYS[2], 9), store=store)
    assert report.sent == 3
    by_address: dict[str, int] = {}
    for message in maildir_messages(config):
        to = message["To"].addresses[0].addr_spec
        by_address[to] = by_address.get(to, 0) + 1
    assert by_address == {email: 2 for email in PROFILES}  # day 0, then one more
    for email in PROFILES:
        sub = store.find_subscriber(email)
        assert sub is not None
        missed = store.get_delivery(sub.id, DAYS[1])
        assert missed is not None and missed.status == "skipped"
        assert missed.error == "merged into the digest of 2026-05-26"
        assert store.get_delivery(sub.id, DAYS[2]).status == "sent"  # type: ignore[union-attr]
    assert_no_paper_twice(store)
    # The one digest drew on both days' papers.
    days_of = {p.key: d for p, d in store.batch(DAYS[1], DAYS[2] + timedelta(days=1))}
    drawn = {days_of[k] for digests in mailed(store).values() for d, keys in digests
             if d == DAYS[2] for k in keys}
    assert len(drawn) == 2
    # Nothing is left to send, and the next run sends nothing.
    assert pipeline.send_pending(config, now=at(DAYS[2], 10), store=store).sent == 0
    assert pipeline.run(config, now=at(DAYS[2], 10), store=store).sent == 0


def test_a_digest_stranded_by_an_outage_is_superseded_not_sent_late(
    tmp_path: Path, files: list[Path]
) -> None:
    config, store = setup(tmp_path, files)  # the default grace: 18 hours
    config = replace(config, sources=sources(files, 1))
    # Day 1's digests are planned, but the SMTP server is down past the day's grace.
    pipeline.run(config, now=at(DAYS[1], 9), send=False, store=store)
    stranded = {email: store.get_delivery(store.find_subscriber(email).id, DAYS[1])  # type: ignore[union-attr]
                for email in PROFILES}
    assert {row.status for row in stranded.values() if row} == {"planned"}
    config = replace(config, sources=sources(files, 2))
    report = pipeline.run(config, now=at(DAYS[2], 9), store=store)
    assert report.sent == 3
    for email in PROFILES:
        sub = store.find_subscriber(email)
        assert sub is not None
        row = store.get_delivery(sub.id, DAYS[1])
        assert row is not None and row.status == "skipped"
        assert row.error is not None and row.error.startswith(
            "superseded by the digest of 2026-05-26")
    # A delivery worker started afterwards finds nothing stale to send.
    assert pipeline.send_pending(config, now=at(DAYS[2], 10), store=store).sent == 0
    assert len(maildir_messages(config)) == 6
    assert_no_paper_twice(store)
    # Day 2's digests may carry day 1's papers: nobody received them.
    days_of = {p.key: d for p, d in store.batch(DAYS[1], DAYS[2] + timedelta(days=1))}
    drawn = {days_of[k] for digests in mailed(store).values() for d, keys in digests
             if d == DAYS[2] for k in keys}
    assert DAYS[1] in drawn


def test_papers_of_a_digest_of_unknown_outcome_are_not_picked_again(
    tmp_path: Path, files: list[Path]
) -> None:
    config, store = setup(tmp_path, files)
    config = replace(config, sources=sources(files, 1))
    pipeline.run(config, now=at(DAYS[1], 9), send=False, store=store)
    unknown: dict[int, tuple[str, ...]] = {}
    for email in PROFILES:
        sub = store.find_subscriber(email)
        assert sub is not None
        # The connection dropped after DATA: the digest may have arrived.
        assert store.set_delivery_status(sub.id, DAYS[1], "unknown", now=at(DAYS[1], 9))
        unknown[sub.id] = store.get_delivery(sub.id, DAYS[1]).paper_keys  # type: ignore[union-attr]
    assert all(unknown.values())
    config = replace(config, sources=sources(files, 2))
    assert pipeline.run(config, now=at(DAYS[2], 9), store=store).sent == 3
    for sub_id, keys in unknown.items():
        row = store.get_delivery(sub_id, DAYS[2])
        assert row is not None and row.status == "sent" and row.paper_keys
        assert not set(keys) & set(row.paper_keys)
        assert store.get_delivery(sub_id, DAYS[1]).status == "unknown"  # type: ignore[union-attr]


def test_a_dry_run_for_a_past_day_fetches_nothing(tmp_path: Path, files: list[Path]) -> None:
    """`digest run --dry-run --date <yesterday>` in the night before today's run filed
    today's new papers under yesterday, outside every later window: today's run then
    sent nothing of them. A dry run of another day changes nothing now."""
    config, store = setup(tmp_path, files)
    config = replace(config, sources=sources(files, 1))
    stored = len(store.batch(DAYS[0] - timedelta(days=7), DAYS[1] + timedelta(days=7)))
    preview = pipeline.run(config, now=at(DAYS[1], 3), day=DAYS[0], dry_run=True, store=store)
    assert preview.sources == ()
    assert len(store.batch(DAYS[0] - timedelta(days=7), DAYS[1] + timedelta(days=7))) == stored
    report = pipeline.run(config, now=at(DAYS[1], 9), store=store)
    assert report.sent == 3
    new = {p.key for p, d in store.batch(DAYS[1], DAYS[1] + timedelta(days=1))}
    assert len(new) >= 70  # the second file's papers, under the day they came in
    for email in PROFILES:
        sub = store.find_subscriber(email)
        assert sub is not None
        row = store.get_delivery(sub.id, DAYS[1])
        assert row is not None and row.status == "sent" and set(row.paper_keys) <= new


def test_two_installations_mailing_from_one_domain_give_different_message_ids(
    tmp_path: Path, files: list[Path]
) -> None:
    """Subscriber 1's digest of a day had one Message-ID on every installation of a
    domain (a lab's two lists): receivers dropping duplicates could drop the second."""
    ids = []
    for name, secret in (("a", "first-installation-secret"), ("b", "second-install-secret")):
        config = make_config(tmp_path / name, sources=sources(files, 0), secret_key=secret)
        store = open_store(config.database_url)
        store.add_subscriber("ada@example.org", PROFILES["ada@example.org"],
                             now=at(DAYS[0], 5), send_hour=7)
        pipeline.run(config, now=at(DAYS[0], 9), store=store)
        (message,) = maildir_messages(config)
        row = store.get_delivery(1, DAYS[0])
        assert row is not None and row.message_id == str(message["Message-ID"])
        ids.append(row.message_id)
        store.close()
    assert ids[0] != ids[1]
    assert all(i.endswith("@example.org>") and i.startswith("<digest.1.2026-05-24.") for i in ids)


def test_a_digest_left_sending_by_a_killed_run_is_reported_by_the_next(
    tmp_path: Path, files: list[Path]
) -> None:
    """The rerun after a kill -9 mid-send turned the row into "unknown" and printed
    "unknown 0", exit 0: cron never heard that an operator's decision was waiting."""
    import socket

    from sqlalchemy import update

    from digest.cli.core import exit_code, summary
    from digest.store.tables import deliveries

    config, store = setup(tmp_path, files)
    config = replace(config, sources=sources(files, 1))
    pipeline.run(config, now=at(DAYS[1], 9), send=False, store=store)
    ada = store.find_subscriber("ada@example.org")
    assert ada is not None
    dead = f"{socket.gethostname()}:{2**22 + 12345}:1:0"  # a pid no process has
    with store.begin() as conn:
        conn.execute(update(deliveries)
                     .where(deliveries.c.subscriber_id == ada.id, deliveries.c.day == DAYS[1])
                     .values(status="sending", claimed_by=dead))
    report = pipeline.run(config, now=at(DAYS[1], 9, ) + timedelta(minutes=5), store=store)
    assert (report.sent, report.unknown) == (2, 1)
    assert store.get_delivery(ada.id, DAYS[1]).status == "unknown"  # type: ignore[union-attr]
    assert exit_code(report) == 1
    assert "digest deliveries list --status unknown" in summary(report)
    # Reported once: the next run has nothing new to say.
    again = pipeline.run(config, now=at(DAYS[1], 10), store=store)
    assert (again.sent, again.unknown, exit_code(again)) == (0, 0, 0)


def test_a_digests_list_id_names_the_list_as_the_confirmation_does(
    tmp_path: Path, files: list[Path]
) -> None:
    config, _ = setup(tmp_path, files)
    ids = {str(m["List-Id"]) for m in maildir_messages(config)}
    assert ids == {"Research Digest <digest.digest.example.org>"}


def test_papers_of_an_old_unknown_digest_outside_the_pool_change_nothing(
    tmp_path: Path, files: list[Path]
) -> None:
    """The taken papers were counted against the day's pool whether in it or not: an
    unknown digest of papers long gone made the window look used up, and no digest
    went out."""
    from sqlalchemy import update

    from digest.store.tables import deliveries

    config, store = setup(tmp_path, files)
    ada = store.find_subscriber("ada@example.org")
    assert ada is not None
    gone = [{"key": f"arxiv:2001.{n:05d}", "score": 0.5, "reason": ""} for n in range(400)]
    with store.begin() as conn:
        conn.execute(update(deliveries)
                     .where(deliveries.c.subscriber_id == ada.id, deliveries.c.day == DAYS[0])
                     .values(status="unknown", papers=gone))
    config = replace(config, sources=sources(files, 1))
    report = pipeline.run(config, now=at(DAYS[1], 9), store=store)
    assert report.sent == 3
    row = store.get_delivery(ada.id, DAYS[1])
    assert row is not None and row.status == "sent" and row.paper_keys
