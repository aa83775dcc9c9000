"""Retention: history older than DIGEST_RETENTION_DAYS is pruned, what runs read stays."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from digest import pipeline
from digest.cli import main
from digest.config import Config, config_from_values
from digest.errors import ConfigError, UsageError
from digest.models import OutgoingMessage, Profile
from digest.store import Store, open_store, outbox, runs, sent_papers
from tests.fixtures.config import make_config

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
TODAY = NOW.date()


def _day(ago: int) -> date:
    return TODAY - timedelta(days=ago)


def _sent(db: Store, sub_id: int, day: date, keys: list[str]) -> None:
    picks = [(key, 0.5, "matches: x") for key in keys]
    assert db.plan_delivery(sub_id, day, picks=picks, message_id=f"<{day}>", now=NOW)
    assert db.set_delivery_status(sub_id, day, "sent", now=NOW)


def _count(db: Store, table: object, where: object = None) -> int:
    query = select(func.count()).select_from(table)  # type: ignore[arg-type]
    if where is not None:
        query = query.where(where)  # type: ignore[arg-type]
    with db.begin() as conn:
        return int(conn.execute(query).scalar_one())


def _subscriber(db: Store, email: str) -> int:
    return db.add_subscriber(email, Profile(interests="agents"), now=NOW).id


def test_prune_drops_old_final_rows_and_their_sent_papers(store: Store) -> None:
    ada = _subscriber(store, "ada@example.org")
    for ago in (400, 380, 2):
        _sent(store, ada, _day(ago), [f"arxiv:old.{ago}"])
    store.plan_delivery(ada, _day(390), picks=[], message_id="", now=NOW, status="skipped")

    removed = store.prune(before=_day(365))

    assert removed["deliveries"] == 3
    assert removed["sent_papers"] == 2
    assert [
        row["day"] for row in store.export_subscriber(ada)["deliveries"]
    ] == [_day(2).isoformat()]
    assert _count(store, sent_papers) == 1
    assert store.prune(before=_day(365)) == {"deliveries": 0, "sent_papers": 0, "runs": 0}


def test_prune_keeps_the_latest_sent_digest_and_unsettled_rows(store: Store) -> None:
    # A subscriber paused for over a year: the next digest's window starts after their
    # last one, so that row stays; an unknown or planned row awaits a decision.
    grace = _subscriber(store, "grace@example.org")
    _sent(store, grace, _day(500), ["arxiv:a"])
    _sent(store, grace, _day(450), ["arxiv:b"])
    store.plan_delivery(grace, _day(440), picks=[("arxiv:c", 0.5, "x")], message_id="<c>",
                        now=NOW)
    store.set_delivery_status(grace, _day(440), "unknown", now=NOW)
    message = OutgoingMessage(sender="d@example.org", recipients=("grace@example.org",),
                              to_email="grace@example.org", to_name="", packed=b"x")
    store.plan_deliveries([(grace, _day(430), [("arxiv:d", 0.5, "x")], "<d>", "planned")],
                          now=NOW, messages={(grace, _day(430)): message})

    store.prune(before=_day(365))

    assert store.last_delivered_days([grace]) == {grace: _day(450)}
    kept = {row["day"]: row["status"]
            for row in store.export_subscriber(grace)["deliveries"]}
    assert kept == {_day(450).isoformat(): "sent", _day(440).isoformat(): "unknown",
                    _day(430).isoformat(): "planned"}
    assert _count(store, outbox) == 1


def test_prune_drops_old_run_reports_and_the_outbox_with_its_row(store: Store) -> None:
    ada = _subscriber(store, "ada@example.org")
    message = OutgoingMessage(sender="d@example.org", recipients=("ada@example.org",),
                              to_email="ada@example.org", to_name="", packed=b"x")
    store.plan_deliveries([(ada, _day(400), [("arxiv:a", 0.5, "x")], "<a>", "planned")],
                          now=NOW, messages={(ada, _day(400)): message})
    store.set_delivery_status(ada, _day(400), "skipped", now=NOW)  # purge never ran
    _sent(store, ada, _day(3), ["arxiv:b"])
    with store.begin() as conn:
        for day in (_day(400), _day(1)):
            conn.execute(runs.insert().values(day=day, started_at=NOW, finished_at=NOW,
                                              sent=0, failed=0, report={"day": str(day)}))

    assert store.prune(before=_day(365))["runs"] == 1
    assert [r["day"] for r in store.recent_runs()] == [str(_day(1))]
    assert _count(store, outbox) == 0


def test_retention_setting_is_zero_or_a_month_at_least(tmp_path: Path) -> None:
    base = {"DIGEST_VAR_DIR": str(tmp_path)}
    assert config_from_values(base).retention_days == 365
    assert config_from_values({**base, "DIGEST_RETENTION_DAYS": "0"}).retention_days == 0
    with pytest.raises(ConfigError, match="at least 30"):
        config_from_values({**base, "DIGEST_RETENTION_DAYS": "7"})


def test_pipeline_prune_removes_old_previews_and_keeps_all_at_zero(config: Config) -> None:
    old = config.preview_dir / _day(400).isoformat() / "000001-ada_example.org.html"
    new = config.preview_dir / _day(1).isoformat() / "000001-ada_example.org.html"
    for path in (old, new):
        path.parent.mkdir(parents=True)
        path.write_text("<html></html>")
    db = open_store(config.database_url)
    try:
        ada = _subscriber(db, "ada@example.org")
        _sent(db, ada, _day(400), ["arxiv:a"])
        _sent(db, ada, _day(300), ["arxiv:b"])
        from dataclasses import replace

        assert pipeline.prune(replace(config, retention_days=0), db, now=NOW) == {}
        assert old.exists()
        removed = pipeline.prune(config, db, now=NOW)
    finally:
        db.close()
    assert removed == {"deliveries": 1, "sent_papers": 1, "runs": 0, "previews": 1}
    assert not old.parent.exists()
    assert new.exists()


def test_prune_command_says_what_it_deleted(config: Config) -> None:
    db = open_store(config.database_url)
    try:
        ada = _subscriber(db, "ada@example.org")
        _sent(db, ada, date(2000, 1, 3), ["arxiv:a"])
        _sent(db, ada, date(2000, 1, 4), ["arxiv:b"])
    finally:
        db.close()
    result = CliRunner().invoke(main, ["prune"], obj={"config": config})
    assert result.exit_code == 0, result.output
    # The latest sent digest stays (the next window starts after it), with its papers.
    assert "1 deliveries, 1 sent_papers, 0 runs, 0 previews" in result.output


def test_a_run_of_a_day_older_than_the_history_kept_is_refused(tmp_path: Path) -> None:
    config = make_config(tmp_path / "var", retention_days=30)
    with pytest.raises(UsageError, match="older than the history kept"):
        pipeline.run(config, now=NOW, day=_day(31), do_ingest=False)


def test_the_daily_run_prunes(tmp_path: Path) -> None:
    config = make_config(tmp_path / "var", retention_days=30)
    db = open_store(config.database_url)
    try:
        ada = _subscriber(db, "ada@example.org")
        _sent(db, ada, _day(60), ["arxiv:a"])
        _sent(db, ada, _day(40), ["arxiv:b"])
        pipeline.run(config, now=NOW, do_ingest=False, store=db)
        assert [row["day"] for row in db.export_subscriber(ada)["deliveries"]] == [
            _day(40).isoformat()]
        # Once a UTC day: a later run that day does not look again; `digest prune` does.
        _sent(db, ada, _day(35), ["arxiv:c"])
        pipeline.run(config, now=NOW + timedelta(hours=1), do_ingest=False, store=db)
        assert len(db.export_subscriber(ada)["deliveries"]) == 2
        assert pipeline.prune(config, db, now=NOW + timedelta(hours=1))["deliveries"] == 1
        pipeline.run(config, now=NOW + timedelta(days=1), do_ingest=False, store=db)
        assert db.claim_prune_day((NOW + timedelta(days=1)).date()) is False
    finally:
        db.close()


def test_a_stored_run_report_lists_only_the_deliveries_that_went_wrong(store: Store) -> None:
    from digest.models import Delivery, RunReport

    report = RunReport(
        day=TODAY, started_at=NOW, finished_at=NOW, sent=2, failed=1, skipped=1,
        deliveries=(Delivery(1, TODAY, "sent", "<1>"), Delivery(2, TODAY, "sent", "<2>"),
                    Delivery(3, TODAY, "skipped", error="nothing relevant"),
                    Delivery(4, TODAY, "perm_failed", error="550 no such user")),
    )
    store.record_run(report)
    (stored,) = store.recent_runs()
    assert (stored["sent"], stored["failed"], stored["skipped"]) == (2, 1, 1)
    assert [d["subscriber_id"] for d in stored["deliveries"]] == [4]
