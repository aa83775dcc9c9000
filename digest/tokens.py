"""Signed links (itsdangerous): a salt per purpose, so one kind of token opens nothing else."""

from __future__ import annotations

import functools
from typing import Any, Literal

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from digest.errors import TokenError

Purpose = Literal["unsubscribe", "preferences", "feedback", "confirm"]

# How long each kind of link stays valid, in seconds. None: until the key changes.
MAX_AGE: dict[str, int | None] = {
    "confirm": 3 * 24 * 3600,  # double opt-in links expire after 3 days
    "unsubscribe": None,  # an unsubscribe link must work for as long as the mail exists
    "preferences": None,
    "feedback": 365 * 24 * 3600,
}


# A digest carries ~20 signed links; building the serializer (key derivation setup) once
# per (key, purpose) instead of per link halves the cost of signing them.
@functools.lru_cache(maxsize=64)
def _serializer(secret_key: str, purpose: Purpose) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=f"digest.{purpose}")


def sign(secret_key: str, purpose: Purpose, payload: Any) -> str:
    """Return a URL-safe signed token carrying ``payload`` for one purpose."""
    return _serializer(secret_key, purpose).dumps(payload)


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


def unsubscribe_url(base_url: str, secret_key: str, subscriber_id: int) -> str:
    """Return the List-Unsubscribe URL of one subscriber."""
    return f"{base_url}/unsubscribe/{sign(secret_key, 'unsubscribe', subscriber_id)}"


def preferences_url(base_url: str, secret_key: str, subscriber_id: int) -> str:
    """Return the preferences page URL of one subscriber."""
    return f"{base_url}/preferences/{sign(secret_key, 'preferences', subscriber_id)}"


def feedback_url(
    base_url: str, secret_key: str, subscriber_id: int, paper_key: str, vote: int
) -> str:
    """Return the "more/less like this" URL for one (subscriber, paper, vote)."""
    token = sign(secret_key, "feedback", [subscriber_id, paper_key, vote])
    return f"{base_url}/feedback/{token}"


def confirm_url(base_url: str, secret_key: str, email: str) -> str:
    """Return the double opt-in confirmation URL for an address."""
    return f"{base_url}/confirm/{sign(secret_key, 'confirm', email)}"
