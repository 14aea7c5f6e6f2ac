"""Dashboard outputs: the tables of ``docs/tables.md`` written to SQLite, PostgreSQL, Parquet and CSV.

This module builds the rows (from a run read by :func:`pipeline.outputs.rundata.load_run`) and
writes the files; :mod:`pipeline.outputs.database` writes them into databases through
SQLAlchemy Core. Every destination takes its columns from the one definition in
:mod:`pipeline.outputs.tables`.

Every database write is an upsert keyed on the table's primary key inside one
transaction, so exporting twice never duplicates a row. Rows that a re-export
no longer produces are pruned: everywhere in a run store and a standalone
SQLite file (their tables describe exactly that run), and in a ``--db``
database only within the articles and incidents being exported (a shared
database may hold other runs). Files are replaced whole, all together.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Table

from pipeline import __version__
from pipeline.common.atomic import replaced_together
from pipeline.outputs.database import (
    Prune,
    batched,
    database_transaction,
    forget_tables,
    sqlite_transaction,
    stored_schema_version,
    write_tables,
)
from pipeline.outputs.rundata import ExportError, RunData, RunIncidents, load_run
from pipeline.outputs.tables import (
    ARTICLES,
    CONFLICTS,
    DECISIONS,
    FIELD_VALUES,
    INCIDENTS,
    META,
    RECORDS,
    TABLE_SCHEMA_VERSION,
    TABLES,
    WIDE_FIELDS,
    column_names,
    value_type,
)
from pipeline.store.runfolder import STORE_FILENAME
from schemas import SCHEMA_VERSION, Article, IncidentRecord
from schemas.fields import iter_cited
from schemas.incident import FLAGGED_VERDICTS, FieldVerdict

FILE_FORMATS = ("parquet", "csv", "sqlite")
STANDALONE_SQLITE = "tables.sqlite"

Row = dict[str, Any]


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
            "title": incident.title,
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
                _coerce(_decided_or_consensus(field_verdict), leaf.value_type)
                if field_verdict is not None
                else None
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
            "decision": conflict.decision.action if conflict.decision else None,
            "decided_value": _value_text(conflict.decision.value) if conflict.decision else None,
            "decision_note": conflict.decision.note if conflict.decision else None,
        }


def _decided_or_consensus(verdict: FieldVerdict) -> Any:
    """The value a dashboard shows for a field: the reviewer's, where one decided it."""
    if verdict.decision is not None and verdict.decision.action in ("accept", "set"):
        return verdict.decision.value
    return verdict.consensus


def decision_rows(data: RunData) -> Iterator[Row]:
    """One ``decisions`` row per recorded decision."""
    for entry in data.decisions:
        decision = entry.decision
        yield {
            "seq": decision.seq,
            "at": decision.at.isoformat(),
            "by": decision.by,
            "incident_id": entry.incident_id,
            "action": decision.action,
            "field_path": decision.field_path,
            "value": _value_text(decision.value),
            "note": decision.note,
            "state": entry.state,
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


# What a value that was never located in its article says in the tables: nobody looked, which
# is not the same as looking and not finding it ("unfound").
NOT_CHECKED = "not-checked"


def article_rows(articles: Iterable[Article]) -> Iterator[Row]:
    for article in articles:
        yield {
            "id": article.id,
            "source_path": article.source_path,
            "outlet": article.outlet,
            "url": article.url,
            "published": article.published,
            "published_from": article.published_from,
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
                "grounding_status": grounding.status.value if grounding else NOT_CHECKED,
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
                "grounding_status": grounding.status.value if grounding else NOT_CHECKED,
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
        "n_grounded": sum(1 for e in evidence if e["grounding_status"] not in (NOT_CHECKED, "unfound")),
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
        DECISIONS.name: decision_rows(data),
        META.name: meta_rows(data),
    }


def build_tables(out_dir: Path) -> dict[str, list[Row]]:
    """All tables of a run directory as lists of rows, keyed by table name."""
    return {name: list(rows) for name, rows in iter_table_rows(load_run(out_dir)).items()}


# ---------------------------------------------------------------------------
# SQL destinations (pipeline/outputs/database.py does the writing)


@dataclass
class ExportCounts:
    rows: dict[str, int]

    def summary(self) -> str:
        return ", ".join(f"{name} {n}" for name, n in self.rows.items())


# The tables a run store gets from an export; its own articles and meta tables already hold
# the articles (ours are a column subset of its).
_RUN_STORE_TABLES = (RECORDS, FIELD_VALUES, INCIDENTS, CONFLICTS, META)


def _write_sql(
    connection: Connection, data: RunData, *, tables: Sequence[Table], prune: Prune
) -> ExportCounts:
    owners = {
        FIELD_VALUES.name: [r.article_id for r in data.records],
        CONFLICTS.name: [i.id for i in data.incidents.incidents],
    }
    return ExportCounts(
        write_tables(connection, iter_table_rows(data), tables=tables, prune=prune, owners=owners)
    )


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
    with sqlite_transaction(store_path) as connection:
        stored = stored_schema_version(connection)
        if stored is not None and stored != TABLE_SCHEMA_VERSION:
            # Derived tables in our own store: rebuild them rather than refuse.
            forget_tables(connection, [t for t in _RUN_STORE_TABLES if t is not META])
        return _write_sql(connection, data, tables=_RUN_STORE_TABLES, prune="all")


def write_sqlite_file(path: Path, data: RunData) -> ExportCounts:
    """A standalone SQLite file with all six tables (articles included), replacing ``path`` whole."""
    with replaced_together() as files:
        return _write_sqlite_to(files.temp_path(path), data)


def _write_sqlite_to(path: Path, data: RunData) -> ExportCounts:
    """Fill a new, empty SQLite file (SQLite takes an empty file as an empty database)."""
    with sqlite_transaction(path) as connection:
        return _write_sql(connection, data, tables=TABLES, prune="all")


def export_to_db(out_dir: Path, url: str) -> None:
    """Upsert the run's tables into the database at ``url`` (``postgresql://...`` or ``sqlite:///path``).

    Called by the batch runner after ``triangulate run ... --db URL``. One transaction: a failed
    export leaves the database as it was.
    """
    _export_to_db(load_run(Path(out_dir)), url)


def _export_to_db(data: RunData, url: str) -> ExportCounts:
    with database_transaction(url) as connection:
        return _write_sql(connection, data, tables=TABLES, prune="owned")


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
    return pa.schema([pa.field(c.name, types[value_type(c)], nullable=c.nullable) for c in table.columns])


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
        for batch in batched(rows):
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
    names = column_names(table)
    writer = csv.writer(handle)
    writer.writerow(names)
    count = 0
    for row in rows:
        writer.writerow([_csv_cell(row.get(n)) for n in names])
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
