"""The registry: one strategy object per kind of field.

A field's kind is declared on the schema (:mod:`schemas.kinds`) and found by the
field registry (:mod:`schemas.fields`); :data:`STRATEGIES` says what the kind
does: how a value is normalised, how two values relate, how its evidence is
checked and what eval compares. Ground, reconcile and evaluate look a field's
strategy up here (:func:`strategy_for`) rather than branching on kind names, so
a new field of an existing kind needs nothing here, and a new kind needs
exactly one entry (a test fails otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from pipeline.kinds.base import KindStrategy
from pipeline.kinds.counts import AgeStrategy, CountStrategy
from pipeline.kinds.dates import DatePhraseStrategy, DateStrategy, TimeStrategy
from pipeline.kinds.labels import BooleanStrategy, CategoryStrategy, SeverityStrategy, SummaryStrategy
from pipeline.kinds.people import AgencyStrategy, PersonStrategy, QuoteStrategy, SpeakerStrategy
from pipeline.kinds.places import (
    CityStrategy,
    CountryStrategy,
    CountyStrategy,
    PlaceTextStrategy,
    StateStrategy,
)
from schemas.fields import field_kinds
from schemas.kinds import KindName

# Every strategy, each naming the kind it serves.
ALL_STRATEGIES: tuple[KindStrategy, ...] = (
    DateStrategy("date"),
    DatePhraseStrategy("date_phrase"),
    TimeStrategy("time"),
    PlaceTextStrategy("place_text"),
    CityStrategy("city"),
    CountyStrategy("county"),
    StateStrategy("state"),
    CountryStrategy("country"),
    CategoryStrategy("category"),  # "vehicle", "unarmed", a weapon: often paraphrased
    CategoryStrategy("label", support="phrase"),
    CategoryStrategy("place_category", support="phrase"),
    # Set by the pipeline from a closed vocabulary ("day", "month"): a label, checked nowhere.
    CategoryStrategy("precision"),
    SummaryStrategy("summary"),
    SummaryStrategy("affiliation"),
    PersonStrategy("person"),
    AgeStrategy("age"),
    CountStrategy("count"),
    SeverityStrategy("severity"),
    BooleanStrategy("boolean"),
    AgencyStrategy("agency"),
    QuoteStrategy("quote"),
    SpeakerStrategy("speaker"),
)

STRATEGIES: Mapping[KindName, KindStrategy] = MappingProxyType({s.name: s for s in ALL_STRATEGIES})
"""Kind name -> its strategy."""

# Field path templates (``[]`` stands for "any item of this list") -> kind, from the schema.
FIELD_KINDS: dict[str, KindName] = field_kinds()


def template_of(path: str) -> str:
    """'subjects[2].name' -> 'subjects[].name'."""
    return re.sub(r"\[\d+\]", "[]", path)


_LIST_MARKS = re.compile(r"\[\d*\]")
# Plain path (no list marks) -> kind: one lookup serves every way a path is written.
_KIND_OF_PLAIN: dict[str, KindName] = {_LIST_MARKS.sub("", t): kind for t, kind in FIELD_KINDS.items()}


def strategy_for(path: str) -> KindStrategy:
    """The strategy of the field at ``path``, written as an item (``subjects[0].name``), a
    template (``subjects[].name``) or plainly (``subjects.name``).

    Raises KeyError for a path that is not a field of the record.
    """
    return STRATEGIES[_KIND_OF_PLAIN[_LIST_MARKS.sub("", path)]]
