"""People and who speaks: names of persons, agencies, speakers and quotations, and the
strategies of the ``person``, ``agency``, ``speaker`` and ``quote`` kinds."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from rapidfuzz import fuzz

from pipeline.kinds.base import (
    CACHE_SIZE,
    NO_CONTEXT,
    PUNCT,
    KindStrategy,
    Normalized,
    Relation,
    ValueContext,
    slug,
)
from pipeline.kinds.support import ValueKind
from pipeline.kinds.words import ARTICLES, fold

_NAME_NOISE = {"mr", "mrs", "ms", "dr", "jr", "sr", "ii", "iii", "iv"}


@lru_cache(maxsize=CACHE_SIZE)
def name_tokens(name: str) -> tuple[str, ...]:
    """Folded name tokens: case, accents, hyphens and titles removed."""
    text = fold(name).replace("-", " ").replace("'", "").replace("\u2019", "")
    return tuple(t for t in PUNCT.sub(" ", text).split() if t not in _NAME_NOISE)


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
    words = PUNCT.sub(" ", text).split()
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
    while words and words[0].casefold() in ARTICLES:
        words = words[1:]
    named = any(word[:1].isupper() for word in words) and not (
        len(words) == 1 and words[0].casefold() in _GENERIC_SPEAKERS
    )
    if not named:
        return f"unnamed:{slug(attribution)}@{slug(outlet) if outlet else article_id}"
    return f"person:{slug(attribution)}"


# --------------------------------------------------------------------------- quotes


@lru_cache(maxsize=CACHE_SIZE)
def quote_key(text: str) -> str:
    """Punctuation-, case- and quote-mark-insensitive text of a quotation."""
    return " ".join(PUNCT.sub(" ", fold(unicodedata.normalize("NFKC", text))).split())


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


# --------------------------------------------------------------------------- strategies


class PersonStrategy(KindStrategy):
    """A person's name. The form is the name's tokens (case, accents, hyphens and titles
    dropped: "José Peña-Whitlock" and "Jose Pena Whitlock" are one spelling); other
    spellings of one person ("Quintero" for "Rafael Quintero-Alvarez") are a variant."""

    support: ValueKind = "name"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        return Normalized(" ".join(name_tokens(text)) or " ".join(text.casefold().split()), None)

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        return Relation.VARIANT if name_similarity(a.form, b.form) >= NAME_MATCH else Relation.CONTRADICTION


class AgencyStrategy(KindStrategy):
    """An agency by canonical key ("DHS" and "Department of Homeland Security" are "dhs").
    Agencies are list items matched across records by that key, so two names that reach
    the comparison of one item's name are variants of it."""

    support: ValueKind = "agency"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        return Normalized(agency_key(text), None)

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        return Relation.VARIANT


class SpeakerStrategy(KindStrategy):
    """Who made a statement, as named; different names are different speakers."""

    support: ValueKind = "name"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        return Normalized(text, None)

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        return Relation.CONTRADICTION


class QuoteStrategy(KindStrategy):
    """A statement's words, up to punctuation and quote marks; an excerpt is a variant."""

    support: ValueKind = "phrase"

    def normalize(self, text: str, ctx: ValueContext = NO_CONTEXT, field: str = "") -> Normalized:
        return Normalized(quote_key(text), None)

    def relate_forms(self, a: Normalized, b: Normalized) -> Relation:
        return Relation.VARIANT if quotes_match(a.form, b.form) else Relation.CONTRADICTION
