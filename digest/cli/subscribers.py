"""Operator commands for subscribers: add, list, show, export, remove, import (CSV)."""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import click

from digest import taxonomy
from digest.addresses import normalize_email
from digest.cli.base import echo_json, get_config, main, now_utc
from digest.cli.core import open_db
from digest.config import Config
from digest.errors import DeliveryError, UsageError
from digest.models import Profile, Subscriber
from digest.store import Store, email_hash
from digest.web import forms, signup

IMPORT_COLUMNS = (
    "email", "name", "interests", "keywords", "exclude", "categories", "authors", "seeds",
    "hour", "timezone", "cadence", "weekday", "max_papers", "status", "empty_digest",
    "popularity", "liked", "disliked",
)
# What an imported row may be; empty or no status column: active (operator-trusted).
IMPORT_STATUSES = ("active", "paused", "unsubscribed", "pending")
LIST_COLUMNS = ("keywords", "exclude", "categories", "authors", "seeds", "liked", "disliked")


@main.group()
def subscribers() -> None:
    """Manage subscribers: add, list, show, export, remove, import from CSV."""


@dataclass(frozen=True)
class Entry:
    """One subscriber to add or update, validated."""

    email: str
    name: str
    profile: Profile
    schedule: forms.Schedule
    status: str = ""  # from an import: the row's status ("": not given)


def build_entry(
    config: Config,
    *,
    email: str,
    name: str = "",
    interests: str = "",
    keywords: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    authors: tuple[str, ...] = (),
    seeds: tuple[str, ...] = (),
    liked: tuple[str, ...] = (),
    disliked: tuple[str, ...] = (),
    hour: int | None = None,
    timezone: str | None = None,
    cadence: str = "daily",
    weekday: int = 0,
    max_papers: int | None = None,
    status: str = "",
    empty_digest: str = "skip",
    popularity: float = 0.0,
    require_profile: bool = True,
) -> Entry:
    """Validate one subscriber's fields; raise UsageError saying what is wrong."""
    address = normalize_email(email)
    if status and status not in IMPORT_STATUSES:
        raise UsageError(f"status must be one of {', '.join(IMPORT_STATUSES)}, not {status!r}",
                         "leave it empty for active")
    tz = timezone or config.timezone
    if not forms.known_timezone(tz):
        raise UsageError(f"unknown time zone {tz!r}", "use an IANA name like Europe/Berlin")
    known = taxonomy.category_codes()
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise UsageError(
            f"unknown arXiv category {unknown[0]!r}", "use codes like cs.CL or math.PR"
        )
    seed_keys = _paper_keys(seeds)
    # A thumb may be on a paper not on arXiv: its stored key (doi:..., rss:...) as is.
    liked_keys, disliked_keys = (_paper_keys(given, stored=True) for given in (liked, disliked))
    if cadence not in ("daily", "weekly"):
        raise UsageError(f"cadence must be daily or weekly, not {cadence!r}", "")
    if hour is not None and not 0 <= hour <= 23:
        raise UsageError(f"hour must be 0 to 23, not {hour}", "")
    if not 0 <= weekday <= 6:
        raise UsageError(f"weekday must be 0 (Monday) to 6, not {weekday}", "")
    papers = max_papers or config.max_papers
    if not 1 <= papers <= forms.MAX_PAPERS:
        raise UsageError(f"max papers must be 1 to {forms.MAX_PAPERS}, not {papers}", "")
    profile = Profile(
        interests=forms.tidy_interests(interests),
        keywords=tuple(dict.fromkeys(keywords)),
        exclude=tuple(dict.fromkeys(exclude)),
        categories=tuple(dict.fromkeys(categories)),
        authors=tuple(dict.fromkeys(authors)),
        seeds=tuple(dict.fromkeys(seed_keys)),
        # The thumbs an export carries (`export --csv`): the examples they were.
        liked=tuple(dict.fromkeys(liked_keys)),
        disliked=tuple(dict.fromkeys(disliked_keys)),
    )
    if require_profile:
        require_some_profile(address, profile)
    if empty_digest not in forms.EMPTY_DIGEST:
        raise UsageError(f"empty_digest must be skip or note, not {empty_digest!r}",
                         "skip: no email on a day with nothing relevant; note: a short one")
    if not 0.0 <= popularity <= 1.0:
        raise UsageError(f"popularity must be from 0 to 1, not {popularity}",
                         "0 ignores Hugging Face upvotes, 1 ranks by them alone")
    schedule = forms.Schedule(
        send_hour=config.send_at[0] if hour is None else hour,
        timezone=tz,
        cadence=cadence,
        weekday=weekday,
        max_papers=papers,
        empty_digest=empty_digest,
        popularity=popularity,
    )
    clean_name = " ".join(name.replace("\r", " ").replace("\n", " ").split())
    return Entry(address, clean_name, profile, schedule, status)


def _paper_keys(given: tuple[str, ...], *, stored: bool = False) -> list[str]:
    """Return the paper keys of seed or thumbed papers; raise UsageError for one that is none.

    With ``stored``, a paper key as the database keeps it (``doi:...``) is taken too.
    """
    keys: list[str] = []
    for paper in given:
        # As the form reads them: an id, an abs or PDF link, or an arXiv DOI.
        key = forms.seed_key(paper)
        if key is None and stored and ":" in paper and not paper.startswith("http"):
            key = paper
        if key is None:
            raise UsageError(f"{paper!r} holds no arXiv id",
                             "give an id like 2401.01234 or its URL")
        keys.append(key)
    return keys


def require_some_profile(address: str, profile: Profile) -> None:
    """Raise UsageError when a profile gives the ranker nothing to go on."""
    if profile.is_empty():
        raise UsageError(
            f"the profile of {address} is empty",
            "give interests, keywords, categories, authors or seeds",
        )


def add_entry(db: Store, entry: Entry, *, status: str = "active") -> Subscriber:
    """Insert a validated entry."""
    s = entry.schedule
    return db.add_subscriber(
        entry.email, entry.profile, now=now_utc(), name=entry.name, status=status,
        send_hour=s.send_hour, timezone=s.timezone, cadence=s.cadence, weekday=s.weekday,
        max_papers=s.max_papers, empty_digest=s.empty_digest, popularity=s.popularity,
    )


def subscriber_dict(sub: Subscriber) -> dict[str, Any]:
    """Return a subscriber as a JSON-ready dict."""
    return {
        "id": sub.id,
        "email": sub.email,
        "name": sub.name,
        "status": sub.status,
        "cadence": sub.cadence,
        "weekday": sub.weekday,
        "send_hour": sub.send_hour,
        "timezone": sub.timezone,
        "max_papers": sub.max_papers,
        "empty_digest": sub.empty_digest,
        "popularity": sub.popularity,
        "profile": sub.profile.to_dict(),
        "created_at": sub.created_at.isoformat() if sub.created_at else None,
    }


def profile_summary(profile: Profile, width: int = 48) -> str:
    """Return a one-line summary of a profile for `subscribers list`."""
    parts = []
    if profile.categories:
        parts.append(",".join(profile.categories))
    if profile.keywords:
        parts.append("kw: " + ", ".join(profile.keywords))
    for count, noun in ((len(profile.authors), "author"), (len(profile.seeds), "seed")):
        if count:
            parts.append(f"{count} {noun}{'' if count == 1 else 's'}")
    if profile.interests:
        parts.append(repr(profile.interests))
    text = "; ".join(parts) or "(empty)"
    return text if len(text) <= width else text[: width - 1] + "…"


def _require(db: Store, email: str) -> Subscriber:
    sub = db.find_subscriber(normalize_email(email))
    if sub is None:
        raise UsageError(f"no subscriber {email}", "see `digest subscribers list`")
    return sub


@subscribers.command("add")
@click.argument("email")
@click.option("--interests", default="",
              help="Free text describing what they want to read; a line (or a "
                   ";-separated part) that is a known paper's title makes it a seed paper.")
@click.option("--keyword", "keywords", multiple=True, help="Boost papers with this term.")
@click.option("--exclude", "excludes", multiple=True, help="Drop papers with this term.")
@click.option("--category", "categories", multiple=True, help="arXiv category, e.g. cs.CL.")
@click.option("--author", "authors", multiple=True, help="Follow this author.")
@click.option("--seed", "seeds", multiple=True, help="arXiv id or URL of a paper they like.")
@click.option("--name", default="", help="Display name for the To: header.")
@click.option("--hour", type=click.IntRange(0, 23), default=None, help="Local send hour.")
@click.option("--timezone", "tz", default=None, help="IANA time zone, e.g. Europe/Berlin.")
@click.option("--cadence", type=click.Choice(["daily", "weekly"]), default="daily")
@click.option("--weekday", type=click.IntRange(0, 6), default=0, help="Weekly: 0=Monday.")
@click.option("--max-papers", type=click.IntRange(1, forms.MAX_PAPERS), default=None)
@click.option("--empty", "empty_digest", type=click.Choice(forms.EMPTY_DIGEST), default="skip",
              show_default=True,
              help="A day with nothing relevant: no email (skip) or a short note.")
@click.option("--popularity", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="How much Hugging Face upvotes lift a paper: 0 not at all, 1 alone "
                   "(papers with as many, or none, in the order of how well they match).")
@click.option("--confirm", "send_confirm", is_flag=True,
              help="Add as pending and mail a double opt-in link instead of activating now.")
@click.option("--force", is_flag=True,
              help="Re-add an address that was deleted earlier, or lift a subscribed one's "
                   "suppression (a bounce, a complaint): only if they asked you.")
@click.option("--json", "as_json", is_flag=True, help="Print the subscriber as JSON.")
@click.pass_context
def add(
    ctx: click.Context, email: str, interests: str, keywords: tuple[str, ...],
    excludes: tuple[str, ...], categories: tuple[str, ...], authors: tuple[str, ...],
    seeds: tuple[str, ...], name: str, hour: int | None, tz: str | None, cadence: str,
    weekday: int, max_papers: int | None, empty_digest: str, popularity: float,
    send_confirm: bool, force: bool, as_json: bool,
) -> None:
    """Add a subscriber, active at once (operator-trusted) or pending with --confirm."""
    config = get_config(ctx)
    entry = build_entry(
        config, email=email, name=name, interests=interests, keywords=keywords,
        exclude=excludes, categories=categories, authors=authors, seeds=seeds, hour=hour,
        timezone=tz, cadence=cadence, weekday=weekday, max_papers=max_papers,
        empty_digest=empty_digest, popularity=popularity,
        # Checked below for a new address: an address already here keeps its profile
        # (`digest subscribe EMAIL --force` lifts a suppression with no profile typed).
        require_profile=False,
    )
    db = open_db(config)
    mailed: signup.SignupMail | None = None
    try:
        existing = db.find_subscriber(entry.email)
        suppressed = db.suppression(entry.email) if existing is not None else None
        # A pending address asked again with --confirm gets a new link (its first mail may
        # never have gone out), as a second sign-up on the web page would.
        resend = (existing is not None and suppressed is None and send_confirm
                  and existing.status == "pending")
        if existing is not None and not resend:
            if suppressed is None:
                if existing.status == "pending":
                    raise UsageError(f"{entry.email} has signed up but not confirmed yet",
                                     "add --confirm to mail them a new confirmation link")
                raise UsageError(f"{entry.email} is already subscribed",
                                 "see `digest subscribers show EMAIL`")
            if not force:
                raise UsageError(
                    f"{entry.email} is subscribed but suppressed since "
                    f"{suppressed[1]:%Y-%m-%d} ({suppressed[0]}): nothing is sent to it",
                    "use --force to lift the suppression if they asked you (after a bounce, "
                    "check the address first)",
                )
            db.unsuppress(entry.email)
            sub = _require(db, entry.email)
            if as_json:
                echo_json({**subscriber_dict(sub), "suppressed": False, "lifted": suppressed[0]})
            else:
                click.echo(f"lifted the suppression of {sub.email} (id {sub.id}, {sub.status}; "
                           f"it was: {suppressed[0]}); their profile and schedule are unchanged")
            return
        require_some_profile(entry.email, entry.profile)
        if send_confirm:
            mailed = signup.request_subscription(
                config, db, entry.email, entry.profile, entry.schedule, now=now_utc(),
                send=signup.smtp_send(config), name=entry.name,
            )
            if mailed.outcome == "failed":
                raise DeliveryError(
                    f"{entry.email} is pending, but the confirmation mail could not be sent: "
                    f"{mailed.error}",
                    "nothing retries it: fix the mail settings (DIGEST_SMTP_URL), then run "
                    "this command again to mail a new link",
                )
            sub = _require(db, entry.email)
        else:
            if db.is_suppressed(entry.email):
                if not force:
                    raise UsageError(
                        f"{entry.email} was deleted earlier and is suppressed",
                        "use --confirm to ask for a new opt-in, or --force if they asked you",
                    )
                db.unsuppress(entry.email)
            sub = add_entry(db, entry)
    finally:
        db.close()
    if as_json:
        echo_json(subscriber_dict(sub))
        return
    state: str = sub.status
    if mailed is not None:
        state = ("pending, confirmation mail sent" if mailed.outcome == "sent" else
                 "pending, no mail sent: one went out less than an hour ago")
    click.echo(f"added {sub.email} (id {sub.id}, {state}), {sub.cadence} at "
               f"{sub.send_hour:02d}:00 {sub.timezone}")


@subscribers.command("list")
@click.option("--status", type=click.Choice(["pending", "active", "paused", "unsubscribed"]),
              default=None, help="Only subscribers with this status.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def list_(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """List subscribers: email, status, cadence, hour, time zone and a profile summary."""
    db = open_db(get_config(ctx))
    try:
        subs = db.list_subscribers(status=status)
        hashes = db.suppressed_hashes()
    finally:
        db.close()
    # A suppressed address (a bounce, a complaint) gets nothing whatever its status.
    suppressed = {s.id for s in subs if email_hash(s.email) in hashes}
    if as_json:
        echo_json([{**subscriber_dict(s), "suppressed": s.id in suppressed} for s in subs])
        return
    if not subs:
        click.echo("no subscribers")
        return
    width = max(5, *(len(s.email) for s in subs))
    click.echo(f"{'EMAIL':<{width}}  {'STATUS':<12}  {'CADENCE':<10}  HOUR   {'TZ':<20}  PROFILE")
    for s in subs:
        cadence = s.cadence if s.cadence == "daily" else f"weekly/{forms.WEEKDAYS[s.weekday][:3]}"
        state = f"{s.status}, suppressed" if s.id in suppressed else s.status
        click.echo(
            f"{s.email:<{width}}  {state:<12}  {cadence:<10}  {s.send_hour:02d}:00  "
            f"{s.timezone:<20}  {profile_summary(s.profile)}"
        )


@subscribers.command()
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def show(ctx: click.Context, email: str, as_json: bool) -> None:
    """Show one subscriber's settings, profile and votes."""
    db = open_db(get_config(ctx))
    try:
        data = db.export_subscriber(_require(db, email).id)
        suppressed = db.suppression(email)
    finally:
        db.close()
    assert data is not None
    data["suppressed"] = None if suppressed is None else {
        "reason": suppressed[0], "since": suppressed[1].isoformat()}
    if as_json:
        echo_json(data)
        return
    profile = data["profile"]
    click.echo(f"{data['email']} (id {data['id']}): {data['status']}, {data['cadence']} at "
               f"{data['send_hour']:02d}:00 {data['timezone']}, {data['max_papers']} papers")
    quiet = "a short note" if data["empty_digest"] == "note" else "no email"
    click.echo(f"  on a day with nothing relevant: {quiet}; Hugging Face upvotes weigh "
               f"{data['popularity']:g}")
    if suppressed is not None:
        click.echo(f"  suppressed since {suppressed[1]:%Y-%m-%d} ({suppressed[0]}): nothing "
                   "is sent to it; `digest subscribe EMAIL --force` lifts it")
    for key in ("interests", "keywords", "exclude", "categories", "authors", "seeds",
                "liked", "disliked"):
        value = profile[key]
        if value:
            click.echo(f"  {key}: {value if isinstance(value, str) else ', '.join(value)}")
    up = sum(1 for v in data["votes"] if v["vote"] > 0)
    click.echo(f"  votes: {up} up, {len(data['votes']) - up} down; "
               f"{len(data['deliveries'])} digests, created {data['created_at']}")


@subscribers.command()
@click.argument("emails", nargs=-1)
@click.option("--csv", "as_csv", is_flag=True, help="Write the CSV that `import` reads.")
# JSON is the default; --json is taken too, as by every other subscribers command.
@click.option("--json", "as_json", is_flag=True, help="Write JSON (the default).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of stdout.")
@click.pass_context
def export(
    ctx: click.Context, emails: tuple[str, ...], as_csv: bool, as_json: bool,
    output: Path | None,
) -> None:
    """Export subscribers (all, or the given addresses) as JSON, or as CSV with --csv."""
    if as_csv and as_json:
        raise UsageError("--csv and --json exclude each other", "give one of them")
    db = open_db(get_config(ctx))
    try:
        subs = [_require(db, e) for e in emails] if emails else db.list_subscribers()
        records = [] if as_csv else [db.export_subscriber(s.id) for s in subs]
        votes = db.votes([s.id for s in subs]) if as_csv else {}
    finally:
        db.close()
    if as_csv:
        text = _to_csv(subs, votes)
    else:
        text = json.dumps([r for r in records if r], ensure_ascii=False, indent=2,
                          sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {len(subs)} subscribers to {output}", err=True)


def _to_csv(subs: list[Subscriber], votes: dict[int, dict[str, int]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(IMPORT_COLUMNS)
    for s in subs:
        p = s.profile
        # The thumbs from the email, with the profile's own examples, as the ranker
        # takes them: a later thumb on the same paper wins.
        mine = votes.get(s.id, {})
        liked = [k for k in dict.fromkeys((*p.liked, *mine)) if mine.get(k, 1) > 0]
        disliked = [k for k in dict.fromkeys((*p.disliked, *mine)) if mine.get(k, -1) < 0]
        writer.writerow([
            s.email, s.name, p.interests, ";".join(p.keywords), ";".join(p.exclude),
            ";".join(p.categories), ";".join(p.authors),
            ";".join(k.removeprefix("arxiv:") for k in p.seeds),
            s.send_hour, s.timezone, s.cadence, s.weekday, s.max_papers, s.status,
            s.empty_digest, s.popularity,
            ";".join(k.removeprefix("arxiv:") for k in liked),
            ";".join(k.removeprefix("arxiv:") for k in disliked),
        ])
    return buffer.getvalue()


@subscribers.command()
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def remove(ctx: click.Context, email: str, yes: bool, as_json: bool) -> None:
    """Delete a subscriber and their data, leaving a hashed suppression entry."""
    config = get_config(ctx)
    db = open_db(config)
    try:
        sub = _require(db, email)
        if not yes:
            click.confirm(f"delete {sub.email} and everything stored about them?", abort=True)
        # The web page's deletion: the rows, then the digests' HTML previews.
        signup.delete_subscriber(config, db, sub.id, now=now_utc(),
                                 reason="removed by operator")
    finally:
        db.close()
    if as_json:
        echo_json({"removed": sub.email, "id": sub.id, "suppressed": True})
    else:
        click.echo(f"removed {sub.email} (id {sub.id}); the address stays suppressed")


@subscribers.command("import")
@click.argument("source", type=click.File("rb"))
@click.option("--encoding", default="utf-8", show_default=True,
              help="The file's character encoding, e.g. cp1252 for Excel's 'CSV (Comma "
                   "delimited)' on Windows.")
@click.option("--update", is_flag=True, help="Update existing subscribers instead of skipping.")
@click.option("--include-suppressed", is_flag=True,
              help="Also add addresses that were deleted earlier (only if they asked you).")
@click.option("--dry-run", is_flag=True, help="Validate and report; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def import_(
    ctx: click.Context, source: BinaryIO, encoding: str, update: bool,
    include_suppressed: bool, dry_run: bool, as_json: bool,
) -> None:
    """Import subscribers from CSV (header row email,interests,...; lists ;-separated).

    A status column (as `export --csv` writes) keeps paused, unsubscribed and pending
    subscribers so; without one, or empty, a row is active.
    """
    config = get_config(ctx)
    text = decode_file(source.read(), encoding)
    entries, columns = read_csv(config, io.StringIO(text, newline=""))
    result = {"added": 0, "updated": 0, "existing": 0, "suppressed": 0, "dry_run": dry_run}
    db = open_db(config)
    try:
        # Decide every row before writing any, so that a row refused here (a profile
        # that would be empty) leaves the whole file unimported, as a malformed row does.
        actions: list[tuple[str, Entry, Subscriber | None, dict[str, Any]]] = []
        problems: list[str] = []
        for number, entry in entries:
            found = db.find_subscriber(entry.email)
            if found is not None:
                if not update:
                    result["existing"] += 1
                    continue
                fields = _update_fields(found, entry, columns)
                if fields["profile"].is_empty():
                    problems.append(f"line {number}: the profile of {entry.email} would be "
                                    "empty")
                    continue
                actions.append(("update", entry, found, fields))
            elif db.is_suppressed(entry.email) and not include_suppressed:
                result["suppressed"] += 1
            elif entry.profile.is_empty():
                # A new subscriber needs a profile; an update only the columns it has.
                problems.append(f"line {number}: the profile of {entry.email} is empty")
            else:
                actions.append(("add", entry, None, {}))
        if problems:
            raise UsageError(_bad_rows(problems),
                             "give those rows interests, keywords, categories, authors or "
                             "seeds, then run the import again")
        for action, entry, found, _read in actions:
            if action == "update":
                assert found is not None
                # From the row as it is when written, not as read above (a minute ago
                # in a large file): whoever unsubscribed since stays so.
                if not dry_run and not db.change_subscriber(
                    found.id, _changes(entry, columns), now=now_utc()
                ):
                    continue  # deleted meanwhile
                result["updated"] += 1
            else:
                if not dry_run:
                    db.unsuppress(entry.email)
                    add_entry(db, entry, status=entry.status or "active")
                result["added"] += 1
    finally:
        db.close()
    if as_json:
        echo_json(result)
        return
    prefix = "dry run, nothing changed: would have " if dry_run else ""
    click.echo(
        f"{prefix}added {result['added']}, updated {result['updated']}; skipped "
        f"{result['existing']} existing (use --update) and {result['suppressed']} suppressed"
    )


def decode_file(data: bytes, encoding: str) -> str:
    """Return an import file's text; raise UsageError naming the line that is not ``encoding``.

    A UTF-8 file may begin with a byte order mark (Excel's 'CSV UTF-8' writes one).
    """
    try:
        codec = codecs.lookup(encoding).name
    except LookupError as err:
        raise UsageError(f"unknown encoding {encoding!r}", "e.g. utf-8 or cp1252") from err
    try:
        return data.decode("utf-8-sig" if codec == "utf-8" else codec)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise UsageError(
            f"line {line} of the file is not {encoding} (byte 0x{data[err.start]:02x}); "
            "nothing imported",
            "give the file's encoding, e.g. --encoding cp1252 for Excel's 'CSV (Comma "
            "delimited)' on Windows, or save it as 'CSV UTF-8'",
        ) from err


def read_csv(
    config: Config, source: TextIO
) -> tuple[list[tuple[int, Entry]], frozenset[str]]:
    """Read and validate every row; raise UsageError listing the bad rows (nothing imported).

    Return the entries with their line numbers, and the columns the file has (an update
    changes only those). Whether a profile may be empty depends on the database (a new
    subscriber needs one; an update keeps the fields the file has no column for): the
    import checks that.
    """
    text = source.read()
    if text.lstrip().startswith(("[", "{")):
        raise UsageError("the file is JSON; import reads CSV",
                         "write the CSV with `digest subscribers export --csv -o FILE`")
    # csv refuses a field over 128 KiB (its default field_size_limit) with a traceback,
    # and `export --csv` writes longer ones: the interests `add` took whole, a
    # subscriber's thousands of thumbs. No field is longer than the file; the process's
    # limit is put back after the read.
    limit = csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    try:
        return _read_rows(config, text)
    finally:
        csv.field_size_limit(limit)


def _read_rows(config: Config, text: str) -> tuple[list[tuple[int, Entry]], frozenset[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_separator(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if "email" not in header:
        raise UsageError("the CSV has no email column",
                         "the first line must be a header: " + ",".join(IMPORT_COLUMNS))
    unknown = [h for h in header if h not in IMPORT_COLUMNS]
    if unknown:
        raise UsageError(f"unknown CSV column {unknown[0]!r}",
                         "known columns: " + ",".join(IMPORT_COLUMNS))
    entries: list[tuple[int, Entry]] = []
    problems: list[str] = []
    seen: set[str] = set()
    # A row's line in the file: a quoted field may hold line breaks, so rows and lines
    # are not counted alike.
    next_line = reader.line_num + 1
    for values in reader:
        line, next_line = next_line, reader.line_num + 1
        if not any(v.strip() for v in values):
            continue  # a blank line, or a spreadsheet's empty row (only separators)
        if len(values) > len(header) and any(v.strip() for v in values[len(header):]):
            # The fields past the header's would be dropped: most often a comma in a
            # name or the interests, unquoted.
            problems.append(f"line {line}: {len(values)} fields, the header has "
                            f"{len(header)} (quote a field that holds a comma)")
            continue
        row = {name: value.strip() for name, value in zip(header, values, strict=False)}
        try:
            entry = build_entry(config, **_row_fields(row), require_profile=False)
        except UsageError as err:
            problems.append(f"line {line}: {err.message}")
            continue
        except ValueError:
            problems.append(f"line {line}: hour, weekday, max_papers and popularity must "
                            "be numbers")
            continue
        if entry.email in seen:
            problems.append(f"line {line}: {entry.email} appears twice")
            continue
        seen.add(entry.email)
        entries.append((line, entry))
    if problems:
        raise UsageError(_bad_rows(problems), "fix the rows and run the import again")
    return entries, frozenset(header)


def _separator(text: str) -> str:
    """Return the field separator the header line uses.

    A comma, or what spreadsheets write in locales whose decimal mark is a comma (a
    semicolon), or a tab: the one that makes a header field of "email".
    """
    first = text.partition("\n")[0]
    for separator in (",", ";", "\t"):
        names = next(csv.reader([first], delimiter=separator), [])
        if "email" in (name.strip().lower() for name in names):
            return separator
    return ","


def _bad_rows(problems: list[str]) -> str:
    """Return the message naming an import's bad rows (the first five)."""
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5
                                       else "")
    return f"{len(problems)} bad rows, nothing imported: {shown}"


# Subscriber fields an import row sets, and the CSV column each comes from.
_PROFILE_COLUMNS = ("interests", "keywords", "exclude", "categories", "authors", "seeds")
_SCHEDULE_COLUMNS = {"send_hour": "hour", "timezone": "timezone", "cadence": "cadence",
                     "weekday": "weekday", "max_papers": "max_papers",
                     "empty_digest": "empty_digest", "popularity": "popularity"}


def _update_fields(found: Subscriber, entry: Entry, columns: frozenset[str]) -> dict[str, Any]:
    """Return what an import row changes of an existing subscriber: the columns it has.

    A column the file lacks (an older export, a hand-made file of a few columns) leaves
    that field as it is, and the thumbs a subscriber gave (no column) always stay.
    """
    profile = replace(found.profile, **{name: getattr(entry.profile, name)
                                        for name in _PROFILE_COLUMNS if name in columns})
    fields: dict[str, Any] = {
        name: value for name, value in entry.schedule.as_fields().items()
        if _SCHEDULE_COLUMNS[name] in columns
    }
    fields["profile"] = profile
    if "name" in columns:
        fields["name"] = entry.name
    # The row's status, if given; never out of "unsubscribed": only the person may come
    # back (the CSV may predate their leaving).
    if entry.status and found.status != "unsubscribed":
        fields["status"] = entry.status
    return fields


def _changes(entry: Entry, columns: frozenset[str]) -> Callable[[Subscriber], dict[str, Any]]:
    """Return what an import row changes, as a function of the subscriber's current row."""
    return lambda current: _update_fields(current, entry, columns)


def _row_fields(row: dict[str, str]) -> dict[str, Any]:
    def items(name: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in row.get(name, "").split(";") if part.strip())

    def number(name: str) -> int | None:
        value = row.get(name, "")
        return int(value) if value else None

    return {
        "email": row.get("email", ""),
        "name": row.get("name", ""),
        "interests": row.get("interests", ""),
        **{name: items(name) for name in LIST_COLUMNS},
        "hour": number("hour"),
        "timezone": row.get("timezone") or None,
        "cadence": row.get("cadence") or "daily",
        "weekday": number("weekday") or 0,
        "max_papers": number("max_papers"),
        "status": row.get("status", "").lower(),
        "empty_digest": row.get("empty_digest", "").lower() or "skip",
        # "0,3" as a spreadsheet writes it where the decimal mark is a comma.
        "popularity": float((row.get("popularity") or "0").replace(",", ".")),
    }


# `digest subscribe` is the same command as `digest subscribers add`: the short form
# operators type most often.
main.add_command(add, name="subscribe")
