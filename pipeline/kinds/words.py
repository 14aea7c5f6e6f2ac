"""The word lists every stage shares (numbers, months, weekdays, US states, the words that
state a count or a category) and the two ways text is folded before words are compared.

One copy, so that grounding, evidence, date resolution, normalising and eval
read "sept", "nineteen", "Ariz." or "José" the same way.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache


# Memoised: normalising a 100k-record run folds each name and place many times
# (pipeline.kinds.normalize.clear_caches empties it after a run).
@lru_cache(maxsize=1 << 21)
def fold(text: str) -> str:
    """Lower-case, strip accents, collapse whitespace; punctuation is kept (the form names and
    dates are parsed from, where "St." and "7:30" still matter)."""
    if text.isascii():
        return " ".join(text.casefold().split())
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def fold_words(text: str) -> str:
    """:func:`fold`, then punctuation turned into spaces: the words of a text, for checking that
    one text states the words of another."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    no_marks = "".join(c for c in decomposed if not unicodedata.combining(c))
    # Dots inside acronyms ("U.S.") vanish rather than split the word.
    no_marks = re.sub(r"(?<=\w)\.(?=\w)", "", no_marks)
    spaced = re.sub(r"[^\w]+", " ", no_marks)
    return " ".join(spaced.split())


# Never what distinguishes two values of a field ("the hospital", "a hospital").
ARTICLES: frozenset[str] = frozenset({"a", "an", "the"})

# Cardinal numbers written as words, below twenty; with TENS_WORDS they spell 0..99.
NUMBER_WORDS: dict[str, int] = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
TENS_WORDS: dict[str, int] = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}


def number_from_words(words: Sequence[str]) -> int | None:
    """The number 0..99 that ``words`` spell in full ("thirty", "four"), else None."""
    if len(words) == 1 and words[0] in NUMBER_WORDS:
        return NUMBER_WORDS[words[0]]
    if len(words) == 1 and words[0] in TENS_WORDS:
        return TENS_WORDS[words[0]]
    if len(words) == 2 and words[0] in TENS_WORDS and NUMBER_WORDS.get(words[1], 0) in range(1, 10):
        return TENS_WORDS[words[0]] + NUMBER_WORDS[words[1]]
    return None


MONTHS: tuple[str, ...] = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
# Every way a month is named: full names and the abbreviations news copy uses ("Sept.").
MONTH_NUMBERS: dict[str, int] = (
    {name: i + 1 for i, name in enumerate(MONTHS)}
    | {name[:3]: i + 1 for i, name in enumerate(MONTHS)}
    | {"sept": 9}
)
WEEKDAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# US states and DC: folded name -> the abbreviations newsrooms use (postal and AP style).
US_STATES: dict[str, tuple[str, ...]] = {
    "alabama": ("al", "ala"),
    "alaska": ("ak",),
    "arizona": ("az", "ariz"),
    "arkansas": ("ar", "ark"),
    "california": ("ca", "calif", "cal"),
    "colorado": ("co", "colo"),
    "connecticut": ("ct", "conn"),
    "delaware": ("de", "del"),
    "florida": ("fl", "fla"),
    "georgia": ("ga",),
    "hawaii": ("hi",),
    "idaho": ("id",),
    "illinois": ("il", "ill"),
    "indiana": ("in", "ind"),
    "iowa": ("ia",),
    "kansas": ("ks", "kan", "kans"),
    "kentucky": ("ky",),
    "louisiana": ("la",),
    "maine": ("me",),
    "maryland": ("md",),
    "massachusetts": ("ma", "mass"),
    "michigan": ("mi", "mich"),
    "minnesota": ("mn", "minn"),
    "mississippi": ("ms", "miss"),
    "missouri": ("mo",),
    "montana": ("mt", "mont"),
    "nebraska": ("ne", "neb", "nebr"),
    "nevada": ("nv", "nev"),
    "new hampshire": ("nh",),
    "new jersey": ("nj",),
    "new mexico": ("nm",),
    "new york": ("ny",),
    "north carolina": ("nc",),
    "north dakota": ("nd",),
    "ohio": ("oh",),
    "oklahoma": ("ok", "okla"),
    "oregon": ("or", "ore"),
    "pennsylvania": ("pa",),
    "rhode island": ("ri",),
    "south carolina": ("sc",),
    "south dakota": ("sd",),
    "tennessee": ("tn", "tenn"),
    "texas": ("tx", "tex"),
    "utah": ("ut",),
    "vermont": ("vt",),
    "virginia": ("va",),
    "washington": ("wa", "wash"),
    "west virginia": ("wv",),
    "wisconsin": ("wi", "wis"),
    "wyoming": ("wy", "wyo"),
    "district of columbia": ("dc",),
}


# ----------------------------------------------------------- words that state a value

# The people a count of officers counts, singular -> plural.
OFFICER_NOUNS: dict[str, str] = {
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
# Day words whose date depends on when the article was published.
RELATIVE_DAY_WORDS: frozenset[str] = frozenset(
    {"today", "yesterday", "tonight", "overnight", "last night", "this morning"}
)
# Words too common to show that a text states a value.
STOPWORDS: frozenset[str] = frozenset(
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

# Words by which articles usually state a category value that the extractor
# names with one word ("killed" from "died", "male" from "a man"). Incomplete on
# purpose: a miss leaves the value unchecked (None), never unsupported.
CATEGORY_CUES: dict[str, frozenset[str]] = {
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
