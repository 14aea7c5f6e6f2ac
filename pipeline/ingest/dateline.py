"""The publication date an article prints at its top: a dateline, a byline or a date stamp.

Read only when the input carries no date of its own (front matter, sidecar,
HTML meta tag, JSONL field), because "Friday" in the story cannot be resolved
without one. The reader is deliberately narrow: a wrong publication date
silently moves every relative date in the record, while a missing one leaves
them unresolved where a reviewer sees it. So a date is read only from a *date
line*, never guessed:

* Only the head is looked at: lines that start within the first
  ``HEAD_CHARS`` characters, and none after the first paragraph of prose.
  "On Friday, Sept. 12, police said ..." further down is when something
  happened, not when the story was published.
* A date line holds nothing but dates and what surrounds them in a dateline:
  labels ("Published", "Updated", "Posted", "date"), weekdays, times with
  their zone ("9:14 PM EDT"), a byline ("By Jane Roe, Valley Ledger"),
  parenthesised names ("(Jane Roe, Valley Ledger)", "(AP)"), an upper-case
  place ("TEMPE, Ariz.,") and separators. One lower-case word of prose makes
  it a sentence, and a sentence is never read.
* A wire dateline that opens the first paragraph ("TEMPE, Ariz. (AP) —
  Sept. 13, 2025 — A Border Patrol agent ...") is read up to the dash where
  the story starts; it must begin with the upper-case place.
* Forms: "2025-09-13" (also with a time), "9/13/2025" (month first, the US
  order), "Sept. 13, 2025", "September 13, 2025", "13 September 2025", in any
  case, with month and weekday words from :mod:`pipeline.kinds.words`.
* Null rather than a guess: an impossible date ("Feb. 30, 2025"), a date
  without its year ("Sept. 13"), a two-digit year ("9/13/25": a '25 could be
  1925 or 2025, and a numeric date with a short year is as often day-first as
  month-first, so no reading of it is safe), a day-first numeric date
  ("13/9/2025": read month-first it is impossible, and swapping only the
  impossible ones would read one outlet's dates two ways), or two different
  dates of the same kind ("Sept. 12, 2025 - Sept. 13, 2025").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from pipeline.kinds.words import MONTH_NUMBERS, WEEKDAYS

# Lines that start within this many characters are the head; a dateline sits above the story.
HEAD_CHARS = 600
# A line of more words than this that is not a date line is prose: the body has begun.
_PROSE_WORDS = 20
# A dateline's place: at most this many upper-case words ("NEW YORK", "SALT LAKE CITY").
_PLACE_WORDS = 4

_Label = Literal["published", "updated", "plain"]

# The words that label a date. "Posted" and "filed" say when the story went out, as "published"
# does; "modified" and "revised" are updates.
_LABELS: dict[str, _Label] = {
    "published": "published",
    "posted": "published",
    "filed": "published",
    "updated": "updated",
    "modified": "updated",
    "revised": "updated",
    "date": "plain",
    "dated": "plain",
}
# Glue between a label, a date and a time: "Last updated on Sat at 9:14 PM".
_FILLERS = frozenset({"on", "at", "last", "first", "originally", "and"})
# Lower-case words a byline or a parenthesised credit may hold besides names: connectives,
# job titles and name particles ("By Ana de la Cruz and Jane Roe, staff writers").
_BYLINE_WORDS = frozenset(
    {"and", "of", "the", "for", "staff", "writer", "writers", "reporter", "reporters"}
    | {"correspondent", "editor", "contributor", "de", "del", "della", "da", "di", "du", "la", "le"}
    | {"van", "von", "der", "den", "al", "bin"}
)

# Longest first, so "september" is tried before "sep" and "sept".
_MONTH = "|".join(sorted(MONTH_NUMBERS, key=len, reverse=True))
_ORDINAL = r"(?:st|nd|rd|th)?"
# A year is whatever digits follow; _to_date refuses all but four. It never takes the hour of
# a time ("September 13 9:14 PM").
_YEAR = r"(?:,\s*|\s+)(?P<{name}>\d+)(?![\d:])"
_YEAR_MDY = _YEAR.format(name="y1")
_YEAR_DMY = _YEAR.format(name="y2")
_TOKEN = re.compile(
    rf"""
    (?P<iso>(?<![\d/-])(?P<iy>\d{{4}})-(?P<im>\d{{1,2}})-(?P<id>\d{{1,2}})
        (?:[T\ ]\d{{1,2}}:\d{{2}}(?::\d{{2}}(?:\.\d+)?)?(?:Z|[+-]\d{{2}}:?\d{{2}})?)?(?![\d/-]))
    |(?P<numeric>(?<![\d/-])(?P<nm>\d{{1,2}})/(?P<nd>\d{{1,2}})/(?P<ny>\d+)(?![\d/]))
    |(?P<mdy>\b(?P<m1>{_MONTH})\b\.?\s*(?P<d1>\d{{1,2}}){_ORDINAL}(?![\d:])(?:{_YEAR_MDY})?)
    |(?P<dmy>(?<![\d/-])(?P<d2>\d{{1,2}}){_ORDINAL}\s+(?:of\s+)?(?P<m2>{_MONTH})\b\.?
        (?:{_YEAR_DMY})?)
    |(?P<time>(?<!\d)\d{{1,2}}(?::\d{{2}}){{1,2}}(?:\s*[ap]\.?\s?m\b\.?)?|(?<!\d)\d{{1,2}}\s*[ap]\.?m\b\.?)
    |(?P<word>[^\W\d_](?:[\w'’.-]*[^\W_])?\.?)
    |(?P<open>[(\[])
    |(?P<close>[)\]])
    |(?P<dash>—|–|--+|(?<=\s)-(?=\s))
    |(?P<sep>[|,;:/·•*]|-)
    |(?P<space>\s+)
    |(?P<other>.)
    """,
    re.VERBOSE | re.IGNORECASE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    # For a date token: the date, or None when it is printed but cannot be read.
    value: date | None = None


@dataclass(frozen=True)
class _Dated:
    label: _Label
    value: date | None


def read_dateline(text: str) -> date | None:
    """The publication date printed at the top of ``text``, or None when none can be read for sure."""
    found: list[_Dated] = []
    start = 0
    for line in text.split("\n"):
        if start >= HEAD_CHARS:
            break
        start += len(line) + 1
        # A date line is short; of a longer line (a paragraph) only its opening can be a dateline.
        whole = len(line) <= HEAD_CHARS
        tokens = _tokens(line[:HEAD_CHARS])
        if not tokens:
            continue
        dates = _date_line(tokens) if whole else None
        if dates is not None:
            found += dates
            continue
        wire = _wire_dateline(tokens, cut=not whole)
        if wire is not None:
            found += wire
            break  # the story starts after the dash
        if sum(token.kind == "word" for token in tokens) > _PROSE_WORDS:
            break
    return _publication_date(found)


def _publication_date(found: list[_Dated]) -> date | None:
    if any(dated.value is None for dated in found):
        return None  # a date is printed that cannot be read: any other would be a guess
    by_label: dict[_Label, set[date]] = {"published": set(), "plain": set(), "updated": set()}
    for dated in found:
        if dated.value is not None:
            by_label[dated.label].add(dated.value)
    # "Published" wins over "Updated": the story's relative words ("Friday") were written on the
    # day it came out, the publication date is what metadata calls `published` (so the two
    # sources agree), and an update stamp moves with every correction, so a re-read tomorrow
    # would date the same text differently. A bare date is the publication date with a label
    # left off; an update stamp alone is still the date of the text as we read it.
    for label in ("published", "plain", "updated"):
        dates = by_label[label]
        if dates:
            return dates.pop() if len(dates) == 1 else None
    return None


# ---------------------------------------------------------------- tokens


def _tokens(line: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(line):
        kind = match.lastgroup
        if kind is None or kind == "space":
            continue
        if kind in ("iso", "numeric", "mdy", "dmy"):
            tokens.append(_Token("date", match.group(), _date_of(match)))
        else:
            tokens.append(_Token(kind, match.group()))
    return tokens


def _date_of(match: re.Match[str]) -> date | None:
    kind = match.lastgroup
    if kind == "iso":
        return _to_date(match["iy"], match["im"], match["id"])
    if kind == "numeric":
        return _to_date(match["ny"], match["nm"], match["nd"])
    if kind == "mdy":
        return _to_date(match["y1"], str(MONTH_NUMBERS[match["m1"].lower()]), match["d1"])
    return _to_date(match["y2"], str(MONTH_NUMBERS[match["m2"].lower()]), match["d2"])


def _to_date(year: str | None, month: str, day: str) -> date | None:
    if year is None or len(year) != 4:
        return None  # no year, or a two-digit one: see the module docstring
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        return None  # "Feb. 30", month 13


def _bare(token: _Token) -> str:
    return token.text.rstrip(".").lower()


def _is_weekday(token: _Token) -> bool:
    # Full names and the abbreviations news copy uses ("Sat", "Tues.", "Thurs"): a prefix of
    # at least three letters.
    word = _bare(token)
    return len(word) >= 3 and any(weekday.startswith(word) for weekday in WEEKDAYS)


def _is_name(token: _Token) -> bool:
    return token.kind == "word" and (token.text[0].isupper() or _bare(token) in _BYLINE_WORDS)


def _is_upper(token: _Token) -> bool:
    return token.kind == "word" and any(c.isalpha() for c in token.text) and token.text.isupper()


# ---------------------------------------------------------------- date lines


def _date_line(tokens: list[_Token]) -> list[_Dated] | None:
    """The dates on a line that is a date line, or None when the line is anything else."""
    return _dates_in(tokens, _place_length(tokens))


def _wire_dateline(tokens: list[_Token], *, cut: bool) -> list[_Dated] | None:
    """The dates in the dash-separated dateline that opens a paragraph ("PLACE (AP) — date — ...").

    Segments are read up to the first one that is not a date line: there the story begins.
    ``cut``: the tokens are the opening of a longer line, so the last segment may end mid-word
    (or mid-date) and is never read.
    """
    segments: list[list[_Token]] = [[]]
    for token in tokens:
        if token.kind == "dash":
            segments.append([])
        else:
            segments[-1].append(token)
    if cut:
        segments.pop()
    if len(segments) < 2:
        return None
    place = _place_length(segments[0])
    if place == 0:
        return None  # without the place, a dash after a date is just punctuation in a sentence
    found = _dates_in(segments[0], place)
    if found is None:
        return None
    for segment in segments[1:]:
        more = _dates_in(segment, 0)
        if more is None:
            break
        found += more
    return found


def _place_length(tokens: list[_Token]) -> int:
    """How many tokens at the start name a dateline's place ("TEMPE, Ariz.,"); 0 when none do.

    The place is upper case and ends at a comma, a parenthesis, a dash or the end, so an all-caps
    headline running into a date is not taken for one.
    """
    words = 0
    while words < len(tokens) and words < _PLACE_WORDS and _is_upper(tokens[words]):
        words += 1
    if words == 0:
        return 0
    if words == len(tokens) or tokens[words].kind in ("open", "dash"):
        return words
    if tokens[words].text != ",":
        return 0
    # A state or country after the comma: "TEMPE, Ariz.,", "RIVERSIDE, Ohio", "SANTA FE, N.M."
    end = words + 1
    region = end
    while (
        region < len(tokens)
        and region - end < 3
        and _is_name(tokens[region])
        and not _is_date_word(tokens[region])
    ):
        region += 1
    return region


def _is_date_word(token: _Token) -> bool:
    return _is_weekday(token) or _bare(token) in _LABELS


def _dates_in(tokens: list[_Token], skip: int) -> list[_Dated] | None:
    """The labelled dates in ``tokens`` (after the first ``skip``), or None when anything in
    them is not part of a date line."""
    found: list[_Dated] = []
    label: _Label = "plain"
    depth = 0  # inside parentheses, which hold names: "(Jane Roe, Valley Ledger)"
    byline: Literal["no", "by", "named"] = "no"
    after_time = False
    for token in tokens[skip:]:
        zone = after_time and _is_upper(token) and 2 <= len(token.text) <= 5
        after_time = token.kind == "time"
        word = _bare(token) if token.kind == "word" else ""
        if byline == "by":
            # "By" opens a byline only when a name follows: "By Friday, police ..." is a sentence.
            if token.kind != "word" or not token.text[0].isupper() or _is_date_word(token):
                return None
            byline = "named"
        elif token.kind == "date":
            found.append(_Dated(label, token.value))
            byline = "no"
        elif token.kind in ("time", "sep", "dash") or zone:
            if token.text == "|" or token.kind == "dash":
                label, byline = "plain", "no"  # a new item: "Published ... | Updated ..."
        elif token.kind == "open":
            depth += 1
        elif token.kind == "close":
            if depth == 0:
                return None
            depth -= 1
        elif token.kind != "word":
            return None
        elif word in _LABELS:
            label, byline = _LABELS[word], "no"
        elif word == "by":
            byline = "by"
        elif (byline == "named" or depth > 0) and _is_name(token):
            pass
        elif _is_weekday(token) or word in _FILLERS:
            byline = "no"
        else:
            return None  # a word of prose: this line is a sentence
    return None if byline == "by" else found
