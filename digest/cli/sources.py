"""`digest sources add|list|remove|test`: the sources a run reads, and how they fared."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import click

from digest import ingest, taxonomy
from digest.cli.base import echo_json, get_config, main, now_utc, parse_day
from digest.cli.core import open_db
from digest.config import SOURCE_OPTIONS, Config, check_source_options, split_source
from digest.errors import ConfigError, UsageError
from digest.ingest.arxiv import arxiv_api_url, arxiv_rss_url
from digest.ingest.base import local_path
from digest.models import SourceResult, SourceSpec
from digest.sources_config import effective_sources

SHOWN_TITLES = 5


def _check(spec: SourceSpec) -> None:
    """Turn an unknown or malformed option into a usage error (exit 2)."""
    try:
        check_source_options(spec)
    except ConfigError as err:
        raise UsageError(err.message, err.hint) from err


def _origin(config: Config, stored: list[SourceSpec], name: str) -> str:
    if config.sources_explicit and any(s.name == name for s in config.sources):
        return "config"
    if any(s.name == name for s in stored):
        return "added"
    return "default"


def _check_location(spec: SourceSpec) -> None:
    """Refuse, before it is stored, a location its kind can never read.

    A stored source is read by every run from then on (and the first one replaces the
    sample batch); one that cannot work would only show up as an error in each run.
    """
    location = spec.location.strip()
    if spec.kind == "arxiv-rss" and arxiv_rss_url(location) != location:
        # Category codes (a feed URL or file of its own is read as it is).
        known = taxonomy.category_codes()
        unknown = [c for c in location.split("+") if c.strip() not in known]
        if unknown:
            raise UsageError(f"unknown arXiv category {unknown[0]!r}",
                             "join category codes with +, e.g. cs.LG+cs.CL")
        return
    if spec.kind == "arxiv-api":
        location = arxiv_api_url(location)  # a bare query becomes an export.arxiv.org URL
    # Whatever is left is read as a URL, or else as a file: the reader of every kind
    # takes a location without a scheme for a path.
    path = local_path(location)
    if spec.kind == "jsonl" and path is None:
        raise UsageError(f"{location!r} is a URL; jsonl sources are local files",
                         "give the path of a .jsonl or .jsonl.gz file that exists")
    if path is not None and not path.is_file():
        if spec.kind == "arxiv-rss":
            # cs.LG,cs.CL or "cs.LG cs.CL": no category list, so read as a file name.
            raise UsageError(f"{location!r} is neither arXiv category codes nor a file here",
                             "join category codes with +, e.g. cs.LG+cs.CL, or give a feed "
                             "URL (https://...) or the path of a file that exists")
        what = "" if spec.kind == "jsonl" else "a URL (https://...) or "
        also = (" (leave LOCATION out for Hugging Face's daily list)"
                if spec.kind == "hf-daily" else "")
        raise UsageError(f"{location!r} is no file here",
                         f"give {what}the path of a file that exists{also}")
    if path is None and not location.startswith(("http://", "https://")):
        raise UsageError(f"{location!r} is not an http(s) URL",
                         "give the source's https:// address")


@main.group()
def sources() -> None:
    """Add, list, remove and try out the sources a run reads."""


@sources.command("add")
@click.argument("kind", type=click.Choice(sorted(SOURCE_OPTIONS)))
@click.argument("location", required=False, default="")
@click.option("--name", help="Name to list it under (default: KIND:LOCATION).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A source option, e.g. cross=1 for arXiv RSS (repeatable).")
@click.pass_context
def add(ctx: click.Context, kind: str, location: str, name: str | None,
        options: tuple[str, ...]) -> None:
    """Store a source that every run reads from now on."""
    config = get_config(ctx)
    try:
        spec = split_source(f"{kind}:{location}" if location else kind,
                            where="digest sources add")
    except ConfigError as err:  # an argument typed here, not a setting: a usage error
        raise UsageError(f"{kind} needs a LOCATION: {err.message}", err.hint) from err
    extra = dict(spec.options)
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--option {item!r} is not KEY=VALUE", "e.g. --option cross=1")
        extra[key.strip()] = value.strip()
    location = spec.location
    path = local_path(location)
    if path is not None and (kind == "jsonl" or path.is_file()):
        # Runs start from cron or systemd in another folder; keep the file findable
        # (a file of any kind: category codes and bare API queries are no files here).
        location = str(path.resolve())
    spec = replace(spec, name=(name or "").strip() or f"{kind}:{location}", location=location,
                   options=tuple(sorted(extra.items())))
    _check(spec)
    _check_location(spec)
    db = open_db(config)
    try:
        stored = db.list_sources()
        if config.sources_explicit and any(s.name == spec.name for s in config.sources):
            raise UsageError(f"{spec.name!r} is already configured in DIGEST_SOURCES or "
                             "DIGEST_SOURCES_FILE", "pick another --name")
        db.add_source(spec, now=now_utc())
    finally:
        db.close()
    replaced = "" if stored or config.sources_explicit else "; the sample batch is no longer read"
    click.echo(f"added {spec.name} ({spec.kind} {spec.location}){replaced}")


@sources.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the sources as JSON.")
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """Show every source a run reads, with its health on the last run."""
    config = get_config(ctx)
    db = open_db(config)
    try:
        stored = db.list_sources()
        health = {h["source"]: h for h in db.source_health()}
    finally:
        db.close()
    rows: list[dict[str, Any]] = []
    for spec in effective_sources(config, stored):
        seen = health.get(spec.name, {})
        rows.append({
            "name": spec.name,
            "kind": spec.kind,
            "location": spec.location,
            "options": dict(spec.options),
            "origin": _origin(config, stored, spec.name),
            "status": seen.get("status"),
            "last_run_at": seen.get("last_run_at"),
            "last_ok_at": seen.get("last_ok_at"),
            "papers": seen.get("papers"),
            "new": seen.get("new"),
            "error": seen.get("error"),
        })
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        options = "".join(f" {k}={v}" for k, v in row["options"].items())
        click.echo(f"{row['name']} [{row['origin']}] {row['kind']} {row['location']}{options}")
        if row["status"] is None:
            click.echo("  never run")
            continue
        click.echo(f"  {row['status']}: last run {row['last_run_at']}, last ok "
                   f"{row['last_ok_at'] or 'never'}, {row['papers']} papers, {row['new']} new")
        if row["error"]:
            click.echo(f"  {row['error']}")


@sources.command("remove")
@click.argument("name")
@click.pass_context
def remove(ctx: click.Context, name: str) -> None:
    """Stop reading a source added with `digest sources add`."""
    config = get_config(ctx)
    db = open_db(config)
    try:
        removed = db.remove_source(name)
        stored = [] if removed else db.list_sources()
    finally:
        db.close()
    if removed:
        click.echo(f"removed {name}")
        return
    if any(s.name == name for s in config.sources):
        raise UsageError(f"{name!r} comes from the configuration, not from `sources add`",
                         "remove it from DIGEST_SOURCES or DIGEST_SOURCES_FILE")
    # `sources add hf-daily` stores hf-daily:<its URL>: name what was meant.
    meant = [s.name for s in stored if s.kind == name or s.name.startswith(f"{name}:")
             or s.name.split("?", 1)[0] == name]
    if meant:
        raise UsageError(f"no stored source is named {name!r}",
                         "it is stored as " + " or ".join(repr(m) for m in meant)
                         + ": remove it by that name")
    raise UsageError(f"no stored source is named {name!r}", "see `digest sources list`")


@sources.command("test")
@click.argument("source")
@click.option("--date", "day_text", help="Day to read, for dated sources (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def test(ctx: click.Context, source: str, day_text: str | None, as_json: bool) -> None:
    """Fetch and parse a source now, without storing anything; exit 1 when it fails."""
    config = get_config(ctx)
    day = parse_day(day_text, now_utc().date())
    db = open_db(config)
    try:
        known = {s.name: s for s in effective_sources(config, db.list_sources())}
        spec = known.get(source)
        if spec is None:
            try:
                spec = split_source(source, where="digest sources test")
            except ConfigError as err:  # an argument typed here, not a setting: a usage error
                raise UsageError(err.message, err.hint) from err
            _check(spec)
        result = ingest.collect_one(
            spec, day=day, fetch=ingest.HttpFetcher(user_agent=ingest.user_agent(config.contact))
        )
        seen = db.get_papers(p.key for p in result.papers)
        result = ingest.assess(result, new=sum(p.key not in seen for p in result.papers),
                               day=day)
        result = db.judge_source(result, now=now_utc())  # what a run would record
    finally:
        db.close()
    _report(result, spec, as_json)
    if result.status == "error":
        ctx.exit(1)


def _report(result: SourceResult, spec: SourceSpec, as_json: bool) -> None:
    if as_json:
        echo_json({
            "source": spec.name,
            "kind": spec.kind,
            "location": spec.location,
            "status": result.status,
            "papers": len(result.papers),
            "new": result.new,
            "error": result.error,
            "papers_list": [{"key": p.key, "title": p.title} for p in result.papers],
        })
        return
    click.echo(f"{spec.name}: {result.status}, {len(result.papers)} papers, "
               f"{result.new} not stored yet")
    for paper in result.papers[:SHOWN_TITLES]:
        click.echo(f"  {paper.key}  {paper.title}")
    if len(result.papers) > SHOWN_TITLES:
        click.echo(f"  ... and {len(result.papers) - SHOWN_TITLES} more")
    if result.error:
        click.echo(f"problems: {result.error}")

