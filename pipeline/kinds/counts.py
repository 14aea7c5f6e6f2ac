"""How many: head counts ("the agent", "agents", "at least three") as ranges, and ages, with the
strategies of the ``count`` and ``age`` kinds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from pipeline.kinds.base import (
    CACHE_SIZE,
    NO_CONTEXT,
    KindStrategy,
    Normalized,
    Relation,
    ValueContext,
    clean_text,
    relate_text,
)
from pipeline.kinds.support import ValueKind
from pipeline.kinds.words import NUMBER_WORDS, fold, number_from_words

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


# --------------------------------------------------------------------------- strategies


class CountStrategy(KindStrategy):
    """How many: "1", "one officer" and "the agent" are 1, "agents" is plural (2 or more); a
    figure inside a range is more specific, ranges that exclude each other contradict."""

    support: ValueKind = "count"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        count = parse_count(text)
        return Normalized(count.form if count else clean_text(text), count)

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        if isinstance(a.data, CountRange) and isinstance(b.data, CountRange):
            return _relate_counts(a.data, b.data)
        return relate_text(a.form, b.form)


class AgeStrategy(KindStrategy):
    """An age in years, in digits or words ("34", "34-year-old", "thirty-four"); two ages differ."""

    support: ValueKind = "number"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        digits = re.search(r"\d+", text)
        if digits:
            return Normalized(str(int(digits[0])), None)
        words = clean_text(text)
        number = number_from_words(words.split())
        return Normalized(str(number) if number is not None else words, None)

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        return Relation.CONTRADICTION
