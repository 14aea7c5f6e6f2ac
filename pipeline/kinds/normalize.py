"""Comparison keys for every field of an incident record, by field path.

Two values of one field are compared in two steps, both done by the field's
kind strategy (:mod:`pipeline.kinds.strategies`):

* ``normalize_value(path, value, ctx)`` turns a raw value into a ``Normalized``:
  a ``form`` (the canonical spelling: two values with the same form are the
  same value, e.g. "Arizona" and "Ariz." both have form "AZ") and kind-specific
  ``data`` (a date span, a count range, a resolved city...);
* ``relate(path, a, b)`` says how two values relate: the same, the same value
  in another form (``VARIANT``), one more specific than the other, or a
  ``CONTRADICTION``.

Every field path of ``IncidentRecord`` has a kind (``FIELD_KINDS``). List items
(``subjects[]``, ``agencies[]``, ``statements[]``) are matched across records
by ``name_similarity``, ``agency_key`` and quote similarity respectively,
before their fields are compared.

What each kind does lives with its kind: :mod:`.dates`, :mod:`.places`,
:mod:`.people`, :mod:`.counts`, :mod:`.labels`. The parsers re-exported here
are the ones other stages use directly (list-item matching, clustering,
evidence).
"""

from __future__ import annotations

from pipeline.kinds.base import (
    CACHE_SIZE,
    KindStrategy,
    Normalized,
    Relation,
    ValueContext,
    clean_text,
    slug,
)
from pipeline.kinds.counts import CountRange, parse_count
from pipeline.kinds.dates import DateSpan, TimeSpan, resolve_date
from pipeline.kinds.labels import Category, Severity, parse_bool
from pipeline.kinds.people import (
    AGENCY_ALIASES,
    NAME_MATCH,
    agency_key,
    fallback_speaker,
    name_similarity,
    name_tokens,
    quote_key,
    quotes_match,
    soundex,
)
from pipeline.kinds.places import CityValue
from pipeline.kinds.strategies import FIELD_KINDS, STRATEGIES, strategy_for, template_of
from pipeline.kinds.words import fold

__all__ = [
    "AGENCY_ALIASES",
    "CACHE_SIZE",
    "FIELD_KINDS",
    "NAME_MATCH",
    "STRATEGIES",
    "Category",
    "CityValue",
    "CountRange",
    "DateSpan",
    "KindStrategy",
    "Normalized",
    "Relation",
    "Severity",
    "TimeSpan",
    "ValueContext",
    "agency_key",
    "clean_text",
    "clear_caches",
    "eval_key",
    "fallback_speaker",
    "name_similarity",
    "name_tokens",
    "normalize_value",
    "parse_bool",
    "parse_count",
    "quote_key",
    "quotes_match",
    "relate",
    "resolve_date",
    "slug",
    "soundex",
    "strategy_for",
    "template_of",
]


def normalize_value(path: str, value: object, ctx: ValueContext) -> Normalized:
    """The comparison form of one value of the field at ``path``."""
    template = template_of(path)
    return strategy_for(template).normalize(str(value), ctx, template)


def relate(path: str, a: Normalized, b: Normalized) -> Relation:
    """How value ``a`` relates to value ``b`` of the field at ``path``."""
    return strategy_for(path).relate(a, b)


def eval_key(path: str, value: object, ctx: ValueContext) -> str | None:
    """What eval compares for one value of the field at ``path``: its form (None for no value)."""
    template = template_of(path)
    return strategy_for(template).eval_key(value, ctx, template)


def clear_caches() -> None:
    """Drop memoised normalisations (called after each reconcile run)."""
    for cached in (
        name_tokens,
        name_similarity,
        resolve_date,
        parse_count,
        agency_key,
        fallback_speaker,
        quote_key,
        fold,
    ):
        cached.cache_clear()
