"""Dashboard tables (SQLite run store, standalone SQLite, Parquet, CSV) and the review page's HTML.

The run directory is the hand-written Tempe example plus one unrelated
single-article incident (tests/export_fixtures.py), written through the real
run store and reconciler. Expected values are computed here from the run's
own files (records.jsonl, incidents.jsonl, conflicts.jsonl), never typed in.
"""

from __future__ import annotations

import csv
import errno
import html
import json
import os
import re
import shutil
import sqlite3
import stat
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from export_fixtures import (
    LONE_TEXT,
    REPO,
    UNFOUND_QUOTE,
    hand_records,
    load_articles,
    lone_article_and_record,
    two_incident_run,
    write_run,
)

from pipeline.cli import commands as cli_commands
from pipeline.cli.main import main as cli_main
from pipeline.outputs.export import build_tables, export_to_db, write_run_store_tables
from pipeline.outputs.report import render_report, utf16_offset
from pipeline.outputs.rundata import ExportError, load_run
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
    column_name,
    column_names,
    dashboard_queries,
    key_names,
    value_type,
)
from pipeline.store.runlock import LOCK_FILENAME, run_folder_lock
from pipeline.store.runstore import storage_cause
from schemas import IncidentRecord
from schemas.fields import iter_cited

GROUNDED = {"exact", "normalized", "fuzzy"}


@pytest.fixture(scope="module")
def run_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return two_incident_run(tmp_path_factory.mktemp("template"))


@pytest.fixture
def run_dir(run_template: Path, tmp_path: Path) -> Path:
    """A fresh copy per test, so tests that write into the store do not see each other."""
    target = tmp_path / "run"
    shutil.copytree(run_template, target)
    return target


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _records(run: Path) -> list[IncidentRecord]:
    return [IncidentRecord.model_validate(r) for r in _jsonl(run / "records.jsonl")]


def _counts(conn: sqlite3.Connection, tables: tuple[str, ...]) -> dict[str, int]:
    return {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}


def _export(out: Path, *, format: Sequence[str] = (), to: Path | None = None, wait: float = 0) -> int:
    """``triangulate export OUT [--format F ...] [--to TO] [--wait S]``, through the command line."""
    argv = ["export", str(out), "--wait", str(wait)]
    for fmt in format:
        argv += ["--format", fmt]
    if to is not None:
        argv += ["--to", str(to)]
    return cli_main(argv)


# --------------------------------------------------------------------------- schema


def test_column_names_flatten_field_paths() -> None:
    assert column_name("subjects[0].name") == "subjects_0_name"
    assert column_name("where.city") == "where_city"
    assert column_name("agencies[].name") == "agencies_name"


def test_wide_fields_cover_every_cited_leaf_with_its_value_type() -> None:
    paths = {leaf.path: leaf for leaf in WIDE_FIELDS}
    assert paths["subjects[0].age"].value_type == "integer"
    assert paths["where.city"].value_type == "text"
    assert {"subjects[2].place_of_death", "agencies[3].role", "officers.count_fired"} <= set(paths)
    assert len({leaf.column for leaf in WIDE_FIELDS}) == len(WIDE_FIELDS)


def test_every_table_has_unique_columns_and_a_primary_key_among_them() -> None:
    for table in TABLES:
        names = column_names(table)
        assert len(set(names)) == len(names), table.name
        assert key_names(table), f"{table.name} has no primary key"
        for column in table.columns:
            if column.name in key_names(table):
                assert not column.nullable, f"{table.name}.{column.name}"


def test_every_table_is_in_the_one_metadata_in_documented_order() -> None:
    from pipeline.outputs.tables import METADATA

    assert [t.name for t in TABLES] == [
        "articles",
        "records",
        "field_values",
        "incidents",
        "conflicts",
        "decisions",
        "meta",
    ]
    assert set(METADATA.tables) == {t.name for t in TABLES}


def test_a_new_cited_field_in_the_schema_becomes_a_column_of_both_wide_tables() -> None:
    # The wide columns are derived from schemas/record.py, never listed by hand.
    for leaf in WIDE_FIELDS:
        assert value_type(RECORDS.c[leaf.column]) == leaf.value_type
        assert value_type(INCIDENTS.c[leaf.column]) == leaf.value_type
        assert f"{leaf.column}_grounding" in RECORDS.c and f"{leaf.column}_verdict" in INCIDENTS.c


def test_postgres_column_limit_is_respected() -> None:
    # PostgreSQL allows at most 1600 columns; SQLite 2000.
    assert max(len(t.columns) for t in TABLES) < 1600


def _doc_sections(doc: str) -> dict[str, str]:
    """The text under each "## `table`" heading of docs/tables.md."""
    parts = re.split(r"^## `(\w+)`$", doc, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_docs_tables_md_documents_every_table_and_column_with_its_type_and_the_version() -> None:
    doc = (REPO / "docs" / "tables.md").read_text(encoding="utf-8")
    assert f"`{TABLE_SCHEMA_VERSION}`" in doc
    sections = _doc_sections(doc)
    for table in TABLES:
        section = sections[table.name]
        assert f"Primary key: {', '.join(f'`{k}`' for k in key_names(table))}." in section, table.name
        wide = table in (RECORDS, INCIDENTS)
        for column in table.columns:
            if wide and any(column.name.startswith(leaf.column) for leaf in WIDE_FIELDS):
                continue  # documented per field, in "Field columns of records and incidents"
            assert f"| `{column.name}` | {value_type(column)} |" in section, (
                f"{table.name}.{column.name} undocumented or documented with another type"
            )


def test_the_sqlite_tables_keep_dates_as_iso_text_and_booleans_as_0_or_1(
    run_dir: Path, tmp_path: Path
) -> None:
    assert _export(run_dir, format=["sqlite"], to=tmp_path / "files") == 0
    conn = sqlite3.connect(tmp_path / "files" / "tables.sqlite")
    try:
        declared = {
            (table.name, str(r[1])): str(r[2])
            for table in TABLES
            for r in conn.execute(f'PRAGMA table_info("{table.name}")')
        }
        published = {r[0] for r in conn.execute("SELECT DISTINCT typeof(published) FROM articles")}
        dates = [r[0] for r in conn.execute("SELECT published FROM articles WHERE published IS NOT NULL")]
        supported = {r[0] for r in conn.execute("SELECT DISTINCT supported FROM field_values")}
    finally:
        conn.close()
    sqlite_type = {"text": "TEXT", "integer": "INTEGER", "real": "REAL", "boolean": "INTEGER", "date": "TEXT"}
    assert declared == {(t.name, c.name): sqlite_type[value_type(c)] for t in TABLES for c in t.columns}
    assert published <= {"text", "null"} and dates
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", d) for d in dates)
    assert supported <= {0, 1, None} and supported & {0, 1}


# --------------------------------------------------------------------------- rows


def test_one_records_row_per_record_with_flattened_values(run_dir: Path) -> None:
    tables = build_tables(run_dir)
    records = _records(run_dir)
    rows = {r["article_id"]: r for r in tables["records"]}
    assert set(rows) == {r.article_id for r in records}
    for record in records:
        row = rows[record.article_id]
        assert row["outlet"] == record.provenance.outlet
        subject = record.subjects[0] if record.subjects else None
        expected_name = subject.name.value if subject and subject.name else None
        assert row["subjects_0_name"] == expected_name
        assert row["where_city"] == (record.where.city.value if record.where.city else None)
        if subject and subject.age:
            assert row["subjects_0_age"] == subject.age.value and isinstance(row["subjects_0_age"], int)


def test_field_values_hold_every_cited_value_and_statement_with_its_span(run_dir: Path) -> None:
    tables = build_tables(run_dir)
    data = load_run(run_dir)
    records = _records(run_dir)
    expected = sum(len(list(iter_cited(r))) + len(r.statements) for r in records)
    assert len(tables["field_values"]) == expected
    for row in tables["field_values"]:
        text = data.articles[row["article_id"]].text
        if row["grounding_status"] == "exact":
            assert text[row["span_start"] : row["span_end"]] == row["quote"]
        elif row["grounding_status"] == "unfound":
            assert row["span_start"] is None and row["span_end"] is None
        assert row["field"] == re.sub(r"\[\d+\]", "[]", row["field_path"])
    unfound = [r for r in tables["field_values"] if r["quote"] == UNFOUND_QUOTE]
    assert [(r["field_path"], r["grounding_status"]) for r in unfound] == [("what.circumstances", "unfound")]


def test_incidents_and_conflicts_rows_mirror_the_reconciler_files(run_dir: Path) -> None:
    tables = build_tables(run_dir)
    incidents = _jsonl(run_dir / "incidents.jsonl")
    conflicts = _jsonl(run_dir / "conflicts.jsonl")
    assert {r["incident_id"] for r in tables["incidents"]} == {i["id"] for i in incidents}
    for incident in incidents:
        row = next(r for r in tables["incidents"] if r["incident_id"] == incident["id"])
        assert row["n_articles"] == len(incident["article_ids"])
        for field in incident["fields"]:
            column = column_name(field["path"])
            if column in row:
                assert row[f"{column}_verdict"] == field["verdict"]
                consensus = field["consensus"]
                assert row[column] == (
                    consensus if isinstance(consensus, int) or consensus is None else str(consensus)
                )
    assert sorted((r["incident_id"], r["field_path"], r["verdict"]) for r in tables["conflicts"]) == sorted(
        (c["incident_id"], c["path"], c["verdict"]) for c in conflicts
    )


def test_records_point_at_their_incident(run_dir: Path) -> None:
    tables = build_tables(run_dir)
    members = {a: i["id"] for i in _jsonl(run_dir / "incidents.jsonl") for a in i["article_ids"]}
    assert {r["article_id"]: r["incident_id"] for r in tables["records"]} == members
    assert all(r["incident_id"] == members[r["article_id"]] for r in tables["field_values"])


# --------------------------------------------------------------------------- SQLite run store


def test_exporting_into_the_run_store_twice_changes_no_row_count(run_dir: Path) -> None:
    ours = ("records", "field_values", "incidents", "conflicts")
    write_run_store_tables(run_dir)
    with sqlite3.connect(run_dir / "triangulate.sqlite") as conn:
        first = _counts(conn, (*ours, "articles", "meta"))
    write_run_store_tables(run_dir)
    with sqlite3.connect(run_dir / "triangulate.sqlite") as conn:
        second = _counts(conn, (*ours, "articles", "meta"))
        store_format = conn.execute("SELECT value FROM meta WHERE key = 'store_format'").fetchone()
        version = conn.execute("SELECT value FROM meta WHERE key = 'table_schema_version'").fetchone()
    assert first == second
    assert first["records"] == len(_records(run_dir)) and first["conflicts"] == len(
        _jsonl(run_dir / "conflicts.jsonl")
    )
    assert store_format is not None, "the store's own meta rows must survive"
    assert version == (TABLE_SCHEMA_VERSION,)


def test_a_rerun_with_fewer_values_prunes_the_stale_rows(run_dir: Path) -> None:
    write_run_store_tables(run_dir)
    tempe = load_articles()
    records = hand_records(tempe)
    trimmed = records[0].model_copy(deep=True)
    trimmed.officers.injuries = None
    lone_article, lone_record = lone_article_and_record()
    # A later `triangulate run` over the same directory, whose record for article 01 lost a value.
    write_run(run_dir, [trimmed, *records[1:], lone_record], [*tempe.all, lone_article])
    write_run_store_tables(run_dir)
    with sqlite3.connect(run_dir / "triangulate.sqlite") as conn:
        paths = {
            r[0]
            for r in conn.execute(
                "SELECT field_path FROM field_values WHERE article_id = ?", (trimmed.article_id,)
            )
        }
        n_rows = conn.execute("SELECT COUNT(*) FROM field_values").fetchone()[0]
    assert "officers.injuries" not in paths and "officers.condition" in paths
    assert n_rows == len(build_tables(run_dir)["field_values"])


def test_an_older_table_schema_in_the_run_store_is_rebuilt(run_dir: Path) -> None:
    write_run_store_tables(run_dir)
    with sqlite3.connect(run_dir / "triangulate.sqlite") as conn:
        conn.execute("UPDATE meta SET value = '0.0.1' WHERE key = 'table_schema_version'")
        conn.execute("ALTER TABLE conflicts DROP COLUMN note")
    write_run_store_tables(run_dir)
    with sqlite3.connect(run_dir / "triangulate.sqlite") as conn:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(conflicts)")}
        version = conn.execute("SELECT value FROM meta WHERE key = 'table_schema_version'").fetchone()[0]
    assert set(column_names(CONFLICTS)) <= columns and version == TABLE_SCHEMA_VERSION


def test_a_database_with_another_table_schema_version_is_refused(run_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "dash.sqlite"
    export_to_db(run_dir, f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '9.9.9' WHERE key = 'table_schema_version'")
    with pytest.raises(ExportError, match="9.9.9"):
        export_to_db(run_dir, f"sqlite:///{db}")


def test_a_shared_database_keeps_other_runs_rows(run_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite"
    export_to_db(run_dir, f"sqlite:///{db}")
    other = tmp_path / "other-run"
    lone_article, lone_record = lone_article_and_record()
    write_run(other, [lone_record], [lone_article])
    tempe_ids = {r.article_id for r in _records(run_dir)} - {lone_article.id}
    export_to_db(other, f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        kept = {r[0] for r in conn.execute("SELECT DISTINCT article_id FROM field_values")}
        n_records = conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        n_values = conn.execute("SELECT COUNT(*) FROM field_values").fetchone()[0]
    assert tempe_ids <= kept
    assert n_records == len(tempe_ids) + 1
    # The first run already held the lone article too: the union is exactly the first run's values.
    assert n_values == len(build_tables(run_dir)["field_values"])


def test_a_shared_database_deletes_a_reexported_articles_stale_values_only(
    run_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "shared.sqlite"
    export_to_db(run_dir, f"sqlite:///{db}")
    lone_article, lone_record = lone_article_and_record()
    trimmed = lone_record.model_copy(deep=True)
    trimmed.officers.count_fired = None
    rerun = tmp_path / "rerun"
    write_run(rerun, [trimmed], [lone_article])
    export_to_db(rerun, f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        lone_paths = {
            r[0]
            for r in conn.execute(
                "SELECT field_path FROM field_values WHERE article_id = ?", (lone_article.id,)
            )
        }
        n_values = conn.execute("SELECT COUNT(*) FROM field_values").fetchone()[0]
    assert "officers.count_fired" not in lone_paths and "where.city" in lone_paths
    assert n_values == len(build_tables(run_dir)["field_values"]) - 1


def test_a_reexport_into_a_shared_database_updates_changed_values_in_place(
    run_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "shared.sqlite"
    export_to_db(run_dir, f"sqlite:///{db}")
    lone_article, lone_record = lone_article_and_record()
    corrected = lone_record.model_copy(deep=True)
    assert corrected.where.city is not None
    corrected.where.city.value = "Harlow Township"
    rerun = tmp_path / "rerun"
    write_run(rerun, [corrected], [lone_article])
    export_to_db(rerun, f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        city = conn.execute(
            "SELECT where_city FROM records WHERE article_id = ?", (lone_article.id,)
        ).fetchone()
        value = conn.execute(
            "SELECT value FROM field_values WHERE article_id = ? AND field_path = 'where.city'",
            (lone_article.id,),
        ).fetchone()
        n_records = conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    assert city == ("Harlow Township",) and value == ("Harlow Township",)
    assert n_records == len(_records(run_dir))


def test_a_failed_export_leaves_the_run_store_tables_as_they_were(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.outputs import export as export_module
    from pipeline.outputs.rundata import RunIncidents

    ours = ("records", "field_values", "incidents", "conflicts", "meta")
    write_run_store_tables(run_dir)
    with sqlite3.connect(run_dir / "triangulate.sqlite") as conn:
        conn.execute("DELETE FROM records")  # so a half-done rewrite would show
        before = _counts(conn, ours)

    def broken_conflict_rows(run: RunIncidents) -> Any:
        yield from []
        raise RuntimeError("conflicts could not be read")

    monkeypatch.setattr(export_module, "conflict_rows", broken_conflict_rows)
    with pytest.raises(RuntimeError, match="conflicts could not be read"):
        write_run_store_tables(run_dir)
    with sqlite3.connect(run_dir / "triangulate.sqlite") as conn:
        assert _counts(conn, ours) == before


def test_a_failed_first_export_into_a_new_database_creates_no_table(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.outputs import export as export_module
    from pipeline.outputs.rundata import RunIncidents

    def broken_conflict_rows(run: RunIncidents) -> Any:
        raise RuntimeError("conflicts could not be read")
        yield  # a generator, like the real one

    monkeypatch.setattr(export_module, "conflict_rows", broken_conflict_rows)
    db = tmp_path / "new.sqlite"
    with pytest.raises(RuntimeError, match="conflicts could not be read"):
        export_to_db(run_dir, f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_a_storage_failure_in_sqlite_is_raised_as_sqlites_own_error(tmp_path: Path) -> None:
    # The batch runner tells "the disk is full / the folder is read-only" from other failures
    # of the reconcile step by sqlite3's error, so SQLAlchemy's wrapper must not hide it.
    from pipeline.outputs.database import sqlite_transaction

    db = tmp_path / "x.sqlite"
    with sqlite_transaction(db) as conn:
        META.create(conn)
    with pytest.raises(sqlite3.OperationalError) as raised, sqlite_transaction(db) as conn:
        conn.exec_driver_sql("PRAGMA query_only = 1")  # as a read-only file or folder would
        conn.execute(META.insert(), [{"key": "k", "value": "v"}])
    assert (storage_cause(raised.value) or "").startswith("read-only")


def test_a_table_of_the_same_name_without_our_columns_is_refused_and_left_alone(
    run_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "theirs.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE conflicts (incident_id TEXT, note TEXT)")
    with pytest.raises(
        ExportError,
        match=r"table 'conflicts' exists without columns \['decided_value', 'decision', ",
    ):
        export_to_db(run_dir, f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["conflicts"]


@pytest.mark.parametrize("url", ["mysql://u@host/db", "sqlite://relative.sqlite", "/plain/path.sqlite"])
def test_db_takes_only_postgresql_or_sqlite_urls(run_dir: Path, url: str) -> None:
    with pytest.raises(ExportError, match=r"--db takes a postgresql://\.\.\. or sqlite:///PATH URL"):
        export_to_db(run_dir, url)


def test_a_postgresql_url_that_does_not_parse_is_an_export_error_without_its_password(run_dir: Path) -> None:
    with pytest.raises(ExportError, match="is not a database URL") as caught:
        export_to_db(run_dir, "postgresql://someone:s3cret-pw-123@db.internal:fivefourthree/incidents")
    assert "s3cret-pw-123" not in str(caught.value)


def test_postgresql_without_psycopg_installed_says_what_to_install(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # "import psycopg" now fails
    with pytest.raises(ExportError, match=r"needs psycopg: pip install 'triangulate\[export\]'"):
        export_to_db(run_dir, "postgresql://someone@127.0.0.1:1/nowhere")


def test_a_sqlite_database_that_cannot_be_opened_is_an_export_error(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="cannot connect to the database: unable to open database file"):
        export_to_db(run_dir, f"sqlite:///{tmp_path / 'no-such-folder' / 'db.sqlite'}")


def test_articles_and_decisions_are_the_tables_the_run_store_keeps_itself(run_dir: Path) -> None:
    # The store's own articles and decisions tables are the source of those rows.
    counts = write_run_store_tables(run_dir)
    assert set(counts.rows) == {t.name for t in TABLES} - {ARTICLES.name, "decisions"}


# --------------------------------------------------------------------------- dashboard queries


def _expected_query_results(run: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The three dashboard answers, computed from the run's files without SQL."""
    conflicts = _jsonl(run / "conflicts.jsonl")
    contradictions: Counter[str] = Counter()
    without: Counter[str] = Counter()
    for c in conflicts:
        if c["verdict"] == "contradiction":
            field = re.sub(r"\[\d+\]", "[]", c["path"])
            contradictions[field] += 1
            without[field] += c["consensus"] is None
    q1 = sorted(((f, n, without[f]) for f, n in contradictions.items()), key=lambda t: (-t[1], t[0]))

    singles = []
    data = load_run(run)
    for incident in _jsonl(run / "incidents.jsonl"):
        best = max((f["n_independent_sources"] for f in incident["fields"]), default=0)
        if best <= 1:
            singles.append(incident["id"])

    per_outlet: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for record in _records(run):
        outlet = data.articles[record.article_id].outlet or "(unknown)"
        groundings = [c.grounding for _, c in iter_cited(record)] + [s.grounding for s in record.statements]
        per_outlet[outlet][0] += len(groundings)
        per_outlet[outlet][1] += sum(1 for g in groundings if g is not None and g.status.value in GROUNDED)
    q3 = sorted(((o, n, g, round(g / n, 3)) for o, (n, g) in per_outlet.items()), key=lambda t: (t[3], t[0]))
    return {
        "open_contradictions_by_field": q1,
        "single_source_incidents": [(i,) for i in singles],
        "grounding_rate_by_outlet": q3,
    }


def run_dashboard_queries(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Results of the shared dashboard queries, normalised for comparison (numbers as float)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for name, sql in dashboard_queries().items():
        cursor = conn.cursor()
        cursor.execute(sql)
        rows = [
            tuple(float(v) if isinstance(v, int | float) or type(v).__name__ == "Decimal" else v for v in row)
            for row in cursor.fetchall()
        ]
        out[name] = rows
    return out


def check_dashboard_results(results: dict[str, list[tuple[Any, ...]]], run: Path) -> None:
    expected = _expected_query_results(run)
    assert set(results) == set(expected)
    assert results["open_contradictions_by_field"] == [
        (f, float(n), float(w)) for f, n, w in expected["open_contradictions_by_field"]
    ]
    assert [r[0] for r in results["single_source_incidents"]] == [
        i for (i,) in expected["single_source_incidents"]
    ]
    assert results["grounding_rate_by_outlet"] == [
        (o, float(n), float(g), float(rate)) for o, n, g, rate in expected["grounding_rate_by_outlet"]
    ]


def test_the_three_dashboard_queries_are_named_and_documented() -> None:
    queries = dashboard_queries()
    assert list(queries) == [
        "open_contradictions_by_field",
        "single_source_incidents",
        "grounding_rate_by_outlet",
    ]
    doc = (REPO / "docs" / "dashboards.md").read_text(encoding="utf-8")
    for sql in queries.values():
        assert sql in doc, (
            "docs/dashboards.md must show the queries exactly as pipeline/data/dashboard_queries.sql"
        )


def test_dashboard_queries_answer_correctly_on_the_run_store(run_dir: Path) -> None:
    write_run_store_tables(run_dir)
    conn = sqlite3.connect(run_dir / "triangulate.sqlite")
    try:
        results = run_dashboard_queries(conn)
    finally:
        conn.close()
    check_dashboard_results(results, run_dir)
    # The example data makes every query say something: the planted contradictions, the lone
    # Harlow article as the single-source incident, and the one unfound quote lowering a rate.
    assert results["open_contradictions_by_field"]
    lone_incident = next(i["id"] for i in _jsonl(run_dir / "incidents.jsonl") if len(i["article_ids"]) == 1)
    assert [r[0] for r in results["single_source_incidents"]] == [lone_incident]
    assert results["grounding_rate_by_outlet"][0][0] == "Channel 9 Desert News"
    assert results["grounding_rate_by_outlet"][0][3] < 1.0


def test_dashboard_queries_answer_correctly_on_the_standalone_sqlite_file(
    run_dir: Path, tmp_path: Path
) -> None:
    assert _export(run_dir, format=["sqlite"], to=tmp_path / "files") == 0
    conn = sqlite3.connect(tmp_path / "files" / "tables.sqlite")
    try:
        check_dashboard_results(run_dashboard_queries(conn), run_dir)
    finally:
        conn.close()


# --------------------------------------------------------------------------- files


def test_parquet_files_have_typed_columns_and_every_row(run_dir: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    to = tmp_path / "files"
    assert _export(run_dir, format=["parquet"], to=to) == 0
    tables = build_tables(run_dir)
    for table in TABLES:
        read = pq.read_table(to / f"{table.name}.parquet")
        assert read.column_names == list(column_names(table))
        assert read.num_rows == len(tables[table.name])
    records = pq.read_table(to / "records.parquet")
    assert records.schema.field("subjects_0_age").type == pa.int64()
    assert records.schema.field("published").type == pa.date32()
    supported = pq.read_table(to / "field_values.parquet").schema.field("supported").type
    assert supported == pa.bool_()


def test_csv_files_round_trip_quotes_with_commas_and_newlines(run_dir: Path, tmp_path: Path) -> None:
    to = tmp_path / "files"
    assert _export(run_dir, format=["csv"], to=to) == 0
    with (to / "articles.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    texts = {r["id"]: r["text"] for r in rows}
    lone_article, _ = lone_article_and_record()
    assert texts[lone_article.id] == LONE_TEXT
    with (to / "field_values.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        assert tuple(next(reader)) == column_names(FIELD_VALUES)
        assert sum(1 for _ in reader) == len(build_tables(run_dir)["field_values"])


def test_cli_export_writes_parquet_and_csv_under_to(run_dir: Path, tmp_path: Path) -> None:
    to = tmp_path / "out"
    rc = cli_main(["export", str(run_dir), "--format", "parquet", "--format", "csv", "--to", str(to)])
    assert rc == 0
    assert {p.name for p in to.iterdir()} == {f"{t.name}.{ext}" for t in TABLES for ext in ("parquet", "csv")}


def test_cli_export_of_a_directory_without_a_run_fails_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["export", str(tmp_path)]) == 1
    assert "holds no run" in capsys.readouterr().err


def test_a_reconciled_folder_without_a_run_store_gets_parquet_and_csv_with_texts_reread(
    run_dir: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("records.jsonl", "incidents.jsonl", "conflicts.jsonl"):
        shutil.copy(run_dir / name, bare / name)
    to = tmp_path / "files"
    assert _export(bare, to=to) == 0  # neither --format nor --db: the files are the only destination
    assert {p.name for p in to.iterdir()} == {f"{t.name}.{ext}" for t in TABLES for ext in ("parquet", "csv")}
    with (to / "articles.csv").open(encoding="utf-8", newline="") as handle:
        exported = {row["id"] for row in csv.DictReader(handle)}
    lone_article, _ = lone_article_and_record()
    # The example files are still where the records say; the lone article never had a file.
    assert exported == {a.id for a in load_articles().all}
    assert lone_article.id not in exported


# --------------------------------------------------------------------------- the run folder and the files


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` but the lock file, whose holder details change by design."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK_FILENAME
    }


def test_export_refuses_a_run_folder_another_command_holds_and_writes_nothing(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(run_dir)
    to = tmp_path / "files"
    with run_folder_lock(run_dir, command="run"):
        rc = _export(run_dir, format=["csv"], to=to)
    assert rc == 2
    err = capsys.readouterr().err
    assert re.fullmatch(
        rf"error: {re.escape(str(run_dir))} is in use by `triangulate run` "
        rf"\(pid {os.getpid()}, since \d\d:\d\d\); wait for it to finish\n",
        err,
    ), err
    assert _snapshot(run_dir) == before
    assert not to.exists()


def test_export_with_wait_starts_only_after_the_holder_lets_go(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.outputs.export as export_module

    holding, released = threading.Event(), threading.Event()

    def hold() -> None:
        with run_folder_lock(run_dir, command="run"):
            holding.set()
            time.sleep(1.0)
            released.set()

    started_after_release: list[bool] = []
    write_store_tables = export_module.write_run_store_tables

    def spy(out_dir: Path, data: Any = None) -> Any:
        started_after_release.append(released.is_set())
        return write_store_tables(out_dir, data)

    monkeypatch.setattr(cli_commands, "write_run_store_tables", spy)
    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(5)
        assert _export(run_dir, wait=30.0) == 0
    finally:
        holder.join()
    assert started_after_release == [True]


def test_export_of_a_folder_it_cannot_lock_or_write_reads_it_as_it_is_and_says_so(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_open = os.open

    def refusing_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        if Path(path).name == LOCK_FILENAME:  # a read-only folder (root ignores real permissions)
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", refusing_open)
    to = tmp_path / "files"
    assert _export(run_dir, format=["csv"], to=to) == 0
    assert (
        f"warning: cannot lock {run_dir} (Permission denied); exporting without it" in capsys.readouterr().err
    )
    assert {p.name for p in to.iterdir()} == {f"{t.name}.csv" for t in TABLES}


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664)])
def test_exported_files_are_readable_by_group_and_other_as_the_umask_allows(
    run_dir: Path, tmp_path: Path, umask: int, mode: int
) -> None:
    to = tmp_path / "files"
    previous = os.umask(umask)
    try:
        assert _export(run_dir, format=["csv", "parquet", "sqlite"], to=to) == 0
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in to.iterdir()}
    assert len(modes) == 2 * len(TABLES) + 1
    assert modes == dict.fromkeys(modes, mode)


def test_a_failed_export_keeps_every_previous_file_and_leaves_no_temporary_one(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.outputs import export as export_module
    from pipeline.outputs.export import write_files
    from pipeline.outputs.rundata import RunIncidents

    to = tmp_path / "files"
    to.mkdir()
    for table in TABLES:
        (to / f"{table.name}.csv").write_text("previous export\n")
    data = load_run(run_dir)

    def broken_conflict_rows(run: RunIncidents) -> Any:
        raise RuntimeError("conflicts could not be read")
        yield  # a generator, like the real one

    monkeypatch.setattr(export_module, "conflict_rows", broken_conflict_rows)
    with pytest.raises(RuntimeError, match="conflicts could not be read"):
        write_files(data, to, ["csv"])
    assert _snapshot(to) == {f"{table.name}.csv": b"previous export\n" for table in TABLES}


# --------------------------------------------------------------------------- report HTML (no browser)


@pytest.fixture
def page_html(run_dir: Path) -> str:
    return render_report(load_run(run_dir))


def test_report_shows_the_conflict_count_of_conflicts_jsonl(page_html: str, run_dir: Path) -> None:
    conflicts = _jsonl(run_dir / "conflicts.jsonl")
    shown = re.search(r'<span id="conflict-count">([\d,]+)</span> flagged: ', page_html)
    assert shown and int(shown.group(1).replace(",", "")) == len(conflicts)
    assert re.search(rf'<p class="summary" id="summary"[^>]* data-flagged="{len(conflicts)}"', page_html)


def test_report_is_self_contained(page_html: str) -> None:
    assert len(re.findall(r"<script\b", page_html)) == 2  # the JSON data block and the inline script
    assert not re.search(r"<(script|img|link|iframe)\b[^>]*\b(src|href)=", page_html)
    assert "@import" not in page_html and "url(" not in page_html


def test_report_content_security_policy_allows_only_its_own_inline_style_and_script(page_html: str) -> None:
    import base64
    import hashlib

    found = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page_html)
    assert found
    csp = html.unescape(found.group(1))
    script = re.search(r"<script>(.*?)</script>", page_html, re.S)
    assert script
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp


def test_report_escapes_hostile_text_metadata_and_values(tmp_path: Path) -> None:
    lone_article, lone_record = lone_article_and_record()
    hostile = lone_article.model_copy(
        update={"outlet": "<script>alert('outlet')</script>", "url": "javascript:alert('url')"}
    )
    record = lone_record.model_copy(deep=True)
    assert record.where.city is not None
    record.where.city.value = "</script><img src=x onerror=alert('value')>"
    record.where.city.attribution = "<b>sheriff</b>"
    write_run(tmp_path / "hostile", [record], [hostile])
    page = render_report(load_run(tmp_path / "hostile"))
    for raw in ("<script>alert(", "<img src=x", "<b>sheriff</b>", 'href="javascript:'):
        assert raw not in page
    data_block = re.search(
        r'<script type="application/json" id="triangulate-data">(.*?)</script>', page, re.S
    )
    assert data_block and "<" not in data_block.group(1)
    data = json.loads(data_block.group(1))
    assert data["texts"]
    # The value reaches the script exactly, to be shown as text (report.js inserts no markup).
    assert "</script><img src=x onerror=alert('value')>" in data["strings"]
    assert [a[1] for a in data["articles"]] == ["<script>alert('outlet')</script>"]


def test_report_marks_unfound_quotes_as_not_found_and_gives_them_no_span(page_html: str) -> None:
    from test_report import citations_of, page_data

    data = page_data(page_html)
    cited = list(citations_of(data))
    unfound = [c for c in cited if c["status"] == "unfound"]
    assert [c["quote"] for c in unfound] == [UNFOUND_QUOTE]
    assert all(c["start"] is None and c["end"] is None for c in unfound)
    assert data["statusLabels"]["unfound"] == "not found in article"
    located = [c for c in cited if c["status"] == "exact"]
    assert located and all(isinstance(c["start"], int) and isinstance(c["end"], int) for c in located)


def test_utf16_offsets_count_astral_characters_twice() -> None:
    text = "a😀b"
    assert utf16_offset(text, 1) == 1
    assert utf16_offset(text, 2) == 3
    assert utf16_offset("plain", 3) == 3


def test_cli_report_writes_the_page_where_asked(run_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "review" / "page.html"
    assert cli_main(["report", str(run_dir), "--html", str(target)]) == 0
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert cli_main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.html").exists()


def test_report_leaves_someone_elses_temporary_file_alone(run_dir: Path) -> None:
    (run_dir / ".report.html.tmp").write_text("not the report's\n")
    assert cli_main(["report", str(run_dir)]) == 0
    assert (run_dir / ".report.html.tmp").read_text() == "not the report's\n"
    assert (run_dir / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not [
        p.name
        for p in run_dir.iterdir()
        if p.name.startswith(".report.html.") and p.name != ".report.html.tmp"
    ]


def test_report_lists_the_most_contradicted_incident_first(page_html: str, run_dir: Path) -> None:
    incidents = _jsonl(run_dir / "incidents.jsonl")
    contradictions = {i["id"]: sum(f["verdict"] == "contradiction" for f in i["fields"]) for i in incidents}
    order = re.findall(r'<tr id="row-([^"]+)"', page_html)
    assert sorted(order) == sorted(contradictions)
    assert [contradictions[i] for i in order] == sorted(contradictions.values(), reverse=True)
    assert contradictions[order[0]] > contradictions[order[-1]]


def test_dashboard_queries_run_unchanged_in_duckdb_over_the_parquet_files(
    run_dir: Path, tmp_path: Path
) -> None:
    duckdb = pytest.importorskip("duckdb", reason="duckdb not installed (optional; docs/dashboards.md)")
    to = tmp_path / "files"
    assert _export(run_dir, format=["parquet"], to=to) == 0
    conn = duckdb.connect()
    for table in TABLES:
        path = str(to / f"{table.name}.parquet").replace("'", "''")
        conn.execute(f"CREATE VIEW {table.name} AS SELECT * FROM read_parquet('{path}')")
    check_dashboard_results(run_dashboard_queries(conn), run_dir)
