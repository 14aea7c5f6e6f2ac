"""The run folder: the one place that knows what a run folder holds and what each file is called.

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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STORE_FILENAME = "triangulate.sqlite"
RECORDS_FILENAME = "records.jsonl"
FAILURES_FILENAME = "failures.jsonl"
INCIDENTS_FILENAME = "incidents.jsonl"
CONFLICTS_FILENAME = "conflicts.jsonl"
REPORT_FILENAME = "report.html"
EXPORT_DIRNAME = "export"
LOCK_FILENAME = ".triangulate.lock"


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder."""

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
