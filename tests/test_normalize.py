"""Comparison keys: names, dates, places, counts, severity, categories, agencies, speakers.

Each kind's strategy (pipeline.kinds.strategies) does the work; these tests go through the
by-path entry points reconcile uses (``normalize_value``, ``relate``)."""

from __future__ import annotations

from datetime import date

import pytest

from pipeline.kinds.gazetteer import get_gazetteer
from pipeline.kinds.normalize import (
    STRATEGIES,
    CountRange,
    Relation,
    ValueContext,
    agency_key,
    fallback_speaker,
    name_similarity,
    name_tokens,
    normalize_value,
    parse_bool,
    parse_count,
    quotes_match,
    relate,
    resolve_date,
    soundex,
)


def rel(path: str, a: object, b: object, ctx: ValueContext | None = None) -> Relation:
    ctx = ctx or ValueContext()
    return relate(path, normalize_value(path, a, ctx), normalize_value(path, b, ctx))


# --------------------------------------------------------------------------- names


def test_name_tokens_ignore_case_accents_hyphens_and_titles() -> None:
    assert name_tokens("Dr. José QUINTERO-Álvarez Jr.") == ("jose", "quintero", "alvarez")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Rafael Quintero-Alvarez", "Rafael Quintero-Alvares"),  # one-letter spelling variant
        ("Rafael Quintero-Alvarez", "Quintero"),  # last name only
        ("Rafael Quintero-Alvarez", "Rafael Quintero"),  # first surname only
        ("Quintero-Alvarez, Rafael", "Rafael Quintero Alvarez"),  # token order, hyphen
        ("Rafael Quintero-Alvarez", "R. Quintero-Alvarez"),  # initial
        ("Jose Munoz", "José Muñoz"),  # accents
    ],
)
def test_names_of_one_person_match(a: str, b: str) -> None:
    assert name_similarity(a, b) >= 85
    assert rel("subjects[0].name", a, b) in (Relation.VARIANT, Relation.SAME)


@pytest.mark.parametrize(
    ("a", "b"),
    [("Rafael Quintero", "Dolores Ybarra"), ("Quintero", "Lucia Ybarra"), ("Ana Ruiz", "Ana Torres")],
)
def test_names_of_different_people_do_not_match(a: str, b: str) -> None:
    assert name_similarity(a, b) < 85
    assert rel("subjects[0].name", a, b) is Relation.CONTRADICTION


def test_a_name_differing_only_in_case_is_the_same_value() -> None:
    assert rel("subjects[0].name", "Rafael Quintero", "RAFAEL  QUINTERO") is Relation.SAME


def test_a_name_differing_only_in_accents_hyphens_or_titles_is_the_same_value() -> None:
    assert rel("subjects[0].name", "Jos\u00e9 Pe\u00f1a-Whitlock", "Jose Pena Whitlock") is Relation.SAME
    assert rel("subjects[0].name", "Mr. Rafael Quintero", "Rafael Quintero") is Relation.SAME
    assert rel("subjects[0].name", "Rafael Quintero", "Quintero Rafael") is Relation.VARIANT


# --------------------------------------------------------------------------- dates

SATURDAY = date(2026, 3, 14)
FRIDAY = date(2026, 3, 13)
MONDAY = date(2026, 3, 16)


@pytest.mark.parametrize(
    ("phrase", "published", "expected"),
    [
        ("Friday", SATURDAY, FRIDAY),
        ("on Friday morning", SATURDAY, FRIDAY),
        ("early Friday", FRIDAY, FRIDAY),  # same-day story says "Friday" too
        ("last Friday", MONDAY, FRIDAY),
        ("last Friday", FRIDAY, date(2026, 3, 6)),  # never the publication day itself
        ("yesterday", SATURDAY, FRIDAY),
        ("late last night", SATURDAY, FRIDAY),
        ("this morning", FRIDAY, FRIDAY),
        ("two days ago", MONDAY, SATURDAY),
        ("2026-03-13", None, FRIDAY),
        ("March 13", SATURDAY, FRIDAY),
        ("Mar. 13, 2026", None, FRIDAY),
        ("13 March 2026", None, FRIDAY),
        ("3/13/2026", None, FRIDAY),
    ],
)
def test_dates_resolve_to_a_day(phrase: str, published: date | None, expected: date) -> None:
    span = resolve_date(phrase, published)
    assert span is not None
    assert (span.start, span.end, span.precision) == (expected, expected, "day")


def test_a_month_without_year_late_in_the_year_belongs_to_last_year() -> None:
    span = resolve_date("Dec. 30", date(2026, 1, 4))
    assert span is not None and span.start == date(2025, 12, 30)


def test_relative_dates_without_a_publication_date_stay_unresolved() -> None:
    assert resolve_date("Friday", None) is None
    assert resolve_date("yesterday", None) is None


def test_coarse_dates_carry_their_precision() -> None:
    month = resolve_date("March 2026")
    week = resolve_date("last week", MONDAY)
    assert month is not None and (month.start, month.end, month.precision) == (
        date(2026, 3, 1),
        date(2026, 3, 31),
        "month",
    )
    assert week is not None and (week.start, week.end, week.precision) == (
        date(2026, 3, 9),
        date(2026, 3, 15),
        "week",
    )


def test_relative_phrases_with_different_publication_dates_are_variants_of_one_day() -> None:
    a = normalize_value("when.raw_phrase", "Friday morning", ValueContext(published=SATURDAY))
    b = normalize_value("when.raw_phrase", "last Friday", ValueContext(published=MONDAY))
    assert relate("when.raw_phrase", a, b) is Relation.VARIANT


def test_a_day_is_more_specific_than_its_month_and_different_days_contradict() -> None:
    assert rel("when.date", "2026-03-13", "2026-03") is Relation.LEFT_MORE_SPECIFIC
    assert rel("when.date", "2026-03-13", "2026-03-12") is Relation.CONTRADICTION
    assert rel("when.date", "2026-03-13", "Friday", ValueContext(published=SATURDAY)) is Relation.SAME


def test_times_of_day_nest_and_approximate_clock_times_are_variants() -> None:
    assert rel("when.time_of_day", "7:30 a.m.", "morning") is Relation.LEFT_MORE_SPECIFIC
    assert rel("when.time_of_day", "7:30 a.m.", "shortly before 7:45 a.m.") is Relation.VARIANT
    assert rel("when.time_of_day", "7:30 a.m.", "7:30 p.m.") is Relation.CONTRADICTION
    assert rel("when.time_of_day", "2 a.m.", "night") is Relation.LEFT_MORE_SPECIFIC
    assert rel("when.time_of_day", "morning", "evening") is Relation.CONTRADICTION


# --------------------------------------------------------------------------- places


def test_each_kind_reads_only_the_context_it_needs() -> None:
    ctx = ValueContext(published=SATURDAY, state="Arizona", country="US")
    assert STRATEGIES["date"].context(ctx) == ValueContext(published=SATURDAY)
    assert STRATEGIES["date_phrase"].context(ctx) == ValueContext(published=SATURDAY)
    assert STRATEGIES["city"].context(ctx) == ValueContext(state="Arizona", country="US")
    assert STRATEGIES["person"].context(ctx) == ValueContext()


def test_a_suburb_is_more_specific_than_the_metro_core_it_lies_in() -> None:
    assert rel("where.city", "Tempe", "Phoenix") is Relation.LEFT_MORE_SPECIFIC
    assert rel("where.city", "Chicago", "Franklin Park") is Relation.RIGHT_MORE_SPECIFIC


def test_two_cities_of_one_metro_contradict() -> None:
    # Mesa is a big city of its own, not the metro name Tempe is reported under.
    assert rel("where.city", "Tempe", "Mesa") is Relation.CONTRADICTION


def test_same_name_far_away_is_not_a_metro_relation() -> None:
    gazetteer = get_gazetteer()
    portland_me = gazetteer.city("Portland", "ME", "US")
    portland_or = gazetteer.city("Portland", "OR", "US")
    assert portland_me is not None and portland_or is not None
    assert gazetteer.metro_core(portland_me).geonameid == portland_me.geonameid
    tempe_il = ValueContext(state="Illinois")
    assert rel("where.city", "Tempe", "Phoenix", tempe_il) is Relation.CONTRADICTION


def test_metro_phrases_and_aliases_name_the_area_around_a_city() -> None:
    assert rel("where.city", "Phoenix", "Phoenix area") is Relation.LEFT_MORE_SPECIFIC
    assert rel("where.city", "Tempe", "the Valley") is Relation.LEFT_MORE_SPECIFIC
    assert rel("where.city", "Franklin Park", "Chicagoland") is Relation.LEFT_MORE_SPECIFIC
    assert rel("where.city", "Tempe, Ariz.", "Tempe") is Relation.SAME


def test_state_names_and_abbreviations_are_one_value() -> None:
    assert rel("where.state", "Arizona", "Ariz.") is Relation.SAME
    assert rel("where.state", "AZ", "arizona") is Relation.SAME
    assert rel("where.state", "Arizona", "Illinois") is Relation.CONTRADICTION
    assert rel("where.country", "U.S.", "United States") is Relation.SAME


def test_street_abbreviations_do_not_make_a_different_place() -> None:
    assert rel("where.place", "Apache Blvd. & McClintock Dr.", "Apache Boulevard and McClintock Drive") in (
        Relation.SAME,
        Relation.VARIANT,
    )
    assert (
        rel("where.place", "Apache Boulevard", "Apache Boulevard and McClintock Drive")
        is Relation.RIGHT_MORE_SPECIFIC
    )


# --------------------------------------------------------------------------- counts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", CountRange(1, 1)),
        ("one officer", CountRange(1, 1)),
        ("an agent", CountRange(1, 1)),
        ("the agent", CountRange(1, 1)),
        ("One agent fired his weapon", CountRange(1, 1)),
        ("two", CountRange(2, 2)),
        ("2", CountRange(2, 2)),
        ("both officers", CountRange(2, 2)),
        ("agents", CountRange(2, None)),
        ("federal officers", CountRange(2, None)),
        ("several agents", CountRange(2, None)),
        ("plural", CountRange(2, None)),
        ("at least three", CountRange(3, None)),
        ("more than one", CountRange(2, None)),
    ],
)
def test_counts_parse_into_ranges(text: str, expected: CountRange) -> None:
    assert parse_count(text) == expected


def test_unparseable_count_text_is_not_a_count() -> None:
    assert parse_count("unknown") is None


def test_singular_versus_plural_is_a_contradiction_and_a_figure_refines_plural() -> None:
    assert rel("officers.count_fired", "the agent", "agents") is Relation.CONTRADICTION
    assert rel("officers.count_fired", "1", "plural") is Relation.CONTRADICTION
    assert rel("officers.count_fired", "two", "agents") is Relation.LEFT_MORE_SPECIFIC
    assert rel("officers.count_fired", "2", "3") is Relation.CONTRADICTION
    assert rel("officers.count_fired", "one", "1") is Relation.SAME


def test_an_age_in_words_is_the_same_age_as_in_digits() -> None:
    assert rel("subjects[0].age", "thirty-four", "34") is Relation.SAME
    assert rel("subjects[0].age", "a 34-year-old", 34) is Relation.SAME
    assert rel("subjects[0].age", "thirty-four", "43") is Relation.CONTRADICTION


# --------------------------------------------------------------------------- severity, categories, booleans


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("serious injuries", "severe injuries"),
        ("serious injuries", "several injuries"),
        ("several injuries", "multiple injuries"),
        ("serious injuries", "multiple injuries"),
    ],
)
def test_severity_wordings_that_do_not_oppose_are_variants(a: str, b: str) -> None:
    assert rel("officers.injuries", a, b) is Relation.VARIANT


@pytest.mark.parametrize(
    ("path", "a", "b"),
    [
        ("officers.injuries", "minor injuries", "critical injuries"),
        ("officers.injuries", "minor injuries", "serious injuries"),
        ("officers.condition", "stable condition", "critical condition"),
    ],
)
def test_opposed_severities_contradict(path: str, a: str, b: str) -> None:
    assert rel(path, a, b) is Relation.CONTRADICTION


def test_condition_wording_around_the_same_state_is_one_value() -> None:
    assert rel("officers.condition", "stable condition", "in stable condition") is Relation.SAME
    assert rel("officers.condition", "critical but stable", "stable") is Relation.VARIANT


def test_categories_compare_by_class() -> None:
    assert rel("subjects[0].place_of_death", "at the scene", "at the hospital") is Relation.CONTRADICTION
    assert (
        rel("subjects[0].place_of_death", "at a hospital", "at Desert Valley Medical Center") is Relation.SAME
    )
    assert rel("subjects[0].armed_with", "vehicle", "unarmed") is Relation.CONTRADICTION
    assert rel("subjects[0].armed_with", "van", "vehicle") is Relation.SAME
    assert rel("subjects[0].outcome", "died", "killed") is Relation.SAME
    assert rel("subjects[0].nationality", "Mexican", "Mexican national") is Relation.SAME
    assert rel("what.event_type", "shooting", "fatal shooting") is Relation.RIGHT_MORE_SPECIFIC


def test_a_category_is_read_with_the_classes_of_its_own_field() -> None:
    category = STRATEGIES["category"]
    assert category.normalize("van", field="subjects[].armed_with").form == "vehicle"
    assert category.normalize("van", field="what.event_type").form == "van"


def test_booleans_parse_from_words() -> None:
    assert parse_bool("yes") is True
    assert parse_bool("was not wearing a camera") is False
    assert parse_bool(True) is True
    assert parse_bool("unclear") is None


# --------------------------------------------------------------------------- agencies, speakers, quotes


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("U.S. Border Patrol", "Border Patrol"),
        ("Department of Homeland Security", "DHS"),
        ("U.S. Immigration and Customs Enforcement", "ICE"),
        ("Tempe police", "Tempe Police Department"),
        ("Maricopa County Sheriff's Office", "Maricopa County sheriff"),
    ],
)
def test_agency_names_share_a_canonical_key(a: str, b: str) -> None:
    assert agency_key(a) == agency_key(b)


def test_different_agencies_keep_different_keys() -> None:
    assert agency_key("Tempe police") != agency_key("Mesa police")
    assert agency_key("FBI") != agency_key("DHS")


def test_fallback_speakers() -> None:
    assert fallback_speaker("outlet", "Valley Ledger", "sha256:1") == "outlet:valley-ledger"
    assert fallback_speaker("DHS spokesperson Carla Whitfield", None, "sha256:1") == "agency:dhs"
    assert fallback_speaker("Tempe police", None, "sha256:1") == "agency:tempe-police"
    assert fallback_speaker("Dolores Ybarra", "X", "sha256:1") == "person:dolores-ybarra"


def test_unnamed_sources_are_scoped_to_their_outlet() -> None:
    a = fallback_speaker("a witness", "Channel 9", "sha256:1")
    b = fallback_speaker("a witness", "KTMP 12", "sha256:2")
    assert a != b and a.startswith("unnamed:")


def test_quotes_match_up_to_punctuation_and_excerpts() -> None:
    full = "During a targeted vehicle stop, the suspect accelerated toward the agent. The agent fired."
    assert quotes_match(full, full.replace(".", ",").upper())
    assert quotes_match(full, "the suspect accelerated toward the agent")
    assert not quotes_match(full, "He was on his way to work")


@pytest.mark.parametrize(
    ("token", "code"),
    [("robert", "r163"), ("rupert", "r163"), ("ashcraft", "a261"), ("tymczak", "t522"), ("pfister", "p236")],
)
def test_soundex_follows_the_standard_rules(token: str, code: str) -> None:
    assert soundex(token) == code


def test_soundex_puts_one_letter_surname_variants_in_one_block() -> None:
    assert soundex("alvarez") == soundex("alvares")
    assert soundex("ruiz") == soundex("ruis")
    assert soundex("quintero") != soundex("ybarra")


def test_names_run_together_by_a_lost_separator_still_match() -> None:
    assert name_similarity("RafaelQuintero-Alvarez", "Rafael Quintero-Alvarez") >= 85


def test_only_comparable_namesakes_make_a_city_name_ambiguous() -> None:
    gazetteer = get_gazetteer()
    assert gazetteer.is_ambiguous("Aurora")
    assert not gazetteer.is_ambiguous("Tempe")
    assert not gazetteer.is_ambiguous("Aurora", "CO", "US")
