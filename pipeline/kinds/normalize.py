"""Comparison keys for every field of an incident record.

Two values of one field are compared in two steps:

* ``normalize_value(kind, value, ctx)`` turns a raw value into a ``Normalized``:
  a ``form`` (the canonical spelling: two values with the same form are the
  same value, e.g. "Arizona" and "Ariz." both have form "AZ") and kind-specific
  ``data`` (a date span, a count range, a resolved city...);
* ``relate(kind, a, b)`` says how two values with different forms relate:
  the same value in another form (``VARIANT``), one more specific than the
  other, or a ``CONTRADICTION``.

Every field path of ``IncidentRecord`` has a kind (``FIELD_KINDS``). List items
(``subjects[]``, ``agencies[]``, ``statements[]``) are matched across records
by ``name_similarity``, ``agency_key`` and quote similarity respectively,
before their fields are compared.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from enum import Enum
from functools import lru_cache
from typing import Literal

from rapidfuzz import fuzz

from pipeline.kinds.gazetteer import PlaceName, fold, get_gazetteer
from pipeline.kinds.words import MONTH_NUMBERS, NUMBER_WORDS, WEEKDAYS
from schemas.fields import field_kinds
from schemas.kinds import KindName

# Normalisation is memoised: a 100k-record run sees each name, place and
# phrase many times. Caches smaller than a run's distinct values thrash (a
# 200k limit made 100k records 40% slower); ``clear_caches`` empties them
# after each run so a long-lived process does not keep them.
CACHE_SIZE = 1 << 21

Kind = KindName

# Kinds compared as labels from a small vocabulary; ``label`` and ``place_category`` differ
# from ``category`` only in how their evidence is checked (pipeline.evidence.ground).
CATEGORY_KINDS: frozenset[str] = frozenset({"category", "label", "place_category"})

# Field path templates (``[]`` stands for "any item of this list") -> kind, from the schema.
FIELD_KINDS: dict[str, Kind] = field_kinds()


def template_of(path: str) -> str:
    """'subjects[2].name' -> 'subjects[].name'."""
    return re.sub(r"\[\d+\]", "[]", path)


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


@dataclass(frozen=True)
class Normalized:
    form: str
    data: object = None


# --------------------------------------------------------------------------- text


_PUNCT = re.compile(r"[^\w\s]")
_ARTICLES = {"a", "an", "the"}


def clean_text(text: str) -> str:
    """Folded, punctuation-free, article-free text: the base of most forms."""
    words = _PUNCT.sub(" ", fold(text)).split()
    return " ".join(w for w in words if w not in _ARTICLES)


def slug(text: str) -> str:
    return "-".join(_PUNCT.sub(" ", fold(text)).split())


# --------------------------------------------------------------------------- names

_NAME_NOISE = {"mr", "mrs", "ms", "dr", "jr", "sr", "ii", "iii", "iv"}


@lru_cache(maxsize=CACHE_SIZE)
def name_tokens(name: str) -> tuple[str, ...]:
    """Folded name tokens: case, accents, hyphens and titles removed."""
    text = fold(name).replace("-", " ").replace("'", "").replace("\u2019", "")
    return tuple(t for t in _PUNCT.sub(" ", text).split() if t not in _NAME_NOISE)


def _token_score(short: str, long: str) -> float:
    if len(short) == 1 or len(long) == 1:  # an initial matches its name
        return 100.0 if short[0] == long[0] else 0.0
    return float(fuzz.ratio(short, long))


@lru_cache(maxsize=CACHE_SIZE)
def name_similarity(a: str, b: str) -> float:
    """0-100: how likely two written names denote one person.

    Token order is ignored and a shorter name may be part of a longer one
    ("Quintero" vs "Rafael Quintero-Alvarez"): every token of the shorter name
    must match a distinct token of the longer one, up to spelling.
    """
    ta, tb = name_tokens(a), name_tokens(b)
    if not ta or not tb:
        return 0.0
    short, long = (ta, tb) if len(ta) <= len(tb) else (tb, ta)
    used: set[int] = set()
    total = 0.0
    for token in short:
        best, best_index = 0.0, -1
        for index, other in enumerate(long):
            if index in used:
                continue
            score = _token_score(token, other)
            if score > best:
                best, best_index = score, index
        if best_index < 0 or best < 75.0:
            best = 0.0
        else:
            used.add(best_index)
        total += best
    by_tokens = total / len(short)
    # "Quintero-Alvarez" vs "QuinteroAlvarez": a separator may be lost (or
    # mistyped) entirely; compare the names run together, as written and sorted.
    joined = float(
        max(
            fuzz.ratio("".join(ta), "".join(tb)),
            fuzz.ratio("".join(sorted(ta)), "".join(sorted(tb))),
        )
    )
    return max(by_tokens, joined if joined >= 90.0 else 0.0)


NAME_MATCH = 85.0

_SOUNDEX_CODES = {
    **dict.fromkeys("bfpv", "1"),
    **dict.fromkeys("cgjkqsxz", "2"),
    **dict.fromkeys("dt", "3"),
    "l": "4",
    **dict.fromkeys("mn", "5"),
    "r": "6",
}


def soundex(token: str) -> str:
    """American Soundex of a folded name token ("alvarez" and "alvares" -> "a416"):
    the classic record-linkage blocking key, robust to most one-letter misspellings."""
    letters = [ch for ch in token if "a" <= ch <= "z"]
    if not letters:
        return ""
    code = letters[0]
    previous = _SOUNDEX_CODES.get(letters[0], "")
    for ch in letters[1:]:
        digit = _SOUNDEX_CODES.get(ch, "")
        if digit and digit != previous:
            code += digit
            if len(code) == 4:
                break
        # 'h' and 'w' do not separate equal codes; vowels do.
        if ch not in "hw":
            previous = digit
    return code.ljust(4, "0")


# --------------------------------------------------------------------------- dates

DatePrecision = Literal["day", "week", "month", "year"]


@dataclass(frozen=True)
class DateSpan:
    """A date as an inclusive interval, with the precision it was given at."""

    start: date
    end: date
    precision: DatePrecision

    @property
    def form(self) -> str:
        if self.precision == "day":
            return self.start.isoformat()
        if self.precision == "month":
            return self.start.isoformat()[:7]
        if self.precision == "year":
            return str(self.start.year)
        return f"{self.start.isoformat()}/{self.end.isoformat()}"

    def distance_days(self, other: DateSpan) -> int:
        """Days between the spans; 0 when they overlap."""
        if self.end < other.start:
            return (other.start - self.end).days
        if other.end < self.start:
            return (self.start - other.end).days
        return 0


def _day(d: date) -> DateSpan:
    return DateSpan(d, d, "day")


def _month_span(year: int, month: int) -> DateSpan:
    first = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return DateSpan(first, nxt - timedelta(days=1), "month")


_ISO_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[t ].*)?$")
_ISO_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")
_MONTH_DAY = re.compile(r"\b([a-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(\d{4}))?\b")
_DAY_MONTH = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?([a-z]{3,9})\.?(?:,?\s+(\d{4}))?\b")
_MONTH_YEAR = re.compile(r"\b([a-z]{3,9})\.?\s+(\d{4})\b")
_US_NUMERIC = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{2,4})\b")


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _infer_year(month: int, day: int, published: date | None) -> date | None:
    """'March 13' without a year: the last such day on or shortly after publication."""
    if published is None:
        return None
    candidate = _safe_date(published.year, month, day)
    # A story rarely reports an incident more than a week in the future; such
    # a date belongs to last year ("Dec. 30" in a January story).
    if candidate is not None and candidate > published + timedelta(days=7):
        candidate = _safe_date(published.year - 1, month, day)
    return candidate


@lru_cache(maxsize=CACHE_SIZE)
def resolve_date(text: str, published: date | None = None) -> DateSpan | None:
    """An ISO date, a written date or a relative phrase, as a span.

    Relative phrases are resolved against ``published``: a bare weekday
    ("Friday", "on Friday morning", "early Friday") is the latest such day on
    or before publication (news copy says "Friday" on Friday too); "last
    Friday" is the latest one strictly before it; "yesterday", "today",
    "last night", "N days ago", "last week", "this month" likewise. Without a
    publication date a relative phrase stays unresolved (None).
    """
    t = fold(text).strip(" .,")
    if not t:
        return None
    if m := _ISO_DAY.match(t):
        d = _safe_date(int(m[1]), int(m[2]), int(m[3]))
        return _day(d) if d else None
    if m := _ISO_MONTH.match(t):
        return _month_span(int(m[1]), int(m[2])) if 1 <= int(m[2]) <= 12 else None
    if m := _YEAR.match(t):
        year = int(m[1])
        return DateSpan(date(year, 1, 1), date(year, 12, 31), "year")
    if m := _US_NUMERIC.search(t):
        year = int(m[3]) + (2000 if len(m[3]) == 2 else 0)
        d = _safe_date(year, int(m[1]), int(m[2]))
        return _day(d) if d else None
    for pattern, month_group, day_group in ((_MONTH_DAY, 1, 2), (_DAY_MONTH, 2, 1)):
        for m in pattern.finditer(t):
            month = MONTH_NUMBERS.get(m[month_group])
            if month is None:
                continue
            day = int(m[day_group])
            d = _safe_date(int(m[3]), month, day) if m[3] else _infer_year(month, day, published)
            if d:
                return _day(d)
    if m := _MONTH_YEAR.search(t):
        month = MONTH_NUMBERS.get(m[1])
        if month:
            return _month_span(int(m[2]), month)
    return _resolve_relative(t, published)


def _resolve_relative(t: str, published: date | None) -> DateSpan | None:
    if published is None:
        return None
    words = set(re.findall(r"[a-z]+", t))
    if "yesterday" in words or "last night" in t:
        return _day(published - timedelta(days=1))
    if words & {"today", "tonight"} or "this morning" in t or "this afternoon" in t or "this evening" in t:
        return _day(published)
    if m := re.search(r"\b(\d+|one|two|three|four|five|six|seven)\s+days?\s+ago\b", t):
        n = int(m[1]) if m[1].isdigit() else NUMBER_WORDS[m[1]]
        return _day(published - timedelta(days=n))
    for index, weekday in enumerate(WEEKDAYS):
        if weekday in words:
            back = (published.weekday() - index) % 7
            # "last Friday" never means the publication day itself.
            if back == 0 and re.search(rf"\blast\s+{weekday}\b", t):
                back = 7
            return _day(published - timedelta(days=back))
    if "last week" in t:
        monday = published - timedelta(days=published.weekday() + 7)
        return DateSpan(monday, monday + timedelta(days=6), "week")
    if "this week" in t or "earlier this week" in t:
        monday = published - timedelta(days=published.weekday())
        return DateSpan(monday, published, "week")
    if "last month" in t:
        prev = published.replace(day=1) - timedelta(days=1)
        return _month_span(prev.year, prev.month)
    if "this month" in t:
        return _month_span(published.year, published.month)
    return None


# --------------------------------------------------------------------------- times of day

_PARTS_OF_DAY: list[tuple[str, int, int]] = [
    # (phrase, start minute, end minute); night wraps past midnight.
    ("early morning", 4 * 60, 9 * 60),
    ("late morning", 10 * 60, 12 * 60),
    ("morning", 5 * 60, 12 * 60),
    ("midday", 11 * 60, 14 * 60),
    ("early afternoon", 12 * 60, 15 * 60),
    ("late afternoon", 15 * 60, 18 * 60),
    ("afternoon", 12 * 60, 18 * 60),
    ("early evening", 17 * 60, 20 * 60),
    ("evening", 17 * 60, 22 * 60),
    ("late night", 22 * 60, 28 * 60),
    ("overnight", 22 * 60, 30 * 60),
    ("night", 19 * 60, 30 * 60),
    ("dawn", 5 * 60, 7 * 60),
    ("dusk", 18 * 60, 21 * 60),
]
_CLOCK = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*(a\.?\s?m\.?|p\.?\s?m\.?)?(?=\W|$)")
APPROXIMATE_TIME_MINUTES = 30


@dataclass(frozen=True)
class TimeSpan:
    start: int  # minutes after midnight
    end: int
    is_point: bool


def _parse_time(text: str) -> TimeSpan | None:
    t = fold(text)
    if "noon" in t and "afternoon" not in t:
        return TimeSpan(12 * 60, 12 * 60, True)
    if "midnight" in t:
        return TimeSpan(24 * 60, 24 * 60, True)
    for m in _CLOCK.finditer(t):
        hour, minute, meridiem = int(m[1]), int(m[2] or 0), (m[3] or "").replace(".", "").replace(" ", "")
        if not meridiem and m[2] is None:
            continue  # a bare number is not a time
        if hour > 23 or minute > 59:
            continue
        if meridiem == "pm" and hour < 12:
            hour += 12
        if meridiem == "am" and hour == 12:
            hour = 0
        minutes = hour * 60 + minute
        # Night-time clock readings live on the wrapped axis so they fall in "night".
        if minutes < 5 * 60:
            minutes += 24 * 60
        return TimeSpan(minutes, minutes, True)
    for phrase, start, end in _PARTS_OF_DAY:
        if phrase in t:
            return TimeSpan(start, end, False)
    return None


def _relate_time(a: TimeSpan, b: TimeSpan) -> Relation:
    if a.is_point and b.is_point:
        return (
            Relation.VARIANT if abs(a.start - b.start) <= APPROXIMATE_TIME_MINUTES else Relation.CONTRADICTION
        )
    return _relate_intervals(a.start, a.end, b.start, b.end)


def _relate_intervals(a0: int, a1: int, b0: int, b1: int) -> Relation:
    a_in_b = b0 <= a0 and a1 <= b1
    b_in_a = a0 <= b0 and b1 <= a1
    if a_in_b and b_in_a:
        return Relation.VARIANT
    if a_in_b:
        return Relation.LEFT_MORE_SPECIFIC
    if b_in_a:
        return Relation.RIGHT_MORE_SPECIFIC
    return Relation.CONTRADICTION


# --------------------------------------------------------------------------- counts

# Words that say how many people: the cardinals, plus the words a count is often written with.
_NUMBER_WORDS = NUMBER_WORDS | {
    "no": 0, "none": 0, "a": 1, "an": 1, "the": 1, "single": 1, "lone": 1,
    "both": 2, "pair": 2, "dozen": 12,
}  # fmt: skip
_PLURAL_WORDS = {"several", "multiple", "many", "some", "numerous", "few", "various", "plural"}
_COUNT_NOUNS_SINGULAR = {
    "officer", "agent", "deputy", "trooper", "cop", "policeman", "policewoman", "person", "man",
    "woman", "member", "marshal", "guard", "ranger", "sergeant", "detective",
}  # fmt: skip
_COUNT_NOUNS_PLURAL = {
    "officers", "agents", "deputies", "troopers", "cops", "policemen", "people", "men", "women",
    "members", "marshals", "guards", "rangers", "sergeants", "detectives", "personnel",
}  # fmt: skip


@dataclass(frozen=True)
class CountRange:
    """A head count as an interval: exact ``low == high``; plural-unspecified ``(2, None)``."""

    low: int
    high: int | None

    @property
    def form(self) -> str:
        if self.high == self.low:
            return str(self.low)
        if self.high is None:
            return "plural" if self.low == 2 else f"at least {self.low}"
        return f"{self.low}-{self.high}"

    def contains(self, other: CountRange) -> bool:
        upper_ok = self.high is None or (other.high is not None and other.high <= self.high)
        return self.low <= other.low and upper_ok

    def overlaps(self, other: CountRange) -> bool:
        return (self.high is None or other.low <= self.high) and (
            other.high is None or self.low <= other.high
        )


@lru_cache(maxsize=CACHE_SIZE)
def parse_count(text: str) -> CountRange | None:
    """'1', 'one officer', 'an agent', 'the agent' -> 1; 'two' -> 2;
    'agents', 'several officers' -> plural (at least 2); 'at least three' -> >= 3."""
    t = fold(text).replace("-", " ")
    words = re.findall(r"[a-z]+|\d+", t)
    if not words:
        return None
    at_least = "at least" in t or "more than" in t or "or more" in t
    bump = 1 if "more than" in t else 0
    for word in words:
        n = int(word) if word.isdigit() else _NUMBER_WORDS.get(word)
        if n is None or (word in {"a", "an", "the"} and not (set(words) & _COUNT_NOUNS_SINGULAR)):
            continue
        if word in {"a", "an"} and ("few" in words or "couple" in words):
            continue
        n += bump
        return CountRange(n, None if at_least else n)
    if set(words) & _PLURAL_WORDS or set(words) & _COUNT_NOUNS_PLURAL or "couple" in words:
        return CountRange(2, None)
    if set(words) & _COUNT_NOUNS_SINGULAR:
        return CountRange(1, 1)
    return None


def _relate_counts(a: CountRange, b: CountRange) -> Relation:
    if a == b:
        return Relation.VARIANT
    if b.contains(a):
        return Relation.LEFT_MORE_SPECIFIC
    if a.contains(b):
        return Relation.RIGHT_MORE_SPECIFIC
    # "the agent fired" (1) against "agents opened fire" (2 or more) cannot both
    # be true; so are overlapping ranges neither of which contains the other.
    return Relation.CONTRADICTION


# --------------------------------------------------------------------------- severity

# Ordered injury levels. Quantity words ("several", "multiple") say nothing
# about severity and so are compatible with every level.
_SEVERITY_LEVELS: list[tuple[int, tuple[str, ...]]] = [
    (1, ("minor", "superficial", "non life threatening", "not life threatening", "slight", "light",
         "treated and released", "scrapes", "bruises")),
    (2, ("serious", "severe", "significant", "major", "grave", "extensive", "moderate")),
    (3, ("critical", "life threatening", "gravely")),
    (4, ("fatal", "died", "dead", "killed", "mortal")),
]  # fmt: skip
_SEVERITY_QUANTITY = ("several", "multiple", "numerous", "various", "many", "some")
_STABLE = ("stable", "good condition", "fair condition", "improving")
_SEVERITY_FILLER = {
    "injury", "injuries", "condition", "in", "was", "is", "were", "listed", "suffered", "sustained",
    "with", "and", "remains", "remained", "reported", "to", "be", "of", "has", "had",
}  # fmt: skip


@dataclass(frozen=True)
class Severity:
    level: int | None
    stable: bool
    quantity: bool
    words: frozenset[str]


def _parse_severity(text: str) -> Severity:
    t = " ".join(_PUNCT.sub(" ", fold(text).replace("-", " ")).split())
    padded = f" {t} "
    level = None
    for value, phrases in _SEVERITY_LEVELS:
        if any(f" {p} " in padded for p in phrases):
            level = value if level is None else max(level, value)
    stable = any(f" {p} " in padded for p in _STABLE)
    quantity = any(f" {p} " in padded for p in _SEVERITY_QUANTITY)
    return Severity(level, stable, quantity, frozenset(t.split()) - _SEVERITY_FILLER - _ARTICLES)


def _relate_severity(a: Severity, b: Severity) -> Relation:
    if a.level is not None and b.level is not None and a.level != b.level:
        return Relation.CONTRADICTION
    # "stable" against "critical"/"fatal" is opposed, unless a value says both.
    for x, y in ((a, b), (b, a)):
        if x.stable and x.level is None and y.level is not None and y.level >= 3 and not y.stable:
            return Relation.CONTRADICTION
    known = any(x.level is not None or x.stable or x.quantity for x in (a, b))
    if not known and a.words and b.words and not (a.words & b.words):
        return _relate_text(" ".join(sorted(a.words)), " ".join(sorted(b.words)))
    return Relation.VARIANT


# --------------------------------------------------------------------------- categories

# Canonical classes for categorical fields; the first matching phrase wins.
_CATEGORY_CLASSES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "subjects[].outcome": [
        ("uninjured", ("uninjured", "unhurt", "not injured", "unharmed")),
        ("killed", ("killed", "died", "dead", "deceased", "fatally", "death")),
        ("injured", ("injured", "wounded", "hurt", "hospitalized")),
        ("arrested", ("arrested", "detained", "custody", "apprehended")),
    ],
    "subjects[].place_of_death": [
        ("at the scene", ("scene", "on site", "where he was shot", "where she was shot")),
        ("at the hospital", ("hospital", "medical center", "medical centre", "trauma center", "clinic")),
        ("in custody", ("custody", "jail", "detention")),
    ],
    "subjects[].armed_with": [
        ("unarmed", ("unarmed", "no weapon", "not armed", "empty handed")),
        ("vehicle", ("vehicle", "car", "van", "truck", "suv", "pickup", "sedan")),
        ("firearm", ("gun", "firearm", "handgun", "pistol", "rifle", "shotgun", "revolver")),
        ("knife", ("knife", "blade", "machete")),
    ],
    "subjects[].gender": [
        ("female", ("female", "woman", "girl", "f")),
        ("male", ("male", "man", "boy", "m")),
    ],
    "subjects[].nationality": [],
    "what.event_type": [],
    "what.operation_name": [],
}
_CATEGORY_STOPWORDS = {"national", "citizen", "of", "at", "in", "on", "by", "with", "operation"}


@dataclass(frozen=True)
class Category:
    klass: str | None
    words: tuple[str, ...]


def _parse_category(template: str, text: str) -> Category:
    cleaned = _PUNCT.sub(" ", fold(text).replace("-", " "))
    words = tuple(w for w in cleaned.split() if w not in _ARTICLES)
    padded = f" {' '.join(words)} "
    for klass, phrases in _CATEGORY_CLASSES.get(template, []):
        if any(f" {p} " in padded for p in phrases):
            return Category(klass, words)
    return Category(None, tuple(w for w in words if w not in _CATEGORY_STOPWORDS) or words)


def _relate_text(a: str, b: str) -> Relation:
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


# --------------------------------------------------------------------------- places

_STREET_WORDS = {
    "st": "street", "ave": "avenue", "av": "avenue", "blvd": "boulevard", "rd": "road", "dr": "drive",
    "ln": "lane", "hwy": "highway", "pkwy": "parkway", "ct": "court", "pl": "place", "n": "north",
    "s": "south", "e": "east", "w": "west", "&": "and",
}  # fmt: skip
_PLACE_FILLER = {"near", "at", "on", "of", "intersection", "corner", "area", "and", "block", "in"}


def _place_words(text: str) -> str:
    words = _PUNCT.sub(" ", fold(text).replace("&", " and ")).split()
    return " ".join(_STREET_WORDS.get(w, w) for w in words if w not in _ARTICLES)


def _place_core(words: str) -> frozenset[str]:
    return frozenset(w for w in words.split() if w not in _PLACE_FILLER)


def _relate_place_text(a: str, b: str) -> Relation:
    ca, cb = _place_core(a), _place_core(b)
    if ca and ca == cb:
        return Relation.VARIANT
    return _relate_text(" ".join(sorted(ca)) or a, " ".join(sorted(cb)) or b)


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


# --------------------------------------------------------------------------- agencies and speakers

# Canonical keys for agencies newsrooms name in several ways. Anything else is
# keyed by its cleaned name; an acronym matches the initials of a long name.
AGENCY_ALIASES: dict[str, str] = {
    "ice": "ice", "immigration and customs enforcement": "ice",
    "us immigration and customs enforcement": "ice", "immigration agency": "ice",
    "cbp": "cbp", "customs and border protection": "cbp", "us customs and border protection": "cbp",
    "border patrol": "border-patrol", "us border patrol": "border-patrol", "usbp": "border-patrol",
    "dhs": "dhs", "homeland security": "dhs", "department of homeland security": "dhs",
    "us department of homeland security": "dhs", "homeland security department": "dhs",
    "fbi": "fbi", "federal bureau of investigation": "fbi",
    "doj": "doj", "justice department": "doj", "department of justice": "doj",
    "atf": "atf", "dea": "dea", "drug enforcement administration": "dea",
    "us marshals": "usms", "us marshals service": "usms", "usms": "usms",
}  # fmt: skip
_AGENCY_STOP = {"the", "of", "and", "for", "us", "u", "s", "agency", "office"}
_AGENCY_GENERIC = {"police", "department", "sheriff", "sheriffs", "office", "dept", "pd"}


@lru_cache(maxsize=CACHE_SIZE)
def agency_key(name: str) -> str:
    """A canonical key: 'U.S. Border Patrol' and 'Border Patrol' -> 'border-patrol';
    'Tempe police' and 'Tempe Police Department' -> 'tempe-police'."""
    text = fold(name).replace("u.s.", "us").replace("'s", "")
    words = _PUNCT.sub(" ", text).split()
    words = [w for w in words if w not in {"the", "a", "an"}]
    cleaned = " ".join(words)
    if cleaned in AGENCY_ALIASES:
        return AGENCY_ALIASES[cleaned]
    if words and words[0] == "us" and " ".join(words[1:]) in AGENCY_ALIASES:
        return AGENCY_ALIASES[" ".join(words[1:])]
    # "Tempe Police Department", "Tempe police", "Tempe PD" are one agency.
    if set(words) & {"police", "pd"}:
        place = [w for w in words if w not in _AGENCY_GENERIC]
        return "-".join([*place, "police"])
    if "sheriff" in words or "sheriffs" in words:
        place = [w for w in words if w not in _AGENCY_GENERIC and w != "county"]
        return "-".join([*place, "sheriff"])
    initials = "".join(w[0] for w in words if w not in _AGENCY_STOP)
    if initials in AGENCY_ALIASES and len(words) > 2:
        return AGENCY_ALIASES[initials]
    return "-".join(words)


_GENERIC_SPEAKERS = {
    "witness", "witnesses", "officials", "police", "relatives", "family", "neighbors", "neighbours",
    "source", "sources", "authorities", "investigators", "residents", "friends", "bystanders",
}  # fmt: skip
_OUTLET_VOICE = {"outlet", "the outlet", "reporter", "staff", "newsroom", "narrator", "article", ""}


@lru_cache(maxsize=CACHE_SIZE)
def fallback_speaker(attribution: str, outlet: str | None, article_id: str) -> str:
    """A speaker id when the pipeline left none: the article's own voice is the
    outlet; a known agency is ``agency:<key>``; anything else a slug."""
    folded = fold(attribution).strip(" .")
    if folded in _OUTLET_VOICE or folded == fold(outlet or "\0"):
        return f"outlet:{slug(outlet) if outlet else article_id}"
    key = agency_key(attribution)
    if key in AGENCY_ALIASES.values() or key.endswith("-police") or key.endswith("-sheriff"):
        return f"agency:{key}"
    # "DHS spokesperson Carla Whitfield" speaks for DHS.
    for word in re.findall(r"[a-z]+", folded):
        if word in AGENCY_ALIASES and len(word) >= 3:
            return f"agency:{AGENCY_ALIASES[word]}"
    for phrase, key in AGENCY_ALIASES.items():
        if len(phrase) > 8 and phrase in folded:
            return f"agency:{key}"
    # An unnamed source ("a witness", "federal officials") in one article is
    # not known to be the same one as in another: scope it to the outlet.
    words = attribution.split()
    while words and words[0].casefold() in _ARTICLES:
        words = words[1:]
    named = any(word[:1].isupper() for word in words) and not (
        len(words) == 1 and words[0].casefold() in _GENERIC_SPEAKERS
    )
    if not named:
        return f"unnamed:{slug(attribution)}@{slug(outlet) if outlet else article_id}"
    return f"person:{slug(attribution)}"


# --------------------------------------------------------------------------- booleans

_TRUE = {"yes", "true", "y", "1", "confirmed", "was", "did"}
_FALSE = {"no", "false", "n", "0", "not", "none", "never", "wasnt", "didnt", "without"}


def parse_bool(text: str | bool) -> bool | None:
    if isinstance(text, bool):
        return text
    words = set(re.findall(r"[a-z0-9]+", fold(text).replace("'", "")))
    if words & _FALSE:
        return False
    if words & _TRUE:
        return True
    return None


# --------------------------------------------------------------------------- quotes


@lru_cache(maxsize=CACHE_SIZE)
def quote_key(text: str) -> str:
    """Punctuation-, case- and quote-mark-insensitive text of a quotation."""
    return " ".join(_PUNCT.sub(" ", fold(unicodedata.normalize("NFKC", text))).split())


def quotes_match(a: str, b: str) -> bool:
    """Near-identical quotations (one may be an excerpt of the other)."""
    ka, kb = quote_key(a), quote_key(b)
    if not ka or not kb:
        return False
    if ka == kb:
        return True
    if fuzz.ratio(ka, kb) >= 90:
        return True
    shorter = min(len(ka), len(kb))
    return shorter >= 30 and fuzz.partial_ratio(ka, kb) >= 95


# --------------------------------------------------------------------------- dispatch


def normalize_value(path: str, value: object, ctx: ValueContext) -> Normalized:
    """The comparison form of one value of the field at ``path``."""
    template = template_of(path)
    kind = FIELD_KINDS[template]
    text = str(value)
    if kind == "date" or kind == "date_phrase":
        span = resolve_date(text, ctx.published)
        if kind == "date_phrase":
            return Normalized(clean_text(text), span)
        return Normalized(span.form if span else clean_text(text), span)
    if kind == "time":
        span_t = _parse_time(text)
        if span_t is None:
            return Normalized(clean_text(text), None)
        if span_t.is_point:
            minutes = span_t.start % (24 * 60)
            return Normalized(f"{minutes // 60:02d}:{minutes % 60:02d}", span_t)
        return Normalized(clean_text(text), span_t)
    if kind == "city":
        gazetteer = get_gazetteer()
        place = gazetteer.place_name(
            text, gazetteer.state_code(ctx.state), gazetteer.country_code(ctx.country) or None
        )
        return Normalized(_city_form(place), CityValue(place))
    if kind == "state":
        gazetteer = get_gazetteer()
        code = gazetteer.state_code(text)
        return Normalized(code or gazetteer.country_code(text) or clean_text(text), None)
    if kind == "country":
        code = get_gazetteer().country_code(text)
        return Normalized(code or clean_text(text), None)
    if kind == "county":
        words = [w for w in clean_text(text).split() if w not in {"county", "parish", "borough"}]
        return Normalized(" ".join(words), None)
    if kind == "place_text":
        return Normalized(_place_words(text), None)
    if kind == "person":
        return Normalized(" ".join(text.casefold().split()), None)
    if kind == "age":
        digits = re.search(r"\d+", text)
        return Normalized(str(int(digits[0])) if digits else clean_text(text), None)
    if kind == "count":
        count = parse_count(text)
        return Normalized(count.form if count else clean_text(text), count)
    if kind == "severity":
        severity = _parse_severity(text)
        return Normalized(" ".join(sorted(severity.words)) or clean_text(text), severity)
    if kind == "boolean":
        flag = parse_bool(text if not isinstance(value, bool) else value)
        return Normalized(str(flag).lower() if flag is not None else clean_text(text), flag)
    if kind in CATEGORY_KINDS:
        category = _parse_category(template, text)
        return Normalized(category.klass or " ".join(category.words), category)
    if kind == "agency":
        return Normalized(agency_key(text), None)
    if kind == "quote":
        return Normalized(quote_key(text), None)
    if kind == "speaker":
        return Normalized(text, None)
    return Normalized(clean_text(text), None)  # summary


def relate(path: str, a: Normalized, b: Normalized) -> Relation:
    """How value ``a`` relates to value ``b`` of the field at ``path``."""
    if a.form == b.form:
        return Relation.SAME
    template = template_of(path)
    kind = FIELD_KINDS[template]
    if kind in ("date", "date_phrase"):
        if isinstance(a.data, DateSpan) and isinstance(b.data, DateSpan):
            ia = (a.data.start.toordinal(), a.data.end.toordinal())
            ib = (b.data.start.toordinal(), b.data.end.toordinal())
            return _relate_intervals(*ia, *ib)
        return _relate_text(a.form, b.form)
    if kind == "time":
        if isinstance(a.data, TimeSpan) and isinstance(b.data, TimeSpan):
            return _relate_time(a.data, b.data)
        return _relate_text(a.form, b.form)
    if kind == "city":
        assert isinstance(a.data, CityValue) and isinstance(b.data, CityValue)
        return _relate_city(a.data.place, b.data.place)
    if kind in ("state", "country", "age", "speaker", "boolean"):
        return Relation.CONTRADICTION
    if kind == "county":
        return Relation.VARIANT if fuzz.ratio(a.form, b.form) >= 90 else Relation.CONTRADICTION
    if kind == "place_text":
        return _relate_place_text(a.form, b.form)
    if kind == "person":
        return Relation.VARIANT if name_similarity(a.form, b.form) >= NAME_MATCH else Relation.CONTRADICTION
    if kind == "count":
        if isinstance(a.data, CountRange) and isinstance(b.data, CountRange):
            return _relate_counts(a.data, b.data)
        return _relate_text(a.form, b.form)
    if kind == "severity":
        assert isinstance(a.data, Severity) and isinstance(b.data, Severity)
        return _relate_severity(a.data, b.data)
    if kind in CATEGORY_KINDS:
        assert isinstance(a.data, Category) and isinstance(b.data, Category)
        if a.data.klass is not None and b.data.klass is not None:
            return Relation.CONTRADICTION  # different classes: the same class has the same form
        return _relate_text(" ".join(a.data.words), " ".join(b.data.words))
    if kind == "agency":
        return Relation.VARIANT
    if kind == "quote":
        return Relation.VARIANT if quotes_match(a.form, b.form) else Relation.CONTRADICTION
    # Summaries are paraphrases by nature; factual disagreements surface in
    # the structured fields, so differing summaries are variants.
    return Relation.VARIANT


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
