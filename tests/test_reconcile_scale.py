"""Reconcile at scale: records spilled to disk between the passes give the in-memory outputs."""

from __future__ import annotations

import importlib.util
import json
import random
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli.main import main as cli_main
from pipeline.reconcile import cluster as cluster_module
from pipeline.reconcile import merge as merge_module
from pipeline.reconcile import spill as spill_module
from pipeline.reconcile.cluster import cluster_records, link_components, record_features, sort_records
from pipeline.reconcile.folder import desk_state
from pipeline.reconcile.merge import reconcile, reconcile_to_dir, write_outputs
from pipeline.reconcile.spill import RecordLines, RecordSpill, spilled_clusters
from pipeline.store.desk import Desk
from pipeline.store.runstore import RunStore
from schemas.record import IncidentRecord

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("incidents.jsonl", "conflicts.jsonl")


def _bench() -> Any:
    """The record generator the reconcile benchmark times (``benchmarks/reconcile_bench.py``)."""
    spec = importlib.util.spec_from_file_location(
        "reconcile_bench", REPO / "benchmarks" / "reconcile_bench.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def synthetic() -> list[IncidentRecord]:
    records: list[IncidentRecord] = _bench().synthetic_records(3000, seed=11)
    return records


def _files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in OUTPUTS}


@pytest.mark.slow  # seconds of real waiting; .ci/run runs the slow tests
def test_spilled_outputs_are_byte_identical_to_the_in_memory_ones(
    synthetic: list[IncidentRecord], tmp_path: Path
) -> None:
    write_outputs(reconcile(synthetic), tmp_path / "memory")
    shuffled = list(synthetic)
    random.Random(3).shuffle(shuffled)
    # A generator: read once, in an order of its own.
    counts = reconcile_to_dir((r for r in shuffled), tmp_path / "spilled")
    assert _files(tmp_path / "spilled") == _files(tmp_path / "memory")
    assert counts.records == len(synthetic)
    assert counts.incidents == len((tmp_path / "memory" / "incidents.jsonl").read_text().splitlines())
    assert counts.incidents > 400  # many incidents, not one big one
    # Nothing but the outputs is left in the folder: the spill file is gone.
    assert sorted(p.name for p in (tmp_path / "spilled").iterdir()) == sorted(OUTPUTS)


def test_spilled_clusters_are_the_in_memory_clusters(synthetic: list[IncidentRecord]) -> None:
    expected = cluster_records(synthetic)
    with RecordSpill() as spill:
        got = spilled_clusters(reversed(synthetic), spill)
        assert [c.id for c in got] == [c.id for c in expected]
        assert [list(c.joins) for c in got] == [list(c.joins) for c in expected]
        assert [c.article_ids for c in got] == [c.article_ids for c in expected]
        assert [list(c.records) for c in got[:50]] == [list(c.records) for c in expected[:50]]


def test_records_of_one_article_keep_their_order_when_spilled(
    synthetic: list[IncidentRecord], tmp_path: Path
) -> None:
    # Two extractions of one article: only their JSON orders them, and it must be read back.
    first = synthetic[0]
    data = first.model_dump(mode="json")
    data["what"]["event_type"]["value"] = "shooting (second extraction)"
    twin = IncidentRecord.model_validate(data)
    records = [first, *synthetic[1:200], twin]
    (expected,) = [c for c in cluster_records(records) if first.article_id in c.article_ids]
    with RecordSpill() as spill:
        (got,) = [c for c in spilled_clusters(iter(records), spill) if first.article_id in c.article_ids]
        assert list(got.records) == list(expected.records)
    assert twin in expected.records and first in expected.records
    write_outputs(reconcile(records), tmp_path / "memory")
    reconcile_to_dir(iter(records), tmp_path / "spilled")
    assert _files(tmp_path / "spilled") == _files(tmp_path / "memory")


def test_a_spilled_reconcile_holds_one_incidents_records_at_a_time(
    synthetic: list[IncidentRecord], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [r.model_dump_json() for r in synthetic[:600]]
    alive = 0
    most = 0
    largest_incident = 0

    def gone() -> None:
        nonlocal alive
        alive -= 1

    def watch(record: IncidentRecord) -> IncidentRecord:
        nonlocal alive
        alive += 1
        weakref.finalize(record, gone)
        return record

    def fresh() -> Iterator[IncidentRecord]:
        # Records parsed one at a time, as from records.jsonl.
        for line in lines:
            yield watch(IncidentRecord.model_validate_json(line))

    load = RecordSpill.load

    def watched_load(self: RecordSpill, rows: Any) -> list[IncidentRecord]:
        nonlocal most, largest_incident
        most = max(most, alive)
        largest_incident = max(largest_incident, len(rows))
        return [watch(record) for record in load(self, rows)]

    monkeypatch.setattr(spill_module.RecordSpill, "load", watched_load)
    reconcile_to_dir(fresh(), tmp_path)
    # When an incident is read back, the input records and earlier incidents are gone (the
    # previous incident's records may still be referenced until its line is written).
    assert 0 < largest_incident < 20
    assert most <= 2 * largest_incident


@pytest.fixture
def decided_folder(tmp_path: Path) -> tuple[Path, list[IncidentRecord]]:
    """A folder whose desk holds ids and a reviewer's decision on its incident."""
    path = REPO / "examples" / "tempe-traffic-stop" / "gold_records.jsonl"
    records = [IncidentRecord.model_validate_json(line) for line in path.read_text().splitlines()]
    folder = tmp_path / "desk"
    assert cli_main(["reconcile", str(path), "--out", str(folder)]) == 0
    incident = json.loads((folder / "incidents.jsonl").read_text().splitlines()[0])
    argv = ["decide", str(folder), "--incident", incident["id"], "--field", "subjects[0].place_of_death"]
    assert cli_main([*argv, "--value", "at the hospital", "--note", "ME report", "--by", "ak"]) == 0
    return folder, records


def test_a_spilled_reconcile_keeps_ids_and_applies_decisions_like_the_in_memory_one(
    decided_folder: tuple[Path, list[IncidentRecord]], tmp_path: Path
) -> None:
    folder, records = decided_folder
    runs: list[Callable[[Path, Any], Any]] = [
        lambda out, state: reconcile_to_dir(records, out, desk=state, spill=False),
        lambda out, state: reconcile_to_dir(iter(records), out, desk=state),
    ]
    results = []
    for n, run in enumerate(runs):
        out = tmp_path / f"out{n}"
        with RunStore(folder) as store:
            state = desk_state(Desk(store))
            run(out, state)
        results.append((_files(out), state.assignment.members, state.applied, state.stale))
    assert results[0] == results[1]
    assert results[0][2] == 1  # the decision was applied, not left stale


@pytest.mark.slow  # seconds of real waiting; .ci/run runs the slow tests
def test_incidents_judged_in_worker_processes_are_written_in_the_same_order_and_bytes(
    synthetic: list[IncidentRecord], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge_module, "PARALLEL_MIN_INCIDENTS", 2)
    write_outputs(reconcile(synthetic), tmp_path / "memory")
    counts = reconcile_to_dir(iter(synthetic), tmp_path / "workers", workers=3)
    assert _files(tmp_path / "workers") == _files(tmp_path / "memory")
    assert counts.verdicts == reconcile_to_dir(synthetic, tmp_path / "one", workers=1).verdicts


def test_decisions_are_applied_in_worker_processes_too(
    decided_folder: tuple[Path, list[IncidentRecord]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(merge_module, "PARALLEL_MIN_INCIDENTS", 1)
    folder, records = decided_folder
    with RunStore(folder) as store:
        state = desk_state(Desk(store))
        reconcile_to_dir(iter(records), tmp_path / "workers", desk=state, workers=2)
    assert (state.applied, state.stale) == (1, [])
    (incident,) = [
        json.loads(line) for line in (tmp_path / "workers" / "incidents.jsonl").read_text().splitlines()
    ]
    assert incident["merged"]["subjects"][0]["place_of_death"]["value"] == "at the hospital"


# --------------------------------------------------------------------------- records as JSON lines


def _reformatted(record: IncidentRecord) -> str:
    """A record's JSON as another writer might give it: keys in another order, spaces, a CRLF."""
    data = record.model_dump(mode="json")
    return json.dumps(dict(reversed(list(data.items()))), indent=None, separators=(", ", ": ")) + "\r\n"


def test_json_lines_parsed_by_workers_give_the_in_memory_outputs(
    synthetic: list[IncidentRecord], tmp_path: Path
) -> None:
    records = synthetic[:900]
    write_outputs(reconcile(records), tmp_path / "memory")
    for workers in (1, 2):
        lines = RecordLines([_reformatted(r) for r in reversed(records)])
        counts = reconcile_to_dir(lines, tmp_path / f"lines-{workers}", workers=workers)
        assert _files(tmp_path / f"lines-{workers}") == _files(tmp_path / "memory"), workers
        assert counts.records == len(records)
        assert lines.errors == []


def test_an_invalid_line_is_reported_with_its_number_and_the_rest_reconciled(
    synthetic: list[IncidentRecord], tmp_path: Path
) -> None:
    records = synthetic[:300]
    good = [r.model_dump_json() for r in records]
    lines = RecordLines([*good[:10], "", '{"article_id": "broken"', *good[10:20], "[1, 2]", *good[20:]])
    counts = reconcile_to_dir(lines, tmp_path / "lines", workers=2)
    write_outputs(reconcile(records), tmp_path / "memory")
    assert _files(tmp_path / "lines") == _files(tmp_path / "memory")
    assert counts.records == len(records)
    assert [error.line for error in lines.errors] == [12, 23]  # blank line 11 is no record, no error
    assert all(error.message for error in lines.errors)


def test_two_records_of_one_article_are_ordered_by_their_own_json_not_the_lines(
    synthetic: list[IncidentRecord], tmp_path: Path
) -> None:
    first = synthetic[0]
    data = first.model_dump(mode="json")
    data["what"]["event_type"]["value"] = "shooting (second extraction)"
    twin = IncidentRecord.model_validate(data)
    records = [first, *synthetic[1:200], twin]
    write_outputs(reconcile(records), tmp_path / "memory")
    # The twin's line sorts first as text, the first record's JSON first as a record.
    lines = RecordLines([_reformatted(twin), *(r.model_dump_json() for r in records[:-1])])
    reconcile_to_dir(lines, tmp_path / "lines", workers=1)
    assert _files(tmp_path / "lines") == _files(tmp_path / "memory")


def test_iterating_json_lines_gives_the_records_and_notes_the_bad_ones() -> None:
    record_line = '{"article_id": "a1"}'
    lines = RecordLines([record_line, "not json"])
    with pytest.raises(Exception):  # noqa: B017 - a1 is not a complete record either
        IncidentRecord.model_validate_json(record_line)
    assert list(lines) == []
    assert [error.line for error in lines.errors] == [1, 2]


def test_pairs_linked_in_worker_processes_give_the_same_incidents_and_join_reasons(
    synthetic: list[IncidentRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    features = [record_features(r) for r in sort_records(synthetic)]
    one = link_components(features, workers=1)
    monkeypatch.setattr(cluster_module, "PARALLEL_MIN_RECORDS", 0)
    monkeypatch.setattr(cluster_module, "LINK_CHUNK", 97)  # many spans, unevenly cut
    forked = link_components(features, workers=2)
    assert forked == one
    assert len(set(one[0])) < len(features) / 3  # records did link into incidents
