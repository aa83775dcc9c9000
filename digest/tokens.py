"""Signed links (itsdangerous format): a salt per purpose, so one kind of token opens nothing else.

Tokens are what ``itsdangerous.URLSafeTimedSerializer(secret_key, salt="digest.<purpose>")``
writes: compact JSON (zlib-compressed when that is shorter), URL-safe base64, a timestamp
and an HMAC-SHA1 keyed with SHA1(salt + "signer" + key). ``sign`` computes that directly
(a digest carries ~20 links, and the serializer's layers cost ~40 us per link); ``verify``
stays with itsdangerous, so both paths accept each other's tokens.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import zlib
from typing import Any, Literal, cast

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from digest.errors import TokenError

Purpose = Literal["unsubscribe", "preferences", "feedback", "confirm"]

# How long each kind of link stays valid, in seconds. None: until the key changes.
MAX_AGE: dict[str, int | None] = {
    "confirm": 3 * 24 * 3600,  # double opt-in links expire after 3 days
    "unsubscribe": None,  # an unsubscribe link must work for as long as the mail exists
    "preferences": None,
    "feedback": 365 * 24 * 3600,
}


@functools.lru_cache(maxsize=64)
def _serializer(secret_key: str, purpose: Purpose) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=f"digest.{purpose}")


@functools.lru_cache(maxsize=64)
def _signer(secret_key: str, purpose: Purpose) -> TimestampSigner:
    # A timed serializer makes timestamp signers; its annotation says only Signer.
    return cast(TimestampSigner, _serializer(secret_key, purpose).make_signer())


@functools.lru_cache(maxsize=64)
def _signing_key(secret_key: str, purpose: Purpose) -> bytes:
    # itsdangerous' default key derivation ("django-concat") with its default digest.
    salt = f"digest.{purpose}".encode()
    return hashlib.sha1(salt + b"signer" + secret_key.encode()).digest()


# json.dumps with these options builds a new encoder on every call; one encoder is reused.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@functools.lru_cache(maxsize=4)
def _stamp(timestamp: int) -> bytes:
    return _b64(timestamp.to_bytes(8, "big").lstrip(b"\x00"))


def _encode_payload(payload: Any) -> bytes:
    data = _JSON.encode(payload).encode()
    compressed = zlib.compress(data)
    if len(compressed) < len(data) - 1:
        return b"." + _b64(compressed)  # the leading "." marks a compressed payload
    return _b64(data)


def sign(secret_key: str, purpose: Purpose, payload: Any, *, timestamp: int | None = None) -> str:
    """Return a URL-safe signed token carrying ``payload`` for one purpose."""
    # The signing time is the one itsdangerous takes, as before (its signer reads the
    # clock); ``timestamp`` lets tests pin it.
    when = _signer(secret_key, purpose).get_timestamp() if timestamp is None else timestamp
    value = _encode_payload(payload) + b"." + _stamp(when)
    signature = hmac.digest(_signing_key(secret_key, purpose), value, "sha1")
    return (value + b"." + _b64(signature)).decode("ascii")


def verify(secret_key: str, purpose: Purpose, token: str, *, max_age: int | None = None) -> Any:
    """Return the payload of a valid token; raise TokenError when forged or expired."""
    age = max_age if max_age is not None else MAX_AGE[purpose]
    try:
        return _serializer(secret_key, purpose).loads(token, max_age=age)
    except SignatureExpired as err:
        raise TokenError(
            "this link has expired", "ask for a new one from the sign-up page"
        ) from err
    except BadSignature as err:
        raise TokenError(
            "this link is not valid", "use the link exactly as it appears in the email"
        ) from err


def unsubscribe_url(
    base_url: str, secret_key: str, subscriber_id: int, *, timestamp: int | None = None
) -> str:
    """Return the List-Unsubscribe URL of one subscriber."""
    token = sign(secret_key, "unsubscribe", subscriber_id, timestamp=timestamp)
    return f"{base_url}/unsubscribe/{token}"


def preferences_url(
    base_url: str, secret_key: str, subscriber_id: int, *, timestamp: int | None = None
) -> str:
    """Return the preferences page URL of one subscriber."""
    token = sign(secret_key, "preferences", subscriber_id, timestamp=timestamp)
    return f"{base_url}/preferences/{token}"


def feedback_url(
    base_url: str,
    secret_key: str,
    subscriber_id: int,
    paper_key: str,
    vote: int,
    *,
    timestamp: int | None = None,
) -> str:
    """Return the "more/less like this" URL for one (subscriber, paper, vote)."""
    token = sign(secret_key, "feedback", [subscriber_id, paper_key, vote], timestamp=timestamp)
    return f"{base_url}/feedback/{token}"


def confirm_url(base_url: str, secret_key: str, email: str) -> str:
    """Return the double opt-in confirmation URL for an address."""
    return f"{base_url}/confirm/{sign(secret_key, 'confirm', email)}"
