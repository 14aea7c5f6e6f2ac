"""What kind of value a record field holds, declared once, on the schema.

Each field of the record carries a :class:`Kind` in its ``Annotated`` metadata::

    city: Annotated[Cited[str] | None, Kind("city")] = None

Every stage that treats fields differently (evidence, grounding, reconcile,
eval, tables) reads the kind from there through :mod:`schemas.fields`; none
keeps its own list of fields. Adding a field is one line in ``schemas/`` (plus
its guidance in the prompt, if the model should fill it). What each kind does
is its strategy in :mod:`pipeline.kinds.strategies`.

A cited field that declares no kind gets the default for its value type
(:data:`DEFAULT_KINDS`), so ``race: Cited[str] | None = None`` is a field of
kind ``category``; a field the defaults cannot classify is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

KindName = Literal[
    "date",  # an ISO date, resolved from relative wording
    "date_phrase",  # the date words as written ("Friday morning")
    "time",  # clock time or part of day
    "place_text",  # a street, address or landmark
    "city",
    "county",
    "state",
    "country",
    "category",  # a short label from a small vocabulary ("shooting", "killed", "male")
    "label",  # a proper-noun label, compared as a category, checked word for word (an operation name)
    "place_category",  # a closed place label, compared as a category, checked word for word ("at the scene")
    "summary",  # free text that may paraphrase
    "person",  # a person's name
    "age",
    "count",  # how many: digits, or "plural"
    "severity",  # injuries or condition as worded
    "boolean",
    "agency",
    "quote",  # a statement's words
    "speaker",  # who made a statement
    "affiliation",  # the agency or role of a statement's speaker, as written
    "precision",  # how precise a date or place is (set by the pipeline from the values)
]


@dataclass(frozen=True)
class Kind:
    """The kind of a record field (see :data:`KindName`), put in its ``Annotated`` metadata."""

    name: KindName


DEFAULT_KINDS: dict[type, KindName] = {
    # A bare string fact is most often a short label ("male", "Hispanic", "vehicle").
    # "category" rather than "summary": two labels that differ are flagged as a
    # contradiction for review, where summaries would pass as variants of one
    # another; and its evidence check tolerates paraphrase, so a label stated in
    # other words is left unchecked, never marked unsupported.
    str: "category",
    bool: "boolean",
}
"""The kind of a ``Cited`` field that declares none, by the type of its value."""
