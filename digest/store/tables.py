"""The schema: SQLAlchemy Core tables and the schema version."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

from digest.models import PAPER_DOI_MAX, PAPER_KEY_MAX, PAPER_SOURCE_MAX

SCHEMA_VERSION = 1

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

papers = Table(
    "papers",
    metadata,
    Column("key", String(PAPER_KEY_MAX), primary_key=True),
    Column("title", Text, nullable=False),
    Column("abstract", Text, nullable=False, default=""),
    Column("authors", JSON, nullable=False),
    Column("categories", JSON, nullable=False),
    Column("url", Text, nullable=False, default=""),
    Column("pdf_url", Text, nullable=False, default=""),
    Column("source", String(PAPER_SOURCE_MAX), nullable=False, default=""),
    Column("published", Date),
    Column("announce_type", String(20), nullable=False, default="new"),
    Column("version", Integer),
    Column("doi", String(PAPER_DOI_MAX)),
    Column("comment", Text),
    Column("upvotes", Integer),
    Column("ai_summary", Text),
    Column("ai_keywords", JSON, nullable=False),
    # The day of the run that first stored the paper: the paper belongs to that batch and
    # never moves to a later one, so a replacement or a second source cannot re-send it.
    Column("batch_day", Date, nullable=False, index=True),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
# arXiv ids that profiles name (seed, liked, disliked papers) and the store did not hold,
# asked of the arXiv API by id: when, and whether arXiv knew them. An id asked lately is
# not asked again every run (a typo, a withdrawn paper).
lookups = Table(
    "lookups",
    metadata,
    Column("key", String(PAPER_KEY_MAX), primary_key=True),
    Column("asked_at", DateTime(timezone=True), nullable=False),
    Column("found", Boolean, nullable=False),
)

# Papers a subscriber's interests name by title are looked up by their lowered title.
Index("ix_papers_title_lower", func.lower(papers.c.title))

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("status", String(20), nullable=False, index=True),
    Column("profile", JSON, nullable=False),
    Column("send_hour", Integer, nullable=False, default=7),
    Column("timezone", String(64), nullable=False, default="UTC"),
    Column("cadence", String(10), nullable=False, default="daily"),
    Column("weekday", Integer, nullable=False, default=0),
    Column("max_papers", Integer, nullable=False, default=10),
    Column("empty_digest", String(10), nullable=False, default="skip"),
    Column("popularity", Float, nullable=False, default=0.0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("confirmed_at", DateTime(timezone=True)),
    Column("confirm_sent_at", DateTime(timezone=True)),
    # Never reuse a deleted subscriber's id: signed links carry the id, and an old
    # unsubscribe or preferences link must not open a later subscriber's account.
    sqlite_autoincrement=True,
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("day", Date, nullable=False, index=True),
    Column("status", String(20), nullable=False, index=True),
    Column("message_id", String(300), nullable=False, default=""),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("papers", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True)),
    # A worker's lease on a planned row: nothing of the message has been transmitted
    # yet, so when the lease runs out (the worker died) another worker may take it.
    Column("claimed_by", String(100)),
    Column("claimed_until", DateTime(timezone=True)),
    UniqueConstraint("subscriber_id", "day", name="uq_delivery_subscriber_day"),
)

# Digests written in the plan phase, ahead of their send: one per planned ledger row
# (same transaction), so the send phase only delivers bytes. A row whose ledger row is
# final (sent, skipped, failed) is dropped by Store.purge_outbox; one missing (a row
# planned before this table existed, or purged) is written at its send as before.
outbox = Table(
    "outbox",
    metadata,
    Column("subscriber_id", Integer, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("sender", String(320), nullable=False),
    Column("recipients", JSON, nullable=False),
    # The subscriber's address and name the message was written for.
    Column("to_email", String(320), nullable=False),
    Column("to_name", String(200), nullable=False),
    # The message's CRLF bytes without its Date header, packed (digest.packing: LZ4,
    # ~9 KB a digest; zlib, ~6.5 KB, in a row written by a release before it).
    Column("message", LargeBinary, nullable=False),
    # True: those bytes are dot-stuffed, as DATA carries them (OutgoingMessage.stuffed).
    # NULL in a row written before the column was (plain bytes).
    Column("stuffed", Boolean),
    Column("created_at", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(
        ["subscriber_id", "day"],
        ["deliveries.subscriber_id", "deliveries.day"],
        ondelete="CASCADE",
        name="fk_outbox_delivery",
    ),
)

sent_papers = Table(
    "sent_papers",
    metadata,
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("paper_key", String(PAPER_KEY_MAX), primary_key=True),
    Column("day", Date, nullable=False),
)

feedback = Table(
    "feedback",
    metadata,
    Column(
        "subscriber_id",
        Integer,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("paper_key", String(PAPER_KEY_MAX), primary_key=True),
    Column("vote", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

source_state = Table(
    "source_state",
    metadata,
    Column("source", String(500), primary_key=True),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_status", String(20)),
    Column("last_error", Text),
    Column("last_run_at", DateTime(timezone=True)),
    Column("last_ok_at", DateTime(timezone=True)),
    Column("last_papers", Integer),
    Column("last_new", Integer),
    # An arXiv feed's last announcement day read whole (a later one that skips
    # announcement days has their papers asked of the API: ingest.arxiv.catch_up), or
    # the last day whose Hugging Face list was read (ingest.hf.hf_catch_up).
    Column("announced_on", Date),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("day", Date, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("sent", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("report", JSON, nullable=False),
)

suppressions = Table(
    "suppressions",
    metadata,
    # A hash, not the address: a deleted subscriber leaves no readable address behind.
    Column("email_hash", String(64), primary_key=True),
    Column("reason", String(50), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

bounces = Table(
    "bounces",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # The report's Message-ID (plus recipient): scanning a mailbox twice records nothing twice.
    Column("report_id", String(500), nullable=False, unique=True),
    # A hash like suppressions: a removed subscriber leaves no readable address behind.
    Column("email_hash", String(64), nullable=False, index=True),
    Column("kind", String(20), nullable=False),  # hard, soft, complaint
    Column("status", String(20), nullable=False, default=""),
    Column("action", String(50), nullable=False, default=""),
    Column("diagnostic", Text, nullable=False, default=""),
    Column("source", String(500), nullable=False, default=""),
    Column("bounced_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

# The bounces that were verified, and by what: the Message-ID of a message the ledger sent
# to the address the report names (one the report carried), or "smtp" for our own server
# refusing the address during the send. A bounce without a row here was recorded and
# acted on nothing (a table of its own: within a schema version no column changes).
verified_bounces = Table(
    "verified_bounces",
    metadata,
    Column(
        "report_id",
        String(500),
        ForeignKey("bounces.report_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("evidence", String(300), nullable=False),
)

ranker_state = Table(
    "ranker_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Sources added with `digest sources add`; those from DIGEST_SOURCES(_FILE) are not stored.
source_specs = Table(
    "sources",
    metadata,
    Column("name", String(500), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("location", Text, nullable=False),
    Column("options", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# The sign-up form's confirmation mails of the last day, for its hourly caps: the
# client's address as a keyed hash (no address is kept), and when.
signup_mails = Table(
    "signup_mails",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client", String(64), nullable=False, index=True),
    Column("sent_at", DateTime(timezone=True), nullable=False, index=True),
)

# What a sign-up asked for, kept until the address owner confirms it: a sign-up for an
# address we know changes nothing of its row before the owner's click (a stranger may
# type anyone's address). The confirmation link carries the id; confirming applies the
# settings and drops every request of the address; unconfirmed ones expire with the link.
signup_requests = Table(
    "signup_requests",
    metadata,
    Column("id", String(32), primary_key=True),  # random: the link's token names it
    # A hash like suppressions: the link carries the address, the row needs no copy.
    Column("email_hash", String(64), nullable=False, index=True),
    Column("profile", JSON, nullable=False),
    Column("schedule", JSON, nullable=False),  # the subscriber columns it sets
    Column("created_at", DateTime(timezone=True), nullable=False),
)
