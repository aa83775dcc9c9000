"""Digests of subscribers in different zones over several days of hourly runs.

arXiv's daily batch arrives around 00:00 UTC and the run files it under that UTC day.
A subscriber east of UTC chose an hour that comes before it (07:00 in Tokyo is 22:00 UTC
the day before): their digest must go out at that hour with the batch that had arrived
by then, not hours later when the next batch arrives; and across the days (a weekend
included, when arXiv sends nothing) every batch reaches each subscriber exactly once.

Real parts: the shipped sample batch (real arXiv papers) dealt into six weekday
batches, each fed to the run's own ingest as a JSON-lines source from 00:05 UTC of its
day until the run after the next batch's arrival; a SQLite file; delivery into a Maildir.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from digest import pipeline
from digest.config import SAMPLE_BATCH, Config, parse_sources
from digest.ingest.jsonl import paper_from_record
from digest.models import Profile
from digest.pipeline.composing import message_id
from digest.store import Store, open_store
from tests.fixtures.config import make_config
from tests.test_pipeline import maildir_messages

# Wednesday 20 May to Wednesday 27 May 2026: no batch on Saturday 23 and Sunday 24.
BATCH_DAYS = [date(2026, 5, d) for d in (20, 21, 22, 25, 26, 27)]
BROAD = Profile(interests="machine learning models, neural networks, language, learning")


def utc(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def deal(folder: Path) -> dict[date, Path]:
    """Deal the sample batch into one JSON-lines file per weekday batch."""
    lines = [line for line in SAMPLE_BATCH.read_text(encoding="utf-8").splitlines() if line]
    files = {}
    for i, day in enumerate(BATCH_DAYS):
        path = folder / f"batch-{day.isoformat()}.jsonl"
        path.write_text("\n".join(lines[i :: len(BATCH_DAYS)]) + "\n", encoding="utf-8")
        files[day] = path
    return files


def looked_at(message: Any) -> int:
    """Return how many new papers the digest says it chose from."""
    text = " ".join(message.get_body(("plain",)).get_content().split())
    # "since <day>": a window of more than one batch day (after a move further west).
    found = re.search(r"from (\d+) new (?:today|this week|since \w{3} \d+ \w{3} \d{4})"
                      r"|we looked at (\d+) new ones", text)
    assert found, text
    return int(found.group(1) or found.group(2))


def hourly(
    config: Config, store: Store, files: dict[date, Path], arrivals: dict[date, datetime],
    *, until: datetime, start: datetime | None = None,
) -> dict[tuple[str, date], datetime]:
    """Run the daily job every hour at :05 from ``start`` (the first arrival) until
    ``until``, the feed holding the newest batch that has arrived (and the one before
    it in the run at its arrival); return {(address, digest day): the run that sent it}.
    """
    emails = {s.id: s.email for s in store.list_subscribers()}
    sent: dict[tuple[str, date], datetime] = {}
    now = start or min(arrivals.values())
    while now <= until:
        # arXiv's feed holds its newest batch only. The batch before it is still there
        # at the newest one's arrival, so that a run files a new batch while it sees
        # known papers again (which keep their batch day); every other run sees only
        # known papers. Not every batch so far: re-reading and re-saving them all every
        # hour was most of these tests' time (save_papers, ~0.1-0.2 s a batch).
        arrived = [(at, d) for d, at in sorted(arrivals.items(), key=lambda a: a[1])
                   if at <= now]
        just_arrived = now - arrived[-1][0] < timedelta(hours=1)
        in_feed = ",".join(f"jsonl:{files[d]}" for _, d in arrived[-2 if just_arrived else -1:])
        report = pipeline.run(replace(config, sources=parse_sources(in_feed)), now=now,
                              store=store)
        assert (report.failed, report.unknown, report.aborted) == (0, 0, None)
        for delivery in report.deliveries:
            if delivery.status == "sent":
                key = (emails[delivery.subscriber_id], delivery.day)
                assert key not in sent
                sent[key] = now
        now += timedelta(hours=1)
    return sent


def check_windows(
    config: Config, store: Store, expected: dict[tuple[str, date], tuple[date, ...]]
) -> None:
    """Assert each digest chose from exactly the batches expected, and no paper went to
    a subscriber twice: each batch was looked at once, by one digest, none was lost."""
    batches = {d: {p.key for p, _ in store.batch(d, d)} for d in BATCH_DAYS}
    messages = {str(m["Message-ID"]): m for m in maildir_messages(config)}
    assert len(messages) == len(expected)
    mailed: dict[str, list[str]] = {}
    for sub in store.list_subscribers():
        for (email, day), days in sorted(expected.items()):
            if email != sub.email:
                continue
            window = set().union(*(batches[d] for d in days))
            row = store.get_delivery(sub.id, day)
            assert row is not None and row.status == "sent"
            assert set(row.paper_keys) <= window, (email, day)
            message = messages[message_id(config, sub.id, day)]
            assert looked_at(message) == len(window), (email, day)
            mailed.setdefault(email, []).extend(row.paper_keys)
    for email, keys in mailed.items():
        assert keys and len(keys) == len(set(keys)), email


def start(tmp_path: Path) -> tuple[dict[date, Path], Config, Store]:
    """Return the batches' files, a configuration with no sources, and its store."""
    config = make_config(tmp_path / "var", sources=())
    return deal(tmp_path), config, open_store(config.database_url)


def subscribe(store: Store, *people: tuple[str, str, str, int]) -> None:
    """Add (address, zone, cadence, weekday) subscribers at 07:00 local."""
    joined = utc(date(2026, 5, 19), 23)
    for email, zone, cadence, weekday in people:
        store.add_subscriber(email, BROAD, now=joined, send_hour=7, timezone=zone,
                             cadence=cadence, weekday=weekday, max_papers=50,
                             empty_digest="note")


def test_each_digest_goes_out_at_its_hour_with_the_batches_that_had_arrived(
    tmp_path: Path,
) -> None:
    files, config, store = start(tmp_path)
    subscribe(store, ("tokyo@example.org", "Asia/Tokyo", "daily", 0),
              ("utc@example.org", "UTC", "daily", 0),
              ("tokyo-thursdays@example.org", "Asia/Tokyo", "weekly", 3),
              ("utc-wednesdays@example.org", "UTC", "weekly", 2))
    arrivals = {d: utc(d, 0, 5) for d in BATCH_DAYS}
    sent = hourly(config, store, files, arrivals, until=utc(date(2026, 5, 27), 23, 5))
    assert sum(len(store.batch(d, d)) for d in BATCH_DAYS) == 213
    # Each digest went out in the run right after its send instant (07:00 local) and
    # held the newest batch that had arrived by then: in Tokyo, the batch of the UTC
    # day before. No digest for a local day whose batch day is a weekend. A weekly
    # digest holds every batch since the last one.
    week = tuple(BATCH_DAYS[1:])
    expected = {("utc@example.org", d): (utc(d, 7, 5), (d,)) for d in BATCH_DAYS} | {
        ("tokyo@example.org", d + timedelta(days=1)): (utc(d, 22, 5), (d,)) for d in BATCH_DAYS
    } | {
        ("utc-wednesdays@example.org", date(2026, 5, 20)): (utc(BATCH_DAYS[0], 7, 5),
                                                            (BATCH_DAYS[0],)),
        ("utc-wednesdays@example.org", date(2026, 5, 27)): (utc(BATCH_DAYS[-1], 7, 5), week),
        ("tokyo-thursdays@example.org", date(2026, 5, 21)): (utc(BATCH_DAYS[0], 22, 5),
                                                             (BATCH_DAYS[0],)),
        ("tokyo-thursdays@example.org", date(2026, 5, 28)): (utc(BATCH_DAYS[-1], 22, 5), week),
    }
    assert sent == {key: when for key, (when, _) in expected.items()}
    check_windows(config, store, {key: days for key, (_, days) in expected.items()})
    store.close()


def test_a_late_batch_goes_out_when_it_arrives_in_the_digest_that_was_waiting_for_it(
    tmp_path: Path,
) -> None:
    # Thursday's batch arrives at 09:05 UTC, after the UTC subscriber's hour; Friday's
    # at 23:05 UTC, after the Tokyo subscriber's Saturday hour (22:00 UTC on Friday).
    # Each waiting digest goes out with it, within the grace, and holds nothing else.
    files, config, store = start(tmp_path)
    subscribe(store, ("tokyo@example.org", "Asia/Tokyo", "daily", 0),
              ("utc@example.org", "UTC", "daily", 0))
    wed, thu, fri = BATCH_DAYS[:3]
    arrivals = {wed: utc(wed, 0, 5), thu: utc(thu, 9, 5), fri: utc(fri, 23, 5)}
    sent = hourly(config, store, files, arrivals, until=utc(date(2026, 5, 23), 12, 5))
    expected = {
        ("utc@example.org", wed): (utc(wed, 7, 5), (wed,)),
        ("utc@example.org", thu): (utc(thu, 9, 5), (thu,)),
        ("utc@example.org", fri): (utc(fri, 23, 5), (fri,)),
        ("tokyo@example.org", thu): (utc(wed, 22, 5), (wed,)),
        ("tokyo@example.org", fri): (utc(thu, 22, 5), (thu,)),
        ("tokyo@example.org", fri + timedelta(days=1)): (utc(fri, 23, 5), (fri,)),
    }
    assert sent == {key: when for key, (when, _) in expected.items()}
    check_windows(config, store, {key: days for key, (_, days) in expected.items()})
    store.close()


def test_papers_filed_after_a_digest_went_out_are_in_the_next_one(tmp_path: Path) -> None:
    # A second source publishes in the afternoon (a journal's feed; Hugging Face's list
    # grows all day): the run at 15:05 UTC files its papers under Wednesday, whose
    # digest went out at 07:00 in London (06:00 UTC). Thursday's digest began at
    # Thursday's batch, so a London subscriber never got one of them (Tokyo, at 22:00
    # UTC, got them all). Thursday's digest holds them now, and says since when.
    files, config, store = start(tmp_path)
    subscribe(store, ("london@example.org", "Europe/London", "daily", 0),
              ("tokyo@example.org", "Asia/Tokyo", "daily", 0))
    wed, thu = BATCH_DAYS[:2]
    afternoon = date(2000, 1, 1)  # the afternoon source's file, filed under Wednesday
    feeds = {wed: files[wed], afternoon: files[thu], thu: files[BATCH_DAYS[2]]}
    arrivals = {wed: utc(wed, 0, 5), afternoon: utc(wed, 15, 5), thu: utc(thu, 0, 5)}
    sent = hourly(config, store, feeds, arrivals, until=utc(thu, 23, 5))
    assert sent == {("london@example.org", wed): utc(wed, 6, 5),
                    ("london@example.org", thu): utc(thu, 6, 5),
                    ("tokyo@example.org", thu): utc(wed, 22, 5),
                    ("tokyo@example.org", thu + timedelta(days=1)): utc(thu, 22, 5)}
    keys = {p.key: d for d in (wed, thu) for p, _ in store.batch(d, d)}
    late = {k for k, d in keys.items() if d == wed} - {
        p.key for line in files[wed].read_text(encoding="utf-8").splitlines()
        for p in [paper_from_record(json.loads(line))]}
    assert late and len(late) == len(files[thu].read_text(encoding="utf-8").splitlines())
    messages = {str(m["Message-ID"]): m for m in maildir_messages(config)}
    london = store.find_subscriber("london@example.org")
    assert london is not None
    thursday = messages[message_id(config, london.id, thu)]
    text = " ".join(thursday.get_body(("plain",)).get_content().split())
    assert looked_at(thursday) == len(late) + sum(1 for d in keys.values() if d == thu)
    assert "since Wed 20 May 2026" in text
    rows = [store.get_delivery(london.id, d) for d in (wed, thu)]
    mailed = [k for row in rows if row is not None for k in row.paper_keys]
    assert len(mailed) == len(set(mailed))
    assert late & set(mailed)  # a broad profile, 50 papers: some of them go out
    store.close()


def test_a_named_paper_moved_into_a_day_after_its_digest_is_in_the_next_one(
    tmp_path: Path,
) -> None:
    # A paper some profile named (a seed fetched from arXiv's API on Monday, filed there
    # as "named") that the afternoon source lists as new on Wednesday moves into
    # Wednesday's batch at 15:05 UTC, after London's Wednesday digest was planned. It
    # kept Monday's stored_at, so Thursday's digest did not count it as filed late:
    # Wednesday's digest could not hold it, Thursday's did not, and it reached no one
    # in London (Tokyo, at 22:00 UTC, got it).
    files, config, store = start(tmp_path)
    subscribe(store, ("london@example.org", "Europe/London", "daily", 0))
    wed, thu = BATCH_DAYS[:2]
    afternoon = date(2000, 1, 1)  # the afternoon source's file, filed under Wednesday
    feeds = {wed: files[wed], afternoon: files[thu], thu: files[BATCH_DAYS[2]]}
    arrivals = {wed: utc(wed, 0, 5), afternoon: utc(wed, 15, 5), thu: utc(thu, 0, 5)}
    first = json.loads(files[thu].read_text(encoding="utf-8").splitlines()[0])
    named = replace(paper_from_record(first), announce_type="named")
    monday = wed - timedelta(days=2)
    store.save_papers([named], batch_day=monday, now=utc(monday, 9))
    hourly(config, store, feeds, arrivals, until=utc(thu, 23, 5))
    assert {p.key for p, _ in store.batch(wed, wed)} >= {named.key}  # moved
    london = store.find_subscriber("london@example.org")
    assert london is not None
    rows = [store.get_delivery(london.id, d) for d in (wed, thu)]
    assert rows[0] is not None and named.key not in rows[0].paper_keys
    messages = {str(m["Message-ID"]): m for m in maildir_messages(config)}
    thursday = messages[message_id(config, london.id, thu)]
    late = len(files[thu].read_text(encoding="utf-8").splitlines())
    thursdays = sum(1 for _ in store.batch(thu, thu))
    # Every paper of the afternoon's, the named one included, was Thursday's to choose.
    assert looked_at(thursday) == late + thursdays
    store.close()


def test_a_run_for_a_date_sends_the_batch_it_filed_under_that_date_to_every_zone(
    tmp_path: Path,
) -> None:
    # `digest run --date D` (the quick start, `make demo`) files what it fetches under
    # D and sends D's digest now, whatever the hour: it holds that batch also for those
    # whose hour comes before the batch hour (in Tokyo; at 00:00 UTC as in the demo).
    # Their next digests hold the next batches and no paper twice.
    files, config, store = start(tmp_path)
    subscribe(store, ("tokyo@example.org", "Asia/Tokyo", "daily", 0))
    store.add_subscriber("midnight@example.org", BROAD, now=utc(date(2026, 5, 19), 23),
                         send_hour=0, max_papers=5)
    wed, thu, fri = BATCH_DAYS[:3]
    forced = pipeline.run(replace(config, sources=parse_sources(f"jsonl:{files[wed]}")),
                          now=utc(wed, 12), day=wed, store=store)
    assert forced.sent == 2
    wednesday = {p.key for p, _ in store.batch(wed, wed)}
    assert len(wednesday) == len(store.batch(wed, fri))  # all filed under Wednesday
    for sub in store.list_subscribers():
        row = store.get_delivery(sub.id, wed)
        assert row is not None and row.status == "sent" and set(row.paper_keys) <= wednesday
    arrivals = {wed: utc(wed, 12, 5), thu: utc(thu, 0, 5), fri: utc(fri, 0, 5)}
    sent = hourly(config, store, files, arrivals, until=utc(fri, 23, 5))
    # Tokyo's Thursday digest holds Wednesday's batch (what it passed over: the forced
    # digest of Wednesday took its own 50, which is all of it), so it has none; Friday's
    # holds Thursday's. At 00:00 UTC the digest holds the previous day's batch: on
    # Thursday the rest of Wednesday's, on Friday Thursday's.
    assert sent == {
        ("tokyo@example.org", fri): utc(thu, 22, 5),
        ("tokyo@example.org", fri + timedelta(days=1)): utc(fri, 22, 5),
        ("midnight@example.org", thu): utc(thu, 0, 5),
        ("midnight@example.org", fri): utc(fri, 0, 5),
    }
    for sub in store.list_subscribers():
        keys = [k for row, email in store.list_deliveries(status="sent") if email == sub.email
                for k in row.paper_keys]
        assert len(keys) == len(set(keys)), sub.email
    midnight = store.find_subscriber("midnight@example.org")
    assert midnight is not None
    thursday = store.get_delivery(midnight.id, thu)
    assert thursday is not None and set(thursday.paper_keys) <= wednesday
    store.close()


def test_a_later_hour_or_a_zone_further_west_misses_no_batch(tmp_path: Path) -> None:
    # After Thursday's digest, one subscriber moves from 01:00 to 07:00 UTC and one
    # from Tokyo to New York. Their Thursday digests held Wednesday's batch; Friday's
    # holds Thursday's and Friday's (with today's settings alone, Thursday's digest
    # would seem to have held Thursday's batch, and it would have been in no window).
    files, config, store = start(tmp_path)
    subscribe(store, ("tokyo@example.org", "Asia/Tokyo", "daily", 0))
    store.add_subscriber("early@example.org", BROAD, now=utc(date(2026, 5, 19), 23),
                         send_hour=1, max_papers=50, empty_digest="note")
    wed, thu, fri = BATCH_DAYS[:3]
    arrivals = {d: utc(d, 0, 5) for d in (wed, thu, fri)}
    sent = hourly(config, store, files, arrivals, until=utc(thu, 2, 5))
    for sub in store.list_subscribers():
        changes = {"send_hour": 7} if sub.send_hour == 1 else {"timezone": "America/New_York"}
        store.update_subscriber(sub.id, now=utc(thu, 3), **changes)
    sent |= hourly(config, store, files, arrivals, start=utc(thu, 3, 5), until=utc(fri, 12, 5))
    expected = {
        ("early@example.org", thu): (utc(thu, 1, 5), (wed,)),
        ("early@example.org", fri): (utc(fri, 7, 5), (thu, fri)),
        ("tokyo@example.org", thu): (utc(wed, 22, 5), (wed,)),
        ("tokyo@example.org", fri): (utc(fri, 11, 5), (thu, fri)),  # 07:00 in New York
    }
    assert sent == {key: when for key, (when, _) in expected.items()}
    check_windows(config, store, {key: days for key, (_, days) in expected.items()})
    store.close()


def test_a_first_weekly_digest_holds_the_weeks_batches(tmp_path: Path) -> None:
    # A Friday subscriber since Tuesday: their first digest said "from 36 new this
    # week" and held Friday's batch alone; Wednesday's and Thursday's were in no digest
    # of theirs. It holds the week's three now, and the next Friday's the batches since.
    files, config, store = start(tmp_path)
    subscribe(store, ("fridays@example.org", "UTC", "weekly", 4))
    arrivals = {d: utc(d, 0, 5) for d in BATCH_DAYS}
    sent = hourly(config, store, files, arrivals, until=utc(date(2026, 5, 29), 8, 5))
    first, second = date(2026, 5, 22), date(2026, 5, 29)
    expected = {
        ("fridays@example.org", first): (utc(first, 7, 5), tuple(BATCH_DAYS[:3])),
        ("fridays@example.org", second): (utc(second, 7, 5), tuple(BATCH_DAYS[3:])),
    }
    assert sent == {key: when for key, (when, _) in expected.items()}
    check_windows(config, store, {key: days for key, (_, days) in expected.items()})
    store.close()


def test_with_no_grace_each_digest_goes_out_in_its_hour_and_a_missed_one_never(
    tmp_path: Path,
) -> None:
    # DIGEST_GRACE_HOURS=0: no late digests. The run at 07:05 is 5 minutes after the
    # 07:00 instant, and 09:00 in Kathmandu (03:15 UTC) 50 minutes before the 04:05
    # run: nobody ever got a digest. Each goes out in the run of its hour; Thursday's,
    # missed while the host was down until 09:00 UTC, does not go out late.
    files, config, store = start(tmp_path)
    config = replace(config, grace_hours=0)
    subscribe(store, ("utc@example.org", "UTC", "daily", 0))
    store.add_subscriber("kathmandu@example.org", BROAD, now=utc(date(2026, 5, 19), 23),
                         send_hour=9, timezone="Asia/Kathmandu", max_papers=50)
    wed, thu = BATCH_DAYS[:2]
    arrivals = {d: utc(d, 0, 5) for d in (wed, thu)}
    sent = hourly(config, store, files, arrivals, until=utc(wed, 23, 5))
    sent |= hourly(config, store, files, arrivals, start=utc(thu, 9, 5), until=utc(thu, 23, 5))
    assert sent == {("utc@example.org", wed): utc(wed, 7, 5),
                    ("kathmandu@example.org", wed): utc(wed, 4, 5)}
    store.close()


def test_a_move_to_a_zone_further_west_sends_no_digest_of_the_day_before(
    tmp_path: Path,
) -> None:
    # Thursday's digest went out at 07:00 in Tokyo (Wednesday 22:05 UTC). At 03:00 UTC
    # its owner moves to New York, where it is still Wednesday 23:00 and Wednesday's
    # 07:00 passed 16 hours ago, within the grace: a digest dated Wednesday went out at
    # once, after Thursday's, with the Wednesday papers Thursday's had not taken. The
    # next one is Friday's, at 07:00 in New York, with Thursday's and Friday's batches.
    files, config, store = start(tmp_path)
    store.add_subscriber("tokyo@example.org", BROAD, now=utc(date(2026, 5, 19), 23),
                         send_hour=7, timezone="Asia/Tokyo", max_papers=5)
    wed, thu, fri = BATCH_DAYS[:3]
    arrivals = {d: utc(d, 0, 5) for d in (wed, thu, fri)}
    sent = hourly(config, store, files, arrivals, until=utc(thu, 2, 5))
    sub = store.list_subscribers()[0]
    store.update_subscriber(sub.id, now=utc(thu, 3), timezone="America/New_York")
    sent |= hourly(config, store, files, arrivals, start=utc(thu, 3, 5), until=utc(fri, 12, 5))
    expected = {
        ("tokyo@example.org", thu): (utc(wed, 22, 5), (wed,)),
        ("tokyo@example.org", fri): (utc(fri, 11, 5), (thu, fri)),  # 07:00 in New York
    }
    assert sent == {key: when for key, (when, _) in expected.items()}
    check_windows(config, store, {key: days for key, (_, days) in expected.items()})
    store.close()


def test_a_digest_sent_a_day_late_and_then_a_zone_further_west_misses_no_batch(
    tmp_path: Path,
) -> None:
    # 23:00 UTC: Wednesday's digest is planned at Wednesday 23:05 with Wednesday's batch,
    # but goes out only on Thursday at 04:05 (the relay was down: a delivery worker sends
    # it then). Its owner then moves to New York, where 23:00 is 03:00 UTC the next day:
    # with today's settings Wednesday's digest maps to Thursday's batch, and bounded by
    # its send time (Thursday) the next window started on Friday. Thursday's batch was
    # in no digest. Bounded by its planning (Wednesday) it is in the next one.
    files, config, store = start(tmp_path)
    sub = store.add_subscriber("late@example.org", BROAD, now=utc(date(2026, 5, 19), 23),
                               send_hour=23, max_papers=50, empty_digest="note")
    wed, thu, fri = BATCH_DAYS[:3]

    def run(day: date, now: datetime, **kw: Any) -> Any:
        return pipeline.run(replace(config, sources=parse_sources(f"jsonl:{files[day]}")),
                            now=now, store=store, **kw)

    run(wed, utc(wed, 0, 5), send=False)
    run(wed, utc(wed, 23, 5), send=False)
    row = store.get_delivery(sub.id, wed)
    assert row is not None and row.status == "planned"
    run(thu, utc(thu, 0, 5), send=False)  # files Thursday's batch; sends nothing
    late = pipeline.send_pending(config, now=utc(thu, 4, 5), store=store)
    assert [(d.day, d.status) for d in late.deliveries] == [(wed, "sent")]
    store.update_subscriber(sub.id, now=utc(thu, 5), timezone="America/New_York")
    run(fri, utc(fri, 0, 5))
    report = run(fri, utc(fri, 3, 5))  # Thursday 23:05 in New York
    assert [(d.day, d.status) for d in report.deliveries] == [(thu, "sent")]
    check_windows(config, store, {("late@example.org", wed): (wed,),
                                  ("late@example.org", thu): (thu, fri)})
    store.close()


def test_a_forced_run_sends_each_subscriber_the_digest_of_their_own_today(
    tmp_path: Path,
) -> None:
    # `digest run --force` at 20:00 UTC on Wednesday: in Tokyo it is Thursday 05:00, in
    # Los Angeles Wednesday 13:00. Tokyo gets its Thursday digest now (and nothing at
    # its hour, 22:00 UTC); Los Angeles had Wednesday's at its hour: nothing now. With
    # the UTC date, Tokyo got a digest dated Wednesday now and Thursday's two hours on.
    files, config, store = start(tmp_path)
    subscribe(store, ("tokyo@example.org", "Asia/Tokyo", "daily", 0),
              ("la@example.org", "America/Los_Angeles", "daily", 0))
    wed, thu = BATCH_DAYS[:2]
    arrivals = {wed: utc(wed, 0, 5), thu: utc(thu, 0, 5)}
    before = hourly(config, store, files, arrivals, until=utc(wed, 19, 5))
    assert before == {("la@example.org", wed): utc(wed, 14, 5)}
    forced = pipeline.run(replace(config, sources=parse_sources(f"jsonl:{files[wed]}")),
                          now=utc(wed, 20), force=True, store=store)
    emails = {s.id: s.email for s in store.list_subscribers()}
    assert [(emails[d.subscriber_id], d.day, d.status) for d in forced.deliveries] == [
        ("tokyo@example.org", thu, "sent")]
    after = hourly(config, store, files, arrivals, start=utc(wed, 21, 5),
                   until=utc(thu, 23, 5))
    assert after == {("la@example.org", thu): utc(thu, 14, 5),
                     ("tokyo@example.org", date(2026, 5, 22)): utc(thu, 22, 5)}
    check_windows(config, store, {("la@example.org", wed): (wed,),
                                  ("la@example.org", thu): (thu,),
                                  ("tokyo@example.org", thu): (wed,),
                                  ("tokyo@example.org", date(2026, 5, 22)): (thu,)})
    store.close()


def test_a_daily_digest_is_the_same_with_or_without_a_weekly_one_planned_beside_it(
    tmp_path: Path,
) -> None:
    # The plan phase ranked a page of subscribers against the union of their windows: a
    # weekly subscriber in the page made the daily ones' lists be ranked among the
    # week's papers (their smoothing, their categories' rarity, the LSA space), so a
    # daily digest changed with who else was due that hour, and one weekly subscriber
    # made the whole page's ranking cost a week of papers.
    picks = {}
    for weekly in (False, True):
        folder = tmp_path / ("weekly" if weekly else "alone")
        folder.mkdir()
        files, config, store = start(folder)
        wed, thu, fri = BATCH_DAYS[:3]
        for day, feed in ((wed, [wed]), (thu, [wed, thu]), (fri, [thu, fri])):
            sources = parse_sources(",".join(f"jsonl:{files[d]}" for d in feed))
            pipeline.run(replace(config, sources=sources), now=utc(day, 0, 5), store=store)
        people = [("daily@example.org", "UTC", "daily", 0)]
        if weekly:
            people.append(("fridays@example.org", "UTC", "weekly", 4))
        subscribe(store, *people)
        report = pipeline.run(replace(config, sources=parse_sources(f"jsonl:{files[fri]}")),
                              now=utc(fri, 7, 5), store=store)
        assert report.sent == len(people)
        rows = {sub.email: store.get_delivery(sub.id, fri) for sub in store.list_subscribers()}
        picks[weekly] = rows["daily@example.org"].paper_keys  # type: ignore[union-attr]
        if weekly:
            week = {p.key for p, _ in store.batch(wed, fri)}
            friday = {p.key for p, _ in store.batch(fri, fri)}
            weekly_keys = set(rows["fridays@example.org"].paper_keys)  # type: ignore[union-attr]
            assert weekly_keys <= week and weekly_keys - friday  # the week's papers
            assert set(picks[weekly]) <= friday
        store.close()
    assert picks[True] == picks[False]
