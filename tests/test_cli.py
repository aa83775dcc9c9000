"""Every core command through click's CliRunner, on a temp SQLite file and Maildir."""

from __future__ import annotations

import json
import logging
import mailbox
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from digest.cli import main
from digest.config import Config
from digest.schedule import next_fire
from tests.fixtures.config import make_config, smtp_settings


def invoke(config: Config, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj={"config": config})


def subscribe(config: Config, email: str = "ada@example.org", *extra: str) -> Result:
    return invoke(
        config,
        "subscribe",
        email,
        "--interests",
        "LLM agents and tool use",
        "--keyword",
        "agent",
        "--hour",
        "0",
        *extra,
    )


def test_init_creates_the_database(config: Config) -> None:
    result = invoke(config, "init")
    assert result.exit_code == 0, result.output
    assert (config.var_dir / "digest.sqlite3").exists()
    assert "database ready" in result.output


def test_subscribe_validates_and_lists(config: Config) -> None:
    assert (
        subscribe(
            config,
            "Ada@Example.org",
            "--seed",
            "https://arxiv.org/abs/2401.01234v2",
            "--timezone",
            "Europe/Berlin",
        ).exit_code
        == 0
    )
    bad = invoke(config, "subscribe", "not-an-address", "--interests", "x")
    assert bad.exit_code == 2 and "not a valid email" in bad.output
    # A non-ASCII local part needs SMTPUTF8, which this mailer does not speak: refused
    # here, where the person can give another address, not at send time.
    utf8 = invoke(config, "subscribe", "jörg@example.org", "--interests", "x")
    assert utf8.exit_code == 2 and "not a valid email" in utf8.output
    assert "Internationalized characters before the @-sign" in utf8.output
    empty = invoke(config, "subscribe", "b@example.org")
    assert empty.exit_code == 2 and "is empty" in empty.output
    badzone = invoke(config, "subscribe", "c@example.org", "--interests", "x", "--timezone", "Mars")
    assert badzone.exit_code == 2 and "time zone" in badzone.output
    twice = subscribe(config, "ada@example.org")
    assert twice.exit_code == 2 and "already subscribed" in twice.output
    listed = invoke(config, "subscribers", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [r["email"] for r in rows] == ["ada@example.org"]


def test_ingest_reports_each_source(config: Config) -> None:
    result = invoke(config, "ingest", "--json")
    assert result.exit_code == 0, result.output
    [source] = json.loads(result.output)
    assert source["status"] == "ok" and source["new"] == 213
    again = json.loads(invoke(config, "ingest", "--json").output)
    assert again[0]["new"] == 0


def test_broken_source_exits_1_with_the_reason(tmp_path: Path) -> None:
    from digest.config import parse_sources

    config = make_config(tmp_path / "var", sources=parse_sources(f"jsonl:{tmp_path}/missing.jsonl"))
    result = invoke(config, "ingest")
    assert result.exit_code == 1
    assert "error" in result.output and "missing.jsonl" in result.output


def test_run_json_twice_the_same_day_sends_nothing_the_second_time(config: Config) -> None:
    subscribe(config)
    first = invoke(config, "run", "--date", "2026-05-25", "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.output)
    assert report["sent"] == 1 and report["failed"] == 0
    second = json.loads(invoke(config, "run", "--date", "2026-05-25", "--json").output)
    assert (second["sent"], second["skipped"], second["failed"]) == (0, 1, 0)
    assert len(mailbox.Maildir(str(config.maildir), create=False)) == 1


def test_a_rerun_that_only_sends_says_how_many_papers_the_day_holds(config: Config) -> None:
    # The rerun ranks nothing (the digest was planned before) and its summary said
    # "batch 0 papers", which read as if the day had no papers.
    subscribe(config)
    planned = invoke(config, "run", "--date", "2026-05-25", "--no-send")
    assert planned.exit_code == 0, planned.output
    assert "papers: 213 filed for 2026-05-25, 213 new in this run, 213 ranked" in planned.output
    rerun = invoke(config, "run", "--date", "2026-05-25")
    assert rerun.exit_code == 0, rerun.output
    assert "sent 1, skipped 0" in rerun.output
    assert "; papers: 213 filed for 2026-05-25, 0 new in this run; sources: " in rerun.output
    assert "batch 0 papers" not in rerun.output and "ranked" not in rerun.output
    report = json.loads(invoke(config, "run", "--date", "2026-05-25", "--json").output)
    assert (report["papers_filed"], report["papers_new"]) == (213, 0)


def test_run_with_smtp_url_delivers_to_the_server(tmp_path: Path, smtp_server: Any) -> None:
    config = make_config(tmp_path / "var", smtp=smtp_server.settings())
    subscribe(config)
    result = invoke(config, "run", "--date", "2026-05-25")
    assert result.exit_code == 0, result.output
    assert "sent 1" in result.output
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ada@example.org"]]


def test_run_exits_1_when_a_delivery_fails(tmp_path: Path, smtp_server: Any) -> None:
    config = make_config(tmp_path / "var", smtp=smtp_server.settings())
    subscribe(config)
    smtp_server.fail("rcpt", "550 5.1.1 No such user")
    result = invoke(config, "run", "--date", "2026-05-25")
    assert result.exit_code == 1
    assert "failed 1" in result.output


def test_run_dry_run_and_preview_write_html_and_send_nothing(config: Config) -> None:
    subscribe(config)
    dry = invoke(config, "run", "--dry-run", "--force")
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output
    assert not config.maildir.exists()
    result = invoke(config, "preview", "ada@example.org")
    assert result.exit_code == 0, result.output
    path = Path(result.output.split("wrote ", 1)[1].split(" (", 1)[0])
    html = path.read_text()
    assert path.suffix == ".html" and "<html" in html.lower() and "agent" in html.lower()
    missing = invoke(config, "preview", "nobody@example.org")
    assert missing.exit_code == 2 and "no active subscriber" in missing.output
    nobody = invoke(config, "run", "--subscriber", "nobody@example.org")
    assert nobody.exit_code == 2 and "no active subscriber" in nobody.output


def test_preview_of_a_day_already_sent_shows_the_digest_that_went_out(config: Config) -> None:
    # Once said "nothing relevant" for a digest of eight papers that had gone out: the
    # dry run plans nothing for a day the ledger has, and nothing else looked there.
    subscribe(config)
    assert invoke(config, "run", "--date", "2026-05-25").exit_code == 0
    result = invoke(config, "preview", "ada@example.org", "--date", "2026-05-25")
    assert result.exit_code == 0, result.output
    assert "wrote " in result.output and "sent" in result.output
    path = Path(result.output.split("wrote ", 1)[1].split(" (", 1)[0])
    sent = next(iter(mailbox.Maildir(str(config.maildir), create=False)))
    html = path.read_text()
    titles = re.findall(r"^\d+\. (.+)$", _text_part(sent), flags=re.MULTILINE)
    assert titles and all(title[:40] in html for title in titles)


def _text_part(message: mailbox.MaildirMessage) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    return ""


def test_status_shows_runs_and_sources(config: Config) -> None:
    subscribe(config)
    invoke(config, "run", "--date", "2026-05-25")
    result = invoke(config, "status", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["deliveries"] == {"sent": 1}
    assert data["sources"][0]["status"] == "ok"
    assert data["runs"][0]["sent"] == 1
    text = invoke(config, "status")
    assert "1 active subscribers" in text.output


def test_demo_delivers_to_three_sample_researchers(config: Config) -> None:
    result = invoke(config, "demo")
    assert result.exit_code == 0, result.output
    assert "sent 3" in result.output
    box = mailbox.Maildir(str(config.maildir), create=False)
    assert len(box) == 3
    assert result.output.count("preview: ") == 3
    again = invoke(config, "demo")
    assert again.exit_code == 0 and "sent 0" in again.output


def test_configuration_error_names_the_variable_and_exits_78(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGEST_SMTP_URL", "http://mail.example.org")
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 78
    assert "DIGEST_SMTP_URL" in result.output and "hint:" in result.output


def test_an_env_file_named_on_purpose_must_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `digest --env-file /srv/digest/.evn run` (a typo) once ran on a fresh var/ in the
    # working directory, the sample batch and the Maildir, and exited 0.
    monkeypatch.chdir(tmp_path)
    missing = CliRunner().invoke(main, ["--env-file", str(tmp_path / "nope.env"), "status"])
    assert missing.exit_code == 2, missing.output
    assert "nope.env" in missing.output and "--env-file" in missing.output
    assert not (tmp_path / "var").exists()
    given = tmp_path / "digest.env"
    given.write_text(f"DIGEST_VAR_DIR={tmp_path / 'elsewhere'}\n")
    found = CliRunner().invoke(main, ["--env-file", str(given), "status"])
    assert found.exit_code == 0, found.output
    assert str(tmp_path / "elsewhere") in found.output
    # No .env and no --env-file: the embedded default, as before; so is /dev/null.
    assert CliRunner().invoke(main, ["status"]).exit_code == 0
    assert CliRunner().invoke(main, ["--env-file", os.devnull, "status"]).exit_code == 0
    assert CliRunner().invoke(main, ["--env-file", str(tmp_path), "status"]).exit_code == 2


def test_schedule_shows_the_next_fire_times(config: Config) -> None:
    result = invoke(config, "schedule", "--show", "3")
    assert result.exit_code == 0, result.output
    times = [datetime.fromisoformat(line) for line in result.output.split()]
    assert len(times) == 3 and times[1] - times[0] == times[2] - times[1]
    assert all(t.minute == config.send_at[1] for t in times)


def test_the_scheduler_logs_a_stopped_run_as_an_error_and_a_good_one_as_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The service lives on after a run, so its exit code is nowhere: a run stopped by an
    # unreachable SMTP server was logged at INFO, in a format without the level, and
    # `journalctl -p warning` or grepping for ERROR never found it.
    from dataclasses import replace

    from digest.cli.core import SCHEDULE_LOG_FORMAT, scheduled_run
    from tests.fixtures.smtp_server import _free_port

    config = make_config(tmp_path / "var")
    # Due at `at`: subscribed today for this hour, and the run is tomorrow's, past the
    # batch hour (at 00:00-01:59 UTC the batch filed under that day is not the digest's
    # yet: nothing was sent, and this test failed two hours a day).
    at = (datetime.now(UTC) + timedelta(days=1)).replace(hour=12, minute=10)
    invoke(config, "subscribe", "ada@example.org", "--interests", "LLM agents",
           "--hour", str(at.hour))
    closed = replace(config, smtp=smtp_settings("127.0.0.1", _free_port(), timeout=5))
    log = logging.getLogger("digest.schedule.test")
    with caplog.at_level(logging.INFO, logger=log.name):
        scheduled_run(closed, log, clock=lambda: at)
        scheduled_run(config, log, clock=lambda: at)  # the Maildir: sent
    stopped, sent = caplog.records
    assert stopped.levelno == logging.ERROR and "ABORTED" in stopped.getMessage()
    assert sent.levelno == logging.INFO and "sent 1," in sent.getMessage()
    assert "%(levelname)s" in SCHEDULE_LOG_FORMAT


def test_scheduler_next_fire_from_a_fixed_now(config: Config) -> None:
    from dataclasses import replace

    berlin = replace(config, timezone="Europe/Berlin", send_at=(7, 30))
    fire = next_fire(berlin, datetime(2026, 3, 29, 0, 40, tzinfo=UTC))
    assert fire is not None
    # 00:40 UTC is 01:40 CET; the next :30 is 02:30 local, which does not exist on the
    # spring-forward night, so the scheduler fires at 03:30 CEST = 01:30 UTC.
    assert fire.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_plan_with_run_then_deliver_with_send_workers(tmp_path: Path, smtp_server: Any) -> None:
    config = make_config(tmp_path / "var", smtp=smtp_server.settings())
    subscribe(config)
    subscribe(config, "grace@example.org")
    planned = json.loads(
        invoke(config, "run", "--date", "2026-05-25", "--no-send", "--json").output
    )
    assert planned["sent"] == 0 and smtp_server.messages == []
    result = invoke(config, "send", "--workers", "2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["sent"] == 2
    assert sorted(r for m in smtp_server.messages for r in m.rcpt_tos) == [
        "ada@example.org",
        "grace@example.org",
    ]
    again = json.loads(invoke(config, "send", "--json").output)
    assert again["sent"] == 0


def test_a_subscriber_added_after_todays_hour_waits_for_tomorrow_unless_forced(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The README's promise: a subscriber added after the day's send hour gets a first
    # digest the next day (not a late one today), and `digest run --force --subscriber`
    # sends today's anyway.
    clock = [datetime(2026, 5, 25, 6, 0, tzinfo=UTC)]
    for module in ("digest.cli.core", "digest.cli.subscribers"):
        monkeypatch.setattr(f"{module}.now_utc", lambda: clock[0])
    assert subscribe(config, "early@example.org", "--hour", "7").exit_code == 0
    clock[0] = datetime(2026, 5, 25, 10, 0, tzinfo=UTC)
    assert subscribe(config, "late@example.org", "--hour", "7").exit_code == 0

    run = invoke(config, "run")
    assert run.exit_code == 0, run.output
    assert "sent 1, skipped 0, failed 0, unknown 0, not due 1" in run.output
    forced = invoke(config, "run", "--force", "--subscriber", "late@example.org")
    assert forced.exit_code == 0, forced.output
    assert "sent 1," in forced.output
    inbox = mailbox.Maildir(str(config.maildir), create=False)
    assert sorted(str(m["To"]) for m in inbox) == ["early@example.org", "late@example.org"]


class _PollsDone(Exception):
    """Ends a `digest send --follow` loop in a test after a number of polls."""


def test_send_follow_saves_no_run_report_for_an_empty_poll(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A follower polling every 30 s saved a run report for every poll, the empty ones
    # too, so `digest status` showed only "sent 0, failed 0, ..." lines and the reports
    # of the runs that did something were pushed out of the history.
    subscribe(config)
    planned = invoke(config, "run", "--date", "2026-05-25", "--no-send")
    assert planned.exit_code == 0, planned.output
    before = json.loads(invoke(config, "status", "--json").output)["runs"]

    polls = []

    class StopAfterThreePolls:
        @staticmethod
        def sleep(seconds: float) -> None:
            polls.append(seconds)
            if len(polls) == 3:
                raise _PollsDone

    monkeypatch.setattr("digest.cli.core.time", StopAfterThreePolls)
    followed = invoke(config, "send", "--follow", "--interval", "0.1")
    assert isinstance(followed.exception, _PollsDone)
    assert "sent 1" in followed.output
    # A poll with nothing due says nothing either.
    assert followed.output.count("sent ") == 1, followed.output
    empty = invoke(config, "send")
    assert empty.exit_code == 0, empty.output

    after = json.loads(invoke(config, "status", "--json").output)["runs"]
    # Four polls: the first sent the digest, the other three had nothing to do.
    assert len(after) == len(before) + 1, after
    assert after[0]["sent"] == 1


def test_schedule_show_lists_each_fire_once_over_the_autumn_change(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On the fall-back night 01:30 London happens twice (BST, then GMT). Stepping on from
    # the second 01:30 in local time landed in the first one again, so --show printed
    # 01:30+00:00 over and over instead of the hours after it.
    from dataclasses import replace

    london = replace(config, timezone="Europe/London", send_at=(7, 30))
    monkeypatch.setattr("digest.cli.core.now_utc",
                        lambda: datetime(2026, 10, 25, 0, 0, tzinfo=UTC))
    result = invoke(london, "schedule", "--show", "4")
    assert result.exit_code == 0, result.output
    fires = [datetime.fromisoformat(line).astimezone(UTC) for line in result.output.split()]
    assert fires == [datetime(2026, 10, 25, h, 30, tzinfo=UTC) for h in range(4)]
