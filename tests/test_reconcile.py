"""Reconciliation: verdicts, consensus rules, independence, grounding, outputs and the CLI."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli.main import main as cli_main
from pipeline.ingest.sources import iter_sources
from pipeline.reconcile.merge import reconcile, reconcile_to_dir, write_outputs
from schemas.article import Article
from schemas.incident import FLAGGED_VERDICTS, FieldVerdict, Incident
from schemas.record import IncidentRecord

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tempe-traffic-stop"
GOLD_RECORDS = EXAMPLE / "gold_records.jsonl"
GOLD = json.loads((EXAMPLE / "gold.json").read_text())


def gold_records() -> list[IncidentRecord]:
    return [IncidentRecord.model_validate_json(line) for line in GOLD_RECORDS.read_text().splitlines()]


def cited(value: Any, attribution: str = "outlet", quote: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"value": value, "quote": quote or f"it was {value}", "attribution": attribution, **extra}


def record(article_id: str, **facts: Any) -> IncidentRecord:
    """A record about the fictional Tempe incident unless ``facts`` override its fields."""
    base: dict[str, Any] = {
        "when": {"date": cited("2026-03-13")},
        "where": {"city": cited("Tempe")},
        "subjects": [{"name": cited("Rafael Quintero-Alvarez")}],
    }
    for key, value in facts.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    base["article_id"] = article_id
    base["provenance"] = {
        "article_id": article_id,
        "outlet": f"Outlet {article_id}",
        "published": "2026-03-14",
    }
    return IncidentRecord.model_validate(base)


def only_incident(records: list[IncidentRecord]) -> Incident:
    result = reconcile(records)
    assert len(result.incidents) == 1
    return result.incidents[0]


def field(incident: Incident, path: str) -> FieldVerdict:
    return next(f for f in incident.fields if f.path == path)


# --------------------------------------------------------------------------- the example set


def test_gold_records_reach_exactly_the_planted_verdicts() -> None:
    incident = only_incident(gold_records())
    verdicts = {f.path: f.verdict for f in incident.fields}
    planted = GOLD["planted_verdicts"]
    assert {path: verdicts.get(path) for path in planted} == planted


def test_planted_verdicts_hold_after_grounding_and_canonical_speakers() -> None:
    from pipeline.evidence.ground import ground_record

    articles = {a.id: a for a in iter_sources([EXAMPLE]) if isinstance(a, Article)}
    grounded = [ground_record(r, articles[r.article_id]) for r in gold_records()]
    assert all(r.subjects[0].name is None or r.subjects[0].name.grounding is not None for r in grounded)
    incident = only_incident(grounded)
    verdicts = {f.path: f.verdict for f in incident.fields}
    planted = GOLD["planted_verdicts"]
    assert {path: verdicts.get(path) for path in planted} == planted
    assert all(v.decides for f in incident.fields for v in f.values), "every gold quote is verbatim"


def test_the_copied_dhs_statement_is_one_independent_source() -> None:
    planted = GOLD["planted_independence"]
    incident = only_incident(gold_records())
    by_name = {Path(r.source_path or "").name: r.article_id for r in gold_records()}
    statement = next(
        f for f in incident.fields if f.path.endswith(".quote") and f.consensus == planted["statement"]
    )
    # Three outlets quote the same words: the articles agree, the speaker counts once.
    assert statement.verdict == "same"
    assert statement.n_articles == planted["n_articles"]
    assert statement.n_independent_sources == planted["n_independent_sources"]
    assert statement.values[0].article_ids == sorted(by_name[name] for name in planted["articles"])
    assert planted["speaker"] in statement.values[0].speakers


def test_gold_records_carry_the_gold_values_and_verbatim_quotes() -> None:
    articles = {Path(a.source_path or "").name: a for a in iter_sources([EXAMPLE]) if isinstance(a, Article)}
    records = {Path(r.source_path or "").name: r for r in gold_records()}
    assert set(records) == set(GOLD["articles"])
    for name, expected in GOLD["articles"].items():
        rec, article = records[name], articles[name]
        assert rec.article_id == article.id, f"{name}: article id is not the content hash of its text"
        for path, value in expected.items():
            if path == "agencies[].name":
                assert sorted(str(a.name.value) for a in rec.agencies) == sorted(value), name
                continue
            node: Any = rec
            for part in path.replace("[0]", ".0").split("."):
                node = node[int(part)] if part.isdigit() else getattr(node, part, None)
                if node is None:
                    break
            actual = node.value if node is not None else None
            assert actual == value, f"{name} {path}: {actual!r} != {value!r}"
        for quote in _quotes(rec.model_dump()):
            assert quote in article.text, f"{name}: quote not verbatim: {quote!r}"


def _quotes(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["quote"]] if isinstance(node.get("quote"), str) else []
        return found + [q for value in node.values() for q in _quotes(value)]
    if isinstance(node, list):
        return [q for value in node for q in _quotes(value)]
    return []


def test_merged_record_takes_the_consensus_with_its_citation() -> None:
    incident = only_incident(gold_records())
    merged = incident.merged
    assert merged.where.city is not None and merged.where.city.value == "Tempe"
    assert merged.where.precision == "address"
    assert merged.when.date is not None and merged.when.date.value == "2026-03-13"
    assert merged.when.precision == "day"
    assert merged.subjects[0].name is not None and merged.subjects[0].name.value == "Rafael Quintero-Alvarez"
    # Counts in dispute: the conservative figure, as ACLED does.
    assert merged.officers.count_fired is not None and merged.officers.count_fired.value == "1"
    assert field(incident, "officers.count_fired").rule == "conservative figure (lowest count)"
    # A 1-1 split between independent sources has no consensus.
    assert merged.subjects[0].armed_with is None
    assert field(incident, "subjects[0].armed_with").consensus is None


# --------------------------------------------------------------------------- verdict rules


def test_one_value_from_two_independent_sources_is_agreed() -> None:
    incident = only_incident([record("a"), record("b")])
    assert field(incident, "when.date").verdict == "agreed"


def test_one_value_relayed_by_several_outlets_from_one_speaker_is_single_source() -> None:
    dhs = {"officers": {"condition": cited("stable condition", "DHS")}}
    incident = only_incident([record("a", **dhs), record("b", **dhs), record("c", **dhs)])
    condition = field(incident, "officers.condition")
    assert condition.verdict == "single-source"
    assert (condition.n_articles, condition.n_independent_sources) == (3, 1)


def test_claims_of_ice_and_of_dhs_count_as_one_source_and_name_both_speakers() -> None:
    # ICE is part of DHS: one press operation, so five articles relaying the two are one source.
    ice = {"officers": {"condition": cited("stable condition", "ICE")}}
    dhs = {"officers": {"condition": cited("stable condition", "DHS")}}
    records = [
        record("a", **ice),
        record("b", **dhs),
        record("c", **ice),
        record("d", **dhs),
        record("e", **ice),
    ]
    condition = field(only_incident(records), "officers.condition")
    assert condition.verdict == "single-source"
    assert (condition.n_articles, condition.n_independent_sources) == (5, 1)
    assert condition.sources == {"agency:dhs": ["agency:dhs", "agency:ice"]}
    assert condition.values[0].sources == condition.sources
    assert {c["speaker"] for c in condition.values[0].citations} == {"agency:ice", "agency:dhs"}
    assert {c["source_group"] for c in condition.values[0].citations} == {"agency:dhs"}


def test_claims_of_agencies_of_two_hierarchies_are_two_sources() -> None:
    ice = {"officers": {"condition": cited("stable condition", "ICE")}}
    fbi = {"officers": {"condition": cited("stable condition", "FBI")}}
    condition = field(only_incident([record("a", **ice), record("b", **fbi)]), "officers.condition")
    assert (condition.verdict, condition.n_independent_sources) == ("agreed", 2)
    assert condition.sources == {"agency:dhs": ["agency:ice"], "agency:doj": ["agency:fbi"]}


def test_identical_long_quotes_across_outlets_count_as_one_source_even_in_the_outlets_own_voice() -> None:
    wire = "The agent was treated for serious injuries and is in stable condition, officials said."
    facts = {"officers": {"condition": cited("stable condition", "outlet", quote=wire)}}
    incident = only_incident([record("a", **facts), record("b", **facts)])
    condition = field(incident, "officers.condition")
    assert condition.verdict == "single-source"
    assert len({c["source_group"] for c in condition.values[0].citations}) == 1


def test_speaker_ids_from_the_pipeline_take_precedence_over_the_attribution() -> None:
    a = {"officers": {"condition": cited("stable", "a federal source", speaker="agency:dhs")}}
    b = {"officers": {"condition": cited("stable", "the department", speaker="agency:dhs")}}
    incident = only_incident([record("a", **a), record("b", **b)])
    assert field(incident, "officers.condition").verdict == "single-source"


def test_a_field_nobody_reports_is_not_reported() -> None:
    incident = only_incident([record("a"), record("b")])
    verdict = field(incident, "officers.injuries")
    assert verdict.verdict == "not-reported" and verdict.values == []


def test_singular_against_plural_shooters_is_a_contradiction_with_an_ambiguous_count_note() -> None:
    incident = only_incident(
        [
            record("a", officers={"count_fired": cited("the agent")}),
            record("b", officers={"count_fired": cited("agents")}),
        ]
    )
    verdict = field(incident, "officers.count_fired")
    assert verdict.verdict == "contradiction"
    assert verdict.consensus == "the agent"
    assert verdict.note is not None and "ambiguous count" in verdict.note


def test_a_figure_within_plural_wording_is_more_specific() -> None:
    incident = only_incident(
        [
            record("a", officers={"count_fired": cited("two")}),
            record("b", officers={"count_fired": cited("agents")}),
        ]
    )
    verdict = field(incident, "officers.count_fired")
    assert (verdict.verdict, verdict.consensus) == ("more-specific", "two")


def test_contradiction_consensus_goes_to_strictly_more_independent_sources() -> None:
    incident = only_incident(
        [
            record(
                "a", subjects=[{"name": cited("Rafael Quintero"), "place_of_death": cited("at the hospital")}]
            ),
            record(
                "b", subjects=[{"name": cited("Rafael Quintero"), "place_of_death": cited("at the hospital")}]
            ),
            record(
                "c", subjects=[{"name": cited("Rafael Quintero"), "place_of_death": cited("at the scene")}]
            ),
        ]
    )
    verdict = field(incident, "subjects[0].place_of_death")
    assert verdict.verdict == "contradiction"
    assert (verdict.consensus, verdict.rule) == ("at the hospital", "most independent sources")
    assert [v.value for v in verdict.values] == ["at the hospital", "at the scene"]


def test_more_specific_place_wins_and_metro_wording_is_flagged() -> None:
    incident = only_incident([record("a", where={"city": cited("Phoenix area")}), record("b")])
    verdict = field(incident, "where.city")
    assert (verdict.verdict, verdict.consensus) == ("more-specific", "Tempe")
    assert verdict.rule == "most specific compatible value"


def test_merged_date_precision_follows_the_consensus_form() -> None:
    month = {"when": {"date": cited("March 2026")}}
    incident = only_incident([record("a", **month), record("b", **month)])
    assert incident.merged.when.precision == "month"
    vague = {"when": {"date": cited("sometime recently")}}
    incident = only_incident([record("a", **vague), record("b")])
    assert incident.merged.when.precision == "unknown"  # no consensus, no precision
    assert field(incident, "when.date").verdict == "contradiction"


# --------------------------------------------------------------------------- grounding


def _grounding(status: str, supported: bool | None = True) -> dict[str, Any]:
    return {"status": status, "score": 100.0 if status != "unfound" else 0.0, "supported": supported}


def test_ungrounded_values_are_shown_but_never_decide() -> None:
    incident = only_incident(
        [
            record("a", where={"city": cited("Tempe", grounding=_grounding("exact"))}),
            record("b", where={"city": cited("Tempe", grounding=_grounding("fuzzy"))}),
            record("c", where={"city": cited("Mesa", grounding=_grounding("unfound"))}),
            record("d", where={"city": cited("Chicago", grounding=_grounding("exact", supported=False))}),
        ]
    )
    verdict = field(incident, "where.city")
    assert verdict.verdict == "agreed"
    assert verdict.consensus == "Tempe"
    shown = {v.value: v.decides for v in verdict.values}
    assert shown == {"Tempe": True, "Mesa": False, "Chicago": False}
    assert verdict.note is not None and "not evidence" in verdict.note


def test_a_field_reported_only_by_ungrounded_values_has_no_verdict_from_them() -> None:
    incident = only_incident(
        [
            record("a", officers={"injuries": cited("minor", grounding=_grounding("unfound"))}),
            record("b"),
        ]
    )
    verdict = field(incident, "officers.injuries")
    assert verdict.verdict == "not-reported"
    assert [v.value for v in verdict.values] == ["minor"]
    assert verdict.consensus is None


def test_records_without_grounding_count_as_unchecked_evidence() -> None:
    incident = only_incident(
        [
            record("a", officers={"condition": cited("stable condition")}),
            record("b", officers={"condition": cited("critical condition")}),
        ]
    )
    assert field(incident, "officers.condition").verdict == "contradiction"


# --------------------------------------------------------------------------- list items


def test_subjects_are_matched_across_records_by_name_and_unnamed_ones_by_attributes() -> None:
    incident = only_incident(
        [
            record("a", subjects=[{"name": cited("Ana Ruiz")}, {"name": cited("Rafael Quintero-Alvarez")}]),
            record("b", subjects=[{"name": cited("Quintero")}, {"name": cited("Ana Ruis")}]),
            record("c", subjects=[{"gender": cited("male"), "age": cited(34)}]),
        ]
    )
    assert field(incident, "subjects[0].name").verdict == "variant"
    assert field(incident, "subjects[1].name").verdict == "variant"
    assert len(incident.merged.subjects) == 2


def test_agencies_are_matched_by_canonical_name() -> None:
    incident = only_incident(
        [
            record("a", agencies=[{"name": cited("U.S. Border Patrol")}, {"name": cited("FBI")}]),
            record("b", agencies=[{"name": cited("Border Patrol")}]),
        ]
    )
    names = {f.path: (f.verdict, f.consensus) for f in incident.fields if f.path.startswith("agencies")}
    assert names["agencies[0].name"] == ("agreed", "Border Patrol")
    assert names["agencies[1].name"] == ("single-source", "FBI")


# --------------------------------------------------------------------------- outputs and CLI


def _write_records(path: Path, records: list[IncidentRecord]) -> None:
    path.write_text("".join(r.model_dump_json() + "\n" for r in records))


def test_outputs_are_identical_whatever_the_input_order(tmp_path: Path) -> None:
    records = gold_records() + [record("zz", where={"city": cited("Chicago")}, subjects=[])]
    write_outputs(reconcile(records), tmp_path / "one")
    write_outputs(reconcile(list(reversed(records))), tmp_path / "two")
    for name in ("incidents.jsonl", "conflicts.jsonl"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_streamed_outputs_are_byte_identical_to_the_in_memory_ones(tmp_path: Path) -> None:
    records = gold_records() + [record("zz", where={"city": cited("Chicago")}, subjects=[])]
    write_outputs(reconcile(records), tmp_path / "memory")
    counts = reconcile_to_dir(records, tmp_path / "stream")
    assert (counts.records, counts.incidents) == (7, 2)
    for name in ("incidents.jsonl", "conflicts.jsonl"):
        assert (tmp_path / "memory" / name).read_bytes() == (tmp_path / "stream" / name).read_bytes()
    assert not list((tmp_path / "stream").glob("*.tmp"))


def test_conflicts_file_has_one_line_per_flagged_field(tmp_path: Path) -> None:
    result = reconcile(gold_records())
    write_outputs(result, tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "conflicts.jsonl").read_text().splitlines()]
    flagged = [f for f in result.incidents[0].fields if f.verdict in FLAGGED_VERDICTS]
    assert len(lines) == len(flagged)
    city = next(line for line in lines if line["path"] == "where.city")
    assert city["verdict"] == "more-specific"
    assert {v["value"]: len(v["article_ids"]) for v in city["values"]} == {"Tempe": 4, "Phoenix": 2}
    incidents = [json.loads(line) for line in (tmp_path / "incidents.jsonl").read_text().splitlines()]
    assert [i["id"] for i in incidents] == [result.incidents[0].id]


def test_reconcile_command_writes_outputs_and_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records_path = tmp_path / "records.jsonl"
    _write_records(records_path, gold_records())
    rc = cli_main(["reconcile", str(records_path), "--out", str(tmp_path / "out")])
    assert rc == 0
    assert "6 record(s) into 1 incident(s)" in capsys.readouterr().out
    assert (tmp_path / "out" / "incidents.jsonl").exists()


def test_reconcile_command_names_invalid_lines_and_still_reconciles_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records_path = tmp_path / "records.jsonl"
    good = [r.model_dump_json() for r in gold_records()[:2]]
    records_path.write_text("\n".join([good[0], "{not json", '{"article_id": "x"}', "", good[1]]) + "\n")
    rc = cli_main(["reconcile", str(records_path), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert rc == 1
    assert f"{records_path}:2: invalid record" in captured.err
    assert f"{records_path}:3: invalid record: provenance: Field required" in captured.err
    assert "2 record(s)" in captured.out


def test_reconcile_command_reports_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(["reconcile", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "no such file" in capsys.readouterr().err


# --------------------------------------------------------------------------- the run folder


def test_reconcile_command_refuses_a_folder_another_command_holds_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.store.runlock import run_folder_lock

    records_path = tmp_path / "records.jsonl"
    _write_records(records_path, gold_records())
    out = tmp_path / "out"
    with run_folder_lock(out, command="run"):
        rc = cli_main(["reconcile", str(records_path), "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert re.fullmatch(
        rf"error: {re.escape(str(out))} is in use by `triangulate run` "
        rf"\(pid {os.getpid()}, since \d\d:\d\d\); wait for it or use another --out\n",
        err,
    ), err
    assert not (out / "incidents.jsonl").exists() and not (out / "conflicts.jsonl").exists()


def test_reconcile_leaves_someone_elses_tmp_files_alone_and_writes_readable_outputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("incidents.jsonl.tmp", "conflicts.jsonl.tmp"):
        (out / name).write_text("not reconcile's\n")
    previous = os.umask(0o022)
    try:
        reconcile_to_dir(gold_records(), out)
    finally:
        os.umask(previous)
    assert sorted(p.name for p in out.iterdir()) == [
        "conflicts.jsonl",
        "conflicts.jsonl.tmp",
        "incidents.jsonl",
        "incidents.jsonl.tmp",
    ]
    for name in ("incidents.jsonl.tmp", "conflicts.jsonl.tmp"):
        assert (out / name).read_text() == "not reconcile's\n"
    for name in ("incidents.jsonl", "conflicts.jsonl"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644
    assert len((out / "incidents.jsonl").read_text().splitlines()) == 1


def test_a_reconcile_that_fails_midway_keeps_both_previous_outputs_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.reconcile.merge as reconcile_module

    records = gold_records() + [record("zz", where={"city": cited("Chicago")}, subjects=[])]
    reconcile_to_dir(records[:3], tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    judged = reconcile_module._conflict_dicts
    calls = []

    def fail_on_the_second_incident(incident: dict[str, Any]) -> list[dict[str, Any]]:
        calls.append(incident["id"])
        if len(calls) == 2:
            raise RuntimeError("judging failed")
        return judged(incident)

    monkeypatch.setattr(reconcile_module, "_conflict_dicts", fail_on_the_second_incident)
    with pytest.raises(RuntimeError, match="judging failed"):
        reconcile_to_dir(records, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_write_outputs_replaces_both_files_or_neither(tmp_path: Path) -> None:
    from schemas.incident import ReconcileResult

    write_outputs(reconcile(gold_records()[:3]), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    result = reconcile(gold_records())
    not_a_conflict: Any = object()
    unwritable = ReconcileResult.model_construct(
        incidents=result.incidents, conflicts=[*result.conflicts, not_a_conflict]
    )
    with pytest.raises(AttributeError):
        write_outputs(unwritable, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_folder_that_reconcile_writes_is_a_run_folder_report_and_export_accept(tmp_path: Path) -> None:
    from pipeline.cli.main import main

    out = tmp_path / "merged"
    gold_records = Path(__file__).resolve().parent.parent / "examples/tempe-traffic-stop/gold_records.jsonl"
    assert main(["reconcile", str(gold_records), "--out", str(out)]) == 0
    assert (out / "records.jsonl").read_text(encoding="utf-8").count("\n") == 6
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").is_file()
    assert main(["export", str(out), "--format", "csv"]) == 0
    assert (out / "export" / "incidents.csv").is_file()
