"""Operator commands for the delivery ledger and for bounces: list, retry, scan."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any, cast

import click

from digest.addresses import normalize_email
from digest.cli.base import echo_json, get_config, main, now_utc, parse_day
from digest.cli.core import open_db
from digest.errors import UsageError
from digest.mail import bounces as mail_bounces
from digest.models import Delivery, DeliveryStatus
from digest.store import Store, email_hash

STATUSES = ("planned", "sending", "sent", "temp_failed", "perm_failed", "unknown", "skipped")
RETRYABLE = ("unknown", "perm_failed", "temp_failed")


@main.group()
def deliveries() -> None:
    """Inspect the delivery ledger and hand failed or unknown rows back to the next run."""


def delivery_dict(row: Delivery, email: str) -> dict[str, Any]:
    """Return one ledger row as JSON-ready data."""
    return {
        "day": row.day.isoformat(),
        "email": email,
        "subscriber_id": row.subscriber_id,
        "status": row.status,
        "attempts": row.attempts,
        "error": row.error,
        "message_id": row.message_id,
        "papers": len(row.paper_keys),
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
        "next_attempt_at": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
    }


@deliveries.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only rows with this status.")
@click.option("--date", "day_text", help="Only this digest day (YYYY-MM-DD).")
@click.option("--limit", type=click.IntRange(1, 100000), default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@click.pass_context
def list_(
    ctx: click.Context, status: str | None, day_text: str | None, limit: int, as_json: bool
) -> None:
    """List ledger rows, newest day first."""
    day = parse_day(day_text, date.min) if day_text else None
    db = open_db(get_config(ctx))
    try:
        rows = db.list_deliveries(status=status, day=day, limit=limit)
    finally:
        db.close()
    if as_json:
        echo_json([delivery_dict(row, email) for row, email in rows])
        return
    for row, email in rows:
        error = f"  {row.error}" if row.error else ""
        click.echo(
            f"{row.day.isoformat()}  {row.status:<11} {row.attempts}x  {email}{error}"
        )
    click.echo(f"{len(rows)} row{'' if len(rows) == 1 else 's'}")


@deliveries.command()
@click.option(
    "--status",
    type=click.Choice(RETRYABLE),
    default="unknown",
    show_default=True,
    help="Which rows to hand back.",
)
@click.option("--date", "day_text", help="Only this digest day (YYYY-MM-DD).")
@click.option("--subscriber", "email", help="Only this subscriber (email).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def retry(
    ctx: click.Context,
    status: str,
    day_text: str | None,
    email: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Move failed or unknown rows back to planned so that the next run sends them."""
    day = parse_day(day_text, date.min) if day_text else None
    db = open_db(get_config(ctx))
    try:
        subscriber_id = None
        if email:
            sub = db.find_subscriber(normalize_email(email))
            if sub is None:
                raise UsageError(f"no subscriber {email}", "see `digest subscribers list`")
            subscriber_id = sub.id
        rows = [
            (row, addr)
            for row, addr in db.list_deliveries(status=status, day=day, limit=1_000_000)
            if subscriber_id is None or row.subscriber_id == subscriber_id
        ]
        if not rows:
            if as_json:
                echo_json({"retried": 0, "status": status})
            else:
                click.echo(f"no {status} rows match; nothing to retry")
            return
        if not as_json:
            _explain(status, rows, db)
        if not yes:
            click.confirm(f"hand {len(rows)} {status} row(s) back to the next run?", abort=True)
        moved = db.retry_deliveries(
            status=cast(DeliveryStatus, status),  # click.Choice limits it to RETRYABLE
            now=now_utc(),
            day=day,
            subscriber_id=subscriber_id,
        )
    finally:
        db.close()
    days = sorted({row.day for row, _ in rows})
    if as_json:
        echo_json({"retried": moved.planned, "status": status,
                   "days": [d.isoformat() for d in days], "papers_left_out": moved.left_out,
                   "skipped": moved.skipped})
        return
    click.echo(
        f"{moved.planned} row(s) planned again; the next `digest run` sends those still "
        f"within the grace window"
    )
    if moved.left_out:
        click.echo(
            f"{moved.left_out} of their papers were left out: mailed to the subscriber "
            f"since, or waiting in another of their digests"
        )
    if moved.skipped:
        click.echo(
            f"{moved.skipped} row(s) skipped instead: every paper they held was mailed "
            f"since or waits in another digest (see `digest deliveries list --status "
            f"skipped`)"
        )
    older = [d for d in days if d < now_utc().date()]
    if older:
        click.echo(
            f"for older days send one at a time: digest run --date {older[0].isoformat()} "
            f"--subscriber EMAIL"
        )


def _explain(status: str, rows: list[tuple[Delivery, str]], db: Store) -> None:
    """Print what retrying these rows means, before the operator confirms."""
    for row, email in rows[:20]:
        click.echo(f"  {row.day.isoformat()}  {email}  {row.error or ''}")
    if len(rows) > 20:
        click.echo(f"  ... and {len(rows) - 20} more")
    if status == "unknown":
        click.echo(
            "WARNING: for an unknown row the SMTP server may already have accepted the "
            "message; the recipient may get a duplicate (with the same Message-ID). "
            "Check the server's log first if you can."
        )
    elif status == "perm_failed":
        click.echo("note: the server refused these permanently; retry only after a fix")
    hashes = db.suppressed_hashes()
    suppressed = [email for _, email in rows if email_hash(email) in hashes]
    if suppressed:
        click.echo(
            f"note: {len(suppressed)} of these addresses are suppressed and will get "
            f"nothing ({', '.join(suppressed[:5])})"
        )


# -- bounces ------------------------------------------------------------------------------


@main.group()
def bounces() -> None:
    """Read bounce and complaint reports and suppress the addresses they name."""


@bounces.command()
@click.option(
    "--maildir",
    type=click.Path(path_type=Path, file_okay=False),
    help="A Maildir that receives bounces (the folder holding cur/ and new/).",
)
@click.option("--imap", "imap_url", help="imaps://user:password@host/INBOX (read-only).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def scan(ctx: click.Context, maildir: Path | None, imap_url: str | None, as_json: bool) -> None:
    """Read bounces (DSN, qmail, Exim) and ARF complaints from a mailbox; suppress per policy."""
    if (maildir is None) == (imap_url is None):
        raise UsageError("give exactly one of --maildir PATH or --imap URL", "")
    if maildir is not None:
        messages: Iterable[bytes] = mail_bounces.read_maildir(maildir)
        source = f"maildir:{maildir}"
    else:
        assert imap_url is not None
        messages = mail_bounces.read_imap(imap_url)
        source = mail_bounces.redact_url(imap_url)
    db = open_db(get_config(ctx))
    try:
        result = scan_messages(db, messages, source=source, now=now_utc())
    finally:
        db.close()
    if as_json:
        echo_json(result)
        return
    unread = result["unreadable"]
    click.echo(
        f"scanned {result['messages']} messages: {result['hard']} hard, {result['soft']} soft, "
        f"{result['complaint']} complaints, {result['unverified']} unverified, "
        f"{result['ignored']} not bounces, "
        f"{result['seen']} seen before"
        + (f", {len(unread)} unreadable" if unread else "")
        + f"; suppressed {len(result['suppressed'])} addresses"
    )
    for item in result["suppressed"]:
        click.echo(f"  suppressed {item['email']}: {item['reason']}")
    if result["unverified"]:
        click.echo(
            "  unverified: a report carrying no Message-ID we sent to the address it names "
            "(forged, or without the original's headers) suppresses nobody; see `digest "
            "bounces list`, and stop mail by hand if it is real: digest subscribers remove "
            "EMAIL"
        )
    for item in unread:
        click.echo(
            f"  unreadable: {item['subject'] or '(no subject)'} from {item['from'] or '?'}, "
            f"{item['date'] or 'undated'}, Message-ID {item['message_id'] or '(none)'}: "
            f"{item['reason']}"
        )
    if unread:
        click.echo(
            "  read the unreadable ones yourself (they stay in the mailbox); stop mail to an "
            "address they name with: digest subscribers remove EMAIL"
        )


def scan_messages(
    db: Store, messages: Iterable[bytes], *, source: str, now: datetime
) -> dict[str, Any]:
    """Parse each message, record its bounce and apply the policy; return the counts.

    ``hard``, ``soft`` and ``complaint`` count verified reports; ``unverified`` those
    that name no message the ledger sent to their address (recorded, acting on nothing).
    """
    counts: dict[str, Any] = {
        "messages": 0, "hard": 0, "soft": 0, "complaint": 0, "unverified": 0, "ignored": 0,
        "seen": 0, "suppressed": [], "unreadable": [],
    }
    for raw in messages:
        counts["messages"] += 1
        bounce = mail_bounces.parse_bounce(raw)
        if bounce is None:
            # A failure report that cannot be read is named, not counted away with
            # ordinary mail: its address would otherwise go on getting mail unnoticed.
            why = mail_bounces.unreadable(raw)
            if why is None:
                counts["ignored"] += 1
            else:
                counts["unreadable"].append({**mail_bounces.headline(raw), "reason": why})
            continue
        applied = mail_bounces.apply_bounce(db, bounce, source=source, now=now)
        if not applied.new:
            counts["seen"] += 1
            continue
        if not applied.verified:
            counts["unverified"] += 1
            continue
        counts[bounce.kind] += 1
        if applied.reason is not None:
            counts["suppressed"].append({"email": bounce.recipient, "reason": applied.reason})
    return counts


@bounces.command("list")
@click.option("--limit", type=click.IntRange(1, 100000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def list_bounces(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List recorded bounces and complaints, newest first."""
    db = open_db(get_config(ctx))
    try:
        rows = db.list_bounces(limit=limit)
    finally:
        db.close()
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        who = row["email"] or f"(hash {row['email_hash'][:12]})"
        flag = " suppressed" if row["suppressed"] else ""
        if not row["verified"]:
            flag += " unverified"
        status = f" {row['status']}" if row["status"] else ""
        click.echo(
            f"{row['bounced_at']}  {row['kind']:<9}{status}  {who}{flag}  {row['diagnostic']}"
        )
    click.echo(f"{len(rows)} bounce{'' if len(rows) == 1 else 's'}")
