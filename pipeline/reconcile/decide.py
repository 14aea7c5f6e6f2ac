"""Reviewers' decisions, re-applied by every reconcile.

A decision names an incident by the id it had when the reviewer made it. Merges and splits
regroup the clusters before ids are settled (:func:`regroup`); field decisions then mark the
field of the reconciled incident (:func:`apply_field_decisions`): the decided value replaces the
merged value, the note travels with it, and the verdict and the sources' values stay beside it.

A decision that no longer applies is flagged, never dropped: its incident is gone (split away or
its articles removed), its field is no longer reported, the value it accepted is no longer
among the sources' values, or none of the articles the reviewer saw is in the incident any more.
For each field, the latest decision wins; earlier ones are superseded, not stale.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.reconcile.cluster import Cluster, incident_id, sort_records
from schemas.desk import FIELD_ACTIONS, AppliedDecision, Decision, StaleDecision
from schemas.incident import Scalar


@dataclass
class DeskState:
    """What a reconcile needs from the desk, and (after it) the ids it settled on."""

    previous: dict[str, str] = field(default_factory=dict)
    """Article id -> incident id at the last reconcile (merged ids resolved)."""
    created_at: dict[str, str] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    resolve: Callable[[str], str] = lambda incident: incident
    at: datetime | None = None
    # Filled in by the reconcile:
    assignment: Any = None
    stale: list[StaleDecision] = field(default_factory=list)
    applied: int = 0
    aliases: dict[str, list[str]] = field(default_factory=dict)


def regroup(clusters: Sequence[Cluster], decisions: Iterable[Decision], state: DeskState) -> list[Cluster]:
    """``clusters`` with the reviewers' merges and splits applied, in the order they were made."""
    groups = list(clusters)
    for decision in decisions:
        if decision.action == "merge" and decision.other_incident:
            wanted = {state.resolve(decision.incident_id), state.resolve(decision.other_incident)}
            members = {a for a, inc in state.previous.items() if state.resolve(inc) in wanted}
            members |= set(decision.article_ids)  # the articles the two incidents had when merged
            together = [g for g in groups if members & set(g.article_ids)]
            if len(together) < 2:
                continue
            records = sort_records(r for g in together for r in g.records)
            joins = tuple(j for g in together for j in g.joins)
            merged = Cluster(incident_id(r.article_id for r in records), tuple(records), joins)
            groups = [g for g in groups if g not in together] + [merged]
        elif decision.action == "split" and decision.article_ids:
            leaving = set(decision.article_ids)
            regrouped: list[Cluster] = []
            for group in groups:
                out = [r for r in group.records if r.article_id in leaving]
                stay = [r for r in group.records if r.article_id not in leaving]
                if not out or not stay:
                    regrouped.append(group)
                    continue
                for part in (stay, out):
                    ids = {r.article_id for r in part}
                    regrouped.append(
                        Cluster(
                            incident_id(ids),
                            tuple(part),
                            tuple(j for j in group.joins if j.article_id in ids),
                        )
                    )
            groups = regrouped
    return sorted(groups, key=lambda g: g.id)


def _latest_by_field(decisions: Iterable[Decision]) -> dict[tuple[str, str], Decision]:
    latest: dict[tuple[str, str], Decision] = {}
    for decision in sorted(decisions, key=lambda d: d.seq or 0):
        if decision.action in FIELD_ACTIONS and decision.field_path:
            latest[(decision.incident_id, decision.field_path)] = decision
    return latest


def field_decisions(state: DeskState) -> dict[str, list[Decision]]:
    """The decision that stands for each decided field, by the incident id it now goes by."""
    by_incident: dict[str, list[Decision]] = {}
    for (incident, _), decision in _latest_by_field(state.decisions).items():
        by_incident.setdefault(state.resolve(incident), []).append(decision)
    return by_incident


def apply_field_decisions(shape: dict[str, Any], decisions: Sequence[Decision]) -> list[StaleDecision]:
    """Mark each decided field of one incident (in its plain-dict shape) and set the decided
    value in its merged record; return the decisions that no longer apply."""
    stale: list[StaleDecision] = []
    fields = {f["path"]: f for f in shape["fields"]}
    members = set(shape["article_ids"])
    for decision in decisions:
        verdict = fields.get(decision.field_path or "")
        if verdict is None:
            stale.append(StaleDecision(decision=decision, reason="the field is no longer reported"))
            continue
        seen = {str(e.get("article_id")) for e in decision.evidence if e.get("article_id")}
        if seen and not seen & members:
            stale.append(
                StaleDecision(decision=decision, reason="none of the articles the reviewer saw is in it")
            )
            continue
        value: Scalar = decision.value
        if decision.action == "accept" and not any(_same(v["value"], value) for v in verdict["values"]):
            stale.append(
                StaleDecision(
                    decision=decision, reason="the accepted value is no longer among the sources' values"
                )
            )
            continue
        if decision.action == "resolved":
            value = verdict.get("consensus")
        verdict["decision"] = AppliedDecision(
            seq=decision.seq or 0,
            action=decision.action,
            value=value,
            note=decision.note,
            by=decision.by,
            at=decision.at,
        ).model_dump(mode="json")
        if decision.action in ("accept", "set"):
            _set_merged(shape["merged"], str(decision.field_path), value, decision.note)
    return stale


def _same(a: Any, b: Any) -> bool:
    return a == b or str(a).strip().casefold() == str(b).strip().casefold()


_STEP = re.compile(r"([a-z_]+)(?:\[(\d+)\])?")


def _set_merged(merged: dict[str, Any], path: str, value: Scalar, note: str) -> None:
    """Put the decided value at ``path`` of the merged record, as a cited value whose attribution
    says a reviewer decided it (a statement's quote or speaker is set on the statement)."""
    steps = [(m.group(1), m.group(2)) for m in _STEP.finditer(path)]
    node: Any = merged
    for name, index in steps[:-1]:
        child = node.setdefault(name, [] if index is not None else {})
        if index is not None:
            position = int(index)
            while len(child) <= position:
                child.append({})
            child = child[position]
        node = child
    last, last_index = steps[-1]
    if steps[0][0] == "statements":  # a statement's quote and speaker are plain strings
        node[last] = value
        return
    if last_index is not None:  # a list of values is never a decided leaf
        return
    previous = node.get(last) if isinstance(node.get(last), Mapping) else None
    node[last] = {
        "value": value,
        "quote": previous.get("quote", "") if previous else "",
        "attribution": f"decided by a reviewer: {note}" if note else "decided by a reviewer",
        "speaker": previous.get("speaker") if previous else None,
        "grounding": previous.get("grounding") if previous else None,
    }


def title_of(shape: Mapping[str, Any]) -> str:
    """A readable name for an incident: date · place · subject (whatever of them it has)."""
    merged = shape["merged"]

    def value(section: Any, name: str) -> str | None:
        cited = section.get(name) if isinstance(section, Mapping) else None
        if isinstance(cited, Mapping) and cited.get("value") not in (None, ""):
            return str(cited["value"])
        return None

    when, where = merged.get("when", {}), merged.get("where", {})
    date = value(when, "date") or value(when, "raw_phrase")
    city, state = value(where, "city"), value(where, "state")
    place = ", ".join(part for part in (city, state) if part) or value(where, "place")
    subjects = merged.get("subjects") or []
    subject = value(subjects[0], "name") if subjects else None
    parts = [part for part in (date, place, subject) if part]
    return " · ".join(parts) if parts else shape["id"]
