"""The send rate cap and parallel SMTP connections."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from digest import pipeline
from digest.models import Profile
from digest.pipeline import Pacer
from digest.store import open_store
from tests.fixtures.config import make_config


class FakeClock:
    """A monotonic clock that only moves when the pacer sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_pacer_spaces_sends_to_the_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(4.0, monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(9):
        pacer.wait()
    # The first send goes at once; each later one waits a quarter second.
    assert clock.sleeps == [0.25] * 8
    assert clock.now == 102.0


def test_pacer_without_a_rate_never_sleeps() -> None:
    clock = FakeClock()
    pacer = Pacer(0, monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(5):
        pacer.wait()
    assert clock.sleeps == []


def test_run_paces_every_message(tmp_path: Path, smtp_server: Any) -> None:
    config = make_config(tmp_path / "var", smtp=smtp_server.settings(), send_rate=10.0)
    store = open_store(config.database_url)
    for n in range(5):
        store.add_subscriber(f"p{n}@example.org", Profile(interests="language models"),
                             now=datetime(2026, 5, 1, tzinfo=UTC))
    clock = FakeClock()
    pacer = Pacer(config.send_rate, monotonic=clock.monotonic, sleep=clock.sleep)
    report = pipeline.run(config, now=datetime(2026, 5, 25, 9, tzinfo=UTC), day=date(2026, 5, 25),
                          pacer=pacer)
    assert report.sent == 5
    assert clock.sleeps == pytest.approx([0.1] * 4)


def test_several_connections_deliver_each_digest_once(tmp_path: Path, smtp_server: Any) -> None:
    config = make_config(tmp_path / "var", smtp=smtp_server.settings())
    config = replace(config, connections=3)
    store = open_store(config.database_url)
    emails = [f"w{n}@example.org" for n in range(60)]
    for email in emails:
        store.add_subscriber(email, Profile(interests="vision transformers"),
                             now=datetime(2026, 5, 1, tzinfo=UTC), max_papers=3)
    report = pipeline.run(config, now=datetime(2026, 5, 25, 9, tzinfo=UTC), day=date(2026, 5, 25),
                          send_chunk=10)
    assert report.sent == 60 and report.failed == 0
    received = sorted(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert received == sorted(emails)
    # 60 rows in chunks of 10 over 3 workers: each worker opened its own connection.
    assert smtp_server.connections == 3
