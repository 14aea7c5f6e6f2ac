"""The run store: one SQLite file per output directory (``DIR/triangulate.sqlite``).

It is the single source of truth of a run. ``records.jsonl`` and
``failures.jsonl`` are derived from it, so a run killed at any point loses at
most the articles that were in flight, and re-running the same command picks
up where it stopped (every finished article is a cache hit).

Tables:

``articles``         one row per distinct article text (id = content hash): the
                     text and metadata, the first path it was read from, and its
                     current outcome (``status`` pending/record/failure and,
                     for a record, ``current_key``: which extraction it is).
                     ``last_run``/``run_seq`` say which ``run`` last read it,
                     at which position: that set of articles is what the
                     derived outputs describe.
``article_sources``  every path (or ``file.jsonl:LINE``) -> article id, so the same
                     story read from two places is extracted once and both
                     paths are kept.
``attempts``         every HTTP request made for an article (ask, re-ask,
                     transport retry) with usage, latency and error.
``extractions``      the records: article id + cache key -> record JSON.
``failures``         the current failure of an article (keyed by article id), or
                     of an unreadable input (keyed by ``input:PATH``).
``runs``             one row per command: when, which model, settings (no
                     secrets), counts.
``prompts``          every distinct prompt text once, under its hash: the system
                     prompt every article shares is stored a single time.
``exchanges``        what the model was asked (prompt hashes) and what it
                     answered (the raw reply), per request, so a record can be
                     audited against the model's own words. A later outcome for
                     the same article adds rows; earlier ones stay as history.
                     ``outcome_id`` groups the rows saved with one outcome.

Each article's outcome (extraction or failure, plus its attempts and exchanges) is written in
one transaction when it finishes, so the store never holds half an outcome.
A success supersedes an earlier failure of the same article.

A failure is a cached outcome (a plain re-run does not ask again) only when it says something about
the article: a failure caused by the endpoint or the connection to it (reasons in
:data:`RETRIED_ON_RERUN`) is asked again by the next run.

When the store itself cannot be written (the disk is full, the folder or file is read-only, an I/O
error, a damaged file), every method raises :class:`StoreError`; anything else a method raises is
about the data it was given (one article), and the store is unchanged by it.

Concurrency: one writer (the batch runner's event loop); WAL mode lets readers
(the dashboard exporter, a test watching progress) read while it writes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

from pipeline.common.atomic import replaced_together
from pipeline.common.redact import redact
from pipeline.store.migrations import migrate
from pipeline.store.runfolder import FAILURES_FILENAME, RECORDS_FILENAME, STORE_FILENAME
from schemas import (
    SCHEMA_VERSION,
    Article,
    AttemptLog,
    ExtractionResult,
    FailureRow,
    IncidentRecord,
    ModelExchange,
    Usage,
)

STORE_FORMAT = "1"

CachedOutcome = Literal["record", "failure"]

RETRIED_ON_RERUN = frozenset({"transport", "endpoint"})
"""Failure reasons that describe the endpoint, not the article (connection refused, timeouts,
429/5xx after every retry, an HTML page where JSON was expected): never a cached outcome, so a
plain re-run asks again once the endpoint works."""


class StoreError(Exception):
    """The run store or the output folder cannot be written: the disk is full, the folder or file
    is read-only, an I/O error, a damaged database. Nothing to do with any one article: every later
    write would fail the same way, so a batch stops instead of failing article after article."""

    def __init__(self, path: Path, cause: str, *, what: str = "run store") -> None:
        self.path = Path(path)
        self.cause = cause
        self.what = what
        super().__init__(f"cannot write the {what} at {path}: {cause}")


# The primary SQLite result code (``sqlite_errorname`` without its extended suffix) -> a cause.
_SQLITE_CAUSES = {
    "SQLITE_FULL": "disk full",
    "SQLITE_IOERR": "disk I/O error",
    "SQLITE_READONLY": "read-only",
    "SQLITE_CANTOPEN": "the file cannot be opened",
    "SQLITE_PERM": "permission denied",
    "SQLITE_CORRUPT": "the database file is damaged",
    "SQLITE_NOTADB": "the file is not a SQLite database",
    "SQLITE_BUSY": "another process holds the database",
    "SQLITE_LOCKED": "the database is locked",
}
_OS_CAUSES = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exhausted",
    errno.EFBIG: "file size limit reached",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EIO: "disk I/O error",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "a folder stands where a file should be",
    errno.EEXIST: "a file stands where a folder should be",
    errno.ENOENT: "the folder does not exist",
}
# Errors about the values bound to one statement (one article's data), not about the store.
_DATA_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.ProgrammingError,
    sqlite3.InterfaceError,
    sqlite3.NotSupportedError,
)


def storage_cause(error: BaseException) -> str | None:
    """A short cause ("disk full (...)") when ``error`` means storage failed, else None.

    Storage failing: SQLite errors other than those about the values of one statement
    (``database or disk is full``, ``disk I/O error``, ``attempt to write a readonly database``,
    ``unable to open database file``, a damaged file...), and ``OSError`` with a storage errno
    (ENOSPC, EDQUOT, EFBIG, EROFS, EACCES, EPERM, EIO, ENOTDIR, EISDIR, EEXIST, ENOENT).
    """
    if isinstance(error, sqlite3.DatabaseError) and not isinstance(error, _DATA_ERRORS):
        name = str(getattr(error, "sqlite_errorname", "") or "")
        primary = "_".join(name.split("_")[:2])
        cause = _SQLITE_CAUSES.get(primary)
        detail = f"sqlite: {error}" + (f", {name}" if name else "")
        return f"{cause} ({detail})" if cause else detail
    if isinstance(error, OSError) and error.errno in _OS_CAUSES:
        return f"{_OS_CAUSES[error.errno]} ({error.strerror or error})"
    return None


@contextmanager
def _storage_errors(path: Path, *, what: str = "run store") -> Iterator[None]:
    """Turn a storage failure raised inside into :class:`StoreError`; anything else passes through."""
    try:
        yield
    except StoreError:
        raise
    except Exception as error:
        cause = storage_cause(error)
        if cause is None:
            raise
        raise StoreError(path, cause, what=what) from error


def cache_key(article_id: str, parts: Mapping[str, str]) -> str:
    """The extraction cache key: the article's content hash plus everything that changes the answer
    (prompt hash, schema version, model, decoding parameters, as ``Extractor.cache_key_parts``)."""
    material = {"article_id": article_id, "schema_version": SCHEMA_VERSION, **parts}
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8"))
    return digest.hexdigest()[:32]


def store_path(path: Path) -> Path:
    """The store file of a run directory (``DIR/triangulate.sqlite``); a path ending in
    ``.sqlite``/``.db`` is taken as the database file itself."""
    path = Path(path)
    return path if path.suffix in (".sqlite", ".db") else path / STORE_FILENAME


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class Registration:
    """What the store knew about an article when the batch runner read it."""

    first_in_run: bool
    """False when this run already read the same text from another path."""
    cached: CachedOutcome | None
    """The outcome already stored under the run's cache key, now current; None: extract it."""


@dataclass(frozen=True)
class DerivedCounts:
    records: int
    failures: int


@dataclass(frozen=True)
class ArticleOutcome:
    """An article's current outcome as the store holds it."""

    status: Literal["record", "failure", "pending"]
    cache_key: str | None = None
    """The cache key the outcome was saved under; None while pending."""
    run_id: str | None = None
    """The run that saved it (not necessarily the run that last read the article: cache hits)."""
    record: IncidentRecord | None = None
    failure: FailureRow | None = None


@dataclass(frozen=True)
class StoredExchange:
    """A stored model exchange with what the store knows around it."""

    exchange: ModelExchange
    run_id: str | None
    cache_key: str | None
    outcome_id: str
    """Shared by the exchanges saved with one outcome."""
    created_at: str
    attempt_log: AttemptLog | None
    """The attempts row of the same request (kind, usage, latency, error), when one was saved."""


@dataclass(frozen=True)
class BatchRequest:
    """One line of a provider batch's input file: which article chunk its ``custom_id`` asks for."""

    custom_id: str
    article_id: str
    chunk: int
    chunks: int
    attempt: int
    """1 for the first batch of an article, 2 for a second batch of its re-asks."""
    cache_key: str
    """The cache key the request was built under: a resumed run with other settings must not take
    its reply for theirs."""


@dataclass(frozen=True)
class ProviderBatch:
    """A provider Batch API job as the store knows it (``provider_batches``)."""

    input_file_id: str
    batch_id: str | None
    """None while only the input file is uploaded (the process stopped before the batch was created)."""
    run_id: str
    round: int
    status: str
    output_file_id: str | None
    error_file_id: str | None
    request_count: int
    submitted_at: str
    finished_at: str | None
    ingested_at: str | None


class RunStore:
    """The SQLite run store of one output directory.

    ``path`` is the output directory (the store is ``path/triangulate.sqlite``)
    or, if it ends in ``.sqlite``/``.db``, the database file itself.
    ``secrets`` are values (API keys) to scrub from every text written.
    """

    def __init__(self, path: Path, *, secrets: Iterable[str] = ()) -> None:
        self.db_path = store_path(path)
        self.secrets = tuple(secret for secret in secrets if secret)
        with _storage_errors(self.db_path):
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we open transactions ourselves, so "one outcome, one transaction"
            # is visible in the code rather than left to the driver's implicit BEGIN.
            self._db = sqlite3.connect(self.db_path, isolation_level=None)
            try:
                self._db.row_factory = sqlite3.Row
                self._db.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode: a power cut may lose the last commits, never corrupt the file,
                # and commits skip the fsync that would otherwise cap throughput.
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA busy_timeout=10000")
                migrate(self._db)
                self._db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('store_format', ?)", (STORE_FORMAT,)
                )
            except BaseException:
                self._db.close()
                raise

    # -- lifecycle --

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for read-only queries by exporters and tests."""
        return self._db

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self.db_path)

    # -- runs --

    def start_run(
        self,
        kind: str,
        *,
        model: str | None = None,
        provider: str | None = None,
        cache_key_parts: Mapping[str, str] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> str:
        """Record the start of a command; returns its run id. Earlier runs still marked running were
        killed (the store is only written by one process at a time), so they are marked so.
        ``settings`` and ``cache_key_parts`` are stored through :func:`pipeline.common.redact.redact`
        (credentials in a URL's userinfo or query string, keys, the store's ``secrets``)."""
        run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
        with self._transaction() as db:
            db.execute("UPDATE runs SET status = 'killed' WHERE status = 'running'")
            db.execute(
                "INSERT INTO runs (run_id, kind, started, status, model, provider, cache_key_parts, settings)"
                " VALUES (?, ?, ?, 'running', ?, ?, ?, ?)",
                (
                    run_id,
                    kind,
                    _now(),
                    model,
                    provider,
                    redact(json.dumps(dict(cache_key_parts or {}), sort_keys=True), self.secrets),
                    redact(json.dumps(dict(settings or {}), sort_keys=True, default=str), self.secrets),
                ),
            )
        return run_id

    def finish_run(self, run_id: str, *, status: str, counts: Mapping[str, Any]) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET finished = ?, status = ?, counts = ? WHERE run_id = ?",
                (_now(), status, json.dumps(dict(counts), sort_keys=True, default=str), run_id),
            )

    def latest_input_run(self) -> str | None:
        """The latest ``run`` command: its inputs are the article set the derived outputs describe."""
        row = self._db.execute(
            "SELECT run_id FROM runs WHERE kind = 'run' ORDER BY started DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return str(row["run_id"]) if row else None

    def runs(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self._db.execute("SELECT * FROM runs ORDER BY started, rowid")]

    # -- inputs --

    def register_article(
        self,
        article: Article,
        *,
        run_id: str,
        seq: int,
        key: str | None,
        allow_cached_failure: bool = True,
    ) -> Registration:
        """Record that ``run_id`` read ``article`` (at input position ``seq``) and look up its cache.

        ``key`` None means "do not use the cache" (``--refresh``). A failure stored under the same
        key counts as done unless ``allow_cached_failure`` is False or its reason is one of
        :data:`RETRIED_ON_RERUN`: a plain re-run does not retry what failed because of the article
        (that is what ``retry-failed`` is for), so an unchanged re-run against a working endpoint
        makes no requests.
        """
        now = _now()
        with self._transaction() as db:
            row = db.execute("SELECT last_run FROM articles WHERE id = ?", (article.id,)).fetchone()
            first_in_run = row is None or row["last_run"] != run_id
            if row is None:
                db.execute(
                    "INSERT INTO articles (id, source_path, outlet, url, published, published_from, title,"
                    " text, n_chars, first_seen, last_run, run_seq, status)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
                    (
                        article.id,
                        article.source_path,
                        article.outlet,
                        article.url,
                        _iso(article.published),
                        article.published_from,
                        article.title,
                        article.text,
                        len(article.text),
                        now,
                        run_id,
                        seq,
                    ),
                )
            elif first_in_run:
                # Metadata may have been corrected since (front matter, sidecar): keep the latest.
                db.execute(
                    "UPDATE articles SET outlet = ?, url = ?, published = ?, published_from = ?, title = ?,"
                    " last_run = ?, run_seq = ?, status = 'pending', current_key = NULL WHERE id = ?",
                    (
                        article.outlet,
                        article.url,
                        _iso(article.published),
                        article.published_from,
                        article.title,
                        run_id,
                        seq,
                        article.id,
                    ),
                )
            if article.source_path is not None:
                db.execute(
                    "INSERT INTO article_sources (path, article_id, external_id, first_seen, last_run)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET"
                    " article_id = excluded.article_id, external_id = excluded.external_id,"
                    " last_run = excluded.last_run",
                    (article.source_path, article.id, getattr(article, "external_id", None), now, run_id),
                )
                # The path reads fine now: an earlier "unreadable input" failure for it is obsolete.
                db.execute("DELETE FROM failures WHERE key = ?", (_input_key(article.source_path),))
            cached = None
            if first_in_run and key is not None:
                cached = self._adopt_cached(db, article.id, key, allow_cached_failure)
        return Registration(first_in_run=first_in_run, cached=cached)

    def _adopt_cached(
        self, db: sqlite3.Connection, article_id: str, key: str, allow_cached_failure: bool
    ) -> CachedOutcome | None:
        hit = db.execute(
            "SELECT 1 FROM extractions WHERE article_id = ? AND cache_key = ?", (article_id, key)
        ).fetchone()
        if hit:
            db.execute(
                "UPDATE articles SET status = 'record', current_key = ? WHERE id = ?", (key, article_id)
            )
            db.execute("DELETE FROM failures WHERE key = ?", (article_id,))
            return "record"
        if allow_cached_failure:
            failed = db.execute(
                "SELECT reason FROM failures WHERE key = ? AND cache_key = ?", (article_id, key)
            ).fetchone()
            # An endpoint that was down says nothing about the article: ask again.
            if failed and failed["reason"] not in RETRIED_ON_RERUN:
                db.execute("UPDATE articles SET status = 'failure' WHERE id = ?", (article_id,))
                return "failure"
        return None

    def reuse_cached(
        self, article_id: str, key: str, *, allow_cached_failure: bool = True
    ) -> CachedOutcome | None:
        """Make the outcome stored under ``key`` the article's current one, if there is one."""
        with self._transaction() as db:
            return self._adopt_cached(db, article_id, key, allow_cached_failure)

    def record_input_failure(self, row: FailureRow, *, run_id: str, seq: int) -> None:
        """An input that could not be read (no article text): kept under its path."""
        path = row.source_path or "(unknown)"
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO failures (key, article_id, source_path, reason, detail, attempts,"
                " last_error, run_id, last_run, run_seq, created)"
                " VALUES (?, NULL, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
                (
                    _input_key(path),
                    row.source_path,
                    row.reason,
                    redact(row.detail, self.secrets),
                    redact(row.last_error, self.secrets),
                    run_id,
                    run_id,
                    seq,
                    _now(),
                ),
            )
            # The path no longer yields that article.
            db.execute("DELETE FROM article_sources WHERE path = ?", (path,))

    def record_article_failure(
        self, article: Article, failure: FailureRow, *, run_id: str, seq: int | None, key: str | None
    ) -> None:
        """Make ``failure`` the article's outcome in one transaction, registering the article first
        if it is not in the store yet. For failures found outside the extractor (the article could
        not be registered or its outcome saved), so the strings are stored with anything SQLite
        cannot encode (a lone surrogate from a JSON escape) replaced, and the text is kept only if
        the article has no row yet."""
        now = _now()
        with self._transaction() as db:
            row = db.execute("SELECT 1 FROM articles WHERE id = ?", (article.id,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO articles (id, source_path, outlet, url, published, published_from, title,"
                    " text, n_chars, first_seen, last_run, run_seq, status)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'failure')",
                    (
                        article.id,
                        _storable(article.source_path),
                        _storable(article.outlet),
                        _storable(article.url),
                        _iso(article.published),
                        article.published_from,
                        _storable(article.title),
                        _storable(article.text) or "",
                        len(article.text),
                        now,
                        run_id,
                        seq,
                    ),
                )
            else:
                db.execute(
                    "UPDATE articles SET status = 'failure', current_key = NULL, last_run = ?,"
                    " run_seq = COALESCE(?, run_seq) WHERE id = ?",
                    (run_id, seq, article.id),
                )
            db.execute(
                "INSERT OR REPLACE INTO failures (key, article_id, source_path, reason, detail, attempts,"
                " last_error, prompt_tokens, completion_tokens, total_tokens, cache_key, run_id, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    article.id,
                    article.id,
                    _storable(failure.source_path or article.source_path),
                    failure.reason,
                    _storable(redact(failure.detail, self.secrets)),
                    failure.attempts,
                    _storable(redact(failure.last_error, self.secrets)),
                    failure.usage.prompt_tokens,
                    failure.usage.completion_tokens,
                    failure.usage.total_tokens,
                    key,
                    run_id,
                    now,
                ),
            )

    # -- outcomes --

    def save_outcome(self, article: Article, result: ExtractionResult, *, key: str, run_id: str) -> None:
        """Write one article's outcome (record or failure), its attempts and its model exchanges
        (prompts stored once by hash, replies redacted) in one transaction."""
        now = _now()
        with self._transaction() as db:
            self._save_exchanges(db, article.id, result.exchanges, key=key, run_id=run_id, now=now)
            db.executemany(
                "INSERT INTO attempts (article_id, run_id, attempt, kind, model, prompt_tokens,"
                " completion_tokens, total_tokens, latency_s, error, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        article.id,
                        run_id,
                        log.attempt,
                        log.kind,
                        log.model,
                        log.usage.prompt_tokens,
                        log.usage.completion_tokens,
                        log.usage.total_tokens,
                        log.latency_s,
                        redact(log.error, self.secrets),
                        now,
                    )
                    for log in result.attempts
                ],
            )
            if result.record is not None:
                record = result.record
                db.execute(
                    "INSERT OR REPLACE INTO extractions (article_id, cache_key, record_json, model, provider,"
                    " prompt_hash, schema_version, attempts, prompt_tokens, completion_tokens, total_tokens,"
                    " run_id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        article.id,
                        key,
                        record.model_dump_json(),
                        record.provenance.model,
                        record.provenance.provider,
                        record.provenance.prompt_hash,
                        record.schema_version,
                        len(result.attempts),
                        result.usage.prompt_tokens,
                        result.usage.completion_tokens,
                        result.usage.total_tokens,
                        run_id,
                        now,
                    ),
                )
                db.execute(
                    "UPDATE articles SET status = 'record', current_key = ? WHERE id = ?", (key, article.id)
                )
                db.execute("DELETE FROM failures WHERE key = ?", (article.id,))
            else:
                failure = result.failure or FailureRow(
                    article_id=article.id,
                    source_path=article.source_path,
                    reason="internal",
                    detail="the extractor returned neither a record nor a failure",
                )
                db.execute(
                    "INSERT OR REPLACE INTO failures (key, article_id, source_path, reason, detail, attempts,"
                    " last_error, prompt_tokens, completion_tokens, total_tokens, cache_key, run_id, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        article.id,
                        article.id,
                        failure.source_path or article.source_path,
                        failure.reason,
                        redact(failure.detail, self.secrets),
                        failure.attempts,
                        redact(failure.last_error, self.secrets),
                        failure.usage.prompt_tokens,
                        failure.usage.completion_tokens,
                        failure.usage.total_tokens,
                        key,
                        run_id,
                        now,
                    ),
                )
                db.execute(
                    "UPDATE articles SET status = 'failure', current_key = NULL WHERE id = ?", (article.id,)
                )

    def _save_exchanges(
        self,
        db: sqlite3.Connection,
        article_id: str,
        exchanges: Sequence[ModelExchange],
        *,
        key: str,
        run_id: str,
        now: str,
    ) -> None:
        if not exchanges:
            return
        prompts: dict[str, str] = {}
        for exchange in exchanges:
            prompts.setdefault(exchange.system_hash, exchange.system_prompt)
            prompts.setdefault(exchange.user_hash, exchange.user_prompt)
        db.executemany(
            "INSERT OR IGNORE INTO prompts (hash, text, first_seen) VALUES (?, ?, ?)",
            [(digest, text, now) for digest, text in prompts.items()],
        )
        outcome_id = uuid.uuid4().hex
        db.executemany(
            "INSERT INTO exchanges (article_id, run_id, cache_key, outcome_id, attempt, chunk, system_hash,"
            " user_hash, reply, finish_reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    article_id,
                    run_id,
                    key,
                    outcome_id,
                    exchange.attempt,
                    exchange.chunk,
                    exchange.system_hash,
                    exchange.user_hash,
                    redact(exchange.reply, self.secrets),
                    exchange.finish_reason,
                    now,
                )
                for exchange in exchanges
            ],
        )

    # -- reading --

    def article(self, article_id: str) -> Article | None:
        row = self._db.execute("SELECT * FROM articles WHERE id = ?", (article_id,)).fetchone()
        return _article_from_row(row) if row else None

    def source_paths(self, article_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT path FROM article_sources WHERE article_id = ? ORDER BY path", (article_id,)
        )
        return [str(row["path"]) for row in rows]

    def find_article(self, ref: str) -> list[Article]:
        """The articles a user's reference names, most specific reading first.

        ``ref`` may be a full article id, a source path (as read, or as an absolute path), a
        prefix of the id's hex digest (with or without ``sha256:``), or the end of a source
        path on a ``/`` boundary, e.g. a file's base name. The first reading that matches
        anything wins; an id prefix and a file name that both match are all returned, so the
        caller can report the reference as ambiguous. Paths are those ``article_sources`` holds,
        i.e. what each path yields now.
        """
        ref = ref.strip()
        if not ref:
            return []
        exact = self.article(ref)
        if exact is not None:
            return [exact]
        paths = {ref, os.path.normpath(ref), os.path.abspath(ref)}
        marks = ", ".join("?" for _ in paths)
        ids = self._article_ids(
            f"SELECT DISTINCT article_id FROM article_sources WHERE path IN ({marks})", tuple(paths)
        )
        if not ids:
            digest = ref.lower().removeprefix("sha256:")
            if re.fullmatch(r"[0-9a-f]+", digest):
                prefix = "sha256:" + digest
                ids = self._article_ids(
                    "SELECT id FROM articles WHERE substr(id, 1, ?) = ?", (len(prefix), prefix)
                )
            tail = "/" + ref.lstrip("/")
            ids += self._article_ids(
                "SELECT DISTINCT article_id FROM article_sources WHERE substr(path, -?) = ?",
                (len(tail), tail),
            )
        found = [self.article(article_id) for article_id in sorted(set(ids))]
        return [article for article in found if article is not None]

    def _article_ids(self, sql: str, params: tuple[Any, ...]) -> list[str]:
        return [str(row[0]) for row in self._db.execute(sql, params)]

    def outcome(self, article_id: str) -> ArticleOutcome | None:
        """The article's current outcome (what the derived outputs say about it); None if unknown."""
        row = self._db.execute(
            "SELECT status, current_key FROM articles WHERE id = ?", (article_id,)
        ).fetchone()
        if row is None:
            return None
        status = str(row["status"])
        if status == "record" and row["current_key"] is not None:
            found = self._db.execute(
                "SELECT record_json, run_id FROM extractions WHERE article_id = ? AND cache_key = ?",
                (article_id, row["current_key"]),
            ).fetchone()
            if found is not None:
                return ArticleOutcome(
                    status="record",
                    cache_key=str(row["current_key"]),
                    run_id=found["run_id"],
                    record=IncidentRecord.model_validate_json(found["record_json"]),
                )
        if status == "failure":
            found = self._db.execute("SELECT * FROM failures WHERE key = ?", (article_id,)).fetchone()
            if found is not None:
                return ArticleOutcome(
                    status="failure",
                    cache_key=found["cache_key"],
                    run_id=found["run_id"],
                    failure=_failure_from_row(found),
                )
        return ArticleOutcome(status="pending")

    def prompt_text(self, prompt_hash: str) -> str | None:
        """The prompt stored under ``prompt_hash`` (a ``ModelExchange`` system or user hash)."""
        row = self._db.execute("SELECT text FROM prompts WHERE hash = ?", (prompt_hash,)).fetchone()
        return str(row["text"]) if row else None

    def exchanges(self, article_id: str, *, all_runs: bool = False) -> list[ModelExchange]:
        """The model exchanges behind the article's current outcome, in attempt order.

        See ``exchange_log`` for which exchanges those are; ``all_runs`` returns every stored
        exchange of the article instead, oldest outcome first.
        """
        return [stored.exchange for stored in self.exchange_log(article_id, all_runs=all_runs)]

    def exchange_log(self, article_id: str, *, all_runs: bool = False) -> list[StoredExchange]:
        """The article's stored exchanges with where they came from and their attempt rows.

        By default, those saved with the newest outcome under the cache key of the article's
        current outcome (record or failure), so they are what produced what the outputs show;
        an article without a current outcome (pending) gets those of its newest saved outcome.
        Empty when the current outcome was saved without exchanges (e.g. by an older version).
        With ``all_runs``, every outcome's exchanges, oldest outcome first.
        """
        if all_runs:
            rows = self._db.execute(
                "SELECT * FROM exchanges WHERE article_id = ?"
                " ORDER BY (SELECT MIN(id) FROM exchanges AS o WHERE o.outcome_id = exchanges.outcome_id),"
                " attempt, chunk, id",
                (article_id,),
            ).fetchall()
        else:
            current = self.outcome(article_id)
            if current is not None and current.cache_key is not None:
                newest = self._db.execute(
                    "SELECT outcome_id FROM exchanges WHERE article_id = ? AND cache_key = ?"
                    " ORDER BY id DESC LIMIT 1",
                    (article_id, current.cache_key),
                ).fetchone()
            else:
                newest = self._db.execute(
                    "SELECT outcome_id FROM exchanges WHERE article_id = ? ORDER BY id DESC LIMIT 1",
                    (article_id,),
                ).fetchone()
            if newest is None:
                return []
            rows = self._db.execute(
                "SELECT * FROM exchanges WHERE outcome_id = ? ORDER BY attempt, chunk, id",
                (newest["outcome_id"],),
            ).fetchall()
        return [self._stored_exchange(row) for row in rows]

    def _stored_exchange(self, row: sqlite3.Row) -> StoredExchange:
        exchange = ModelExchange(
            article_id=row["article_id"],
            attempt=row["attempt"],
            chunk=row["chunk"],
            system_hash=row["system_hash"],
            user_hash=row["user_hash"],
            system_prompt=self.prompt_text(row["system_hash"]) or "",
            user_prompt=self.prompt_text(row["user_hash"]) or "",
            reply=row["reply"],
            finish_reason=row["finish_reason"],
        )
        # The attempt rows of one outcome were written with the same timestamp in the same transaction.
        log = self._db.execute(
            "SELECT * FROM attempts WHERE article_id = ? AND run_id IS ? AND attempt = ? AND created = ?"
            " ORDER BY id DESC LIMIT 1",
            (row["article_id"], row["run_id"], row["attempt"], row["created_at"]),
        ).fetchone()
        return StoredExchange(
            exchange=exchange,
            run_id=row["run_id"],
            cache_key=row["cache_key"],
            outcome_id=str(row["outcome_id"]),
            created_at=str(row["created_at"]),
            attempt_log=_attempt_from_row(log) if log is not None else None,
        )

    # -- provider batches --

    def record_batch_upload(
        self, *, run_id: str, input_file_id: str, round: int, requests: Sequence[BatchRequest]
    ) -> None:
        """An uploaded batch input file and what each of its lines asks, before the batch is created:
        from here on a resumed run looks for this file's batch rather than uploading again."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO provider_batches (input_file_id, run_id, round, status, request_count,"
                " submitted_at) VALUES (?, ?, ?, 'uploaded', ?, ?)",
                (input_file_id, run_id, round, len(requests), _now()),
            )
            db.executemany(
                "INSERT INTO batch_requests (input_file_id, custom_id, article_id, chunk, chunks, attempt,"
                " cache_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (input_file_id, r.custom_id, r.article_id, r.chunk, r.chunks, r.attempt, r.cache_key)
                    for r in requests
                ],
            )

    def update_provider_batch(
        self,
        input_file_id: str,
        *,
        batch_id: str | None = None,
        status: str | None = None,
        output_file_id: str | None = None,
        error_file_id: str | None = None,
        finished: bool = False,
    ) -> None:
        """Record what the provider says about a batch; fields left None keep their stored value."""
        with self._transaction() as db:
            db.execute(
                "UPDATE provider_batches SET batch_id = COALESCE(?, batch_id), status = COALESCE(?, status),"
                " output_file_id = COALESCE(?, output_file_id), error_file_id = COALESCE(?, error_file_id),"
                " finished_at = CASE WHEN ? THEN COALESCE(finished_at, ?) ELSE finished_at END"
                " WHERE input_file_id = ?",
                (batch_id, status, output_file_id, error_file_id, finished, _now(), input_file_id),
            )

    def mark_batch_ingested(self, input_file_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE provider_batches SET ingested_at = ? WHERE input_file_id = ?", (_now(), input_file_id)
            )

    def provider_batches(self, *, open_only: bool = False) -> list[ProviderBatch]:
        """Every batch in submission order; ``open_only``: those whose results are not ingested yet."""
        sql = "SELECT * FROM provider_batches"
        if open_only:
            sql += " WHERE ingested_at IS NULL"
        rows = self._db.execute(sql + " ORDER BY submitted_at, rowid").fetchall()
        return [
            ProviderBatch(**{name: row[name] for name in ProviderBatch.__dataclass_fields__}) for row in rows
        ]

    def batch_requests(self, input_file_id: str) -> list[BatchRequest]:
        rows = self._db.execute(
            "SELECT * FROM batch_requests WHERE input_file_id = ? ORDER BY rowid", (input_file_id,)
        ).fetchall()
        return [
            BatchRequest(**{name: row[name] for name in BatchRequest.__dataclass_fields__}) for row in rows
        ]

    def failed_articles(self, run_id: str | None = None) -> Iterator[Article]:
        """Articles of the input set of ``run_id`` (default: the latest run) whose outcome is a failure."""
        run_id = run_id or self.latest_input_run()
        rows = self._db.execute(
            "SELECT * FROM articles WHERE last_run = ? AND status = 'failure' ORDER BY run_seq", (run_id,)
        ).fetchall()
        for row in rows:
            yield _article_from_row(row)

    def iter_record_json(self, run_id: str | None = None) -> Iterator[str]:
        """The current record of every article in the input set of ``run_id``, in input order."""
        run_id = run_id or self.latest_input_run()
        cursor = self._db.execute(
            "SELECT e.record_json FROM articles a JOIN extractions e"
            " ON e.article_id = a.id AND e.cache_key = a.current_key"
            " WHERE a.last_run = ? AND a.status = 'record' ORDER BY a.run_seq",
            (run_id,),
        )
        for row in cursor:
            yield str(row["record_json"])

    def records(self, run_id: str | None = None) -> list[IncidentRecord]:
        return [IncidentRecord.model_validate_json(line) for line in self.iter_record_json(run_id)]

    def iter_failures(self, run_id: str | None = None) -> Iterator[FailureRow]:
        """Failures of the input set of ``run_id``: unreadable inputs and failed articles, in input order."""
        run_id = run_id or self.latest_input_run()
        cursor = self._db.execute(
            "SELECT f.*, COALESCE(a.run_seq, f.run_seq) AS seq FROM failures f"
            " LEFT JOIN articles a ON a.id = f.article_id"
            " WHERE (f.article_id IS NULL AND f.last_run = ?)"
            "    OR (f.article_id IS NOT NULL AND a.last_run = ? AND a.status = 'failure')"
            " ORDER BY seq",
            (run_id, run_id),
        )
        for row in cursor:
            yield _failure_from_row(row)

    def outcome_counts(self, run_id: str | None = None) -> dict[str, int]:
        run_id = run_id or self.latest_input_run()
        counts = {"record": 0, "failure": 0, "pending": 0}
        for row in self._db.execute(
            "SELECT status, COUNT(*) AS n FROM articles WHERE last_run = ? GROUP BY status", (run_id,)
        ):
            counts[str(row["status"])] = int(row["n"])
        row = self._db.execute(
            "SELECT COUNT(*) AS n FROM failures WHERE article_id IS NULL AND last_run = ?", (run_id,)
        ).fetchone()
        counts["input_failure"] = int(row["n"])
        return counts

    # -- derived files --

    def write_derived(self, out_dir: Path, run_id: str | None = None) -> DerivedCounts:
        """Rewrite ``records.jsonl`` and ``failures.jsonl`` from the store as one set
        (pipeline.common.atomic: temporary files, fsync, then both renamed), so readers and killed runs
        never see a half-written file, or records of one run beside failures of another."""
        out_dir = Path(out_dir)
        with _storage_errors(out_dir, what="output folder"):
            out_dir.mkdir(parents=True, exist_ok=True)
        records_path, failures_path = out_dir / RECORDS_FILENAME, out_dir / FAILURES_FILENAME
        with (
            _storage_errors(self.db_path),
            _storage_errors(records_path, what="outputs"),
            replaced_together() as files,
        ):
            n_records = _write_lines(files.open_text(records_path), self.iter_record_json(run_id))
            n_failures = _write_lines(
                files.open_text(failures_path),
                (row.model_dump_json() for row in self.iter_failures(run_id)),
            )
        return DerivedCounts(records=n_records, failures=n_failures)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception; a storage failure
    anywhere in it (``BEGIN``, a statement, ``COMMIT``) is raised as :class:`StoreError`."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> sqlite3.Connection:
        with _storage_errors(self._path):
            self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            try:
                with _storage_errors(self._path):
                    self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            return
        self._rollback()
        if exc is not None and not isinstance(exc, StoreError):
            cause = storage_cause(exc)
            if cause is not None:
                raise StoreError(self._path, cause) from exc

    def _rollback(self) -> None:
        # After SQLITE_FULL or an I/O error SQLite may have rolled the transaction back already,
        # and a ROLLBACK on a broken file can fail too: the error that got us here is the one to report.
        if self._db.in_transaction:
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")


def _input_key(path: str) -> str:
    return f"input:{path}"


def _usage_from_row(row: sqlite3.Row) -> Usage:
    return Usage(
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        total_tokens=row["total_tokens"],
    )


def _failure_from_row(row: sqlite3.Row) -> FailureRow:
    return FailureRow(
        article_id=row["article_id"],
        source_path=row["source_path"],
        reason=row["reason"],
        detail=row["detail"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        usage=_usage_from_row(row),
    )


def _attempt_from_row(row: sqlite3.Row) -> AttemptLog:
    return AttemptLog(
        article_id=row["article_id"],
        attempt=row["attempt"],
        kind=row["kind"],
        model=row["model"],
        usage=_usage_from_row(row),
        latency_s=row["latency_s"],
        error=row["error"],
    )


def _article_from_row(row: sqlite3.Row) -> Article:
    return Article(
        id=row["id"],
        text=row["text"],
        source_path=row["source_path"],
        outlet=row["outlet"],
        url=row["url"],
        published=date.fromisoformat(row["published"]) if row["published"] else None,
        # NULL only in a row written by an older version after m003 ran; the model derives it.
        published_from=row["published_from"],
        title=row["title"],
    )


def _storable(value: str | None) -> str | None:
    """``value`` with what SQLite cannot store as UTF-8 (lone surrogates) replaced."""
    if value is None:
        return None
    return value.encode("utf-8", "replace").decode("utf-8")


def _write_lines(handle: IO[str], lines: Iterable[str]) -> int:
    count = 0
    for line in lines:
        handle.write(line)
        handle.write("\n")
        count += 1
    return count
