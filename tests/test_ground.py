"""Grounding: quotes located in their article with offsets a reviewer can check,
and values checked against their own quotes.

The article below is invented for these tests.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz

from pipeline.evidence.attribute import default_table
from pipeline.evidence.ground import (
    FUZZY_MIN_CHARS,
    FUZZY_THRESHOLD,
    check_support,
    ground_record,
    locate_quote,
    normalize,
)
from pipeline.kinds.strategies import STRATEGIES
from schemas.article import Article
from schemas.kinds import KindName
from schemas.record import (
    Agency,
    Cited,
    GroundingStatus,
    IncidentRecord,
    Officers,
    Provenance,
    Statement,
    Subject,
    When,
    Where,
)

ARTICLE = (
    "Deputy shoots man after chase near Harlow Lake\n"
    "\n"
    "A Harlow County sheriff\u2019s deputy shot and wounded a man early Tuesday after a\n"
    "pursuit that ended near the boat ramp at Harlow Lake, the sheriff\u2019s office said.\n"
    "\n"
    "The man, identified as Jos\u00e9 Pe\u00f1a-Whitlock, 41, was flown to St. Brendan\u2019s Hospital.  "
    "He was in fair condition Wednesday.\n"
    "\n"
    "\u201cThe deputy gave repeated commands to stop,\u201d said Sgt. Mara Ellison, a spokesperson "
    "for the Harlow County Sheriff\u2019s Office. \u201cThe deputy gave repeated commands to stop.\u201d\n"
    "\n"
    "The chase began on Route 9 \u2014 a two-lane road \u2014 at about 5:40 a.m.\n"
)

OTHER_ARTICLE_SENTENCE = "Firefighters contained the warehouse blaze on the east side before dawn on Sunday."


def _slice(quote: str, text: str = ARTICLE) -> str:
    grounding = locate_quote(quote, text)
    assert grounding.start is not None and grounding.end is not None
    return text[grounding.start : grounding.end]


# --------------------------------------------------------------------------
# Planted spans
# --------------------------------------------------------------------------


def test_exact_quote_is_located_and_its_offsets_slice_back_to_the_quote() -> None:
    quote = "was flown to St. Brendan\u2019s Hospital"
    grounding = locate_quote(quote, ARTICLE)
    assert grounding.status == GroundingStatus.exact
    assert grounding.score == 100.0
    assert grounding.note is None
    assert _slice(quote) == quote


def test_straight_quotes_in_the_quote_match_curly_quotes_in_the_article() -> None:
    quote = "Harlow County Sheriff's Office"
    grounding = locate_quote(quote, ARTICLE)
    assert grounding.status == GroundingStatus.normalized
    assert _slice(quote) == "Harlow County Sheriff\u2019s Office"


def test_quote_spanning_a_line_break_matches_with_offsets_in_the_original_text() -> None:
    quote = "shot and wounded a man early Tuesday after a pursuit that ended near the boat ramp"
    grounding = locate_quote(quote, ARTICLE)
    assert grounding.status == GroundingStatus.normalized
    assert (
        _slice(quote) == "shot and wounded a man early Tuesday after a\npursuit that ended near the boat ramp"
    )


def test_double_spaces_and_case_differences_are_normalized() -> None:
    quote = "ST. BRENDAN'S HOSPITAL. HE WAS IN FAIR CONDITION"
    grounding = locate_quote(quote, ARTICLE)
    assert grounding.status == GroundingStatus.normalized
    assert _slice(quote) == "St. Brendan\u2019s Hospital.  He was in fair condition"


def test_accents_dropped_by_the_extractor_still_match_the_accented_name() -> None:
    assert _slice("Jose Pena-Whitlock, 41") == "Jos\u00e9 Pe\u00f1a-Whitlock, 41"
    assert locate_quote("Jose Pena-Whitlock, 41", ARTICLE).status == GroundingStatus.normalized


def test_hyphens_in_the_quote_match_em_dashes_in_the_article() -> None:
    quote = "Route 9 - a two-lane road - at about 5:40 a.m."
    assert locate_quote(quote, ARTICLE).status == GroundingStatus.normalized
    assert _slice(quote) == "Route 9 \u2014 a two-lane road \u2014 at about 5:40 a.m"


def test_surrounding_quote_marks_added_by_the_extractor_are_ignored() -> None:
    quote = '"The chase began on Route 9"'
    grounding = locate_quote(quote, ARTICLE)
    assert grounding.status == GroundingStatus.normalized
    assert _slice(quote) == "The chase began on Route 9"


def test_a_quote_with_an_ellipsis_matches_its_parts_in_order() -> None:
    quote = "A Harlow County sheriff's deputy shot \u2026 a man early Tuesday"
    grounding = locate_quote(quote, ARTICLE)
    assert grounding.status == GroundingStatus.normalized
    assert grounding.note is not None and grounding.note.startswith("elided")
    assert _slice(quote) == "A Harlow County sheriff\u2019s deputy shot and wounded a man early Tuesday"


def test_elided_parts_in_the_wrong_order_are_not_stitched_together() -> None:
    quote = "the boat ramp at Harlow Lake ... Deputy shoots man after chase"
    assert locate_quote(quote, ARTICLE).status != GroundingStatus.normalized


def test_a_quote_repeated_twice_takes_the_first_occurrence_and_says_so() -> None:
    quote = "The deputy gave repeated commands to stop"
    grounding = locate_quote(quote, ARTICLE)
    assert grounding.status == GroundingStatus.exact
    assert grounding.start == ARTICLE.index(quote)
    assert grounding.note == "2 occurrences; first taken"


def test_a_repeated_quote_found_after_normalization_also_notes_the_count() -> None:
    grounding = locate_quote("the deputy gave REPEATED commands to stop", ARTICLE)
    assert grounding.status == GroundingStatus.normalized
    assert grounding.start == ARTICLE.index("The deputy gave")
    assert grounding.note == "2 occurrences; first taken"


def test_a_quote_with_one_word_changed_is_a_fuzzy_match_on_the_article_passage() -> None:
    quote = "pursuit that ended near the boat launch at Harlow Lake"
    grounding = locate_quote(quote, ARTICLE)
    assert grounding.status == GroundingStatus.fuzzy
    assert FUZZY_THRESHOLD <= grounding.score < 100
    assert "boat ramp at Harlow Lake" in _slice(quote)


def test_a_paraphrase_is_unfound_and_the_note_gives_its_best_score() -> None:
    quote = "Deputies said the wounded man was airlifted to a hospital in fair shape"
    grounding = locate_quote(quote, ARTICLE)
    assert grounding.status == GroundingStatus.unfound
    assert grounding.start is None and grounding.end is None
    assert grounding.score < FUZZY_THRESHOLD
    assert grounding.note is not None and "best fuzzy score" in grounding.note


def test_a_quote_from_a_different_article_is_unfound() -> None:
    grounding = locate_quote(OTHER_ARTICLE_SENTENCE, ARTICLE)
    assert grounding.status == GroundingStatus.unfound
    assert not grounding.is_evidence


# A 50-character sentence: each substituted letter costs exactly 2 points of
# rapidfuzz's Indel ratio, so 5 substitutions land exactly on 90.
_BOUNDARY_SENTENCE = "the van stopped near the canal and two people left"
_BOUNDARY_TEXT = "Morning report: " + _BOUNDARY_SENTENCE + " before noon; witnesses waited."


def _with_substitutions(sentence: str, count: int) -> str:
    letters = [i for i, c in enumerate(sentence) if c.isalpha()][::6][:count]
    chars = list(sentence)
    for i in letters:
        chars[i] = "z"
    return "".join(chars)


def test_fuzzy_threshold_boundary_score_at_threshold_is_accepted() -> None:
    assert len(_BOUNDARY_SENTENCE) == 50
    quote = _with_substitutions(_BOUNDARY_SENTENCE, 5)
    assert fuzz.partial_ratio(quote, _BOUNDARY_TEXT.lower()) == pytest.approx(90.0)
    grounding = locate_quote(quote, _BOUNDARY_TEXT)
    assert grounding.status == GroundingStatus.fuzzy
    assert grounding.score == pytest.approx(FUZZY_THRESHOLD)
    assert _BOUNDARY_TEXT[grounding.start : grounding.end] == _BOUNDARY_SENTENCE


def test_fuzzy_threshold_boundary_score_just_below_is_unfound() -> None:
    quote = _with_substitutions(_BOUNDARY_SENTENCE, 6)
    grounding = locate_quote(quote, _BOUNDARY_TEXT)
    assert grounding.score == pytest.approx(88.0)
    assert grounding.status == GroundingStatus.unfound


def test_short_quotes_are_never_fuzzy_matched() -> None:
    quote = "the deputy gave orders"  # 22 chars: near "the deputy gave repeated" but too short to trust
    assert len(normalize(quote)) < FUZZY_MIN_CHARS
    grounding = locate_quote(quote, ARTICLE)
    assert grounding.status == GroundingStatus.unfound
    assert grounding.note is not None and "too short" in grounding.note


@pytest.mark.parametrize("quote", ["", "   ", "\n\t", '""', "..."])
def test_empty_or_punctuation_only_quotes_are_unfound(quote: str) -> None:
    grounding = locate_quote(quote, ARTICLE)
    assert grounding.status == GroundingStatus.unfound
    assert grounding.start is None


def test_characters_that_fold_to_several_do_not_yield_a_half_match() -> None:
    # "ß" folds to "ss"; a quote "s" must not be matched against half of it.
    text = "Stra\u00dfe"
    grounding = locate_quote("sse", text)
    assert grounding.status == GroundingStatus.normalized
    assert text[grounding.start : grounding.end] == "\u00dfe"
    assert locate_quote("se", text).status != GroundingStatus.normalized


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------

_TRICKY = (
    "aAbBzZ \n\t.,'\"\u2019\u201c\u201d\u2014\u2013-\u2026\u00e9e\u0301\u00df\ufb01\u0130\u00a0\u200b\u00f1"
)
tricky_text = st.text(alphabet=st.sampled_from(list(_TRICKY)) | st.characters(), max_size=80)


@given(text=tricky_text, data=st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_a_slice_of_the_text_is_found_and_its_offsets_slice_back(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    quote = text[start:end]
    grounding = locate_quote(quote, text)
    if grounding.status == GroundingStatus.exact:
        assert text[grounding.start : grounding.end] == quote
    else:
        # Only quotes with nothing left after trimming can fail to be found exactly.
        assert not quote.strip()
        assert grounding.status == GroundingStatus.unfound


_REFORMAT = {
    "'": "\u2019",
    "\u2019": "'",
    '"': "\u201c",
    "\u201c": '"',
    "-": "\u2014",
    "\u2014": "-",
    " ": "  ",
    "\n": " ",
}


@given(text=tricky_text, data=st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_a_reformatted_slice_is_found_exact_or_normalized_and_normalizes_like_the_quote(
    text: str, data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    original = text[start:end]
    flip_case = data.draw(st.booleans())
    reformatted = "".join(
        (c.swapcase() if flip_case and c.isascii() else _REFORMAT.get(c, c)) for c in original
    )
    assume(normalize(reformatted))
    grounding = locate_quote(reformatted, text)
    assert grounding.status in (GroundingStatus.exact, GroundingStatus.normalized)
    assert grounding.start is not None and grounding.end is not None
    matched = text[grounding.start : grounding.end]
    if grounding.status == GroundingStatus.exact:
        assert matched == reformatted
    elif not (grounding.note or "").startswith("elided"):
        assert normalize(matched) == normalize(reformatted)


@given(quote=st.text(max_size=40), text=st.text(max_size=200))
@settings(max_examples=300)
def test_a_quote_that_is_not_a_substring_is_never_reported_exact(quote: str, text: str) -> None:
    assume(quote not in text)
    assert locate_quote(quote, text).status != GroundingStatus.exact


@given(quote=st.text(), text=st.text())
@settings(max_examples=300)
def test_locate_quote_never_raises_and_offsets_stay_inside_the_text(quote: str, text: str) -> None:
    grounding = locate_quote(quote, text)
    if grounding.status == GroundingStatus.unfound:
        assert grounding.start is None and grounding.end is None
    else:
        assert grounding.start is not None and grounding.end is not None
        assert 0 <= grounding.start < grounding.end <= len(text)


@given(value=st.one_of(st.none(), st.integers(), st.text()), quote=st.text())
@settings(max_examples=200)
def test_check_support_never_raises(value: object, quote: str) -> None:
    assert check_support(value, quote) in (True, False, None)


# --------------------------------------------------------------------------
# Support check
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "quote", "expected"),
    [
        ("Jos\u00e9 Pe\u00f1a-Whitlock", "identified as Jose Pena-Whitlock, 41", True),
        ("JOSE PENA-WHITLOCK", "identified as Jos\u00e9 Pe\u00f1a-Whitlock", True),
        ("Jos\u00e9 Pe\u00f1a-Whitlock", "Jos\u00e9 Pe\u00f1a, 41, was flown", True),  # partial surname
        ("Jos\u00e9 Pe\u00f1a-Whitlock", "Pe\u00f1a-Whitlock, 41, was flown", False),  # given name absent
        ("Mara Ellison", "said Sgt. Jos\u00e9 Pe\u00f1a", False),
    ],
)
def test_names_are_supported_token_by_token(value: str, quote: str, expected: bool) -> None:
    assert check_support(value, quote, kind="name") is expected


@pytest.mark.parametrize(
    ("value", "quote", "kind", "expected"),
    [
        (41, "Jos\u00e9 Pe\u00f1a-Whitlock, 41, was flown", "number", True),
        (34, "a thirty-four-year-old driver", "number", True),
        (34, "a 43-year-old driver", "number", False),
        (41, "the 1941 model truck", "number", False),
        ("1", "a Harlow County sheriff's deputy shot a man", "count", True),
        ("1", "the deputy fired once", "count", True),
        ("1", "one agent opened fire", "count", True),
        ("1", "deputies opened fire", "count", False),
        ("plural", "deputies opened fire", "count", True),
        ("plural", "agents opened fire on the van", "count", True),
        ("plural", "the deputy fired", "count", False),
        ("2", "two deputies fired", "count", True),
        ("2", "both deputies fired", "count", True),
    ],
)
def test_numbers_and_counts_are_supported_in_digits_or_words(
    value: object, quote: str, kind: str, expected: bool
) -> None:
    assert check_support(value, quote, kind=kind) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "quote", "expected"),
    [
        ("2026-03-10", "shot a man early Tuesday", True),  # 2026-03-10 is a Tuesday
        ("2026-03-10", "shot a man early Wednesday", False),
        ("2026-03-10", "on March 10, the deputy", True),
        ("2026-03-10", "on Mar. 10 the deputy", True),
        ("2026-03-10", "on 10 March the deputy", True),
        ("2026-03-10", "on March 11 the deputy", False),
        ("2026-03-10", "dated 2026-03-10 in the log", True),
        ("2026-03-10", "the shooting yesterday", None),  # relative: needs the publication date
        ("2026-03", "in March 2026", True),
        ("2026", "in 2026", True),
    ],
)
def test_dates_are_supported_by_weekday_month_day_or_the_date(
    value: str, quote: str, expected: bool | None
) -> None:
    assert check_support(value, quote, kind="date") is expected


@pytest.mark.parametrize(
    ("value", "quote", "kind", "expected"),
    [
        ("at the hospital", "was pronounced dead at a hospital", "phrase", True),
        ("at the scene", "was pronounced dead at a hospital", "phrase", False),
        ("Arizona", "in Tempe, Ariz., on Friday", "phrase", True),
        ("fair condition", "He was in fair condition Wednesday", "phrase", True),
        ("U.S. Border Patrol", "a Border Patrol agent fired", "agency", True),
        ("Department of Homeland Security", "DHS said in a statement", "agency", True),
        ("FBI", "DHS said in a statement", "agency", False),
        ("shooting", "the deputy shot a man", "summary", True),  # a known category cue
        ("killed", "a man died early Friday", "summary", True),
        ("male", "A man died early Friday", "summary", True),
        ("vehicle pursuit ended", "the deputy shot a man", "summary", None),  # paraphrase: unchecked
        ("killed", "the deputy shot a man", "summary", None),  # no cue: unchecked, not unsupported
        ("vehicle pursuit", "after a vehicle pursuit", "summary", True),
    ],
)
def test_free_text_values_are_supported_by_content_word_overlap(
    value: str, quote: str, kind: str, expected: bool | None
) -> None:
    assert check_support(value, quote, kind=kind) is expected  # type: ignore[arg-type]


def test_null_values_are_not_checked_and_an_empty_quote_supports_nothing() -> None:
    assert check_support(None, "anything") is None
    assert check_support("Tempe", "") is False


@pytest.mark.parametrize(
    ("kind", "value", "text", "expected"),
    [
        # A category may be paraphrased: no cue leaves it unchecked, never unsupported.
        ("category", "Hispanic", "a man of Mexican descent", None),
        # A label is a proper noun: the wrong one is unsupported.
        ("label", "Operation Desert Sweep", "during Operation Sonoran Sweep", False),
        ("place_category", "at the scene", "was pronounced dead at a hospital", False),
        ("count", "1", "a Harlow County sheriff's deputy shot a man", True),
        ("person", "Mara Ellison", "said Sgt. Jos\u00e9 Pe\u00f1a", False),
    ],
)
def test_a_fields_evidence_is_checked_by_its_kinds_strategy(
    kind: KindName, value: str, text: str, expected: bool | None
) -> None:
    assert STRATEGIES[kind].supports(value, text) is expected


def test_agencies_are_checked_by_canonical_id_given_a_speaker_table_and_word_by_word_without() -> None:
    agency = STRATEGIES["agency"]
    assert agency.supports("Department of Homeland Security", "DHS said", default_table()) is True
    assert agency.supports("Department of Homeland Security", "DHS said") is False
    assert agency.supports("Border Patrol", "a Border Patrol agent fired") is True


# --------------------------------------------------------------------------
# ground_record
# --------------------------------------------------------------------------


def _cited(value: object, quote: str, attribution: str = "outlet") -> Cited:  # type: ignore[type-arg]
    return Cited(value=value, quote=quote, attribution=attribution)


def _record() -> IncidentRecord:
    return IncidentRecord(
        article_id="sha256:test",
        source_path="fixtures/harlow.md",
        provenance=Provenance(article_id="sha256:test", outlet="Harlow Herald"),
        when=When(date=_cited("2026-03-10", "shot and wounded a man early Tuesday", "")),
        where=Where(place=_cited("Harlow Lake", "near the boat ramp at Harlow Lake")),
        agencies=[
            Agency(
                name=_cited(
                    "Harlow County Sheriff's Office",
                    "a spokesperson for the Harlow County Sheriff's Office",
                    "Harlow County Sheriff's Office",
                )
            )
        ],
        subjects=[
            Subject(
                name=_cited("Jos\u00e9 Pe\u00f1a-Whitlock", "identified as Jos\u00e9 Pe\u00f1a-Whitlock, 41"),
                age=_cited(52, "identified as Jos\u00e9 Pe\u00f1a-Whitlock, 41"),
                outcome=_cited("injured", OTHER_ARTICLE_SENTENCE, "witness Dana Reyes"),
            )
        ],
        officers=Officers(
            # The extractor's quote says "poor"; the article says "fair".
            condition=_cited(
                "poor condition",
                "flown to St. Brendan's Hospital.  He was in poor condition Wednesday",
                "sheriff's office",
            )
        ),
        statements=[
            Statement(
                speaker="Mara Ellison",
                affiliation="Harlow County Sheriff's Office",
                quote="The deputy gave repeated commands to stop",
            )
        ],
    )


def _article() -> Article:
    return Article.from_text(ARTICLE, outlet="Harlow Herald", published=date(2026, 3, 11))


def test_ground_record_fills_grounding_and_speaker_on_every_cited_value_and_statement() -> None:
    grounded = ground_record(_record(), _article())
    cited = [
        grounded.when.date,
        grounded.where.place,
        grounded.agencies[0].name,
        grounded.subjects[0].name,
        grounded.subjects[0].age,
        grounded.subjects[0].outcome,
        grounded.officers.condition,
    ]
    for value in cited:
        assert value is not None
        assert value.grounding is not None
        assert value.speaker is not None
    statement = grounded.statements[0]
    assert statement.grounding is not None and statement.grounding.status == GroundingStatus.exact
    assert statement.grounding.note == "2 occurrences; first taken"
    assert statement.speaker_id == "agency:harlow-county-sheriff"


def test_ground_record_returns_a_copy_and_leaves_the_input_untouched() -> None:
    record = _record()
    ground_record(record, _article())
    assert record.when.date is not None and record.when.date.grounding is None
    assert record.statements[0].speaker_id is None


def test_ground_record_keeps_unfound_values_and_never_counts_them_as_evidence() -> None:
    grounded = ground_record(_record(), _article())
    outcome = grounded.subjects[0].outcome
    assert outcome is not None and outcome.value == "injured"
    assert outcome.grounding is not None
    assert outcome.grounding.status == GroundingStatus.unfound
    assert not outcome.grounding.is_evidence
    assert outcome.speaker == "witness:dana-reyes"


def test_ground_record_checks_support_and_speakers_per_field() -> None:
    grounded = ground_record(_record(), _article())
    assert grounded.when.date is not None and grounded.when.date.grounding is not None
    assert grounded.when.date.grounding.supported is True  # "Tuesday" is 2026-03-10
    assert grounded.when.date.speaker == "outlet:harlow-herald"
    age = grounded.subjects[0].age
    assert age is not None and age.grounding is not None
    assert age.grounding.status == GroundingStatus.exact
    assert age.grounding.supported is False  # quote says 41, value says 52
    assert not age.grounding.is_evidence
    name = grounded.agencies[0].name
    assert name.speaker == "agency:harlow-county-sheriff"
    assert name.grounding is not None and name.grounding.supported is True


def test_a_fuzzy_match_is_checked_against_the_article_wording_not_the_extractor_quote() -> None:
    grounded = ground_record(_record(), _article())
    condition = grounded.officers.condition
    assert condition is not None and condition.grounding is not None
    assert condition.grounding.status == GroundingStatus.fuzzy
    assert "fair condition" in ARTICLE[condition.grounding.start : condition.grounding.end]
    assert condition.grounding.supported is False


def test_a_headline_without_an_article_still_states_a_single_officer() -> None:
    assert check_support("1", "Border Patrol agent kills driver in Arizona stop", kind="count") is True
    assert check_support("1", "immigration agents killed a driver", kind="count") is False


def test_a_person_named_alone_takes_the_id_their_statement_gives_them() -> None:
    record = _record()
    record.statements.append(
        Statement(speaker="Dana Reyes", affiliation="witness", quote="He was in fair condition")
    )
    assert record.subjects[0].name is not None
    record.subjects[0].name.attribution = "Dana Reyes"
    record.subjects[0].age = _cited(41, "Jos\u00e9 Pe\u00f1a-Whitlock, 41", "Mara Ellison")
    grounded = ground_record(record, _article())
    assert grounded.subjects[0].name is not None and grounded.subjects[0].age is not None
    assert grounded.subjects[0].name.speaker == "witness:dana-reyes"
    assert grounded.subjects[0].age.speaker == "agency:harlow-county-sheriff"
    assert grounded.statements[1].speaker_id == "witness:dana-reyes"


def test_a_statement_by_a_person_named_as_a_witness_elsewhere_is_the_witness() -> None:
    record = _record()
    record.statements.append(Statement(speaker="Dana Reyes", quote="He was in fair condition"))
    grounded = ground_record(record, _article())  # subjects[0].outcome is attributed to "witness Dana Reyes"
    assert grounded.statements[1].speaker_id == "witness:dana-reyes"


OFFICIAL = (
    "Agents shot a man in Harlow on Friday, said Homeland Security Assistant Secretary Vera Lind. "
    '"He rammed our vehicle," Lind said.'
)


@pytest.mark.parametrize("named", ["Vera Lind", "Lind"])
def test_a_statement_by_an_official_the_article_titles_counts_under_her_agency(named: str) -> None:
    record = IncidentRecord.model_validate(
        {
            "article_id": "sha256:lind",
            "provenance": {"article_id": "sha256:lind"},
            "statements": [{"speaker": named, "quote": "He rammed our vehicle"}],
        }
    )
    grounded = ground_record(record, Article.from_text(OFFICIAL, outlet="Harlow Herald"))
    assert grounded.statements[0].speaker_id == "agency:dhs"


def test_a_statement_by_another_outlets_reporter_is_that_outlet_relayed_never_a_person() -> None:
    text = 'Mesa Courier reporter Sam Oduya posted: "Agents fired twice." Oduya later deleted it.'
    record = IncidentRecord.model_validate(
        {
            "article_id": "sha256:oduya",
            "provenance": {"article_id": "sha256:oduya"},
            "statements": [{"speaker": "Sam Oduya", "quote": "Agents fired twice."}],
        }
    )
    grounded = ground_record(record, Article.from_text(text, outlet="Harlow Herald"))
    assert grounded.statements[0].speaker_id == "outlet:mesa-courier"


def test_a_person_the_article_gives_no_title_stays_a_person() -> None:
    text = 'ICE arrested Vera Lind on Friday. "I did nothing," Lind said.'
    record = IncidentRecord.model_validate(
        {
            "article_id": "sha256:lind",
            "provenance": {"article_id": "sha256:lind"},
            "statements": [{"speaker": "Vera Lind", "quote": "I did nothing"}],
        }
    )
    grounded = ground_record(record, Article.from_text(text, outlet="Harlow Herald"))
    assert grounded.statements[0].speaker_id == "person:vera-lind"


# --------------------------------------------------------------------------
# The Tempe example: hand-made records against the example articles
# --------------------------------------------------------------------------


def test_the_hand_made_tempe_records_are_fully_grounded_and_never_unsupported() -> None:
    from pathlib import Path

    from pipeline.ingest.sources import iter_sources

    folder = Path(__file__).resolve().parents[1] / "examples" / "tempe-traffic-stop"
    articles = {Path(a.source_path or "").name: a for a in iter_sources([folder]) if isinstance(a, Article)}
    lines = (folder / "gold_records.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(articles) == 6
    statuses: list[GroundingStatus] = []
    for line in lines:
        record = IncidentRecord.model_validate_json(line)
        article = articles[Path(record.source_path or "").name]
        grounded = ground_record(record, article)
        for value in _cited_values(grounded):
            assert value.grounding is not None
            statuses.append(value.grounding.status)
            assert value.grounding.is_evidence, (record.source_path, value.quote)
            assert value.speaker is not None
        for statement in grounded.statements:
            assert statement.grounding is not None and statement.grounding.is_evidence
    assert statuses and all(s == GroundingStatus.exact for s in statuses)


def _cited_values(node: object) -> list[Cited]:  # type: ignore[type-arg]
    from pydantic import BaseModel

    if isinstance(node, Cited):
        return [node] if node.value is not None else []
    if isinstance(node, BaseModel):
        return [c for name in type(node).model_fields for c in _cited_values(getattr(node, name))]
    if isinstance(node, list):
        return [c for item in node for c in _cited_values(item)]
    return []
