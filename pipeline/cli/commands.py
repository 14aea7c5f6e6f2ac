"""The commands behind ``triangulate``: each takes typed values, calls a stage, prints what it did
and returns the exit code. Flag parsing stays in :mod:`pipeline.cli.main`."""

from __future__ import annotations

import contextlib
import errno
import getpass
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.outputs.evaluate import format_report, load_gold, score_records
from pipeline.outputs.evaluate import load_records as load_eval_records
from pipeline.outputs.export import _export_to_db, write_files, write_run_store_tables
from pipeline.outputs.report import write_report
from pipeline.outputs.rundata import ExportError, decision_states, load_run
from pipeline.outputs.show import show_article
from pipeline.reconcile.folder import NotUtf8, reconcile_into, staged_records
from pipeline.reconcile.given import find_articles, ground_given, needs_grounding
from pipeline.reconcile.merge import summary
from pipeline.review.desk import NothingToReconcile, record_decision
from pipeline.store.desk import Desk, now
from pipeline.store.runfolder import RunFolder
from pipeline.store.runlock import RunFolderBusy, run_folder_lock
from pipeline.store.runstore import RunStore, store_path
from schemas import Incident, IncidentRecord
from schemas.desk import Decision, DecisionAction
from schemas.incident import FLAGGED_VERDICTS, Scalar


def reconcile_command(
    records_path: Path,
    out_dir: Path,
    *,
    wait: float = 0,
    article_dirs: Sequence[Path] = (),
    engine: str = "local",
    ray_address: str | None = None,
) -> int:
    """``triangulate reconcile RECORDS.jsonl --out DIR``: 0 done, 1 some lines invalid (the rest
    reconciled), 2 nothing done (no such file, not UTF-8, ``DIR`` in use by another command, or
    ``--engine ray`` without Ray installed).

    ``engine="ray"`` clusters and judges on a Ray cluster (``pipeline.reconcile.ray_engine``):
    one started here, or the one at ``ray_address``."""
    if not records_path.is_file():
        print(f"error: {records_path}: no such file", file=sys.stderr)
        return 2
    if engine == "ray":
        from pipeline.reconcile.ray_engine import RAY_MISSING, RayMissing, require_ray

        try:
            require_ray()
        except RayMissing:
            print(f"error: {RAY_MISSING}", file=sys.stderr)
            return 2
    try:
        with run_folder_lock(out_dir, command="reconcile", wait=wait):
            return _reconcile_locked(records_path, out_dir, article_dirs, engine, ray_address)
    except RunFolderBusy as busy:
        print(f"error: {busy}; wait for it or use another --out", file=sys.stderr)
        return 2


def _reconcile_locked(
    records_path: Path, out_dir: Path, article_dirs: Sequence[Path], engine: str, ray_address: str | None
) -> int:
    # Read line by line: the records wait in a file in DIR, never all in memory, and are
    # reconciled from there in bounded memory (pipeline.reconcile.folder.staged_records).
    try:
        with staged_records(records_path, out_dir, article_dirs=article_dirs) as staged:
            for error in staged.errors:
                print(f"error: {records_path}:{error.line}: invalid record: {error.message}", file=sys.stderr)
            if staged.grounding is not None:
                print(staged.grounding.summary(), file=sys.stderr)
            if staged.earlier is not None:
                print(
                    f"adding {staged.added} new record(s) to the {staged.earlier} already in {out_dir}",
                    file=sys.stderr,
                )
            folder = RunFolder(out_dir)
            wrote = [folder.incidents, folder.conflicts] + ([folder.records] if staged.wrote_records else [])
            if engine == "ray":
                from pipeline.reconcile.ray_engine import (
                    CONFLICTS_PARQUET,
                    INCIDENTS_PARQUET,
                    RayEngine,
                    RayUnreachable,
                )

                # Started after the records are read and checked, so a bad input costs no cluster start.
                try:
                    on_ray = RayEngine(ray_address, out_dir=out_dir)
                except RayUnreachable as unreachable:
                    print(f"error: {unreachable}", file=sys.stderr)
                    return 2
                with on_ray:
                    outcome = reconcile_into(staged.lines, out_dir, engine=on_ray)
                wrote += [out_dir / INCIDENTS_PARQUET, out_dir / CONFLICTS_PARQUET]
            else:
                outcome = reconcile_into(staged.lines, out_dir)
            errors = staged.errors
    except NotUtf8 as error:
        print(f"error: {records_path}: {error}", file=sys.stderr)
        return 2
    print(summary(outcome.counts))
    print(outcome.summary())
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
        if RunFolder(out_dir).kind == "run":
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


def _evidence_of(incident: Incident, field_path: str) -> list[dict[str, Scalar]]:
    """What the reviewer saw of a field: each value with its articles' quotes."""
    verdict = next((f for f in incident.fields if f.path == field_path), None)
    if verdict is None:
        return []
    return [
        {
            "value": value.value,
            "article_id": citation["article_id"],
            "outlet": citation["outlet"],
            "quote": citation["quote"],
        }
        for value in verdict.values
        for citation in value.citations
    ]


def decide_command(
    out_dir: Path,
    incident_id: str,
    *,
    field_path: str | None = None,
    value: str | None = None,
    accept: str | None = None,
    resolved: bool = False,
    merge_with: str | None = None,
    split_articles: Sequence[str] = (),
    note: str = "",
    by: str | None = None,
) -> int:
    """``triangulate decide``: record one decision and reconcile the folder again."""
    given = {
        "--value": value is not None,
        "--accept": accept is not None,
        "--resolved": resolved,
        "--merge-with": merge_with is not None,
        "--split": bool(split_articles),
    }
    chosen = [flag for flag, present in given.items() if present]
    if len(chosen) != 1:
        print(f"error: give exactly one of {', '.join(given)}", file=sys.stderr)
        return 2
    if chosen[0] in ("--value", "--accept", "--resolved") and not field_path:
        print(f"error: {chosen[0]} needs --field PATH", file=sys.stderr)
        return 2
    folder = RunFolder(out_dir)
    if not folder.has_incidents():
        print(
            f"error: {out_dir} has no incidents to decide on; run or reconcile into it first", file=sys.stderr
        )
        return 2
    incidents = {incident.id: incident for incident in folder.read_incidents()}
    with run_folder_lock(out_dir, command="decide"):
        with RunStore(out_dir) as store:
            desk = Desk(store)
            current = desk.resolve(incident_id)
            if current not in incidents:
                print(f"error: no incident {incident_id} in {out_dir}", file=sys.stderr)
                return 2
            incident = incidents[current]
            if field_path and not any(f.path == field_path for f in incident.fields):
                paths = ", ".join(f.path for f in incident.fields if f.verdict in FLAGGED_VERDICTS)
                print(
                    f"error: incident {current} has no field {field_path}; flagged: {paths}", file=sys.stderr
                )
                return 2
            if merge_with and desk.resolve(merge_with) not in incidents:
                print(f"error: no incident {merge_with} in {out_dir}", file=sys.stderr)
                return 2
            action: DecisionAction = (
                "set" if value is not None else "accept" if accept is not None
                else "resolved" if resolved else "merge" if merge_with else "split"
            )  # fmt: skip
            wanted = Decision(
                at=now(),
                by=by or getpass.getuser(),
                incident_id=current,
                action=action,
                field_path=field_path if action in ("set", "accept", "resolved") else None,
                value=_typed(value if value is not None else accept),
                note=note,
                other_incident=merge_with,
                # A merge carries both incidents' articles as they are now, so it still finds
                # them in a folder whose incident ids were never recorded by the desk.
                article_ids=(
                    sorted({*incident.article_ids, *incidents[desk.resolve(merge_with)].article_ids})
                    if merge_with
                    else list(split_articles)
                ),
                evidence=_evidence_of(incident, field_path) if field_path else [],
            )
        try:
            decision, outcome = record_decision(out_dir, wanted)
        except NothingToReconcile as nothing:
            print(f"error: {nothing}", file=sys.stderr)
            return 1
        where = f"{current} {field_path}" if field_path else current
        print(f"decision {decision.seq} recorded: {action} on {where}")
        print(f"{summary(outcome.counts)}; {outcome.summary()}")
        return 0


def _typed(text: str | None) -> Scalar:
    """A value as given on the command line: a number or true/false when it reads as one."""
    if text is None:
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return text


def decisions_command(out_dir: Path, *, as_json: bool = False) -> int:
    """``triangulate decisions DIR``: 0 listed (even none), 2 DIR is no run folder."""
    folder = RunFolder(out_dir)
    if folder.kind == "none" and not folder.has_store():
        print(f"error: {folder.describe()}", file=sys.stderr)
        return 2
    incidents = list(folder.read_incidents()) if folder.has_incidents() else []
    # Without a run store there is no decision, and listing must not create one.
    found = decision_states(folder, incidents) if folder.has_store() else []
    states = [(s.decision, s.state) for s in found]
    for decision, state in states:
        if as_json:
            print(json.dumps({**decision.model_dump(mode="json"), "state": state}, ensure_ascii=False))
            continue
        what = decision.field_path or (
            f"merge with {decision.other_incident}" if decision.action == "merge"
            else "split " + ", ".join(decision.article_ids)
        )  # fmt: skip
        shown = f" = {decision.value!r}" if decision.action in ("set", "accept") else ""
        print(
            f"{decision.seq:>4}  {decision.at:%Y-%m-%d %H:%M}  {decision.by:<10} {decision.incident_id}  "
            f"{decision.action} {what}{shown}  [{state}]"
        )
        if decision.note:
            print(f"      note: {decision.note}")
    if not as_json:
        print(f"{len(states)} decision(s)")
    return 0
