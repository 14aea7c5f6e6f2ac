"""The run folder: the one place that knows what a run folder holds, what each file is called and
how its JSONL files are read back.

``triangulate run --out DIR`` (and ``reconcile``, ``export``, ``report``, ``show``)
read and write these paths through :class:`RunFolder`; no other module spells
a file name out.

    DIR/
      triangulate.sqlite   the run store (pipeline.store.runstore)
      records.jsonl        one record per extracted article
      failures.jsonl       one row per article that could not be extracted
      incidents.jsonl      one merged record per incident (pipeline.reconcile.merge)
      conflicts.jsonl      one line per flagged field
      report.html          the review page (pipeline.outputs.report)
      export/              dashboard files (pipeline.outputs.export)
      .triangulate.lock    held while a command writes to the folder (pipeline.store.runlock)

Two kinds of folder are runs (:attr:`RunFolder.kind`):

* ``"run"``: a folder ``triangulate run`` wrote. Its run store is the source of truth;
  ``records.jsonl`` / ``failures.jsonl`` are rewritten from it after every run.
* ``"reconcile"``: a folder ``triangulate reconcile RECORDS --out DIR`` wrote, with no run store:
  ``records.jsonl`` beside the ``incidents.jsonl`` / ``conflicts.jsonl`` reconciled from it.

Anything else (``"none"``) holds no run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel

    from schemas import Conflict, FailureRow, Incident, IncidentRecord

STORE_FILENAME = "triangulate.sqlite"
RECORDS_FILENAME = "records.jsonl"
FAILURES_FILENAME = "failures.jsonl"
INCIDENTS_FILENAME = "incidents.jsonl"
CONFLICTS_FILENAME = "conflicts.jsonl"
REPORT_FILENAME = "report.html"
EXPORT_DIRNAME = "export"
LOCK_FILENAME = ".triangulate.lock"

FolderKind = Literal["run", "reconcile", "none"]

_Model = TypeVar("_Model", bound="BaseModel")


class RunFolderError(ValueError):
    """A file of the run folder does not hold what its name says; the message names the file and line."""


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder, and its JSONL files read back as typed rows."""

    root: Path

    @property
    def store(self) -> Path:
        return self.root / STORE_FILENAME

    @property
    def records(self) -> Path:
        return self.root / RECORDS_FILENAME

    @property
    def failures(self) -> Path:
        return self.root / FAILURES_FILENAME

    @property
    def incidents(self) -> Path:
        return self.root / INCIDENTS_FILENAME

    @property
    def conflicts(self) -> Path:
        return self.root / CONFLICTS_FILENAME

    @property
    def report(self) -> Path:
        return self.root / REPORT_FILENAME

    @property
    def export_dir(self) -> Path:
        return self.root / EXPORT_DIRNAME

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILENAME

    def has_store(self) -> bool:
        return self.store.is_file()

    def has_records(self) -> bool:
        return self.records.is_file()

    def has_incidents(self) -> bool:
        return self.incidents.is_file()

    def has_conflicts(self) -> bool:
        return self.conflicts.is_file()

    # -- what the folder is --

    def has_runs(self) -> bool:
        """Whether the run store holds an extraction run. A store that ``reconcile`` made for the
        editor's desk (incident ids, decisions) holds none: its folder's records are records.jsonl."""
        if not self.has_store():
            return False
        import sqlite3

        try:
            with contextlib.closing(sqlite3.connect(f"{self.store.as_uri()}?mode=ro", uri=True)) as db:
                return db.execute("SELECT 1 FROM runs LIMIT 1").fetchone() is not None
        except sqlite3.Error:
            # No runs table yet (a store being created) or an unreadable file: the run store's
            # own checks report the latter; here it is simply not a run.
            return False

    @property
    def kind(self) -> FolderKind:
        """``"run"`` (a run store holding a run), ``"reconcile"`` (records.jsonl, and at most a
        store for the editor's desk) or ``"none"``."""
        if self.has_runs():
            return "run"
        if self.has_records():
            return "reconcile"
        if self.has_store():
            return "run"
        return "none"

    def describe(self) -> str:
        """One line saying what the folder holds, for messages and ``RunData``."""
        kind = self.kind
        if kind == "run":
            return f"{self.root}: a run folder (run store {self.store.name})"
        if kind == "reconcile":
            reconciled = "with" if self.has_incidents() else "without"
            return (
                f"{self.root}: a reconcile folder ({self.records.name} {reconciled} "
                f"{self.incidents.name}, no run store)"
            )
        if self.has_incidents():
            return (
                f"{self.root} holds no run: {self.incidents.name} but neither {self.store.name} nor "
                f"the {self.records.name} it was reconciled from"
            )
        return f"{self.root} holds no run: neither {self.store.name} nor {self.records.name}"

    # -- the JSONL files, read back --
    # A missing file reads as empty: a reconcile folder has no failures.jsonl, and a run without
    # records has no incidents.jsonl. Whether a missing file matters is the reader's decision.

    def read_records(self) -> Iterator[IncidentRecord]:
        from schemas import IncidentRecord

        return _read_jsonl(self.records, IncidentRecord)

    def read_failures(self) -> Iterator[FailureRow]:
        from schemas import FailureRow

        return _read_jsonl(self.failures, FailureRow)

    def read_incidents(self) -> Iterator[Incident]:
        from schemas import Incident

        return _read_jsonl(self.incidents, Incident)

    def read_conflicts(self) -> Iterator[Conflict]:
        from schemas import Conflict

        return _read_jsonl(self.conflicts, Conflict)


def _read_jsonl(path: Path, model: type[_Model]) -> Iterator[_Model]:
    from pydantic import ValidationError

    if not path.is_file():
        return
    with path.open(encoding="utf-8") as handle:
        number = 0
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield model.model_validate_json(line)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(str(part) for part in first["loc"]) or "line"
                    raise RunFolderError(
                        f"{path}:{number}: not a valid {model.__name__} ({where}: {first['msg']})"
                    ) from exc
        except UnicodeDecodeError as exc:
            # Decoding runs ahead of the lines handed out, so only "after the last good line" is sure.
            raise RunFolderError(f"{path}: not UTF-8 text after line {number} ({exc.reason})") from exc
