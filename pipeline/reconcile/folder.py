"""Reconciling into a run folder: ids that last, decisions re-applied, a folder that grows.

``triangulate run`` and ``triangulate reconcile`` both end here. The folder's run store keeps
the editor's desk (``pipeline.store.desk``): which incident each article was in, every id given
out, the change log, and reviewers' decisions. A reconcile reads them, settles the ids
(``pipeline.reconcile.stable``), applies the decisions (``pipeline.reconcile.decide``), writes
incidents.jsonl and conflicts.jsonl, and records the ids it settled on, in that order, so a
reconcile that fails half-way leaves the desk as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from pydantic import ValidationError

from pipeline.common.atomic import replaced_together
from pipeline.reconcile.decide import DeskState
from pipeline.reconcile.given import GivenGrounding, find_articles, ground_given, needs_grounding
from pipeline.reconcile.merge import ReconcileEngine, RunCounts, reconcile_to_dir
from pipeline.reconcile.spill import LineError, RecordLines, line_error
from pipeline.store.desk import Desk, now
from pipeline.store.runfolder import RunFolder
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


# --------------------------------------------------------------------------- a records file, streamed


class NotUtf8(Exception):
    """A records file that is not UTF-8 text: nothing is reconciled or written."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"not UTF-8 text ({reason} at line {line})")
        self.line = line


@dataclass
class StagedRecords:
    """A records file read for ``triangulate reconcile``: what to reconcile, and what reading found."""

    lines: RecordLines
    """The records to reconcile, as JSON lines (read from a file; reconciled in bounded memory)."""
    errors: list[LineError] = field(default_factory=list)
    """Lines of the file that are not valid records, by number; they are left out."""
    grounding: GivenGrounding | None = None
    """What grounding the records that lacked it did; None when none lacked it."""
    earlier: int | None = None
    """When the folder grows: the records it held before."""
    added: int = 0
    """When the folder grows: the records whose article it did not hold yet."""
    wrote_records: bool = False
    """Whether the folder's records.jsonl was written."""


def _read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            raw = line.strip()
            if not raw:
                continue
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise NotUtf8(number, error.reason) from None
            yield number, raw


def _article_id(line: bytes) -> str:
    return str(orjson.loads(line)["article_id"])


@contextlib.contextmanager
def staged_records(
    records_path: Path, out_dir: Path, *, article_dirs: Sequence[Path] = ()
) -> Iterator[StagedRecords]:
    """Read ``records_path`` for a reconcile into ``out_dir`` without holding its records.

    Each line is validated once; invalid ones are noted by number and left out, never dropped
    silently. Records that lack grounding are grounded against their articles
    (``pipeline.reconcile.given``); only those are held in memory. Valid records wait in a
    staging file in ``out_dir`` (removed when the block ends). A folder that is not a run folder
    grows: its records.jsonl is rewritten as its earlier records plus these, an article read
    again replacing its earlier record, and the reconcile reads that file. Raises ``NotUtf8``
    before anything in ``out_dir`` changes.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    folder = RunFolder(out_dir)
    staged = StagedRecords(lines=RecordLines(()))
    handle, name = tempfile.mkstemp(dir=out_dir, prefix=".staged-records-", suffix=".jsonl")
    staging = Path(name)
    try:
        ungrounded: list[IncidentRecord] = []
        with os.fdopen(handle, "wb") as out:
            for number, raw in _read_lines(records_path):
                try:
                    record = IncidentRecord.model_validate_json(raw)
                except ValidationError as error:
                    staged.errors.append(line_error(number, error))
                    continue
                if needs_grounding(record):
                    ungrounded.append(record)
                else:
                    out.write(record.model_dump_json().encode("utf-8") + b"\n")
            if ungrounded:
                # Only records written by hand or imported lack grounding: few enough to hold.
                articles = find_articles(
                    ungrounded, records_path=records_path, out_dir=out_dir, article_dirs=article_dirs
                )
                grounded, staged.grounding = ground_given(ungrounded, articles)
                for record in grounded:
                    out.write(record.model_dump_json().encode("utf-8") + b"\n")
                del ungrounded, grounded, articles
        if folder.kind == "run" or _same_file(records_path, folder.records):
            # A run folder's records live in its store; a folder's own records.jsonl is read as it is.
            staged.lines = RecordLines.from_file(staging)
            yield staged
            return
        _grow(folder, staging, staged)
        staged.lines = RecordLines.from_file(folder.records)
        yield staged
    finally:
        staging.unlink(missing_ok=True)


def _grow(folder: RunFolder, staging: Path, staged: StagedRecords) -> None:
    """Write the folder's records.jsonl: its earlier records, then the staged ones; one record
    per article once the folder holds earlier records (the last one read wins)."""
    grows = folder.has_records()
    earlier_ids: set[str] = set()
    if grows:
        with folder.records.open("rb") as earlier:
            earlier_ids = {_article_id(raw) for raw in earlier if raw.strip()}
        staged.earlier = len(earlier_ids)
    last: dict[str, int] = {}
    with staging.open("rb") as incoming:
        for index, raw in enumerate(incoming):
            last[_article_id(raw)] = index
    staged.added = len(last.keys() - earlier_ids)
    with replaced_together() as files, files.open_text(folder.records) as out:
        if grows:
            with folder.records.open("r", encoding="utf-8") as earlier_text:
                for text in earlier_text:
                    if text.strip() and _article_id(text.encode("utf-8")) not in last:
                        out.write(text if text.endswith("\n") else text + "\n")
        with staging.open("r", encoding="utf-8") as incoming_text:
            for index, text in enumerate(incoming_text):
                # A folder that held records keeps one per article; a new folder takes them all.
                if not grows or last[_article_id(text.encode("utf-8"))] == index:
                    out.write(text)
    staged.wrote_records = True


def _same_file(first: Path, second: Path) -> bool:
    try:
        return first.resolve() == second.resolve()
    except OSError:
        return False
