"""The run store's schema as named, append-only migrations.

Each migration runs once per store, in order, inside a transaction, and its
name is recorded in ``_migrations``. Never edit or reorder one that has been
released: add a new one at the end. Stores made before migrations existed
created the same tables with ``IF NOT EXISTS``, so the first migrations apply
to them as no-ops and only the missing ones change anything.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(function: Migration) -> Migration:
    """Register ``function`` as the next migration, named after it."""
    MIGRATIONS.append((function.__name__, function))
    return function


def _run_script(db: sqlite3.Connection, script: str) -> None:
    # executescript() would commit the open transaction; run statement by statement instead.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    """Articles, their source paths, requests, extractions (the cache), failures and runs."""
    _run_script(
        db,
        """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY,
    source_path TEXT,
    outlet TEXT,
    url TEXT,
    published TEXT,
    title TEXT,
    text TEXT NOT NULL,
    n_chars INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_run TEXT,
    run_seq INTEGER,
    status TEXT NOT NULL DEFAULT 'pending',
    current_key TEXT
);
CREATE INDEX IF NOT EXISTS articles_by_run ON articles (last_run, run_seq);
CREATE TABLE IF NOT EXISTS article_sources (
    path TEXT PRIMARY KEY,
    article_id TEXT NOT NULL,
    external_id TEXT,
    first_seen TEXT NOT NULL,
    last_run TEXT
);
CREATE INDEX IF NOT EXISTS article_sources_by_article ON article_sources (article_id);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id TEXT NOT NULL,
    run_id TEXT,
    attempt INTEGER NOT NULL,
    kind TEXT NOT NULL,
    model TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s REAL NOT NULL DEFAULT 0,
    error TEXT,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_article ON attempts (article_id);
CREATE TABLE IF NOT EXISTS extractions (
    article_id TEXT NOT NULL,
    cache_key TEXT NOT NULL,
    record_json TEXT NOT NULL,
    model TEXT,
    provider TEXT,
    prompt_hash TEXT,
    schema_version TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens INTEGER NOT NULL DEFAULT 0,
    run_id TEXT,
    created TEXT NOT NULL,
    PRIMARY KEY (article_id, cache_key)
);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT PRIMARY KEY,
    article_id TEXT,
    source_path TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens INTEGER NOT NULL DEFAULT 0,
    cache_key TEXT,
    run_id TEXT,
    last_run TEXT,
    run_seq INTEGER,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS failures_by_run ON failures (last_run, run_seq);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL,
    model TEXT,
    provider TEXT,
    cache_key_parts TEXT,
    settings TEXT,
    counts TEXT
);
""",
    )


@migration
def m002_model_exchanges(db: sqlite3.Connection) -> None:
    """What the model was asked and answered: prompt texts by hash, and every request's raw reply."""
    _run_script(
        db,
        """CREATE TABLE IF NOT EXISTS prompts (
    hash TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    first_seen TEXT
);
CREATE TABLE IF NOT EXISTS exchanges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    article_id TEXT NOT NULL,
    run_id TEXT,
    cache_key TEXT,
    outcome_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    chunk INTEGER NOT NULL DEFAULT 1,
    system_hash TEXT NOT NULL,
    user_hash TEXT NOT NULL,
    reply TEXT,
    finish_reason TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS exchanges_by_article ON exchanges (article_id);
""",
    )


@migration
def m003_article_published_from(db: sqlite3.Connection) -> None:
    """Where each article's publication date came from: 'metadata', 'dateline' or 'none'."""
    # Like the CREATE ... IF NOT EXISTS above, a no-op on a store that already has the column
    # (one whose _migrations table was lost), so every migration can run against any store.
    columns = {row[1] for row in db.execute("PRAGMA table_info(articles)")}
    if "published_from" not in columns:
        db.execute("ALTER TABLE articles ADD COLUMN published_from TEXT")
    # Until datelines were read, every stored date came from the input's metadata.
    db.execute(
        "UPDATE articles SET published_from = CASE WHEN published IS NULL THEN 'none' ELSE 'metadata' END"
        " WHERE published_from IS NULL"
    )


@migration
def m004_editors_desk(db: sqlite3.Connection) -> None:
    """The editor's desk: stable incident ids (which article is in which incident, and every id
    ever given out), the log of how incidents changed, and reviewers' decisions (append-only)."""
    _run_script(
        db,
        """
CREATE TABLE IF NOT EXISTS incident_members (
    article_id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_members_by_incident ON incident_members (incident_id);
CREATE TABLE IF NOT EXISTS incident_ids (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'active',
    merged_into TEXT
);
CREATE TABLE IF NOT EXISTS incident_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    change TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    article_ids_json TEXT NOT NULL DEFAULT '[]',
    other_incident TEXT
);
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    by TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    action TEXT NOT NULL,
    field_path TEXT,
    value_json TEXT NOT NULL DEFAULT 'null',
    note TEXT NOT NULL DEFAULT '',
    other_incident TEXT,
    article_ids_json TEXT NOT NULL DEFAULT '[]',
    evidence_json TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS decisions_by_incident ON decisions (incident_id);
""",
    )


@migration
def m005_provider_batches(db: sqlite3.Connection) -> None:
    """Provider Batch API jobs and which article chunk each request line stands for.

    A batch is recorded when its input file is uploaded (``batch_id`` still NULL) and again once
    created, so a killed run resumes by polling the same batch instead of submitting again.
    """
    _run_script(
        db,
        """
CREATE TABLE IF NOT EXISTS provider_batches (
    input_file_id TEXT PRIMARY KEY,
    batch_id TEXT UNIQUE,
    run_id TEXT NOT NULL,
    round INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'uploaded',
    output_file_id TEXT,
    error_file_id TEXT,
    request_count INTEGER NOT NULL,
    submitted_at TEXT NOT NULL,
    finished_at TEXT,
    ingested_at TEXT
);
CREATE TABLE IF NOT EXISTS batch_requests (
    input_file_id TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    article_id TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    cache_key TEXT NOT NULL,
    PRIMARY KEY (input_file_id, custom_id)
);
CREATE INDEX IF NOT EXISTS batch_requests_by_article ON batch_requests (article_id)
""",
    )


def applied_migrations(db: sqlite3.Connection) -> list[str]:
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY rowid")]


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply the migrations ``db`` has not had yet, each in its own transaction; return their names.

    ``db`` must be in autocommit mode (``isolation_level=None``), as the run store opens it.
    """
    done = set(applied_migrations(db))
    applied: list[str] = []
    for name, function in MIGRATIONS:
        if name in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have applied it while we waited for the write lock.
            if db.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                db.execute("ROLLBACK")
                continue
            function(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat(timespec="seconds")),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        applied.append(name)
    return applied
