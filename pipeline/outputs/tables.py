"""The dashboard tables: their columns, keys and versioned schema, as one SQLAlchemy ``MetaData``.

One definition serves every destination: SQLite and PostgreSQL get their DDL from it
(``METADATA.create_all``), the Parquet schema and the CSV headers are read off the same
``Table`` objects, so a dashboard query written against one works against the others. The
human documentation is ``docs/tables.md``; ``TABLE_SCHEMA_VERSION`` is stored in the ``meta``
table and must change whenever a column is added, removed, renamed or retyped, so a dashboard
can refuse a layout it does not know.

Field paths are those of the gold files and the reconciler: dotted, with
``[i]`` for a list item and ``[]`` for "the set over all items" (for example
``subjects[0].name``, ``agencies[].name``). A column name is the path with
every ``.``, ``[`` and ``]`` turned into ``_`` and repeats squeezed
(``subjects[0].name`` -> ``subjects_0_name``, ``agencies[].name`` ->
``agencies_name``).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import REAL, BigInteger, Boolean, Column, Date, Double, Integer, MetaData, Table, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from schemas import Cited, IncidentFacts
from schemas.fields import is_cited, unwrap_optional

TABLE_SCHEMA_VERSION = "1.2.0"

# Wide tables need a fixed column set, so list fields get a fixed number of slots
# there; items past the cap are still in the long ``field_values`` table.
WIDE_LIST_SLOTS: dict[str, int] = {"subjects": 3, "agencies": 4}

ColumnType = Literal["text", "integer", "real", "boolean", "date"]


class _IsoDateText(TypeDecorator[date]):
    """A date as ISO ``YYYY-MM-DD`` text: SQLite has no date type, and the run store's own
    tables keep dates that way, so ours read the same in one query."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return value.isoformat() if isinstance(value, date) else value

    def process_result_value(self, value: Any, dialect: Dialect) -> date | None:
        return date.fromisoformat(value) if isinstance(value, str) else value


# The SQL type of each kind of column. The SQLite variants keep the DDL the run store has
# always had (INTEGER, REAL, 0/1 booleans, ISO text dates), so stores written before this
# module used SQLAlchemy are still the same layout.
_SQL_TYPES: dict[ColumnType, TypeEngine[Any]] = {
    "text": Text(),
    "integer": BigInteger().with_variant(Integer(), "sqlite"),
    "real": Double().with_variant(REAL(), "sqlite"),
    "boolean": Boolean().with_variant(Integer(), "sqlite"),
    "date": Date().with_variant(_IsoDateText(), "sqlite"),
}


def value_type(column: Column[Any]) -> ColumnType:
    """The kind of a column (``"integer"``, ``"date"``...), read off its SQL type.

    Destinations without SQL (Parquet, CSV) and the documentation go by this, so they follow
    the one definition above rather than a list of their own.
    """
    for kind, sql_type in _SQL_TYPES.items():
        if type(column.type) is type(sql_type):
            return kind
    raise TypeError(f"column {column.name!r} has a type the tables do not use: {column.type!r}")


def column_names(table: Table) -> tuple[str, ...]:
    return tuple(column.name for column in table.columns)


def key_names(table: Table) -> tuple[str, ...]:
    """The primary key's columns, in key order."""
    return tuple(column.name for column in table.primary_key.columns)


@dataclass(frozen=True)
class LeafField:
    """One ``Cited`` field of the incident record, at a concrete path."""

    path: str
    column: str
    value_type: ColumnType


def column_name(path: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"[.\[\]]", "_", path)).strip("_")


def _cited_value_type(cited_cls: type[Cited[Any]]) -> ColumnType:
    annotation = cited_cls.model_fields["value"].annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    return "integer" if args[0] is int else "real" if args[0] is float else "text"


def _leaves_of(model: type[BaseModel], prefix: str) -> Iterator[LeafField]:
    for name, info in model.model_fields.items():
        annotation = unwrap_optional(info.annotation)
        path = f"{prefix}.{name}" if prefix else name
        if is_cited(annotation):
            yield LeafField(path, column_name(path), _cited_value_type(annotation))
        elif typing.get_origin(annotation) is list:
            item = typing.get_args(annotation)[0]
            for slot in range(WIDE_LIST_SLOTS.get(name, 0)):
                yield from _leaves_of(item, f"{path}[{slot}]")
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _leaves_of(annotation, path)


# Every Cited leaf that has a column in the wide tables, in schema order.
WIDE_FIELDS: tuple[LeafField, ...] = tuple(_leaves_of(IncidentFacts, ""))


METADATA = MetaData()


def _c(name: str, type_: ColumnType, doc: str, nullable: bool = True, *, key: bool = False) -> Column[Any]:
    # A fresh Column each call: SQLAlchemy ties a Column to the one Table it is put in.
    return Column(name, _SQL_TYPES[type_], primary_key=key, nullable=nullable and not key, doc=doc)


def _table(name: str, doc: str, *columns: Column[Any]) -> Table:
    return Table(name, METADATA, *columns, info={"doc": doc})


ARTICLES = _table(
    "articles",
    "One row per input article. In the SQLite run store this is the store's own table.",
    _c("id", "text", "Article id: content hash of the text (schemas.article.content_hash).", key=True),
    _c("source_path", "text", "File the article came from; for JSONL 'file.jsonl:LINE'."),
    _c("outlet", "text", "Publishing outlet."),
    _c("url", "text", "Canonical URL."),
    _c("published", "date", "Publication date."),
    _c(
        "published_from", "text", "Where the date came from: metadata, dateline (read from the text) or none."
    ),
    _c("title", "text", "Headline."),
    _c("n_chars", "integer", "Length of the text in characters (span offsets index into it)."),
    _c("text", "text", "The article text that quotes were grounded against."),
)


_RECORD_PROVENANCE = (
    _c("article_id", "text", "The article this record was extracted from.", key=True),
    _c("incident_id", "text", "Incident the reconciler put the record in; null if not reconciled."),
    _c("outlet", "text", "Publishing outlet (from provenance)."),
    _c("url", "text", "Article URL (from provenance)."),
    _c("published", "date", "Publication date (from provenance)."),
    _c("source_path", "text", "Input file."),
    _c("model", "text", "Model that filled the record."),
    _c("provider", "text", "Where the model ran: embedded, openai-compatible, ..."),
    _c("prompt_hash", "text", "Hash of the prompt template."),
    _c("schema_version", "text", "IncidentRecord schema version."),
    _c("attempts", "integer", "Model requests made for this record (asks + re-asks)."),
    _c("prompt_tokens", "integer", "Prompt tokens over all attempts."),
    _c("completion_tokens", "integer", "Completion tokens over all attempts."),
    _c("chunks", "integer", "Chunks the article was split into."),
    _c("n_subjects", "integer", "Items in subjects (wide columns hold the first few)."),
    _c("n_agencies", "integer", "Items in agencies."),
    _c("n_statements", "integer", "Items in statements."),
    _c("n_cited", "integer", "Cited values in the record (all list items, statements included)."),
    _c("n_grounded", "integer", "Of those, quotes located in the article (status other than unfound)."),
    _c(
        "n_unsupported",
        "integer",
        "Of those, values their own quote does not support (supported = false).",
    ),
    _c("when_precision", "text", "day / week / month / year / unknown."),
    _c(
        "where_precision",
        "text",
        "address / neighborhood / city / county / metro / state / country / unknown.",
    ),
)

RECORDS = _table(
    "records",
    "Wide: one row per article's record. For every Cited field, COLUMN holds the value "
    "and COLUMN_grounding the grounding status of its quote.",
    *_RECORD_PROVENANCE,
    *(
        col
        for leaf in WIDE_FIELDS
        for col in (
            _c(leaf.column, leaf.value_type, f"Value of {leaf.path}."),
            _c(f"{leaf.column}_grounding", "text", f"Grounding status of the quote for {leaf.path}."),
        )
    ),
)

FIELD_VALUES = _table(
    "field_values",
    "Long: one row per Cited value (and per statement) in each record, with its evidence.",
    _c("article_id", "text", "Article whose record holds the value.", key=True),
    _c(
        "field_path",
        "text",
        "Concrete path, e.g. subjects[0].name; statements are statements[i].",
        key=True,
    ),
    _c("incident_id", "text", "Incident of the record; null if not reconciled."),
    _c("field", "text", "Path with list indices replaced by [], e.g. subjects[].name."),
    _c("value", "text", "The value as text (null when the model gave a quote but no value)."),
    _c("value_json", "text", "The value as JSON (keeps its type)."),
    _c("quote", "text", "Quote the model cited."),
    _c("span_start", "integer", "Start offset of the located quote in articles.text (code points)."),
    _c("span_end", "integer", "End offset (exclusive)."),
    _c("attribution", "text", "Who the article says asserts the value."),
    _c("speaker", "text", "Canonical speaker id."),
    _c(
        "grounding_status",
        "text",
        "How the evidence was located: sentence-match / model-cited / exact / normalized / fuzzy / unfound, "
        "or not-checked when the value was never located (its article text was not available).",
    ),
    _c("grounding_score", "real", "Match score 0-100."),
    _c("supported", "boolean", "Whether the quote supports the value; null when not checked."),
)

INCIDENTS = _table(
    "incidents",
    "Wide: one row per reconciled incident. For every field, COLUMN holds the merged value and "
    "COLUMN_verdict the reconciler's verdict.",
    _c(
        "incident_id",
        "text",
        "Lasting incident id: a new incident is named after its members and keeps the id as articles join.",
        key=True,
    ),
    _c("title", "text", "Readable name: date · place · subject."),
    _c("n_articles", "integer", "Articles in the incident."),
    _c(
        "max_independent_sources",
        "integer",
        "The most independent sources behind any one field (1: nothing is confirmed independently).",
    ),
    _c("n_flagged", "integer", "Fields whose verdict is not agreed / not-reported (rows in conflicts)."),
    _c("n_contradictions", "integer", "Fields whose verdict is contradiction."),
    _c("first_published", "date", "Earliest publication date among its articles."),
    _c("last_published", "date", "Latest publication date."),
    _c("article_ids_json", "text", "JSON array of its article ids."),
    _c("outlets_json", "text", "JSON array of its outlets."),
    *(
        col
        for leaf in WIDE_FIELDS
        for col in (
            _c(leaf.column, leaf.value_type, f"Merged value of {leaf.path} (a reviewer's decision wins)."),
            _c(f"{leaf.column}_verdict", "text", f"Verdict for {leaf.path}."),
        )
    ),
)

CONFLICTS = _table(
    "conflicts",
    "One row per flagged field of an incident (the rows of conflicts.jsonl).",
    _c("incident_id", "text", "Incident.", key=True),
    _c(
        "field_path",
        "text",
        "Field path, e.g. subjects[0].place_of_death or statements[0].quote.",
        key=True,
    ),
    _c("field", "text", "Path with list indices replaced by [], e.g. subjects[].place_of_death."),
    _c("verdict", "text", "variant / more-specific / contradiction / single-source.", False),
    _c("merged_value", "text", "The reconciler's consensus value as text; null when it chose none."),
    _c("rule", "text", "The rule that chose the consensus, or why there is none."),
    _c("n_values", "integer", "Distinct values reported."),
    _c("n_articles", "integer", "Articles reporting the field."),
    _c("n_independent_sources", "integer", "Independent sources among the citations that are evidence."),
    _c("values_json", "text", "JSON array: each value with its form, article ids, speakers and counts."),
    _c("note", "text", "The reconciler's explanation."),
    _c("decision", "text", "A reviewer's decision on the field: accept / set / resolved; null if none."),
    _c("decided_value", "text", "The value the reviewer decided (as text)."),
    _c("decision_note", "text", "The reviewer's note."),
)

DECISIONS = _table(
    "decisions",
    "One row per recorded reviewer decision (append-only), with whether it stands. "
    "In the SQLite run store the store keeps its own decisions table (the source of these rows).",
    _c("seq", "integer", "Order of recording.", key=True),
    _c("at", "text", "When it was recorded (ISO 8601, UTC)."),
    _c("by", "text", "Who decided."),
    _c("incident_id", "text", "The incident, by the id it goes by now."),
    _c("action", "text", "accept / set / resolved / merge / split."),
    _c("field_path", "text", "The field decided on; null for merge and split."),
    _c("value", "text", "The decided value (as text)."),
    _c("note", "text", "The reviewer's note."),
    _c("state", "text", "applied / superseded by N / no longer applies: REASON."),
)

META = _table(
    "meta",
    "Key/value facts about the export: table_schema_version, record_schema_version, ... "
    "In the SQLite run store this is the store's own meta table (it also holds store_format).",
    _c("key", "text", "Name.", key=True),
    _c("value", "text", "Value.", False),
)

TABLES: tuple[Table, ...] = (ARTICLES, RECORDS, FIELD_VALUES, INCIDENTS, CONFLICTS, DECISIONS, META)
TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}


DASHBOARD_QUERIES_FILE = "dashboard_queries.sql"


def dashboard_queries() -> dict[str, str]:
    """The example dashboard queries (``pipeline/data/dashboard_queries.sql``), by name.

    One file feeds docs/dashboards.md and the tests, which run every query against SQLite
    and PostgreSQL, so the documented SQL is known to work on both.
    """
    from importlib import resources

    source = resources.files("pipeline").joinpath("data", DASHBOARD_QUERIES_FILE).read_text(encoding="utf-8")
    queries: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in source.splitlines():
        match = re.match(r"--\s*name:\s*(\S+)", line)
        if match:
            if name:
                queries[name] = "\n".join(lines).strip().rstrip(";")
            name, lines = match.group(1), []
        elif name is not None:
            lines.append(line)
    if name:
        queries[name] = "\n".join(lines).strip().rstrip(";")
    return queries
