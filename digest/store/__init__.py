"""Every SQL statement: SQLAlchemy Core tables on SQLite (WAL) by default, PostgreSQL by URL.

``tables`` holds the schema, ``rows`` turns rows into records, ``base`` owns the engine
and its transactions, and one mixin module per area holds that area's methods; ``Store``
joins them. The area modules have singular names (``paper``, ``delivery``...) so they
never shadow the tables of the plural name (``papers``, ``deliveries``...) exported here.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.exc import SQLAlchemyError

from digest.errors import ConfigError
from digest.store.base import StoreBase, _sqlite_begin, _sqlite_pragmas
from digest.store.bounce import BounceMixin
from digest.store.delivery import DeliveryMixin
from digest.store.lease import LeaseMixin
from digest.store.outbox import OutboxMixin
from digest.store.paper import PaperMixin
from digest.store.ranker import RankerMixin
from digest.store.retention import RetentionMixin
from digest.store.rows import email_hash
from digest.store.source import SourceMixin
from digest.store.subscriber import SubscriberMixin
from digest.store.tables import (
    SCHEMA_VERSION,
    bounces,
    deliveries,
    feedback,
    meta,
    metadata,
    outbox,
    papers,
    ranker_state,
    runs,
    sent_papers,
    signup_requests,
    source_specs,
    source_state,
    subscribers,
    suppressions,
    verified_bounces,
)
from digest.store.web import WebMixin

__all__ = [
    "SCHEMA_VERSION",
    "Store",
    "bounces",
    "deliveries",
    "email_hash",
    "feedback",
    "meta",
    "metadata",
    "open_store",
    "outbox",
    "papers",
    "ranker_state",
    "runs",
    "sent_papers",
    "signup_requests",
    "source_specs",
    "source_state",
    "subscribers",
    "suppressions",
    "verified_bounces",
]


class Store(
    PaperMixin,
    SubscriberMixin,
    LeaseMixin,
    DeliveryMixin,
    OutboxMixin,
    BounceMixin,
    SourceMixin,
    RankerMixin,
    RetentionMixin,
    WebMixin,
    StoreBase,
):
    """The database: open with ``open_store``; every read and write is a method here."""


def open_store(url: str, *, create: bool = True) -> Store:
    """Connect to the database, creating an SQLite file's folder, and check the schema."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise ConfigError(
                    f"cannot make the folder of the SQLite file in DIGEST_DATABASE_URL: {err}",
                    "point it at a folder this user may write (DIGEST_VAR_DIR, or the URL)",
                ) from err
    try:
        engine = create_engine(url, future=True, pool_pre_ping=not url.startswith("sqlite"))
    except (SQLAlchemyError, ImportError, ValueError) as err:
        # Nothing was connected to yet: the URL, its dialect or its driver is wrong, a
        # setting to fix (78), not a database to wait for (75, from store.check).
        raise ConfigError(
            f"DIGEST_DATABASE_URL is not a usable database URL: {err}",
            "use sqlite:///var/digest.sqlite3 or postgresql+psycopg://user:pass@host/db "
            "(PostgreSQL needs the postgres extra: `pip install -e '.[postgres]'` in the "
            "checkout)",
        ) from err
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    store = Store(engine)
    store.check(create=create)
    return store
