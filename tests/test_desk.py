"""The editor's desk: incident ids that last, a folder that grows, and reviewers' decisions that
every later reconcile re-applies (and flags, never drops, when they no longer apply)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.cli.main import main as cli_main
from pipeline.reconcile.cluster import Cluster, incident_id
from pipeline.reconcile.stable import assign_ids
from pipeline.store.runfolder import RunFolder
from schemas import Incident, IncidentRecord

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tempe-traffic-stop"
AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def gold_lines() -> list[str]:
    return (EXAMPLE / "gold_records.jsonl").read_text(encoding="utf-8").splitlines()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def incidents(folder: Path) -> list[Incident]:
    return list(RunFolder(folder).read_incidents())


def reconcile(records: Path, out: Path) -> None:
    assert cli_main(["reconcile", str(records), "--out", str(out)]) == 0


def place_of_death(incident: Incident) -> dict[str, object]:
    verdict = next(f for f in incident.fields if f.path == "subjects[0].place_of_death")
    return verdict.model_dump(mode="json")


# --------------------------------------------------------------------------- lasting ids


def test_an_incident_keeps_its_id_when_the_rest_of_its_articles_join(tmp_path: Path) -> None:
    lines = gold_lines()
    out = tmp_path / "desk"
    reconcile(write_lines(tmp_path / "first.jsonl", lines[:3]), out)
    (first,) = incidents(out)
    reconcile(write_lines(tmp_path / "all.jsonl", lines), out)
    (after,) = incidents(out)
    assert after.id == first.id
    assert len(after.article_ids) == 6
    assert first.id == incident_id(first.article_ids), "a new incident is named after its members"


def test_reconciling_more_records_into_a_folder_adds_to_it_and_duplicates_nothing(tmp_path: Path) -> None:
    lines = gold_lines()
    out = tmp_path / "desk"
    reconcile(write_lines(tmp_path / "a.jsonl", lines[:3]), out)
    reconcile(write_lines(tmp_path / "b.jsonl", lines[3:]), out)
    reconcile(write_lines(tmp_path / "b-again.jsonl", lines[3:]), out)
    records = list(RunFolder(out).read_records())
    assert sorted(r.article_id for r in records) == sorted(
        IncidentRecord.model_validate_json(x).article_id for x in lines
    )
    (incident,) = incidents(out)
    assert len(incident.article_ids) == 6


def test_the_change_log_says_when_an_incident_was_created_and_who_joined(tmp_path: Path) -> None:
    lines = gold_lines()
    out = tmp_path / "desk"
    reconcile(write_lines(tmp_path / "a.jsonl", lines[:3]), out)
    reconcile(write_lines(tmp_path / "b.jsonl", lines[3:]), out)
    with sqlite3.connect(RunFolder(out).store) as db:
        log = db.execute(
            "SELECT incident_id, change, article_ids_json FROM incident_changes ORDER BY seq"
        ).fetchall()
    (incident,) = incidents(out)
    assert [(row[0], row[1]) for row in log] == [(incident.id, "created"), (incident.id, "joined")]
    assert len(json.loads(log[1][2])) == 3


def test_a_reconcile_folder_with_a_desk_is_still_a_reconcile_folder(tmp_path: Path) -> None:
    out = tmp_path / "desk"
    reconcile(write_lines(tmp_path / "a.jsonl", gold_lines()), out)
    folder = RunFolder(out)
    assert folder.has_store() and folder.kind == "reconcile"
    assert cli_main(["report", str(out)]) == 0
    assert cli_main(["export", str(out), "--format", "csv"]) == 0


def _cluster(*article_ids: str) -> Cluster:
    records = tuple(
        IncidentRecord.model_validate({"article_id": a, "provenance": {"article_id": a}}) for a in article_ids
    )
    return Cluster(incident_id(article_ids), records, ())


def test_a_group_holding_two_earlier_incidents_keeps_the_older_id_and_the_other_becomes_an_alias() -> None:
    previous = {"a": "inc-old", "b": "inc-old", "c": "inc-new"}
    created = {"inc-old": "2026-01-01T00:00:00", "inc-new": "2026-02-01T00:00:00"}
    result = assign_ids([_cluster("a", "b", "c")], previous, created, at=AT)
    assert [c.id for c in result.clusters] == ["inc-old"]
    assert result.merged == {"inc-new": "inc-old"}
    assert [ch.change for ch in result.changes] == ["merged"]


def test_a_split_keeps_the_id_for_the_larger_part_and_names_where_the_other_came_from() -> None:
    previous = {"a": "inc-old", "b": "inc-old", "c": "inc-old"}
    result = assign_ids(
        [_cluster("a", "b"), _cluster("c")], previous, {"inc-old": "2026-01-01T00:00:00"}, at=AT
    )
    ids = {tuple(sorted(m for m, i in result.members.items() if i == c.id)): c.id for c in result.clusters}
    assert ids[("a", "b")] == "inc-old"
    assert ids[("c",)] != "inc-old" and ids[("c",)] in result.created
    split = next(ch for ch in result.changes if ch.change == "split")
    assert split.other_incident == "inc-old" and "split from inc-old" in split.detail


def test_ids_do_not_depend_on_the_order_of_the_groups() -> None:
    previous = {"a": "inc-1", "b": "inc-1", "c": "inc-1", "d": "inc-1"}
    groups = [_cluster("a", "b"), _cluster("c", "d")]
    one = assign_ids(groups, previous, {"inc-1": "x"}, at=AT).members
    two = assign_ids(list(reversed(groups)), previous, {"inc-1": "x"}, at=AT).members
    assert one == two


# --------------------------------------------------------------------------- decisions


@pytest.fixture
def decided(tmp_path: Path) -> tuple[Path, Incident]:
    out = tmp_path / "desk"
    reconcile(write_lines(tmp_path / "all.jsonl", gold_lines()), out)
    (incident,) = incidents(out)
    argv = ["decide", str(out), "--incident", incident.id, "--field", "subjects[0].place_of_death"]
    argv += [
        "--value",
        "at the hospital",
        "--note",
        "Medical examiner: pronounced dead at 9:04",
        "--by",
        "ak",
    ]
    assert cli_main(argv) == 0
    return out, incident


def test_a_decided_value_and_its_note_show_in_incidents_and_conflicts(decided: tuple[Path, Incident]) -> None:
    out, before = decided
    (incident,) = incidents(out)
    verdict = place_of_death(incident)
    assert verdict["verdict"] == "contradiction", "the sources' verdict stays"
    assert {v["value"] for v in verdict["values"]} == {"at the hospital", "at the scene"}
    decision = verdict["decision"]
    assert (decision["action"], decision["value"], decision["by"]) == ("set", "at the hospital", "ak")
    assert decision["note"] == "Medical examiner: pronounced dead at 9:04"
    merged = incident.merged.subjects[0].place_of_death
    assert merged is not None and merged.value == "at the hospital"
    conflicts = [json.loads(line) for line in RunFolder(out).conflicts.read_text().splitlines()]
    conflict = next(c for c in conflicts if c["path"] == "subjects[0].place_of_death")
    assert conflict["decision"]["note"] == "Medical examiner: pronounced dead at 9:04"


def test_a_later_reconcile_re_applies_the_decision(decided: tuple[Path, Incident], tmp_path: Path) -> None:
    out, _ = decided
    reconcile(write_lines(tmp_path / "again.jsonl", gold_lines()), out)
    (incident,) = incidents(out)
    assert place_of_death(incident)["decision"]["value"] == "at the hospital"


def test_the_decision_reaches_the_dashboard_tables(decided: tuple[Path, Incident], tmp_path: Path) -> None:
    out, _ = decided
    assert cli_main(["export", str(out), "--format", "sqlite", "--to", str(tmp_path / "files")]) == 0
    with sqlite3.connect(tmp_path / "files" / "tables.sqlite") as db:
        row = db.execute("SELECT subjects_0_place_of_death FROM incidents").fetchone()
        decisions = db.execute("SELECT field_path, value, note FROM decisions").fetchall()
    assert row[0] == "at the hospital"
    assert decisions == [
        ("subjects[0].place_of_death", "at the hospital", "Medical examiner: pronounced dead at 9:04")
    ]


def test_decisions_lists_each_decision_with_whether_it_stands(
    decided: tuple[Path, Incident], capsys: pytest.CaptureFixture[str]
) -> None:
    out, incident = decided
    argv = ["decide", str(out), "--incident", incident.id, "--field", "subjects[0].place_of_death"]
    assert cli_main([*argv, "--accept", "at the scene", "--by", "jm"]) == 0
    capsys.readouterr()
    assert cli_main(["decisions", str(out), "--json"]) == 0
    states = [json.loads(line)["state"] for line in capsys.readouterr().out.splitlines()]
    assert states == ["superseded by 2", "applied"]


def test_an_accepted_value_that_disappears_makes_the_decision_stale(
    decided: tuple[Path, Incident], capsys: pytest.CaptureFixture[str]
) -> None:
    out, incident = decided
    argv = ["decide", str(out), "--incident", incident.id, "--field", "where.city", "--accept", "Phoenix"]
    assert cli_main(argv) == 0
    records = [IncidentRecord.model_validate_json(line) for line in gold_lines()]
    kept = [r.model_dump_json() for r in records if r.where.city is None or r.where.city.value != "Phoenix"]
    write_lines(RunFolder(out).records, kept)
    assert (
        cli_main(["decide", str(out), "--incident", incident.id, "--field", "when.date", "--resolved"]) == 0
    )
    (now,) = incidents(out)
    assert [s.reason for s in now.stale_decisions] == [
        "the accepted value is no longer among the sources' values"
    ]
    capsys.readouterr()
    assert cli_main(["decisions", str(out)]) == 0
    assert (
        "no longer applies: the accepted value is no longer among the sources' values"
        in capsys.readouterr().out
    )


def test_deciding_needs_exactly_one_kind_of_decision_and_a_known_incident(
    decided: tuple[Path, Incident], capsys: pytest.CaptureFixture[str]
) -> None:
    out, incident = decided
    base = ["decide", str(out), "--incident", incident.id, "--field", "where.city"]
    assert cli_main(base) == 2
    assert cli_main([*base, "--value", "x", "--resolved"]) == 2
    assert (
        cli_main(["decide", str(out), "--incident", "inc-nope", "--field", "where.city", "--resolved"]) == 2
    )
    assert cli_main([*base[:-2], "--field", "no.such", "--resolved"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 4


def test_a_merge_decision_makes_two_incidents_one_that_keeps_the_older_id_and_survives_reconcile(
    tmp_path: Path,
) -> None:
    other = (
        Path(__file__).resolve().parents[1] / "examples" / "commerce-city-ice-shooting" / "gold_records.jsonl"
    )
    out = tmp_path / "desk"
    reconcile(write_lines(tmp_path / "tempe.jsonl", gold_lines()), out)
    (tempe,) = incidents(out)
    reconcile(other, out)
    assert len(incidents(out)) == 2
    commerce = next(i for i in incidents(out) if i.id != tempe.id)
    argv = ["decide", str(out), "--incident", commerce.id, "--merge-with", tempe.id, "--note", "test merge"]
    assert cli_main(argv) == 0
    (merged,) = incidents(out)
    assert merged.id == tempe.id, "the older id is kept"
    assert merged.aliases == [commerce.id]
    reconcile(write_lines(tmp_path / "again.jsonl", gold_lines()), out)
    (still,) = incidents(out)
    assert still.id == tempe.id and len(still.article_ids) == len(merged.article_ids)
