"""Places: streets and landmarks, cities (through the gazetteer), counties, states and
countries, and the strategies of the ``place_text``, ``city``, ``county``, ``state`` and
``country`` kinds."""

from __future__ import annotations

from dataclasses import dataclass

from rapidfuzz import fuzz

from pipeline.kinds.base import (
    NO_CONTEXT,
    PUNCT,
    KindStrategy,
    Normalized,
    Relation,
    ValueContext,
    clean_text,
    relate_text,
)
from pipeline.kinds.gazetteer import PlaceName, get_gazetteer
from pipeline.kinds.support import ValueKind
from pipeline.kinds.words import ARTICLES, fold

_STREET_WORDS = {
    "st": "street", "ave": "avenue", "av": "avenue", "blvd": "boulevard", "rd": "road", "dr": "drive",
    "ln": "lane", "hwy": "highway", "pkwy": "parkway", "ct": "court", "pl": "place", "n": "north",
    "s": "south", "e": "east", "w": "west", "&": "and",
}  # fmt: skip
_PLACE_FILLER = {"near", "at", "on", "of", "intersection", "corner", "area", "and", "block", "in"}


def _place_words(text: str) -> str:
    words = PUNCT.sub(" ", fold(text).replace("&", " and ")).split()
    return " ".join(_STREET_WORDS.get(w, w) for w in words if w not in ARTICLES)


def _place_core(words: str) -> frozenset[str]:
    return frozenset(w for w in words.split() if w not in _PLACE_FILLER)


def _relate_place_text(a: str, b: str) -> Relation:
    ca, cb = _place_core(a), _place_core(b)
    if ca and ca == cb:
        return Relation.VARIANT
    return relate_text(" ".join(sorted(ca)) or a, " ".join(sorted(cb)) or b)


@dataclass(frozen=True)
class CityValue:
    place: PlaceName


def _city_form(place: PlaceName) -> str:
    if place.city is None:
        return place.folded
    base = f"{place.city.name}, {place.city.admin1}, {place.city.country}"
    return base + " (area)" if place.is_metro_phrase else base


def _relate_city(a: PlaceName, b: PlaceName) -> Relation:
    gazetteer = get_gazetteer()
    ca, cb = a.city, b.city
    if ca is not None and cb is not None:
        if ca.geonameid == cb.geonameid:
            # "Phoenix" names the city; "Phoenix area" the metro around it.
            if a.is_metro_phrase != b.is_metro_phrase:
                return Relation.RIGHT_MORE_SPECIFIC if a.is_metro_phrase else Relation.LEFT_MORE_SPECIFIC
            return Relation.VARIANT
        if gazetteer.metro_core(ca).geonameid == cb.geonameid:
            return Relation.LEFT_MORE_SPECIFIC
        if gazetteer.metro_core(cb).geonameid == ca.geonameid:
            return Relation.RIGHT_MORE_SPECIFIC
        return Relation.CONTRADICTION
    if fuzz.ratio(a.folded, b.folded) >= 90:
        return Relation.VARIANT
    return Relation.CONTRADICTION


_COUNTY_WORDS = frozenset({"county", "parish", "borough"})


# --------------------------------------------------------------------------- strategies


class PlaceTextStrategy(KindStrategy):
    """A street, address or landmark: street abbreviations spelled out; the same words in
    another order or with other filler ("near", "the intersection of") are a variant."""

    support: ValueKind = "phrase"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        return Normalized(_place_words(text), None)

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        return _relate_place_text(a.form, b.form)


class CityStrategy(KindStrategy):
    """A city resolved in the gazetteer, within the record's state and country: a suburb is more
    specific than the metro core it lies in, and "Phoenix area" less specific than Phoenix."""

    support: ValueKind = "phrase"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        gazetteer = get_gazetteer()
        place = gazetteer.place_name(
            text, gazetteer.state_code(ctx.state), gazetteer.country_code(ctx.country) or None
        )
        return Normalized(_city_form(place), CityValue(place))

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        assert isinstance(a.data, CityValue) and isinstance(b.data, CityValue)
        return _relate_city(a.data.place, b.data.place)

    def context(self, ctx: ValueContext) -> ValueContext:
        return ValueContext(state=ctx.state, country=ctx.country)


class CountyStrategy(KindStrategy):
    """A county without the word "county" ("Maricopa County" is "maricopa"); near-identical
    spellings are a variant."""

    support: ValueKind = "phrase"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        return Normalized(" ".join(w for w in clean_text(text).split() if w not in _COUNTY_WORDS), None)

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        return Relation.VARIANT if fuzz.ratio(a.form, b.form) >= 90 else Relation.CONTRADICTION


class StateStrategy(KindStrategy):
    """A state or province as its code ("Ariz." and "Arizona" are "AZ"); two states differ."""

    support: ValueKind = "phrase"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        gazetteer = get_gazetteer()
        code = gazetteer.state_code(text)
        return Normalized(code or gazetteer.country_code(text) or clean_text(text), None)

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        return Relation.CONTRADICTION


class CountryStrategy(KindStrategy):
    """A country as its ISO code ("U.S." and "United States" are "US"); two countries differ."""

    support: ValueKind = "phrase"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        code = get_gazetteer().country_code(text)
        return Normalized(code or clean_text(text), None)

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        return Relation.CONTRADICTION
