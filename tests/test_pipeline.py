"""The whole daily job on real parts: SQLite file, sample batch, Maildir or aiosmtpd."""

from __future__ import annotations

import json
import mailbox
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from digest import mail, pipeline
from digest.addresses import normalize_email
from digest.config import SAMPLE_BATCH, Config, parse_sources
from digest.errors import LockedError
from digest.locking import run_lock
from digest.models import Profile, RunReport
from digest.store import Store, open_store
from tests.fixtures.config import make_config

DAY1 = date(2026, 5, 25)
DAY2 = date(2026, 5, 26)
NOW1 = datetime(2026, 5, 25, 9, 0, tzinfo=UTC)
NOW2 = datetime(2026, 5, 26, 9, 0, tzinfo=UTC)

PROFILES = {
    "ada@example.org": Profile(
        interests="LLM agents that use tools, plan and reflect; agent memory and skills",
        keywords=("agent", "tool"),
    ),
    "grace@example.org": Profile(
        interests="image and video generation with diffusion models, 3D reconstruction",
        keywords=("diffusion", "video"),
    ),
    "claude@example.org": Profile(
        interests="coding theory, channel capacity, wireless communication",
        keywords=("codes", "channel"),
    ),
}


def split_sample(folder: Path) -> tuple[Path, Path]:
    """Split the shipped sample batch into two "days" of real papers."""
    lines = SAMPLE_BATCH.read_text(encoding="utf-8").splitlines()
    first, second = folder / "day1.jsonl", folder / "day2.jsonl"
    first.write_text("\n".join(lines[::2]) + "\n", encoding="utf-8")
    second.write_text("\n".join(lines[1::2]) + "\n", encoding="utf-8")
    return first, second


def subscribe_all(config: Config, **kw: Any) -> dict[str, int]:
    store = open_store(config.database_url)
    ids = {}
    for email, profile in PROFILES.items():
        ids[email] = store.add_subscriber(
            email, profile, now=NOW1, send_hour=7, max_papers=5, **kw
        ).id
    store.close()
    return ids


def maildir_messages(config: Config) -> list[Any]:
    box = mailbox.Maildir(str(config.maildir), create=False)
    return [BytesParser(policy=policy.default).parsebytes(box.get_bytes(k)) for k in box.keys()]  # noqa: SIM118 (Maildir is not a dict)


@pytest.fixture
def two_days(tmp_path: Path) -> tuple[Config, Path, Path]:
    day1, day2 = split_sample(tmp_path)
    config = make_config(tmp_path / "var", sources=parse_sources(f"jsonl:{day1}"))
    return config, day1, day2


def test_run_delivers_one_standard_message_per_subscriber_into_the_maildir(
    two_days: tuple[Config, Path, Path],
) -> None:
    config, _, _ = two_days
    subscribe_all(config)
    report = pipeline.run(config, now=NOW1, day=DAY1)
    assert (report.sent, report.failed, report.skipped) == (3, 0, 0)
    assert report.sources[0].status == "ok" and report.sources[0].new == 107
    messages = maildir_messages(config)
    assert sorted(m["To"].addresses[0].addr_spec for m in messages) == sorted(PROFILES)
    titles_by_person = {}
    for message in messages:
        assert message.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in message.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        for header in (
            "Date",
            "Message-ID",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
            "List-Id",
        ):
            assert message[header], header
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "https://digest.example.org/unsubscribe/" in message["List-Unsubscribe"]
        text = message.get_body(("plain",)).get_content()
        titles_by_person[str(message["To"].addresses[0].addr_spec)] = text
    # Different profiles get different papers: the agent person reads about agents,
    # the coding-theory person about codes and channels.
    assert "agent" in titles_by_person["ada@example.org"].lower()
    assert "channel" in titles_by_person["claude@example.org"].lower()
    assert titles_by_person["ada@example.org"] != titles_by_person["claude@example.org"]
    # HTML previews sit beside the Maildir.
    assert len(list((config.preview_dir / DAY1.isoformat()).glob("*.html"))) == 3


def test_second_run_the_same_day_sends_nothing(two_days: tuple[Config, Path, Path]) -> None:
    config, _, _ = two_days
    subscribe_all(config)
    assert pipeline.run(config, now=NOW1, day=DAY1).sent == 3
    again = pipeline.run(config, now=NOW1 + timedelta(minutes=5), day=DAY1)
    assert again.sent == 0 and again.skipped == 3
    assert len(maildir_messages(config)) == 3
    # Without --date, the hourly path agrees: today's digest is already done.
    hourly = pipeline.run(config, now=NOW1 + timedelta(hours=1))
    assert hourly.sent == 0
    assert len(maildir_messages(config)) == 3


def test_a_paper_never_reaches_the_same_subscriber_twice(
    two_days: tuple[Config, Path, Path],
) -> None:
    config, day1, day2 = two_days
    subscribe_all(config)
    pipeline.run(config, now=NOW1, day=DAY1)
    # Day 2's feed repeats day 1's papers and adds new ones (as a combined feed would).
    both = config.var_dir.parent / "both.jsonl"
    both.write_text(day1.read_text() + day2.read_text())
    config2 = replace(config, sources=parse_sources(f"jsonl:{both}"))
    report = pipeline.run(config2, now=NOW2, day=DAY2)
    assert report.sent == 3
    assert report.sources[0].new == 106
    store = open_store(config.database_url)
    for sub in store.list_subscribers():
        first = store.get_delivery(sub.id, DAY1)
        second = store.get_delivery(sub.id, DAY2)
        assert first and second and first.paper_keys and second.paper_keys
        assert not set(first.paper_keys) & set(second.paper_keys)
        day2_keys = {p.key for p, d in store.batch(DAY2, DAY2)}
        assert set(second.paper_keys) <= day2_keys


def test_smtp_delivery_reuses_one_connection(
    two_days: tuple[Config, Path, Path], smtp_server: Any
) -> None:
    config, _, _ = two_days
    config = replace(config, smtp=smtp_server.settings())
    subscribe_all(config)
    report = pipeline.run(config, now=NOW1, day=DAY1)
    assert report.sent == 3
    assert smtp_server.connections == 1
    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == sorted(PROFILES)
    store = open_store(config.database_url)
    assert store.delivery_counts(DAY1) == {"sent": 3}


def run_with_grace_refused(
    two_days: tuple[Config, Path, Path], smtp_server: Any
) -> tuple[Config, RunReport]:
    """Run day 1 over SMTP with grace's address refused at RCPT (550 5.1.1)."""
    config, _, _ = two_days
    config = replace(config, smtp=smtp_server.settings())
    subscribe_all(config)
    smtp_server.fail("rcpt", "550 5.1.1 No such user", recipient="grace@example.org")
    report = pipeline.run(config, now=NOW1, day=DAY1)
    assert (report.sent, report.failed) == (2, 1)
    return config, report


def test_permanent_rejection_is_recorded_and_the_others_still_go_out(
    two_days: tuple[Config, Path, Path], smtp_server: Any
) -> None:
    config, _ = run_with_grace_refused(two_days, smtp_server)
    store = open_store(config.database_url)
    grace = store.find_subscriber("grace@example.org")
    assert grace is not None
    row = store.get_delivery(grace.id, DAY1)
    assert row is not None and row.status == "perm_failed" and "550" in (row.error or "")
    # A rerun does not retry a permanent failure.
    assert pipeline.run(config, now=NOW1 + timedelta(hours=1), day=DAY1).sent == 0


def test_a_report_lists_every_failure_and_only_the_first_routine_outcomes(
    two_days: tuple[Config, Path, Path], smtp_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run of 100,000 digests held a Delivery for each until it ended (~120 MB); the
    # report lists the first ROUTINE_LISTED sent/skipped/planned ones and counts the rest.
    monkeypatch.setattr("digest.pipeline.sending.ROUTINE_LISTED", 1)
    config, report = run_with_grace_refused(two_days, smtp_server)
    assert sorted(d.status for d in report.deliveries) == ["perm_failed", "sent"]
    assert report.deliveries_omitted == 1
    data = report.to_dict()
    assert data["deliveries_omitted"] == 1 and len(data["deliveries"]) == 2
    # The ledger still holds every outcome, and the stored report the failure.
    store = open_store(config.database_url)
    assert store.delivery_counts(DAY1) == {"sent": 2, "perm_failed": 1}
    [stored] = store.recent_runs(1)
    assert [d["status"] for d in stored["deliveries"]] == ["perm_failed"]


def test_temporary_failure_is_retried_by_a_later_run(
    two_days: tuple[Config, Path, Path], smtp_server: Any
) -> None:
    config, _, _ = two_days
    config = replace(config, smtp=smtp_server.settings())
    subscribe_all(config)
    smtp_server.fail("rcpt", "451 4.7.1 Greylisted", recipient="ada@example.org")
    report = pipeline.run(config, now=NOW1, day=DAY1)
    assert (report.sent, report.failed) == (2, 1)
    store = open_store(config.database_url)
    ada = store.find_subscriber("ada@example.org")
    assert ada is not None
    row = store.get_delivery(ada.id, DAY1)
    assert row is not None and row.status == "temp_failed"
    # Too early: the backoff has not passed.
    assert pipeline.run(config, now=NOW1 + timedelta(minutes=1), day=DAY1).sent == 0
    later = pipeline.run(config, now=NOW1 + timedelta(minutes=10), day=DAY1)
    assert later.sent == 1
    retried = store.get_delivery(ada.id, DAY1)
    assert retried is not None and retried.status == "sent" and retried.attempts == 2
    assert retried.paper_keys == row.paper_keys  # the same digest, not a re-ranked one
    assert len(smtp_server.by_recipient("ada@example.org")) == 1


def test_connection_dropped_after_data_is_unknown_and_never_resent(
    two_days: tuple[Config, Path, Path], smtp_server: Any
) -> None:
    config, _, _ = two_days
    config = replace(config, smtp=smtp_server.settings())
    ids = subscribe_all(config)
    smtp_server.fail("data", action="drop")
    report = pipeline.run(config, now=NOW1, day=DAY1)
    assert report.unknown == 1 and report.sent == 2
    store = open_store(config.database_url)
    unknown = [d for d, _ in store.list_deliveries(status="unknown")]
    assert len(unknown) == 1 and unknown[0].subscriber_id in ids.values()
    assert pipeline.run(config, now=NOW1 + timedelta(hours=2), day=DAY1).sent == 0


def test_authentication_failure_stops_the_run_and_loses_nothing(
    two_days: tuple[Config, Path, Path], make_smtp_server: Callable[..., Any]
) -> None:
    config, _, _ = two_days
    server = make_smtp_server(auth=("digest", "right"))
    bad = replace(config, smtp=server.settings(username="digest", password="wrong"))
    subscribe_all(config)
    report = pipeline.run(bad, now=NOW1, day=DAY1)
    assert report.aborted and "auth" in report.aborted.lower()
    assert report.abort_exit == 78 and report.sent == 0
    assert server.messages == []
    good = replace(config, smtp=server.settings(username="digest", password="right"))
    assert pipeline.run(good, now=NOW1 + timedelta(minutes=1), day=DAY1).sent == 3


def test_dead_server_stops_the_run_at_once_and_spends_nothing(
    two_days: tuple[Config, Path, Path],
) -> None:
    config, _, _ = two_days
    from tests.fixtures.config import smtp_settings

    config = replace(config, smtp=smtp_settings("127.0.0.1", 1, timeout=2), error_budget=2)
    subscribe_all(config)
    report = pipeline.run(config, now=NOW1, day=DAY1)
    assert report.sent == 0 and report.failed == 0
    assert report.aborted and "could not be reached" in report.aborted
    assert report.abort_exit == 75
    store = open_store(config.database_url)
    # Nothing was attempted as far as the rows go: a later run (once the server is
    # back) sends them all.
    assert store.delivery_counts(DAY1) == {"planned": 3}


def test_a_second_concurrent_run_is_refused(two_days: tuple[Config, Path, Path]) -> None:
    config, _, _ = two_days
    subscribe_all(config)
    with run_lock(config.lock_path), pytest.raises(LockedError):
        pipeline.run(config, now=NOW1, day=DAY1)
    assert pipeline.run(config, now=NOW1, day=DAY1).sent == 3


def test_a_run_that_waited_for_the_lock_sends_what_came_due_while_it_waited(
    two_days: tuple[Config, Path, Path],
) -> None:
    # `digest run --wait` at 06:50, while the 06:05 run is still sending: it gets the
    # lock at 07:10. It used to plan for 06:50, so the 07:00 digests were not due in it,
    # and the 08:05 firing, finding the lock taken by it, skipped too.
    config, _, _ = two_days
    subscribe_all(config)  # 07:00 UTC, since 09:00 on DAY1
    asked = datetime(2026, 5, 26, 6, 50, tzinfo=UTC)
    got_lock = datetime(2026, 5, 26, 7, 10, tzinfo=UTC)
    reports: list[RunReport] = []
    with run_lock(config.lock_path):
        waiting = threading.Thread(target=lambda: reports.append(pipeline.run(
            config, now=asked, clock=lambda: got_lock, wait_for_lock=True)))
        waiting.start()
        waiting.join(0.5)
        assert waiting.is_alive()  # blocked on the lock
    waiting.join(60)
    [report] = reports
    assert (report.sent, report.not_due) == (3, 0)
    assert report.started_at == got_lock


def test_only_active_unsuppressed_subscribers_get_mail(two_days: tuple[Config, Path, Path]) -> None:
    config, _, _ = two_days
    ids = subscribe_all(config)
    store = open_store(config.database_url)
    store.update_subscriber(ids["ada@example.org"], now=NOW1, status="unsubscribed")
    store.add_subscriber(
        "pending@example.org", Profile(interests="agents"), now=NOW1, status="pending"
    )
    store.suppress("grace@example.org", reason="bounced", now=NOW1)
    report = pipeline.run(config, now=NOW1, day=DAY1)
    assert report.sent == 1
    assert [str(m["To"].addresses[0].addr_spec) for m in maildir_messages(config)] == [
        "claude@example.org"
    ]


def test_dry_run_writes_previews_and_touches_no_ledger(
    two_days: tuple[Config, Path, Path],
) -> None:
    config, _, _ = two_days
    subscribe_all(config)
    report = pipeline.run(config, now=NOW1, day=DAY1, dry_run=True)
    assert report.sent == 0 and len(report.deliveries) == 3
    assert all(d.status == "planned" and d.paper_keys for d in report.deliveries)
    assert not config.maildir.exists() or maildir_messages(config) == []
    store = open_store(config.database_url)
    assert store.delivery_counts() == {}
    assert len(list(config.preview_dir.rglob("*.html"))) == 3


def test_hourly_runs_send_at_each_subscribers_local_hour(
    two_days: tuple[Config, Path, Path],
) -> None:
    config, _, _ = two_days
    store = open_store(config.database_url)
    now = datetime(2026, 5, 24, 20, 5, tzinfo=UTC)
    store.add_subscriber(
        "tokyo@example.org",
        PROFILES["ada@example.org"],
        now=now,
        send_hour=8,
        timezone="Asia/Tokyo",
    )
    store.add_subscriber(
        "berlin@example.org",
        PROFILES["ada@example.org"],
        now=now,
        send_hour=8,
        timezone="Europe/Berlin",
    )
    sent_at: dict[str, datetime] = {}
    for _ in range(14):
        report = pipeline.run(config, now=now)
        for d in report.deliveries:
            if d.status == "sent":
                sub = store.get_subscriber(d.subscriber_id)
                assert sub is not None and sub.email not in sent_at
                sent_at[sub.email] = now
        now += timedelta(hours=1)
    # 08:00 in Tokyo is 23:00 UTC the day before; 08:00 in Berlin (CEST) is 06:00 UTC.
    assert sent_at["tokyo@example.org"] == datetime(2026, 5, 24, 23, 5, tzinfo=UTC)
    assert sent_at["berlin@example.org"] == datetime(2026, 5, 25, 6, 5, tzinfo=UTC)


def test_a_new_subscriber_is_not_sent_a_late_digest_for_a_day_before_they_joined(
    two_days: tuple[Config, Path, Path],
) -> None:
    config, _, _ = two_days
    store = open_store(config.database_url)
    store.add_subscriber("late@example.org", PROFILES["ada@example.org"], now=NOW1, send_hour=7)
    assert pipeline.run(config, now=NOW1 + timedelta(hours=1)).sent == 0
    assert pipeline.run(config, now=NOW2 - timedelta(hours=1, minutes=30)).sent == 1


def test_report_json_has_the_counts_cron_reads(two_days: tuple[Config, Path, Path]) -> None:
    config, _, _ = two_days
    subscribe_all(config)
    data = pipeline.run(config, now=NOW1, day=DAY1).to_dict()
    assert {"sent", "skipped", "failed", "sources", "deliveries"} <= set(data)
    assert json.loads(json.dumps(data))["sent"] == 3
    assert "secret" not in json.dumps(data).lower()


def test_message_ids_are_stable_per_subscriber_and_day() -> None:
    a = mail.make_message_id(7, DAY1, "example.org")
    assert a == mail.make_message_id(7, DAY1, "example.org")
    assert a != mail.make_message_id(7, DAY2, "example.org")
    assert a != mail.make_message_id(8, DAY1, "example.org")


def test_a_run_reads_subscribers_a_page_at_a_time_and_sends_each_once(
    two_days: tuple[Config, Path, Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A page of 2: the run holds two subscribers at a time. Five subscribers (one
    # unsubscribed in the middle) still get exactly one digest each, a repeat sends
    # nothing, and the lists read were pages.
    config, _, _ = two_days
    config = replace(config, rank_page=2)
    ids = subscribe_all(config)
    store = open_store(config.database_url)
    extra = [store.add_subscriber(f"reader{i}@example.org", PROFILES["ada@example.org"],
                                  now=NOW1, send_hour=7, max_papers=5).id for i in range(2)]
    store.update_subscriber(ids["grace@example.org"], now=NOW1, status="unsubscribed")
    pages: list[int] = []
    listing = store.list_subscribers

    def record(*args: Any, **kw: Any) -> Any:
        found = listing(*args, **kw)
        pages.append(len(found))
        return found

    monkeypatch.setattr(store, "list_subscribers", record)
    report = pipeline.run(config, now=NOW1, day=DAY1, store=store)
    assert report.sent == 4 and report.failed == 0
    assert pages == [2, 2, 0]  # 4 active subscribers: two full pages, then an empty one
    sent_to = sorted(str(m["To"].addresses[0].addr_spec) for m in maildir_messages(config))
    assert sent_to == sorted(["ada@example.org", "claude@example.org",
                              "reader0@example.org", "reader1@example.org"])
    again = pipeline.run(config, now=NOW1 + timedelta(minutes=5), day=DAY1, store=store)
    assert (again.sent, again.skipped) == (0, 4)
    assert len(maildir_messages(config)) == 4
    assert {d.subscriber_id for d in store.deliveries_for_day(DAY1).values()} == {
        ids["ada@example.org"], ids["claude@example.org"], *extra}
    # The ledger of one page: only the ids in its range.
    low = store.deliveries_for_day(DAY1, subscriber_ids=(extra[0], extra[1]))
    assert set(low) == set(extra)
    store.close()


def test_an_address_the_mailer_cannot_write_fails_its_row_and_the_others_go_out(
    two_days: tuple[Config, Path, Path],
) -> None:
    # Stored before addresses were checked as they are now: a non-ASCII local part
    # (SMTPUTF8, which this mailer does not speak). Its digest cannot be built; its row
    # fails with what to do, the others are sent, and a rerun does not try it again.
    config, _, _ = two_days
    subscribe_all(config)
    store = open_store(config.database_url)
    odd = store.add_subscriber("jörg@example.org", PROFILES["ada@example.org"], now=NOW1,
                               send_hour=7, max_papers=5).id
    report = pipeline.run(config, now=NOW1, day=DAY1, store=store)
    assert (report.sent, report.failed, report.aborted) == (3, 1, None)
    row = store.get_delivery(odd, DAY1)
    assert row is not None and row.status == "perm_failed"
    assert "not a deliverable email address" in (row.error or "")
    assert "jörg" not in {str(m["To"].addresses[0].addr_spec) for m in maildir_messages(config)}
    again = pipeline.run(config, now=NOW1 + timedelta(minutes=5), day=DAY1, store=store)
    assert (again.sent, again.failed) == (0, 0)
    assert store.get_delivery(odd, DAY1).status == "perm_failed"  # type: ignore[union-attr]
    store.close()



def _plan_named_title(config: Config, day1: Path, day2: Path, *, seeded: bool) -> list[Any]:
    """Run day 1, then plan day 2 for a subscriber who types a day-1 paper's title.

    With ``seeded``, beside them one whose profile has the same text and that paper as
    a seed paper. Return their lists.
    """
    store = open_store(config.database_url)
    named = json.loads(day1.read_text(encoding="utf-8").splitlines()[3])
    text = f"{named['title'].lower()}.\nvision-language models"
    store.add_subscriber("typed@example.org", Profile(interests=text), now=NOW1,
                         send_hour=7, max_papers=5)
    if seeded:
        profile = Profile(interests=text, seeds=(f"arxiv:{named['id']}",))
        store.add_subscriber("seeded@example.org", profile, now=NOW1, send_hour=7,
                             max_papers=5)
    store.close()
    pipeline.run(config, now=NOW1, day=DAY1)
    config2 = replace(config, sources=parse_sources(f"jsonl:{day2}"))
    pipeline.run(config2, now=NOW2, day=DAY2, send=False)
    store = open_store(config.database_url)
    rows = {email: row.picks for row, email in store.list_deliveries(day=DAY2)}
    store.close()
    return [rows[email] for email in ("typed@example.org", "seeded@example.org")
            if email in rows]


def test_a_title_typed_in_the_interests_finds_an_older_stored_paper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The day-1 papers are not in the ranker's history (one paper of it), so the
    # typed paper is found by its title in the database and made a seed paper.
    monkeypatch.setattr(pipeline.planning, "HISTORY_LIMIT", 1)
    day1, day2 = split_sample(tmp_path)
    config = make_config(tmp_path / "var", sources=parse_sources(f"jsonl:{day1}"))
    typed, seeded = _plan_named_title(config, day1, day2, seeded=True)
    assert typed and typed == seeded
    alone = _plan_named_title(make_config(tmp_path / "alone", sources=config.sources),
                              day1, day2, seeded=False)
    assert alone == [typed]
    # Without the database lookup the typed title is only words: another list.
    monkeypatch.setattr(Store, "keys_titled", lambda self, titles: set())
    words = _plan_named_title(make_config(tmp_path / "words", sources=config.sources),
                              day1, day2, seeded=False)
    assert words and words != [typed]


def test_digests_and_quiet_notes_say_how_many_new_papers_were_looked_at(
    two_days: tuple[Config, Path, Path],
) -> None:
    """The count is the subscriber's window less what they were sent before: the 107
    papers of day 1, then the 106 new ones of day 2 (the note's preheader once said
    "There were no new papers to look at today" on a day of 213)."""
    config, day1, day2 = two_days
    subscribe_all(config)
    store = open_store(config.database_url)
    store.add_subscriber("quiet@example.org", Profile(interests="zyxwvut qwertyuiop"),
                         now=NOW1, send_hour=7, empty_digest="note")
    store.close()
    pipeline.run(config, now=NOW1, day=DAY1)
    config = replace(config, sources=parse_sources(f"jsonl:{day1},jsonl:{day2}"))
    pipeline.run(config, now=NOW2, day=DAY2)

    def bodies(to: str) -> list[tuple[str, str, str]]:
        found = []
        for message in maildir_messages(config):
            if message["To"].addresses[0].addr_spec == to:
                html = message.get_body(("html",)).get_content()
                found.append((str(message["Subject"]), message.get_body(("plain",)).get_content(),
                              html))
        return sorted(found)

    ada = bodies("ada@example.org")
    assert len(ada) == 2
    said = sorted(n for _, text, _ in ada for n in (106, 107)
                  if f"from {n} new today" in " ".join(text.split()))
    assert said == [106, 107]
    notes = bodies("quiet@example.org")
    assert len(notes) == 2
    for subject, text, html in notes:
        assert subject.startswith("Nothing matched your interests")
        assert "no new papers" not in html.lower() and "no new papers" not in text.lower()
    said = sorted(n for _, text, _ in notes for n in (106, 107)
                  if f"(we looked at {n} new ones)" in " ".join(text.split()))
    assert said == [106, 107]
    assert any("We looked at 107 new papers and none matched" in h for _, _, h in notes)


def test_a_maildir_that_cannot_be_written_stops_the_run_and_loses_nothing(
    two_days: tuple[Config, Path, Path],
) -> None:
    config, _, _ = two_days
    subscribe_all(config)
    # A Maildir this run cannot write into (here its tmp/ is a file; a full disk or a
    # folder of another user alike): nothing reaches it, so nothing may count as sent
    # or be left "sending", to become "unknown" (never resent) on the next run.
    config.maildir.mkdir(parents=True)
    (config.maildir / "tmp").write_text("not a folder")
    report = pipeline.run(config, now=NOW1, day=DAY1)
    assert report.sent == 0 and report.failed == 0 and report.unknown == 0
    assert report.aborted and "Maildir" in report.aborted
    assert report.abort_exit == 75
    store = open_store(config.database_url)
    assert store.delivery_counts(DAY1) == {"planned": 3}
    assert all(row.attempts == 0 for row, _ in store.list_deliveries(day=DAY1))
    store.close()
    # Once the Maildir is fixed, the next run delivers every digest, each once.
    (config.maildir / "tmp").unlink()
    again = pipeline.run(config, now=NOW1 + timedelta(hours=1), day=DAY1)
    assert (again.sent, again.unknown) == (3, 0)
    assert len(maildir_messages(config)) == 3


def test_previews_that_cannot_be_written_stop_the_run_with_the_reason_and_lose_nothing(
    two_days: tuple[Config, Path, Path],
) -> None:
    config, _, _ = two_days
    subscribe_all(config)
    # The HTML previews beside the Maildir cannot be written (a full disk; here a file
    # where their folder belongs): the run stops saying so, with every digest still
    # planned, rather than a traceback.
    config.preview_dir.parent.mkdir(parents=True, exist_ok=True)
    config.preview_dir.write_text("not a folder")
    report = pipeline.run(config, now=NOW1, day=DAY1)
    assert (report.sent, report.failed, report.unknown) == (0, 0, 0)
    assert report.aborted and "preview" in report.aborted
    assert report.abort_exit == 75
    store = open_store(config.database_url)
    assert store.delivery_counts(DAY1) == {"planned": 3}
    store.close()
    config.preview_dir.unlink()
    assert pipeline.run(config, now=NOW1 + timedelta(hours=1), day=DAY1).sent == 3
    assert len(maildir_messages(config)) == 3


def test_the_longest_valid_address_gets_its_preview_and_stops_no_run(
    two_days: tuple[Config, Path, Path],
) -> None:
    # An address may have 254 characters (the sign-up form takes them); its preview's
    # file name, "<id>-<address>.html", had 266 bytes, past the 255 a file system allows:
    # without SMTP every run stopped there (75), and the digests after it never went.
    config, _, _ = two_days
    address = "l" * 64 + "@" + ".".join(["d" * 60] * 3)
    address = address[: 254 - len(".example")] + ".example"
    assert len(address) == 254 and normalize_email(address) == address
    store = open_store(config.database_url)
    sub = store.add_subscriber(address, PROFILES["ada@example.org"], now=NOW1, send_hour=7,
                               max_papers=5)
    store.close()
    subscribe_all(config)
    report = pipeline.run(config, now=NOW1, day=DAY1)
    assert (report.sent, report.failed, report.aborted) == (4, 0, None)
    [preview] = (config.preview_dir / DAY1.isoformat()).glob(f"{sub.id:06d}-*.html")
    assert preview == pipeline.preview_path(config, sub, DAY1)
    assert len(preview.name.encode()) <= 255


def test_a_feed_title_of_200_kb_is_cut_before_it_reaches_the_digest(tmp_path: Path) -> None:
    # A feed whose title element held a whole page (200 KB) put all of it into every
    # digest listing the paper, in the text and the HTML part: a 400 KB email whose
    # first paper was a wall of words. Abstracts were always shortened; titles never.
    day1, _ = split_sample(tmp_path)
    huge = {"id": "2605.99999", "title": "Robot learning with diffusion policies " * 5000,
            "abstract": "Robot learning with diffusion policies for humanoid control.",
            "categories": ["cs.RO"]}
    assert len(huge["title"]) > 190_000
    batch = tmp_path / "batch.jsonl"
    batch.write_text(day1.read_text(encoding="utf-8") + json.dumps(huge) + "\n",
                     encoding="utf-8")
    config = make_config(tmp_path / "var", sources=parse_sources(f"jsonl:{batch}"))
    store = open_store(config.database_url)
    store.add_subscriber("robo@example.org",
                         Profile(interests="robot learning with diffusion policies"),
                         now=NOW1, send_hour=7, max_papers=5)
    store.close()
    report = pipeline.run(config, now=NOW1, day=DAY1)
    assert report.sent == 1
    [message] = maildir_messages(config)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "https://arxiv.org/abs/2605.99999" in text  # the paper is there, its title cut
    assert text.count("Robot learning with diffusion policies") < 40
    assert html.count("Robot learning with diffusion policies") < 40
    assert len(message.as_bytes()) < 60_000
    stored = open_store(config.database_url).get_papers(["arxiv:2605.99999"])
    assert len(stored["arxiv:2605.99999"].title) <= 1000
    assert stored["arxiv:2605.99999"].title.endswith(" with…")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_run_lock_whose_pid_cannot_be_written_still_runs_and_still_locks(
    two_days: tuple[Config, Path, Path],
) -> None:
    config, _, _ = two_days
    subscribe_all(config)
    # var/ on a full disk: the run lock opens and locks, but the pid written into it
    # for people to read is refused (/dev/full answers ENOSPC to every write). That
    # pid is nothing the run needs: it used to die here with a traceback and exit 1,
    # sending nothing.
    config.var_dir.mkdir(parents=True, exist_ok=True)
    config.lock_path.symlink_to("/dev/full")
    with run_lock(config.lock_path), pytest.raises(LockedError):
        pipeline.run(config, now=NOW1, day=DAY1)  # still one run at a time
    report = pipeline.run(config, now=NOW1, day=DAY1)
    assert (report.sent, report.failed, report.unknown, report.aborted) == (3, 0, 0, None)
    assert len(maildir_messages(config)) == 3


def test_a_reader_of_cs_sy_gets_the_systems_papers_listed_in_eess_sy(tmp_path: Path) -> None:
    # The sample day's systems and control paper is listed as eess.SY, the code arXiv
    # files cs.SY under. Its reader of "cs.SY Systems and Control" (the form offers
    # both) got the note "None of them is in cs.SY." instead of that paper.
    config = make_config(tmp_path / "var")
    store = open_store(config.database_url)
    listed = [json.loads(line) for line in SAMPLE_BATCH.read_text(encoding="utf-8").splitlines()]
    [systems] = [r for r in listed if "eess.SY" in r["categories"]]
    assert not any("cs.SY" in r["categories"] for r in listed)
    store.add_subscriber("control@example.org", Profile(categories=("cs.SY",)), now=NOW1,
                         send_hour=7, empty_digest="note")
    report = pipeline.run(config, now=NOW1, day=DAY1, store=store)
    assert report.sent == 1
    texts = {m["To"].addresses[0].addr_spec: " ".join(
        m.get_body(("plain",)).get_content().split()) for m in maildir_messages(config)}
    assert "None of them" not in texts["control@example.org"]
    assert f"https://arxiv.org/abs/{systems['id']}" in texts["control@example.org"]
    assert "in eess.SY" in texts["control@example.org"]
    store.close()
