"""The desk's actions, shared by ``triangulate decide`` and the review app: record a decision and
bring the folder's outputs up to date with it."""

from __future__ import annotations

from pathlib import Path

from pipeline.outputs.export import write_run_store_tables
from pipeline.reconcile.folder import FolderReconcile, reconcile_into
from pipeline.store.desk import Desk
from pipeline.store.runfolder import RunFolder
from pipeline.store.runstore import RunStore
from schemas.desk import Decision


class NothingToReconcile(Exception):
    """The folder holds no records to reconcile (the message says what it holds)."""


def refresh_folder(out_dir: Path) -> FolderReconcile:
    """Reconcile a run folder again from its own records (the run store's, or records.jsonl), so
    its incidents, conflicts and dashboard tables show the latest decisions."""
    folder = RunFolder(out_dir)
    if folder.kind == "run":
        with RunStore(out_dir) as store:
            records = store.records()
    elif folder.has_records():
        records = list(folder.read_records())
    else:
        raise NothingToReconcile(folder.describe())
    outcome = reconcile_into(records, out_dir)
    if folder.kind == "run":
        write_run_store_tables(out_dir)
    return outcome


def record_decision(out_dir: Path, decision: Decision) -> tuple[Decision, FolderReconcile]:
    """Append ``decision`` to the folder's run store and reconcile the folder again; returns the
    decision with its sequence number, and what the reconcile did. The caller holds the folder's
    lock (``pipeline.store.runlock``)."""
    with RunStore(out_dir) as store:
        recorded = Desk(store).add_decision(decision)
    return recorded, refresh_folder(out_dir)
