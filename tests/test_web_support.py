"""Helpers shared by the web tests (no tests here): a site with a fake clock and an outbox."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from digest.config import Config
from digest.models import Paper, Profile, Subscriber
from digest.store import Store
from digest.web import create_app

START = datetime(2026, 5, 25, 9, 0, tzinfo=UTC)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Clock:
    """A settable clock for the app's ``now`` seam."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move time forward."""
        self.now += timedelta(**delta)


@dataclass
class Site:
    """An app on a temp database, its client, clock and the mail it sent."""

    config: Config
    app: Flask
    client: FlaskClient
    clock: Clock
    outbox: list[EmailMessage] = field(default_factory=list)

    @property
    def db(self) -> Store:
        store: Store = self.app.extensions["digest"]["store"]
        return store

    def csrf(self, path: str = "/subscribe", client: FlaskClient | None = None) -> str:
        """GET a page and return the CSRF token in its form."""
        response = (client or self.client).get(path)
        match = CSRF.search(response.get_data(as_text=True))
        assert match, f"no CSRF token on {path} ({response.status_code})"
        return match.group(1)

    def signup(self, email: str, *, remote: str = "127.0.0.1",
               headers: dict[str, str] | None = None, **fields: Any) -> Any:
        """Submit the sign-up form from the client address ``remote``; fields override a
        small valid profile."""
        data: dict[str, Any] = {
            "csrf_token": self.csrf(),
            "email": email,
            "interests": "graph neural networks for molecules",
            "keywords": "GNN, message passing",
            "categories": ["cs.LG"],
            "send_hour": "8",
            "timezone": "Europe/Berlin",
            "cadence": "daily",
            "max_papers": "7",
        }
        data.update(fields)
        return self.client.post("/subscribe", data=data, content_type="multipart/form-data",
                                environ_base={"REMOTE_ADDR": remote}, headers=headers or {})

    def add(self, email: str, status: str = "active", **profile: Any) -> Subscriber:
        """Store a subscriber directly."""
        return self.db.add_subscriber(
            email, Profile(interests="language models", **profile), now=self.clock(),
            status=status,
        )

    def paper(self, key: str = "arxiv:2605.00001", title: str = "Agents <b>that</b> plan") -> Paper:
        """Store one paper and return it."""
        paper = Paper(key=key, title=title, abstract="We study planning agents with tools.",
                      url=f"https://arxiv.org/abs/{key.removeprefix('arxiv:')}")
        self.db.save_papers([paper], batch_day=date(2026, 5, 25), now=self.clock())
        return paper


def make_site(config: Config) -> Site:
    """Build a Site whose mail goes into a list."""
    clock = Clock()
    outbox: list[EmailMessage] = []
    app = create_app(config, now=clock, send=outbox.append)
    app.testing = True
    return Site(config=config, app=app, client=app.test_client(), clock=clock, outbox=outbox)


def link_in(message: EmailMessage, kind: str) -> str:
    """Return the site-relative path of the first ``/kind/<token>`` link in a mail's text."""
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()  # type: ignore[attr-defined]
    match = re.search(rf"https?://[^/\s]+(/{kind}/[A-Za-z0-9_.\-]+)", text)
    assert match, f"no {kind} link in {text!r}"
    return match.group(1)
