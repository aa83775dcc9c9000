"""Signed links: a key per purpose, so one kind of token opens nothing else.

Tokens are what ``itsdangerous.URLSafeTimedSerializer(secret_key, salt="digest.<purpose>")``
writes: compact JSON (zlib-compressed when that is shorter), URL-safe base64, a timestamp
and an HMAC-SHA1 keyed with SHA1(salt + "signer" + key). ``sign`` computes that directly;
``verify`` stays with itsdangerous, so both paths accept each other's tokens.

Feedback links ("more/less like this", ~20 in a digest) are written in a compact format
of their own, ``<subscriber>.<more|less>.<paper key, base64>.<time>.<mac>`` (HMAC-SHA256
under a key of their own): the itsdangerous format costs ~25 us a link, mostly JSON and
a zlib attempt that never pays off on a payload this short; this one costs a few. Links
in the itsdangerous format, in every digest sent before, stay valid: ``verify_feedback``
reads both.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import zlib
from collections.abc import Iterable, Sequence
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


# zlib's output is at least 9 bytes (2 header, 4 checksum, and a deflate stream of at
# least 3 bytes for any input), and itsdangerous keeps it only when it is shorter than
# the JSON by 2: JSON of this length or less is never compressed, so zlib is not run.
_NEVER_COMPRESSED = 10


def _encode_payload(payload: Any) -> bytes:
    data = _JSON.encode(payload).encode()
    if len(data) <= _NEVER_COMPRESSED:
        return _b64(data)
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


def verify(
    secret_key: str,
    purpose: Purpose,
    token: str,
    *,
    max_age: int | None = None,
    fallbacks: Sequence[str] = (),
) -> Any:
    """Return the payload of a valid token; raise TokenError when forged or expired.

    A token signed with one of the ``fallbacks`` (keys in use before ``secret_key``) is
    valid too: the links in mail already sent keep working after the key changes.
    """
    age = max_age if max_age is not None else MAX_AGE[purpose]
    for key in (secret_key, *fallbacks):
        try:
            return _serializer(key, purpose).loads(token, max_age=age)
        except SignatureExpired as err:
            raise _expired(purpose) from err
        except BadSignature:
            continue  # not this key's signature: try the next one
    raise _not_valid()


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
    more, less = feedback_urls(
        base_url, secret_key, subscriber_id, [paper_key], timestamp=timestamp
    )
    return (more if vote > 0 else less)[paper_key]


def feedback_urls(
    base_url: str,
    secret_key: str,
    subscriber_id: int,
    paper_keys: Iterable[str],
    *,
    timestamp: int | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Return ({paper key: "more like this" URL}, {paper key: "less like this" URL})."""
    when = _signer(secret_key, "feedback").get_timestamp() if timestamp is None else timestamp
    key = _feedback_key(secret_key)
    prefix = f"{base_url}/feedback/"
    stamp = _stamp(when).decode("ascii")
    more: dict[str, str] = {}
    less: dict[str, str] = {}
    for paper_key in paper_keys:
        encoded = _b64_key(paper_key)
        for links, direction in ((more, "more"), (less, "less")):
            body = f"{subscriber_id}.{direction}.{encoded}.{stamp}"
            links[paper_key] = f"{prefix}{body}.{_mac(key, body)}"
    return more, less


def verify_feedback(secret_key: str, token: str, *, fallbacks: Sequence[str] = ()) -> Any:
    """Return the [subscriber, paper key, vote] of a valid feedback token, in either format.

    Raise TokenError when it is forged, malformed or older than a year. A token signed
    with one of the ``fallbacks`` (earlier keys) is valid too.
    """
    parts = token.split(".")
    if len(parts) != 5 or parts[1] not in _VOTES:
        # Not the compact format: a link from a digest sent before it (itsdangerous).
        return verify(secret_key, "feedback", token, fallbacks=fallbacks)
    body, _, mac = token.rpartition(".")
    if not token.isascii() or not any(
        hmac.compare_digest(mac, _mac(_feedback_key(key), body))
        for key in (secret_key, *fallbacks)
    ):
        raise _not_valid()
    subscriber, direction, encoded, stamp, _ = parts
    try:
        paper_key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        when = int.from_bytes(base64.urlsafe_b64decode(stamp + "=" * (-len(stamp) % 4)), "big")
        subscriber_id = int(subscriber)
    except (ValueError, UnicodeDecodeError) as err:  # binascii.Error is a ValueError
        raise _not_valid() from err
    # Judged as itsdangerous judges the older links: by its clock, and a signing time in
    # the future is as invalid as one too long ago.
    limit = MAX_AGE["feedback"]
    if limit is not None:
        age = _signer(secret_key, "feedback").get_timestamp() - when
        if not 0 <= age <= limit:
            raise _expired("feedback")
    return [subscriber_id, paper_key, _VOTES[direction]]


_VOTES = {"more": 1, "less": -1}


@functools.lru_cache(maxsize=64)
def _feedback_key(secret_key: str) -> tuple[Any, Any]:
    """Return HMAC-SHA256's inner and outer hash states for the feedback links' key."""
    # A key of its own, derived from the secret, so that no other token's signature
    # can pass for a feedback link's and the reverse. The two padded-key states are
    # hashed once and copied per link: RFC 2104 HMAC, at a quarter of hmac.digest's
    # cost (which looks the hash up by name on every call).
    key = hmac.digest(secret_key.encode(), b"digest.feedback-link", "sha256")
    block = key.ljust(hashlib.sha256().block_size, b"\x00")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    return inner, outer


def _mac(states: tuple[Any, Any], body: str) -> str:
    """Return HMAC-SHA256 of ``body`` cut to 128 bits, as 22 URL-safe characters."""
    inner, outer = states[0].copy(), states[1].copy()
    inner.update(body.encode("ascii"))
    outer.update(inner.digest())
    return _b64(outer.digest()[:16]).decode("ascii")


# A day's digests draw on one batch of papers: each key is encoded once.
@functools.lru_cache(maxsize=8192)
def _b64_key(paper_key: str) -> str:
    return _b64(paper_key.encode()).decode("ascii")


def _expired(purpose: Purpose) -> TokenError:
    """Say what to do about an expired link: what works depends on the kind of link."""
    if purpose == "confirm":
        hint = "sign up again on the sign-up page to get a new confirmation link"
    else:
        # The sign-up page gives no thumbs links; every digest carries fresh ones.
        hint = "use the links in a newer digest: they work for a year"
    return TokenError("this link has expired", hint)


def _not_valid() -> TokenError:
    return TokenError("this link is not valid", "use the link exactly as it appears in the email")


def confirm_url(base_url: str, secret_key: str, email: str, request: str) -> str:
    """Return the double opt-in confirmation URL for an address and its sign-up request.

    The token carries the address and the id of the stored sign-up whose settings the
    click applies (links from before requests were stored carry the address alone).
    """
    return f"{base_url}/confirm/{sign(secret_key, 'confirm', [email, request])}"
