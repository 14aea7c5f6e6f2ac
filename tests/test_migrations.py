"""The run store's schema grows by named, append-only migrations (real SQLite files)."""

from __future__ import annotations

import sqlite3
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
        assert applied_migrations(store.connection)[-1] == "m002_model_exchanges"
        assert store.connection.execute("SELECT value FROM meta WHERE key = 'kept'").fetchone()[0] == "yes"
    assert {"prompts", "exchanges"} <= tables(path)
