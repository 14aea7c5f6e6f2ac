"""Dates and times of day: resolving what news copy writes ("Friday", "Mar. 13", "7:30 a.m.",
"morning") to spans, and the strategies of the ``date``, ``date_phrase`` and ``time`` kinds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Literal

from pipeline.kinds.base import (
    CACHE_SIZE,
    NO_CONTEXT,
    KindStrategy,
    Normalized,
    Relation,
    ValueContext,
    clean_text,
    relate_intervals,
    relate_text,
)
from pipeline.kinds.support import ValueKind
from pipeline.kinds.words import MONTH_NUMBERS, NUMBER_WORDS, WEEKDAYS, fold

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


def parse_time(text: str) -> TimeSpan | None:
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
    return relate_intervals(a.start, a.end, b.start, b.end)


# --------------------------------------------------------------------------- strategies


class DateStrategy(KindStrategy):
    """An ISO date, resolved from relative wording against the publication date."""

    support: ValueKind = "date"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        span = resolve_date(text, ctx.published)
        return Normalized(span.form if span else clean_text(text), span)

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        if isinstance(a.data, DateSpan) and isinstance(b.data, DateSpan):
            ia = (a.data.start.toordinal(), a.data.end.toordinal())
            ib = (b.data.start.toordinal(), b.data.end.toordinal())
            return relate_intervals(*ia, *ib)
        return relate_text(a.form, b.form)

    def context(self, ctx: ValueContext) -> ValueContext:
        return ValueContext(published=ctx.published)


class DatePhraseStrategy(DateStrategy):
    """The date words as written: the form is the words, related through the day they resolve to."""

    support: ValueKind = "phrase"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        return Normalized(clean_text(text), resolve_date(text, ctx.published))


class TimeStrategy(KindStrategy):
    """A clock time (form "07:30") or a part of day (its words), related as spans of the day."""

    support: ValueKind = "phrase"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        span = parse_time(text)
        if span is None:
            return Normalized(clean_text(text), None)
        if span.is_point:
            minutes = span.start % (24 * 60)
            return Normalized(f"{minutes // 60:02d}:{minutes % 60:02d}", span)
        return Normalized(clean_text(text), span)

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        if isinstance(a.data, TimeSpan) and isinstance(b.data, TimeSpan):
            return _relate_time(a.data, b.data)
        return relate_text(a.form, b.form)
