"""Extraction plans: how an article is put to the model.

A plan names the contract and the prompt variant. It is recorded in every
record's provenance and in the cache key, and ``benchmarks/embedded_models.py``
measures each one. Kept apart from ``pipeline.extract.extractor`` so the CLI can list the
plans without importing the model client.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """How an article is put to the model: the contract and the prompt variant.

    Recorded in every record's provenance and in the cache key.
    """

    name: str
    worked_example: bool
    description: str


PLANS: dict[str, Plan] = {
    plan.name: plan
    for plan in (
        Plan(
            "flat",
            True,
            "one call: flat values with sentence numbers, one invented worked example in the system prompt",
        ),
        Plan("flat-no-example", False, "one call: flat values with sentence numbers, no worked example"),
    )
}
DEFAULT_PLAN = "flat"

PLAN_NAMES = frozenset(PLANS)
