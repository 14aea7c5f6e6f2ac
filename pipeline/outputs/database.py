"""The dashboard tables written into SQL databases (SQLite, PostgreSQL) through SQLAlchemy Core.

Every statement is built from the one definition in :mod:`pipeline.outputs.tables` and rendered
by SQLAlchemy for the dialect at hand, so no SQL is written out here for two databases to keep
in step (the one literal statement is SQLite's ``BEGIN IMMEDIATE``).

Each export is one transaction: tables are created if missing (``METADATA.create_all``), every
row is an upsert keyed on its table's primary key (the dialect's own ``INSERT ... ON CONFLICT
DO UPDATE``), sent in executemany batches, and rows a re-export no longer produces are deleted
by key (see :func:`write_tables` for which).

Engines are made per export and disposed of at its end (``NullPool``): an export is one
connection, and a SQLite file must be closed before it is renamed into place.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    URL,
    Connection,
    Engine,
    Executable,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    inspect,
    make_url,
    select,
)
from sqlalchemy import Table as SqlTable
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from pipeline.common.redact import redact, redact_url
from pipeline.outputs.rundata import ExportError
from pipeline.outputs.tables import (
    CONFLICTS,
    FIELD_VALUES,
    META,
    METADATA,
    TABLE_SCHEMA_VERSION,
    column_names,
    key_names,
)

Row = dict[str, Any]
Prune = Literal["all", "owned"]
T = TypeVar("T")

# Rows per executemany call: large enough that the per-call overhead vanishes, small enough
# that a batch of wide records rows stays a few megabytes.
BATCH_ROWS = 2000
# Owner ids per "WHERE owner IN (...)" lookup, well under SQLite's limit on bound parameters.
OWNER_CHUNK = 500

# Which column scopes pruning when a shared database holds other runs: a re-export replaces the
# rows of the articles / incidents it exports and leaves everyone else's alone.
PRUNE_OWNER = {FIELD_VALUES.name: "article_id", CONFLICTS.name: "incident_id"}

SCHEMA_VERSION_KEY = "table_schema_version"


def batched(items: Iterable[T], size: int = BATCH_ROWS) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# ---------------------------------------------------------------------------
# Connections


def _sqlite_engine(path: Path) -> Engine:
    # timeout: wait up to 10 s while another connection writes (the batch runner, a second export).
    engine = create_engine(
        URL.create("sqlite+pysqlite", database=str(path)),
        poolclass=NullPool,
        connect_args={"timeout": 10},
    )

    def driver_without_transactions(dbapi_connection: Any, _record: Any) -> None:
        # Python's sqlite3 opens transactions only before DML, so CREATE TABLE would commit on
        # its own; with its own handling off, the BEGIN below covers DDL and DML alike.
        dbapi_connection.isolation_level = None

    def begin_immediate(connection: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so a concurrent writer makes the export wait
        # (busy timeout) at its start instead of failing halfway through.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", driver_without_transactions)
    event.listen(engine, "begin", begin_immediate)
    return engine


@contextmanager
def sqlite_transaction(path: Path) -> Iterator[Connection]:
    """One transaction on the SQLite file at ``path``: committed when the block ends, rolled
    back if it raises.

    A failure in SQLite is raised as sqlite3's own error rather than SQLAlchemy's wrapper:
    the batch runner tells storage failures (disk full, read-only folder) by that type.
    """
    engine = _sqlite_engine(path)
    try:
        with engine.begin() as connection:
            yield connection
    except DBAPIError as error:
        if isinstance(error.orig, sqlite3.Error):
            raise error.orig from None
        raise
    finally:
        engine.dispose()


def _database_engine(url: str) -> Engine:
    """The engine for a ``--db`` URL: ``sqlite:///PATH``, or PostgreSQL through psycopg 3."""
    if url.startswith("sqlite:///"):
        return _sqlite_engine(Path(url.removeprefix("sqlite:///")))
    if not url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        raise ExportError("--db takes a postgresql://... or sqlite:///PATH URL")
    try:
        # SQLAlchemy's default driver for postgresql:// is psycopg2; triangulate ships psycopg 3.
        parsed = make_url(url).set(drivername="postgresql+psycopg")
    except (ArgumentError, ValueError) as error:
        raise ExportError(f"--db: {redact_url(url)} is not a database URL ({redact(str(error))})") from error
    try:
        return create_engine(parsed, poolclass=NullPool)
    except ImportError as error:
        raise ExportError("writing to PostgreSQL needs psycopg: pip install 'triangulate[export]'") from error


def _reason(error: DBAPIError) -> str:
    # The driver's own message: SQLAlchemy's adds the statement and its parameters (article texts).
    return redact(str(error.orig if error.orig is not None else error)) or ""


@contextmanager
def database_transaction(url: str) -> Iterator[Connection]:
    """One transaction on the database at a ``--db`` URL; any failure is an :class:`ExportError`
    whose message has no password in it."""
    engine = _database_engine(url)
    try:
        try:
            connection = engine.connect()
        except DBAPIError as error:
            raise ExportError(f"cannot connect to the database: {_reason(error)}") from error
        with connection:
            try:
                with connection.begin():
                    yield connection
            except DBAPIError as error:
                raise ExportError(f"the database refused the export: {_reason(error)}") from error
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------
# Schema


def stored_schema_version(connection: Connection) -> str | None:
    """The table schema version a database's ``meta`` table records; None when it has none."""
    if not inspect(connection).has_table(META.name):
        return None
    found = connection.execute(
        select(META.c.value).where(META.c.key == SCHEMA_VERSION_KEY)
    ).scalar_one_or_none()
    return None if found is None else str(found)


def forget_tables(connection: Connection, tables: Sequence[SqlTable]) -> None:
    """Drop ``tables`` and the version that described them, so the next write rebuilds them."""
    for table in tables:
        table.drop(connection, checkfirst=True)
    connection.execute(delete(META).where(META.c.key == SCHEMA_VERSION_KEY))


def _create_tables(connection: Connection, tables: Sequence[SqlTable]) -> None:
    METADATA.create_all(connection, tables=list(tables), checkfirst=True)
    # A table of that name that predates the definition (another tool's, or an older layout)
    # would fail row by row; one clear message is better.
    found = inspect(connection).get_multi_columns(filter_names=[t.name for t in tables])
    for table in tables:
        present = {column["name"] for column in found.get((None, table.name), [])}
        missing = set(column_names(table)) - present
        if missing:
            raise ExportError(
                f"table {table.name!r} exists without columns {sorted(missing)}; it was not made by "
                f"triangulate's table schema {TABLE_SCHEMA_VERSION}"
            )


# ---------------------------------------------------------------------------
# Rows


def _upsert_statement(connection: Connection, table: SqlTable) -> Executable:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE every other column, in the dialect's own form."""
    keys = list(table.primary_key.columns)
    dialect = connection.dialect.name
    if dialect == "sqlite":
        lite = sqlite.insert(table)
        updates = {c.name: lite.excluded[c.name] for c in table.columns if not c.primary_key}
        return lite.on_conflict_do_update(index_elements=keys, set_=updates)
    if dialect == "postgresql":
        pg = postgresql.insert(table)
        updates = {c.name: pg.excluded[c.name] for c in table.columns if not c.primary_key}
        return pg.on_conflict_do_update(index_elements=keys, set_=updates)
    raise ExportError(f"cannot write the tables into a {dialect} database")


def _stored_keys(
    connection: Connection, table: SqlTable, prune: Prune | None, owners: Collection[str]
) -> set[tuple[Any, ...]]:
    """The keys already stored that this export speaks for: every row of the table for "all",
    the rows of the exported articles / incidents for "owned", none for None."""
    if prune is None:
        return set()
    query = select(*table.primary_key.columns)
    if prune == "all":
        return {tuple(row) for row in connection.execute(query)}
    owner = table.c[PRUNE_OWNER[table.name]]
    found: set[tuple[Any, ...]] = set()
    for chunk in batched(sorted(set(owners)), OWNER_CHUNK):
        found.update(tuple(row) for row in connection.execute(query.where(owner.in_(chunk))))
    return found


def upsert_rows(
    connection: Connection,
    table: SqlTable,
    rows: Iterable[Row],
    *,
    prune: Prune | None,
    owners: Collection[str] = (),
) -> int:
    """Upsert ``rows`` into ``table``, then delete the stored rows in the pruning scope that this
    export did not produce. Returns the number of rows written (one per key).

    Each row is a dict with every column of the table (the row builders of export.py make them
    so); a row without one is refused by SQLAlchemy rather than written with a gap.
    """
    stale = _stored_keys(connection, table, prune, owners)
    keys = key_names(table)
    # itemgetter of two or more names gives a tuple; of one, the bare value: make both tuples.
    key_of = itemgetter(*keys) if len(keys) > 1 else lambda row: (row[keys[0]],)
    statement = _upsert_statement(connection, table)
    seen: set[tuple[Any, ...]] = set()
    for batch in batched(rows):
        fresh: list[Row] = []
        for row in batch:
            key = key_of(row)
            if key not in seen:  # one row per key: the first wins, as the count says
                seen.add(key)
                fresh.append(row)
        if fresh:
            connection.execute(statement, fresh)
    stale -= seen
    if stale:
        match = and_(*(table.c[k] == bindparam(f"key_{k}") for k in keys))
        connection.execute(
            delete(table).where(match),
            [{f"key_{k}": v for k, v in zip(keys, key, strict=True)} for key in stale],
        )
    return len(seen)


def write_tables(
    connection: Connection,
    rows: Mapping[str, Iterable[Row]],
    *,
    tables: Sequence[SqlTable],
    prune: Prune,
    owners: Mapping[str, Collection[str]] | None = None,
) -> dict[str, int]:
    """Create ``tables`` where missing and upsert their rows; returns the rows written per table.

    Rows this export no longer produces are deleted: with ``prune="all"`` from the whole table
    (a run store, or a file that holds one run); with ``prune="owned"`` only those of the
    articles / incidents in ``owners`` (a shared database that may hold other runs). ``meta``
    is never pruned: the run store's meta also holds the store's own keys.

    Refuses (``ExportError``) a database whose tables carry another schema version.
    """
    stored = stored_schema_version(connection)
    if stored is not None and stored != TABLE_SCHEMA_VERSION:
        raise ExportError(
            f"the database holds triangulate tables of schema {stored}; this version writes "
            f"{TABLE_SCHEMA_VERSION} (see docs/tables.md). Export to a new database or drop the old tables."
        )
    _create_tables(connection, tables)
    owners = owners or {}
    counts: dict[str, int] = {}
    for table in tables:
        scope: Prune | None
        if table.name == META.name or (prune == "owned" and table.name not in PRUNE_OWNER):
            scope = None
        else:
            scope = prune
        counts[table.name] = upsert_rows(
            connection, table, rows[table.name], prune=scope, owners=owners.get(table.name, ())
        )
    return counts
