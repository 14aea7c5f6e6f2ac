"""Evidence located by the pipeline: sentences with exact offsets, the sentence that
supports each value (the model's sentence number only a hint), who a sentence says
asserts it, and the words a speaker is quoted saying.

Every article here is invented for these tests, except the example set read at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.evidence.ground import check_support
from pipeline.evidence.locate import (
    MAX_SENTENCE_CHARS,
    Sentence,
    attribution_for,
    locate_evidence,
    locate_statement,
    number_sentences,
    quoted_text,
    split_sentences,
)
from schemas.article import Article
from schemas.record import Grounding, GroundingStatus

ARTICLE = (
    "Trooper kills driver after chase on Route 12\n"
    "\n"
    "MILLBROOK, Vt. \u2014 A state trooper fatally shot a 27-year-old driver on Sunday night after a chase "
    "that ended near Elm Street and Harbor Road, state police said.\n"
    "\n"
    "The driver, identified by relatives as Tom\u00e1s Reyes-Whitaker, was pronounced dead at St. Agnes "
    "Medical Center shortly after 11 p.m. on March 1.\n"
    "\n"
    "Police said the man tried to run over the trooper with his pickup before the trooper fired.\n"
    "\n"
    "The trooper was taken to a hospital with minor injuries and released Monday.\n"
    "\n"
    "In a statement, State Police spokesperson Dana Okafor said: \u201cThe trooper feared for his life. "
    "He had no other choice.\u201d\n"
    "\n"
    "Reyes-Whitaker\u2019s mother, Elena Reyes, said her son had been unarmed.\n"
    "\n"
    "\u201cHe was driving home from the bakery,\u201d she said.\n"
    "\n"
    "The FBI is reviewing the case, a spokesperson for its Burlington office confirmed.\n"
    "\n"
    "Millbrook residents plan a vigil on Friday.\n"
)
SENTENCES = split_sentences(ARTICLE)


def _texts(text: str) -> list[str]:
    return [s.text for s in split_sentences(text)]


def _locate(
    value: object, path: str, hints: list[int | None], text: str = ARTICLE, subject: str | None = None
) -> Grounding:
    return locate_evidence(value, path, split_sentences(text), hints, text=text, subject=subject)


def _value_words(grounding: Grounding, text: str = ARTICLE) -> str | None:
    if grounding.value_start is None or grounding.value_end is None:
        return None
    return text[grounding.value_start : grounding.value_end]


def _sentence(text: str) -> Sentence:
    return Sentence(number=1, start=0, end=len(text), text=text)


def _assert_exact_cover(text: str, sentences: list[Sentence]) -> None:
    """Offsets exact, no surrounding whitespace, in order, and no non-space character lost."""
    covered = [0] * len(text)
    previous_end = 0
    for number, sentence in enumerate(sentences, start=1):
        assert sentence.number == number
        assert text[sentence.start : sentence.end] == sentence.text
        assert sentence.text and sentence.text == sentence.text.strip()
        assert sentence.start >= previous_end
        previous_end = sentence.end
        for index in range(sentence.start, sentence.end):
            covered[index] += 1
    lost = [ch for ch, count in zip(text, covered, strict=True) if count == 0 and not ch.isspace()]
    assert lost == []


# --------------------------------------------------------------------------
# Splitting
# --------------------------------------------------------------------------


def test_the_example_article_splits_into_the_sentences_a_reader_sees() -> None:
    assert [s.text for s in SENTENCES] == [
        "Trooper kills driver after chase on Route 12",
        "MILLBROOK, Vt. \u2014 A state trooper fatally shot a 27-year-old driver on Sunday night after a "
        "chase that ended near Elm Street and Harbor Road, state police said.",
        "The driver, identified by relatives as Tom\u00e1s Reyes-Whitaker, was pronounced dead at St. Agnes "
        "Medical Center shortly after 11 p.m. on March 1.",
        "Police said the man tried to run over the trooper with his pickup before the trooper fired.",
        "The trooper was taken to a hospital with minor injuries and released Monday.",
        "In a statement, State Police spokesperson Dana Okafor said: \u201cThe trooper feared for his life.",
        "He had no other choice.\u201d",
        "Reyes-Whitaker\u2019s mother, Elena Reyes, said her son had been unarmed.",
        "\u201cHe was driving home from the bakery,\u201d she said.",
        "The FBI is reviewing the case, a spokesperson for its Burlington office confirmed.",
        "Millbrook residents plan a vigil on Friday.",
    ]
    _assert_exact_cover(ARTICLE, SENTENCES)


def test_abbreviations_initials_times_and_decimals_do_not_end_a_sentence() -> None:
    text = (
        "Sgt. Mara Quill of the U.S. Marshals met Dr. Ana Ruiz and Mr. Lee at 7:30 a.m. near St. Jude Ave. "
        "on Jan. 5 with Gov. Hale, Sen. Ortiz, Rep. Kim, Lt. Bos and Capt. Ng. "
        "John F. Kennedy Jr. Blvd. was closed from No. 4 to the U.N. office on Sept. 9 at 3 p.m. until 6. "
        "The fare rose 3.5 percent."
    )
    assert _texts(text) == [
        "Sgt. Mara Quill of the U.S. Marshals met Dr. Ana Ruiz and Mr. Lee at 7:30 a.m. near St. Jude Ave. "
        "on Jan. 5 with Gov. Hale, Sen. Ortiz, Rep. Kim, Lt. Bos and Capt. Ng.",
        "John F. Kennedy Jr. Blvd. was closed from No. 4 to the U.N. office on Sept. 9 at 3 p.m. until 6.",
        "The fare rose 3.5 percent.",
    ]


def test_an_abbreviation_ends_the_sentence_when_the_next_word_plainly_starts_one() -> None:
    assert _texts("He moved to the U.S. The family followed at 9 a.m. They arrived late.") == [
        "He moved to the U.S.",
        "The family followed at 9 a.m.",
        "They arrived late.",
    ]


def test_question_and_exclamation_marks_end_sentences_but_not_before_a_lowercase_word() -> None:
    assert _texts('Why stop now? "Drop it!" he yelled. Nobody moved!') == [
        "Why stop now?",
        '"Drop it!" he yelled.',
        "Nobody moved!",
    ]


def test_every_line_is_a_sentence_headline_dateline_and_embedded_post() -> None:
    text = (
        "Agents detain two at Ridge Mall\n"
        "\n"
        "RIDGE CITY \u2014 Agents detained two men Tuesday\n"
        "pic.example.com/AbC123\n"
        "\u2014 Jane Doe (@janedoe) March 3, 2026\n"
        "Neither man was charged."
    )
    assert _texts(text) == [
        "Agents detain two at Ridge Mall",
        "RIDGE CITY \u2014 Agents detained two men Tuesday",
        "pic.example.com/AbC123",
        "\u2014 Jane Doe (@janedoe) March 3, 2026",
        "Neither man was charged.",
    ]


def test_a_hard_wrapped_line_continues_its_sentence_but_a_blank_line_never_does() -> None:
    text = "A deputy shot a man after a\npursuit that ended at the lake.\n\nlater that day, roads reopened."
    sentences = split_sentences(text)
    assert [s.text for s in sentences] == [
        "A deputy shot a man after a\npursuit that ended at the lake.",
        "later that day, roads reopened.",
    ]
    assert number_sentences(sentences) == (
        "[1] A deputy shot a man after a pursuit that ended at the lake.\n[2] later that day, roads reopened."
    )


def test_a_quotation_of_several_sentences_may_split_but_keeps_its_said_clause() -> None:
    text = '"We heard shots. Then it was quiet," said Rosa Vidal. She lives next door.'
    assert _texts(text) == [
        '"We heard shots.',
        'Then it was quiet," said Rosa Vidal.',
        "She lives next door.",
    ]


def test_offsets_point_into_the_original_text_with_its_spacing_and_curly_quotes() -> None:
    text = "  \u00a0Lead line here.   \u201cA quote.\u201d  Last one\u2026 \n\n\tTabbed line.  "
    sentences = split_sentences(text)
    assert [(s.start, s.end) for s in sentences] == [(3, 18), (21, 31), (33, 42), (46, 58)]
    assert [s.text for s in sentences] == [
        "Lead line here.",
        "\u201cA quote.\u201d",
        "Last one\u2026",
        "Tabbed line.",
    ]
    _assert_exact_cover(text, sentences)


def test_a_very_long_sentence_is_cut_at_semicolons_or_commas() -> None:
    clause = "the crew checked the north road and the river path for signs of the missing van"
    text = "; ".join([clause] * 12) + "."
    assert len(text) > MAX_SENTENCE_CHARS
    sentences = split_sentences(text)
    assert len(sentences) > 1
    assert all(len(s.text) <= MAX_SENTENCE_CHARS for s in sentences)
    assert all(s.text.endswith((";", ".")) for s in sentences)
    _assert_exact_cover(text, sentences)


def test_numbered_text_shows_one_sentence_per_line_with_its_number() -> None:
    numbered = number_sentences(SENTENCES).splitlines()
    assert len(numbered) == len(SENTENCES)
    assert numbered[0] == "[1] Trooper kills driver after chase on Route 12"
    assert numbered[10] == "[11] Millbrook residents plan a vigil on Friday."


_PIECES = st.sampled_from(
    [
        "Word",
        "word",
        "U.S.",
        "a.m.",
        "Dr.",
        "F.",
        "3.5",
        ".",
        "!",
        "?",
        "\u2026",
        '"',
        "\u201c",
        "\u201d",
        "'",
        ")",
        ";",
        ",",
        " ",
        "  ",
        "\n",
        "\n\n",
        "\r\n",
        "\t",
        "\u00a0",
        "\u2028",
        "\u2014",
        "The",
        "x" * 250,
        "caf\u00e9",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=60).map("".join))
def test_splitting_never_loses_text_and_offsets_are_exact(text: str) -> None:
    _assert_exact_cover(text, split_sentences(text))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_splitting_any_unicode_text_never_loses_text(text: str) -> None:
    _assert_exact_cover(text, split_sentences(text))


def test_the_example_articles_split_without_losing_text(example_articles: dict[str, Article]) -> None:
    assert len(example_articles) == 6
    for article in example_articles.values():
        sentences = split_sentences(article.text)
        assert len(sentences) >= 5
        _assert_exact_cover(article.text, sentences)


def test_the_example_intersection_is_found_in_its_own_sentence(
    example_articles: dict[str, Article], examples_dir: Path
) -> None:
    gold = json.loads((examples_dir / "gold.json").read_text(encoding="utf-8"))["articles"]
    value = gold["01-valley-ledger.md"]["where.place"]
    assert value == "Apache Boulevard and McClintock Drive"
    text = example_articles["01-valley-ledger.md"].text
    sentences = split_sentences(text)
    grounding = locate_evidence(value, "where.place", sentences, [1], text=text)
    assert grounding.status == GroundingStatus.sentence_match
    assert grounding.sentence is not None and grounding.start is not None and grounding.end is not None
    assert value in text[grounding.start : grounding.end]
    assert _value_words(grounding, text) == value


# --------------------------------------------------------------------------
# Locating a value's evidence
# --------------------------------------------------------------------------


def test_a_wrong_hint_yields_to_the_sentence_that_states_the_value() -> None:
    grounding = _locate("Elm Street and Harbor Road", "where.place", [5])
    assert grounding.status == GroundingStatus.sentence_match
    assert grounding.sentence == 2
    assert grounding.supported is True and grounding.score == 100.0
    assert (grounding.start, grounding.end) == (SENTENCES[1].start, SENTENCES[1].end)
    assert _value_words(grounding) == "Elm Street and Harbor Road"


def test_a_hint_off_by_one_lands_on_the_neighbouring_sentence_that_states_the_value() -> None:
    grounding = _locate("Elm Street and Harbor Road", "where.place", [3])
    assert (grounding.status, grounding.sentence) == (GroundingStatus.sentence_match, 2)


def test_among_several_supporting_sentences_the_one_nearest_the_hint_wins() -> None:
    # "Millbrook" is in sentences 2 and 11.
    assert _locate("Millbrook", "where.city", [10]).sentence == 11
    assert _locate("Millbrook", "where.city", [4]).sentence == 2


def test_a_hinted_sentence_that_supports_the_value_is_kept_even_if_an_earlier_one_does_too() -> None:
    assert _locate("Millbrook", "where.city", [11]).sentence == 11


def test_equally_near_supporting_sentences_resolve_to_the_earlier_one() -> None:
    # Hints 5 and 8 are both three sentences from 2 and from 11.
    assert _locate("Millbrook", "where.city", [5, 8]).sentence == 2


def test_without_a_hint_the_first_supporting_sentence_is_taken() -> None:
    assert _locate("Millbrook", "where.city", []).sentence == 2


def test_no_supporting_sentence_shows_the_cited_sentence_as_model_cited_and_unsupported() -> None:
    grounding = _locate("Riverton", "where.city", [4])
    assert grounding.status == GroundingStatus.model_cited
    assert grounding.supported is False
    assert grounding.sentence == 4
    assert (grounding.start, grounding.end) == (SENTENCES[3].start, SENTENCES[3].end)
    assert grounding.value_start is None and grounding.value_end is None
    assert grounding.note and "model cited" in grounding.note
    assert not grounding.is_evidence


def test_a_cited_sentence_that_cannot_be_checked_is_model_cited_and_unchecked() -> None:
    grounding = _locate("a tense standoff outside a courthouse", "what.circumstances", [6])
    assert (grounding.status, grounding.sentence, grounding.supported) == (
        GroundingStatus.model_cited,
        6,
        None,
    )


def test_no_support_and_no_usable_hint_is_unfound_without_offsets() -> None:
    grounding = _locate("Riverton", "where.city", [None, 40, 0])
    assert grounding.status == GroundingStatus.unfound
    assert grounding.start is None and grounding.end is None and grounding.sentence is None
    assert grounding.supported is False
    assert grounding.note


def test_an_unfound_value_that_no_sentence_can_check_is_unchecked_rather_than_unsupported() -> None:
    grounding = _locate("a tense standoff outside a courthouse", "what.circumstances", [])
    assert (grounding.status, grounding.supported) == (GroundingStatus.unfound, None)


@pytest.mark.parametrize(
    ("value", "path", "hints", "sentence", "words"),
    [
        ("Tomas Reyes-Whitaker", "subjects.name", [], 3, "Tom\u00e1s Reyes-Whitaker"),
        ("2026-03-01", "when.date", [2], 2, "Sunday night"),
        ("2026-03-01", "when.date", [3], 3, "March 1"),
        (27, "subjects.age", [9], 2, "27"),
        ("Federal Bureau of Investigation", "agencies.name", [1], 10, "FBI"),
        ("state police", "agencies.name", [2], 2, "state police"),
        ("11 p.m.", "when.time_of_day", [3], 3, "11 p.m."),
        ("minor injuries", "officers.injuries", [5], 5, "minor injuries"),
        ("1", "officers.count_fired", [4], 4, "trooper fired"),
        ("unarmed", "subjects.armed_with", [8], 8, "unarmed"),
    ],
)
def test_the_value_span_covers_the_values_own_words_inside_the_sentence(
    value: object, path: str, hints: list[int | None], sentence: int, words: str
) -> None:
    grounding = _locate(value, path, hints)
    assert (grounding.status, grounding.sentence) == (GroundingStatus.sentence_match, sentence)
    assert grounding.start is not None and grounding.end is not None
    assert grounding.value_start is not None and grounding.value_end is not None
    assert grounding.start <= grounding.value_start < grounding.value_end <= grounding.end
    assert _value_words(grounding) == words


# --- paraphrases -------------------------------------------------------------------------------


def test_fatally_shot_states_that_the_subject_was_killed() -> None:
    grounding = _locate("killed", "subjects.outcome", [2])
    assert (grounding.status, grounding.sentence) == (GroundingStatus.sentence_match, 2)
    assert _value_words(grounding) == "fatally shot"


def test_the_trooper_fired_states_one_officer_fired_and_a_bare_mention_of_the_trooper_does_not() -> None:
    grounding = _locate("1", "officers.count_fired", [5])
    # Sentence 5 mentions "the trooper" but not firing: the nearest sentence with "the trooper fired" wins.
    assert (grounding.status, grounding.sentence) == (GroundingStatus.sentence_match, 4)
    assert check_support("1", SENTENCES[4].text, kind="count") is True


def test_officers_opened_fire_states_that_several_fired_and_that_it_was_a_shooting() -> None:
    text = "Two officers opened fire on the sedan near the depot."
    plural = _locate("plural", "officers.count_fired", [], text)
    assert (plural.status, _value_words(plural, text)) == (
        GroundingStatus.sentence_match,
        "officers opened fire",
    )
    assert check_support("shooting", text, kind="summary") is not True  # only the cue finds it
    shooting = _locate("shooting", "what.event_type", [], text)
    assert (shooting.status, _value_words(shooting, text)) == (GroundingStatus.sentence_match, "opened fire")
    assert _locate("1", "officers.count_fired", [], text).status != GroundingStatus.sentence_match


def test_officers_mentioned_without_firing_do_not_state_how_many_fired() -> None:
    text = "Officers surrounded the sedan near the depot."
    grounding = _locate("plural", "officers.count_fired", [1], text)
    assert (grounding.status, grounding.supported) == (GroundingStatus.model_cited, None)


def test_pronounced_dead_at_a_medical_center_states_a_death_at_the_hospital() -> None:
    grounding = _locate("at the hospital", "subjects.place_of_death", [5])
    # Sentence 5 has "a hospital" but nobody died there; sentence 3 has the death.
    assert (grounding.status, grounding.sentence) == (GroundingStatus.sentence_match, 3)
    assert _value_words(grounding) == "pronounced dead at St. Agnes Medical Center"


def test_a_hospital_mentioned_without_a_death_does_not_state_where_someone_died() -> None:
    text = "The deputy was taken to a hospital with a cut hand."
    grounding = _locate("at the hospital", "subjects.place_of_death", [1], text)
    assert (grounding.status, grounding.supported) == (GroundingStatus.model_cited, None)


def test_died_at_the_scene_states_a_death_at_the_scene() -> None:
    text = "Paramedics arrived quickly.\nThe woman died at the scene, officials said."
    grounding = _locate("at the scene", "subjects.place_of_death", [1], text)
    assert (grounding.status, grounding.sentence) == (GroundingStatus.sentence_match, 2)


def test_trying_to_run_someone_over_states_the_vehicle_as_the_weapon() -> None:
    grounding = _locate("vehicle", "subjects.armed_with", [2])
    assert (grounding.status, grounding.sentence) == (GroundingStatus.sentence_match, 4)
    assert _value_words(grounding) == "tried to run over"


def test_was_not_armed_states_unarmed_but_was_armed_does_not() -> None:
    text = "Witnesses said the man was not armed.\nPolice said the man was armed."
    grounding = _locate("unarmed", "subjects.armed_with", [2], text)
    assert (grounding.status, grounding.sentence) == (GroundingStatus.sentence_match, 1)
    assert _value_words(grounding, text) == "was not armed"


def test_merely_driving_a_van_does_not_state_the_vehicle_as_the_weapon() -> None:
    text = "He drove a delivery van for a bakery."
    grounding = _locate("vehicle", "subjects.armed_with", [], text)
    assert grounding.status == GroundingStatus.unfound
    accelerated = "The driver accelerated toward the agents at the checkpoint."
    assert _locate("vehicle", "subjects.armed_with", [], accelerated).status == GroundingStatus.sentence_match


GENDER_TEXT = (
    "A driver was shot by a deputy on Route 9 on Monday.\n"
    "The deputy said he saw a weapon.\n"
    "Investigators have not released the driver's name.\n"
    "Relatives said she was a nurse.\n"
    "Ada Moss had lived on the street for years, and she knew every neighbor."
)


def test_a_pronoun_near_the_cited_sentence_states_the_subjects_gender() -> None:
    grounding = _locate("female", "subjects.gender", [4], GENDER_TEXT)
    assert (grounding.status, grounding.sentence) == (GroundingStatus.sentence_match, 4)
    assert _value_words(grounding, GENDER_TEXT) == "she"


def test_a_pronoun_far_from_any_hint_and_without_the_subjects_name_is_not_evidence_of_gender() -> None:
    grounding = _locate("female", "subjects.gender", [], GENDER_TEXT)
    assert grounding.status == GroundingStatus.unfound
    assert grounding.supported is None


def test_a_pronoun_three_sentences_from_the_hint_is_too_far_to_be_the_subjects() -> None:
    grounding = _locate("female", "subjects.gender", [1], GENDER_TEXT)
    assert (grounding.status, grounding.sentence, grounding.supported) == (
        GroundingStatus.model_cited,
        1,
        None,
    )


def test_a_pronoun_in_a_sentence_naming_the_subject_states_the_subjects_gender() -> None:
    grounding = _locate("female", "subjects.gender", [], GENDER_TEXT, subject="Ada Moss")
    assert (grounding.status, grounding.sentence) == (GroundingStatus.sentence_match, 5)


def test_a_gendered_noun_states_the_gender_wherever_it_is() -> None:
    text = "Officers stopped a car on Fifth Street.\nA woman inside was hurt.\nThe road reopened at noon."
    grounding = _locate("female", "subjects.gender", [3], text)
    assert (grounding.status, grounding.sentence) == (GroundingStatus.sentence_match, 2)
    assert _value_words(grounding, text) == "woman"


def test_sentences_from_a_chunk_are_found_by_their_own_numbers() -> None:
    chunk = [
        Sentence(number=i, start=s.start, end=s.end, text=s.text)
        for i, s in enumerate(SENTENCES[9:], start=1)
    ]
    grounding = locate_evidence("Millbrook", "where.city", chunk, [2], text=ARTICLE)
    assert grounding.sentence == 2
    assert grounding.start == SENTENCES[10].start


def test_sentences_that_do_not_match_the_text_are_refused() -> None:
    with pytest.raises(ValueError, match="does not match"):
        locate_evidence("Millbrook", "where.city", SENTENCES, [], text=ARTICLE.upper())


# --------------------------------------------------------------------------
# Attribution
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "attribution"),
    [
        ("The road was closed for hours, Harbor City police said.", "Harbor City police"),
        ("Harbor City police said the road was closed for hours.", "Harbor City police"),
        ("According to the FBI, the agent fired twice.", "FBI"),
        (
            "The shots came from the north side, according to Tempe police, who closed the block.",
            "Tempe police",
        ),
        ("The man was armed, federal officials said.", "federal officials"),
        ("The man was armed, officials said Tuesday.", "officials"),
        ("Police have said the van was stolen.", "Police"),
        ("The van was stolen, DHS also said.", "DHS"),
        (
            "In a statement, ICE spokesperson Rena Hollis said the arrest was lawful.",
            "ICE spokesperson Rena Hollis",
        ),
        ("The officer was released from the hospital, the statement said.", "statement"),
        ("The woman, identified by relatives as Ines Marr, was 40.", "family"),
        ("He had just finished a shift, relatives said.", "family"),
        ("The van never moved, witnesses said.", "witness"),
        ("The shots came fast, a witness told reporters.", "witness"),
        ("The van stopped first, a witness who was there said.", "witness"),
        ("Nobody warned him, Aldo Brenn's sister said her brother was unarmed.", "family"),
        ("The agent who fired was hurt, DHS says, but has not been named.", "DHS"),
        ('"We are cooperating fully," said Sgt. Lionel Park, a spokesperson.', "Sgt. Lionel Park"),
        ('"I heard four shots," Nadia Frost said.', "Nadia Frost"),
        ("The FBI is reviewing the video, a spokesperson for its regional office confirmed.", "FBI"),
        ('"I heard four shots," she said.', "unnamed speaker"),
        ("The road reopened Tuesday.", "outlet"),
        ("The agency did not say whether body cameras were worn.", "outlet"),
        ("Video shared by neighbors shows agents around the van.", "outlet"),
    ],
)
def test_attribution_names_who_the_sentence_says_asserts_it(sentence: str, attribution: str) -> None:
    assert attribution_for(_sentence(sentence)) == attribution


def test_attribution_reads_the_example_article_sentence_by_sentence() -> None:
    assert [attribution_for(s) for s in SENTENCES] == [
        "outlet",
        "state police",
        "family",
        "Police",
        "outlet",
        "State Police spokesperson Dana Okafor",
        "outlet",
        "Reyes-Whitaker\u2019s mother, Elena Reyes",
        "unnamed speaker",
        "FBI",
        "outlet",
    ]


# --------------------------------------------------------------------------
# Quotations
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "quoted"),
    [
        ("Officer Diaz shouted: \u201cDrop it now.\u201d", "Drop it now."),
        ('"We are cooperating," Park said.', "We are cooperating"),
        ('"Stop," he said, "or I will shoot."', 'Stop," he said, "or I will shoot.'),
        ('Vidal said: "We heard shots and ran', "We heard shots and ran"),
        ('Then it was quiet," said Rosa Vidal.', "Then it was quiet"),
    ],
)
def test_quoted_text_is_the_directly_quoted_words_of_a_sentence(sentence: str, quoted: str) -> None:
    text = f"Lead. {sentence}"
    span = quoted_text(Sentence(number=2, start=6, end=len(text), text=sentence), text)
    assert span is not None
    assert text[span[0] : span[1]] == quoted


def test_a_sentence_without_double_quotes_quotes_nobody() -> None:
    assert quoted_text(_sentence("The agent's van wasn't moving."), "The agent's van wasn't moving.") is None


def test_a_two_sentence_quotation_is_one_statement() -> None:
    found = locate_statement("Dana Okafor", SENTENCES, [6], text=ARTICLE)
    assert [(s.number, ARTICLE[a:b]) for s, a, b in found] == [
        (6, "The trooper feared for his life. He had no other choice.")
    ]


def test_a_wrong_hint_falls_back_to_the_quotation_attributed_to_the_speaker() -> None:
    found = locate_statement("Dana Okafor", SENTENCES, [2], text=ARTICLE)
    assert [ARTICLE[a:b] for _, a, b in found] == ["The trooper feared for his life. He had no other choice."]


def test_a_quotation_said_by_she_belongs_to_the_speaker_named_just_before() -> None:
    found = locate_statement("Elena Reyes", SENTENCES, [9], text=ARTICLE)
    assert [(s.number, ARTICLE[a:b]) for s, a, b in found] == [(9, "He was driving home from the bakery")]


def test_a_neighbouring_mention_does_not_take_over_someone_elses_quotation() -> None:
    # Okafor's quotation (6-7) sits next to sentence 8, which names Elena Reyes.
    found = locate_statement("Elena Reyes", SENTENCES, [6], text=ARTICLE)
    assert [s.number for s, _, _ in found] == [9]


def test_an_agency_speaker_is_recognised_by_its_name_in_the_attribution() -> None:
    found = locate_statement("State Police", SENTENCES, [7], text=ARTICLE)
    assert [(s.number, ARTICLE[a:b]) for s, a, b in found] == [
        (6, "The trooper feared for his life. He had no other choice.")
    ]


def test_an_agency_speaker_is_recognised_by_an_alias_from_the_speaker_table() -> None:
    text = (
        "Agents detained a man at a farm.\n"
        "\u201cThe arrest followed a court order,\u201d an Immigration and Customs Enforcement "
        "spokesperson said."
    )
    found = locate_statement("ICE", split_sentences(text), [1], text=text)
    assert [text[a:b] for _, a, b in found] == ["The arrest followed a court order"]


def test_a_shared_surname_inside_another_persons_name_is_not_the_speaker() -> None:
    text = (
        "Rafa Lind-Ortega was stopped on Main Street.\n"
        '"He did nothing wrong," Lind-Ortega\'s lawyer said.\n'
        "Maya Lind, his cousin, watched from a car."
    )
    assert locate_statement("Maya Lind", split_sentences(text), [2], text=text) == []


def test_a_speaker_with_no_quotation_in_the_article_has_no_statement() -> None:
    assert locate_statement("FBI", SENTENCES, [10], text=ARTICLE) == []
    assert locate_statement("Nobody Here", SENTENCES, [], text=ARTICLE) == []
