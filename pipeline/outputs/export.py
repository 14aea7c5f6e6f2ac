"""Dashboard outputs: the tables of ``docs/tables.md`` written to SQLite, PostgreSQL, Parquet and CSV.

Sources, in order of trust: the run store (``DIR/triangulate.sqlite``, the
single source of truth of a run) for articles, records and failures, falling
back to ``records.jsonl`` / ``failures.jsonl`` when a directory has no store
(records reconciled with ``triangulate reconcile``); the reconciler's
``incidents.jsonl`` / ``conflicts.jsonl`` for incidents and conflicts.

Every write is an upsert keyed on the table's primary key inside one
transaction, so exporting twice never duplicates a row. Rows that a re-export
no longer produces are pruned: everywhere in a run store (its tables describe
exactly that run), and in PostgreSQL only within the articles and incidents
being exported (a shared database may hold other runs).
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any, Literal

from pipeline import __version__
from pipeline.common.atomic import replaced_together
from pipeline.common.redact import redact
from pipeline.outputs.rundata import ExportError, RunData, RunIncidents, load_run
from pipeline.outputs.tables import (
    ARTICLES,
    CONFLICTS,
    FIELD_VALUES,
    INCIDENTS,
    META,
    RECORDS,
    TABLE_SCHEMA_VERSION,
    TABLES,
    WIDE_FIELDS,
    Table,
    create_table_sql,
    iter_cited,
    quote_ident,
)
from pipeline.store.runfolder import (
    STORE_FILENAME,
)
from schemas import SCHEMA_VERSION, Article, IncidentRecord
from schemas.incident import FLAGGED_VERDICTS

FILE_FORMATS = ("parquet", "csv", "sqlite")
STANDALONE_SQLITE = "tables.sqlite"

Row = dict[str, Any]
Dialect = Literal["sqlite", "postgresql"]


# ---------------------------------------------------------------------------
# Building rows


def incident_rows(run: RunIncidents, articles: dict[str, Article]) -> Iterator[Row]:
    """One ``incidents`` row per incident: its merged values and their verdicts, wide."""
    for incident in run.incidents:
        members = [articles[a] for a in incident.article_ids if a in articles]
        dates = sorted(a.published for a in members if a.published is not None)
        by_path = {f.path: f for f in incident.fields}
        row: Row = {
            "incident_id": incident.id,
            "n_articles": len(incident.article_ids),
            "max_independent_sources": max((f.n_independent_sources for f in incident.fields), default=0),
            "n_flagged": sum(1 for f in incident.fields if f.verdict in FLAGGED_VERDICTS),
            "n_contradictions": sum(1 for f in incident.fields if f.verdict == "contradiction"),
            "first_published": dates[0] if dates else None,
            "last_published": dates[-1] if dates else None,
            "article_ids_json": json.dumps(incident.article_ids),
            "outlets_json": json.dumps(sorted({a.outlet for a in members if a.outlet})),
        }
        for leaf in WIDE_FIELDS:
            field_verdict = by_path.get(leaf.path)
            row[leaf.column] = (
                _coerce(field_verdict.consensus, leaf.value_type) if field_verdict is not None else None
            )
            row[f"{leaf.column}_verdict"] = field_verdict.verdict if field_verdict is not None else None
        yield row


def conflict_rows(run: RunIncidents) -> Iterator[Row]:
    """One ``conflicts`` row per flagged field of an incident."""
    for conflict in run.conflicts:
        field_verdict = run.verdict(conflict.incident_id, conflict.path)
        article_ids = {a for v in conflict.values for a in v.article_ids}
        yield {
            "incident_id": conflict.incident_id,
            "field_path": conflict.path,
            "field": generic_field(conflict.path),
            "verdict": conflict.verdict,
            "merged_value": _value_text(conflict.consensus),
            "rule": conflict.rule,
            "n_values": len(conflict.values),
            "n_articles": len(article_ids),
            "n_independent_sources": (
                field_verdict.n_independent_sources
                if field_verdict is not None
                else sum(v.n_independent_sources for v in conflict.values if v.decides)
            ),
            "values_json": json.dumps(
                [v.model_dump(mode="json") for v in conflict.values], ensure_ascii=False, sort_keys=True
            ),
            "note": conflict.note,
        }


def _value_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def generic_field(path: str) -> str:
    """``subjects[0].name`` -> ``subjects[].name``."""
    return re.sub(r"\[\d+\]", "[]", path)


def article_rows(articles: Iterable[Article]) -> Iterator[Row]:
    for article in articles:
        yield {
            "id": article.id,
            "source_path": article.source_path,
            "outlet": article.outlet,
            "url": article.url,
            "published": article.published,
            "title": article.title,
            "n_chars": len(article.text),
            "text": article.text,
        }


def _cited_and_statements(record: IncidentRecord) -> Iterator[tuple[str, Row]]:
    """(field_path, evidence columns) for every Cited value and statement of a record."""
    for path, cited in iter_cited(record):
        grounding = cited.grounding
        yield (
            path,
            {
                "value": _value_text(cited.value),
                "value_json": json.dumps(cited.value, ensure_ascii=False),
                "quote": cited.quote,
                "span_start": grounding.start if grounding else None,
                "span_end": grounding.end if grounding else None,
                "attribution": cited.attribution,
                "speaker": cited.speaker,
                "grounding_status": grounding.status.value if grounding else None,
                "grounding_score": grounding.score if grounding else None,
                "supported": grounding.supported if grounding else None,
            },
        )
    for index, statement in enumerate(record.statements):
        grounding = statement.grounding
        who = (
            statement.speaker
            if not statement.affiliation
            else f"{statement.speaker}, {statement.affiliation}"
        )
        yield (
            f"statements[{index}]",
            {
                "value": statement.quote,
                "value_json": json.dumps(statement.quote, ensure_ascii=False),
                "quote": statement.quote,
                "span_start": grounding.start if grounding else None,
                "span_end": grounding.end if grounding else None,
                "attribution": who,
                "speaker": statement.speaker_id,
                "grounding_status": grounding.status.value if grounding else None,
                "grounding_score": grounding.score if grounding else None,
                "supported": grounding.supported if grounding else None,
            },
        )


def record_row(record: IncidentRecord, incident_id: str | None) -> Row:
    provenance = record.provenance
    cited_by_path = dict(iter_cited(record))
    evidence = [row for _, row in _cited_and_statements(record)]
    row: Row = {
        "article_id": record.article_id,
        "incident_id": incident_id,
        "outlet": provenance.outlet,
        "url": provenance.url,
        "published": provenance.published,
        "source_path": record.source_path or provenance.source_path,
        "model": provenance.model,
        "provider": provenance.provider,
        "prompt_hash": provenance.prompt_hash,
        "schema_version": record.schema_version,
        "attempts": provenance.attempts,
        "prompt_tokens": provenance.usage.prompt_tokens,
        "completion_tokens": provenance.usage.completion_tokens,
        "chunks": provenance.chunks,
        "n_subjects": len(record.subjects),
        "n_agencies": len(record.agencies),
        "n_statements": len(record.statements),
        "n_cited": len(evidence),
        "n_grounded": sum(
            1 for e in evidence if e["grounding_status"] is not None and e["grounding_status"] != "unfound"
        ),
        "n_unsupported": sum(1 for e in evidence if e["supported"] is False),
        "when_precision": record.when.precision,
        "where_precision": record.where.precision,
    }
    for leaf in WIDE_FIELDS:
        cited = cited_by_path.get(leaf.path)
        row[leaf.column] = _coerce(cited.value, leaf.value_type) if cited else None
        row[f"{leaf.column}_grounding"] = (
            cited.grounding.status.value if cited is not None and cited.grounding is not None else None
        )
    return row


def _coerce(value: Any, value_type: str) -> Any:
    """Values keep their type in their column; anything else is stored as text rather than lost."""
    if value is None:
        return None
    if value_type == "integer":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if value_type == "real":
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    return _value_text(value)


def field_value_rows(record: IncidentRecord, incident_id: str | None) -> Iterator[Row]:
    for path, evidence in _cited_and_statements(record):
        yield {
            "article_id": record.article_id,
            "field_path": path,
            "incident_id": incident_id,
            "field": generic_field(path),
            **evidence,
        }


def meta_rows(data: RunData) -> list[Row]:
    facts = {
        "table_schema_version": TABLE_SCHEMA_VERSION,
        "record_schema_version": SCHEMA_VERSION,
        "triangulate_version": __version__,
        "tables_exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "last_export_records": str(len(data.records)),
        "last_export_incidents": str(len(data.incidents.incidents)),
        "last_export_conflicts": str(len(data.incidents.conflicts)),
        "last_export_failures": str(len(data.failures)),
    }
    return [{"key": k, "value": v} for k, v in facts.items()]


def iter_table_rows(data: RunData) -> dict[str, Iterable[Row]]:
    """Lazily, the rows of every table (see docs/tables.md)."""
    incident_of = data.incidents.incident_of_article
    return {
        ARTICLES.name: article_rows(data.articles.values()),
        RECORDS.name: (record_row(r, incident_of.get(r.article_id)) for r in data.records),
        FIELD_VALUES.name: (
            row for r in data.records for row in field_value_rows(r, incident_of.get(r.article_id))
        ),
        INCIDENTS.name: incident_rows(data.incidents, data.articles),
        CONFLICTS.name: conflict_rows(data.incidents),
        META.name: meta_rows(data),
    }


def build_tables(out_dir: Path) -> dict[str, list[Row]]:
    """All tables of a run directory as lists of rows, keyed by table name."""
    return {name: list(rows) for name, rows in iter_table_rows(load_run(out_dir)).items()}


# ---------------------------------------------------------------------------
# SQL destinations


BATCH_ROWS = 2000

# Which column scopes pruning when a shared database holds other runs: a re-export replaces the
# rows of the articles / incidents it exports and leaves everyone else's alone.
_PRUNE_OWNER = {FIELD_VALUES.name: "article_id", CONFLICTS.name: "incident_id"}


def _batched(rows: Iterable[Row], size: int = BATCH_ROWS) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _sql_value(value: Any, dialect: Dialect) -> Any:
    if dialect == "sqlite":
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, bool):
            return int(value)
    return value


class _SqlWriter:
    """Upserts tables through a DB-API connection; the caller owns the transaction."""

    def __init__(self, conn: Any, dialect: Dialect) -> None:
        self.conn = conn
        self.dialect = dialect
        self.ph = "?" if dialect == "sqlite" else "%s"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cursor = self.conn.cursor()
        cursor.execute(sql, params)
        return cursor

    def table_exists(self, name: str) -> bool:
        if self.dialect == "sqlite":
            sql = "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?"
        else:
            sql = (
                "SELECT 1 FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_name = %s"
            )
        return self.execute(sql, (name,)).fetchone() is not None

    def columns_of(self, name: str) -> set[str]:
        if self.dialect == "sqlite":
            return {str(r[1]) for r in self.execute(f"PRAGMA table_info({quote_ident(name)})").fetchall()}
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = %s",
            (name,),
        ).fetchall()
        return {str(r[0]) for r in rows}

    def stored_schema_version(self) -> str | None:
        if not self.table_exists(META.name):
            return None
        row = self.execute(
            f"SELECT value FROM meta WHERE key = {self.ph}", ("table_schema_version",)
        ).fetchone()
        return str(row[0]) if row else None

    def create(self, table: Table) -> None:
        self.execute(create_table_sql(table, self.dialect))
        missing = set(table.column_names) - self.columns_of(table.name)
        if missing:
            raise ExportError(
                f"table {table.name!r} exists without columns {sorted(missing)}; it was not made by "
                f"triangulate's table schema {TABLE_SCHEMA_VERSION}"
            )

    def upsert(self, table: Table, rows: Iterable[Row], *, prune: Literal["none", "all", "owned"]) -> int:
        """Upsert rows via a staging table; then drop rows this export no longer produces."""
        names = table.column_names
        cols = ", ".join(quote_ident(n) for n in names)
        stage = quote_ident(f"_stage_{table.name}")
        self.execute(f"DROP TABLE IF EXISTS {stage}")
        self.execute(f"CREATE TEMP TABLE {stage} AS SELECT {cols} FROM {quote_ident(table.name)} WHERE 1 = 0")
        insert_stage = f"INSERT INTO {stage} ({cols}) VALUES ({', '.join(self.ph for _ in names)})"
        count = 0
        seen: set[tuple[Any, ...]] = set()
        for batch in _batched(rows):
            values = []
            for row in batch:
                key = tuple(row[k] for k in table.primary_key)
                if key in seen:  # one row per key, or ON CONFLICT would hit a row twice
                    continue
                seen.add(key)
                values.append(tuple(_sql_value(row.get(n), self.dialect) for n in names))
            self._fill_stage(stage, cols, insert_stage, values)
            count += len(values)
        pk = ", ".join(quote_ident(k) for k in table.primary_key)
        # Without this index SQLite's prune below is quadratic (a scan of the stage per row).
        self.execute(f"CREATE INDEX {quote_ident(f'_stage_{table.name}_pk')} ON {stage} ({pk})")
        updates = [n for n in names if n not in table.primary_key]
        action = (
            "DO UPDATE SET " + ", ".join(f"{quote_ident(n)} = excluded.{quote_ident(n)}" for n in updates)
            if updates
            else "DO NOTHING"
        )
        # "WHERE true" keeps SQLite's parser from reading ON CONFLICT as a join constraint.
        self.execute(
            f"INSERT INTO {quote_ident(table.name)} ({cols}) SELECT {cols} FROM {stage} WHERE true "
            f"ON CONFLICT ({pk}) {action}"
        )
        if prune != "none":
            match = " AND ".join(f"s.{quote_ident(k)} = t.{quote_ident(k)}" for k in table.primary_key)
            where = f"NOT EXISTS (SELECT 1 FROM {stage} s WHERE {match})"
            if prune == "owned":
                owner = quote_ident(_PRUNE_OWNER[table.name])
                where += (
                    f" AND t.{owner} IN (SELECT {owner} FROM {quote_ident('_export_owners_' + table.name)})"
                )
            self.execute(f"DELETE FROM {quote_ident(table.name)} AS t WHERE {where}")
        self.execute(f"DROP TABLE {stage}")
        return count

    def _fill_stage(self, stage: str, cols: str, insert_sql: str, values: list[tuple[Any, ...]]) -> None:
        if self.dialect == "postgresql":
            # COPY streams rows in one round trip; INSERT per row costs one each.
            with self.conn.cursor().copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
                for value in values:
                    copy.write_row(value)
        else:
            self.conn.cursor().executemany(insert_sql, values)

    def set_owners(self, table: Table, owners: Iterable[str]) -> None:
        """The articles / incidents this export speaks for, which scope pruning of ``table``."""
        owner = _PRUNE_OWNER[table.name]
        name = quote_ident(f"_export_owners_{table.name}")
        self.execute(f"DROP TABLE IF EXISTS {name}")
        self.execute(f"CREATE TEMP TABLE {name} ({quote_ident(owner)} TEXT PRIMARY KEY)")
        self.conn.cursor().executemany(
            f"INSERT INTO {name} VALUES ({self.ph}) ON CONFLICT DO NOTHING", [(o,) for o in owners]
        )


@dataclass
class ExportCounts:
    rows: dict[str, int]

    def summary(self) -> str:
        return ", ".join(f"{name} {n}" for name, n in self.rows.items())


def _write_sql(
    writer: _SqlWriter,
    data: RunData,
    *,
    tables: Sequence[Table],
    prune: Literal["all", "owned"],
) -> ExportCounts:
    stored = writer.stored_schema_version()
    if stored is not None and stored != TABLE_SCHEMA_VERSION:
        raise ExportError(
            f"the database holds triangulate tables of schema {stored}; this version writes "
            f"{TABLE_SCHEMA_VERSION} (see docs/tables.md). Export to a new database or drop the old tables."
        )
    for table in tables:
        writer.create(table)
    rows = iter_table_rows(data)
    if prune == "owned":
        writer.set_owners(FIELD_VALUES, (r.article_id for r in data.records))
        writer.set_owners(CONFLICTS, (i.id for i in data.incidents.incidents))
    counts: dict[str, int] = {}
    for table in tables:
        table_prune: Literal["none", "all", "owned"]
        if table.name == META.name:
            table_prune = "none"  # the run store's meta also holds the store's own keys
        elif prune == "owned":
            table_prune = "owned" if table.name in _PRUNE_OWNER else "none"
        else:
            table_prune = "all"
        counts[table.name] = writer.upsert(table, rows[table.name], prune=table_prune)
    return ExportCounts(counts)


def write_run_store_tables(out_dir: Path, data: RunData | None = None) -> ExportCounts:
    """Write records, field_values, incidents, conflicts and meta into ``DIR/triangulate.sqlite``.

    The store's own ``articles`` and ``meta`` tables are reused (ours are a column subset of its).
    The store is a record of one run directory, so its tables end up exactly this export's rows.
    """
    out_dir = Path(out_dir)
    store_path = out_dir / STORE_FILENAME
    if not store_path.exists():
        raise ExportError(f"{out_dir} has no run store ({STORE_FILENAME})")
    data = data or load_run(out_dir)
    conn = sqlite3.connect(store_path, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        writer = _SqlWriter(conn, "sqlite")
        conn.execute("BEGIN IMMEDIATE")
        try:
            stored = writer.stored_schema_version()
            if stored is not None and stored != TABLE_SCHEMA_VERSION:
                # Derived tables in our own store: rebuild them rather than refuse.
                for table in (RECORDS, FIELD_VALUES, INCIDENTS, CONFLICTS):
                    conn.execute(f"DROP TABLE IF EXISTS {quote_ident(table.name)}")
                conn.execute("DELETE FROM meta WHERE key = 'table_schema_version'")
            counts = _write_sql(
                writer, data, tables=(RECORDS, FIELD_VALUES, INCIDENTS, CONFLICTS, META), prune="all"
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
    return counts


def write_sqlite_file(path: Path, data: RunData) -> ExportCounts:
    """A standalone SQLite file with all six tables (articles included), replacing ``path`` whole."""
    with replaced_together() as files:
        return _write_sqlite_to(files.temp_path(path), data)


def _write_sqlite_to(path: Path, data: RunData) -> ExportCounts:
    """Fill a new, empty SQLite file (SQLite takes an empty file as an empty database)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        counts = _write_sql(_SqlWriter(conn, "sqlite"), data, tables=TABLES, prune="all")
        conn.execute("COMMIT")
    finally:
        conn.close()
    return counts


def export_to_db(out_dir: Path, url: str) -> None:
    """Upsert the run's tables into the database at ``url`` (``postgresql://...`` or ``sqlite:///path``).

    Called by the batch runner after ``triangulate run ... --db URL``. One transaction: a failed
    export leaves the database as it was.
    """
    _export_to_db(load_run(Path(out_dir)), url)


def _export_to_db(data: RunData, url: str) -> ExportCounts:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("BEGIN IMMEDIATE")
            try:
                counts = _write_sql(_SqlWriter(conn, "sqlite"), data, tables=TABLES, prune="owned")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()
        return counts
    if not url.startswith(("postgresql://", "postgres://")):
        raise ExportError("--db takes a postgresql://... or sqlite:///PATH URL")
    import psycopg

    try:
        with psycopg.connect(url) as pg:  # commits on success, rolls back on error
            return _write_sql(_SqlWriter(pg, "postgresql"), data, tables=TABLES, prune="owned")
    except psycopg.OperationalError as exc:
        raise ExportError(f"cannot connect to the database: {redact(str(exc))}") from exc
    except psycopg.Error as exc:
        raise ExportError(f"the database refused the export: {redact(str(exc))}") from exc


# ---------------------------------------------------------------------------
# Files


def _arrow_schema(table: Table) -> Any:
    import pyarrow as pa

    types = {
        "text": pa.string(),
        "integer": pa.int64(),
        "real": pa.float64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
    }
    return pa.schema([pa.field(c.name, types[c.type], nullable=c.nullable) for c in table.columns])


def write_parquet(table: Table, rows: Iterable[Row], path: Path) -> int:
    """One table as a Parquet file, replacing ``path`` whole; returns the row count."""
    with replaced_together() as files:
        return _write_parquet_to(table, rows, files.temp_path(path))


def _write_parquet_to(table: Table, rows: Iterable[Row], path: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _arrow_schema(table)
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        for batch in _batched(rows):
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            count += len(batch)
        if count == 0:
            writer.write_table(schema.empty_table())
    return count


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return value


def write_csv(table: Table, rows: Iterable[Row], path: Path) -> int:
    """One table as a CSV file, replacing ``path`` whole; returns the row count."""
    with replaced_together() as files, files.open_text(path, newline="") as handle:
        return _write_csv_to(table, rows, handle)


def _write_csv_to(table: Table, rows: Iterable[Row], handle: IO[str]) -> int:
    writer = csv.writer(handle)
    writer.writerow(table.column_names)
    count = 0
    for row in rows:
        writer.writerow([_csv_cell(row.get(n)) for n in table.column_names])
        count += 1
    return count


def write_files(data: RunData, to: Path, formats: Sequence[str]) -> dict[str, ExportCounts]:
    """Every table in every format under ``to``, replaced as one set: if any file fails,
    none of the earlier export's files is touched."""
    results: dict[str, ExportCounts] = {}
    with replaced_together() as files:
        for fmt in dict.fromkeys(formats):
            if fmt == "sqlite":
                results[fmt] = _write_sqlite_to(files.temp_path(to / STANDALONE_SQLITE), data)
                continue
            counts: dict[str, int] = {}
            # Fresh lazy iterators per format: each format reads the rows once.
            rows = iter_table_rows(data)
            for table in TABLES:
                target = to / f"{table.name}.{fmt}"
                if fmt == "parquet":
                    counts[table.name] = _write_parquet_to(table, rows[table.name], files.temp_path(target))
                else:
                    with files.open_text(target, newline="") as handle:
                        counts[table.name] = _write_csv_to(table, rows[table.name], handle)
            results[fmt] = ExportCounts(counts)
    return results
