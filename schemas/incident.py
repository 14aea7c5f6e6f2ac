"""Merged incidents: records clustered into incidents, a verdict for every field.

``pipeline.reconcile.cluster`` groups records (one per article) into incidents and says
why each record joined; ``pipeline.reconcile.merge`` compares the records of an
incident field by field. Every distinct value keeps its evidence: the
articles, quotes and speakers behind it, and how many independent sources
those amount to (five outlets quoting one DHS statement are one source).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from schemas.desk import AppliedDecision, StaleDecision
from schemas.record import GroundingStatus, IncidentFacts

# ``same`` and ``partial`` are given to statements only (``statements[i].quote``,
# ``statements[i].speaker``): a quotation is words someone said, so articles
# quoting more or less of it never contradict one another.
Verdict = Literal[
    "agreed",
    "variant",
    "more-specific",
    "contradiction",
    "single-source",
    "not-reported",
    "same",
    "partial",
]

# Verdicts a reviewer should look at; these become rows of conflicts.jsonl.
# ``partial`` is shown because an excerpt can change what a statement seems to
# say ("the agent fired" without "fearing for his life"), yet it is never a
# contradiction: no count of contradictions includes it.
FLAGGED_VERDICTS: tuple[Verdict, ...] = (
    "variant",
    "more-specific",
    "contradiction",
    "single-source",
    "partial",
)

Scalar = str | int | float | bool | None


class SourceCitation(TypedDict):
    """One article's evidence for one value.

    A typed dict rather than a model: a 100k-record run holds over a million
    of them, and a plain dict costs half the memory and time of a model.
    """

    article_id: str
    outlet: str | None
    quote: str
    attribution: str
    speaker: Annotated[
        str, Field(description="Canonical speaker id, or a fallback from the attribution when none was set.")
    ]
    source_group: Annotated[
        str,
        Field(
            description="The independent source this citation belongs to: citations sharing a speaker, "
            "or whose quotes are near-identical across outlets (copying), share a group."
        ),
    ]
    grounding: Annotated[
        GroundingStatus | None,
        Field(description="How the quote was located; null when the record was never grounded."),
    ]
    decides: Annotated[
        bool,
        Field(
            description="Whether this citation may decide a verdict: false when its quote was not found "
            "in the article or does not support the value."
        ),
    ]


class ValueSupport(BaseModel):
    """One distinct value of a field, and everything behind it."""

    value: Scalar
    form: str = Field(description="The comparison form: values with the same form are the same value.")
    article_ids: list[str]
    speakers: list[str]
    n_articles: int
    n_independent_sources: int
    sources: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Each independent source counted, with the speakers it groups "
        "(e.g. 'agency:dhs': ['agency:dhs', 'agency:ice']).",
    )
    decides: bool = Field(description="At least one citation of this value is evidence.")
    citations: list[SourceCitation]


class FieldVerdict(BaseModel):
    path: str = Field(description="Field path into the merged record, e.g. 'subjects[0].name'.")
    verdict: Verdict
    values: list[ValueSupport] = Field(description="Most independent support first.")
    consensus: Scalar = None
    rule: str | None = Field(
        default=None, description="The rule that chose the consensus (or why there is none)."
    )
    note: str | None = None
    n_articles: int = 0
    n_independent_sources: int = 0
    sources: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Each independent source counted, with the speakers it groups "
        "(e.g. 'agency:dhs': ['agency:dhs', 'agency:ice']).",
    )
    decision: AppliedDecision | None = Field(
        default=None,
        description="A reviewer's decision on this field, re-applied at every reconcile; the verdict "
        "and the sources' values stay as the sources give them.",
    )


class JoinReason(BaseModel):
    """Why a record belongs to its incident: its strongest link to another member."""

    article_id: str
    linked_to: str | None = Field(description="The member it matched best; null for a one-record incident.")
    score: float = 0.0
    matched: dict[str, float] = Field(
        default_factory=dict, description="Field -> 0-100 similarity, e.g. {'date': 100, 'subject': 96.3}."
    )


class Incident(BaseModel):
    id: str = Field(
        description="Lasting: a new incident is named after a hash of its members, and keeps that id "
        "as articles join it (see pipeline.reconcile.stable)."
    )
    title: str = Field(default="", description="Readable: date · place · subject, from the merged record.")
    aliases: list[str] = Field(default_factory=list, description="Ids of incidents merged into this one.")
    article_ids: list[str]
    joins: list[JoinReason]
    merged: IncidentFacts = Field(
        description="One record: the consensus value of every field, with a citation."
    )
    fields: list[FieldVerdict]
    stale_decisions: list[StaleDecision] = Field(
        default_factory=list, description="Decisions on this incident that no longer apply, and why."
    )


class ConflictValue(BaseModel):
    value: Scalar
    form: str
    article_ids: list[str]
    speakers: list[str]
    n_articles: int
    n_independent_sources: int
    sources: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Each independent source counted, with the speakers it groups "
        "(e.g. 'agency:dhs': ['agency:dhs', 'agency:ice']).",
    )
    decides: bool


class Conflict(BaseModel):
    """One flagged field of one incident (a line of conflicts.jsonl)."""

    incident_id: str
    path: str
    verdict: Verdict
    values: list[ConflictValue]
    consensus: Scalar = None
    rule: str | None = None
    note: str | None = None
    decision: AppliedDecision | None = None


class ReconcileResult(BaseModel):
    incidents: list[Incident]
    conflicts: list[Conflict]
