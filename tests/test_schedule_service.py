"""`digest schedule` as a service left alone for months: its configuration, its log."""

from __future__ import annotations

import logging
import mailbox
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.cli.core import Firings
from digest.config import SAMPLE_BATCH, Config, load_config
from digest.models import Profile
from digest.store import open_store
from tests.fixtures.config import SECRET, make_config
from tests.fixtures.smtp_server import SmtpTestServer
from tests.fixtures.zygote import Zygote
from tests.test_crash import alive

LOG = "digest.schedule.test"
# A firing a day after the subscribers signed up, at their hour (UTC).
SIGNED_UP = datetime(2026, 5, 24, 9, 0, tzinfo=UTC)
FIRST = datetime(2026, 5, 25, 12, 10, tzinfo=UTC)


def write_env(path: Path, var_dir: Path, **extra: str) -> None:
    """Write a .env for the installation under var_dir, with extra DIGEST_* settings."""
    settings = {
        "DIGEST_VAR_DIR": str(var_dir),
        "DIGEST_DATABASE_URL": make_config(var_dir).database_url,
        "DIGEST_SECRET_KEY": SECRET,
        "DIGEST_SOURCES": f"jsonl:{SAMPLE_BATCH}",
        "DIGEST_FROM": "Research Digest <digest@example.org>",
        "DIGEST_BASE_URL": "https://digest.example.org",
        "DIGEST_SEND_AT": "07:10",
        **extra,
    }
    path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()), encoding="utf-8")


def add_subscribers(config: Config, hours: dict[str, int]) -> None:
    store = open_store(config.database_url)
    try:
        for email, hour in hours.items():
            store.add_subscriber(email, Profile(interests="LLM agents and tool use"),
                                 now=SIGNED_UP, send_hour=hour, timezone="UTC",
                                 empty_digest="note")
    finally:
        store.close()


def test_each_firing_reads_dotenv_again_and_a_broken_one_keeps_the_last(
    tmp_path: Path, smtp_server: SmtpTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The service read .env once, at its start: an operator who then set DIGEST_SMTP_URL
    # in .env had every later firing deliver into var/mail/ as before, until a restart,
    # while the same edit reaches the next `digest run` from cron or the timer.
    var_dir, env_file = tmp_path / "var", tmp_path / ".env"
    write_env(env_file, var_dir)

    def read() -> Config:
        return load_config({}, env_file=env_file)

    config = read()
    add_subscribers(config, {"ada@example.org": 12, "grace@example.org": 13,
                             "claude@example.org": 14})
    moved: list[int] = []
    now = [FIRST]
    firings = Firings(config, read, logging.getLogger(LOG), clock=lambda: now[0])
    firings.reschedule = lambda fresh: moved.append(fresh.send_at[1])
    with caplog.at_level(logging.INFO, logger=LOG):
        firings()  # 12:10: ada's digest, into the Maildir
        write_env(env_file, var_dir, DIGEST_SMTP_URL=f"smtp://127.0.0.1:{smtp_server.port}"
                  "?starttls=off", DIGEST_SEND_AT="07:40")
        now[0] += timedelta(hours=1)
        firings()  # 13:10: grace's, over SMTP now
        # A typo in .env (a misspelt name stops every command with 78): the service
        # says so and goes on with the settings it has, rather than stopping the mail.
        env_file.write_text(env_file.read_text(encoding="utf-8") + "DIGEST_SMTP=x\n",
                            encoding="utf-8")
        now[0] += timedelta(hours=1)
        firings()  # 14:10: claude's, over SMTP still
    in_maildir = [m["To"] for m in mailbox.Maildir(var_dir / "mail", create=False)]
    assert in_maildir == ["ada@example.org"]
    assert [r for m in smtp_server.messages for r in m.rcpt_tos] == [
        "grace@example.org", "claude@example.org"]
    assert moved == [40]  # DIGEST_SEND_AT's minute moves the later firings
    changed = [r.getMessage() for r in caplog.records if "configuration changed" in r.getMessage()]
    assert len(changed) == 1 and "smtp" in changed[0] and "send_at" in changed[0]
    broken = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(broken) == 1 and "DIGEST_SMTP" in broken[0].getMessage()
    assert "go on with the one in use" in broken[0].getMessage()


def caught(pid: int, signum: int) -> bool:
    """Return True once the process has a handler for ``signum`` (its SigCgt mask)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    return False


def wait_for(predicate: Callable[[], bool], what: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: {log.read_text(encoding='utf-8')}"
        time.sleep(0.02)


@pytest.mark.timeout(300)
def test_sighup_reads_dotenv_again_and_the_service_lives_on(
    tmp_path: Path, zygote: Zygote
) -> None:
    # SIGHUP's default action ended the service: `kill -HUP` (a daemon's reload), or a
    # closed terminal, killed it (mid-message if a firing was sending), and systemd
    # takes death by SIGHUP for a clean stop, so Restart=on-failure never restarted it.
    var_dir, env_file = tmp_path / "var", tmp_path / "service" / "digest.env"
    env_file.parent.mkdir()
    # No firing during the test: the minute is half an hour away.
    away = f"07:{(datetime.now(UTC) + timedelta(minutes=30)).minute:02d}"
    write_env(env_file, var_dir, DIGEST_SEND_AT=away)
    pid, log = zygote.spawn(env_file, "schedule")
    try:
        wait_for(lambda: caught(pid, signal.SIGTERM) and alive(pid), "never started", log)
        time.sleep(0.5)  # the rest of the start, whatever it installs
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: "SIGHUP: configuration read again, nothing changed"
                 in log.read_text(encoding="utf-8") or not alive(pid), "no reload", log)
        assert alive(pid), log.read_text(encoding="utf-8")
        write_env(env_file, var_dir, DIGEST_SEND_AT=away,
                  DIGEST_FROM="Papers <papers@example.org>")
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: "SIGHUP: configuration changed (from_addr, from_name"
                 in log.read_text(encoding="utf-8") or not alive(pid), "no change", log)
        assert alive(pid), log.read_text(encoding="utf-8")
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGTERM)  # idle: it ends at once, as before
        outcome = zygote.wait(pid, log)
    assert outcome.killed and outcome.code == -signal.SIGTERM, outcome.output


def test_a_firing_logs_one_line_and_an_unexpected_error_says_what_to_do(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At INFO APScheduler wrapped each firing's summary in two lines of its own ("Running
    # job ..." and "... executed successfully"); and an error that is not one of ours
    # reached the log only as APScheduler's 'Job "daily digest run (trigger: ...)"
    # raised an exception' and a traceback, with no word of what it meant for the mail.
    from digest.cli.core import schedule_logging, scheduled_run
    from digest.schedule import JOB_ID, build_scheduler

    monkeypatch.setattr(logging.getLogger("apscheduler"), "level", logging.NOTSET)
    config = make_config(tmp_path / "var")
    add_subscribers(config, {"ada@example.org": 12})
    log = logging.getLogger(LOG)
    outcomes: list[str] = []

    def failing(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the templates folder is gone")

    def job() -> None:
        scheduled_run(config, log, clock=lambda: FIRST)  # sends ada's digest
        scheduled_run(config, log, clock=lambda: FIRST, run=failing)
        outcomes.append("ran")  # not reached when the error escapes to APScheduler
        scheduler.shutdown(wait=False)

    with caplog.at_level(logging.INFO):
        schedule_logging()
        scheduler = build_scheduler(config, job)
        scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))  # fire at once
        runner = threading.Thread(target=scheduler.start)
        runner.start()
        runner.join(timeout=120)
        if runner.is_alive():
            scheduler.shutdown(wait=False)
            runner.join(timeout=10)
    firing = [r for r in caplog.records if r.name == LOG or (
        r.name.startswith("apscheduler") and "daily digest run" in r.getMessage())]
    assert outcomes == ["ran"], [r.getMessage() for r in firing]
    assert [r.name for r in firing] == [LOG, LOG], [r.getMessage() for r in firing]
    sent, failed = firing
    assert sent.levelno == logging.INFO and "sent 1," in sent.getMessage()
    assert failed.levelno == logging.ERROR and failed.exc_info is not None
    assert "the templates folder is gone" in failed.getMessage()
    assert "next firing retries" in failed.getMessage()
