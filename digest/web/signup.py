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
from typing import Any

from digest import mail, render, tokens
from digest.config import Config
from digest.errors import DigestError, TokenError, UsageError
from digest.models import Profile, Subscriber
from digest.store import Store
from digest.web.forms import Schedule, top_terms

Send = Callable[[EmailMessage], None]

# At most one confirmation mail per address per hour: sign-up must not become a way
# to flood somebody's inbox.
CONFIRM_INTERVAL = timedelta(hours=1)
# Statuses whose stored profile a new sign-up may overwrite: nobody receives mail in
# them, and the new profile only takes effect after the address owner confirms.
REFRESHABLE = ("pending", "unsubscribed")

log = logging.getLogger("digest.web")


def smtp_send(config: Config) -> Send:
    """Return the production sender: the same transport the digest goes out through."""

    def send(message: EmailMessage) -> None:
        with mail.open_transport(config.smtp, config.maildir) as transport:
            transport.send(message)

    return send


def confirmation_message(config: Config, email: str, *, now: datetime) -> EmailMessage:
    """Build the double opt-in mail for an address."""
    url = tokens.confirm_url(config.base_url, config.secret_key, email)
    env = render.make_environment(config.templates_dir)
    list_name = config.from_name or "Research Digest"
    rendered = render.render_confirmation(
        email=email, confirm_url=url, env=env, list_name=list_name
    )
    domain = config.from_addr.rpartition("@")[2] or "localhost"
    return mail.build_message(
        rendered,
        from_name=config.from_name,
        from_addr=config.from_addr,
        to_name="",
        to_addr=email,
        # Unique per mail, unlike a digest's: a second confirmation an hour later is a
        # different message and must not be dropped as a duplicate.
        message_id=make_msgid("confirm", domain=domain),
        date=now,
        list_id=config.list_id,
        list_unsubscribe=None,
        list_name=list_name,
    )


def request_subscription(
    config: Config,
    db: Store,
    email: str,
    profile: Profile,
    schedule: Schedule,
    *,
    now: datetime,
    send: Send,
) -> None:
    """Record a sign-up as pending and mail a confirmation link (at most hourly per address).

    Whatever the address's state, the caller shows the same page: the answer must not
    reveal who is subscribed.
    """
    sub = db.find_subscriber(email)
    if sub is None:
        try:
            sub = db.add_subscriber(
                email, profile, now=now, status="pending", send_hour=schedule.send_hour,
                timezone=schedule.timezone, cadence=schedule.cadence,
                weekday=schedule.weekday, max_papers=schedule.max_papers,
                empty_digest=schedule.empty_digest, popularity=schedule.popularity,
            )
        except UsageError:
            sub = db.find_subscriber(email)  # a simultaneous sign-up created it first
            if sub is None:
                raise
    elif sub.status in REFRESHABLE:
        db.update_subscriber(sub.id, now=now, profile=profile, **schedule.as_fields())
    # An active or paused subscriber keeps their profile (they edit it through their
    # preferences link); they still get a mail, so the answer looks the same.
    if not db.claim_confirmation(sub.id, now=now, interval=CONFIRM_INTERVAL):
        return
    try:
        send(confirmation_message(config, sub.email, now=now))
    except DigestError as err:
        db.release_confirmation(sub.id)
        log.error("confirmation mail to subscriber %s failed: %s", sub.id, err)


def confirmed_address(config: Config, token: str) -> str:
    """Return the address a confirmation token was issued for; raise TokenError if invalid."""
    payload = tokens.verify(config.secret_key, "confirm", token)
    if not isinstance(payload, str) or "@" not in payload:
        raise _invalid()
    return payload


def confirm(config: Config, db: Store, token: str, *, now: datetime) -> Subscriber | None:
    """Activate the subscriber a valid confirmation token names; None if they are gone."""
    sub = db.find_subscriber(confirmed_address(config, token))
    if sub is None or not db.confirm_subscriber(sub.id, now=now):
        return None
    return db.get_subscriber(sub.id)


def subscriber_id(config: Config, purpose: tokens.Purpose, token: str) -> int:
    """Return the subscriber id an unsubscribe or preferences token carries."""
    payload = tokens.verify(config.secret_key, purpose, token)
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
    payload = tokens.verify_feedback(config.secret_key, token)
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
