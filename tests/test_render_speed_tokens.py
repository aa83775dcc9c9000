"""Signed links: the direct HMAC signer writes exactly itsdangerous' token format."""

from __future__ import annotations

import time
from typing import Any

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from digest import tokens
from digest.errors import TokenError

SECRET = "a-test-secret-key-0123456789"
STAMP = 1_780_000_000  # a fixed signing time, 2026

PAYLOADS: list[tuple[tokens.Purpose, Any]] = [
    ("unsubscribe", 1),
    ("preferences", 123456),
    ("feedback", [42, "arxiv:2605.22894", 1]),
    ("feedback", [42, "doi:10.1101/2026.05.01.123456", -1]),
    ("confirm", "émile@bücher.example"),
    # Long and repetitive: itsdangerous compresses it, and so must we.
    ("confirm", "a" * 200 + "@example.org"),
]


def itsdangerous_serializer(purpose: str, stamp: int | None = None) -> URLSafeTimedSerializer:
    class FixedTime(TimestampSigner):
        def get_timestamp(self) -> int:
            return stamp if stamp is not None else int(time.time())

    return URLSafeTimedSerializer(SECRET, salt=f"digest.{purpose}", signer=FixedTime)


@pytest.mark.parametrize(("purpose", "payload"), PAYLOADS)
def test_sign_writes_the_same_token_as_itsdangerous(purpose: tokens.Purpose, payload: Any) -> None:
    expected = itsdangerous_serializer(purpose, STAMP).dumps(payload)
    assert tokens.sign(SECRET, purpose, payload, timestamp=STAMP) == expected


def test_a_long_payload_is_compressed_like_itsdangerous() -> None:
    assert tokens.sign(SECRET, "confirm", "a" * 200 + "@example.org").startswith(".")


@pytest.mark.parametrize(("purpose", "payload"), PAYLOADS)
def test_tokens_from_either_signer_verify(purpose: tokens.Purpose, payload: Any) -> None:
    ours = tokens.sign(SECRET, purpose, payload)
    theirs = itsdangerous_serializer(purpose).dumps(payload)
    assert tokens.verify(SECRET, purpose, ours) == payload
    assert tokens.verify(SECRET, purpose, theirs) == payload
    assert itsdangerous_serializer(purpose).loads(ours) == payload


def test_a_token_opens_nothing_of_another_purpose_or_key() -> None:
    token = tokens.sign(SECRET, "unsubscribe", 7)
    with pytest.raises(TokenError):
        tokens.verify(SECRET, "preferences", token)
    with pytest.raises(TokenError):
        tokens.verify("another-secret-key-0123456789", "unsubscribe", token)


def test_an_old_feedback_token_expires() -> None:
    long_ago = int(time.time()) - 400 * 86400
    old = tokens.sign(SECRET, "feedback", [1, "arxiv:1", 1], timestamp=long_ago)
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(SECRET, "feedback", old)


def test_link_helpers_put_the_token_under_its_path() -> None:
    url = tokens.feedback_url("https://d.example", SECRET, 3, "arxiv:1", -1, timestamp=STAMP)
    token = url.removeprefix("https://d.example/feedback/")
    assert "/" not in token
    assert tokens.verify_feedback(SECRET, token) == [3, "arxiv:1", -1]
    unsubscribe = tokens.unsubscribe_url("", SECRET, 3)
    assert tokens.verify(SECRET, "unsubscribe", unsubscribe.rsplit("/", 1)[1]) == 3


@pytest.mark.parametrize("payload", [0, 7, 123456, 10**9, 10**10, "a", "aaaaaaaa", [1], "x" * 9])
def test_short_payloads_skip_zlib_and_still_match_itsdangerous(payload: Any) -> None:
    # JSON of 10 bytes or fewer is never compressed (zlib writes at least 9 bytes);
    # 10**10 and longer go through zlib as before.
    for purpose in ("unsubscribe", "preferences", "confirm"):
        expected = itsdangerous_serializer(purpose, STAMP).dumps(payload)
        assert tokens.sign(SECRET, purpose, payload, timestamp=STAMP) == expected


def test_zlib_never_wins_on_ten_bytes_or_fewer() -> None:
    # The bound _encode_payload relies on, checked on the most compressible inputs.
    import zlib

    for size in range(1, 11):
        for data in (b"1" * size, b"a" * size, bytes(size), b"[1,1,1,1,1"[:size]):
            assert len(zlib.compress(data)) >= len(data) - 1


FEEDBACK_KEYS = ["arxiv:2605.22894", "doi:10.1101/2026.05.01.123456", "rss:https://x.example/a?b=c#d",
                 "arxiv:émile"]


@pytest.mark.parametrize("key", FEEDBACK_KEYS)
def test_compact_feedback_links_carry_subscriber_paper_and_vote(key: str) -> None:
    more, less = tokens.feedback_urls("https://d.example", SECRET, 42, [key])
    for url, vote in ((more[key], 1), (less[key], -1)):
        token = url.removeprefix("https://d.example/feedback/")
        assert "/" not in token and "?" not in token and "#" not in token
        assert tokens.verify_feedback(SECRET, token) == [42, key, vote]
        assert len(token) < 512  # the web app refuses longer tokens


def test_old_feedback_tokens_still_verify() -> None:
    old = itsdangerous_serializer("feedback").dumps([42, "arxiv:2605.22894", -1])
    assert tokens.verify_feedback(SECRET, old) == [42, "arxiv:2605.22894", -1]


def test_compact_feedback_links_are_keyed_apart_from_other_tokens() -> None:
    token = tokens.feedback_url("", SECRET, 42, "arxiv:1", 1).rsplit("/", 1)[1]
    subscriber, direction, key, stamp, mac = token.split(".")
    for forged in (
        f"43.{direction}.{key}.{stamp}.{mac}",
        f"{subscriber}.less.{key}.{stamp}.{mac}",
        f"{subscriber}.{direction}.{key}.{stamp}.{'A' * len(mac)}",
        f"{subscriber}.{direction}.{key}.{stamp}.",
        f"{subscriber}.{direction}.{key}.!!.{mac}",
        f"x.{direction}.{key}.{stamp}.{mac}",
        f"{subscriber}.{direction}.{key}é.{stamp}.{mac}",  # not ASCII: no crash either
    ):
        with pytest.raises(TokenError, match="not valid"):
            tokens.verify_feedback(SECRET, forged)
    with pytest.raises(TokenError, match="not valid"):
        tokens.verify_feedback("another-secret-key-0123456789", token)
    # An unsubscribe token is no feedback token in either format.
    with pytest.raises(TokenError):
        tokens.verify_feedback(SECRET, tokens.sign(SECRET, "unsubscribe", 42))


def test_compact_feedback_links_expire_after_a_year_like_the_old_ones() -> None:
    now = int(time.time())
    fresh = tokens.feedback_url("", SECRET, 1, "arxiv:1", 1, timestamp=now - 364 * 86400)
    assert tokens.verify_feedback(SECRET, fresh.rsplit("/", 1)[1]) == [1, "arxiv:1", 1]
    for when in (now - 366 * 86400, now + 3600):
        stale = tokens.feedback_url("", SECRET, 1, "arxiv:1", 1, timestamp=when)
        with pytest.raises(TokenError, match="expired"):
            tokens.verify_feedback(SECRET, stale.rsplit("/", 1)[1])
