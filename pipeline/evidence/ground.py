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
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from rapidfuzz import fuzz

from pipeline.evidence.attribute import SpeakerTable, canonical_speaker, default_table, person_name, slugify
from pipeline.kinds import support
from pipeline.kinds.base import KindStrategy
from pipeline.kinds.strategies import STRATEGIES
from pipeline.kinds.support import ValueKind, infer_kind

# The word lists pipeline.evidence.locate reads under these names; they live in pipeline.kinds.words.
from pipeline.kinds.words import CATEGORY_CUES as _CATEGORY_CUES
from pipeline.kinds.words import OFFICER_NOUNS as _OFFICER_NOUNS
from pipeline.kinds.words import RELATIVE_DAY_WORDS as _RELATIVE_DAY_WORDS
from pipeline.kinds.words import STOPWORDS as _STOPWORDS
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


def check_support(
    value: Any, quote: str, *, kind: ValueKind | None = None, table: SpeakerTable | None = None
) -> bool | None:
    """Whether ``quote`` states ``value``; None when that cannot be checked.

    The checks are :func:`pipeline.kinds.support.check_support`; this one resolves agency
    names with the speaker table (default: the curated one plus ``$TRIANGULATE_SPEAKERS``).
    """
    return support.check_support(value, quote, kind=kind, agencies=table or default_table())


# Statuses set when evidence was located sentence by sentence (pipeline.evidence.cite); grounding keeps them.
SENTENCE_STATUSES = frozenset({GroundingStatus.sentence_match, GroundingStatus.model_cited})

# How a value of each kind is checked against its evidence (check_support's ``kind``).
SUPPORT_KIND_OF: dict[KindName, ValueKind] = {name: s.support for name, s in STRATEGIES.items()}

# Field path (list indices dropped) -> how its value is checked, for every Cited field.
FIELD_KINDS: dict[str, ValueKind] = {
    spec.plain_path: STRATEGIES[spec.kind].support for spec in record_fields() if spec.cited
}
# Field path (list indices dropped) -> its kind's strategy, which checks its evidence.
_STRATEGY_OF: dict[str, KindStrategy] = {
    spec.plain_path: STRATEGIES[spec.kind] for spec in record_fields() if spec.cited
}

__all__ = [
    "FIELD_KINDS",
    "FUZZY_MIN_CHARS",
    "FUZZY_THRESHOLD",
    "SENTENCE_STATUSES",
    "SUPPORT_KIND_OF",
    "_CATEGORY_CUES",
    "_OFFICER_NOUNS",
    "_RELATIVE_DAY_WORDS",
    "_STOPWORDS",
    "ValueKind",
    "check_support",
    "ground_record",
    "infer_kind",
    "locate_quote",
    "normalize",
    "normalize_with_map",
]


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
        strategy = _STRATEGY_OF.get(path)
        grounding.supported = (
            strategy.supports(cited.value, evidence, table)
            if strategy is not None
            else check_support(cited.value, evidence, table=table)
        )
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
    for statement in statements:
        if statement.speaker_id and statement.speaker_id.startswith("person:"):
            statement.speaker_id = (
                _official_of(statement.speaker, article.text, table) or statement.speaker_id
            )
    _unify_speakers(cited_speakers, statements)
    return grounded


# Titles that make the person after them speak for the agency named before them
# ("Homeland Security Assistant Secretary Tricia McLaughlin", "ICE spokesperson Jane Roe").
_OFFICIAL_TITLES = re.compile(
    r"\b(?:secretary|assistant secretary|deputy secretary|spokes(?:person|man|woman)|press secretary|"
    r"director|deputy director|commissioner|chief|sheriff|administrator|official|press officer|"
    r"public affairs officer|acting director|field office director)\b",
    re.IGNORECASE,
)
_BEFORE_NAME_CHARS = 80
_OUTLET_REPORTER = re.compile(
    r"(?P<outlet>(?:[A-Z0-9][\w&.'’-]*\s+){1,4})(?:senior\s+|chief\s+)?"
    r"(?:reporter|correspondent|anchor|journalist|producer)\s*,?\s*$"
)


def _official_of(name: str, text: str, table: SpeakerTable) -> str | None:
    """The agency a person speaks for when the article introduces them by title, e.g. "Homeland
    Security Assistant Secretary Tricia McLaughlin" -> agency:dhs, or the outlet a reporter
    reports for ("CBS News correspondent Jane Roe" -> outlet:cbs-news); None when it does not. A
    later bare "McLaughlin said" is then the same official, so her words count under her agency."""
    words = name.split()
    if not words:
        return None
    for match in re.finditer(rf"\b{re.escape(words[-1])}\b", text):
        before = text[max(0, match.start() - _BEFORE_NAME_CHARS) : match.start()]
        # Only the words right before the name, within its sentence: a title must name her.
        before = re.split(r"[.!?\n]\s", before)[-1]
        for _ in range(2):  # her given names ("Tricia"), which are not part of the title
            last = re.search(r"([A-Z][\w.'’-]*)\s*$", before)
            if last is None or _OFFICIAL_TITLES.fullmatch(last.group(1)):
                break
            before = before[: last.start()]
        reporter = _OUTLET_REPORTER.search(before)
        if reporter is not None and (outlet := table.outlet_named(reporter["outlet"].strip())) is not None:
            # "Fox News reporter Bill Melugin reported ...": a relayed report of that outlet,
            # never a private person.
            return outlet
        title = list(_OFFICIAL_TITLES.finditer(before))
        if not title or before[title[-1].end() :].strip(" ,") != "":
            continue
        agency = table.agency_in(before)
        if agency is not None:
            return agency
    return None


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
