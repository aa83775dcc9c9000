"""Render one digest into a signed, standards-grade message, and its HTML preview."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from datetime import date, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from digest import mail, packing, render, tokens
from digest.config import Config
from digest.models import (
    Digest,
    DigestLinks,
    OutgoingMessage,
    RenderedEmail,
    ScoredPaper,
    Subscriber,
)

# -- render -------------------------------------------------------------------------------


def digest_links(
    config: Config, subscriber_id: int, papers: Sequence[ScoredPaper]
) -> DigestLinks:
    """Return the signed links that go into one subscriber's digest."""
    base, key = config.base_url, config.secret_key
    more, less = tokens.feedback_urls(base, key, subscriber_id, [sp.paper.key for sp in papers])
    return DigestLinks(
        unsubscribe=tokens.unsubscribe_url(base, key, subscriber_id),
        preferences=tokens.preferences_url(base, key, subscriber_id),
        more=more,
        less=less,
    )


def compose(
    config: Config, digest: Digest, *, env: Any, now: datetime | None
) -> tuple[RenderedEmail, EmailMessage]:
    """Render one digest and build its message; return (rendered parts, message).

    Without ``now`` the message has no Date header (see ``write_ahead``).
    """
    sub = digest.subscriber
    links = digest_links(config, sub.id, digest.papers)
    list_name = config.list_name
    # render_digest renders the "nothing relevant today" note for an empty digest.
    rendered = render.render_digest(digest, links, env=env, list_name=list_name)
    message = mail.build_message(
        rendered,
        from_name=config.from_name,
        from_addr=config.from_addr,
        to_name=sub.name,
        to_addr=sub.email,
        message_id=message_id(config, sub.id, digest.day),
        date=now,
        list_id=config.list_id,
        list_unsubscribe=links.unsubscribe,
        list_name=list_name,  # as the confirmation mail's List-Id: clients show it
    )
    return rendered, message


def compose_wire(
    config: Config, digest: Digest, *, env: Any
) -> tuple[RenderedEmail, str, tuple[str, ...], bytes]:
    """Render one digest; return (rendered parts, envelope sender, recipients, bytes).

    The bytes have no Date header yet: ``mail.with_date`` adds it as they go out.
    """
    rendered, message = compose(config, digest, env=env, now=None)
    sender, recipients = mail.envelope(message)
    return rendered, sender, tuple(recipients), mail.message_to_bytes(message)


def write_ahead(config: Config, digest: Digest, *, env: Any) -> OutgoingMessage:
    """Render one digest for the outbox: its envelope and its bytes, packed, no Date yet.

    The bytes are stored dot-stuffed, as SMTP's DATA carries them: the check of their
    line endings and the stuffing, ~60 us a digest, are done here, in the plan phase's
    processes, rather than in a sender's, where each message's CPU bounds the rate. (A
    send into the Maildir undoes it, ~30 us beside the file it writes.)
    """
    _, sender, recipients, wire = compose_wire(config, digest, env=env)
    data = mail.dot_stuffed(wire)
    return OutgoingMessage(
        sender=sender,
        recipients=recipients,
        to_email=digest.subscriber.email,
        to_name=digest.subscriber.name,
        packed=packing.pack(wire if data is None else data),
        stuffed=data is not None,
    )


def html_part(wire: bytes) -> str:
    """Return the HTML part of a message's bytes (for the preview beside the Maildir)."""
    parsed = BytesParser(policy=policy.default).parsebytes(wire)
    body = parsed.get_body(preferencelist=("html",))
    html = str(body.get_content()) if isinstance(body, EmailMessage) else ""
    return html.replace("\r\n", "\n")  # as rendered: the wire's CRLF is the transport's


def message_id(config: Config, subscriber_id: int, day: date) -> str:
    """Return the Message-ID of a subscriber's digest of a day on this installation."""
    return mail.make_message_id(subscriber_id, day, config.mail_domain,
                                installation=config.secret_key)


# Of an address in a preview's file name: "<id>-" (7+ bytes), this, ".html" (5 bytes).
PREVIEW_ADDRESS_CHARS = 200


def preview_path(config: Config, subscriber: Subscriber, day: date) -> Path:
    """Return where the HTML preview of one subscriber's digest for a day is written."""
    # The address only helps a person find a file (the id makes the name unique, and
    # is what erasure looks for): cut, so that an address of up to 254 characters stays
    # within the 255 bytes a file name may have.
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", subscriber.email)[:PREVIEW_ADDRESS_CHARS]
    return config.preview_dir / day.isoformat() / f"{subscriber.id:06d}-{safe}.html"


def write_preview(config: Config, subscriber: Subscriber, day: date, html: str) -> Path:
    """Write a digest's HTML beside the Maildir, for a browser; return its path."""
    path = preview_path(config, subscriber, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


def prune_previews(config: Config, *, before: date) -> int:
    """Delete the HTML previews of digests of days before ``before``; return how many.

    Without SMTP every digest sent gets one (~30 KB), a folder a day: at 10,000
    subscribers ~300 MB a day that nothing else ever removes.
    """
    removed = 0
    if not config.preview_dir.is_dir():
        return removed
    for folder in config.preview_dir.iterdir():
        try:
            day = date.fromisoformat(folder.name)
        except ValueError:
            continue  # not a day's folder (preview_path writes only those)
        if day >= before or not folder.is_dir():
            continue
        for path in folder.glob("*.html"):
            path.unlink(missing_ok=True)
            removed += 1
        with contextlib.suppress(OSError):
            folder.rmdir()  # left in place if something else was put in it
    return removed
