"""Dot-stuffing with bytes methods gives the bytes the regular-expression version gave."""

from __future__ import annotations

import itertools
import random
import re
from datetime import UTC, date, datetime

import pytest

from digest import render
from digest.config import Config
from digest.mail.message import message_to_bytes
from digest.mail.smtp import _dot_stuff, dot_stuffed
from digest.models import Digest, Paper, ScoredPaper, Subscriber, dot_unstuffed
from digest.pipeline.composing import compose


def regex_dot_stuff(payload: bytes) -> bytes:
    """The previous implementation, kept as the reference."""
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", payload)
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", b"\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b".first line\r\nsecond\r\n", b"..first line\r\nsecond\r\n.\r\n"),
        (b"a\r\n.\r\nb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\n.b\n", b"a\r\n..b\r\n.\r\n"),  # bare LF
        (b"a\r.b\r", b"a\r\n..b\r\n.\r\n"),  # bare CR
        (b"a\n\r.b", b"a\r\n\r\n..b\r\n.\r\n"),  # LF CR is two line endings
        (b"a\r\r\n..b", b"a\r\n\r\n...b\r\n.\r\n"),
        (b"no newline at the end", b"no newline at the end\r\n.\r\n"),
        (b"x.y\r\n. .\r\n", b"x.y\r\n.. .\r\n.\r\n"),  # only a line's first dot counts
    ],
)
def test_dot_stuffing_edge_cases(payload: bytes, expected: bytes) -> None:
    assert _dot_stuff(payload) == expected
    assert regex_dot_stuff(payload) == expected


def test_every_short_input_is_stuffed_like_the_regular_expressions() -> None:
    alphabet = (b".", b"\r", b"\n", b"a")
    for length in range(8):
        for parts in itertools.product(alphabet, repeat=length):
            payload = b"".join(parts)
            assert _dot_stuff(payload) == regex_dot_stuff(payload), payload


def test_long_random_inputs_are_stuffed_like_the_regular_expressions() -> None:
    rng = random.Random(5321)
    pieces = (b".", b"..", b"\r\n", b"\r\n.", b"\n", b"\r", b"text", b" ", b"=2E", b"\xc3\xa9")
    for _ in range(300):
        payload = b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 400)))
        assert _dot_stuff(payload) == regex_dot_stuff(payload), payload


def test_a_real_digest_is_stuffed_like_the_regular_expressions(config: Config) -> None:
    papers = tuple(
        ScoredPaper(
            paper=Paper(
                key=f"arxiv:2605.{n:05d}", title=f"Paper {n}",
                abstract="words " * 200, authors=("A. Author",),
            ),
            score=1.0, reason="matches: words",
        )
        for n in range(10)
    )
    sub = Subscriber(id=1, email="reader@example.org", name="Reader")
    digest = Digest(subscriber=sub, day=date(2026, 5, 25), papers=papers)
    env = render.make_environment(config.templates_dir)
    _, message = compose(config, digest, env=env, now=datetime(2026, 5, 25, 6, 0, tzinfo=UTC))
    payload = message_to_bytes(message)
    assert _dot_stuff(payload) == regex_dot_stuff(payload)
    assert _dot_stuff(payload.replace(b"\r\n", b"\n")) == regex_dot_stuff(payload)


def test_a_message_stuffed_ahead_is_what_the_send_would_stuff_and_unstuffs_exactly() -> None:
    alphabet = (b".", b"\r\n", b"a")
    for length in range(9):
        for parts in itertools.product(alphabet, repeat=length):
            wire = b"".join(parts) + b"\r\n"
            data = dot_stuffed(wire)
            assert data is not None and data + b".\r\n" == _dot_stuff(wire), wire
            assert dot_unstuffed(data) == wire, wire


@pytest.mark.parametrize("wire", [b"", b"no line end", b"a\r\nb", b"a\nb\r\n", b"a\rb\r\n"])
def test_bytes_whose_line_endings_the_send_would_mend_are_not_stuffed_ahead(
    wire: bytes,
) -> None:
    assert dot_stuffed(wire) is None
