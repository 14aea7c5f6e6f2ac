"""The report of ``triangulate eval``: records scored against gold annotations.

Written as JSON by ``triangulate eval --json``; dashboards and CI read it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class FieldScore(BaseModel):
    """Scores for one gold field key (e.g. ``subjects[0].name``) over all graded articles."""

    field: str
    graded: int = Field(description="Gold articles that grade this field (missing records included).")
    score: float = Field(description="Sum of per-article scores: 1/0 for scalars, Jaccard for '[]' set keys.")
    accuracy: float | None = Field(description="score / graded; null when nothing is graded.")
    exact_sets: int | None = Field(
        default=None, description="For '[]' keys: articles whose value set equals the gold set."
    )
    cited_values: int = Field(default=0, description="Non-null cited values found at this path.")
    grounded: int = Field(default=0, description="Of those, how many were located (status != unfound).")
    unsupported: int = Field(default=0, description="Of those, how many have supported == False.")
    grounding_rate: float | None = None
    unsupported_rate: float | None = None


class Mismatch(BaseModel):
    """One graded field where the record differs from gold (for a reviewer to look at)."""

    article: str
    field: str
    gold: Any = None
    got: Any = None
    score: float = 0.0
    reason: str = Field(description="'wrong', 'missing-record', 'should-be-null', 'partial-set'.")


class EvalReport(BaseModel):
    records_read: int
    unreadable_lines: list[str] = Field(default_factory=list, description="'LINE: error' per bad line.")
    gold_articles: int
    matched_articles: int
    missing_records: list[str] = Field(
        default_factory=list, description="Gold articles with no record; they score 0 on every field."
    )
    unmatched_records: list[str] = Field(
        default_factory=list, description="Records (source path or id) with no gold article."
    )
    duplicate_records: list[str] = Field(
        default_factory=list,
        description="Gold articles matched by more than one record; the first is scored.",
    )
    fields: list[FieldScore]
    graded: int = Field(description="Graded (article, field) pairs over all fields.")
    score: float
    accuracy: float | None = Field(description="Micro average over all graded pairs.")
    cited_values: int = Field(description="Non-null cited values over all records read.")
    grounded: int
    unsupported: int
    not_grounded_yet: int = Field(
        default=0, description="Cited values with no grounding at all (the record was never grounded)."
    )
    grounding_rate: float | None
    unsupported_rate: float | None
    mismatches: list[Mismatch] = Field(default_factory=list)
