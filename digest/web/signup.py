"""Subscription flows behind the pages: double opt-in, status changes, votes, data export.

No Flask here: the views parse the request and call these with plain values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any, Literal

from digest import mail, render, tokens
from digest.config import Config
from digest.errors import DigestError, TokenError, UsageError
from digest.models import Profile, RenderedEmail, Subscriber
from digest.store import Store
from digest.store.web import ConfirmOutcome
from digest.web.forms import Schedule, top_terms

Send = Callable[[EmailMessage], None]

# At most one confirmation mail per address per hour: sign-up must not become a way
# to flood somebody's inbox.
CONFIRM_INTERVAL = timedelta(hours=1)
# A sign-up's stored settings live as long as its confirmation link.
CONFIRM_LIFETIME = timedelta(seconds=tokens.MAX_AGE["confirm"] or 0)

log = logging.getLogger("digest.web")


def smtp_send(config: Config) -> Send:
    """Return the production sender: the same transport the digest goes out through."""

    def send(message: EmailMessage) -> None:
        with mail.open_transport(config.smtp, config.maildir) as transport:
            transport.send(message)

    return send


def confirmation_message(
    config: Config, email: str, request: str, schedule: Schedule, *, now: datetime
) -> EmailMessage:
    """Build the double opt-in mail for an address and the sign-up it confirms."""
    url = tokens.confirm_url(config.base_url, config.secret_key, email, request)
    env = render.make_environment(config.templates_dir)
    rendered = render.render_confirmation(
        email=email, confirm_url=url, env=env, list_name=config.list_name,
        schedule=render.schedule_text(
            schedule.cadence, schedule.weekday, schedule.send_hour, schedule.timezone
        ),
        cadence=schedule.cadence,
    )
    return _message(config, email, rendered, now=now)


def already_subscribed_message(config: Config, sub: Subscriber, *, now: datetime) -> EmailMessage:
    """Build the answer to a sign-up for an address that already gets the digest."""
    env = render.make_environment(config.templates_dir)
    rendered = render.render_already_subscribed(
        email=sub.email,
        preferences_url=tokens.preferences_url(config.base_url, config.secret_key, sub.id),
        paused=sub.status == "paused",
        env=env,
        list_name=config.list_name,
    )
    return _message(config, sub.email, rendered, now=now)


def _message(
    config: Config, email: str, rendered: RenderedEmail, *, now: datetime
) -> EmailMessage:
    return mail.build_message(
        rendered,
        from_name=config.from_name,
        from_addr=config.from_addr,
        to_name="",
        to_addr=email,
        # Unique per mail, unlike a digest's: a second confirmation an hour later is a
        # different message and must not be dropped as a duplicate.
        message_id=make_msgid("confirm", domain=config.mail_domain),
        date=now,
        list_id=config.list_id,
        list_unsubscribe=None,
        list_name=config.list_name,
    )


@dataclass(frozen=True)
class SignupMail:
    """What became of a sign-up's mail: sent, held back (one went out within the hour)
    or failed (``error`` says why; a retry may send at once)."""

    outcome: Literal["sent", "recent", "failed"]
    error: str = ""


def request_subscription(
    config: Config,
    db: Store,
    email: str,
    profile: Profile,
    schedule: Schedule,
    *,
    now: datetime,
    send: Send,
    name: str = "",
) -> SignupMail:
    """Mail a confirmation link for a sign-up (at most one mail an hour per address).

    A new address gets a pending row. An address we know keeps its row untouched: the
    settings wait in a sign-up request that only the owner's click applies, since
    anyone may type anyone's address. An address that already gets the digest is told
    so, with its preferences link, and nothing is stored (unless mail to it is stopped
    after a bounce: confirming again is how its owner lifts that). Whatever the
    address's state, the caller shows the same page: the answer must not reveal who
    is subscribed (the web page tells only a failed mail apart, which fails alike for
    every address; the CLI reports all of it). ``name`` is the display name of a new
    row (the CLI's --name).
    """
    sub = db.find_subscriber(email)
    if sub is None:
        try:
            sub = db.add_subscriber(
                email, profile, now=now, name=name, status="pending",
                send_hour=schedule.send_hour,
                timezone=schedule.timezone, cadence=schedule.cadence,
                weekday=schedule.weekday, max_papers=schedule.max_papers,
                empty_digest=schedule.empty_digest, popularity=schedule.popularity,
            )
        except UsageError:
            sub = db.find_subscriber(email)  # a simultaneous sign-up created it first
            if sub is None:
                raise
    if not db.claim_confirmation(sub.id, now=now, interval=CONFIRM_INTERVAL):
        return SignupMail("recent")
    if sub.status in ("active", "paused") and not db.is_suppressed(sub.email):
        message = already_subscribed_message(config, sub, now=now)
    else:
        request = db.add_signup_request(
            sub.email, profile, schedule.as_fields(), now=now,
            expire_before=now - CONFIRM_LIFETIME,
        )
        message = confirmation_message(config, sub.email, request, schedule, now=now)
    try:
        send(message)
    except DigestError as err:
        db.release_confirmation(sub.id)
        log.error("confirmation mail to subscriber %s failed: %s", sub.id, err.message)
        return SignupMail("failed", err.message)
    return SignupMail("sent")


@dataclass(frozen=True)
class ConfirmLink:
    """What a confirmation link carries: the address and its sign-up request, if any."""

    email: str
    # None for a link mailed before sign-up requests were stored: it can only confirm
    # a pending subscriber, with the settings their row holds.
    request: str | None = None


def confirm_link(config: Config, token: str) -> ConfirmLink:
    """Return what a confirmation token carries; raise TokenError if it is invalid."""
    payload = tokens.verify(config.secret_key, "confirm", token,
                            fallbacks=config.secret_key_fallbacks)
    if isinstance(payload, str) and "@" in payload:
        return ConfirmLink(payload)
    valid = (
        isinstance(payload, list)
        and len(payload) == 2
        and all(isinstance(part, str) for part in payload)
        and "@" in payload[0]
    )
    if not valid:
        raise _invalid()
    return ConfirmLink(str(payload[0]), str(payload[1]))


@dataclass(frozen=True)
class Confirmation:
    """The outcome of a confirmation click, and the subscriber it concerns (None: gone)."""

    outcome: ConfirmOutcome
    subscriber: Subscriber | None


def confirm(config: Config, db: Store, token: str, *, now: datetime) -> Confirmation:
    """Confirm the sign-up a valid confirmation token names (see Store.confirm_subscriber)."""
    link = confirm_link(config, token)
    sub = db.find_subscriber(link.email)
    if sub is None:
        return Confirmation("gone", None)
    outcome = db.confirm_subscriber(sub.id, now=now, request=link.request)
    return Confirmation(outcome, db.get_subscriber(sub.id))


def subscriber_id(config: Config, purpose: tokens.Purpose, token: str) -> int:
    """Return the subscriber id an unsubscribe or preferences token carries."""
    payload = tokens.verify(config.secret_key, purpose, token,
                            fallbacks=config.secret_key_fallbacks)
    if not isinstance(payload, int) or isinstance(payload, bool):
        raise _invalid()
    return payload


@dataclass(frozen=True)
class Vote:
    """What a feedback link asks to record."""

    subscriber_id: int
    paper_key: str
    vote: int


def feedback_vote(config: Config, token: str) -> Vote:
    """Return the (subscriber, paper, vote) a feedback token carries (either link format)."""
    payload = tokens.verify_feedback(config.secret_key, token,
                                     fallbacks=config.secret_key_fallbacks)
    valid = (
        isinstance(payload, list)
        and len(payload) == 3
        and isinstance(payload[0], int)
        and isinstance(payload[1], str)
        and payload[2] in (1, -1)
    )
    if not valid:
        raise _invalid()
    return Vote(int(payload[0]), str(payload[1]), int(payload[2]))


def delete_subscriber(config: Config, db: Store, sub_id: int, *, now: datetime,
                      reason: str) -> None:
    """Delete a subscriber: every row about them, their digests' previews, their mail here.

    Without SMTP the pipeline delivers into the local Maildir and writes each digest's
    HTML beside it, named by subscriber and address; "everything we stored about you"
    includes those files. The
    web page (the subscriber's request) and `digest subscribers remove` (the
    operator's) both delete through here; ``reason`` is kept with the suppression.
    """
    sub = db.get_subscriber(sub_id)
    db.remove_subscriber(sub_id, now=now, reason=reason)
    remove_previews(config.preview_dir, sub_id)
    if sub is not None:
        # Without SMTP the messages themselves (digests, confirmation mails) were
        # delivered into the local Maildir: on this machine, and so stored about them.
        mail.remove_messages_to(config.maildir, sub.email)


def remove_previews(preview_dir: Path, sub_id: int) -> None:
    """Remove every HTML preview of one subscriber's digests (any day)."""
    # pipeline.preview_path names them <day>/<id, 6 digits>-<address>.html. The id
    # alone picks them out (ids are never reused), and the web app does not import the
    # pipeline (and with it the ranker) for a file name.
    for path in preview_dir.glob(f"*/{sub_id:06d}-*.html"):
        path.unlink(missing_ok=True)


def unsubscribe(db: Store, sub_id: int, *, now: datetime) -> None:
    """Stop all mail to a subscriber (safe to repeat: a replayed request changes nothing)."""
    db.change_status(sub_id, "unsubscribed", now=now, expect=("active", "paused", "pending"))


@dataclass(frozen=True)
class PaperItem:
    """A paper as the preferences page lists it; the title is empty when it is not stored."""

    key: str
    title: str = ""
    url: str = ""


@dataclass(frozen=True)
class RankerView:
    """What the ranker sees for one subscriber, for the preferences page."""

    liked: list[PaperItem]
    disliked: list[PaperItem]
    seeds: list[PaperItem]
    terms: list[str]


def ranker_view(db: Store, sub: Subscriber) -> RankerView:
    """Return the liked, disliked and seed papers (titles where stored) and the top terms."""
    votes = db.votes([sub.id]).get(sub.id, {})
    profile = sub.profile
    liked_keys = list(dict.fromkeys([*profile.liked, *(k for k, v in votes.items() if v > 0)]))
    liked_keys = [k for k in liked_keys if votes.get(k, 1) > 0]
    disliked_keys = list(
        dict.fromkeys([*profile.disliked, *(k for k, v in votes.items() if v < 0)])
    )
    disliked_keys = [k for k in disliked_keys if votes.get(k, -1) < 0]
    papers = db.get_papers([*liked_keys, *disliked_keys, *profile.seeds])

    def shown(keys: list[str]) -> list[PaperItem]:
        items = []
        for key in keys:
            paper = papers.get(key)
            url = paper.url if paper and paper.url.startswith(("https://", "http://")) else ""
            items.append(PaperItem(key, paper.title if paper else "", url))
        return items

    liked_papers = [papers[k] for k in [*liked_keys, *profile.seeds] if k in papers]
    disliked_papers = [papers[k] for k in disliked_keys if k in papers]
    return RankerView(
        liked=shown(liked_keys),
        disliked=shown(disliked_keys),
        seeds=shown(list(profile.seeds)),
        terms=top_terms(profile, liked_papers, disliked_papers),
    )


def _invalid() -> TokenError:
    return TokenError("this link is not valid", "use the link exactly as it appears in the email")


def export(db: Store, sub_id: int) -> dict[str, Any] | None:
    """Return everything stored about a subscriber, for the JSON download."""
    return db.export_subscriber(sub_id)
