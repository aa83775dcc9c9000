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
    assert url == "https://d.example/feedback/" + tokens.sign(
        SECRET, "feedback", [3, "arxiv:1", -1], timestamp=STAMP
    )
    unsubscribe = tokens.unsubscribe_url("", SECRET, 3)
    assert tokens.verify(SECRET, "unsubscribe", unsubscribe.rsplit("/", 1)[1]) == 3
