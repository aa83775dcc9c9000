"""Records that flow through the pipeline: frozen dataclasses, no behaviour beyond views."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, Literal

# The outbox's codec (a leaf like this module: its library, lz4, kept in that one
# module), which OutgoingMessage's views unpack with.
from digest.packing import unpack

# "named": not announced at all, but fetched by id because a profile names it (a seed
# paper older than the store): kept for the ranker, never mailed as new.
AnnounceType = Literal["new", "cross", "replace", "replace-cross", "named"]
# arXiv's announcements of a new version of a paper announced before (often years before).
# Stored papers that are not the day's new ones: never mailed as new unless another
# source lists them as new that day.
REPLACEMENTS: frozenset[str] = frozenset({"replace", "replace-cross", "named"})
# arXiv files these fields under two codes each ("cs.NA is an alias for math.NA", its
# taxonomy); a paper is listed under one of them or both, and its listing page mostly
# gives the canonical one only (the corpus: 61 of 65 numerical analysis papers in
# math.NA alone, 136 of 148 systems papers in eess.SY alone). A profile's code stands
# for both: a reader who ticked cs.NA got none of those papers.
CATEGORY_ALIASES: dict[str, str] = {
    "cs.NA": "math.NA", "cs.SY": "eess.SY", "math.IT": "cs.IT", "math.MP": "math-ph",
    "q-fin.EC": "econ.GN", "stat.TH": "math.ST",
}
_ALIAS_OF = {**CATEGORY_ALIASES, **{b: a for a, b in CATEGORY_ALIASES.items()}}


def with_aliases(categories: Iterable[str]) -> tuple[str, ...]:
    """Return category codes each followed by arXiv's other code for it (cs.NA, math.NA)."""
    codes: list[str] = []
    for code in categories:
        codes.append(code)
        other = _ALIAS_OF.get(code)
        if other is not None:
            codes.append(other)
    return tuple(dict.fromkeys(codes))


SubscriberStatus = Literal["pending", "active", "paused", "unsubscribed", "deleted"]
Cadence = Literal["daily", "weekly"]
DeliveryStatus = Literal[
    "planned", "sending", "sent", "temp_failed", "perm_failed", "unknown", "skipped"
]
# Outcomes nothing needs doing about: a run's report lists only the first of them
# (pipeline.sending.ROUTINE_LISTED), the report kept for `digest status` none.
ROUTINE_STATUSES = frozenset({"sent", "skipped", "planned"})
SourceStatus = Literal["ok", "quiet", "stale", "partial", "not_modified", "error"]


# What the store's columns hold of a paper (PostgreSQL enforces them; SQLite does not).
PAPER_KEY_MAX = 200
PAPER_SOURCE_MAX = 300
PAPER_DOI_MAX = 300


def without_nul(text: str) -> str:
    """Drop NUL characters, which PostgreSQL refuses in text (SQLite stores them)."""
    return text.replace("\x00", "") if "\x00" in text else text


def hide_address(text: str, email: str, replacement: str = "recipient") -> str:
    """Return ``text`` with the address, in any case, replaced (for stored error texts).

    A server's refusal names the address it refuses; what is stored beside a
    subscriber's row need not spell it again, and what outlives the row must not.
    """
    address = email.strip()
    if not address:
        return text
    return re.sub(re.escape(address), replacement, text, flags=re.IGNORECASE)


@dataclass(frozen=True)
class Paper:
    """One paper, whatever source it came from.

    ``key`` is canonical and source-independent: ``arxiv:2401.01234`` (no version),
    ``arxiv:hep-th/9901001``, else ``doi:10.1101/...`` (lower-cased), else
    ``<source>:<entry id>``.
    """

    key: str
    title: str
    abstract: str = ""
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    url: str = ""
    pdf_url: str = ""
    source: str = ""
    published: date | None = None
    announce_type: AnnounceType = "new"
    version: int | None = None
    doi: str | None = None
    comment: str | None = None
    upvotes: int | None = None
    ai_summary: str | None = None
    ai_keywords: tuple[str, ...] = ()

    @property
    def arxiv_id(self) -> str | None:
        """Return the bare arXiv id when the key is an arXiv key."""
        return self.key.removeprefix("arxiv:") if self.key.startswith("arxiv:") else None

    @property
    def primary_category(self) -> str | None:
        """Return the first listed category, arXiv's primary."""
        return self.categories[0] if self.categories else None


@dataclass(frozen=True)
class Profile:
    """What a subscriber wants; every field is optional.

    ``seeds``, ``liked`` and ``disliked`` are paper keys (``arxiv:2401.01234``).
    """

    interests: str = ""
    keywords: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    seeds: tuple[str, ...] = ()
    liked: tuple[str, ...] = ()
    disliked: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        """Return True when the profile holds no signal at all."""
        return not any(
            (
                self.interests.strip(),
                self.keywords,
                self.categories,
                self.authors,
                self.seeds,
                self.liked,
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, strict: bool = False) -> Profile:
        """Build a profile from a JSON-ready dict, ignoring unknown keys.

        ``interests`` may be one string or a list of strings (its lines, joined with
        new lines: each line is a part of its own, a title on its own line a seed). A
        list field may be one string (a one-element list). Null is empty. With
        ``strict``, any other type (a number, an object, true/false, a list holding one)
        raises ValueError naming the field; without, it is read as text, as stored
        profiles always were.
        """

        def wrong(name: str, value: object, item: int | None = None) -> ValueError:
            if item is None:
                return ValueError(f"'{name}' must be a string or a list of strings, "
                                  f"not {json_kind(value)}")
            return ValueError(f"'{name}' item {item} must be a string, not {json_kind(value)}")

        def listed(name: str) -> list[str]:
            raw = data.get(name)
            if raw is None or isinstance(raw, str):
                return [raw] if raw else []
            if not isinstance(raw, list | tuple):
                if strict:
                    raise wrong(name, raw)
                return [str(raw)] if raw else []
            if strict:
                for number, item in enumerate(raw, start=1):
                    if not isinstance(item, str):
                        raise wrong(name, item, number)
            return [str(item) for item in raw]

        def strings(name: str) -> tuple[str, ...]:
            return tuple(item.strip() for item in listed(name) if item.strip())

        return cls(
            interests="\n".join(listed("interests")),
            keywords=strings("keywords"),
            exclude=strings("exclude"),
            categories=strings("categories"),
            authors=strings("authors"),
            seeds=strings("seeds"),
            liked=strings("liked"),
            disliked=strings("disliked"),
        )


def json_kind(value: object) -> str:
    """Name a value's JSON type for a message: "a number", "an object", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return "a string" if isinstance(value, str) else type(value).__name__


@dataclass(frozen=True)
class Subscriber:
    """A person who receives digests."""

    id: int
    email: str
    profile: Profile = field(default_factory=Profile)
    name: str = ""
    status: SubscriberStatus = "active"
    send_hour: int = 7
    timezone: str = "UTC"
    cadence: Cadence = "daily"
    weekday: int = 0  # Monday; used when cadence is weekly
    max_papers: int = 10
    empty_digest: Literal["skip", "note"] = "skip"
    popularity: float = 0.0  # 0..1 blend weight for Hugging Face upvotes
    created_at: datetime | None = None


@dataclass(frozen=True)
class ScoredPaper:
    """A paper chosen for one subscriber, with its score and a one-line reason."""

    paper: Paper
    score: float
    reason: str


@dataclass(frozen=True)
class Digest:
    """One subscriber's email for one day, before rendering."""

    subscriber: Subscriber
    day: date
    papers: tuple[ScoredPaper, ...]
    batch_size: int = 0
    # The first batch day of the papers it chose from when they span several (the
    # batches of days it skipped, a pause, downtime); None: one day's batch.
    since: date | None = None
    # The subscriber's categories that none of the papers it chose from is in, and
    # whether any of those papers is in a category at all (said in an empty note).
    absent_categories: tuple[str, ...] = ()
    categorised: bool = True


@dataclass(frozen=True)
class DigestLinks:
    """Signed URLs that go into one rendered digest."""

    unsubscribe: str
    preferences: str
    more: dict[str, str] = field(default_factory=dict)  # paper key -> "more like this" URL
    less: dict[str, str] = field(default_factory=dict)  # paper key -> "less like this" URL


@dataclass(frozen=True)
class RenderedEmail:
    """The rendered parts of one email."""

    subject: str
    preheader: str
    text: str
    html: str
    # Optionally, ``html`` cut into pieces, each marked True when it is the same for
    # every subscriber (the same string object from run to run): the MIME writer encodes
    # such a piece once (tests/test_render_speed_fragments.py). Not part of equality.
    html_pieces: tuple[tuple[str, bool], ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class OutgoingMessage:
    """A digest rendered ahead of its send: the SMTP envelope and the wire bytes, packed.

    ``packed`` is the message (CRLF lines) without its Date header, packed by
    ``digest.packing`` (LZ4; zlib in a row an earlier release wrote); the
    send adds the Date of the moment it goes out. With ``stuffed`` those bytes are as
    SMTP's DATA carries them (mail.smtp.dot_stuffed: each line that starts with "." has
    another before it), which the send transmits as they are; a message stored before
    the outbox kept that form is plain. ``to_email`` and ``to_name`` are the
    subscriber's address and name it was written for: should either change before the
    send, the message is written anew.
    """

    sender: str
    recipients: tuple[str, ...]
    to_email: str
    to_name: str
    packed: bytes = field(repr=False)
    stuffed: bool = False

    def unpacked(self) -> bytes:
        """Return the stored bytes: dot-stuffed when ``stuffed``, else the message's."""
        return unpack(self.packed)

    def wire(self) -> bytes:
        """Return the message's bytes (without Date)."""
        data = self.unpacked()
        return dot_unstuffed(data) if self.stuffed else data


def dot_unstuffed(data: bytes) -> bytes:
    """Return the message whose dot-stuffed bytes (mail.smtp.dot_stuffed) are ``data``."""
    # Only the stuffing makes a line start with ".." (a line "." of the message is "..",
    # one ".." is "..."). A CRLF cannot start within "\r\n..", so no two matches
    # overlap and each line's start is found.
    wire = data[1:] if data.startswith(b"..") else data
    return wire.replace(b"\r\n..", b"\r\n.")


@dataclass(frozen=True)
class SourceSpec:
    """One configured source: ``kind`` is arxiv-rss, arxiv-api, hf-daily, rss or jsonl."""

    name: str
    kind: str
    location: str
    options: tuple[tuple[str, str], ...] = ()

    def option(self, name: str, default: str = "") -> str:
        """Return one option's value, or the default."""
        for key, value in self.options:
            if key == name:
                return value
        return default


@dataclass(frozen=True)
class SourceResult:
    """What one source yielded on one run, and how healthy it looked."""

    source: str
    status: SourceStatus
    papers: tuple[Paper, ...] = ()
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    duration_s: float = 0.0
    new: int = 0
    announced: date | None = None  # an arXiv feed's announcement day (a Hugging Face
    # list's day), once read whole
    note: str | None = None  # what else was done (a catch-up)


@dataclass(frozen=True)
class Delivery:
    """One ledger row: one subscriber, one digest day."""

    subscriber_id: int
    day: date
    status: DeliveryStatus
    message_id: str = ""
    attempts: int = 0
    error: str | None = None
    paper_keys: tuple[str, ...] = ()
    updated_at: datetime | None = None
    # (paper key, score, reason) per paper, as ranked when the row was planned; a retry
    # re-renders exactly this digest.
    picks: tuple[tuple[str, float, str], ...] = ()
    next_attempt_at: datetime | None = None
    created_at: datetime | None = None  # when the row was planned (its window fixed)


@dataclass(frozen=True)
class RunReport:
    """The outcome of one daily run, printed by the CLI and stored for ``digest status``."""

    day: date
    started_at: datetime
    finished_at: datetime
    sources: tuple[SourceResult, ...] = ()
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    unknown: int = 0
    not_due: int = 0
    batch_size: int = 0  # the largest pool of papers a chunk of new digests was ranked from
    # Papers filed under ``day`` when the run ended (earlier runs' and this one's); None
    # in a send worker's report, which looks at no papers.
    papers_filed: int | None = None
    dry_run: bool = False
    # Every outcome that went wrong, and the first routine ones (sent, skipped, planned:
    # pipeline.sending.ROUTINE_LISTED); how many routine ones were not listed. The
    # ledger holds every digest's outcome (`digest deliveries list`).
    deliveries: tuple[Delivery, ...] = ()
    deliveries_omitted: int = 0
    aborted: str | None = None
    abort_exit: int = 0  # the exit code that explains an aborted run (75 try later, 78 config)

    @property
    def papers_new(self) -> int:
        """Return how many papers this run stored for the first time (over its sources)."""
        return sum(s.new for s in self.sources)

    @property
    def ok(self) -> bool:
        """Return True when nothing failed and no digest's fate is unknown (a dropped
        connection after the message, or a process killed mid-send: an operator
        decides whether to send it again, so cron must hear of it)."""
        return (
            self.failed == 0
            and self.unknown == 0
            and self.aborted is None
            and all(s.status != "error" for s in self.sources)
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (no secrets: reports never hold any)."""
        return {
            "day": self.day.isoformat(),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_s": round((self.finished_at - self.started_at).total_seconds(), 3),
            "sent": self.sent,
            "skipped": self.skipped,
            "failed": self.failed,
            "unknown": self.unknown,
            "not_due": self.not_due,
            "batch_size": self.batch_size,
            "papers_filed": self.papers_filed,
            "papers_new": self.papers_new,
            "dry_run": self.dry_run,
            "aborted": self.aborted,
            "sources": [
                {
                    "source": s.source,
                    "status": s.status,
                    "papers": len(s.papers),
                    "new": s.new,
                    "error": s.error,
                    "note": s.note,
                    "duration_s": round(s.duration_s, 3),
                }
                for s in self.sources
            ],
            "deliveries": [
                {
                    "subscriber_id": d.subscriber_id,
                    "status": d.status,
                    "papers": len(d.paper_keys),
                    "message_id": d.message_id,
                    "error": d.error,
                }
                for d in self.deliveries
            ],
            "deliveries_omitted": self.deliveries_omitted,
        }
