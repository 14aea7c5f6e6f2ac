"""Is a value stated by a text? The support checks, one per way of stating a value.

A field's kind says which check its values get (``KindStrategy.support`` in
:mod:`pipeline.kinds.strategies`): names token by token, agencies by canonical
id or word by word, numbers and counts in digits or words, ISO dates against
the ways a day is written, place-like phrases by content words (every one must
be there), and categories and summaries by overlap (a paraphrase is unchecked,
never unsupported). Grounding (``pipeline.evidence.ground``) and the sentence
search (``pipeline.evidence.locate``) both ask these.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any, Literal, Protocol

from pipeline.kinds.words import (
    CATEGORY_CUES,
    MONTH_NUMBERS,
    MONTHS,
    NUMBER_WORDS,
    OFFICER_NOUNS,
    RELATIVE_DAY_WORDS,
    STOPWORDS,
    TENS_WORDS,
    US_STATES,
    WEEKDAYS,
    fold_words,
)


class AgencyLookup(Protocol):
    """What the agency check needs of a speaker table: the canonical agency a text names, if any."""

    def agency_in(self, text: str) -> str | None: ...


# How a value is checked against a text.
ValueKind = Literal["name", "agency", "number", "count", "date", "phrase", "summary"]

_SINGULAR_WORDS = frozenset({"a", "an", "one", "single", "lone", "sole", "the", "that", "this"})
_PLURAL_WORDS = frozenset({"several", "multiple", "many", "some", "numerous", "both", "two or more"})
_NAME_PARTICLES = frozenset(
    {"de", "del", "la", "las", "los", "da", "van", "von", "der", "y", "jr", "sr", "ii"}
)

_PLACE_ALIASES: dict[str, tuple[str, ...]] = {
    **US_STATES,
    "united states": ("us", "usa", "america"),
    "mexico": ("mexican",),
}


def _words(text: str) -> list[str]:
    return fold_words(text).split()


def _number_values(folded: str) -> set[int]:
    """Every number a folded text states, in digits or words ("thirty four" -> 34)."""
    numbers = {int(d) for d in re.findall(r"\d+", folded.replace(",", ""))}
    words = folded.split()
    for i, word in enumerate(words):
        if word in NUMBER_WORDS:
            numbers.add(NUMBER_WORDS[word])
        elif word in TENS_WORDS:
            value = TENS_WORDS[word]
            nxt = words[i + 1] if i + 1 < len(words) else ""
            if nxt in NUMBER_WORDS and 0 < NUMBER_WORDS[nxt] < 10:
                value += NUMBER_WORDS[nxt]
            numbers.add(value)
    return numbers


def _states_one(folded: str) -> bool:
    """'a Border Patrol agent', 'the officer', 'one deputy': a singular count."""
    nouns = "|".join(OFFICER_NOUNS)
    singles = "|".join(_SINGULAR_WORDS)
    # Up to five words between: "a Harlow County sheriff's deputy".
    if re.search(rf"\b(?:{singles})\b(?:\s+\w+){{0,5}}?\s+(?:{nouns})\b", folded):
        return True
    # Headlines drop the article ("Border Patrol agent kills driver"): a singular
    # noun with no plural one beside it still says one.
    return bool(re.search(rf"\b(?:{nouns})\b", folded)) and not _states_plural(folded)


def _states_plural(folded: str) -> bool:
    nouns = "|".join(OFFICER_NOUNS.values())
    return bool(re.search(rf"\b(?:{nouns})\b", folded)) or any(
        f" {w} " in f" {folded} " for w in _PLURAL_WORDS
    )


def _check_number(value: Any, folded_quote: str, *, count: bool) -> bool | None:
    text = str(value).strip().casefold()
    if count and text in {"plural", "several", "multiple", "agents", "officers"}:
        return _states_plural(folded_quote)
    numbers = _number_values(fold_words(text))
    if not numbers:
        # A count worded in the article's own words ("the officer"): check it as a phrase.
        return _check_phrase(text, folded_quote) if count else None
    target = min(numbers)
    if target in _number_values(folded_quote):
        return True
    if count and target == 1 and _states_one(folded_quote):
        return True
    return count and target == 2 and " both " in f" {folded_quote} "


def _check_date(value: Any, folded_quote: str) -> bool | None:
    text = str(value).strip()
    match = re.fullmatch(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", text)
    if not match:
        return None
    year, month, day = int(match[1]), match[2], match[3]
    words = set(folded_quote.split())
    padded = f" {folded_quote} "
    if str(year) in words and month is None:
        return True
    if month is None:
        return False
    month_i = int(month)
    month_names = {MONTHS[month_i - 1]} | {k for k, v in MONTH_NUMBERS.items() if v == month_i}
    if day is None:
        return bool(words & month_names)
    day_i = int(day)
    try:
        weekday = WEEKDAYS[date(year, month_i, day_i).weekday()]
    except ValueError:
        return False
    if text in folded_quote.replace(" ", "-") or weekday in words:
        return True
    for name in month_names:
        if re.search(rf"\b{name} {day_i}(?:st|nd|rd|th)?\b", padded) or re.search(
            rf"\b{day_i}(?:st|nd|rd|th)? (?:of )?{name}\b", padded
        ):
            return True
    if re.search(rf"\b0?{month_i} 0?{day_i}\b", padded):  # "3/13" folds to "3 13"
        return True
    if any(w in padded for w in (f" {r} " for r in RELATIVE_DAY_WORDS)):
        return None  # relative to a publication date we don't see here
    return False


def _significant(words: list[str]) -> list[str]:
    return [w for w in words if w not in _NAME_PARTICLES and len(w) > 1]


def _check_name(value: Any, quote: str) -> bool | None:
    # Hyphenated surnames stay one token here so that a part can stand for the whole.
    raw_tokens = [t for t in re.split(r"\s+", str(value)) if t]
    tokens = [t for t in raw_tokens if _significant(_words(t))]
    if not tokens:
        return None
    quote_words = set(_words(quote))
    for token in tokens:
        parts = _significant(_words(token))
        # "Quintero" in the quote supports "Quintero-Alvarez": a partial compound surname.
        if not any(p in quote_words for p in parts):
            return False
    return True


def _check_agency(value: Any, quote: str, agencies: AgencyLookup | None) -> bool | None:
    value_id = agencies.agency_in(str(value)) if agencies is not None else None
    if value_id is not None and agencies is not None and agencies.agency_in(quote) == value_id:
        return True
    words = [w for w in _words(str(value)) if w not in STOPWORDS and w not in {"us", "department"}]
    if not words:
        return None
    quote_words = set(_words(quote))
    return all(w in quote_words for w in words)


def _content_words(text: str) -> list[str]:
    return [w for w in _words(text) if w not in STOPWORDS and len(w) > 2 or w.isdigit()]


def _word_present(word: str, quote_words: set[str]) -> bool:
    if word in quote_words:
        return True
    # Light stemming: "injuries"/"injured", "hospitalized"/"hospital" share a 5-letter stem.
    return len(word) >= 5 and any(len(q) >= 5 and q[:5] == word[:5] for q in quote_words)


def _missing_words(value: str, folded_quote: str) -> tuple[int, int] | None:
    """(content words of the value absent from the quote, content words in total)."""
    content = _content_words(value)
    if not content:
        return None
    quote_words = set(folded_quote.split())
    for place, aliases in _PLACE_ALIASES.items():
        if any(a in quote_words for a in aliases) or place in folded_quote:
            quote_words |= set(place.split())
    missing = sum(not _word_present(w, quote_words) for w in content)
    return missing, len(content)


def _check_phrase(value: Any, folded_quote: str) -> bool | None:
    counted = _missing_words(str(value), folded_quote)
    if counted is None:
        return None
    missing, total = counted
    # A place or condition is copied from the text, so every content word must
    # be there: "poor condition" is not supported by "fair condition". Longer
    # phrases may lose one word in four to rewording.
    return missing <= total // 4


def _check_summary(value: Any, folded_quote: str) -> bool | None:
    cues = CATEGORY_CUES.get(fold_words(str(value)))
    if cues and cues & set(folded_quote.split()):
        return True
    counted = _missing_words(str(value), folded_quote)
    # A category or summary may legitimately paraphrase: enough overlap
    # confirms it, too little leaves it unchecked rather than wrong.
    return True if counted is not None and counted[0] <= counted[1] / 2 else None


def infer_kind(value: Any) -> ValueKind:
    if isinstance(value, bool):
        return "summary"
    if isinstance(value, int | float):
        return "number"
    text = str(value).strip()
    if re.fullmatch(r"\d{4}(?:-\d{2}){0,2}", text) and "-" in text:
        return "date"
    if re.fullmatch(r"\d+", text):
        return "number"
    tokens = text.split()
    if 1 < len(tokens) <= 5 and all(t[:1].isupper() for t in tokens if fold_words(t) not in _NAME_PARTICLES):
        return "name"
    return "phrase"


_Check = Callable[[Any, str, str, AgencyLookup | None], bool | None]

# Each check gets (value, the text as written, the text folded, the agency lookup).
_CHECKS: dict[ValueKind, _Check] = {
    "name": lambda value, text, folded, agencies: _check_name(value, text),
    "agency": lambda value, text, folded, agencies: _check_agency(value, text, agencies),
    "number": lambda value, text, folded, agencies: _check_number(value, folded, count=False),
    "count": lambda value, text, folded, agencies: _check_number(value, folded, count=True),
    "date": lambda value, text, folded, agencies: _check_date(value, folded),
    "phrase": lambda value, text, folded, agencies: _check_phrase(value, folded),
    "summary": lambda value, text, folded, agencies: _check_summary(value, folded),
}


def check_support(
    value: Any, text: str, *, kind: ValueKind | None = None, agencies: AgencyLookup | None = None
) -> bool | None:
    """Whether ``text`` states ``value``; None when that cannot be checked.

    ``kind`` says how to compare (inferred from the value when omitted):
    names token by token (accent/case-insensitive, a compound surname may be
    shortened), numbers in digits or words, counts also as "an agent"/"agents",
    ISO dates against a weekday, month-day or the date itself, place-like
    phrases by content-word overlap (False when too little overlaps), and
    summaries by overlap (None rather than False when they paraphrase).
    ``agencies`` resolves agency names to ids (without it agencies are checked
    word for word).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not text or not text.strip():
        return False
    return _CHECKS[kind or infer_kind(value)](value, text, fold_words(text), agencies)
