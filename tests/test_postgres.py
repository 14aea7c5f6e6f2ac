"""Dashboard tables in a real PostgreSQL server.

Needs TRIANGULATE_TEST_PG=postgresql://... (scripts/ci_services.sh starts a
throwaway cluster on loopback and prints it); skips with that reason otherwise.
Each test works in its own schema, dropped afterwards, so tests never see each
other's rows and a shared server is left as it was.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from export_fixtures import lone_article_and_record, two_incident_run, write_run
from test_export import check_dashboard_results, run_dashboard_queries

from pipeline.outputs.export import build_tables, export_to_db
from pipeline.outputs.rundata import ExportError
from pipeline.outputs.tables import TABLE_SCHEMA_VERSION, TABLES

pytestmark = pytest.mark.postgres

PG_URL = os.environ.get("TRIANGULATE_TEST_PG")


def _count(conn: Any, sql: str, params: tuple[Any, ...] = ()) -> int:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def _counts(conn: Any) -> dict[str, int]:
    return {t.name: _count(conn, f'SELECT COUNT(*) FROM "{t.name}"') for t in TABLES}


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose connections use a fresh, empty schema."""
    if not PG_URL:
        pytest.skip('TRIANGULATE_TEST_PG is not set (run: eval "$(bash scripts/ci_services.sh)")')
    psycopg = pytest.importorskip("psycopg", reason="psycopg not installed (pip install -e '.[export]')")
    schema = f"triangulate_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        pytest.fail(f"TRIANGULATE_TEST_PG is set but the server does not answer: {exc}")
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        separator = "&" if "?" in PG_URL else "?"
        try:
            yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module")
def run_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return two_incident_run(tmp_path_factory.mktemp("template"))


@pytest.fixture
def run_dir(run_template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run_template, target)
    return target


def test_exporting_the_example_run_twice_leaves_row_counts_unchanged(pg_url: str, run_dir: Path) -> None:
    import psycopg

    export_to_db(run_dir, pg_url)
    with psycopg.connect(pg_url) as conn:
        first = _counts(conn)
    export_to_db(run_dir, pg_url)
    with psycopg.connect(pg_url) as conn:
        second = _counts(conn)
        version = conn.execute("SELECT value FROM meta WHERE key = 'table_schema_version'").fetchone()
    expected = {name: len(rows) for name, rows in build_tables(run_dir).items()}
    assert first == second == expected
    assert version == (TABLE_SCHEMA_VERSION,)


def test_postgres_columns_are_typed(pg_url: str, run_dir: Path) -> None:
    import psycopg

    export_to_db(run_dir, pg_url)
    with psycopg.connect(pg_url) as conn:
        types: dict[str, str] = dict(
            conn.execute(
                "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = current_schema()"
            ).fetchall()
        )
        ages = conn.execute("SELECT subjects_0_age FROM records WHERE subjects_0_age IS NOT NULL").fetchall()
    assert types["records.subjects_0_age"] == "bigint"
    assert types["articles.published"] == "date"
    assert types["field_values.supported"] == "boolean"
    assert types["field_values.grounding_score"] == "double precision"
    assert ages and all(isinstance(a, int) for (a,) in ages)


def test_dashboard_queries_answer_correctly_on_postgres(pg_url: str, run_dir: Path) -> None:
    import psycopg

    export_to_db(run_dir, pg_url)
    with psycopg.connect(pg_url) as conn:
        results = run_dashboard_queries(conn)
    check_dashboard_results(results, run_dir)
    assert all(results.values()), "each query should return rows on the example run"


def test_a_second_run_into_the_same_database_keeps_the_first_runs_rows(
    pg_url: str, run_dir: Path, tmp_path: Path
) -> None:
    import psycopg

    export_to_db(run_dir, pg_url)
    other = tmp_path / "other"
    lone_article, lone_record = lone_article_and_record()
    write_run(other, [lone_record], [lone_article])
    export_to_db(other, pg_url)
    with psycopg.connect(pg_url) as conn:
        counts = _counts(conn)
    tables = build_tables(run_dir)
    assert counts["field_values"] == len(tables["field_values"])
    assert counts["records"] == len(tables["records"])
    assert counts["conflicts"] == len(tables["conflicts"])


def test_a_stale_value_of_a_reexported_article_is_deleted(pg_url: str, run_dir: Path, tmp_path: Path) -> None:
    import psycopg

    export_to_db(run_dir, pg_url)
    lone_article, lone_record = lone_article_and_record()
    trimmed = lone_record.model_copy(deep=True)
    trimmed.officers.count_fired = None
    other = tmp_path / "rerun"
    write_run(other, [trimmed], [lone_article])
    export_to_db(other, pg_url)
    with psycopg.connect(pg_url) as conn:
        paths = {
            r[0]
            for r in conn.execute(
                "SELECT field_path FROM field_values WHERE article_id = %s", (lone_article.id,)
            )
        }
        total = _count(conn, "SELECT COUNT(*) FROM field_values")
    assert "officers.count_fired" not in paths and "where.city" in paths
    assert total == len(build_tables(run_dir)["field_values"]) - 1


def test_a_database_with_another_table_schema_version_is_refused_and_left_alone(
    pg_url: str, run_dir: Path
) -> None:
    import psycopg

    export_to_db(run_dir, pg_url)
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE meta SET value = '0.1.0' WHERE key = 'table_schema_version'")
        conn.execute("DELETE FROM records")
    with pytest.raises(ExportError, match="0.1.0"):
        export_to_db(run_dir, pg_url)
    with psycopg.connect(pg_url) as conn:
        assert _count(conn, "SELECT COUNT(*) FROM records") == 0


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_an_unreachable_server_is_reported_through_psycopg_3_without_the_password(
    run_dir: Path, scheme: str
) -> None:
    pytest.importorskip("psycopg", reason="psycopg not installed (pip install -e '.[export]')")
    secret = "s3cret-pw-123"
    # Port 1 on loopback: nothing listens there, so the connection is refused at once. Getting as
    # far as connecting shows the URL went to psycopg 3 (SQLAlchemy's own default is psycopg2,
    # which is not installed: that would be "needs psycopg").
    with pytest.raises(ExportError, match="^cannot connect to the database: ") as caught:
        export_to_db(run_dir, f"{scheme}://someone:{secret}@127.0.0.1:1/nowhere?connect_timeout=5")
    assert secret not in str(caught.value)


def test_a_reexport_updates_changed_values_in_place(pg_url: str, run_dir: Path, tmp_path: Path) -> None:
    import psycopg

    export_to_db(run_dir, pg_url)
    lone_article, lone_record = lone_article_and_record()
    corrected = lone_record.model_copy(deep=True)
    assert corrected.where.city is not None
    corrected.where.city.value = "Harlow Township"
    rerun = tmp_path / "rerun"
    write_run(rerun, [corrected], [lone_article])
    export_to_db(rerun, pg_url)
    with psycopg.connect(pg_url) as conn:
        city = conn.execute(
            "SELECT where_city FROM records WHERE article_id = %s", (lone_article.id,)
        ).fetchone()
        value = conn.execute(
            "SELECT value FROM field_values WHERE article_id = %s AND field_path = 'where.city'",
            (lone_article.id,),
        ).fetchone()
        counts = _counts(conn)
    assert city == ("Harlow Township",) and value == ("Harlow Township",)
    tables = build_tables(run_dir)
    assert counts["records"] == len(tables["records"]) and counts["field_values"] == len(
        tables["field_values"]
    )


def test_run_on_the_example_folder_with_db_fills_postgres_and_a_rerun_changes_no_counts(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`triangulate run examples/tempe-traffic-stop --db postgresql://...`, end to end.

    The model is the loopback stub in tests/fault_server.py (no faults): it answers
    each article with schema-valid facts quoting that article, so this test is about
    the run -> reconcile -> PostgreSQL path, not about extraction quality.
    """
    from fault_server import FaultServer

    from pipeline.cli.main import main

    examples = Path(__file__).resolve().parent.parent / "examples" / "tempe-traffic-stop"
    out = tmp_path / "out"
    with FaultServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-pg-run-000000")
        argv = ["run", str(examples), "--out", str(out), "--model", "fault-stub", "-q", "--db", pg_url]
        assert main(argv) == 0
        psycopg = pytest.importorskip("psycopg")
        with psycopg.connect(pg_url) as conn:
            first = _counts(conn)
        requests_after_first = len(server.requests)
        assert main(argv) == 0
        with psycopg.connect(pg_url) as conn:
            second = _counts(conn)

    assert first["articles"] == 6 and first["records"] == 6
    assert first["field_values"] > 0 and first["incidents"] >= 1
    assert second == first
    assert len(server.requests) == requests_after_first  # the re-run came from the cache
