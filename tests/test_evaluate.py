"""``triangulate eval``: records scored against gold written in these tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.cli.main import main
from pipeline.kinds.normalize import FIELD_KINDS, Relation, ValueContext, normalize_value, relate, template_of
from pipeline.outputs.evaluate import comparison_key, resolve_field, score_records
from schemas.record import (
    Agency,
    Cited,
    Grounding,
    GroundingStatus,
    IncidentRecord,
    Officers,
    Provenance,
    Subject,
    When,
    Where,
)


def cited(
    value: Any, status: GroundingStatus = GroundingStatus.exact, supported: bool | None = True
) -> Cited:  # type: ignore[type-arg]
    return Cited(
        value=value,
        quote=f"quote for {value}",
        attribution="outlet",
        grounding=Grounding(status=status, supported=supported),
    )


def record(name: str, **facts: Any) -> IncidentRecord:
    article_id = f"sha256:{name}"
    return IncidentRecord(
        article_id=article_id,
        source_path=f"corpus/harlow/{name}",
        provenance=Provenance(article_id=article_id, source_path=f"corpus/harlow/{name}"),
        **facts,
    )


GOLD: dict[str, Any] = {
    "incident": "harlow-lake-chase",
    "articles": {
        "a.md": {
            "when.date": "2026-03-10",
            "where.city": "Harlow",
            "where.state": None,
            "subjects[0].name": "Jos\u00e9 Pe\u00f1a-Whitlock",
            "subjects[0].age": 41,
            "officers.count_fired": "1",
            "agencies[].name": ["Harlow County Sheriff's Office", "FBI"],
        },
        "b.md": {
            "when.date": "2026-03-10",
            "where.city": "Harlow",
            "officers.count_fired": "plural",
            "agencies[].name": ["Harlow County Sheriff's Office", "FBI", "State Police", "DHS"],
        },
        "c.md": {"when.date": "2026-03-10", "where.city": "Harlow"},
    },
}


def perfect_a() -> IncidentRecord:
    return record(
        "a.md",
        when=When(date=cited("2026-03-10")),
        where=Where(city=cited("Harlow")),
        subjects=[Subject(name=cited("Jos\u00e9 Pe\u00f1a-Whitlock"), age=cited(41))],
        officers=Officers(count_fired=cited("1")),
        agencies=[Agency(name=cited("Harlow County Sheriff's Office")), Agency(name=cited("FBI"))],
    )


def scores_by_field(report: Any) -> dict[str, Any]:
    return {f.field: f for f in report.fields}


# --------------------------------------------------------------------------
# What counts as the same value: reconcile's form
# --------------------------------------------------------------------------

# (field key, got, gold): one value as reconcile reads it.
SAME_VALUE = [
    ("where.city", "HARLOW", "Harlow"),
    ("subjects[0].name", "Jose Pena-Whitlock", "Jos\u00e9 Pe\u00f1a-Whitlock"),
    ("when.date", "March 10, 2026", "2026-03-10"),
    ("when.date", "Mar 10th 2026", "2026-03-10"),
    ("officers.count_fired", "one", "1"),
    ("officers.count_fired", "the agent", "1"),
    ("subjects[0].age", "thirty-four", 34),
    ("subjects[0].age", "34", 34),
    ("officers.count_fired", "agents", "plural"),
    ("officers.count_fired", "several", "plural"),
    ("subjects[0].place_of_death", "at a hospital", "at the hospital"),
    ("agencies[].name", "Border Patrol", "U.S. Border Patrol"),
    ("agencies[].name", "Department of Homeland Security", "DHS"),
    ("subjects[0].gender", "man", "male"),
    ("subjects[0].outcome", "died", "killed"),
    ("where.state", "Ariz.", "Arizona"),
    ("where.place", "Apache Blvd. & McClintock Dr.", "Apache Boulevard and McClintock Drive"),
    ("what.operation_name", "Sonoran Sweep", "Operation Sonoran Sweep"),
    ("officers.condition", "in stable condition", "stable condition"),
]
# (field key, got, gold): two values, though reconcile may call one a variant or a refinement of the other.
DIFFERENT_VALUES = [
    ("where.city", "Phoenix", "Tempe"),
    ("where.city", "Phoenix area", "Phoenix"),
    ("subjects[0].place_of_death", "at the scene", "at the hospital"),
    ("when.date", "2026-03-11", "2026-03-10"),
    ("when.date", "2026-03", "2026-03-10"),
    ("officers.count_fired", "2", "1"),
    ("officers.count_fired", "agents", "1"),
    ("subjects[0].name", "Quintero-Alvares", "Quintero-Alvarez"),
    ("subjects[0].name", "Quintero", "Rafael Quintero-Alvarez"),
    ("officers.injuries", "severe injuries", "serious injuries"),
    ("when.time_of_day", "7:45 a.m.", "morning"),
    ("what.event_type", "fatal shooting", "shooting"),
]


@pytest.mark.parametrize(("key", "got", "gold"), SAME_VALUE)
def test_values_reconcile_reads_as_one_are_graded_equal(key: str, got: Any, gold: Any) -> None:
    assert comparison_key(key, got) == comparison_key(key, gold)


@pytest.mark.parametrize(("key", "got", "gold"), DIFFERENT_VALUES)
def test_values_reconcile_tells_apart_are_graded_different(key: str, got: Any, gold: Any) -> None:
    assert comparison_key(key, got) != comparison_key(key, gold)


@pytest.mark.parametrize(("key", "a", "b"), SAME_VALUE + DIFFERENT_VALUES)
def test_eval_and_reconcile_agree_on_whether_two_values_are_the_same(key: str, a: Any, b: Any) -> None:
    ctx = ValueContext()
    relation = relate(key, normalize_value(key, a, ctx), normalize_value(key, b, ctx))
    assert (comparison_key(key, a, ctx) == comparison_key(key, b, ctx)) == (relation is Relation.SAME)


# Words that make near-misses likely: one field's words in another field's place, abbreviations,
# number words, relative dates.
_WORDS = [
    "1", "one", "the", "agent", "agents", "34", "thirty", "four", "Friday", "March", "13", "2026-03-13",
    "Tempe", "Ariz.", "Arizona", "Phoenix", "area", "DHS", "Border", "Patrol", "U.S.", "José", "Jose",
    "Peña", "killed", "died", "male", "man", "at", "hospital", "scene", "serious", "stable", "injuries",
    "7:30", "a.m.", "morning", "Apache", "Blvd.", "Boulevard", "&", "and", "yes", "no", "",
]  # fmt: skip
_FIELD_KEYS = sorted({template_of(path).replace("[]", "[0]") for path in FIELD_KINDS})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key=st.sampled_from(_FIELD_KEYS),
    a=st.lists(st.sampled_from(_WORDS), max_size=4).map(" ".join),
    b=st.lists(st.sampled_from(_WORDS), max_size=4).map(" ".join),
    published=st.sampled_from([None, date(2026, 3, 14)]),
)
def test_for_any_field_eval_sameness_is_reconciles_sameness(
    key: str, a: str, b: str, published: date | None
) -> None:
    ctx = ValueContext(published=published, state="Arizona")
    ka, kb = comparison_key(key, a, ctx), comparison_key(key, b, ctx)
    if ka is None or kb is None:
        assert (ka is None) == (not a.strip()) and (kb is None) == (not b.strip())
        return
    relation = relate(key, normalize_value(key, a, ctx), normalize_value(key, b, ctx))
    assert (ka == kb) == (relation is Relation.SAME)


def test_a_value_is_read_in_its_records_context() -> None:
    rec = record("a.md", when=When(date=cited("Friday")))
    rec.provenance.published = date(2026, 3, 14)  # a Saturday paper: "Friday" is March 13
    report = score_records([rec], {"articles": {"a.md": {"when.date": "2026-03-13"}}})
    assert report.accuracy == 1.0
    undated = record("a.md", when=When(date=cited("Friday")))
    assert score_records([undated], {"articles": {"a.md": {"when.date": "2026-03-13"}}}).accuracy == 0.0


def test_a_key_outside_the_records_facts_is_compared_as_text() -> None:
    assert comparison_key("provenance.outlet", "The Valley Ledger") == comparison_key(
        "provenance.outlet", "valley ledger"
    )


# --------------------------------------------------------------------------
# Field paths
# --------------------------------------------------------------------------


def test_field_keys_resolve_dotted_indexed_and_set_paths() -> None:
    rec = perfect_a()
    assert [c.value for c in resolve_field(rec, "subjects[0].name")] == ["Jos\u00e9 Pe\u00f1a-Whitlock"]
    assert resolve_field(rec, "subjects[1].name") == []
    assert resolve_field(rec, "where.state") == []
    assert [c.value for c in resolve_field(rec, "agencies[].name")] == [
        "Harlow County Sheriff's Office",
        "FBI",
    ]


def test_an_unknown_field_key_is_an_error_not_a_silent_zero() -> None:
    with pytest.raises(ValueError, match="subjects\\[0\\].nmae"):
        resolve_field(perfect_a(), "subjects[0].nmae")


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------


def test_a_perfect_record_scores_every_graded_field() -> None:
    report = score_records([perfect_a()], {"articles": {"a.md": GOLD["articles"]["a.md"]}})
    assert report.accuracy == 1.0
    assert report.graded == 7
    assert report.mismatches == []
    assert report.missing_records == []


def test_gold_articles_without_a_record_score_zero_and_are_listed() -> None:
    report = score_records([perfect_a()], GOLD)
    assert report.missing_records == ["b.md", "c.md"]
    assert report.gold_articles == 3 and report.matched_articles == 1
    fields = scores_by_field(report)
    assert fields["when.date"].graded == 3
    assert fields["when.date"].accuracy == pytest.approx(1 / 3, abs=1e-4)
    assert report.graded == 7 + 4 + 2
    assert report.accuracy == pytest.approx(7 / 13, abs=1e-4)
    reasons = {(m.article, m.field): m.reason for m in report.mismatches}
    assert reasons[("c.md", "where.city")] == "missing-record"


def test_a_null_gold_value_requires_null_in_the_record() -> None:
    rec = perfect_a()
    rec.where.state = cited("Arizona")
    report = score_records([rec], {"articles": {"a.md": GOLD["articles"]["a.md"]}})
    state = scores_by_field(report)["where.state"]
    assert state.accuracy == 0.0
    assert [(m.field, m.reason, m.got) for m in report.mismatches] == [
        ("where.state", "should-be-null", "Arizona")
    ]


def test_a_wrong_scalar_scores_zero_and_is_listed_with_both_values() -> None:
    rec = perfect_a()
    rec.subjects[0].age = cited(14)
    report = score_records([rec], {"articles": {"a.md": GOLD["articles"]["a.md"]}})
    assert scores_by_field(report)["subjects[0].age"].accuracy == 0.0
    (mismatch,) = report.mismatches
    assert (mismatch.gold, mismatch.got, mismatch.reason) == (41, 14, "wrong")


def test_set_fields_score_by_jaccard_and_count_exact_sets() -> None:
    # Gold for b.md has four agencies; the record finds three of them and one extra.
    rec = record(
        "b.md",
        when=When(date=cited("March 10, 2026")),
        where=Where(city=cited("harlow")),
        officers=Officers(count_fired=cited("deputies")),
        agencies=[
            Agency(name=cited("Harlow County Sheriff's Office")),
            Agency(name=cited("FBI")),
            Agency(name=cited("the State Police")),
            Agency(name=cited("ICE")),
        ],
    )
    report = score_records([rec], {"articles": {"b.md": GOLD["articles"]["b.md"]}})
    agencies = scores_by_field(report)["agencies[].name"]
    assert agencies.accuracy == pytest.approx(3 / 5)  # |{3 shared}| / |{5 in the union}|
    assert agencies.exact_sets == 0
    assert scores_by_field(report)["officers.count_fired"].accuracy == 1.0
    assert report.mismatches[0].reason == "partial-set"


def test_records_match_gold_by_article_id_as_well_as_file_name() -> None:
    rec = perfect_a()
    gold = {"articles": {rec.article_id: {"where.city": "Harlow"}}}
    report = score_records([rec], gold)
    assert report.matched_articles == 1 and report.accuracy == 1.0


def test_records_without_gold_and_duplicate_records_are_reported() -> None:
    stray = record("zzz.md", where=Where(city=cited("Harlow")))
    report = score_records(
        [perfect_a(), perfect_a(), stray], {"articles": {"a.md": {"where.city": "Harlow"}}}
    )
    assert report.unmatched_records == ["corpus/harlow/zzz.md"]
    assert report.duplicate_records == ["a.md"]


def test_grounding_and_unsupported_rates_count_non_null_cited_values() -> None:
    rec = record(
        "c.md",
        when=When(date=cited("2026-03-10", GroundingStatus.unfound, supported=None)),
        where=Where(
            city=cited("Harlow", GroundingStatus.fuzzy, supported=False),
            state=cited(None, GroundingStatus.unfound),  # null: not counted
            county=cited("Harlow County", GroundingStatus.normalized, supported=True),
        ),
        subjects=[Subject(name=Cited(value="Jos\u00e9", quote="Jos\u00e9", attribution="outlet"))],
    )
    report = score_records([rec], {"articles": {"c.md": GOLD["articles"]["c.md"]}})
    assert report.cited_values == 4
    assert report.grounded == 2  # fuzzy + normalized; the never-grounded name is not located
    assert report.not_grounded_yet == 1
    assert report.grounding_rate == 0.5
    assert report.unsupported == 1 and report.unsupported_rate == 0.25
    fields = scores_by_field(report)
    assert fields["when.date"].grounding_rate == 0.0
    assert fields["where.city"].unsupported_rate == 1.0


# --------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------


def write_inputs(
    tmp_path: Path, records: list[IncidentRecord], extra_lines: Sequence[str] = ()
) -> tuple[Path, Path]:
    records_path = tmp_path / "records.jsonl"
    lines = [r.model_dump_json() for r in records] + list(extra_lines)
    records_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    gold_path = tmp_path / "gold.json"
    gold_path.write_text(json.dumps(GOLD), encoding="utf-8")
    return records_path, gold_path


def test_eval_command_prints_an_aligned_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records_path, gold_path = write_inputs(tmp_path, [perfect_a()], ["{not json", '{"article_id": 3}'])
    out = tmp_path / "reports" / "eval.json"
    code = main(["eval", str(records_path), str(gold_path), "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    table = printed.split("\n\n")[0].splitlines()
    assert table[0].split() == ["field", "graded", "accuracy", "cited", "grounded", "unsupported"]
    widths = {len(line) for line in table}
    assert len(widths) == 1  # every row padded to the same width
    assert any(line.startswith("OVERALL") for line in table)
    assert "gold articles with no record (scored 0): b.md, c.md" in printed
    assert "unreadable lines: 2" in printed
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["missing_records"] == ["b.md", "c.md"]
    assert data["records_read"] == 1
    assert [line.split(":")[0] for line in data["unreadable_lines"]] == ["2", "3"]
    assert data["accuracy"] == pytest.approx(7 / 13, abs=1e-4)


def test_triangulate_eval_runs_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records_path, gold_path = write_inputs(tmp_path, [perfect_a()])
    assert main(["eval", str(records_path), str(gold_path), "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["matched_articles"] == 1


def test_eval_command_reports_a_missing_file_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(tmp_path / "none.jsonl"), str(tmp_path / "none.json")]) == 2
    assert "none.jsonl" in capsys.readouterr().err


def test_agency_names_are_compared_by_canonical_agency() -> None:
    rec = record(
        "b.md",
        agencies=[
            Agency(name=cited("DHS")),
            Agency(name=cited("Federal Bureau of Investigation")),
            Agency(name=cited("Harlow County Sheriff's Department")),
            Agency(name=cited("State Police")),
        ],
    )
    report = score_records(
        [rec], {"articles": {"b.md": {"agencies[].name": GOLD["articles"]["b.md"]["agencies[].name"]}}}
    )
    assert report.accuracy == 1.0
    assert scores_by_field(report)["agencies[].name"].exact_sets == 1


def test_unknown_agency_names_fall_back_to_normalized_text() -> None:
    rec = record("b.md", agencies=[Agency(name=cited("Harlow Water Authority"))])
    report = score_records([rec], {"articles": {"b.md": {"agencies[].name": ["harlow water authority"]}}})
    assert report.accuracy == 1.0


def test_the_hand_made_tempe_records_score_full_marks_against_the_tempe_gold(
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = Path(__file__).resolve().parents[1] / "examples" / "tempe-traffic-stop"
    assert main(["eval", str(folder / "gold_records.jsonl"), str(folder / "gold.json")]) == 0
    printed = capsys.readouterr().out
    overall = next(line for line in printed.splitlines() if line.startswith("OVERALL"))
    assert overall.split()[2] == "100%"
    assert "matched: 6" in printed
