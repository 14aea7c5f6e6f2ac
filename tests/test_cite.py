"""From a model's reading to cited facts: the clean-ups and read-backs pipeline.evidence.cite applies."""

from __future__ import annotations

from datetime import date
from typing import Any

from pipeline.evidence.cite import BACKFILL_NOTE, cite_reading, tidy_places
from pipeline.evidence.locate import split_sentences
from schemas import ArticleReading, GroundingStatus

ARTICLE = (
    "Man dies after deputies serve warrant in Brookfield\n\n"
    "A sheriff's deputy shot a man on Tuesday at a house on Larch Street in Brookfield, Wisconsin.\n\n"
    "The man, Owen Stray, 52, was pronounced dead at the scene, the sheriff's office said."
)


def reading(**values: Any) -> ArticleReading:
    answer: dict[str, Any] = dict.fromkeys(ArticleReading.model_fields)
    answer.update(agencies=[], agency_sents=[], speakers=[], speaker_sents=[])
    answer.update(values)
    return ArticleReading.model_validate(answer)


def cite(model_reading: ArticleReading, text: str = ARTICLE) -> Any:
    return cite_reading(
        model_reading, text=text, sentences=split_sentences(text), published=date(2026, 10, 14)
    )


def test_a_county_written_as_the_city_becomes_the_county() -> None:
    tidied = tidy_places(reading(city="Waukesha County", city_sent=2))
    assert tidied.city is None and tidied.county == "Waukesha County" and tidied.county_sent == 2


def test_a_city_comma_state_written_as_the_place_fills_the_city_and_state_not_the_place() -> None:
    tidied = tidy_places(reading(place="Brookfield, Wisconsin", place_sent=2))
    assert tidied.place is None
    assert (tidied.city, tidied.state, tidied.city_sent) == ("Brookfield", "Wisconsin", 2)


def test_a_street_place_is_left_alone() -> None:
    original = reading(place="Larch Street", place_sent=2, city="Brookfield", city_sent=2)
    assert tidy_places(original) == original


def test_a_place_that_only_repeats_the_city_is_null() -> None:
    facts = cite(reading(place="Brookfield", place_sent=2, city="Brookfield", city_sent=2))
    assert facts.where.place is None
    assert facts.where.city is not None and facts.where.city.value == "Brookfield"


def test_the_place_of_death_is_read_from_formulaic_wording_when_the_model_left_it_null() -> None:
    facts = cite(reading(name="Owen Stray", name_sent=3, outcome="killed", outcome_sent=3))
    place = facts.subjects[0].place_of_death
    assert place is not None and place.value == "at the scene"
    assert place.grounding is not None
    assert place.grounding.status == GroundingStatus.sentence_match and place.grounding.sentence == 3
    assert place.grounding.note == BACKFILL_NOTE, "a reviewer can see the pipeline filled it"


def test_no_place_of_death_is_read_when_the_article_states_both() -> None:
    text = ARTICLE + " A relative said he died at the hospital an hour later."
    facts = cite(reading(name="Owen Stray", name_sent=3, outcome="killed", outcome_sent=3), text)
    assert facts.subjects[0].place_of_death is None


def test_no_place_of_death_is_read_for_a_subject_who_was_not_killed() -> None:
    facts = cite(reading(name="Owen Stray", name_sent=3, outcome="injured", outcome_sent=3))
    assert facts.subjects[0].place_of_death is None


def test_weekday_words_resolve_against_the_publication_date_and_share_their_evidence() -> None:
    facts = cite(reading(date_words="Tuesday", date_sent=2))
    assert facts.when.date is not None and facts.when.date.value == "2026-10-13"
    assert facts.when.precision == "day"
    assert facts.when.date.grounding is not None and facts.when.date.grounding.sentence == 2


def test_a_value_stated_in_the_body_of_an_embedded_post_is_attributed_to_the_post() -> None:
    text = (
        "Man shot by deputies in Brookfield\n\n"
        "A sheriff's deputy shot a man on Tuesday in Brookfield, Wisconsin, the sheriff's office said.\n\n"
        "One neighbour posted about it that night:\n\n"
        "The man ran at the deputy with a knife before the shots, I saw it all.\n"
        "\u2014 Dana Whit (@danawhit) October 13, 2026\n\n"
        "The sheriff's office has not said how many shots were fired."
    )
    facts = cite(reading(armed_with="knife", armed_sent=4, city="Brookfield", city_sent=2), text)
    armed = facts.subjects[0].armed_with
    assert armed is not None and "with a knife" in armed.quote
    assert armed.attribution == "Dana Whit (@danawhit)"
    city = facts.where.city
    assert city is not None and city.attribution == "sheriff's office"


STATEMENTS = (
    "Deputy shoots man in Brookfield\n\n"
    "A sheriff's deputy shot Owen Stray, 52, on Tuesday in \u201cOperation Cold Trail\u201d.\n\n"
    "The sheriff's office accused Stray of having \u201ca long history of reckless driving.\u201d\n\n"
    "The FBI said it would review the shooting."
)


def test_one_quotation_is_one_statement_of_the_speaker_its_sentence_attributes_it_to() -> None:
    # The model listed the subject and the FBI as speakers too; both are named near the quote.
    listed = reading(
        speakers=["Owen Stray", "sheriff's office", "FBI"],
        speaker_sents=[3, 3, 3],
        name="Owen Stray",
        name_sent=2,
    )
    statements = cite(listed, STATEMENTS).statements
    assert [(s.speaker, s.quote) for s in statements] == [
        ("sheriff's office", "a long history of reckless driving.")
    ]


def test_a_quoted_name_is_not_a_statement() -> None:
    statements = cite(reading(speakers=["sheriff's office"], speaker_sents=[2]), STATEMENTS).statements
    assert "Operation Cold Trail" not in [s.quote for s in statements]


def test_a_quotation_that_names_nobody_goes_to_the_speaker_named_just_before_it() -> None:
    text = (
        "Deputy shoots man in Brookfield\n\n"
        "\u201cWe pray for our deputy,\u201d Sheriff Dana Holt said in a statement. "
        "\u201cHe followed his training and protected the public.\u201d "
        "Owen Stray, 52, died at the scene.\n\n"
    )
    listed = reading(
        speakers=["Owen Stray", "Dana Holt"], speaker_sents=[3, 3], name="Owen Stray", name_sent=4
    )
    statements = {s.quote: s.speaker for s in cite(listed, text).statements}
    assert statements["He followed his training and protected the public."] == "Dana Holt"
