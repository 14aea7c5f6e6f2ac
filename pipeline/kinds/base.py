"""What every kind of field has: a strategy that reads, relates, checks and keys its values.

Two values of one field are compared in two steps:

* ``normalize(text, ctx)`` turns a raw value into a :class:`Normalized`: a
  ``form`` (the canonical spelling: two values with the same form are the same
  value, e.g. "Arizona" and "Ariz." both have form "AZ") and kind-specific
  ``data`` (a date span, a count range, a resolved city...);
* ``relate(a, b)`` says how two values relate: the same (equal forms), the
  same value in another form (``VARIANT``), one more specific than the other,
  or a ``CONTRADICTION``.

The same form is what eval compares (``eval_key``), so eval and reconcile
cannot disagree on whether two values are the same; ``supports`` is the check
that a value is stated by its evidence.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date
from enum import Enum
from typing import Any

from rapidfuzz import fuzz

from pipeline.kinds.support import AgencyLookup, ValueKind, check_support
from pipeline.kinds.words import ARTICLES, fold
from schemas.kinds import KindName
from schemas.record import Cited, IncidentRecord

# Normalisation is memoised: a 100k-record run sees each name, place and
# phrase many times. Caches smaller than a run's distinct values thrash (a
# 200k limit made 100k records 40% slower); ``clear_caches`` empties them
# after each run so a long-lived process does not keep them.
CACHE_SIZE = 1 << 21


class Relation(Enum):
    SAME = "same"
    VARIANT = "variant"
    LEFT_MORE_SPECIFIC = "left-more-specific"
    RIGHT_MORE_SPECIFIC = "right-more-specific"
    CONTRADICTION = "contradiction"


@dataclass(frozen=True)
class ValueContext:
    """What a value needs from its record to be understood: the publication
    date (for 'Friday') and the record's state/country (for 'Springfield')."""

    published: date | None = None
    state: str | None = None
    country: str | None = None


NO_CONTEXT = ValueContext()


def record_context(record: IncidentRecord) -> ValueContext:
    """The context a record's values are read in: its publication date, state and country."""

    def text(cited: Cited[Any] | None) -> str | None:
        return str(cited.value) if cited is not None and cited.value is not None else None

    return ValueContext(
        published=record.provenance.published,
        state=text(record.where.state),
        country=text(record.where.country),
    )


@dataclass(frozen=True)
class Normalized:
    form: str
    data: object = None


class KindStrategy(ABC):
    """The behaviour of one kind of field (:data:`schemas.kinds.KindName`).

    Subclasses say how a value is read (:meth:`normalize`) and how two values
    with different forms relate (:meth:`relate_forms`); the evidence check is
    the one named by ``support`` unless a subclass overrides :meth:`supports`.
    """

    support: ValueKind
    """How a value's evidence is checked (:func:`pipeline.kinds.support.check_support`)."""

    def __init__(self, name: KindName, *, support: ValueKind | None = None) -> None:
        self.name: KindName = name
        if support is not None:
            self.support = support

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @abstractmethod
    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        """The comparison form of ``text``; ``field`` is the field's template path, for the kinds
        whose vocabulary depends on the field (a category's classes)."""

    def relate(self, a: Normalized, b: Normalized) -> Relation:
        """How value ``a`` relates to value ``b``."""
        return Relation.SAME if a.form == b.form else self.relate_forms(a, b)

    @abstractmethod
    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        """How two values whose forms differ relate."""

    def supports(self, value: Any, text: str, agencies: AgencyLookup | None = None) -> bool | None:
        """Whether ``text`` states ``value``; None when that cannot be checked."""
        return check_support(value, text, kind=self.support, agencies=agencies)

    def eval_key(self, value: Any, ctx: ValueContext = NO_CONTEXT, field: str = "") -> str | None:
        """What eval compares: the form, so a value is graded right exactly when reconcile
        would count it as the gold value; None for no value."""
        if value is None:
            return None
        text = str(value)
        if not text.strip():
            return None
        return self.normalize(text, ctx, field).form

    def context(self, ctx: ValueContext) -> ValueContext:
        """The part of a record's context this kind reads: normalisation caches keyed on it
        then hit across records. Most kinds read none."""
        return NO_CONTEXT


# --------------------------------------------------------------------------- text

PUNCT = re.compile(r"[^\w\s]")


def clean_text(text: str) -> str:
    """Folded, punctuation-free, article-free text: the base of most forms."""
    words = PUNCT.sub(" ", fold(text)).split()
    return " ".join(w for w in words if w not in ARTICLES)


def slug(text: str) -> str:
    return "-".join(PUNCT.sub(" ", fold(text)).split())


def relate_text(a: str, b: str) -> Relation:
    """Free text: containment is more specific, near-identical is a variant."""
    wa, wb = set(a.split()), set(b.split())
    if wa and wb and wa != wb:
        if wa < wb:
            return Relation.RIGHT_MORE_SPECIFIC  # b says everything a says, and more
        if wb < wa:
            return Relation.LEFT_MORE_SPECIFIC
    if fuzz.token_sort_ratio(a, b) >= 90:
        return Relation.VARIANT
    return Relation.CONTRADICTION


def relate_intervals(a0: int, a1: int, b0: int, b1: int) -> Relation:
    """Nested intervals: the inner one is more specific; equal ones are variants."""
    a_in_b = b0 <= a0 and a1 <= b1
    b_in_a = a0 <= b0 and b1 <= a1
    if a_in_b and b_in_a:
        return Relation.VARIANT
    if a_in_b:
        return Relation.LEFT_MORE_SPECIFIC
    if b_in_a:
        return Relation.RIGHT_MORE_SPECIFIC
    return Relation.CONTRADICTION
