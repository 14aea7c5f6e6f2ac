"""Sentences, and the evidence for each value located in them by the pipeline.

The model reads an article as numbered sentences ("[1] ... [n]") and returns,
for each field, a value and the number of the sentence it thinks states it.
That number is right a little over half the time, so it is used here only as a
hint: :func:`locate_evidence` searches every sentence for one that supports the
value and falls back to the model's sentence only when none does.

* :func:`split_sentences` / :func:`number_sentences`: the sentences, with
  offsets into the original text, and the numbered text the model reads.
* :func:`locate_evidence`: the :class:`~schemas.record.Grounding` of one value.
* :func:`attribution_for`: who a sentence says asserts what it states.
* :func:`quoted_text` / :func:`locate_statement`: the words a speaker is quoted
  saying.

Everything here is rule-based and deterministic: regular expressions over the
text, or over its folded form (:func:`pipeline.evidence.attribute.fold`: lowercase, no
accents, punctuation as spaces) with a map back to the original offsets.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from pipeline.evidence.attribute import (
    SpeakerTable,
    canonical_speaker,
    default_table,
    fold,
    person_name,
    relayed_name,
    slugify,
)
from pipeline.evidence.ground import (
    _CATEGORY_CUES,
    _OFFICER_NOUNS,
    _RELATIVE_DAY_WORDS,
    _STOPWORDS,
    FIELD_KINDS,
    ValueKind,
    check_support,
)
from pipeline.kinds.words import MONTH_NUMBERS, MONTHS, NUMBER_WORDS, TENS_WORDS, WEEKDAYS
from schemas.record import Grounding, GroundingStatus

# --------------------------------------------------------------------------
# Sentences
# --------------------------------------------------------------------------

# A sentence longer than this is cut at "; " (else ", ") boundaries near its middle.
MAX_SENTENCE_CHARS = 600


@dataclass(frozen=True)
class Sentence:
    """One sentence of an article: ``text == article_text[start:end]``, numbered from 1."""

    number: int
    start: int
    end: int
    text: str


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Characters that end a line (what str.splitlines splits on).
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_LINE = re.compile(f"[^{_LINE_BREAKS}]+")
_LINE_BREAK = re.compile(f"\r\n|[{_LINE_BREAKS}]")
_INNER_BREAKS = re.compile(f"\\s*[{_LINE_BREAKS}]+\\s*")
# Sentence-final punctuation, with any closing quotes or brackets, before whitespace.
_SENTENCE_END = re.compile("[.!?\u2026]+[\"'\u201d\u2019\u00bb)\\]]*(?=\\s)")
# Words that end with a period without ending the sentence (compared lowercase, without the
# final period). A sentence does end after one when the next word is in _SENTENCE_STARTERS.
_ABBREVIATIONS = _word_set(
    """
    mr mrs ms dr jr sr st sgt lt capt cpl col gen maj det ofc insp supt gov sen rep rev hon prof
    pres atty no nos ave blvd rd hwy mt ft dept inc corp co ltd bros vs etc approx est
    jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thur thurs fri sat sun
    ala ariz ark calif colo conn del fla ga ill ind kan kans ky la md mass mich minn miss mo mont
    neb nev okla ore pa tenn tex va vt wash wis wyo
    """
)
# Dotted abbreviations and initials: "U.S", "a.m", "Ph.D" (the final period excluded).
_DOTTED = re.compile(r"(?:[A-Za-z]{1,2}\.)+[A-Za-z]{1,2}")
_INITIAL = re.compile(r"[A-Z]")
# Words that begin a new sentence after an abbreviation that also ended the previous one
# ("... in the U.S. The agency said"). Any other word keeps the abbreviation inside.
_SENTENCE_STARTERS = _word_set(
    """
    The A An He She It They We I His Her Their Its This That These Those There Then In On At
    After Before But And Police Officials Authorities Witnesses Officers Agents
    """
)
_NEXT_WORD = re.compile(r"[\"'\u201c\u2018(\[]*([A-Za-z]+)(\.?)")


def split_sentences(text: str) -> list[Sentence]:
    """The sentences of ``text`` in order, numbered from 1, with offsets into ``text``.

    Sentences end at ``. ! ?`` (or an ellipsis), with any closing quotes or
    brackets, before whitespace; and at line breaks, so that a headline, a
    dateline or an embedded social post is a sentence of its own. Exceptions:

    * no break after an abbreviation or initial ("U.S.", "7:30 a.m.", "Sgt.",
      "Jan.", "John F. Kennedy") unless the next word plainly starts a sentence
      ("The", "He", ...);
    * no break when the next word starts lowercase (``"Stop!" he said``);
    * a hard-wrapped line continues the sentence: a single line break after a
      line that ends in a letter, digit or comma, before a line that starts
      with a plain lowercase word (after a comma, any plain word; a link or
      handle never continues). A blank line always breaks.

    A sentence longer than ``MAX_SENTENCE_CHARS`` is cut at "; " or ", ".
    Every non-whitespace character of ``text`` lies in exactly one sentence,
    and each sentence's text has no surrounding whitespace.
    """
    spans: list[tuple[int, int]] = []
    for seg_start, seg_end in _segments(text):
        for start, end in _split_segment(text, seg_start, seg_end):
            spans.extend(_split_long(text, start, end))
    return [Sentence(number=i, start=s, end=e, text=text[s:e]) for i, (s, e) in enumerate(spans, start=1)]


def number_sentences(sentences: Iterable[Sentence]) -> str:
    """The text the model reads: one "[n] sentence" per line, line breaks inside a sentence as spaces."""
    return "\n".join(f"[{s.number}] {_INNER_BREAKS.sub(' ', s.text)}" for s in sentences)


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _segments(text: str) -> list[tuple[int, int]]:
    """Non-empty lines, stripped, with hard-wrapped continuation lines joined to the line before."""
    segments: list[tuple[int, int]] = []
    for match in _LINE.finditer(text):
        start, end = _strip_span(text, match.start(), match.end())
        if start == end:
            continue
        if segments:
            prev_start, prev_end = segments[-1]
            one_break = len(_LINE_BREAK.findall(text, prev_end, start)) == 1
            if one_break and _continues(text[prev_end - 1], text, start):
                segments[-1] = (prev_start, end)
                continue
        segments.append((start, end))
    return segments


# A line that continues a hard-wrapped sentence starts with a plain word, not a link or handle
# ("pic.example.com/...", "@name").
_PLAIN_WORD = re.compile(r"[^\W\d_][\w'\u2019-]*+(?![.@/:]\w)")


def _continues(last: str, text: str, start: int) -> bool:
    if not _PLAIN_WORD.match(text, start):
        return False
    return last == "," or (last.isalnum() and text[start].islower())


def _split_segment(text: str, start: int, end: int) -> list[tuple[int, int]]:
    pieces: list[tuple[int, int]] = []
    piece_start = start
    for match in _SENTENCE_END.finditer(text, start, end):
        if _is_boundary(text, match, end):
            pieces.append(_strip_span(text, piece_start, match.end()))
            piece_start = match.end()
    pieces.append(_strip_span(text, piece_start, end))
    return [(s, e) for s, e in pieces if s < e]


def _is_boundary(text: str, match: re.Match[str], end: int) -> bool:
    after, _ = _strip_span(text, match.end(), end)
    if after >= end:
        return False  # only whitespace follows within the line: the line end breaks anyway
    if text[after].islower():
        return False
    if match.group() != ".":
        return True
    token_start = match.start()
    while token_start > 0 and not text[token_start - 1].isspace():
        token_start -= 1
    word = text[token_start : match.start()].lstrip("\"'\u201c\u2018([")
    abbreviation = word.casefold() in _ABBREVIATIONS or _INITIAL.fullmatch(word) or _DOTTED.fullmatch(word)
    if not abbreviation:
        return True
    nxt = _NEXT_WORD.match(text, after, end)
    if nxt is None:
        return False
    word_after, period = nxt.groups()
    # "Dr. A. Smith": a following initial is not the pronoun/article "A"/"I".
    return word_after in _SENTENCE_STARTERS and not (len(word_after) == 1 and period)


def _split_long(text: str, start: int, end: int) -> list[tuple[int, int]]:
    if end - start <= MAX_SENTENCE_CHARS:
        return [(start, end)]
    middle = (start + end) // 2
    for separator in (re.compile(r";(?=\s)"), re.compile(r",(?=\s)")):
        cuts = [m.end() for m in separator.finditer(text, start, end) if m.end() < end]
        if cuts:
            cut = min(cuts, key=lambda c: (abs(c - middle), c))
            left = _strip_span(text, start, cut)
            right = _strip_span(text, cut, end)
            return [*_split_long(text, *left), *_split_long(text, *right)]
    return [(start, end)]


# --------------------------------------------------------------------------
# Folded text with a map back to the original offsets
# --------------------------------------------------------------------------


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


@lru_cache(maxsize=4096)
def _fold_map(text: str) -> tuple[str, tuple[int, ...]]:
    """``fold(text)`` and, for each of its characters, the index in ``text`` it came from."""
    chars: list[str] = []
    origin: list[int] = []
    last = len(text) - 1
    for index, ch in enumerate(text):
        if (
            ch == "."
            and 0 < index < last
            and _is_word_char(text[index - 1])
            and _is_word_char(text[index + 1])
        ):
            continue  # "U.S." folds to "us", as in fold()
        for out in unicodedata.normalize("NFKD", ch.casefold()):
            if unicodedata.combining(out):
                continue
            if _is_word_char(out):
                chars.append(out)
                origin.append(index)
            elif chars and chars[-1] != " ":
                chars.append(" ")
                origin.append(index)
    if chars and chars[-1] == " ":
        chars.pop()
        origin.pop()
    return "".join(chars), tuple(origin)


@lru_cache(maxsize=4096)
def _folded(text: str) -> str:
    return fold(text)


def _words_pattern(words: Iterable[str]) -> str:
    """Alternation of folded words or phrases, longest first so the fullest phrase wins."""
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


def _phrase_span(folded: str, phrase: str) -> tuple[int, int] | None:
    if not phrase:
        return None
    match = re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", folded)
    return match.span() if match else None


def _cluster_span(folded: str, patterns: Sequence[str], max_gap: int = 25) -> tuple[int, int] | None:
    """The tightest run of matches of ``patterns`` (whole words) covering the most distinct patterns."""
    hits: list[tuple[int, int, int]] = []
    for key, pattern in enumerate(patterns):
        hits.extend((m.start(), m.end(), key) for m in re.finditer(rf"\b(?:{pattern})\b", folded))
    if not hits:
        return None
    hits.sort()
    best: tuple[int, int, int] | None = None  # (-distinct, start, end)
    run_start, run_end, run_keys = hits[0][0], hits[0][1], {hits[0][2]}
    for start, end, key in [*hits[1:], (len(folded) + max_gap + 1, 0, -1)]:
        if key >= 0 and start - run_end <= max_gap:
            run_end = max(run_end, end)
            run_keys.add(key)
            continue
        ranked = (-len(run_keys), run_start, run_end)
        if best is None or ranked < best:
            best = ranked
        run_start, run_end, run_keys = start, end, {key}
    assert best is not None
    return best[1], best[2]


# --------------------------------------------------------------------------
# Paraphrase cues
# --------------------------------------------------------------------------
# Patterns run on folded sentences (lowercase, no punctuation, single spaces).


@dataclass(frozen=True)
class _Cue:
    """A wording that states a categorical value; its match is the value's span in the sentence.

    A *strict* cue replaces the generic check: the sentence supports the value
    only if the cue matches, and a sentence the generic check accepts without
    the cue is left unchecked (None). Strict cues are used where the generic
    check is too loose to pick the right sentence ("hospital" anywhere is not
    "died at the hospital"; "the agent" is not "one agent fired"). A non-strict
    cue only adds sentences the generic check misses.
    """

    pattern: re.Pattern[str]
    strict: bool = False


def _near(first: str, second: str, gap: int = 6) -> str:
    """``first`` and ``second`` (alternations) within ``gap`` words of each other, either order."""
    window = rf"(?: \w+){{0,{gap}}} "
    return rf"\b(?:{first}){window}(?:{second})\b|\b(?:{second}){window}(?:{first})\b"


_DEATH = _words_pattern(_CATEGORY_CUES["killed"] | {"succumbed", "pronounced dead"})
_HOSPITAL = r"hospital|medical cent(?:er|re)|trauma cent(?:er|re)|emergency room"
_SCENE = r"scene"
_CUSTODY = r"custody|jail|detention|cell|prison|holding facility"
_FIRE = _words_pattern(
    [
        "fired",
        "fires",
        "fire",
        "firing",
        "opened fire",
        "opens fire",
        "open fire",
        "shot",
        "shoots",
        "discharged",
        "pulled the trigger",
    ]
)
_ONE_OFFICER = _words_pattern(_OFFICER_NOUNS)
_MANY_OFFICERS = _words_pattern(_OFFICER_NOUNS.values())
_VEHICLE = r"vehicle|car|van|truck|suv|pickup|sedan|minivan"
_TARGET = rf"{_ONE_OFFICER}|{_MANY_OFFICERS}|him|her|them|police|cruiser|patrol car"


def _fired_by(nouns: str) -> str:
    """'the agent fired', 'one agent who fired', 'agents opened fire', 'shots fired by two officers'."""
    active = rf"\b(?:{nouns}) (?:\w+ ){{0,2}}?(?:{_FIRE})\b"
    passive = rf"\b(?:shot|shots|fired) by (?:\w+ ){{0,3}}?(?:{nouns})\b"
    return f"{active}|{passive}"


def _cue(pattern: str, *, strict: bool = False) -> _Cue:
    return _Cue(re.compile(pattern), strict=strict)


_PLURAL_FIRED = _cue(_fired_by(_MANY_OFFICERS), strict=True)

# (record path, folded value) -> cue. Word lists shared with pipeline.evidence.ground come from
# its _CATEGORY_CUES / _OFFICER_NOUNS, so a word added there is recognised here too.
_CUES: dict[tuple[str, str], _Cue] = {
    ("subjects.place_of_death", "at the hospital"): _cue(_near(_DEATH, _HOSPITAL), strict=True),
    ("subjects.place_of_death", "at the scene"): _cue(_near(_DEATH, _SCENE), strict=True),
    ("subjects.place_of_death", "in custody"): _cue(_near(_DEATH, _CUSTODY), strict=True),
    ("officers.count_fired", "1"): _cue(_fired_by(_ONE_OFFICER), strict=True),
    ("officers.count_fired", "plural"): _PLURAL_FIRED,
    **{("officers.count_fired", n): _PLURAL_FIRED for n in ("2", "3", "4", "5")},
    ("subjects.armed_with", "vehicle"): _cue(
        "|".join(
            [
                rf"\b(?:drove|drives|driving|drive|accelerated|accelerating|sped|speeding|swerved|veered|"
                rf"lunged|reversed|backed) (?:directly |straight |up )?(?:at|toward|towards|into)"
                rf"(?: \w+){{0,3}}? (?:{_TARGET})\b",
                rf"\b(?:struck|hit|ran over|run over|rammed|pinned|dragged)(?: \w+){{0,6}}? with "
                rf"(?:the|a|an|his|her|their) (?:\w+ )?(?:{_VEHICLE})\b",
                rf"\b(?:struck|hit|run over|rammed|dragged|pinned) by (?:the |a |an |his |her )?(?:\w+ )?"
                rf"(?:{_VEHICLE})\b",
                r"\b(?:tried|attempted|trying|attempting) to run (?:\w+ ){0,2}?(?:over|down)\b",
                rf"\bused (?:the|a|his|her) (?:\w+ )?(?:{_VEHICLE}) as a (?:deadly )?weapon\b",
                r"\brammed\b|\bran over\b",
            ]
        ),
        strict=True,
    ),
    ("subjects.armed_with", "unarmed"): _cue(
        r"\bunarmed\b|\b(?:was not|were not|wasn t|weren t|is not|isn t) armed\b|"
        r"\b(?:had|carried|carrying) no (?:gun|weapon|weapons|firearm)\b|\bwithout a weapon\b"
    ),
    ("subjects.armed_with", "gun"): _cue(r"\b(?:gun|guns|handgun|pistol|rifle|firearm|revolver|shotgun)\b"),
    ("subjects.armed_with", "knife"): _cue(r"\b(?:knife|knives|blade|machete|box cutter)\b"),
    ("subjects.outcome", "killed"): _cue(
        rf"\b(?:shot and killed|fatally shot|fatally wounded|fatally struck|{_DEATH})\b"
    ),
    ("subjects.outcome", "injured"): _cue(
        rf"\b(?:shot and wounded|{_words_pattern(_CATEGORY_CUES['injured'])})\b"
    ),
    ("subjects.outcome", "arrested"): _cue(
        rf"\b(?:taken into custody|{_words_pattern(_CATEGORY_CUES['arrested'])})\b"
    ),
    ("subjects.outcome", "uninjured"): _cue(
        rf"\b(?:not injured|not hurt|{_words_pattern(_CATEGORY_CUES['uninjured'])})\b"
    ),
    ("what.event_type", "shooting"): _cue(
        rf"\b(?:fatally shot|opened fire|opens fire|open fire|gunshots?|"
        rf"{_words_pattern(_CATEGORY_CUES['shooting'])})\b"
    ),
    ("what.event_type", "vehicle pursuit"): _cue(r"\b(?:chase|chased|chasing|pursuit|pursued|fled)\b"),
    ("what.event_type", "arrest"): _cue(rf"\b(?:{_words_pattern(_CATEGORY_CUES['arrested'])})\b"),
    ("what.event_type", "raid"): _cue(r"\b(?:raid|raids|raided|search warrant)\b"),
    ("what.event_type", "death in custody"): _cue(_near(_DEATH, _CUSTODY)),
    ("what.event_type", "use of force"): _cue(
        r"\b(?:tased|taser|stun gun|pepper spray|pepper sprayed|beaten|punched|chokehold|tackled|"
        r"use of force|excessive force|forced)\b"
    ),
}

# Gender: the ground.py cue words plus possessive and object pronouns.
_GENDER_WORDS: dict[str, frozenset[str]] = {
    "male": _CATEGORY_CUES["male"] | {"his", "him", "himself"},
    "female": _CATEGORY_CUES["female"] | {"her", "hers", "herself"},
}
_PRONOUNS = frozenset({"he", "his", "him", "himself", "she", "her", "hers", "herself"})
# How far (in sentences) from the model's sentence a pronoun may be and still count as the subject's.
GENDER_HINT_WINDOW = 2


# --------------------------------------------------------------------------
# Locating a value's evidence
# --------------------------------------------------------------------------

_NOTE_MODEL_CITED = "no sentence states this value; showing the sentence the model cited"
_NOTE_UNFOUND = "no sentence states this value and the model cited no sentence of the article"


def locate_evidence(
    value: Any,
    path: str,
    sentences: Sequence[Sentence],
    hints: Sequence[int | None],
    *,
    text: str,
    table: SpeakerTable | None = None,
    subject: str | None = None,
) -> Grounding:
    """The grounding of ``value`` (record field ``path``, list indices dropped) in ``sentences``.

    A sentence supports the value when :func:`pipeline.evidence.ground.check_support`
    says so (kind from ``FIELD_KINDS[path]``) or a paraphrase cue of this
    module matches (``_CUES``). For gender, a pronoun counts only within
    ``GENDER_HINT_WINDOW`` sentences of a hint or in a sentence naming
    ``subject`` (the subject's name, when the caller knows it); a noun
    ("a man") counts anywhere.

    * Some sentence supports it: ``sentence-match`` at the hinted sentence if it
      is one of them, else the one nearest a valid hint (ties: the earlier), else
      the first.
    * None does, but a hint names a sentence: ``model-cited`` at that sentence,
      ``supported`` False, or None where the value cannot be checked.
    * Neither: ``unfound``, no offsets.

    ``start``/``end`` are the sentence's offsets in ``text`` and
    ``value_start``/``value_end`` the value's own words (or the cue phrase)
    inside it, when they can be found.
    """
    table = table or default_table()
    kind = FIELD_KINDS.get(path)
    by_number = {s.number: s for s in sentences}
    valid = [h for h in hints if isinstance(h, int) and not isinstance(h, bool) and h in by_number]
    results = {
        s.number: _support(value, path, kind, s, table=table, hints=valid, subject=subject) for s in sentences
    }
    candidates = [s for s in sentences if results[s.number] is True]
    if candidates:
        return _grounding(
            GroundingStatus.sentence_match,
            _choose(candidates, valid),
            text,
            value,
            path,
            kind,
            table,
            supported=True,
            score=100.0,
            note=None,
        )
    if valid:
        cited = by_number[valid[0]]
        return _grounding(
            GroundingStatus.model_cited,
            cited,
            text,
            value,
            path,
            kind,
            table,
            supported=results[cited.number],
            score=0.0,
            note=_NOTE_MODEL_CITED,
        )
    unchecked = bool(results) and all(r is None for r in results.values())
    return Grounding(
        status=GroundingStatus.unfound, supported=None if unchecked else False, note=_NOTE_UNFOUND
    )


def _choose(candidates: Sequence[Sentence], hints: Sequence[int]) -> Sentence:
    for hint in hints:
        for candidate in candidates:
            if candidate.number == hint:
                return candidate
    if hints:
        return min(candidates, key=lambda c: (min(abs(c.number - h) for h in hints), c.number))
    return candidates[0]


def _grounding(
    status: GroundingStatus,
    sentence: Sentence,
    text: str,
    value: Any,
    path: str,
    kind: ValueKind | None,
    table: SpeakerTable,
    *,
    supported: bool | None,
    score: float,
    note: str | None,
) -> Grounding:
    if text[sentence.start : sentence.end] != sentence.text:
        raise ValueError(f"sentence {sentence.number} does not match the text at its offsets")
    span = _value_span(value, path, kind, sentence, table)
    return Grounding(
        status=status,
        start=sentence.start,
        end=sentence.end,
        score=score,
        supported=supported,
        note=note,
        sentence=sentence.number,
        value_start=sentence.start + span[0] if span else None,
        value_end=sentence.start + span[1] if span else None,
    )


def _support(
    value: Any,
    path: str,
    kind: ValueKind | None,
    sentence: Sentence,
    *,
    table: SpeakerTable,
    hints: Sequence[int],
    subject: str | None,
) -> bool | None:
    generic = check_support(value, sentence.text, kind=kind, table=table)
    key = fold(str(value))
    if path == "subjects.gender" and key in _GENDER_WORDS:
        return _gender_support(key, sentence, generic, hints=hints, subject=subject)
    cue = _CUES.get((path, key))
    if cue is None:
        return generic
    if cue.pattern.search(_folded(sentence.text)):
        return True
    if cue.strict:
        return None if generic else generic
    return generic


def _gender_support(
    gender: str, sentence: Sentence, generic: bool | None, *, hints: Sequence[int], subject: str | None
) -> bool | None:
    """A gendered noun ("a man", "her brother") supports the subject's gender anywhere; a bare
    pronoun only in a sentence about the subject: within ``GENDER_HINT_WINDOW`` sentences of a
    hint, or naming the subject."""
    found = set(_folded(sentence.text).split()) & _GENDER_WORDS[gender]
    if not found:
        return None if generic else generic
    if found - _PRONOUNS:
        return True  # a noun: "a 34-year-old man", "her brother"
    near_hint = any(abs(sentence.number - h) <= GENDER_HINT_WINDOW for h in hints)
    return True if near_hint or _names_subject(sentence, subject) else None


def _names_subject(sentence: Sentence, subject: str | None) -> bool:
    if not subject:
        return False
    words = set(_folded(sentence.text).split())
    return any(len(w) > 2 and w in words for w in fold(subject).split())


# --- the value's own words inside its sentence -------------------------------------------------


def _value_span(
    value: Any, path: str, kind: ValueKind | None, sentence: Sentence, table: SpeakerTable
) -> tuple[int, int] | None:
    """Offsets, relative to the sentence, of the value's words (or the cue that states it)."""
    folded, origin = _fold_map(sentence.text)
    if not folded:
        return None
    raw = str(value).strip()
    key = fold(raw)
    cue = _CUES.get((path, key))
    cue_match = cue.pattern.search(folded) if cue else None
    cue_span = cue_match.span() if cue_match else None
    if kind == "count":
        found = cue_span or _count_span(folded, key)
    else:
        found = _phrase_span(folded, key) or cue_span
        if found is None:
            found = _kind_span(folded, raw, key, kind, table)
    if found is None or found[0] >= found[1]:
        return None
    start, end = origin[found[0]], origin[found[1] - 1] + 1
    if raw.endswith(".") and sentence.text[end : end + 1] == ".":
        end += 1  # "7:30 a.m." keeps the period that folding dropped
    return start, end


def _kind_span(
    folded: str, raw: str, key: str, kind: ValueKind | None, table: SpeakerTable
) -> tuple[int, int] | None:
    if kind == "date":
        return _date_span(folded, raw)
    if kind == "number":
        return _number_span(folded, key)
    if kind == "agency":
        return _agency_span(folded, raw, table)
    if kind == "name":
        words = [w for w in key.split() if len(w) > 1]
        return _cluster_span(folded, [re.escape(w) for w in words]) if words else None
    if key in _GENDER_WORDS:
        return _cluster_span(folded, [_words_pattern(_GENDER_WORDS[key])])
    content = [w for w in key.split() if w not in _STOPWORDS and (len(w) > 2 or w.isdigit())]
    # Light stemming as in pipeline.evidence.ground: "injuries" finds "injured".
    patterns = [rf"{re.escape(w[:5])}\w*" if len(w) >= 5 else re.escape(w) for w in content]
    return _cluster_span(folded, patterns) if patterns else None


def _date_span(folded: str, raw: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", raw)
    if not match:
        return None
    year = match[1]
    alternatives: list[str] = []
    if match[2]:
        month = int(match[2])
        if not 1 <= month <= 12:
            return None
        months = _words_pattern({MONTHS[month - 1]} | {k for k, v in MONTH_NUMBERS.items() if v == month})
        if match[3]:
            day = int(match[3])
            alternatives += [
                rf"(?:{months}) {day}(?:st|nd|rd|th)?(?: {year})?",
                rf"{day}(?:st|nd|rd|th)? (?:of )?(?:{months})(?: {year})?",
                rf"{year} 0?{month} 0?{day}",
                rf"0?{month} 0?{day}(?: {year})?",
            ]
            try:
                weekday = WEEKDAYS[_weekday(int(year), month, day)]
                alternatives.insert(
                    0, rf"(?:(?:early|late|last|this) )?{weekday}(?: (?:morning|afternoon|evening|night))?"
                )
            except ValueError:
                pass
        alternatives.append(rf"(?:{months})(?: {year})?")
    alternatives.append(year)
    alternatives.append(_words_pattern(_RELATIVE_DAY_WORDS))
    for alternative in alternatives:
        found = re.search(rf"\b(?:{alternative})\b", folded)
        if found:
            return found.span()
    return None


def _weekday(year: int, month: int, day: int) -> int:
    return date(year, month, day).weekday()


def _number_words(n: int) -> str | None:
    small = {v: k for k, v in NUMBER_WORDS.items()}
    tens = {v: k for k, v in TENS_WORDS.items()}
    if n in small:
        return small[n]
    if 20 <= n < 100:
        return tens[n - n % 10] + (f" {small[n % 10]}" if n % 10 else "")
    return None


def _number_span(folded: str, key: str) -> tuple[int, int] | None:
    if not key.isdigit():
        return None
    n = int(key)
    words = _number_words(n)
    pattern = rf"\b(?:{n}{'|' + re.escape(words) if words else ''})\b"
    found = re.search(pattern, folded)
    return found.span() if found else None


def _count_span(folded: str, key: str) -> tuple[int, int] | None:
    if key in {"plural", "several", "multiple", "agents", "officers"}:
        pattern = rf"\b(?:(?:several|multiple|both|two or more|\w+) )?(?:{_MANY_OFFICERS})\b"
    elif key in {"1", "one"}:
        pattern = rf"\b(?:(?:a|an|one|the|single|lone)(?: \w+){{0,5}}? )?(?:{_ONE_OFFICER})\b"
    elif key.isdigit():
        words = _number_words(int(key))
        number = rf"{key}|{re.escape(words)}" if words else key
        pattern = rf"\b(?:{number})(?: \w+){{0,3}}? (?:{_MANY_OFFICERS})\b|\b(?:{number})\b"
    else:
        return None
    found = re.search(pattern, folded)
    return found.span() if found else None


def _agency_span(folded: str, raw: str, table: SpeakerTable) -> tuple[int, int] | None:
    agency = table.agency_in(raw)
    return _alias_span(folded, agency, table) if agency else None


# --------------------------------------------------------------------------
# Attribution
# --------------------------------------------------------------------------

_SAY = (
    r"(?:said|says|say|told|tells|confirmed|confirms|reported|reports|stated|states|announced|"
    r"announces|added|adds|wrote|writes|posted|explained|explains|claimed|claims|alleged|alleges|"
    r"acknowledged|acknowledges|noted|notes|insisted|insists|recalled|testified|disclosed|identified)"
)
_WHO = r"[^,;:!?\"\u201c\u201d]"
_CLOSE_QUOTE = '["\u201d]'
_FAMILY_SOURCE = re.compile(
    r"\bidentified by (?:his |her |their |the )?(?:relatives|family|family members)\b", re.IGNORECASE
)
_STATEMENT_SAID = re.compile(
    r"\b(?:the|that|this|its|a) statement (?:said|says|read|reads|added|adds|continued|stated)\b",
    re.IGNORECASE,
)
# ", X said" (trailing) or ", X says," (parenthetical), with a few words after the verb.
_TRAILING = re.compile(
    rf",\s*(?P<who>{_WHO}{{1,80}}?)\s+{_SAY}\b(?:\s+{_WHO}{{0,40}}?)?\s*(?:[,;!?]|\.?\s*$)", re.IGNORECASE
)
# ", said X" (inverted), possibly right after a closing quote.
_INVERTED = re.compile(
    rf"(?:,|[,!?\u2026]?{_CLOSE_QUOTE})\s*{_SAY}\s+(?P<who>{_WHO}+?)(?=\s*(?:[,;:!?]|\.?\s*$))",
    re.IGNORECASE,
)
# '"...," X said' after a closing quote.
_AFTER_QUOTE = re.compile(rf"[,!?\u2026]{_CLOSE_QUOTE}\s*(?P<who>{_WHO}{{1,80}}?)\s+{_SAY}\b", re.IGNORECASE)
_ACCORDING = re.compile(
    rf"\baccording to (?P<who>{_WHO}+?)(?=\s*(?:[,;:!?\"\u201c\u201d]|\.?\s*$)|\s+(?:who|which|that|"
    r"when|where|after|before|because|as)\b)",
    re.IGNORECASE,
)
# A lead-in clause before the speaker: "In a statement, X said", "On Friday, X said".
_INTRO = re.compile(
    r"^(?:in an? (?:[\w-]+ ){0,2}(?:statement|interview|news conference|press conference|post|email|video)"
    r"(?: [^,]{0,40})?|at an? (?:news|press) conference(?: [^,]{0,40})?|on \w+(?: \w+)?|later|earlier|"
    r"meanwhile|separately|however)\s*,\s*",
    re.IGNORECASE,
)
_LEADING = re.compile(rf"^(?P<who>[^;:!?\"\u201c\u201d]{{1,100}}?)\s+{_SAY}\b", re.IGNORECASE)
# "The shooting was first reported by NBC Chicago": only an outlet is taken from it.
_REPORTED_BY = re.compile(
    rf"\breported\s+(?:by|in|on)\s+(?P<who>{_WHO}+?)(?=\s*(?:[,;:!?]|\.?\s*$)|\s+(?:on|that|which|and)\b)",
    re.IGNORECASE,
)
# The line under an embedded post: "\u2014 Jane Roe (@janeroe) September 13, 2025".
_POST_SIGNATURE = re.compile(
    r"^\s*[\u2014\u2013-]{1,2}\s*(?P<name>[^()@\n]{0,80}?)\s*\(\s*(?P<handle>@\w{1,30})\s*\)"
)
# A sentence this many sentences or more before a post's signature is not part of the post.
MAX_POST_SENTENCES = 8
# "who spoke on condition of anonymity", "who was not authorized to speak publicly": the
# clause that makes a speaker anonymous, often set off by commas between speaker and verb.
_ANONYMITY = re.compile(
    r",?\s*(?P<clause>(?:who\s+)?(?:(?:spoke|speaking|talked|talking)\b[^,.;]{0,40}?\bcondition\s+of\s+"
    r"anonymity|(?:was|were|is|are)\s+not\s+authori[sz]ed\s+to\b|(?:requested|asked\s+for|was\s+granted|"
    r"were\s+granted|granted)\s+anonymity|(?:asked|declined|requested)\s+(?:not\s+)?to\s+be\s+"
    r"(?:named|identified))[^,;]*?)\s*(?=[,;]|\.?\s*$)",
    re.IGNORECASE,
)

_WITNESS_NOUNS = frozenset(
    {"witness", "witnesses", "eyewitness", "eyewitnesses", "bystander", "bystanders", "passerby", "onlooker"}
    | {"neighbor", "neighbors", "neighbour", "neighbours", "resident", "residents"}
)
_FAMILY_NOUNS = _word_set(
    """
    relatives relative family families sister brother mother father wife husband son daughter cousin
    aunt uncle niece nephew grandmother grandfather parents parent fiancee fiance partner siblings
    """
)
# Words that make a phrase a plausible speaker even without a name or a known agency.
_SPEAKER_NOUNS = (
    _word_set(
        """
        police officials official authorities spokesperson spokesman spokeswoman spokespeople agency
        department office sheriff source sources investigators prosecutors attorney lawyer agents
        officers statement chief commissioner mayor governor senator representative patrol bureau
        administration government county city state federal
        """
    )
    | _WITNESS_NOUNS
    | _FAMILY_NOUNS
)
_PRONOUN_SPEAKERS = frozenset({"he", "she", "they", "it", "we", "i", "you"})
_POSSESSIVE_PRONOUNS = frozenset({"its", "their"})
# "DHS did not say", "police would not confirm": a refusal, not an attribution.
_NOT_SAYING = _word_set("not never declined refused did does do would will could can may might")
_NOT_SAYING |= _word_set("is are was were be been being")  # "the man was armed": a claim, not a speaker
# Words that open what was said rather than who said it ("said her son was unarmed").
_OBJECT_WORDS = _word_set("her him his them their its this these those there")
# "His mother said", "their cousin told reporters": a relative, though the phrase opens like an object.
_KIN_POSSESSIVES = _word_set("his her their")
# Auxiliaries and adverbs between a speaker and the verb ("Police have said", "DHS also said").
_BEFORE_VERB = re.compile(r"(?:\s+(?:has|have|had|also|later|previously|earlier|again|repeatedly))+$", re.I)
UNNAMED_SPEAKER = "unnamed speaker"
# Attributions that leave a quotation's speaker to the surrounding sentences.
_NO_SPEAKER = frozenset({"outlet", "statement", UNNAMED_SPEAKER})
MAX_SPEAKER_WORDS = 10


def attribution_for(
    sentence: Sentence,
    *,
    table: SpeakerTable | None = None,
    following: Sequence[Sentence] = (),
    text: str | None = None,
) -> str:
    """Who ``sentence`` says asserts what it states, as the article words it; "outlet" if nobody.

    Rules, first that applies:

    1. An embedded post's signature line ("\u2014 Jane Roe (@janeroe) September 13, 2025") ->
       "Jane Roe (@janeroe)". With ``following`` (the sentences after this one) and ``text``
       (the article), a sentence of the post's body is the post's too: the signature closes
       its paragraph or opens the next one.
    2. "identified by relatives/family as ..." -> "family".
    3. "the statement said/read/added" -> "statement" (which statement is for the caller).
    4. A quotation's speaker: '"...," X said', '"...," said X'.
    5. "according to X" (X up to the next comma, clause or sentence end).
    6. "reported by X" where X is a news outlet ("first reported by NBC Chicago").
    7. ", X said." / ", X says," / ", X told reporters." / ", said X." after the clause.
    8. "X said/told/confirmed/announced ..." at the start, after an optional lead-in
       ("In a statement, X said: ...", "On Friday, X said ...").

    X is returned as written, without a leading "the" and trailing punctuation, and only
    if it looks like a speaker: the table knows an agency or an outlet in it, it holds a
    person's name, or it has a speaker word (police, officials, spokesperson, witness, ...).
    Then: a relayed report names the outlet ("a report by CBS News" -> "CBS News");
    unnamed witnesses -> "witness"; unnamed relatives ("relatives", "his mother") ->
    "family"; "the statement" -> "statement"; a pronoun ("she said") -> "unnamed speaker";
    "its"/"their" spokesperson -> the agency the sentence names elsewhere ("a spokesperson
    for its field office" in a sentence about the FBI -> "FBI"). A speaker the sentence
    makes anonymous keeps that clause, without its commas ("A DHS official, who spoke on
    condition of anonymity, said" -> "A DHS official who spoke on condition of anonymity"),
    so that it is read as an anonymous official of that agency.
    """
    table = table or default_table()
    words = sentence.text.strip()
    signature = _post_signature(words)
    if signature:
        return signature
    if text is not None:
        post = _post_closing(sentence, following, text)
        if post:
            return post
    anonymity = _ANONYMITY.search(words)
    if anonymity is None:
        return _attribution(words, table)
    who = _attribution(words[: anonymity.start()] + words[anonymity.end() :], table)
    if who in _NO_SPEAKER or who in {"witness", "family"}:
        return who
    return f"{who} {' '.join(anonymity['clause'].split())}"


def _attribution(text: str, table: SpeakerTable) -> str:
    if _FAMILY_SOURCE.search(text):
        return "family"
    if _STATEMENT_SAID.search(text):
        return "statement"
    for pattern in (_AFTER_QUOTE, _INVERTED):
        for match in pattern.finditer(text):
            who = _speaker_phrase(match["who"], text, table, inverted=pattern is _INVERTED)
            if who:
                return who
    for match in _ACCORDING.finditer(text):
        who = _speaker_phrase(match["who"], text, table)
        if who:
            return who
    for match in _REPORTED_BY.finditer(text):
        outlet = re.sub(r"^the\s+", "", match["who"].strip(), flags=re.IGNORECASE)
        if table.outlet_named(outlet):
            return outlet
    trailing = [_speaker_phrase(m["who"], text, table) for m in _TRAILING.finditer(text)]
    for who in reversed(trailing):
        if who:
            return who
    intro = _INTRO.match(text)
    body = text[intro.end() :] if intro else text
    leading = _LEADING.match(body)
    if leading and len(leading["who"].split()) <= 8:
        who = _speaker_phrase(leading["who"], text, table)
        if who:
            return who
    return "outlet"


def _post_signature(text: str) -> str | None:
    """ "Jane Roe (@janeroe)" from an embedded post's signature line, else None."""
    match = _POST_SIGNATURE.match(text)
    if match is None:
        return None
    name = " ".join(match["name"].split())
    return f"{name} ({match['handle']})" if name else match["handle"]


def _post_closing(sentence: Sentence, following: Sequence[Sentence], text: str) -> str | None:
    """The signature of the embedded post whose body ``sentence`` is part of, if any."""
    previous = sentence
    for after in following[:MAX_POST_SENTENCES]:
        signature = _post_signature(after.text)
        if signature:
            return signature
        if _paragraph_break(text, previous.end, after.start):
            return None  # only the paragraph right above a signature is the post
        previous = after
    return None


def _speaker_phrase(
    raw: str, sentence_text: str, table: SpeakerTable, *, inverted: bool = False
) -> str | None:
    """The speaker in ``raw`` as written, normalised as attribution_for describes, or None.

    ``inverted``: ``raw`` follows the verb (", said X"), where "her son ..." may open what
    was said rather than name who said it."""
    parts = re.split(r"\b(?:who|whom|which|that)\b", raw, flags=re.IGNORECASE)
    # "a Mexican national who the department said ...": the speaker follows the relative
    # pronoun; "a witness who was there said": it precedes it.
    for part in dict.fromkeys([parts[-1], parts[0]]):
        who = _one_speaker_phrase(part, sentence_text, table, inverted=inverted)
        if who:
            return who
    return None


def _one_speaker_phrase(raw: str, sentence_text: str, table: SpeakerTable, *, inverted: bool) -> str | None:
    who = _BEFORE_VERB.sub("", raw.strip()).strip(",.;: \"'\u201c\u201d\u2018\u2019")
    who = re.sub(r"^the\s+", "", who, flags=re.IGNORECASE)
    words = who.split()
    folded_words = set(fold(who).split())
    if not words or len(words) > MAX_SPEAKER_WORDS or folded_words & _NOT_SAYING:
        return None
    if fold(who) in _PRONOUN_SPEAKERS:
        return UNNAMED_SPEAKER
    if fold(who) in {"statement", "a statement"}:
        return "statement"
    relayed = relayed_name(who)
    if relayed and relayed != who and table.outlet_named(relayed):
        return relayed  # "a report by CBS News": the outlet relayed
    name = _speaker_name(who, table)
    kin = fold(words[0]) in _KIN_POSSESSIVES and bool(folded_words & _FAMILY_NOUNS)
    # After the verb only a short phrase is a relative ('," said his sister.'); a longer one
    # is what was said (", said her son had a gun").
    if kin and (not inverted or len(words) <= 3):
        return who if name else "family"  # "His mother said", "Her son, Mateo Ruiz, said"
    if fold(words[0]) in _OBJECT_WORDS:
        return None  # "said her son ...": the start of what was said, not a speaker
    if name is None and folded_words & _WITNESS_NOUNS:
        return "witness"
    if name is None and folded_words & _FAMILY_NOUNS:
        return "family"
    if folded_words & _POSSESSIVE_PRONOUNS and table.agency_in(who) is None:
        agency = _agency_surface(sentence_text.replace(who, " "), table)
        if agency:
            return agency
    if table.agency_in(who) or table.outlet_named(who) or name or folded_words & _SPEAKER_NOUNS:
        return who
    return None


# Capitalised words that open a sentence without naming anyone ("Several witnesses said").
_NOT_NAMES = _word_set(
    "several some many few both other another all most one two three four local those these"
)


def _speaker_name(who: str, table: SpeakerTable) -> str | None:
    """A person's name in the phrase. A possessor ("Aldo Brenn's sister" names only a
    sister), speaker words ("Officials", "Federal") and agencies ("DHS", "Tempe police") are
    not names."""
    tokens = who.split()
    for index, token in enumerate(tokens):
        if re.search(r"['\u2019]s?$", token):
            start = index
            while start > 0 and tokens[start - 1][:1].isupper() and not tokens[start - 1].endswith(","):
                start -= 1
            tokens[start : index + 1] = ["x"] * (index + 1 - start)
        elif fold(token) in _SPEAKER_NOUNS | _NOT_NAMES:
            tokens[index] = "x"
    name = person_name(" ".join(tokens))
    if name is None or table.agency_in(name) is not None:
        return None
    speaker_id = canonical_speaker(who, outlet=None, table=table)
    if speaker_id.startswith("agency:") and slugify(name) in speaker_id:
        return None
    return name


def _alias_span(folded: str, agency: str, table: SpeakerTable) -> tuple[int, int] | None:
    """Where an alias of ``agency`` (a speaker id) occurs in ``folded``, the longest first."""
    aliases = [alias for alias, speaker in table.aliases.items() if speaker == agency and alias]
    if not aliases:
        return None
    found = re.search(rf"\b(?:{_words_pattern(aliases)})\b", folded)
    return found.span() if found else None


def _agency_surface(text: str, table: SpeakerTable) -> str | None:
    """The agency named in ``text``, as written there."""
    agency = table.agency_in(text)
    if agency is None:
        return None
    folded, origin = _fold_map(text)
    span = _alias_span(folded, agency, table)
    if span is None:
        return None
    return text[origin[span[0]] : origin[span[1] - 1] + 1]


# --------------------------------------------------------------------------
# Quotations
# --------------------------------------------------------------------------

_OPENING_MARKS = "\u201c\u201e\u00ab"
_CLOSING_MARKS = "\u201d\u00bb"
_STRAIGHT_MARKS = '"\u2033'
_OPENER_CONTEXT = "([{\u2014\u2013-:/"
# A quotation longer than this many sentences is taken to be an unclosed stray mark.
MAX_QUOTATION_SENTENCES = 6


@dataclass(frozen=True)
class _Quotes:
    """Quoted parts of one sentence: (start, end) relative to the sentence, and whether the
    sentence starts inside a quotation opened earlier or ends inside one still open."""

    segments: tuple[tuple[int, int], ...]
    starts_inside: bool
    ends_open: bool
    has_marks: bool


def _quotes(text: str) -> _Quotes:
    segments: list[tuple[int, int]] = []
    open_at: int | None = None
    starts_inside = False
    has_marks = False
    for index, ch in enumerate(text):
        if ch in _OPENING_MARKS:
            opening = True
        elif ch in _CLOSING_MARKS:
            opening = False
        elif ch in _STRAIGHT_MARKS:
            before = text[index - 1] if index else " "
            after = text[index + 1] if index + 1 < len(text) else " "
            # A straight mark closes an open quotation; otherwise it opens one, unless it
            # sits after a word or punctuation with nothing after it ('shots."').
            opening = open_at is None and (
                before.isspace() or before in _OPENER_CONTEXT or not (after.isspace() or after in ".,;:!?)")
            )
        else:
            continue
        if opening and open_at is None:
            open_at = index + 1
        elif not opening:
            if open_at is not None:
                segments.append((open_at, index))
                open_at = None
            elif not has_marks:
                starts_inside = True
                segments.append((0, index))
        has_marks = True
    if open_at is not None:
        segments.append((open_at, len(text)))
    return _Quotes(tuple(segments), starts_inside, open_at is not None, has_marks)


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] == ","):
        end -= 1
    return (start, end) if start < end else None


def quoted_text(sentence: Sentence, text: str) -> tuple[int, int] | None:
    """Offsets in ``text`` of the directly quoted words of ``sentence`` (between double quotes,
    straight or curly), or None if it quotes nobody.

    The span runs from the first quoted word to the last, so a quotation interrupted by
    its attribution ('"Stop," he said, "now."') is one span. A quote opened but not
    closed in the sentence runs to its end; a sentence that closes a quotation opened
    in an earlier sentence is quoted from its start. A trailing comma is left out.
    """
    if text[sentence.start : sentence.end] != sentence.text:
        raise ValueError("sentence offsets do not match the text")
    quotes = _quotes(sentence.text)
    if not quotes.segments:
        return None
    span = _trim(sentence.text, quotes.segments[0][0], quotes.segments[-1][1])
    if span is None:
        return None
    return sentence.start + span[0], sentence.start + span[1]


def locate_statement(
    speaker: str,
    sentences: Sequence[Sentence],
    hints: Sequence[int | None],
    *,
    text: str,
    table: SpeakerTable | None = None,
) -> list[tuple[Sentence, int, int]]:
    """The quotations of ``speaker`` in the article: (first sentence, start, end) in ``text``.

    A quotation belongs to the speaker when its sentences name the speaker (a
    person by full name or surname, an agency by any alias or spokesperson the
    speaker table lists for it, or as written), or when it names no speaker of
    its own and the sentence just before (or, when it has no attribution at
    all, just after) does: '"...," she said.' after "Elena Reyes said ...".
    The hinted sentences are tried first; when none of them holds such a
    quotation, the whole article is searched. A quotation spread over several
    sentences (opened in one, closed in a later one) is one span. [] if none.
    A surname alone names nobody when it is part of another name
    ("Quintero-Alvarez", "Rafael Quintero" for speaker Lucia Quintero).
    """
    table = table or default_table()
    matcher = _speaker_matcher(speaker, table)
    if matcher is None or not sentences:
        return []
    mentions = [matcher.mentioned(s.text) for s in sentences]
    groups = _quotation_groups(sentences, text)

    def attributed(group: tuple[int, int]) -> bool:
        first, last = group
        if any(mentions[first : last + 1]):
            return True
        # A neighbour's mention counts only for a quotation that names no speaker of its own
        # ('"...," she said.' after "Elena Reyes said ..."), not for someone else's quotation;
        # and a pronoun ("she said") points back, so then only the sentence before counts.
        own = {attribution_for(s, table=table) for s in sentences[first : last + 1]}
        if own - _NO_SPEAKER:
            return False
        after = last + 2 if UNNAMED_SPEAKER not in own else last + 1
        return any(mentions[max(0, first - 1) : after])

    index_of = {s.number: i for i, s in enumerate(sentences)}
    chosen: list[tuple[int, int]] = []
    for hint in hints:
        if hint is None or hint not in index_of:
            continue
        for group in groups:
            if group[0] <= index_of[hint] <= group[1] and attributed(group) and group not in chosen:
                chosen.append(group)
    if not chosen:
        chosen = [group for group in groups if attributed(group)]
    found: list[tuple[Sentence, int, int]] = []
    for first, last in sorted(chosen):
        span = _group_span(sentences, first, last, text)
        if span is not None:
            found.append((sentences[first], *span))
    return found


# Words that may stand before a surname without making it someone else's name ("Sgt. Ellison").
_TITLES = (
    _ABBREVIATIONS
    | _SPEAKER_NOUNS
    | _word_set(
        """
        officer agent deputy detective sergeant lieutenant captain president director secretary
        superintendent judge professor reverend pastor miss mister madam
        """
    )
)


@dataclass(frozen=True)
class _SpeakerMatcher:
    """Recognises a mention of one speaker in a sentence.

    ``phrases`` (folded) name the speaker wherever they occur: a person's full
    name, or an agency's aliases and spokespeople. ``surname`` names a person on
    its own unless it is part of another name: inside a compound ("Quintero" in
    "Quintero-Alvarez") or after a different capitalised given name ("Rafael
    Quintero" is not Lucia Quintero).
    """

    phrases: re.Pattern[str] | None
    surname: str | None = None
    given: frozenset[str] = frozenset()

    def mentioned(self, text: str) -> bool:
        return self.first_mention(text) is not None

    def first_mention(self, text: str) -> int | None:
        """Where in ``text`` the speaker is first named (a character offset), or None."""
        folded, origin = _fold_map(text)
        found: list[int] = []
        if self.phrases is not None and (phrase := self.phrases.search(folded)):
            found.append(origin[phrase.start()])
        if self.surname:
            for match in re.finditer(rf"\b{re.escape(self.surname)}\b", folded):
                start, end = origin[match.start()], origin[match.end() - 1] + 1
                if self._own_surname(text, start, end):
                    found.append(start)
                    break
        return min(found) if found else None

    def _own_surname(self, text: str, start: int, end: int) -> bool:
        if text[start - 1 : start] in _HYPHENS or (
            text[end : end + 1] in _HYPHENS and text[end + 1 : end + 2].isalpha()
        ):
            return False
        before = re.search(r"(\S+)\s+$", text[:start])
        if before is None:
            return True
        word = before.group(1).strip(".,;:\"'()\u201c\u201d\u2018\u2019")
        if not word[:1].isupper() or fold(word) in self.given or fold(word) in _TITLES:
            return True
        # A capitalised sentence opener ("When Quintero ...") is not a given name.
        return before.start() == 0 and fold(word) in _STOPWORDS


_HYPHENS = frozenset("-\u2010\u2011\u2013")


def speaker_named_in(speaker: str, text: str, *, table: SpeakerTable | None = None) -> int | None:
    """Where ``text`` first names ``speaker`` (a person by full name or surname, an agency by any
    alias or spokesperson the speaker table lists for it), as :func:`locate_statement` reads it;
    None if it does not."""
    matcher = _speaker_matcher(speaker, table or default_table())
    return matcher.first_mention(text) if matcher is not None else None


def _speaker_matcher(speaker: str, table: SpeakerTable) -> _SpeakerMatcher | None:
    name = _speaker_name(speaker, table)
    if name:
        parts = fold(name).split()
        surname = fold(name.split()[-1])
        return _SpeakerMatcher(
            phrases=re.compile(rf"\b{re.escape(fold(name))}\b") if len(parts) > 1 else None,
            surname=surname if len(surname) > 2 else None,
            given=frozenset(parts) - set(surname.split()),
        )
    keys = {re.sub(r"^the ", "", fold(speaker))}
    speaker_id = table.agency_in(speaker) or table.member_in(speaker)
    if speaker_id is not None:
        keys |= {alias for alias, sid in table.aliases.items() if sid == speaker_id}
        keys |= {member for member, sid in table.members.items() if sid == speaker_id}
    keys = {k for k in keys if k}
    if not keys:
        return None
    return _SpeakerMatcher(phrases=re.compile(rf"\b(?:{_words_pattern(keys)})\b"))


def _quotation_groups(sentences: Sequence[Sentence], text: str) -> list[tuple[int, int]]:
    """(first, last) sentence indices of each quotation; more than one sentence when a quote
    opened in one sentence runs on (through sentences without marks) to a later closing mark,
    within one paragraph and at most ``MAX_QUOTATION_SENTENCES`` sentences."""
    quotes = [_quotes(s.text) for s in sentences]
    groups: list[tuple[int, int]] = []
    index = 0
    while index < len(sentences):
        if not quotes[index].segments:
            index += 1
            continue
        last = index
        still_open = quotes[index].ends_open
        while (
            still_open
            and last + 1 < len(sentences)
            and last - index + 1 < MAX_QUOTATION_SENTENCES
            and not _paragraph_break(text, sentences[last].end, sentences[last + 1].start)
        ):
            following = quotes[last + 1]
            if following.has_marks and not following.starts_inside:
                break  # the next sentence opens a quotation of its own
            last += 1
            still_open = following.ends_open if following.has_marks else True
        groups.append((index, last))
        index = last + 1
    return groups


def _paragraph_break(text: str, start: int, end: int) -> bool:
    return len(_LINE_BREAK.findall(text, start, end)) > 1


def _group_span(sentences: Sequence[Sentence], first: int, last: int, text: str) -> tuple[int, int] | None:
    head, tail = sentences[first], sentences[last]
    head_quotes, tail_quotes = _quotes(head.text), _quotes(tail.text)
    start = head.start + head_quotes.segments[0][0]
    end = tail.start + (tail_quotes.segments[-1][1] if tail_quotes.segments else len(tail.text))
    return _trim(text, start, end)
