"""The word lists every stage shares: numbers, months, weekdays, US states.

One copy, so that grounding, evidence, date resolution, normalising and eval
read "sept", "nineteen" or "Ariz." the same way.
"""

from __future__ import annotations

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
