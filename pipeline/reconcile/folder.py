"""Reconciling into a run folder: ids that last, decisions re-applied, a folder that grows.

``triangulate run`` and ``triangulate reconcile`` both end here. The folder's run store keeps
the editor's desk (``pipeline.store.desk``): which incident each article was in, every id given
out, the change log, and reviewers' decisions. A reconcile reads them, settles the ids
(``pipeline.reconcile.stable``), applies the decisions (``pipeline.reconcile.decide``), writes
incidents.jsonl and conflicts.jsonl, and records the ids it settled on, in that order, so a
reconcile that fails half-way leaves the desk as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.reconcile.decide import DeskState
from pipeline.reconcile.merge import ReconcileEngine, RunCounts, reconcile_to_dir
from pipeline.store.desk import Desk, now
from pipeline.store.runstore import RunStore
from schemas import IncidentRecord
from schemas.desk import IncidentChange, StaleDecision


@dataclass
class FolderReconcile:
    """What a reconcile into a folder did."""

    counts: RunCounts
    created: int = 0
    kept: int = 0
    merged: int = 0
    changes: list[IncidentChange] = field(default_factory=list)
    applied: int = 0
    stale: list[StaleDecision] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.kept} incident id(s) kept, {self.created} new"]
        if self.merged:
            parts.append(f"{self.merged} merged into others")
        if self.applied or self.stale:
            parts.append(f"{self.applied} decision(s) applied")
        if self.stale:
            parts.append(f"{len(self.stale)} no longer apply (see `triangulate decisions`)")
        return "; ".join(parts)


def desk_state(desk: Desk) -> DeskState:
    """What a reconcile needs from the desk."""
    known = desk.known_ids()
    aliases: dict[str, list[str]] = {}
    for old, info in known.items():
        if info["merged_into"]:
            aliases.setdefault(desk.resolve(old), []).append(old)
    return DeskState(
        previous={article: desk.resolve(incident) for article, incident in desk.members().items()},
        # Sortable: the creation time, then the order of creation within one second.
        created_at={
            incident: f"{info['created_at']}#{int(info['order']):012d}" for incident, info in known.items()
        },
        decisions=desk.decisions(),
        resolve=desk.resolve,
        at=now(),
        aliases=aliases,
    )


def reconcile_into(
    records: Iterable[IncidentRecord], out_dir: Path, *, engine: ReconcileEngine | None = None
) -> FolderReconcile:
    """Reconcile ``records`` into ``out_dir`` with its desk (created with the run store if the
    folder has none). A stream of records (not a list) is spilled to disk and reconciled in
    bounded memory (``pipeline.reconcile.spill``); the outputs are the same bytes. ``engine``
    runs the clustering and judging passes elsewhere (``pipeline.reconcile.ray_engine``)."""
    with RunStore(out_dir) as store:
        desk = Desk(store)
        state = desk_state(desk)
        counts = reconcile_to_dir(records, out_dir, desk=state, engine=engine)
        assignment = state.assignment
        desk.save_ids(assignment.members, assignment.created, assignment.merged, assignment.changes)
    kept = len({incident for incident in assignment.members.values()}) - len(assignment.created)
    return FolderReconcile(
        counts=counts,
        created=len(assignment.created),
        kept=kept,
        merged=len(assignment.merged),
        changes=list(assignment.changes),
        applied=state.applied,
        stale=list(state.stale),
    )
