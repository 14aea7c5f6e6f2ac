"""A finished run, read back from its folder: the records, the articles they cite, the failure
rows, and the reconciler's incidents and conflicts. Export and the review page read runs only
through :func:`load_run`, and :func:`load_run` reads the folder only through
:class:`pipeline.store.runfolder.RunFolder`.

Sources, in order of trust: the run store (``DIR/triangulate.sqlite``, the single source of truth
of a run) for articles, records and failures, falling back to ``records.jsonl`` /
``failures.jsonl`` when a folder has no store (a folder ``triangulate reconcile`` wrote); the
reconciler's ``incidents.jsonl`` / ``conflicts.jsonl`` for incidents and conflicts.

Nothing is re-run here. Records without ``incidents.jsonl`` are an error that names the
``triangulate reconcile`` command to run, not a reason to reconcile in memory: a page or a table
built from a reconcile nobody asked for would differ from the files beside it. The one thing read
from outside the folder is article text when there is no run store (see :func:`_reread_articles`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.store.runfolder import FolderKind, RunFolder, RunFolderError
from schemas import Article, FailureRow, IncidentRecord
from schemas.desk import Decision
from schemas.incident import Conflict, FieldVerdict, Incident


class ExportError(Exception):
    """A destination that cannot take this export as it is (reported to the user, exit 1)."""


@dataclass
class RunIncidents:
    """The reconciler's output for a run: incidents with a verdict per field, and the flagged fields."""

    incidents: list[Incident]
    conflicts: list[Conflict]
    origin: str = ""
    """The ``incidents.jsonl`` they were read from; empty for a run without records (no incidents)."""
    _verdicts: dict[tuple[str, str], FieldVerdict] | None = field(default=None, repr=False, compare=False)

    @property
    def incident_of_article(self) -> dict[str, str]:
        return {article_id: i.id for i in self.incidents for article_id in i.article_ids}

    def verdict(self, incident_id: str, path: str) -> FieldVerdict | None:
        if self._verdicts is None:
            self._verdicts = {(i.id, f.path): f for i in self.incidents for f in i.fields}
        return self._verdicts.get((incident_id, path))


def reconcile_command_for(folder: RunFolder) -> str:
    """The command that writes ``incidents.jsonl`` / ``conflicts.jsonl`` for ``folder``'s records."""
    return f"triangulate reconcile {shlex.quote(str(folder.records))} --out {shlex.quote(str(folder.root))}"


def load_incidents(out_dir: Path, records: Sequence[IncidentRecord], warnings: list[str]) -> RunIncidents:
    """incidents.jsonl + conflicts.jsonl as the reconciler wrote them.

    Raises ExportError when there are records but no incidents.jsonl: the message names the
    ``triangulate reconcile`` command that writes it. A run with no records has no incidents.
    """
    folder = RunFolder(Path(out_dir))
    if not folder.has_incidents():
        if records:
            raise ExportError(
                f"no {folder.incidents.name} in {folder.root}: its {len(records)} record(s) have not "
                f"been reconciled; run `{reconcile_command_for(folder)}` first"
            )
        return RunIncidents([], [])
    incidents = list(folder.read_incidents())
    if not folder.has_conflicts():
        # The reconciler replaces both files together, so one without the other is a damaged folder;
        # its incidents are still right, but "no conflicts" would be a claim nobody made.
        warnings.append(
            f"{folder.incidents.name} without {folder.conflicts.name} in {folder.root}: no field is "
            f"shown as flagged; run `{reconcile_command_for(folder)}` again"
        )
    conflicts = list(folder.read_conflicts())
    known = {a for i in incidents for a in i.article_ids}
    unreconciled = [r.article_id for r in records if r.article_id not in known]
    if unreconciled:
        warnings.append(
            f"{len(unreconciled)} record(s) are newer than {folder.incidents.name} and in no incident; "
            f"run `{reconcile_command_for(folder)}` again"
        )
    return RunIncidents(incidents, conflicts, origin=str(folder.incidents))


@dataclass
class RunData:
    """Everything the tables and the report are built from, read from one run directory."""

    out_dir: Path
    records: list[IncidentRecord]
    articles: dict[str, Article]
    failures: list[FailureRow]
    incidents: RunIncidents
    warnings: list[str] = field(default_factory=list)
    kind: FolderKind = "run"
    """``"run"`` (read from a run store) or ``"reconcile"`` (records.jsonl, no store)."""
    decisions: list[DecisionState] = field(default_factory=list)
    """Reviewers' decisions, oldest first, each with whether it stands."""

    @property
    def folder(self) -> RunFolder:
        return RunFolder(self.out_dir)

    def article(self, article_id: str) -> Article | None:
        return self.articles.get(article_id)


def load_run(out_dir: Path) -> RunData:
    """Read a run folder (see :mod:`pipeline.store.runfolder` for the two kinds).

    Raises ExportError when the folder holds no run (neither a run store nor records.jsonl), when
    its records have not been reconciled (the message names the command), or when one of its files
    cannot be read as what it should hold.
    """
    folder = RunFolder(Path(out_dir))
    warnings: list[str] = []
    kind = folder.kind
    try:
        if kind == "run":
            records, articles, failures = _read_store(folder)
            incidents = load_incidents(folder.root, records, warnings)
        elif kind == "reconcile":
            records = list(folder.read_records())
            failures = list(folder.read_failures())
            # Incidents first: a folder that is not reconciled fails before any source file is read.
            incidents = load_incidents(folder.root, records, warnings)
            articles = _reread_articles(folder, records, warnings)
        else:
            raise ExportError(folder.describe())
    except RunFolderError as exc:
        raise ExportError(str(exc)) from exc
    decisions = decision_states(folder, incidents.incidents) if folder.has_store() else []
    return RunData(folder.root, records, articles, failures, incidents, warnings, kind, decisions)


@dataclass(frozen=True)
class DecisionState:
    """A recorded decision, the id its incident goes by now, and its state: ``applied``,
    ``superseded by N`` or ``no longer applies: REASON``."""

    decision: Decision
    incident_id: str
    state: str


GONE = "its incident no longer exists (split, or articles removed)"


def decision_states(folder: RunFolder, incidents: Sequence[Incident]) -> list[DecisionState]:
    """Every decision of a folder's run store, oldest first, with its state."""
    from pipeline.store.desk import Desk
    from pipeline.store.runstore import RunStore

    with RunStore(folder.store) as store:
        desk = Desk(store)
        decisions = desk.decisions()
        current = {d.seq: desk.resolve(d.incident_id) for d in decisions}
    by_id = {incident.id: incident for incident in incidents}
    latest: dict[tuple[str, str], int] = {}
    for d in decisions:
        if d.field_path:
            latest[(current[d.seq], d.field_path)] = d.seq or 0
    states: list[DecisionState] = []
    for d in decisions:
        incident_id = current[d.seq]
        incident = by_id.get(incident_id)
        stale = (
            next((s for s in incident.stale_decisions if s.decision.seq == d.seq), None) if incident else None
        )
        if d.field_path and latest[(incident_id, d.field_path)] != d.seq:
            state = f"superseded by {latest[(incident_id, d.field_path)]}"
        elif incident is None:
            state = f"no longer applies: {GONE}"
        elif stale is not None:
            state = f"no longer applies: {stale.reason}"
        else:
            state = "applied"
        states.append(DecisionState(d, incident_id, state))
    return states


def _read_store(folder: RunFolder) -> tuple[list[IncidentRecord], dict[str, Article], list[FailureRow]]:
    from pipeline.store.runstore import RunStore

    with RunStore(folder.store) as store:
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


def _reread_articles(
    folder: RunFolder, records: Sequence[IncidentRecord], warnings: list[str]
) -> dict[str, Article]:
    """Without a store, article texts come from the files the records name (for the report's quotes).

    A deliberate, always-announced fallback rather than an opt-in: a reconcile folder keeps no copy
    of the texts, and without them the review page cannot show a single quote in context. It re-runs
    nothing (no extraction, no reconcile): it only reads files, and an article's id is the hash of
    its text, so a file that changed since extraction is not taken for the text the record cites; it
    simply goes missing, and the warnings say so.
    """
    from pipeline.ingest.sources import iter_sources

    if not records:
        return {}
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
    if articles:
        warnings.append(
            f"no run store in {folder.root}: article texts were re-read from the {len(readable)} source "
            f"file(s) its {folder.records.name} names, to show quotes in context"
        )
    missing = wanted - set(articles)
    if missing:
        warnings.append(
            f"{len(missing)} article text(s) not found (no run store, and the source files are "
            "missing or changed); their quotes cannot be shown in context"
        )
    return articles
