"""Properties of reconciliation over generated records about a few fictional incidents.

Each generated record describes one of four invented incidents, far apart in
time and place, with the disagreements real coverage has: spelling variants
and partial names, suburb vs metro name, relative weekdays, singular vs plural
counts, severity wording, hospital vs scene, ungrounded quotes.
"""

from __future__ import annotations

import json
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.reconcile.merge import reconcile, reconcile_to_dir, write_outputs
from schemas.incident import Incident, ReconcileResult
from schemas.record import IncidentRecord

INCIDENTS: list[dict[str, Any]] = [
    {
        "date": date(2026, 3, 13),
        "cities": ["Tempe", "Phoenix"],
        "state": "Arizona",
        "names": ["Rafael Quintero-Alvarez", "Rafael Quintero-Alvares", "Quintero"],
        "ages": [34],
    },
    {
        "date": date(2025, 7, 2),
        "cities": ["Franklin Park", "Chicago", "Evanston"],
        "state": "Illinois",
        "names": ["Silvio Villanueva-Gomez", "Silvio Villanueva", "Villanueva-Gomes"],
        "ages": [41, 42],
    },
    {
        "date": date(2024, 11, 20),
        "cities": ["Pasadena", "Houston"],
        "state": "Texas",
        "names": ["Ana Ruiz Ortega", "Ana Ruiz"],
        "ages": [27],
    },
    {
        "date": date(2026, 1, 5),
        "cities": ["Lakewood", "Denver"],
        "state": "Colorado",
        "names": ["Tomas Echeverria", "Tomás Echeverría"],
        "ages": [55],
    },
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
ATTRIBUTIONS = ["outlet", "DHS", "Tempe police", "a witness", "Maria Soto"]
GROUNDINGS: list[dict[str, Any] | None] = [
    None,
    None,
    {"status": "exact", "score": 100.0, "supported": True},
    {"status": "fuzzy", "score": 91.0},
    {"status": "unfound", "score": 0.0},
]


def _cited(draw: st.DrawFn, value: Any) -> dict[str, Any]:
    return {
        "value": value,
        "quote": f"reported as {value}",
        "attribution": draw(st.sampled_from(ATTRIBUTIONS)),
        "grounding": draw(st.sampled_from(GROUNDINGS)),
    }


@st.composite
def record_facts(draw: st.DrawFn, incident: int) -> dict[str, Any]:
    """Everything of a record but its ids: one article's account of ``incident``."""
    spec = INCIDENTS[incident]
    day: date = spec["date"]
    lag = draw(st.integers(0, 3))
    published = day + timedelta(days=lag)
    phrase = ("last " if lag and draw(st.booleans()) else "") + WEEKDAYS[day.weekday()]
    maybe = st.booleans()
    officers: dict[str, Any] = {}
    if draw(maybe):
        officers["count_fired"] = _cited(draw, draw(st.sampled_from(["1", "the agent", "agents", "two"])))
    if draw(maybe):
        officers["injuries"] = _cited(
            draw, draw(st.sampled_from(["serious injuries", "several injuries", "minor injuries"]))
        )
    subject: dict[str, Any] = {"name": _cited(draw, draw(st.sampled_from(spec["names"])))}
    if draw(maybe):
        subject["age"] = _cited(draw, draw(st.sampled_from(spec["ages"])))
    if draw(maybe):
        subject["place_of_death"] = _cited(draw, draw(st.sampled_from(["at the scene", "at the hospital"])))
    return {
        "when": {
            "date": _cited(draw, day.isoformat()) if draw(maybe) else None,
            "raw_phrase": _cited(draw, phrase),
        },
        "where": {
            "city": _cited(draw, draw(st.sampled_from(spec["cities"]))),
            "state": _cited(draw, spec["state"]) if draw(maybe) else None,
        },
        "subjects": [subject],
        "officers": officers,
        "statements": [
            {
                "speaker": "Press Office",
                "affiliation": "DHS",
                "quote": f"The agent acted in self-defense in case {incident}.",
            }
        ]
        if draw(maybe)
        else [],
        "_published": published.isoformat(),
    }


def _as_record(facts: dict[str, Any], article_id: str, outlet: str) -> IncidentRecord:
    data = {k: v for k, v in facts.items() if not k.startswith("_")}
    data["article_id"] = article_id
    data["provenance"] = {"article_id": article_id, "outlet": outlet, "published": facts["_published"]}
    return IncidentRecord.model_validate(data)


@st.composite
def record_sets(draw: st.DrawFn) -> list[IncidentRecord]:
    incidents = draw(st.lists(st.integers(0, len(INCIDENTS) - 1), min_size=1, max_size=10))
    return [
        _as_record(draw(record_facts(incident)), f"sha256:{i:04d}", f"Outlet {draw(st.integers(0, 5))}")
        for i, incident in enumerate(incidents)
    ]


def dump(result: ReconcileResult) -> str:
    return json.dumps(result.model_dump(mode="json"), sort_keys=True)


def dump_incident(incident: Incident) -> str:
    return json.dumps(incident.model_dump(mode="json"), sort_keys=True)


FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(records=record_sets(), data=st.data())
def test_output_does_not_depend_on_input_order(records: list[IncidentRecord], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(records))
    assert dump(reconcile(shuffled)) == dump(reconcile(records))


@FAST
@given(records=record_sets())
def test_reconciling_is_deterministic_and_idempotent_on_each_incidents_members(
    records: list[IncidentRecord],
) -> None:
    result = reconcile(records)
    assert dump(reconcile(records)) == dump(result)
    by_id = {r.article_id: r for r in records}
    for incident in result.incidents:
        again = reconcile([by_id[a] for a in incident.article_ids])
        assert [dump_incident(i) for i in again.incidents] == [dump_incident(incident)]


@FAST
@given(records=record_sets(), data=st.data())
def test_adding_an_agreeing_record_never_creates_a_contradiction(
    records: list[IncidentRecord], data: st.DataObject
) -> None:
    original = data.draw(st.sampled_from(records))
    copy = original.model_copy(
        update={
            "article_id": "sha256:copy",
            "provenance": original.provenance.model_copy(
                update={"article_id": "sha256:copy", "outlet": "Copycat"}
            ),
        }
    )
    before = reconcile(records)
    after = reconcile([*records, copy])

    def contradictions(result: ReconcileResult) -> int:
        return sum(1 for i in result.incidents for f in i.fields if f.verdict == "contradiction")

    # The copy lands in its original's incident, or alone when nothing links
    # the original either (all its linking values ungrounded).
    home = [i for i in after.incidents if "sha256:copy" in i.article_ids][0]
    assert original.article_id in home.article_ids or home.article_ids == ["sha256:copy"]
    assert contradictions(after) <= contradictions(before)


@FAST
@given(records=record_sets(), data=st.data())
def test_removing_one_incident_leaves_the_others_unchanged(
    records: list[IncidentRecord], data: st.DataObject
) -> None:
    before = reconcile(records)
    removed = data.draw(st.sampled_from(before.incidents))
    remaining = [r for r in records if r.article_id not in set(removed.article_ids)]
    after = reconcile(remaining)
    expected = sorted(dump_incident(i) for i in before.incidents if i.id != removed.id)
    assert sorted(dump_incident(i) for i in after.incidents) == expected


@FAST
@given(records=record_sets())
def test_streamed_files_equal_the_in_memory_result(records: list[IncidentRecord]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        write_outputs(reconcile(records), out / "memory")
        reconcile_to_dir(records, out / "stream")
        for name in ("incidents.jsonl", "conflicts.jsonl"):
            assert (out / "memory" / name).read_bytes() == (out / "stream" / name).read_bytes()
