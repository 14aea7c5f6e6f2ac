"""The run store's schema grows by named, append-only migrations (real SQLite files)."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

from pipeline.store.migrations import MIGRATIONS, applied_migrations, migrate
from pipeline.store.runstore import RunStore


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_new_store_has_every_migration_applied_in_order(tmp_path: Path) -> None:
    with RunStore(tmp_path) as store:
        assert applied_migrations(store.connection) == [name for name, _ in MIGRATIONS]
    assert {"articles", "extractions", "failures", "runs", "prompts", "exchanges"} <= tables(
        tmp_path / "triangulate.sqlite"
    )


def test_migrations_are_named_once_and_never_reapplied(tmp_path: Path) -> None:
    names = [name for name, _ in MIGRATIONS]
    assert len(names) == len(set(names))
    assert names == sorted(names), "numbered names keep the order visible"
    db = sqlite3.connect(tmp_path / "store.sqlite", isolation_level=None)
    assert migrate(db) == names
    assert migrate(db) == [], "a second open applies nothing"
    db.close()


def test_a_store_made_before_exchanges_existed_gains_them_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "triangulate.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    db.execute("BEGIN")
    dict(MIGRATIONS)["m001_initial"](db)
    db.execute("INSERT INTO _migrations VALUES ('m001_initial', '2026-11-22T00:00:00+00:00')")
    db.execute("INSERT INTO meta (key, value) VALUES ('kept', 'yes')")
    db.execute("COMMIT")
    db.close()
    assert "exchanges" not in tables(path)

    with RunStore(tmp_path) as store:
        assert "m002_model_exchanges" in applied_migrations(store.connection)
        assert store.connection.execute("SELECT value FROM meta WHERE key = 'kept'").fetchone()[0] == "yes"
    assert {"prompts", "exchanges"} <= tables(path)


def test_a_store_made_before_datelines_were_read_says_its_dates_came_from_metadata(tmp_path: Path) -> None:
    path = tmp_path / "triangulate.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    db.execute("BEGIN")
    for name in ("m001_initial", "m002_model_exchanges"):
        dict(MIGRATIONS)[name](db)
        db.execute("INSERT INTO _migrations VALUES (?, '2026-11-22T00:00:00+00:00')", (name,))
    for article_id, published in (("sha256:dated", "2026-03-14"), ("sha256:undated", None)):
        db.execute(
            "INSERT INTO articles (id, published, text, n_chars, first_seen)"
            " VALUES (?, ?, 'A deputy shot a man on Friday.', 30, '2026-11-22T00:00:00+00:00')",
            (article_id, published),
        )
    db.execute("COMMIT")
    db.close()

    with RunStore(tmp_path) as store:
        assert "m003_article_published_from" in applied_migrations(store.connection)
        dated, undated = store.article("sha256:dated"), store.article("sha256:undated")
        assert dated is not None and (dated.published, dated.published_from) == (
            date(2026, 3, 14),
            "metadata",
        )
        assert undated is not None and (undated.published, undated.published_from) == (None, "none")
        stored = store.connection.execute("SELECT id, published_from FROM articles ORDER BY id").fetchall()
        assert [tuple(row) for row in stored] == [("sha256:dated", "metadata"), ("sha256:undated", "none")]


def test_the_published_from_migration_is_a_no_op_on_a_store_that_already_has_the_column(
    tmp_path: Path,
) -> None:
    # A store whose _migrations table was lost runs every migration again; a dateline date
    # recorded since must not be relabelled as metadata.
    with RunStore(tmp_path) as store:
        store.connection.execute(
            "INSERT INTO articles (id, published, published_from, text, n_chars, first_seen)"
            " VALUES ('sha256:dl', '2026-03-14', 'dateline', 'Sept. 13', 8, '2026-11-22T00:00:00+00:00')"
        )
        store.connection.execute("DROP TABLE _migrations")
    with RunStore(tmp_path) as store:
        article = store.article("sha256:dl")
        assert article is not None and article.published_from == "dateline"
