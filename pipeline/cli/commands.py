"""The commands behind ``triangulate``: each takes typed values, calls a stage, prints what it did
and returns the exit code. Flag parsing stays in :mod:`pipeline.cli.main`."""

from __future__ import annotations

import contextlib
import errno
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.common.atomic import replaced_together
from pipeline.outputs.evaluate import format_report, load_gold, score_records
from pipeline.outputs.evaluate import load_records as load_eval_records
from pipeline.outputs.export import _export_to_db, write_files, write_run_store_tables
from pipeline.outputs.report import write_report
from pipeline.outputs.rundata import ExportError, load_run
from pipeline.outputs.show import show_article
from pipeline.reconcile.given import find_articles, ground_given, needs_grounding
from pipeline.reconcile.merge import load_records, reconcile_to_dir, summary
from pipeline.store.runfolder import RunFolder
from pipeline.store.runlock import RunFolderBusy, run_folder_lock
from pipeline.store.runstore import RunStore, store_path
from schemas import IncidentRecord


def reconcile_command(
    records_path: Path, out_dir: Path, *, wait: float = 0, article_dirs: Sequence[Path] = ()
) -> int:
    """``triangulate reconcile RECORDS.jsonl --out DIR``: 0 done, 1 some lines invalid (the rest
    reconciled), 2 nothing done (no such file, not UTF-8, or ``DIR`` in use by another command)."""
    if not records_path.is_file():
        print(f"error: {records_path}: no such file", file=sys.stderr)
        return 2
    try:
        with run_folder_lock(out_dir, command="reconcile", wait=wait):
            return _reconcile_locked(records_path, out_dir, article_dirs)
    except RunFolderBusy as busy:
        print(f"error: {busy}; wait for it or use another --out", file=sys.stderr)
        return 2


def _reconcile_locked(records_path: Path, out_dir: Path, article_dirs: Sequence[Path]) -> int:
    try:
        records, errors = load_records(records_path)
    except UnicodeDecodeError as exc:
        print(f"error: {records_path}: not UTF-8 text ({exc.reason} at byte {exc.start})", file=sys.stderr)
        return 2
    for error in errors:
        print(f"error: {records_path}:{error.line}: invalid record: {error.message}", file=sys.stderr)
    records = _ground_given(records, records_path, out_dir, article_dirs)
    counts = reconcile_to_dir(records, out_dir)
    folder = RunFolder(out_dir)
    wrote = [folder.incidents, folder.conflicts]
    if not folder.has_store() and not _same_file(records_path, folder.records):
        # Make DIR a run folder that `report` and `export` accept: they read the records from
        # records.jsonl when there is no run store (a run folder's records come from its store).
        with replaced_together() as files, files.open_text(folder.records) as out:
            for record in records:
                out.write(record.model_dump_json() + "\n")
        wrote.append(folder.records)
    print(summary(counts))
    print("wrote " + ", ".join(str(path) for path in wrote))
    if errors:
        print(f"{len(errors)} invalid line(s) skipped; fix them and run again", file=sys.stderr)
        return 1
    return 0


def _ground_given(
    records: list[IncidentRecord], records_path: Path, out_dir: Path | None, article_dirs: Sequence[Path]
) -> list[IncidentRecord]:
    """Records without grounding, grounded against their articles where the texts can be found."""
    if not any(needs_grounding(record) for record in records):
        return records
    articles = find_articles(records, records_path=records_path, out_dir=out_dir, article_dirs=article_dirs)
    grounded, outcome = ground_given(records, articles)
    print(outcome.summary(), file=sys.stderr)
    return grounded


def _same_file(first: Path, second: Path) -> bool:
    try:
        return first.resolve() == second.resolve()
    except OSError:
        return False


def export_command(
    out_dir: Path,
    *,
    formats: Sequence[str] = (),
    to: Path | None = None,
    db: str | None = None,
    wait: float = 0,
) -> int:
    """``triangulate export DIR [--format parquet|csv|sqlite ...] [--to PATH] [--db URL]``.

    Always refreshes the tables inside the run store (when the directory has one);
    ``formats`` adds files under ``to`` (default ``DIR/export``); ``db`` upserts into a database.
    Exit codes: 0 done; 1 the run or a destination cannot take the export (``ExportError``);
    2 nothing done because ``DIR`` is in use by another command (``run``, another export).
    """
    with contextlib.ExitStack() as stack:
        # The run folder is locked while it is read and written: an export during a run would
        # write a snapshot of a half-finished run into its store. (No folder: load_run says so.)
        if out_dir.is_dir():
            try:
                stack.enter_context(run_folder_lock(out_dir, command="export", wait=wait))
            except RunFolderBusy as busy:
                print(f"error: {busy}; wait for it to finish", file=sys.stderr)
                return 2
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise
                # A folder this user cannot write, without a lock file: no command holds it
                # (every holder creates the file first), so the export reads it as it is.
                print(
                    f"warning: cannot lock {out_dir} ({exc.strerror}); exporting without it", file=sys.stderr
                )
        return _export_locked(out_dir, list(formats), to, db)


def _export_locked(out_dir: Path, formats: list[str], to: Path | None, db: str | None) -> int:
    try:
        data = load_run(out_dir)
        for warning in data.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if RunFolder(out_dir).has_store():
            counts = write_run_store_tables(out_dir, data)
            print(f"run store {RunFolder(out_dir).store}: {counts.summary()}")
        elif not formats and not db:
            formats = ["parquet", "csv"]
        if formats:
            target = to if to is not None else out_dir / "export"
            for fmt, file_counts in write_files(data, target, formats).items():
                print(f"{fmt} -> {target}: {file_counts.summary()}")
        if db:
            db_counts = _export_to_db(data, db)
            print(f"database: {db_counts.summary()}")
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def report_command(out_dir: Path, html: Path | None = None) -> int:
    """``triangulate report DIR [--html PATH]``: 0 written, 1 the folder is not a run."""
    try:
        target = write_report(out_dir, html)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {target}")
    return 0


def show_command(
    run_dir: Path, article: str, *, prompt: bool = False, as_json: bool = False, all_runs: bool = False
) -> int:
    """``triangulate show DIR ARTICLE``: exit 0 when the article was shown, 2 on a usage error."""
    db_file = store_path(run_dir)
    if not db_file.is_file():
        print(f"error: no run store in {run_dir} (looked for {db_file})", file=sys.stderr)
        return 2
    with RunStore(db_file) as store:
        return show_article(store, article, prompt=prompt, as_json=as_json, all_runs=all_runs, out=sys.stdout)


def eval_command(
    records_path: Path, gold_path: Path, *, json_out: Path | None = None, article_dirs: Sequence[Path] = ()
) -> int:
    """``triangulate eval RECORDS.jsonl GOLD.json [--json OUT]``: 0 on success, 2 on unusable input."""
    try:
        records, bad = load_eval_records(records_path)
        records = _ground_given(records, records_path, None, article_dirs)
        gold = load_gold(gold_path)
        report = score_records(records, gold, unreadable_lines=bad)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
        print(f"report written to {json_out}")
    return 0
