"""Web pages for subscribers; ``waitress-serve --call digest.web:create_app`` serves them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING

from digest.config import Config

if TYPE_CHECKING:
    from flask import Flask


def create_app(
    config: Config | None = None,
    *,
    now: Callable[[], datetime] | None = None,
    send: Callable[[EmailMessage], None] | None = None,
) -> Flask:
    """Build the web app (None: read the configuration from the environment)."""
    # Imported here so that `digest.web.forms` and `digest.web.signup` (used by the CLI)
    # do not pull in Flask.
    from digest.web.app import create_app as build

    return build(config, now=now, send=send)


__all__ = ["create_app"]
