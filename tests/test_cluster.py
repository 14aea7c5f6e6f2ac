"""Clustering records into incidents: vetoes, links, blocking, deterministic ids, join reasons."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest

from pipeline.reconcile import cluster as cluster_module
from pipeline.reconcile.cluster import (
    DATE_WINDOW_DAYS,
    _candidate_pairs,
    _iter_candidate_pairs,
    _place_score,
    cluster_records,
    compare,
    incident_id,
    record_features,
)
from schemas.record import IncidentRecord

GOLD_RECORDS = Path(__file__).resolve().parents[1] / "examples" / "tempe-traffic-stop" / "gold_records.jsonl"


def cited(value: Any) -> dict[str, Any]:
    return {"value": value, "quote": f"said {value}", "attribution": "outlet"}


def record(
    article_id: str,
    *,
    day: str | None = "2026-03-13",
    city: str | None = "Tempe",
    state: str | None = None,
    name: str | None = "Rafael Quintero-Alvarez",
    phrase: str | None = None,
    published: str = "2026-03-14",
    city_grounding: dict[str, Any] | None = None,
) -> IncidentRecord:
    data: dict[str, Any] = {
        "article_id": article_id,
        "provenance": {"article_id": article_id, "outlet": f"outlet {article_id}", "published": published},
        "when": {"date": cited(day) if day else None, "raw_phrase": cited(phrase) if phrase else None},
        "where": {
            "city": {**cited(city), "grounding": city_grounding} if city else None,
            "state": cited(state) if state else None,
        },
        "subjects": [{"name": cited(name)}] if name else [],
    }
    return IncidentRecord.model_validate(data)


def groups(records: list[IncidentRecord]) -> list[list[str]]:
    return sorted(sorted(c.article_ids) for c in cluster_records(records))


def test_the_six_tempe_articles_form_one_incident() -> None:
    records = [IncidentRecord.model_validate_json(line) for line in GOLD_RECORDS.read_text().splitlines()]
    clusters = cluster_records(records)
    assert len(clusters) == 1
    assert sorted(clusters[0].article_ids) == sorted(r.article_id for r in records)


def test_suburb_and_metro_name_on_the_same_day_join_without_names() -> None:
    assert groups([record("a", name=None), record("b", city="Phoenix", name=None)]) == [["a", "b"]]


def test_two_suburbs_of_one_metro_on_the_same_day_without_names_stay_apart() -> None:
    assert groups([record("a", name=None), record("b", city="Mesa", name=None)]) == [["a"], ["b"]]


def test_dates_beyond_the_window_stay_apart_even_with_the_same_name() -> None:
    far = f"2026-03-{13 + DATE_WINDOW_DAYS + 1}"
    near = f"2026-03-{13 + DATE_WINDOW_DAYS}"
    assert groups([record("a"), record("b", day=far)]) == [["a"], ["b"]]
    assert groups([record("a"), record("b", day=near)]) == [["a", "b"]]


def test_relative_weekdays_are_resolved_before_comparing_dates() -> None:
    a = record("a", day=None, phrase="Friday", published="2026-03-14")
    b = record("b", day=None, phrase="last Friday", published="2026-03-16", city="Phoenix")
    c = record("c", day=None, phrase="Friday", published="2026-03-25")  # a week later: another Friday
    assert groups([a, b, c]) == [["a", "b"], ["c"]]


def test_partial_names_and_spelling_variants_link_records() -> None:
    records = [
        record("a"),
        record("b", name="Quintero-Alvares", city=None),
        record("c", name="Rafael Quintero", city="Phoenix"),
    ]
    assert groups(records) == [["a", "b", "c"]]


def test_different_names_veto_a_link() -> None:
    assert groups([record("a"), record("b", name="Dolores Ybarra")]) == [["a"], ["b"]]


def test_different_states_veto_a_link() -> None:
    assert groups([record("a", state="Arizona"), record("b", city=None, state="Illinois")]) == [["a"], ["b"]]


def test_a_record_with_only_a_state_joins_through_the_state_block() -> None:
    assert groups([record("a"), record("b", city=None, state="Arizona")]) == [["a", "b"]]


def test_incident_ids_depend_only_on_members() -> None:
    records = [record("a"), record("b", city="Phoenix"), record("z", name="Ana Ruiz", city="Chicago")]
    first = [(c.id, c.article_ids) for c in cluster_records(records)]
    for permutation in itertools.permutations(records):
        assert [(c.id, c.article_ids) for c in cluster_records(list(permutation))] == first
    assert {c.id for c in cluster_records(records)} == {incident_id(["b", "a"]), incident_id(["z"])}


def test_each_member_says_why_it_joined() -> None:
    clusters = cluster_records([record("a"), record("b", city="Phoenix", name="Rafael Quintero")])
    joins = {j.article_id: j for j in clusters[0].joins}
    assert joins["a"].linked_to == "b" and joins["b"].linked_to == "a"
    assert set(joins["a"].matched) == {"date", "place", "subject"}
    assert joins["a"].matched["place"] == 90.0  # suburb vs metro core
    alone = cluster_records([record("x")])[0].joins[0]
    assert alone.linked_to is None and alone.matched == {}


def test_blocking_finds_every_pair_that_all_pairs_comparison_would_link() -> None:
    rng = random.Random(3)
    cities = ["Tempe", "Phoenix", "Mesa", "Chicago", "Franklin Park", None]
    names = ["Rafael Quintero-Alvarez", "Quintero", "Ana Ruiz", "Ana Ruis", "Dolores Ybarra", None]
    records = [
        record(
            f"r{i:03d}",
            day=f"2026-03-{rng.randint(1, 20):02d}" if rng.random() < 0.9 else None,
            city=rng.choice(cities),
            state=rng.choice([None, None, "Arizona", "Illinois"]),
            name=rng.choice(names),
        )
        for i in range(120)
    ]
    features = [record_features(r) for r in records]
    linked = {
        (i, j)
        for i, j in itertools.combinations(range(len(records)), 2)
        if compare(features[i], features[j]) is not None
    }
    candidates = _candidate_pairs(features)
    assert linked, "the fixture should contain linked pairs"
    assert linked <= candidates
    assert len(candidates) < len(records) * (len(records) - 1) // 2


def test_candidate_pairs_leave_out_pairs_vetoed_by_date_or_place() -> None:
    # Blocks grow with the input; pairs a date or place veto rejects are dropped before they
    # are compared, so only pairs that could still link are kept and compared.
    rng = random.Random(5)
    records = [
        record(
            f"r{i:03d}",
            day=f"2026-03-{rng.randint(1, 28):02d}",
            city=rng.choice(["Tempe", "Phoenix", "Mesa", "Chandler"]),
            state=rng.choice([None, "Arizona"]),
            name="Ana Ruiz",
        )
        for i in range(80)
    ]
    features = [record_features(r) for r in records]
    candidates = _candidate_pairs(features)
    assert candidates
    for i, j in candidates:
        a, b = features[i], features[j]
        assert a.date is not None and b.date is not None
        assert a.date.distance_days(b.date) <= DATE_WINDOW_DAYS
        assert _place_score(a, b) is not None
        assert compare(a, b) is not None  # one name: nothing else could veto them


@pytest.mark.parametrize("max_block", [400, 4])
def test_pairs_made_record_by_record_are_the_blocked_pairs_each_once(
    max_block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Undated records, records with only a state, one city in two states, and (with a
    # tiny block limit) blocks too large to compare: every rule of the blocking is exercised.
    monkeypatch.setattr(cluster_module, "MAX_BLOCK", max_block)
    rng = random.Random(8)
    records = [
        record(
            f"r{i:03d}",
            day=rng.choice([None, *(f"2026-03-{d:02d}" for d in range(1, 15))]),
            city=rng.choice(["Tempe", "Phoenix", "Chicago", "Springfield", None, None]),
            state=rng.choice([None, "Arizona", "Illinois"]),
            name=rng.choice(["Ana Ruiz", "Ruiz", "Dolores Ybarra", None]),
        )
        for i in range(150)
    ]
    features = [record_features(r) for r in records]
    pairs = list(_iter_candidate_pairs(features))
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == _candidate_pairs(features)
    assert all(i < j for i, j in pairs)
    assert len(pairs) > 100


def test_values_that_are_not_evidence_neither_link_nor_veto() -> None:
    unfound = {"status": "unfound", "score": 0.0}
    assert groups([record("a"), record("b", city="Chicago")]) == [["a"], ["b"]]
    assert groups([record("a"), record("b", city="Chicago", city_grounding=unfound)]) == [["a", "b"]]


def test_an_ambiguous_city_without_a_state_neither_links_nor_vetoes() -> None:
    # Aurora is a big city in both Colorado and Illinois; Chicago is in Illinois.
    assert groups([record("a", city="Aurora"), record("b", city="Chicago")]) == [["a", "b"]]
    assert groups([record("a", city="Aurora", state="Colorado"), record("b", city="Chicago")]) == [
        ["a"],
        ["b"],
    ]
    assert groups([record("a", city="Aurora", name=None), record("b", city="Chicago", name=None)]) == [
        ["a"],
        ["b"],
    ]
