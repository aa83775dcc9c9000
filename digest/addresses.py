"""Email address validation (email-validator, syntax only: no DNS lookups)."""

from __future__ import annotations

import functools

from email_validator import EmailNotValidError, validate_email

from digest.errors import UsageError

MAX_LENGTH = 254


def normalize_email(address: str) -> str:
    """Return the normalised address, or raise UsageError saying what is wrong."""
    candidate = address.strip()
    if not candidate or len(candidate) > MAX_LENGTH or "\r" in candidate or "\n" in candidate:
        raise UsageError(
            f"{candidate[:60]!r} is not an email address", "give one address like name@example.org"
        )
    try:
        # No SMTPUTF8: a non-ASCII local part could never be sent (mail/message.py).
        valid = validate_email(candidate, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as err:
        raise UsageError(
            f"{candidate!r} is not a valid email address: {err}",
            "give one address like name@example.org",
        ) from err
    # Lower-case the whole address: providers treat local parts case-insensitively in
    # practice, and one subscriber must not exist twice under two spellings.
    return str(valid.normalized).lower()


@functools.lru_cache(maxsize=4096)
def ascii_domain(domain: str) -> str:
    """Return a domain as it goes on the wire: IDNA 2008 A-labels (``xn--``) if not ASCII.

    Python's "idna" codec is IDNA 2003, which maps "ß" to "ss" and the Greek final
    sigma to a sigma: "faß.de" (xn--fa-hia.de) became fass.de, somebody else's domain.
    email-validator, which accepted the address, encodes as IDNA 2008 does. Raises
    ValueError (EmailNotValidError) for a domain it refuses.
    """
    if domain.isascii():
        return domain.encode("idna").decode("ascii")  # checks the labels' lengths
    valid = validate_email(f"x@{domain}", check_deliverability=False, allow_smtputf8=False)
    return str(valid.ascii_domain)
