"""From what the model read to a cited record: evidence located by the pipeline, not copied by the model.

The model returns an :class:`~schemas.contract.ArticleReading`: plain values,
each beside the number of the sentence it says states it. This module turns
that into :class:`~schemas.record.IncidentFacts` whose every value is a
``Cited`` leaf:

* ``quote`` is the article sentence that supports the value, found by
  :func:`pipeline.evidence.locate.locate_evidence` (the model's number is only a hint
  and a tie-breaker, because it is right little more than half the time);
* ``grounding`` says how that sentence was found (``sentence-match``,
  ``model-cited`` or ``unfound``), where it sits, and whether it supports the
  value; a value no sentence supports stays in the record, flagged, never
  dropped;
* ``attribution`` is who that sentence says asserts it ("Tempe police",
  "outlet"), read off the sentence by rule.

Dates: the model copies the date words ("Friday morning") and this module
resolves them against the publication date, because small models copy a
publication date or a weekday list from the prompt instead of reasoning.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from typing import Any

from pipeline.evidence.attribute import SpeakerTable, default_table
from pipeline.evidence.ground import FIELD_KINDS
from pipeline.evidence.locate import (
    Sentence,
    attribution_for,
    locate_evidence,
    locate_statement,
    speaker_named_in,
)
from pipeline.kinds.normalize import resolve_date
from pipeline.kinds.words import US_STATES
from schemas import (
    Agency,
    ArticleReading,
    Cited,
    Grounding,
    GroundingStatus,
    IncidentFacts,
    Officers,
    Statement,
    Subject,
    What,
    When,
    Where,
)
from schemas.contract import READING_FIELDS

# Part of the cache key: bump it when a change here or in pipeline.evidence.locate changes the record
# built from the same reply, so a re-run does not serve records built by the old rules.
EVIDENCE_VERSION = "6"  # 6: titled officials count under their agency, reporters under their outlet

_SECTION_TYPES: dict[str, type[Any]] = {
    "when": When,
    "where": Where,
    "what": What,
    "subjects": Subject,
    "officers": Officers,
}


def _hint_list(*numbers: int | None) -> list[int | None]:
    return [number for number in numbers if number is not None]


# Kinds whose value is a proper noun the article spells out; the article's own spelling wins
# over the model's when the two differ only in spacing, dots or case ("U. S." for "U.S.").
_STATE_WORDS = frozenset(
    word for state, abbreviations in US_STATES.items() for word in (*state.split(), *abbreviations)
)
_FILLER_WORDS = frozenset({"the", "in", "of", "near", "area", "city", "town", "county", "state"})
_SNAPPED_KINDS = frozenset({"name", "agency", "phrase"})
_SPACING_AND_DOTS = re.compile(r"[\s.]+")


def _same_letters(a: str, b: str) -> bool:
    return _SPACING_AND_DOTS.sub("", a).casefold() == _SPACING_AND_DOTS.sub("", b).casefold()


def _cited(
    value: Any,
    path: str,
    hints: Sequence[int | None],
    sentences: Sequence[Sentence],
    text: str,
    table: SpeakerTable,
    subject: str | None = None,
    sentence_offset: int = 0,
) -> Cited[Any]:
    grounding = locate_evidence(value, path, sentences, hints, text=text, table=table, subject=subject)
    if grounding.sentence is not None:
        grounding.sentence += sentence_offset
    if (
        isinstance(value, str)
        and FIELD_KINDS.get(path) in _SNAPPED_KINDS
        and grounding.value_start is not None
        and grounding.value_end is not None
    ):
        surface = text[grounding.value_start : grounding.value_end]
        if surface != value and _same_letters(surface, value):
            value = surface
    if grounding.start is not None and grounding.end is not None:
        quote = text[grounding.start : grounding.end]
        at = _sentence_index(sentences, grounding.start)
        attribution = (
            # The sentences after it: a sentence in the body of an embedded post is the post's.
            attribution_for(sentences[at], table=table, following=sentences[at + 1 :], text=text)
            if at is not None
            else "outlet"
        )
    else:
        quote, attribution = "", "outlet"
    return Cited[Any](value=value, quote=quote, attribution=attribution, grounding=grounding)


def _sentence_index(sentences: Sequence[Sentence], start: int) -> int | None:
    for index, sentence in enumerate(sentences):
        if sentence.start <= start < sentence.end:
            return index
    return None


def _date_value(words: str | None, published: date | None) -> tuple[str | None, str]:
    """The ISO date the date words name (resolved against ``published``) and its precision."""
    if not words:
        return None, "unknown"
    span = resolve_date(words, published)
    if span is None:
        return None, "unknown"
    return (span.start.isoformat() if span.precision == "day" else None), str(span.precision)


def cite_reading(
    reading: ArticleReading,
    *,
    text: str,
    sentences: Sequence[Sentence],
    published: date | None,
    table: SpeakerTable | None = None,
    sentence_offset: int = 0,
) -> IncidentFacts:
    """Build cited facts from one reading of ``sentences`` (a whole article or one chunk of it).

    ``sentences`` are numbered as the model saw them; their offsets point into ``text``.
    ``sentence_offset`` is how many article sentences come before them, so that every
    ``Grounding.sentence`` is a sentence number in the whole article.
    """

    speakers = table or default_table()

    def cited(value: Any, path: str, hints: list[int | None], subject: str | None = None) -> Cited[Any]:
        return _cited(value, path, hints, sentences, text, speakers, subject, sentence_offset)

    reading = tidy_places(reading)
    values: dict[str, dict[str, Cited[Any]]] = {name: {} for name in _SECTION_TYPES}
    for field in READING_FIELDS:
        value = getattr(reading, field.key)
        if value is None:
            continue
        section, name = field.record_path.split(".")
        hint = getattr(reading, field.sentence_key)
        values[section][name] = cited(value, field.record_path, _hint_list(hint), reading.name)

    when_precision = "unknown"
    raw = values["when"].get("raw_phrase")
    if raw is not None:
        iso, when_precision = _date_value(str(raw.value), published)
        if iso is not None:
            values["when"]["date"] = cited(iso, "when.date", _hint_list(reading.date_sent))
            if raw.grounding is not None and values["when"]["date"].grounding is not None:
                # The date is evidenced where its words are, even when the weekday alone
                # cannot be checked against the ISO date.
                date_grounding = values["when"]["date"].grounding
                if date_grounding.status != GroundingStatus.sentence_match:
                    values["when"]["date"] = values["when"]["date"].model_copy(
                        update={"grounding": raw.grounding.model_copy(), "quote": raw.quote}
                    )

    subject = values["subjects"]
    if "place_of_death" not in subject and _said_killed(subject.get("outcome")):
        backfilled = _place_of_death_from_wording(cited)
        if backfilled is not None:
            subject["place_of_death"] = backfilled

    where = values["where"]
    where_precision = (
        "address"
        if "place" in where
        else "city"
        if "city" in where
        else "county"
        if "county" in where
        else "state"
        if "state" in where
        else "unknown"
    )

    agencies = [
        Agency(name=cited(name, "agencies.name", _hint_list(hint)))
        for name, hint in zip(
            reading.agencies, _padded(reading.agency_sents, len(reading.agencies)), strict=True
        )
    ]
    statements = _statements(reading, sentences, text, sentence_offset)
    subjects = [Subject(**values["subjects"])] if values["subjects"] else []
    return IncidentFacts(
        when=When(**values["when"], precision=when_precision),
        where=Where(**where, precision=where_precision),
        what=What(**values["what"]),
        agencies=_dedupe_agencies(agencies),
        subjects=subjects,
        officers=Officers(**values["officers"]),
        statements=statements,
    )


_WORD = re.compile(r"[^\W\d_]+")


def _repeats_a_wider_place(reading: ArticleReading) -> bool:
    """True for a ``place`` that only repeats the city, county or state ("Tempe", "Riverside, Ohio").

    The contract asks for a street, address or landmark there, and small models
    fill it with the city when the article names none. Such a place says
    nothing the wider fields do not, and would make reconcile see a
    street-level location where there is none, so it is left null. A place
    with any word of its own ("Apache Boulevard", "the Quick Stop") is kept.
    """
    value = reading.place
    if value is None:
        return False
    wider = " ".join(str(other) for other in (reading.city, reading.county, reading.state) if other)
    known = {word.casefold() for word in _WORD.findall(wider)} | _STATE_WORDS | _FILLER_WORDS
    words = [word.casefold() for word in _WORD.findall(value)]
    return bool(words) and all(word in known for word in words)


_COUNTY_WORDS = re.compile(r"\b(county|parish|borough)$", re.IGNORECASE)
_CITY_COMMA_STATE = re.compile(r"^(?P<city>[^,]+),\s*(?P<state>[A-Za-z. ]+)$")


def _us_state(text: str) -> bool:
    folded = text.casefold().strip(" .")
    return folded in US_STATES or any(folded in abbreviations for abbreviations in US_STATES.values())


def tidy_places(reading: ArticleReading) -> ArticleReading:
    """Put place names a small model files under the wrong key where the contract says they go.

    * a ``city`` that names a county ("Montgomery County") is the county;
    * a ``place`` of the form "City, State" ("Riverside, Ohio") is a city, not a street: it fills
      the city when there is none (and the state when there is none), and is dropped as a place;
    * a ``place`` that only repeats the city, county or state is null (see ``_repeats_a_wider_place``).

    The sentence numbers move with the values. Nothing is invented: every value kept is one the
    model wrote, and its evidence is still located in the article.
    """
    update: dict[str, Any] = {}
    city, city_sent = reading.city, reading.city_sent
    if city is not None and _COUNTY_WORDS.search(city):
        if reading.county is None:
            update.update(county=city, county_sent=city_sent)
        city, city_sent = None, None
        update.update(city=None, city_sent=None)
    place = reading.place
    match = _CITY_COMMA_STATE.match(place) if place is not None else None
    if match is not None and _us_state(match["state"]):
        update.update(place=None, place_sent=None)
        if city is None:
            update.update(city=match["city"].strip(), city_sent=reading.place_sent)
        if reading.state is None:
            update.update(state=match["state"].strip(), state_sent=reading.place_sent)
    tidied = reading.model_copy(update=update) if update else reading
    if _repeats_a_wider_place(tidied):
        return tidied.model_copy(update={"place": None, "place_sent": None})
    return tidied


def _said_killed(outcome: Cited[Any] | None) -> bool:
    return outcome is not None and outcome.value == "killed"


# Read by the pipeline when the model left the place of death null although the subject was
# killed: the wording for it is formulaic ("pronounced dead at the scene", "died at a hospital"),
# and pipeline.evidence.locate only accepts that exact wording for this field.
PLACE_OF_DEATH_VALUES = ("at the scene", "at the hospital")
BACKFILL_NOTE = "read from the article's wording by the pipeline; the model left this field null"


def _place_of_death_from_wording(cited: Any) -> Cited[Any] | None:
    """The place of death when exactly one of the closed values is stated by some sentence."""
    found = []
    for value in PLACE_OF_DEATH_VALUES:
        candidate: Cited[Any] = cited(value, "subjects.place_of_death", [])
        grounding = candidate.grounding
        if grounding is not None and grounding.status == GroundingStatus.sentence_match:
            found.append(candidate)
    if len(found) != 1:
        # None stated, or both ("died at the scene" in one account, "at the hospital" in another
        # within the same article): the reader has to decide, so nothing is filled.
        return None
    chosen = found[0]
    assert chosen.grounding is not None
    chosen.grounding.note = BACKFILL_NOTE
    return chosen


def _padded(numbers: Sequence[int | None], length: int) -> list[int | None]:
    """Parallel arrays from a small model may differ in length; pad or cut the numbers to match."""
    return [*numbers[:length], *([None] * max(0, length - len(numbers)))]


def _dedupe_agencies(agencies: list[Agency]) -> list[Agency]:
    seen: set[str] = set()
    kept: list[Agency] = []
    for agency in agencies:
        key = str(agency.name.value).casefold().strip()
        if key not in seen:
            seen.add(key)
            kept.append(agency)
    return kept


def _quoted_name(quote: str) -> bool:
    """A name in quotation marks ("Operation Midway Blitz"), not words anyone said: up to three
    words, each capitalised."""
    words = re.findall(r"[^\W\d_][\w'’-]*", quote)
    return 0 < len(words) <= 3 and all(word[0].isupper() for word in words)


def _quotation_speaker(claimants: Sequence[str], sentences: Sequence[Sentence], at: int, text: str) -> str:
    """The one speaker of a quotation several listed speakers reach (see ``_statements``)."""
    if len(claimants) == 1:
        return claimants[0]
    sentence = sentences[at]
    said_by = attribution_for(sentence, following=sentences[at + 1 :], text=text)
    by_rule = [c for c in claimants if speaker_named_in(c, said_by) is not None]
    if by_rule:
        return by_rule[0]
    # No attribution the rules read ("DHS accused him of having '...'"): the speaker named first
    # in the sentence is usually its subject, and the one who said it.
    # A quotation that names nobody continues the one before it: its speaker is named in the
    # sentence before ('"...," Lind said. "..."'), else the one after.
    for near in (at, at - 1, at + 1):
        if 0 <= near < len(sentences):
            said = sentences[near].text
            named = [(pos, c) for c in claimants if (pos := speaker_named_in(c, said)) is not None]
            if named:
                return min(named)[1]
    return claimants[0]


def _statements(
    reading: ArticleReading, sentences: Sequence[Sentence], text: str, sentence_offset: int
) -> list[Statement]:
    """One statement per located quotation of each named speaker.

    A speaker whose quotation cannot be found in the article and whose cited
    sentence is out of range yields no statement: a statement without words is
    not evidence of anything. The speaker's name still reaches reviewers
    through the stored model reply.
    """
    # One quotation has one speaker. Several names the model listed may each reach it (the
    # subject named in the sentence before, an agency mentioned in passing); the quotation goes
    # to the speaker the sentence itself attributes it to, else to one it names, else to the
    # first claimant, so one quotation is never several statements of different speakers.
    claims: dict[tuple[int, int], list[str]] = {}
    first_sentence: dict[tuple[int, int], int] = {}
    hints = _padded(reading.speaker_sents, len(reading.speakers))
    for speaker, hint in zip(reading.speakers, hints, strict=True):
        for sentence, start, end in locate_statement(speaker, sentences, _hint_list(hint), text=text):
            claimants = claims.setdefault((start, end), [])
            if speaker.casefold() not in {c.casefold() for c in claimants}:
                claimants.append(speaker)
            first_sentence[(start, end)] = sentences.index(sentence)
    statements: list[Statement] = []
    for (start, end), claimants in sorted(claims.items()):
        if _quoted_name(text[start:end]):
            continue
        at = first_sentence[(start, end)]
        speaker = _quotation_speaker(claimants, sentences, at, text)
        statements.append(
            Statement(
                speaker=speaker,
                quote=text[start:end],
                grounding=Grounding(
                    status=GroundingStatus.exact,
                    start=start,
                    end=end,
                    score=100.0,
                    sentence=sentences[at].number + sentence_offset,
                ),
            )
        )
    return statements
