"""A finished run, read back from its folder: the records, the articles they cite, the failure
rows, and the reconciler's incidents and conflicts. Export and the review page read runs only
through :func:`load_run`.

Sources, in order of trust: the run store (``DIR/triangulate.sqlite``, the single source of truth
of a run) for articles, records and failures, falling back to ``records.jsonl`` /
``failures.jsonl`` when a folder has no store (records reconciled with ``triangulate reconcile``);
the reconciler's ``incidents.jsonl`` / ``conflicts.jsonl`` for incidents and conflicts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.store.runfolder import (
    CONFLICTS_FILENAME,
    FAILURES_FILENAME,
    INCIDENTS_FILENAME,
    RECORDS_FILENAME,
    STORE_FILENAME,
)
from schemas import Article, FailureRow, IncidentRecord
from schemas.incident import Conflict, FieldVerdict, Incident


class ExportError(Exception):
    """A destination that cannot take this export as it is (reported to the user, exit 1)."""


@dataclass
class RunIncidents:
    """The reconciler's output for a run: incidents with a verdict per field, and the flagged fields."""

    incidents: list[Incident]
    conflicts: list[Conflict]
    origin: str = ""
    """Where they came from: the jsonl files, or reconciled in memory because there were none."""
    _verdicts: dict[tuple[str, str], FieldVerdict] | None = field(default=None, repr=False, compare=False)

    @property
    def incident_of_article(self) -> dict[str, str]:
        return {article_id: i.id for i in self.incidents for article_id in i.article_ids}

    def verdict(self, incident_id: str, path: str) -> FieldVerdict | None:
        if self._verdicts is None:
            self._verdicts = {(i.id, f.path): f for i in self.incidents for f in i.fields}
        return self._verdicts.get((incident_id, path))


def load_incidents(out_dir: Path, records: Sequence[IncidentRecord], warnings: list[str]) -> RunIncidents:
    """incidents.jsonl + conflicts.jsonl as the reconciler wrote them; reconciled in memory if absent."""
    incidents_path, conflicts_path = out_dir / INCIDENTS_FILENAME, out_dir / CONFLICTS_FILENAME
    if incidents_path.exists():
        incidents = [Incident.model_validate_json(line) for line in _jsonl_lines(incidents_path)]
        conflicts = [Conflict.model_validate_json(line) for line in _jsonl_lines(conflicts_path)]
        known = {a for i in incidents for a in i.article_ids}
        unreconciled = [r.article_id for r in records if r.article_id not in known]
        if unreconciled:
            warnings.append(
                f"{len(unreconciled)} record(s) are newer than {INCIDENTS_FILENAME} and in no incident; "
                "run `triangulate reconcile` again"
            )
        return RunIncidents(incidents, conflicts, origin=str(incidents_path))
    from pipeline.reconcile.merge import reconcile

    if records:
        warnings.append(f"no {INCIDENTS_FILENAME} in {out_dir}: reconciled the records in memory")
    result = reconcile(records)
    return RunIncidents(result.incidents, result.conflicts, origin="reconciled in memory")


@dataclass
class RunData:
    """Everything the tables and the report are built from, read from one run directory."""

    out_dir: Path
    records: list[IncidentRecord]
    articles: dict[str, Article]
    failures: list[FailureRow]
    incidents: RunIncidents
    warnings: list[str] = field(default_factory=list)

    def article(self, article_id: str) -> Article | None:
        return self.articles.get(article_id)


def load_run(out_dir: Path) -> RunData:
    """Read a run directory. Raises ExportError if it holds neither a run store nor records.jsonl."""
    out_dir = Path(out_dir)
    store_path = out_dir / STORE_FILENAME
    warnings: list[str] = []
    if store_path.exists():
        records, articles, failures = _read_store(out_dir)
    elif (out_dir / RECORDS_FILENAME).exists():
        records = [
            IncidentRecord.model_validate_json(line) for line in _jsonl_lines(out_dir / RECORDS_FILENAME)
        ]
        failures = [
            FailureRow.model_validate_json(line) for line in _jsonl_lines(out_dir / FAILURES_FILENAME)
        ]
        articles = _reread_articles(records, warnings)
    else:
        raise ExportError(f"{out_dir} holds no run: neither {STORE_FILENAME} nor {RECORDS_FILENAME}")
    incidents = load_incidents(out_dir, records, warnings)
    return RunData(out_dir, records, articles, failures, incidents, warnings)


def _jsonl_lines(path: Path) -> Iterator[str]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield line


def _read_store(out_dir: Path) -> tuple[list[IncidentRecord], dict[str, Article], list[FailureRow]]:
    from pipeline.store.runstore import RunStore

    with RunStore(out_dir) as store:
        records = store.records()
        failures = list(store.iter_failures())
        run_id = store.latest_input_run()
        # The articles of the run's input set, failed ones included, so dashboards can count
        # failures by outlet; plus any article a record points at (a record adopted from the cache).
        wanted = {r.article_id for r in records}
        articles: dict[str, Article] = {}
        rows = store.connection.execute("SELECT id FROM articles WHERE last_run = ?", (run_id,)).fetchall()
        for article_id in sorted(wanted | {str(row["id"]) for row in rows}):
            article = store.article(article_id)
            if article is not None:
                articles[article_id] = article
    return records, articles, failures


def _reread_articles(records: Sequence[IncidentRecord], warnings: list[str]) -> dict[str, Article]:
    """Without a store, article texts come from the files the records name (for the report's quotes)."""
    from pipeline.ingest.sources import iter_sources

    wanted = {r.article_id for r in records}
    files: dict[Path, None] = {}
    for record in records:
        path = record.source_path or record.provenance.source_path
        if path:
            # JSONL sources are named "file.jsonl:LINE".
            files[Path(re.sub(r"\.jsonl:\d+$", ".jsonl", path))] = None
    articles: dict[str, Article] = {}
    readable = [p for p in files if p.exists()]
    for item in iter_sources(readable):
        if isinstance(item, Article) and item.id in wanted:
            articles.setdefault(item.id, item)
    missing = wanted - set(articles)
    if missing:
        warnings.append(
            f"{len(missing)} article text(s) not found (no run store, and the source files are "
            "missing or changed); their quotes cannot be shown in context"
        )
    return articles
