"""Reading a run folder back: RunFolder knows what a folder holds, load_run reads it and re-runs
nothing.

A folder ``triangulate run`` wrote (a run store) and one ``triangulate reconcile`` wrote
(records.jsonl + incidents.jsonl) are both runs; records that were never reconciled are an error
naming the command to run, never a reason to reconcile behind the user's back.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from export_fixtures import LONE_TEXT, hand_records, load_articles, lone_article_and_record, write_run

from pipeline.cli.main import main as cli_main
from pipeline.ingest.sources import iter_sources
from pipeline.outputs.rundata import ExportError, load_run
from pipeline.reconcile.merge import reconcile, reconcile_to_dir
from pipeline.store.runfolder import RunFolder, RunFolderError
from schemas import Article, IncidentRecord


def write_records(folder: Path, records: list[IncidentRecord]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "records.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in records))
    return folder


def reconcile_folder(folder: Path, records: list[IncidentRecord]) -> Path:
    """What ``triangulate reconcile RECORDS --out DIR`` leaves: records.jsonl, incidents, conflicts."""
    write_records(folder, records)
    reconcile_to_dir(records, folder)
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def command_in(message: str) -> list[str]:
    """The command a message names between backticks, as argv for pipeline.cli.main (no program name)."""
    found = re.search(r"`triangulate ([^`]+)`", message)
    assert found, message
    return shlex.split(found.group(1))


@pytest.fixture(scope="module")
def tempe_records() -> list[IncidentRecord]:
    return hand_records(load_articles())


# --------------------------------------------------------------------------- what a folder is


def test_a_folder_is_a_run_a_reconcile_folder_or_no_run_by_what_it_holds(
    tmp_path: Path, tempe_records: list[IncidentRecord]
) -> None:
    empty = RunFolder(tmp_path / "empty")
    assert empty.kind == "none"
    assert "holds no run" in empty.describe()

    merged = RunFolder(reconcile_folder(tmp_path / "merged", tempe_records))
    assert merged.kind == "reconcile"
    assert "reconcile folder" in merged.describe() and "with incidents.jsonl" in merged.describe()

    article, record = lone_article_and_record()
    run = RunFolder(write_run(tmp_path / "run", [record], [article]))
    assert run.kind == "run"
    assert "run store triangulate.sqlite" in run.describe()


def test_the_jsonl_files_read_back_as_the_rows_written(
    tmp_path: Path, tempe_records: list[IncidentRecord]
) -> None:
    folder = RunFolder(reconcile_folder(tmp_path, tempe_records))
    expected = reconcile(tempe_records)
    assert list(folder.read_records()) == tempe_records
    assert list(folder.read_incidents()) == expected.incidents
    assert list(folder.read_conflicts()) == expected.conflicts
    assert list(folder.read_failures()) == []  # a reconcile folder has no failures.jsonl


def test_a_line_that_is_not_a_record_is_named_by_file_and_line(
    tmp_path: Path, tempe_records: list[IncidentRecord]
) -> None:
    reconcile_folder(tmp_path, tempe_records)
    with (tmp_path / "records.jsonl").open("a") as handle:
        handle.write("\n" + '{"article_id": "x"}\n')
    bad_line = len(tempe_records) + 2
    with pytest.raises(RunFolderError, match=rf"records\.jsonl:{bad_line}: not a valid IncidentRecord"):
        list(RunFolder(tmp_path).read_records())
    with pytest.raises(ExportError, match=rf"records\.jsonl:{bad_line}: not a valid IncidentRecord"):
        load_run(tmp_path)


# --------------------------------------------------------------------------- no silent re-runs


def test_records_never_reconciled_are_refused_with_the_command_that_reconciles_them(
    tmp_path: Path, tempe_records: list[IncidentRecord]
) -> None:
    folder = write_records(tmp_path / "records only", tempe_records)
    before = snapshot(folder)
    with pytest.raises(ExportError) as refused:
        load_run(folder)
    message = str(refused.value)
    assert "no incidents.jsonl" in message
    assert command_in(message) == ["reconcile", str(folder / "records.jsonl"), "--out", str(folder)]
    assert snapshot(folder) == before  # nothing reconciled or written behind the user's back

    assert cli_main(command_in(message)) == 0
    data = load_run(folder)
    assert data.incidents.incidents == reconcile(tempe_records).incidents


def test_a_run_store_whose_records_were_never_reconciled_is_refused_too(tmp_path: Path) -> None:
    article, record = lone_article_and_record()
    folder = write_run(tmp_path / "run", [record], [article])
    (folder / "incidents.jsonl").unlink()  # as `triangulate run --no-reconcile` leaves it
    (folder / "conflicts.jsonl").unlink()
    before = snapshot(folder)
    with pytest.raises(ExportError) as refused:
        load_run(folder)
    assert command_in(str(refused.value)) == [
        "reconcile",
        str(folder / "records.jsonl"),
        "--out",
        str(folder),
    ]
    assert snapshot(folder) == before


def test_a_folder_without_records_needs_no_reconcile_and_has_no_incidents(tmp_path: Path) -> None:
    folder = write_records(tmp_path, [])
    data = load_run(folder)
    assert (data.records, data.incidents.incidents, data.incidents.conflicts) == ([], [], [])
    assert data.warnings == []


def test_records_newer_than_the_incidents_load_with_a_warning_naming_the_command(
    tmp_path: Path, tempe_records: list[IncidentRecord]
) -> None:
    article, lone = lone_article_and_record()
    folder = reconcile_folder(tmp_path, tempe_records)
    write_records(folder, [*tempe_records, lone])
    data = load_run(folder)
    newer = [w for w in data.warnings if "newer than incidents.jsonl" in w]
    assert len(newer) == 1 and newer[0].startswith("1 record(s)")
    assert command_in(newer[0])[0] == "reconcile"
    assert lone.article_id not in data.incidents.incident_of_article


def test_incidents_without_their_conflicts_file_load_with_a_warning(
    tmp_path: Path, tempe_records: list[IncidentRecord]
) -> None:
    folder = reconcile_folder(tmp_path, tempe_records)
    (folder / "conflicts.jsonl").unlink()
    data = load_run(folder)
    assert data.incidents.conflicts == []
    assert any("incidents.jsonl without conflicts.jsonl" in w for w in data.warnings)


def test_incidents_without_the_records_they_came_from_are_no_run(
    tmp_path: Path, tempe_records: list[IncidentRecord]
) -> None:
    reconcile_to_dir(tempe_records, tmp_path)
    with pytest.raises(ExportError, match="holds no run: incidents.jsonl but neither"):
        load_run(tmp_path)


# --------------------------------------------------------------------------- article texts without a store


def test_without_a_store_article_texts_are_reread_from_their_files_and_it_says_so(
    tmp_path: Path, tempe_records: list[IncidentRecord]
) -> None:
    data = load_run(reconcile_folder(tmp_path, tempe_records))
    assert data.kind == "reconcile"
    assert {a.id for a in load_articles().all} == set(data.articles)
    assert [w for w in data.warnings if "re-read" in w] == [
        f"no run store in {tmp_path}: article texts were re-read from the {len(tempe_records)} source "
        "file(s) its records.jsonl names, to show quotes in context"
    ]


def test_a_source_file_changed_since_extraction_is_not_taken_for_the_text_its_record_cites(
    tmp_path: Path,
) -> None:
    source = tmp_path / "harlow.txt"
    source.write_text(LONE_TEXT, encoding="utf-8")
    (article,) = [a for a in iter_sources([source]) if isinstance(a, Article)]
    _, lone = lone_article_and_record()
    # The lone record, as extracted from this file (its id is the hash of the text as read).
    here = {"article_id": article.id, "source_path": str(source)}
    record = lone.model_copy(update={**here, "provenance": lone.provenance.model_copy(update=here)})
    folder = reconcile_folder(tmp_path / "merged", [record])
    assert load_run(folder).articles == {article.id: article}

    source.write_text(LONE_TEXT.replace("feed store", "hardware store"), encoding="utf-8")
    data = load_run(folder)
    assert data.articles == {}
    assert any("1 article text(s) not found" in w for w in data.warnings)


def test_a_run_store_folder_reads_article_texts_from_the_store_only(tmp_path: Path) -> None:
    article, record = lone_article_and_record()  # its source path names no file anywhere
    folder = write_run(tmp_path / "run", [record], [article])
    data = load_run(folder)
    assert data.kind == "run"
    assert data.articles == {article.id: article}
    assert data.warnings == []
