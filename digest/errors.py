"""Errors that tell the user what to do: every DigestError carries a hint."""

from __future__ import annotations


class DigestError(Exception):
    """Base error: a message saying what went wrong and a hint saying what to do."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message


class ConfigError(DigestError):
    """A configuration value is missing or malformed."""

    exit_code = 78  # EX_CONFIG from sysexits.h


class UsageError(DigestError):
    """A command was called with arguments that cannot work."""

    exit_code = 2


class StoreError(DigestError):
    """The database is unreachable, locked, or at the wrong schema version."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class SchemaError(StoreError):
    """The database schema is not the version this code expects."""

    exit_code = 78


class SourceError(DigestError):
    """A feed or file could not be fetched or parsed."""


class DeliveryError(DigestError):
    """A message could not be delivered.

    ``permanent`` says whether retrying can help; ``code`` is the SMTP reply code when
    the server gave one.
    """

    def __init__(
        self, message: str, hint: str = "", *, code: int | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message, hint)
        self.code = code
        self.permanent = permanent


class AuthenticationError(DeliveryError):
    """The SMTP server refused our credentials; no further message can go out."""

    exit_code = 78


class TokenError(DigestError):
    """A signed link is forged, tampered with, or expired."""


class LockedError(DigestError):
    """Another run holds the lock."""

    exit_code = 75
