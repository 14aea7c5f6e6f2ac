"""Incident ids that last: an incident keeps its id as articles join it.

Clustering names each group of records after a hash of its members, so the name changes as
soon as an article joins. Dashboards, notes and decisions key on incident ids, so the
reconciler maps every new group onto the incidents it had before (:func:`assign_ids`):

* a group holding articles of exactly one earlier incident keeps that incident's id, and the
  articles new to it are logged as ``joined``;
* a group holding articles of several earlier incidents is their merge: it keeps the oldest
  id, and the others are recorded as merged into it (an alias that still resolves);
* when an earlier incident's articles end up in several groups, the group holding most of them
  keeps the id, and each other group gets a new id with a ``split`` note naming where it came
  from;
* a group of articles never seen before gets a new id, its members' hash.

Reviewers' merges and splits (``pipeline.reconcile.decide``) are applied to the groups first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from pipeline.reconcile.cluster import Cluster
from schemas.desk import IncidentChange


@dataclass
class Assignment:
    """The ids one reconcile settles on, and what changed since the last one."""

    clusters: list[Cluster]
    """The groups, each under its lasting id, sorted by id."""
    members: dict[str, str] = field(default_factory=dict)
    """Article id -> incident id."""
    created: list[str] = field(default_factory=list)
    merged: dict[str, str] = field(default_factory=dict)
    """Old id -> the id it was merged into."""
    changes: list[IncidentChange] = field(default_factory=list)


def assign_ids(
    clusters: Sequence[Cluster],
    previous: Mapping[str, str],
    created_at: Mapping[str, str],
    *,
    at: datetime,
) -> Assignment:
    """Give each of ``clusters`` a lasting id, given where each article was before (``previous``:
    article id -> incident id, merged ids already resolved) and when each id was created."""
    # Which earlier incidents each group holds articles of, and how many.
    holds: list[Counter[str]] = [
        Counter(previous[a] for a in cluster.article_ids if a in previous) for cluster in clusters
    ]
    # Each earlier id goes to the group that holds most of its articles (ties: the group whose
    # hash id sorts first, so the choice never depends on input order).
    claimant: dict[str, int] = {}
    for old in sorted({old for held in holds for old in held}):
        claimant[old] = min(
            (index for index, held in enumerate(holds) if old in held),
            key=lambda index: (-holds[index][old], clusters[index].id),
        )
    result = Assignment(clusters=[])
    taken: set[str] = set(created_at)
    for index, cluster in enumerate(clusters):
        claimed = sorted(
            (old for old, winner in claimant.items() if winner == index),
            key=lambda old: (created_at.get(old, ""), old),
        )
        if claimed:
            keep = claimed[0]
            for other in claimed[1:]:
                result.merged[other] = keep
                result.changes.append(
                    IncidentChange(
                        at=at,
                        incident_id=keep,
                        change="merged",
                        detail=f"{other} merged into {keep}: their articles are one incident",
                        article_ids=sorted(a for a in cluster.article_ids if previous.get(a) == other),
                        other_incident=other,
                    )
                )
            joined = sorted(a for a in cluster.article_ids if a not in previous)
            if joined:
                result.changes.append(
                    IncidentChange(
                        at=at,
                        incident_id=keep,
                        change="joined",
                        detail=f"{len(joined)} article(s) joined",
                        article_ids=joined,
                    )
                )
            incident_id = keep
        else:
            incident_id = _fresh_id(cluster.id, taken)
            result.created.append(incident_id)
            origins = sorted(holds[index])
            if origins:
                result.changes.append(
                    IncidentChange(
                        at=at,
                        incident_id=incident_id,
                        change="split",
                        detail="split from " + ", ".join(origins),
                        article_ids=sorted(cluster.article_ids),
                        other_incident=origins[0],
                    )
                )
            else:
                result.changes.append(
                    IncidentChange(
                        at=at,
                        incident_id=incident_id,
                        change="created",
                        detail=f"{len(cluster.article_ids)} article(s)",
                        article_ids=sorted(cluster.article_ids),
                    )
                )
        taken.add(incident_id)
        result.clusters.append(replace(cluster, id=incident_id))
        for article_id in cluster.article_ids:
            result.members[article_id] = incident_id
    result.clusters.sort(key=lambda c: c.id)
    return result


def _fresh_id(wanted: str, taken: set[str]) -> str:
    """The members' hash id, unless an id of that name was given out before (then a suffix)."""
    if wanted not in taken:
        return wanted
    suffix = 2
    while f"{wanted}-{suffix}" in taken:
        suffix += 1
    return f"{wanted}-{suffix}"
