"""Read the environment and ``.env`` once into a frozen Config; nothing else reads them."""

from __future__ import annotations

import difflib
import fcntl
import ipaddress
import math
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from digest.addresses import ascii_domain
from digest.errors import ConfigError
from digest.models import SourceSpec

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_BATCH = PACKAGE_DIR / "data" / "sample_batch.jsonl"
TEMPLATES_DIR = PACKAGE_DIR.parent / "templates"

ARXIV_API = "https://export.arxiv.org/api/query"

SOURCE_KINDS = ("arxiv-rss", "arxiv-api", "hf-daily", "rss", "jsonl")

# Subscribers planned and ranked together (DIGEST_RANK_PAGE, Config.rank_page), and its
# bounds: a run holds one page of them at a time. The day's preparation is paid once per
# run (the rankers are kept between pages), and the matrix products run on chunks of 500
# profiles within a page. A smaller page costs a
# fork more: the forked process and this one fault their chunks' memory in afresh
# (~0.1 s of CPU each a page); 40,000 bench subscribers ranked in 0.19-0.21 s a 1,000 in
# pages of 20,000 and 0.25-0.27 s in pages of 5,000 (bench/rank_cpu.py's day, two
# processes, three alternating runs), and bench/run.py's peak at 100,000 was 1,165 MB
# against 935 MB (4 runs each). The benchmark's peak memory at 100,000 subscribers
# was 1,224 MB with pages of 20,000 and 1,148 MB with pages of 10,000; later, with large
# blocks mapped (forking.map_large_blocks), 1,095 MB with pages of 10,000 and 974 MB with
# pages of 5,000 (ranking 52.6 and 53.2 s).
RANK_PAGE = 5000
RANK_PAGE_MIN, RANK_PAGE_MAX = 100, 1_000_000

# The options each kind understands, with what they do (shown by `digest sources add`).
# They live here, beside the kinds, because parsing a source entry must tell them apart
# from the parameters of a URL's own query string; digest.ingest reads them.
SOURCE_OPTIONS: dict[str, dict[str, str]] = {
    "arxiv-rss": {"cross": "1 to include cross-lists (default 0)",
                  "replace": "0 to leave out replaced papers (default 1)",
                  "catchup": "0 not to ask the arXiv API for the papers of announcements "
                             "no run read (default 1)"},
    "arxiv-api": {"limit": "most papers to read, over all pages (default: one page)"},
    "hf-daily": {"limit": "items per page (default 100)",
                 "pages": "most pages to read (default 10)"},
    "rss": {},
    "jsonl": {},
}

# The query parameters of the API a kind's URL points at (arXiv's export API, as in its
# user manual; Hugging Face's daily papers, as digest.ingest.hf reads them). A URL's
# parameter that is neither one of these nor an option of the kind, but close to one,
# is a misspelling: ``max_resuts=50`` would be sent and ignored, and the operator would
# get a hundred papers a page without a word. A feed (rss) has no known parameters, so
# its query is never questioned.
SOURCE_URL_PARAMETERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "arxiv-api": ("the arXiv API",
                  ("search_query", "id_list", "start", "max_results", "sortBy", "sortOrder")),
    "hf-daily": ("the Hugging Face API", ("date", "week", "month", "p", "limit")),
}


# Those of them digest pages with, read as whole numbers: the least value each takes.
SOURCE_URL_NUMBERS: dict[str, dict[str, int]] = {
    "arxiv-api": {"start": 0, "max_results": 1},
    "hf-daily": {"p": 0},
}


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to deliver over SMTP. The password never appears in repr()."""

    host: str
    port: int
    security: str  # "starttls", "ssl" or "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0

    def redacted(self) -> str:
        """Return the URL with the password masked, for logs and status output."""
        scheme = "smtps" if self.security == "ssl" else "smtp"
        user = f"{self.username}:***@" if self.username else ""
        query = "?starttls=off" if self.security == "none" else ""
        return f"{scheme}://{user}{self.host}:{self.port}{query}"


@dataclass(frozen=True)
class Config:
    """Everything configurable, read once. Tests build one directly."""

    var_dir: Path
    database_url: str
    smtp: SmtpSettings | None
    from_addr: str
    from_name: str
    base_url: str
    secret_key: str = field(repr=False)
    sources: tuple[SourceSpec, ...]
    timezone: str = "UTC"
    send_at: tuple[int, int] = (7, 0)
    list_id: str = "digest.localhost"
    contact: str = ""
    # Where the papers of arXiv announcements no run read are asked for (arxiv-rss catch-up).
    arxiv_api: str = ARXIV_API
    templates_dir: Path = TEMPLATES_DIR
    max_papers: int = 10
    send_rate: float = 0.0  # messages per second; 0 means no cap
    connections: int = 1  # SMTP connections (send workers) per run
    max_attempts: int = 5
    error_budget: int = 10  # consecutive delivery failures before a run stops sending
    grace_hours: int = 18  # how late a missed digest may still go out
    # Days of history kept: ledger rows, sent papers, run reports and previews older
    # than this are pruned by the first run of each UTC day and by `digest prune`; 0
    # keeps everything.
    retention_days: int = 365
    # The hour (UTC) by which a day's batch has normally arrived: a digest holds the
    # batches filed up to the UTC day of its send instant less this many hours.
    batch_hour: int = 2
    # How long a send worker's claim on planned rows lasts; another worker takes them
    # over after that (a worker killed with SIGKILL never gives them back).
    lease_seconds: float = 900.0
    # Processes that rank subscribers and write their digests in the plan phase; 0: one
    # per CPU (at most 4).
    rank_processes: int = 0
    # Subscribers the plan phase reads, ranks and writes together (DIGEST_RANK_PAGE):
    # memory holds one page; each page forks the ranking processes afresh. Larger pages
    # rank faster and hold more (README, Benchmark).
    rank_page: int = RANK_PAGE
    # True when DIGEST_SOURCES or DIGEST_SOURCES_FILE was set: then ``sources`` are the
    # operator's and run alongside sources added with `digest sources add`.
    sources_explicit: bool = False
    # DIGEST_SEMANTIC=1: rank with sentence embeddings too (the semantic extra);
    # DIGEST_SEMANTIC_WEIGHT overrides the ranker's default weight.
    semantic: bool = False
    semantic_weight: float | None = None
    # The sign-up form's confirmation mails, per hour (0: no cap): from one client
    # address (an IPv6 /64), and from the whole site. Anyone may type anyone's address,
    # so without a cap a script makes the relay mail thousands of strangers.
    signup_per_client: int = 20
    signup_per_hour: int = 300
    # Reverse proxies in front of `digest serve` whose X-Forwarded-For is believed
    # (0: the connection's address is the client's; a header is not believed).
    trusted_proxies: int = 0
    # Keys that signed links before ``secret_key`` (DIGEST_SECRET_KEY_FALLBACKS): links
    # they signed stay valid, so changing the key does not break the unsubscribe link
    # of every mail already sent. New links are signed with ``secret_key`` alone.
    secret_key_fallbacks: tuple[str, ...] = field(default=(), repr=False)

    @property
    def list_name(self) -> str:
        """Return the list's name, for mail (List-Id, the footer) and the web pages."""
        return self.from_name or "Research Digest"

    @property
    def mail_domain(self) -> str:
        """Return the domain of the From address (Message-IDs are made on it), in ASCII.

        An international domain is given as its A-labels (xn--): a Message-ID is ASCII.
        """
        domain = self.from_addr.rpartition("@")[2] or "localhost"
        try:
            return ascii_domain(domain)
        except ValueError:
            return domain  # build_message refuses such a From address before its id

    @property
    def embedding_dir(self) -> Path:
        """Return where paper embeddings are kept between runs (semantic ranking)."""
        return self.var_dir / "embeddings"

    @property
    def maildir(self) -> Path:
        """Return the local Maildir used when no SMTP URL is set."""
        return self.var_dir / "mail"

    @property
    def preview_dir(self) -> Path:
        """Return the folder for HTML previews of every rendered digest."""
        return self.var_dir / "previews"

    @property
    def lock_path(self) -> Path:
        """Return the path of the run lock file."""
        return self.var_dir / "run.lock"

    @property
    def delivery(self) -> str:
        """Describe where mail goes, without secrets."""
        return self.smtp.redacted() if self.smtp else f"maildir:{self.maildir}"


def load_config(
    environ: Mapping[str, str] | None = None, *, env_file: str | Path | None = ".env"
) -> Config:
    """Read the environment over ``.env`` into a Config; raise ConfigError naming the variable."""
    values: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    return config_from_values(values)


def config_from_values(values: Mapping[str, str]) -> Config:
    """Build a Config from a mapping of DIGEST_* variables."""

    read: set[str] = set()

    def get(name: str, default: str = "") -> str:
        read.add(name)
        return values.get(name, default).strip() or default

    config = _config_from(values, get)
    _check_names(values, read)
    return config


# DIGEST_* variables that are not settings of digest: the test suite's and the
# benchmarks' own (Makefile, tests/, bench/).
_OTHER_VARIABLES = frozenset({
    "DIGEST_SKIP_BROWSER", "DIGEST_TEST_POSTGRES_URL", "DIGEST_TEST_DB", "DIGEST_CORPUS",
    "DIGEST_REGEN_GOLDEN", "DIGEST_CHROMIUM",
})


def _check_names(values: Mapping[str, str], read: set[str]) -> None:
    """Raise ConfigError for a DIGEST_* name that misspells one digest reads.

    ``DIGEST_SMTP=smtp://...`` for DIGEST_SMTP_URL was ignored without a word: the run
    delivered into the local Maildir and reported every digest sent. A name close to
    (difflib's close match) but not one that was read is refused; any other name is
    left alone (it may be the operator's own).
    """
    for name in sorted(values):
        if not name.startswith("DIGEST_") or name in read or name in _OTHER_VARIABLES:
            continue
        close = difflib.get_close_matches(name, sorted(read), n=1, cutoff=0.8)
        if close:
            raise ConfigError(
                f"{name} is not a digest setting; did you mean {close[0]}?",
                f"rename it to {close[0]} (in .env or the environment); "
                "deploy/env.example lists every variable",
            )


def _config_from(values: Mapping[str, str], get: Callable[..., str]) -> Config:
    """Build the Config itself, every variable read through ``get``."""

    var_dir = Path(get("DIGEST_VAR_DIR", "var"))
    database_url = get("DIGEST_DATABASE_URL", f"sqlite:///{var_dir / 'digest.sqlite3'}")
    if "://" not in database_url:
        raise ConfigError(
            f"DIGEST_DATABASE_URL is not a database URL: {database_url!r}",
            "use sqlite:///var/digest.sqlite3 or postgresql+psycopg://user:pass@host/db",
        )
    smtp = parse_smtp_url(get("DIGEST_SMTP_URL"))
    from_name, from_addr = parse_from(get("DIGEST_FROM", "Research Digest <digest@localhost>"))
    base_url = get("DIGEST_BASE_URL", "http://localhost:8000").rstrip("/")
    try:
        readable = bool(urlsplit(base_url).hostname)
    except ValueError:  # an unclosed "[" of an IPv6 address
        readable = False
    if not readable or not re.match(r"^https?://[^/\s]+", base_url):
        raise ConfigError(
            f"DIGEST_BASE_URL must be an http(s) URL, got {base_url!r}",
            "set it to the public address of `digest serve`, e.g. https://digest.example.org",
        )
    base_url = _ascii_url(base_url)
    arxiv_api = get("DIGEST_ARXIV_API", ARXIV_API).strip()
    if not re.match(r"^https?://[^/\s]+", arxiv_api):
        raise ConfigError(
            f"DIGEST_ARXIV_API must be an http(s) URL, got {arxiv_api!r}",
            f"leave it unset ({ARXIV_API}) unless you use a mirror of arXiv's API",
        )
    secret_key = get("DIGEST_SECRET_KEY") or _local_secret(var_dir)
    if len(secret_key) < 16:
        raise ConfigError(
            "DIGEST_SECRET_KEY is too short (fewer than 16 characters)",
            'generate one with: python -c "import secrets; print(secrets.token_hex(32))"',
        )
    fallbacks = tuple(key.strip() for key in get("DIGEST_SECRET_KEY_FALLBACKS").split(",")
                      if key.strip())
    if any(len(key) < 16 for key in fallbacks):
        raise ConfigError(
            "DIGEST_SECRET_KEY_FALLBACKS holds a key shorter than 16 characters",
            "list the earlier values of DIGEST_SECRET_KEY exactly, separated by commas",
        )
    sources, sources_explicit = _configured_sources(get("DIGEST_SOURCES"),
                                                    get("DIGEST_SOURCES_FILE"))
    tz = get("DIGEST_TIMEZONE", "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ConfigError(
            f"DIGEST_TIMEZONE is not a known time zone: {tz!r}",
            "use an IANA name such as Europe/Berlin or America/New_York",
        ) from err
    return Config(
        var_dir=var_dir,
        database_url=database_url,
        smtp=smtp,
        from_addr=from_addr,
        from_name=from_name,
        base_url=base_url,
        secret_key=secret_key,
        sources=sources,
        timezone=tz,
        send_at=parse_send_at(get("DIGEST_SEND_AT", "07:00")),
        list_id=get("DIGEST_LIST_ID", f"digest.{urlsplit(base_url).hostname or 'localhost'}"),
        contact=get("DIGEST_CONTACT", from_addr),
        arxiv_api=arxiv_api,
        templates_dir=_templates_dir(get("DIGEST_TEMPLATES_DIR", str(TEMPLATES_DIR))),
        # At most what a subscriber may choose (the forms and the CLI) and a digest
        # holds (the ranking takes 50): 60 was accepted and then refused by the form.
        max_papers=_int(get("DIGEST_MAX_PAPERS", "10"), "DIGEST_MAX_PAPERS", 1, 50),
        send_rate=_float(get("DIGEST_SEND_RATE", "0"), "DIGEST_SEND_RATE"),
        connections=_int(get("DIGEST_SMTP_CONNECTIONS", "1"), "DIGEST_SMTP_CONNECTIONS", 1, 64),
        max_attempts=_int(get("DIGEST_MAX_ATTEMPTS", "5"), "DIGEST_MAX_ATTEMPTS", 1, 50),
        error_budget=_int(get("DIGEST_ERROR_BUDGET", "10"), "DIGEST_ERROR_BUDGET", 1, 100000),
        grace_hours=_int(get("DIGEST_GRACE_HOURS", "18"), "DIGEST_GRACE_HOURS", 0, 24 * 7),
        batch_hour=_int(get("DIGEST_BATCH_HOUR", "2"), "DIGEST_BATCH_HOUR", 0, 23),
        lease_seconds=float(
            _int(get("DIGEST_LEASE_SECONDS", "900"), "DIGEST_LEASE_SECONDS", 1, 7 * 24 * 3600)
        ),
        rank_processes=_int(get("DIGEST_RANK_PROCESSES", "0"), "DIGEST_RANK_PROCESSES", 0, 64),
        rank_page=_int(get("DIGEST_RANK_PAGE", str(RANK_PAGE)), "DIGEST_RANK_PAGE",
                       RANK_PAGE_MIN, RANK_PAGE_MAX),
        sources_explicit=sources_explicit,
        semantic=_flag(get("DIGEST_SEMANTIC", "0"), "DIGEST_SEMANTIC"),
        semantic_weight=(_float(get("DIGEST_SEMANTIC_WEIGHT"), "DIGEST_SEMANTIC_WEIGHT")
                         if get("DIGEST_SEMANTIC_WEIGHT") else None),
        signup_per_client=_int(get("DIGEST_SIGNUP_PER_CLIENT", "20"),
                               "DIGEST_SIGNUP_PER_CLIENT", 0, 1_000_000),
        signup_per_hour=_int(get("DIGEST_SIGNUP_PER_HOUR", "300"),
                             "DIGEST_SIGNUP_PER_HOUR", 0, 1_000_000),
        trusted_proxies=_int(get("DIGEST_TRUSTED_PROXIES", "0"), "DIGEST_TRUSTED_PROXIES", 0, 5),
        retention_days=_retention(get("DIGEST_RETENTION_DAYS", "365")),
        secret_key_fallbacks=fallbacks,
    )


# The shortest retention: a digest's window reaches 14 days back (a weekly digest), the
# papers it may not pick again two days before that, and soft bounces count over 30 days.
RETENTION_MIN_DAYS = 30


def _retention(value: str) -> int:
    """Return DIGEST_RETENTION_DAYS: 0 (keep everything) or at least RETENTION_MIN_DAYS."""
    days = _int(value, "DIGEST_RETENTION_DAYS", 0, 100 * 366)
    if 0 < days < RETENTION_MIN_DAYS:
        raise ConfigError(
            f"DIGEST_RETENTION_DAYS must be 0 or at least {RETENTION_MIN_DAYS}, got {days}",
            "the daily run reads the last weeks of the ledger; use 0 to keep everything",
        )
    return days


def _templates_dir(value: str) -> Path:
    """Return DIGEST_TEMPLATES_DIR, checked to hold every template digest renders.

    The folder replaces the shipped one (nothing falls back to it): its email/ folder
    for the mails and its web/ folder for the pages, as shipped. A template missing
    from it failed only when the first digest was written (after the ranking), or when
    the page was first asked for.
    """
    folder = Path(value).expanduser()
    if folder == TEMPLATES_DIR:
        return folder
    hint = (f"copy the shipped templates folder ({TEMPLATES_DIR}) there and edit the "
            "copies, or unset DIGEST_TEMPLATES_DIR")
    if not folder.is_dir():
        raise ConfigError(f"DIGEST_TEMPLATES_DIR={value} is not a folder", hint)
    shipped = sorted(str(p.relative_to(TEMPLATES_DIR)) for p in TEMPLATES_DIR.rglob("*")
                     if p.is_file() and p.parts[-2] != "__pycache__")
    missing = [name for name in shipped if not (folder / name).is_file()]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more"
                                          if len(missing) > 6 else "")
        raise ConfigError(f"DIGEST_TEMPLATES_DIR={value} lacks {len(missing)} of the "
                          f"shipped templates: {shown}", hint)
    return folder


def parse_smtp_url(url: str) -> SmtpSettings | None:
    """Parse ``smtp://user:pass@host:587`` / ``smtps://...:465``; empty means Maildir."""
    if not url:
        return None
    hint = ("use smtp://user:password@host:587 (STARTTLS) or smtps://user:password@host:465; "
            "percent-encode @ : / ? # [ ] in the user name or password (%40 for @)")
    try:
        parts = urlsplit(url)
    except ValueError as err:  # an unclosed "[" of an IPv6 address
        raise ConfigError(f"DIGEST_SMTP_URL cannot be read: {err}", hint) from err
    if parts.scheme not in ("smtp", "smtps"):
        raise ConfigError("DIGEST_SMTP_URL must start with smtp:// or smtps://", hint)
    if not parts.hostname:
        raise ConfigError("DIGEST_SMTP_URL has no host name", hint)
    try:
        port = parts.port
    except ValueError as err:
        raise ConfigError(
            "DIGEST_SMTP_URL has a port that is not a number (or a password with / ? or # "
            "not percent-encoded, which ends the host part early)", hint) from err
    query = {k: v[-1].lower() for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    for name in query:
        if name not in ("starttls", "timeout"):
            # ?tls=off or ?timout=60 was ignored: STARTTLS stayed required, the
            # timeout stayed 30 s, and nothing said why.
            raise ConfigError(f"DIGEST_SMTP_URL has no parameter {name!r}",
                              "its parameters are starttls=on|off and timeout=SECONDS")
    starttls = query.get("starttls")
    if starttls is not None and starttls not in _FLAGS:
        raise ConfigError(f"DIGEST_SMTP_URL starttls={starttls!r} is neither on nor off",
                          "use starttls=on or starttls=off (or smtps:// for TLS from the start)")
    if parts.scheme == "smtps":
        security = "ssl"
    elif starttls in ("off", "0", "false", "no"):
        security = "none"
    elif starttls is None and _is_loopback(parts.hostname):
        # A relay on this machine: the connection never leaves it, so TLS protects
        # nothing and local relays rarely have a certificate for "localhost".
        security = "none"
    else:
        security = "starttls"
    timeout = _float(query.get("timeout", "30"), "DIGEST_SMTP_URL timeout")
    if timeout <= 0:
        # 0 made every socket non-blocking: each send failed at once as unreachable.
        raise ConfigError("DIGEST_SMTP_URL timeout must be more than 0 seconds",
                          "e.g. timeout=60, or leave it out for 30")
    return SmtpSettings(
        host=parts.hostname,
        port=port or (465 if security == "ssl" else 587),
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=timeout,
    )


def _is_loopback(host: str) -> bool:
    """Return True for localhost and loopback addresses."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _ascii_url(url: str) -> str:
    """Return DIGEST_BASE_URL in ASCII: an international host as IDNA A-labels (xn--),
    any other non-ASCII character percent-encoded (UTF-8).

    Every link in a mail is made on it. Typed with "bücher.example", the List-Unsubscribe
    header went out RFC 2047-encoded, which no mailbox provider reads as a URL: no
    unsubscribe button and no one-click unsubscribe.
    """
    if url.isascii():
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    hint = "set it to the public address of `digest serve`, e.g. https://digest.example.org"
    try:
        port = parts.port
    except ValueError as err:
        raise ConfigError(f"DIGEST_BASE_URL has a port that is not valid: {url!r}",
                          hint) from err
    try:
        ascii_host = ascii_domain(host)
    except ValueError as err:
        raise ConfigError(f"DIGEST_BASE_URL's host is not a valid domain name: {host!r}",
                          hint) from err
    userinfo, at, _ = parts.netloc.rpartition("@")
    netloc = f"{quote(userinfo, safe=':%')}{at}{ascii_host}{'' if port is None else f':{port}'}"
    keep = "/%!$&'()*+,;=:@-._~?"
    path, query, fragment = (quote(part, safe=keep) for part in parts[2:])
    return f"{parts.scheme}://{netloc}{path}" + (f"?{query}" if query else "") + (
        f"#{fragment}" if fragment else "")


def parse_from(value: str) -> tuple[str, str]:
    """Split ``Name <addr@host>`` into (name, address); reject CR/LF and bare words."""
    if "\r" in value or "\n" in value:
        raise ConfigError("DIGEST_FROM contains a line break", "put it on one line")
    match = re.fullmatch(
        r"\s*(?:\"?([^\"<]*?)\"?\s*<([^<>\s]+@[^<>\s]+)>|([^<>\s]+@[^<>\s]+))\s*", value
    )
    if not match:
        raise ConfigError(
            f"DIGEST_FROM is not an email address: {value!r}",
            'use "Research Digest <digest@example.org>" or digest@example.org',
        )
    if match.group(3):
        return "", match.group(3)
    return (match.group(1) or "").strip(), match.group(2)


def parse_sources(value: str) -> tuple[SourceSpec, ...]:
    """Parse DIGEST_SOURCES: comma-separated ``kind:location[?opt=val]`` entries."""
    specs = [parse_source(raw) for raw in split_entries(value)]
    if not specs:
        raise ConfigError("DIGEST_SOURCES lists no source", "unset it to use the sample batch")
    return tuple(specs)


_URL_START = r"[a-zA-Z][a-zA-Z0-9+.-]*://"
_PATH_START = r"(?:/|\./|\.\./|~)"
# What can begin an entry of DIGEST_SOURCES: a kind and its colon, hf-daily alone (or with
# options), or a URL or path typed without its kind (refused then, naming it).
_ENTRY_START = re.compile(
    r"\s*(?:(?:" + "|".join(re.escape(kind) for kind in SOURCE_KINDS) + r")\s*:"
    r"|hf-daily\s*(?:\?|$)|" + _URL_START + "|" + _PATH_START + ")",
    re.IGNORECASE,
)


def split_entries(value: str) -> list[str]:
    """Split DIGEST_SOURCES at its commas, except commas inside a URL or an arXiv query.

    A comma is part of many a URL (``search_query=cat:cs.LG,cat:cs.AI``, a feed's
    ``?tags=a,b``). After an entry whose location is a URL, or an arxiv-api query, a
    comma therefore separates only where what follows begins an entry (_ENTRY_START);
    anywhere else every comma separates, as it always did. Every list that parsed
    before (each of its parts begins with a kind) splits where it did.
    """
    entries: list[str] = []
    for part in value.split(","):
        inside = bool(entries) and bool(part.strip()) and _takes_commas(entries[-1])
        if inside and not _ENTRY_START.match(part):
            entries[-1] += "," + part
        else:
            entries.append(part)
    return [entry for entry in entries if entry.strip()]


def _takes_commas(entry: str) -> bool:
    """Return True when an entry's location may hold a comma: a URL, or an arXiv query."""
    kind, sep, location = entry.partition(":")
    kind, location = kind.strip().lower(), location.strip()
    if not sep or kind not in SOURCE_KINDS:
        return False
    if re.match(_URL_START, location):
        return True
    return kind == "arxiv-api" and not re.match(_PATH_START, location)


def parse_source(item: str, *, where: str = "DIGEST_SOURCES") -> SourceSpec:
    """Parse one ``kind:location[?opt=val]`` entry and check its options against its kind.

    ``where`` names the entry in errors. An option the kind does not know is an error
    here, as in `digest sources add`: a typo such as ``crosss=1`` silently ignored would
    leave the operator wondering why cross-lists never came.
    """
    spec = split_source(item, where=where)
    try:
        check_source_options(spec)
    except ConfigError as err:
        raise ConfigError(f"{where} entry {item.strip()!r}: {err.message}", err.hint) from err
    return spec


def split_source(item: str, *, where: str = "DIGEST_SOURCES") -> SourceSpec:
    """Split ``kind:location[?opt=val]`` into a SourceSpec without checking its options.

    A location that is a URL keeps its own query string: of its parameters, only those
    that are options of the kind (``limit`` of arxiv-api, ``cross`` of arxiv-rss...)
    are taken as options, and every other one stays in the URL, byte for byte. So
    ``arxiv-api:https://export.arxiv.org/api/query?search_query=cat:cs.LG&limit=200``
    asks arXiv for ``search_query=cat:cs.LG`` and reads at most 200 papers. A bare
    arXiv API query (``arxiv-api:search_query=cat:cs.LG&sortBy=submittedDate``) is read
    the same way. Elsewhere (``arxiv-rss:cs.LG?cross=1``, ``hf-daily?pages=3``, a file
    path) everything after ``?`` is options, and an unknown one is left for
    check_source_options to refuse.
    """
    item = item.strip()
    kind, sep, location = item.partition(":")
    kind = kind.strip().lower()
    bare = not sep and kind.partition("?")[0] == "hf-daily"  # hf-daily, hf-daily?pages=3
    if bare:
        kind, mark, query = kind.partition("?")
        location = "https://huggingface.co/api/daily_papers" + mark + query
    if kind not in SOURCE_KINDS or not location.strip():
        raise ConfigError(
            f"{where} entry {item!r} is not kind:location",
            "use e.g. arxiv-rss:cs.LG+cs.AI, hf-daily, rss:https://host/feed.xml, "
            f"jsonl:path/to/papers.jsonl (kinds: {', '.join(SOURCE_KINDS)})",
        )
    location = location.strip()
    # After a bare "hf-daily" the query can only be options: no URL was typed.
    is_url = not bare and bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", location))
    base, _, query = location.partition("?")
    if kind == "arxiv-api" and not is_url and "?" not in location and "=" in location:
        base, query = "", location  # a bare API query: search_query=...&sortBy=...
    known = SOURCE_OPTIONS.get(kind, {})
    keeps_query = is_url or kind == "arxiv-api"
    options: dict[str, str] = {}
    kept: list[str] = []
    for part in query.split("&") if query else []:
        key, _, value = part.partition("=")
        name = unquote(key.replace("+", " ")).strip()
        if name in known or not keeps_query:
            if name:
                options[name] = unquote(value.replace("+", " ")).strip()
        else:
            kept.append(part)
    kept_query = "&".join(kept)
    location = f"{base}?{kept_query}" if base and kept_query else (base or kept_query)
    return SourceSpec(name=f"{kind}:{location}", kind=kind, location=location,
                      options=tuple(sorted(options.items())))


_FLAGS = ("1", "0", "true", "false", "yes", "no", "on", "off")


def check_source_options(spec: SourceSpec) -> None:
    """Raise ConfigError for an option the source's kind does not know, or a bad value."""
    known = SOURCE_OPTIONS.get(spec.kind, {})
    for key, value in spec.options:
        if key not in known:
            listed = ", ".join(f"{k} ({v})" for k, v in known.items()) or "none"
            raise ConfigError(f"{spec.kind} sources have no option {key!r}",
                              f"options of {spec.kind}: {listed}")
        if key in ("limit", "pages") and not (value.isdigit() and int(value) > 0):
            raise ConfigError(f"option {key}={value!r} is not a positive whole number",
                              f"e.g. {key}=50")
        if key in ("cross", "replace", "catchup") and value.strip().lower() not in _FLAGS:
            raise ConfigError(f"option {key}={value!r} is neither on nor off",
                              f"use {key}=1 or {key}=0")
    _check_url_parameters(spec)


def _check_url_parameters(spec: SourceSpec) -> None:
    """Raise ConfigError for a parameter kept in the URL that misspells one the kind reads.

    Only a near miss (difflib's close match) of the kind's options or its API's own
    parameters is refused; any other parameter stays in the URL, unquestioned, as does
    one that differs from a known one only in case.
    """
    options = SOURCE_OPTIONS.get(spec.kind, {})
    api, parameters = SOURCE_URL_PARAMETERS.get(spec.kind, ("", ()))
    known = {name.lower(): name for name in (*options, *parameters)}
    location = spec.location.strip()
    if not known:
        return
    if "?" in location:
        query = location.partition("?")[2]
    elif spec.kind == "arxiv-api" and "=" in location:
        query = location  # a bare API query: search_query=...&sortBy=...
    else:
        return
    numbers = SOURCE_URL_NUMBERS.get(spec.kind, {})
    for part in query.split("&"):
        key, _, raw = part.partition("=")
        name = unquote(key.replace("+", " ")).strip()
        if name in numbers:
            # digest pages with these: a word failed inside the run as a bug of digest.
            value = unquote(raw.replace("+", " ")).strip()
            least = numbers[name]
            if not (value.isdigit() and int(value) >= least):
                raise ConfigError(
                    f"{spec.kind} URL parameter {name}={value!r} is not a whole number "
                    f"of {least} or more",
                    f"e.g. {name}={least}, or leave it out",
                )
        if not name or name.lower() in known:
            continue
        close = difflib.get_close_matches(name.lower(), list(known), n=1)
        if not close:
            continue
        meant = known[close[0]]
        if meant in options:
            listed = ", ".join(f"{k} ({v})" for k, v in options.items())
            raise ConfigError(f"{spec.kind} URL parameter {name!r} looks like a misspelling "
                              f"of the option {meant!r}", f"options of {spec.kind}: {listed}")
        raise ConfigError(
            f"{spec.kind} URL parameter {name!r} looks like a misspelling of {meant!r}",
            f"{api} has no such parameter; its own are "
            f"{', '.join(parameters)}",
        )


def parse_sources_file(path: Path) -> tuple[SourceSpec, ...]:
    """Read DIGEST_SOURCES_FILE: one ``kind:location[?opt=val]`` a line, ``#`` comments."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"DIGEST_SOURCES_FILE {str(path)!r} cannot be read: {err}",
            "check the path (relative paths start at the working directory)",
        ) from err
    specs: list[SourceSpec] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if " #" in text:  # a trailing comment; URLs keep their "#fragment" (no space)
            text = text.split(" #", 1)[0].strip()
        specs.append(parse_source(text, where=f"DIGEST_SOURCES_FILE {path} line {number}:"))
    return tuple(specs)


def _configured_sources(value: str, file: str) -> tuple[tuple[SourceSpec, ...], bool]:
    """Return (sources, explicit): DIGEST_SOURCES plus DIGEST_SOURCES_FILE, else the sample."""
    specs = list(parse_sources(value)) if value else []
    if file:
        specs.extend(parse_sources_file(Path(file)))
    if not specs:
        # A sources file with only comments is a file waiting for entries, not an error;
        # sources added with `digest sources add` (or else the sample) are used meanwhile.
        return parse_sources(f"jsonl:{SAMPLE_BATCH}"), False
    unique: dict[str, SourceSpec] = {}
    for spec in specs:
        unique.setdefault(spec.name, spec)  # the first mention of a source wins
    return tuple(unique.values()), True


def parse_send_at(value: str) -> tuple[int, int]:
    """Parse ``HH:MM`` (24-hour clock)."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ConfigError(
            f"DIGEST_SEND_AT must be HH:MM on a 24-hour clock, got {value!r}", "e.g. 07:00"
        )
    return int(match.group(1)), int(match.group(2))


def _int(value: str, name: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError as err:
        raise ConfigError(f"{name} must be a whole number, got {value!r}", "") from err
    if not low <= number <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {number}", "")
    return number


def _flag(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0, got {value!r}", f"set {name}=1 to turn it on")


def _float(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError as err:
        raise ConfigError(f"{name} must be a number, got {value!r}", "") from err
    if not math.isfinite(number):
        # float() reads "nan" and "inf": a rate of nan was no cap, a timeout of nan a
        # ValueError at the first connection.
        raise ConfigError(f"{name} must be a finite number, got {value!r}", "e.g. 2.5")
    if number < 0:
        raise ConfigError(f"{name} must not be negative, got {number}", "")
    return number


def _local_secret(var_dir: Path) -> str:
    """Return the secret key kept in ``var/secret.key``, creating it on first use.

    The embedded default must work with nothing configured, and signed links must stay
    valid across runs, so a random key is generated once and kept beside the database.
    """
    path = var_dir / "secret.key"
    try:
        if path.is_file():
            key = path.read_text().strip()
            if key:
                return key
            # Empty: an earlier release created the file, then could not write the key
            # into it (a full disk, a crash): no link was ever signed with it. Every
            # command after that failed with "DIGEST_SECRET_KEY is too short" (78), a
            # variable nobody had set, even once the disk had room again.
        var_dir.mkdir(parents=True, exist_ok=True)
        return _create_secret(path)
    except OSError as err:
        # Typically var/ made by root (`sudo digest init`) and the service running as
        # its own user: a traceback and exit 1 said nothing of what to change.
        raise ConfigError(
            f"DIGEST_VAR_DIR {str(var_dir)!r}: cannot read or create its secret.key: {err}",
            "make DIGEST_VAR_DIR a folder this user owns (e.g. chown -R digest var) with "
            "free space on its disk, or set DIGEST_SECRET_KEY",
        ) from err


def _create_secret(path: Path) -> str:
    """Put a new key at ``path`` whole, or return the one another process put there.

    The key is written into a file of its own, then linked into place, so nobody ever
    reads a secret.key without its key: created empty first and written after, a full
    disk left it empty for good, and a second process starting at that moment (the web
    app and the scheduler at boot) read it empty and stopped (78).
    """
    key = secrets.token_hex(32)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(draft, path)
            return key
        except FileExistsError:
            pass
        # An empty secret.key is there (or another process linked its key just now):
        # one process at a time looks again and replaces it only if still empty.
        with path.open("rb") as held:
            fcntl.flock(held.fileno(), fcntl.LOCK_EX)
            found = path.read_text().strip()
            if found:
                return found
            os.replace(draft, path)
            return key
    finally:
        draft.unlink(missing_ok=True)
