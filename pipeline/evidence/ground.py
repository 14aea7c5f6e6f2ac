"""Locate each quote in its article and check that the quote supports its value.

Grounding is what lets a reviewer check a value: ``text[start:end]`` is the
passage the value rests on. Quotes are located in three steps, strongest first:

1. **exact**: the quote is a substring of the article.
2. **normalized**: equal after folding case, accents, curly quotes, dashes,
   ellipses and whitespace runs (and trimming surrounding quote marks and
   final punctuation); offsets are mapped back to the original text.
   A quote with an ellipsis ("the agent ... fired") matches when its parts
   occur in order, close together (note ``elided``).
3. **fuzzy**: rapidfuzz ``partial_ratio_alignment`` on the normalized text,
   accepted at ``FUZZY_THRESHOLD`` or above, and only for quotes of at least
   ``FUZZY_MIN_CHARS`` normalized characters (short strings match anything).

Anything else is **unfound**: kept in the record, offsets null, never evidence.
See docs/grounding.md for the thresholds and why they were chosen.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel
from rapidfuzz import fuzz

from pipeline.evidence.attribute import (
    SpeakerTable,
    canonical_speaker,
    default_table,
    fold,
    person_name,
    slugify,
)
from pipeline.kinds.words import MONTH_NUMBERS, MONTHS, NUMBER_WORDS, TENS_WORDS, US_STATES, WEEKDAYS
from schemas.article import Article
from schemas.fields import record_fields
from schemas.kinds import KindName
from schemas.record import Cited, Grounding, GroundingStatus, IncidentRecord, Statement

# A fuzzy match must score at least this (rapidfuzz partial_ratio, 0-100).
# Measured on the example articles and planted cases (tests/test_ground.py,
# docs/grounding.md): a verbatim sentence with a typo or one changed word
# scores 95-99, two changed words 82-91, a paraphrase 61-74, a sentence from
# another article on the same incident 43-61. 90 keeps copy errors only.
FUZZY_THRESHOLD = 90.0
# Below this many normalized characters a quote is not fuzzy-matched at all:
# short strings ("the agent", "Friday") reach high partial scores almost anywhere.
FUZZY_MIN_CHARS = 24
# An elided quote's parts must lie within this many normalized characters
# (or 4x the quote's length, whichever is larger), so that words scattered
# over the whole article are not stitched together.
ELISION_MAX_SPAN = 400

_QUOTE_CHARS = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u0060": "'",
    "\u00b4": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',
    "\u00ab": '"',
    "\u00bb": '"',
}
_DASH_CHARS = dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-")
# Invisible characters that HTML extraction leaves behind.
_DROP_CHARS = frozenset("\u00ad\u200b\u200c\u200d\u2060\ufeff")
# Stripped from both ends of a normalized quote: quote marks, whitespace and
# the sentence punctuation an extractor adds or drops at the edge of a quote.
_EDGE_CHARS = " \"'.,;:!?"


def _fold_char(ch: str) -> str:
    if ch in _DROP_CHARS:
        return ""
    if ch in _QUOTE_CHARS:
        return _QUOTE_CHARS[ch]
    if ch in _DASH_CHARS:
        return "-"
    if ch == "\u2026":
        return "..."
    decomposed = unicodedata.normalize("NFKD", ch.casefold())
    out = "".join(c for c in decomposed if not unicodedata.combining(c))
    # NFKD can reveal a curly quote or dash inside a compatibility character.
    return "".join(_QUOTE_CHARS.get(c, _DASH_CHARS.get(c, c)) for c in out)


@dataclass(frozen=True)
class NormalizedText:
    """A normalized string and, for each of its characters, the index of the
    original character it came from (so matches map back to the original)."""

    text: str
    origin: tuple[int, ...]


# A record grounds ~25 quotes against one article; normalizing the article once
# instead of per quote is most of the cost on long texts.
@lru_cache(maxsize=16)
def normalize_with_map(text: str) -> NormalizedText:
    chars: list[str] = []
    origin: list[int] = []
    for index, ch in enumerate(text):
        for out in _fold_char(ch):
            if out.isspace():
                if chars and chars[-1] == " ":
                    continue
                out = " "
            chars.append(out)
            origin.append(index)
    return NormalizedText("".join(chars), tuple(origin))


def normalize(text: str) -> str:
    """The comparison form of a quote: folded, whitespace collapsed, edges trimmed."""
    return normalize_with_map(text).text.strip(_EDGE_CHARS)


def locate_quote(quote: str, text: str) -> Grounding:
    """Where ``quote`` sits in ``text``: exact, normalized, fuzzy or unfound.

    ``text[start:end]`` is the matched span. When the quote occurs more than
    once the first occurrence is taken and ``note`` says how many there were.
    Never raises on any string input.
    """
    if not quote or not quote.strip():
        return Grounding(status=GroundingStatus.unfound, note="empty quote")

    start = text.find(quote)
    if start >= 0:
        count = text.count(quote)
        return Grounding(
            status=GroundingStatus.exact,
            start=start,
            end=start + len(quote),
            score=100.0,
            note=_occurrence_note(count),
        )

    haystack = normalize_with_map(text)
    needle = normalize(quote)
    if not needle:
        return Grounding(status=GroundingStatus.unfound, note="quote is only punctuation or whitespace")

    found = _normalized_match(needle, haystack, text)
    if found is not None:
        return found
    elided = _elided_match(needle, haystack)
    if elided is not None:
        return elided
    return _fuzzy_match(needle, haystack)


def _occurrence_note(count: int) -> str | None:
    return f"{count} occurrences; first taken" if count > 1 else None


def _span(haystack: NormalizedText, n_start: int, n_end: int) -> tuple[int, int]:
    return haystack.origin[n_start], haystack.origin[n_end - 1] + 1


def _normalized_match(needle: str, haystack: NormalizedText, text: str) -> Grounding | None:
    first: tuple[int, int] | None = None
    count = 0
    pos = haystack.text.find(needle)
    while pos >= 0:
        start, end = _span(haystack, pos, pos + len(needle))
        # A match that starts or ends inside a character that folds to several
        # ("ß" -> "ss", "…" -> "...") would not slice back to the quote; skip it.
        if normalize(text[start:end]) == needle:
            count += 1
            if first is None:
                first = (start, end)
        pos = haystack.text.find(needle, pos + 1)
    if first is None:
        return None
    return Grounding(
        status=GroundingStatus.normalized,
        start=first[0],
        end=first[1],
        score=100.0,
        note=_occurrence_note(count),
    )


def _elided_match(needle: str, haystack: NormalizedText) -> Grounding | None:
    parts = [p.strip(_EDGE_CHARS) for p in re.split(r"\.\.\.|\[\s*\.\.\.\s*\]", needle)]
    parts = [p for p in parts if p]
    if len(parts) < 2:
        return None
    max_span = max(ELISION_MAX_SPAN, 4 * len(needle))
    best: tuple[int, int] | None = None
    first = haystack.text.find(parts[0])
    while first >= 0:
        pos = first + len(parts[0])
        for part in parts[1:]:
            found = haystack.text.find(part, pos)
            if found < 0:
                pos = -1
                break
            pos = found + len(part)
        if pos < 0:
            break  # a later part is missing after this start, so after any later start too
        # The tightest run of parts is the one the quote most likely elides.
        if pos - first <= max_span and (best is None or pos - first < best[1] - best[0]):
            best = (first, pos)
        first = haystack.text.find(parts[0], first + 1)
    if best is None:
        return None
    start, end = _span(haystack, *best)
    return Grounding(
        status=GroundingStatus.normalized,
        start=start,
        end=end,
        score=100.0,
        note=f"elided: {len(parts)} parts matched in order",
    )


def _fuzzy_match(needle: str, haystack: NormalizedText) -> Grounding:
    if len(needle) < FUZZY_MIN_CHARS:
        return Grounding(
            status=GroundingStatus.unfound,
            note=f"no exact or normalized match; too short for fuzzy (<{FUZZY_MIN_CHARS} chars)",
        )
    if len(needle) > len(haystack.text):
        return Grounding(status=GroundingStatus.unfound, note="quote is longer than the article")
    alignment = fuzz.partial_ratio_alignment(needle, haystack.text)
    if alignment is None:  # only returned with a score_cutoff, which we don't pass
        return Grounding(status=GroundingStatus.unfound, note="no fuzzy alignment")
    score = round(float(alignment.score), 1)
    if alignment.score < FUZZY_THRESHOLD:
        return Grounding(
            status=GroundingStatus.unfound,
            score=score,
            note=f"best fuzzy score {score} < {FUZZY_THRESHOLD}",
        )
    n_start, n_end = _widen_to_words(haystack.text, alignment.dest_start, alignment.dest_end)
    start, end = _span(haystack, n_start, n_end)
    return Grounding(status=GroundingStatus.fuzzy, start=start, end=end, score=score)


def _widen_to_words(text: str, start: int, end: int) -> tuple[int, int]:
    """Trim edge spaces and extend a fuzzy window to whole words, so the span reads cleanly."""
    while start < end and text[start] == " ":
        start += 1
    while end > start and text[end - 1] == " ":
        end -= 1
    while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while end < len(text) and text[end - 1].isalnum() and text[end].isalnum():
        end += 1
    return start, max(end, start + 1)


# --------------------------------------------------------------------------
# Support check: is the value stated by its own quote?
# --------------------------------------------------------------------------

ValueKind = Literal["name", "agency", "number", "count", "date", "phrase", "summary"]

_SINGULAR_WORDS = frozenset({"a", "an", "one", "single", "lone", "sole", "the", "that", "this"})
_OFFICER_NOUNS = {
    "agent": "agents",
    "officer": "officers",
    "deputy": "deputies",
    "trooper": "troopers",
    "marshal": "marshals",
    "policeman": "policemen",
    "policewoman": "policewomen",
    "guard": "guards",
    "detective": "detectives",
    "sergeant": "sergeants",
    "member": "members",
    "employee": "employees",
}
_PLURAL_WORDS = frozenset({"several", "multiple", "many", "some", "numerous", "both", "two or more"})
_RELATIVE_DAY_WORDS = frozenset({"today", "yesterday", "tonight", "overnight", "last night", "this morning"})
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "with",
        "and",
        "or",
        "but",
        "as",
        "is",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "he",
        "she",
        "they",
        "them",
        "his",
        "her",
        "their",
        "this",
        "that",
        "these",
        "those",
        "who",
        "whom",
        "which",
        "what",
        "when",
        "where",
        "while",
        "after",
        "before",
        "during",
        "about",
        "into",
        "over",
        "under",
        "than",
        "then",
        "there",
        "here",
        "said",
        "says",
        "say",
        "had",
        "has",
        "have",
        "not",
        "no",
        "also",
        "near",
        "very",
        "just",
        "more",
        "most",
        "other",
        "some",
        "such",
        "only",
        "own",
        "same",
        "so",
        "too",
        "can",
        "will",
        "would",
        "could",
        "should",
        "may",
        "might",
        "must",
        "up",
        "down",
        "out",
        "off",
        "again",
        "further",
        "once",
    ]
)
_NAME_PARTICLES = frozenset(
    {"de", "del", "la", "las", "los", "da", "van", "von", "der", "y", "jr", "sr", "ii"}
)

_PLACE_ALIASES: dict[str, tuple[str, ...]] = {
    **US_STATES,
    "united states": ("us", "usa", "america"),
    "mexico": ("mexican",),
}


def _words(text: str) -> list[str]:
    return fold(text).split()


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
    nouns = "|".join(_OFFICER_NOUNS)
    singles = "|".join(_SINGULAR_WORDS)
    # Up to five words between: "a Harlow County sheriff's deputy".
    if re.search(rf"\b(?:{singles})\b(?:\s+\w+){{0,5}}?\s+(?:{nouns})\b", folded):
        return True
    # Headlines drop the article ("Border Patrol agent kills driver"): a singular
    # noun with no plural one beside it still says one.
    return bool(re.search(rf"\b(?:{nouns})\b", folded)) and not _states_plural(folded)


def _states_plural(folded: str) -> bool:
    nouns = "|".join(_OFFICER_NOUNS.values())
    return bool(re.search(rf"\b(?:{nouns})\b", folded)) or any(
        f" {w} " in f" {folded} " for w in _PLURAL_WORDS
    )


def _check_number(value: Any, folded_quote: str, *, count: bool) -> bool | None:
    text = str(value).strip().casefold()
    if count and text in {"plural", "several", "multiple", "agents", "officers"}:
        return _states_plural(folded_quote)
    numbers = _number_values(fold(text))
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
    if any(w in padded for w in (f" {r} " for r in _RELATIVE_DAY_WORDS)):
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


def _check_agency(value: Any, quote: str, table: SpeakerTable) -> bool | None:
    value_id = table.agency_in(str(value))
    if value_id is not None and table.agency_in(quote) == value_id:
        return True
    words = [w for w in _words(str(value)) if w not in _STOPWORDS and w not in {"us", "department"}]
    if not words:
        return None
    quote_words = set(_words(quote))
    return all(w in quote_words for w in words)


def _content_words(text: str) -> list[str]:
    return [w for w in _words(text) if w not in _STOPWORDS and len(w) > 2 or w.isdigit()]


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


# Words by which articles usually state a category value that the extractor
# names with one word ("killed" from "died", "male" from "a man"). Incomplete on
# purpose: a miss leaves the value unchecked (None), never unsupported.
_CATEGORY_CUES: dict[str, frozenset[str]] = {
    "male": frozenset({"man", "men", "boy", "male", "he", "brother", "father", "son", "husband", "mr"}),
    "female": frozenset(
        {"woman", "women", "girl", "female", "she", "sister", "mother", "daughter", "wife", "mrs", "ms"}
    ),
    "killed": frozenset({"killed", "kills", "kill", "died", "dies", "dead", "fatally", "death", "slain"}),
    "injured": frozenset({"injured", "wounded", "hurt", "injuries", "hospitalized"}),
    "uninjured": frozenset({"uninjured", "unharmed", "unhurt"}),
    "arrested": frozenset({"arrested", "arrest", "custody", "detained", "booked"}),
    "shooting": frozenset({"shot", "shooting", "shoot", "shoots", "fired", "gunfire", "shots"}),
    "unarmed": frozenset({"unarmed"}),
    "vehicle": frozenset({"vehicle", "car", "van", "truck", "suv", "accelerated", "rammed", "struck"}),
}


def _check_summary(value: Any, folded_quote: str) -> bool | None:
    cues = _CATEGORY_CUES.get(fold(str(value)))
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
    if 1 < len(tokens) <= 5 and all(t[:1].isupper() for t in tokens if fold(t) not in _NAME_PARTICLES):
        return "name"
    return "phrase"


def check_support(
    value: Any, quote: str, *, kind: ValueKind | None = None, table: SpeakerTable | None = None
) -> bool | None:
    """Whether ``quote`` states ``value``; None when that cannot be checked.

    ``kind`` says how to compare (inferred from the value when omitted):
    names token by token (accent/case-insensitive, a compound surname may be
    shortened), numbers in digits or words, counts also as "an agent"/"agents",
    ISO dates against a weekday, month-day or the date itself, place-like
    phrases by content-word overlap (False when too little overlaps), and
    summaries by overlap (None rather than False when they paraphrase).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not quote or not quote.strip():
        return False
    kind = kind or infer_kind(value)
    folded_quote = fold(quote)
    if kind == "name":
        return _check_name(value, quote)
    if kind == "agency":
        return _check_agency(value, quote, table or default_table())
    if kind in ("number", "count"):
        return _check_number(value, folded_quote, count=kind == "count")
    if kind == "date":
        return _check_date(value, folded_quote)
    if kind == "phrase":
        return _check_phrase(value, folded_quote)
    return _check_summary(value, folded_quote)


# Statuses set when evidence was located sentence by sentence (pipeline.evidence.cite); grounding keeps them.
SENTENCE_STATUSES = frozenset({GroundingStatus.sentence_match, GroundingStatus.model_cited})

# How a value of each kind is checked against its evidence (check_support's ``kind``).
SUPPORT_KIND_OF: dict[KindName, ValueKind] = {
    "date": "date",
    "date_phrase": "phrase",
    "time": "phrase",
    "place_text": "phrase",
    "city": "phrase",
    "county": "phrase",
    "state": "phrase",
    "country": "phrase",
    "category": "summary",  # "vehicle", "unarmed", a weapon: often paraphrased
    "label": "phrase",
    "place_category": "phrase",
    "summary": "summary",
    "person": "name",
    "age": "number",
    "count": "count",
    "severity": "phrase",
    "agency": "agency",
}

# Field path (list indices dropped) -> how its value is checked, for every Cited field.
FIELD_KINDS: dict[str, ValueKind] = {
    spec.plain_path: SUPPORT_KIND_OF[spec.kind] for spec in record_fields() if spec.cited
}


def ground_record(
    record: IncidentRecord, article: Article, *, table: SpeakerTable | None = None
) -> IncidentRecord:
    """A copy of ``record`` with grounding and canonical speakers on every cited value and statement.

    Walks all nested models and list items, so fields added to the schema
    later are grounded without changes here. Unfound quotes stay in the record.
    """
    table = table or default_table()
    grounded = record.model_copy(deep=True)
    outlet = article.outlet or record.provenance.outlet

    def visit_cited(cited: Cited[Any], path: str) -> None:
        if cited.grounding is not None and cited.grounding.status in SENTENCE_STATUSES:
            # Evidence located by pipeline.evidence.cite from the article's own sentences: already
            # placed and checked, and its quote is the sentence, so keep it as it is.
            cited.speaker = canonical_speaker(cited.attribution, outlet=outlet, table=table)
            cited_speakers.append((cited, person_name(cited.attribution)))
            return
        grounding = locate_quote(cited.quote, article.text)
        # Check the value against what the article says where the quote was found:
        # a fuzzy match may differ from the extractor's quote in exactly the word
        # that carries the value ("stable" vs "critical condition").
        evidence = (
            article.text[grounding.start : grounding.end]
            if grounding.start is not None and grounding.end is not None
            else cited.quote
        )
        grounding.supported = check_support(cited.value, evidence, kind=FIELD_KINDS.get(path), table=table)
        cited.grounding = grounding
        cited.speaker = canonical_speaker(cited.attribution, outlet=outlet, table=table)
        cited_speakers.append((cited, person_name(cited.attribution)))

    def visit_statement(statement: Statement) -> None:
        if statement.grounding is None or statement.grounding.sentence is None:
            statement.grounding = locate_quote(statement.quote, article.text)
        who = (
            statement.speaker
            if not statement.affiliation
            else f"{statement.speaker}, {statement.affiliation}"
        )
        statement.speaker_id = canonical_speaker(who, outlet=outlet, table=table)
        statements.append(statement)

    cited_speakers: list[tuple[Cited[Any], str | None]] = []
    statements: list[Statement] = []
    _walk(grounded, "", visit_cited, visit_statement)
    _unify_speakers(cited_speakers, statements)
    return grounded


def _unify_speakers(cited: list[tuple[Cited[Any], str | None]], statements: list[Statement]) -> None:
    """Give one person one id within a record.

    The extractor may attribute a value to "Dolores Ybarra" while her statement
    carries the affiliation "witness", or name "Carla Whitfield" where her
    statement says she speaks for DHS. The more specific id (witness or agency)
    wins over the bare ``person:`` one the name alone would give.
    """
    by_name: dict[str, str] = {}
    for statement in statements:
        if statement.speaker_id and not statement.speaker_id.startswith("person:"):
            by_name.setdefault(slugify(statement.speaker), statement.speaker_id)
    for value, name in cited:
        if name and value.speaker and value.speaker.startswith("witness:"):
            by_name.setdefault(slugify(name), value.speaker)
    if not by_name:
        return
    for value, _ in cited:
        if value.speaker and value.speaker.startswith("person:"):
            value.speaker = by_name.get(value.speaker.removeprefix("person:"), value.speaker)
    for statement in statements:
        if statement.speaker_id and statement.speaker_id.startswith("person:"):
            statement.speaker_id = by_name.get(
                statement.speaker_id.removeprefix("person:"), statement.speaker_id
            )


def _walk(
    node: Any,
    path: str,
    visit_cited: Callable[[Cited[Any], str], None],
    visit_statement: Callable[[Statement], None],
) -> None:
    if isinstance(node, Cited):
        visit_cited(node, path)
    elif isinstance(node, Statement):
        visit_statement(node)
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            child = getattr(node, name)
            _walk(child, f"{path}.{name}" if path else name, visit_cited, visit_statement)
    elif isinstance(node, list | tuple):
        for item in node:
            _walk(item, path, visit_cited, visit_statement)
