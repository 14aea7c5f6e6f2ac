"""The editor's desk: a reviewer's decisions about incidents, and the history of incident ids.

Decisions are kept append-only in the run store and re-applied by every later reconcile, so a
value an editor settled stays settled however often the records are reconciled again. An
incident keeps its id when articles join it; merges and splits are logged as changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Scalar = str | int | float | bool | None

DecisionAction = Literal["accept", "set", "resolved", "merge", "split"]
"""``accept``: one of the sources' values is right. ``set``: the right value is one the
reviewer gives (with a note saying why). ``resolved``: the conflict is settled as the
reconciler merged it. ``merge``: this incident and ``other_incident`` are one. ``split``:
``article_ids`` are another incident."""

FIELD_ACTIONS: tuple[DecisionAction, ...] = ("accept", "set", "resolved")


class Decision(BaseModel):
    """One reviewer decision, as recorded (never edited; a later decision on the same field wins)."""

    seq: int | None = Field(default=None, description="Order of recording in the run store.")
    at: datetime
    by: str = Field(description="Who decided (a name or initials).")
    incident_id: str = Field(description="The incident, by the id it had when the decision was made.")
    action: DecisionAction
    field_path: str | None = Field(default=None, description="e.g. 'subjects[0].place_of_death'.")
    value: Scalar = None
    note: str = ""
    other_incident: str | None = Field(default=None, description="merge: the incident merged in.")
    article_ids: list[str] = Field(
        default_factory=list,
        description="split: the articles split off; merge: the two incidents' articles when merged.",
    )
    evidence: list[dict[str, Scalar]] = Field(
        default_factory=list,
        description="What the reviewer saw: each value with its articles and quotes when deciding.",
    )


class AppliedDecision(BaseModel):
    """A decision as it stands on a field of a reconciled incident."""

    seq: int
    action: DecisionAction
    value: Scalar = None
    note: str = ""
    by: str
    at: datetime


class StaleDecision(BaseModel):
    """A decision that no longer applies, and why; flagged, never dropped."""

    decision: Decision
    reason: str


class IncidentChange(BaseModel):
    """One line of the incident_changes log."""

    seq: int | None = None
    at: datetime
    incident_id: str
    change: Literal["created", "joined", "left", "merged", "split", "renamed"]
    detail: str = ""
    article_ids: list[str] = Field(default_factory=list)
    other_incident: str | None = None
