"""The engine, its transactions, and the schema; every area mixin builds on it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Column, Table, insert, inspect, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.schema import CreateColumn, CreateIndex, CreateTable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from digest.errors import SchemaError, StoreError
from digest.store.tables import SCHEMA_VERSION, meta, metadata, subscribers

# The execution option that marks a connection of StoreBase.read (see _sqlite_begin).
_READ_ONLY = "digest_read_only"
# Threads of one store that may pin a connection at once (see pinned_connection). The
# default pool holds 5 connections and 10 more while busy; a pinned thread keeps one for
# its run and takes a second for a while now and then (its claims and reads), so 4 of
# them leave at least 7 for every other transaction. Threads past 4 run unpinned.
PINNED_MAX = 4


class WriterLock:
    """Queue this host's SQLite transactions on a lock file beside the database.

    Every transaction here takes SQLite's write lock up front (BEGIN IMMEDIATE), so they
    run one at a time anyway. SQLite makes a waiting process sleep and retry, backing
    off from 1 ms to 100 ms: with two send processes writing a commit a message each,
    the waits added up to a third of their time (p99 54 ms a wait). Waiting on flock
    instead, the kernel wakes the next writer the moment the lock is released. A
    process that dies releases it; SQLite's own busy timeout still guards everything
    else (another host, a tool, a transaction nested in one already held).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._threads = threading.Lock()  # flock does not queue threads of one process
        self._local = threading.local()
        self.users = 0  # open stores sharing this lock (see writer_lock)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock for one transaction (a nested one goes straight to SQLite)."""
        if getattr(self._local, "held", False):
            yield
            return
        with self._threads:
            fd = self._open()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._local.held = True
            try:
                yield
            finally:
                self._local.held = False
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def _open(self) -> int | None:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                return None  # a read-only folder: SQLite's busy wait alone, as before
        return self._fd

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# One lock per database file in a process, shared by every store open on it: a thread
# already inside a transaction of one store is seen as holding it by the others too.
_WRITER_LOCKS: dict[str, WriterLock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()


def _after_fork_in_child() -> None:
    # A forked child shares its parent's open lock file, and flock belongs to the open
    # file: were a child killed while holding it, the lock would stay with the parent
    # and every other child (a zygote's runs would wait forever). The child opens its
    # own on its first transaction, with fresh thread locks.
    global _WRITER_LOCKS_GUARD
    _WRITER_LOCKS_GUARD = threading.Lock()
    for lock in _WRITER_LOCKS.values():
        if lock._fd is not None:
            with contextlib.suppress(OSError):
                os.close(lock._fd)
            lock._fd = None
        lock._threads = threading.Lock()
        lock._local = threading.local()


os.register_at_fork(after_in_child=_after_fork_in_child)


def writer_lock(engine: Engine) -> WriterLock | None:
    """Return the writer lock for an SQLite file's engine; None for anything else."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = os.path.realpath(f"{database}-writer")
    with _WRITER_LOCKS_GUARD:
        lock = _WRITER_LOCKS.setdefault(path, WriterLock(Path(path)))
        lock.users += 1
    return lock


def release_writer_lock(lock: WriterLock) -> None:
    """Forget one store's use of a writer lock; close its file when none is left."""
    with _WRITER_LOCKS_GUARD:
        lock.users -= 1
        if lock.users <= 0:
            _WRITER_LOCKS.pop(str(lock.path), None)
            lock._close()


# What a database says when it cannot write its files: SQLite's SQLITE_FULL (ENOSPC)
# and SQLITE_IOERR (EFBIG past a file size limit, ENOSPC on its -shm file), as sqlite3
# words them; PostgreSQL's DiskFull ("could not extend file ...: No space left on device").
_NO_ROOM = ("database or disk is full", "disk i/o error", "no space left on device")


def database_error(cause: BaseException | None) -> StoreError:
    """Return the StoreError (75: try later) for a driver's OperationalError, its hint
    saying what to do about that cause.

    Every cause got one hint, "check DIGEST_DATABASE_URL and that the database is
    reachable; if it is locked, another run may be writing: try again later": on a
    full disk the operator was sent to the URL and to other runs, and the next runs
    failed alike until someone looked at the disk.
    """
    text = str(cause)
    lowered = text.lower()
    if any(words in lowered for words in _NO_ROOM):
        hint = ("free space on the disk that holds the database (and DIGEST_VAR_DIR), "
                "then run again: what was planned stays planned, nothing is resent")
    else:
        hint = ("check DIGEST_DATABASE_URL and that the database is reachable; if it is "
                "locked, another run may be writing: try again later")
    return StoreError(f"database error: {text}", hint)


class StoreBase:
    """The engine and its transactions, and the schema the areas share."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = writer_lock(engine)
        self._pinned = threading.local()  # see pinned_connection
        self._pin_slots = threading.BoundedSemaphore(PINNED_MAX)

    def _hold_writer(self) -> AbstractContextManager[None]:
        return self._writer.hold() if self._writer is not None else nullcontext()

    @property
    def is_sqlite(self) -> bool:
        """Return True on SQLite."""
        return self.engine.dialect.name == "sqlite"

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()
        if self._writer is not None:
            release_writer_lock(self._writer)
            self._writer = None

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """Open one transaction, translating driver errors into StoreError."""
        try:
            with self._hold_writer(), self.engine.begin() as conn:
                yield conn
        except OperationalError as err:
            raise database_error(err.orig) from err

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Open a transaction that only reads: on SQLite a snapshot, with no write lock.

        ``begin`` takes SQLite's write lock (and this host's lock file) even to read, so
        a send worker reading its chunk's subscribers and messages (~2-4 ms for 25)
        held up every other worker's commit meanwhile. In WAL mode a reader sees the
        database as of its first read and neither waits for writers nor blocks them.
        """
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{_READ_ONLY: True})
                with conn.begin():
                    yield conn
        except OperationalError as err:
            raise database_error(err.orig) from err

    @contextmanager
    def driver_transaction(self) -> Iterator[Any]:
        """Open one transaction on a pooled DBAPI connection; yield its cursor.

        For the statements every sent message runs (``Prepared``): SQLAlchemy's
        execution layers (connection, events, execution context, result) cost several
        times what the driver itself does for a one-row UPDATE. The connection comes
        from the engine's pool as for ``begin``; on SQLite the transaction takes the write
        lock up front (BEGIN IMMEDIATE), as ``begin`` does.
        """
        dbapi = self.engine.dialect.loaded_dbapi
        pinned = getattr(self._pinned, "active", False)
        raw = getattr(self._pinned, "raw", None)
        if raw is None:
            raw = self.engine.raw_connection()
            if pinned:
                self._pinned.raw = raw
        try:
            with self._hold_writer():
                cursor = raw.cursor()
                if self.is_sqlite:
                    cursor.execute("BEGIN IMMEDIATE")
                try:
                    yield cursor
                    raw.commit()
                except BaseException:
                    raw.rollback()
                    raise
        except dbapi.Error as err:
            if pinned:
                # The connection may be broken: back to the pool (which drops it if
                # so), and the next transaction takes one as begin() would.
                self._pinned.raw = None
                raw.close()
            if isinstance(err, dbapi.OperationalError):
                raise database_error(err) from err
            raise
        finally:
            if not pinned:
                raw.close()

    @contextmanager
    def pinned_connection(self) -> Iterator[None]:
        """Run this thread's driver transactions on one pooled connection until the end.

        A send worker runs one a message; taking a connection from the pool and giving
        it back each time cost ~25 us of CPU on SQLite, and on PostgreSQL a round trip
        too (the pool pings a connection before handing it out). A connection that
        fails is given back and the next transaction takes another. At most PINNED_MAX
        threads pin at once, so that pinned connections never take the whole pool.
        """
        if getattr(self._pinned, "active", False) or not self._pin_slots.acquire(False):
            yield  # already pinned, or as many threads pinned as the pool allows
            return
        self._pinned.active = True
        try:
            yield
        finally:
            raw = getattr(self._pinned, "raw", None)
            self._pinned.active, self._pinned.raw = False, None
            self._pin_slots.release()
            if raw is not None:
                raw.close()

    # -- schema -------------------------------------------------------------------------

    def create(self) -> None:
        """Create every table and record the schema version (safe to repeat)."""
        with self.begin() as conn:
            metadata.create_all(conn)
            found = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version"))
            if found.scalar() is None:
                conn.execute(insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION)))

    def schema_version(self) -> int | None:
        """Return the stored schema version, or None for an empty database."""
        with self.begin() as conn:
            if not inspect(conn).has_table("meta"):
                return None
            value = conn.execute(
                select(meta.c.value).where(meta.c.key == "schema_version")
            ).scalar()
        return int(value) if value is not None else None

    def check(self, *, create: bool = True) -> None:
        """Verify the schema version; create the schema in an empty database when allowed."""
        version = self.schema_version()
        if version is None:
            if not create:
                raise SchemaError(
                    "the database has no digest schema", "run `digest init` first"
                )
            self.create()
            return
        if version != SCHEMA_VERSION:
            raise SchemaError(
                f"the database schema is version {version}, this digest expects "
                f"{SCHEMA_VERSION}",
                "upgrade digest to a release that knows this schema, or point "
                "DIGEST_DATABASE_URL at a new database",
            )
        if self.is_sqlite:
            self._sqlite_autoincrement(subscribers)
        self._add_new_tables()

    def _add_new_tables(self) -> None:
        """Create the tables and columns added to this schema version since the database
        was made.

        Within one version the schema only gains tables and nullable columns (never a
        changed column), so a database from an earlier release gets them the first time
        it is opened, in one transaction: a process killed meanwhile leaves it as it was,
        and the next one does it again. A database made before the ledger's leases
        (deliveries.claimed_by, claimed_until) failed every run, preview and ledger
        listing with "no such column", exit 75 ("try again later") hour after hour.
        """
        with self.begin() as conn:
            have = _table_columns(conn)
            missing = [table for table in metadata.sorted_tables if table.name not in have]
            if missing:
                metadata.create_all(conn, tables=missing)
            for table in metadata.sorted_tables:
                for column in table.columns:
                    if table.name in have and column.name not in have[table.name]:
                        self._add_column(conn, table, column)
            # An index the schema gained on a table already there (papers' lower(title),
            # which typed titles are looked up by): without it every such lookup read
            # the whole table. IF NOT EXISTS: two processes upgrading at once.
            indexed = _index_names(conn)
            for table in metadata.sorted_tables:
                for index in table.indexes:
                    if table.name in have and index.name not in indexed:
                        conn.execute(CreateIndex(index, if_not_exists=True))

    def _sqlite_autoincrement(self, table: Table) -> None:
        """Rebuild an SQLite table made without the AUTOINCREMENT its schema now has.

        Without it SQLite gives a new row max(id) + 1, so the id of the newest row,
        once deleted, goes to the next one. The subscribers table gained it with the web
        app (66852d3): in a database made before, a removed subscriber's links (unsubscribe
        and preferences never expire) opened the next sign-up's account. SQLite cannot
        add it to a table: the rows move to a new one (its documented way of changing a
        table), in one transaction with foreign keys off, so that the ledger's rows that
        point at the table stay; they are checked before the commit.
        """
        find = text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name")
        with self.read() as conn:
            made = conn.execute(find, {"name": table.name}).scalar()
        if made is None or "AUTOINCREMENT" in made.upper():
            return
        try:
            with self._hold_writer(), self.engine.connect() as conn:
                driver = conn.connection.dbapi_connection
                assert driver is not None  # a connection just taken from the pool
                # Only outside a transaction does SQLite take this pragma.
                driver.execute("PRAGMA foreign_keys=OFF")
                try:
                    with conn.begin():
                        made = conn.execute(find, {"name": table.name}).scalar()
                        if made is None or "AUTOINCREMENT" in made.upper():
                            return  # another process did it meanwhile
                        self._rebuild(conn, table)
                finally:
                    driver.execute("PRAGMA foreign_keys=ON")
        except OperationalError as err:
            raise StoreError(
                f"database error while upgrading the table {table.name}: {err.orig}",
                "the first command after an upgrade must be able to write the database "
                "(run it as the service's user); if it is locked, try again later",
            ) from err

    def _rebuild(self, conn: Connection, table: Table) -> None:
        """Move a table's rows into one made from the schema, under the same name."""
        preparer = conn.dialect.identifier_preparer
        name, interim = preparer.format_table(table), preparer.quote(f"{table.name}_upgrade")
        create = str(CreateTable(table).compile(dialect=conn.dialect)).strip()
        prefix = f"CREATE TABLE {name} "
        assert create.startswith(prefix), create
        conn.execute(text(f"CREATE TABLE {interim} " + create.removeprefix(prefix)))
        listed = ", ".join(preparer.quote(column.name) for column in table.columns)
        conn.execute(text(f"INSERT INTO {interim} ({listed}) SELECT {listed} FROM {name}"))
        conn.execute(text(f"DROP TABLE {name}"))  # its indexes with it
        conn.execute(text(f"ALTER TABLE {interim} RENAME TO {name}"))
        for index in table.indexes:
            conn.execute(CreateIndex(index))
        broken = conn.execute(text("PRAGMA foreign_key_check")).fetchall()
        if broken:
            raise SchemaError(
                f"rebuilding the table {table.name} would break {len(broken)} references "
                "to it; the database was left as it was",
                "check the database with `sqlite3 FILE 'PRAGMA foreign_key_check'`",
            )

    def _add_column(self, conn: Connection, table: Table, column: Column[Any]) -> None:
        """Add a column the schema gained to an existing table (ALTER TABLE ADD COLUMN)."""
        if not column.nullable and column.server_default is None:
            # Rows already there would have no value for it: no release adds one such.
            raise SchemaError(
                f"the database's table {table.name} has no column {column.name}, and it "
                "cannot be added to the rows already there",
                "point DIGEST_DATABASE_URL at a new database (`digest init`) and move the "
                "subscribers over with `digest subscribers export --csv` and `import`",
            )
        preparer = conn.dialect.identifier_preparer
        spec = CreateColumn(column).compile(dialect=conn.dialect)
        # IF NOT EXISTS: two processes upgrading one PostgreSQL database at once (SQLite's
        # BEGIN IMMEDIATE runs them one after the other).
        guard = "IF NOT EXISTS " if conn.dialect.name == "postgresql" else ""
        conn.execute(text(f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {guard}{spec}"))

    def _upsert(self, table: Table, values: Mapping[str, Any], *, key: Sequence[str]) -> Any:
        """Return an INSERT of ``values`` that, when a row with this ``key`` exists,
        sets that row's other columns from ``values`` instead.

        One statement, not a read (or a delete) then an insert: PostgreSQL runs writers
        side by side (READ COMMITTED), so two that both found no row both inserted and
        the second failed on the key. SQLite's BEGIN IMMEDIATE serialised them.
        """
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            statement: Any = pg_insert(table).values(**values)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            statement = sqlite_insert(table).values(**values)
        changed = {name: statement.excluded[name] for name in values if name not in key}
        return statement.on_conflict_do_update(index_elements=list(key), set_=changed)

    def _insert_ignore(self, table: Table) -> Any:
        """Return an INSERT that skips rows whose primary key already exists."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()


def _index_names(conn: Connection) -> set[str]:
    """Return the names of the database's indexes (one query)."""
    if conn.dialect.name == "sqlite":
        found = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'"))
    elif conn.dialect.name == "postgresql":
        found = conn.execute(text(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"))
    else:
        inspector = inspect(conn)
        return {str(index["name"]) for name in inspector.get_table_names()
                for index in inspector.get_indexes(name)}
    return {str(name) for (name,) in found}


def _table_columns(conn: Connection) -> dict[str, set[str]]:
    """Return the column names of each table of the database (one query)."""
    if conn.dialect.name == "sqlite":
        found = conn.execute(text(
            "SELECT m.name, p.name FROM sqlite_master AS m "
            "JOIN pragma_table_info(m.name) AS p WHERE m.type = 'table'"
        ))
    elif conn.dialect.name == "postgresql":
        found = conn.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        ))
    else:
        inspector = inspect(conn)
        return {name: {column["name"] for column in inspector.get_columns(name)}
                for name in inspector.get_table_names()}
    columns: dict[str, set[str]] = {}
    for table, column in found:
        columns.setdefault(table, set()).add(column)
    return columns


# The WAL file is cut back to this size when a write starts it over after a checkpoint;
# without a limit it keeps the size of the largest transaction it ever held (1.28 GB
# was seen beside a database filled with a year of history in one transaction).
WAL_SIZE_LIMIT = 64 * 1024 * 1024


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets readers (web, status) proceed while a run writes; busy_timeout makes a
    # writer wait for another instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA journal_size_limit={int(WAL_SIZE_LIMIT)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # A deleted subscriber's rows are overwritten with zeros, not left readable in free
    # pages: the default of Debian's SQLite, not of every build (README, Subscribers).
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()
    # Take over transaction control from pysqlite (see _sqlite_begin).
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    # BEGIN IMMEDIATE takes the write lock up front. A deferred transaction that reads
    # and then writes fails at once with "database is locked" when another writer got
    # there first (SQLite cannot wait on a lock upgrade); an immediate one waits for
    # busy_timeout instead. Transactions here are short, so serialising them is cheap.
    # Only StoreBase.read's transactions, which never write, begin deferred.
    read_only = conn.get_execution_options().get(_READ_ONLY, False)
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class Prepared:
    """A statement compiled once for an engine's dialect, run on a DBAPI cursor.

    ``params`` turns the statement's named parameters into what the driver takes, with
    the values SQLAlchemy would bind (its bind processors: dates and datetimes become
    the same text on SQLite), so rows read back through SQLAlchemy look the same.
    """

    def __init__(self, statement: ClauseElement, engine: Engine) -> None:
        dialect = engine.dialect
        # A DML statement compiles to an SQLCompiler; its annotation says only Compiled.
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = compiled.string
        # For each parameter the driver receives: the caller's key (a bindparam without
        # a value), or the value written into the statement (.values(status="sent")),
        # bound once; and the type's bind processor, if it has one.
        slots: dict[str, tuple[str | None, Any, Any]] = {}
        for bind, name in compiled.bind_names.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                slots[name] = (bind.key, None, processor)
            else:
                value = bind.effective_value
                slots[name] = (None, processor(value) if processor else value, None)
        self._names = list(compiled.positiontup or []) if compiled.positional else None
        self._slots = [(name, *slots[name]) for name in (self._names or slots)]

    def params(self, values: Mapping[str, Any]) -> Any:
        """Return the driver's parameters (a tuple or a dict) for these named values."""
        bound = [
            value if key is None else processor(values[key]) if processor else values[key]
            for _, key, value, processor in self._slots
        ]
        if self._names is not None:
            return tuple(bound)
        return {name: value for (name, *_), value in zip(self._slots, bound, strict=True)}

    def params_each(self, values: Mapping[str, Any], key: str, items: Iterable[Any]) -> list[Any]:
        """Return the driver's parameters for each of ``items`` as ``key``, the rest ``values``.

        For an executemany of rows that differ in one value (a message's sent papers):
        the others are bound once, not once a row.
        """
        at = [n for n, (_, slot_key, _, _) in enumerate(self._slots) if slot_key == key]
        if len(at) != 1 or self._slots[at[0]][3] is not None:
            # Bound more than once, or through a bind processor: value by value.
            return [self.params({**values, key: item}) for item in items]
        first = self.params({**values, key: None})
        if self._names is not None:
            head, tail = first[: at[0]], first[at[0] + 1 :]
            return [(*head, item, *tail) for item in items]
        name = self._slots[at[0]][0]
        return [{**first, name: item} for item in items]
