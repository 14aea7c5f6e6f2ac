"""Identity: one authority gives every speaker and outlet its id, says what kind of voice
it is, and which independent source it counts under. ICE is part of DHS, so ICE and DHS
saying one thing are one source; a reviewer still sees who spoke: "ICE (DHS)"."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.kinds.identity import (
    SPEAKERS_ENV,
    SpeakerTable,
    attribution_kind,
    canonical_speaker,
    display_speaker,
    fallback_speaker,
    identify,
    independent_source,
    load_speaker_table,
)
from schemas.speakers import ATTRIBUTION_KINDS

OUTLET = "Harlow Herald"


@pytest.fixture(autouse=True)
def _no_user_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SPEAKERS_ENV, raising=False)


# --------------------------------------------------------------------------
# Each kind of attribution: its id, kind, the source it counts under, and what a reviewer sees
# --------------------------------------------------------------------------

PLANTED = [
    # attribution, id, kind, independent source, display
    ("DHS", "agency:dhs", "agency", "agency:dhs", "DHS"),
    ("ICE", "agency:ice", "agency", "agency:dhs", "ICE (DHS)"),
    ("Enforcement and Removal Operations", "agency:ero", "agency", "agency:dhs", "ERO (DHS)"),
    ("Homeland Security Investigations", "agency:hsi", "agency", "agency:dhs", "HSI (DHS)"),
    ("CBP", "agency:cbp", "agency", "agency:dhs", "CBP (DHS)"),
    ("U.S. Border Patrol", "agency:border-patrol", "agency", "agency:dhs", "Border Patrol (DHS)"),
    ("USCIS", "agency:uscis", "agency", "agency:dhs", "USCIS (DHS)"),
    ("the Secret Service", "agency:secret-service", "agency", "agency:dhs", "Secret Service (DHS)"),
    ("Justice Department", "agency:doj", "agency", "agency:doj", "DOJ"),
    ("FBI", "agency:fbi", "agency", "agency:doj", "FBI (DOJ)"),
    ("DEA", "agency:dea", "agency", "agency:doj", "DEA (DOJ)"),
    ("ATF", "agency:atf", "agency", "agency:doj", "ATF (DOJ)"),
    ("U.S. Marshals", "agency:usms", "agency", "agency:doj", "U.S. Marshals (DOJ)"),
    ("Tempe Police Department", "agency:tempe-police", "agency", "gov:tempe", "Tempe police (Tempe)"),
    (
        "Harlow County Sheriff's Office",
        "agency:harlow-county-sheriff",
        "agency",
        "gov:harlow-county",
        "Harlow County sheriff (Harlow County)",
    ),
    ("outlet", "outlet:harlow-herald", "outlet", "outlet:harlow-herald", "Harlow Herald"),
    ("CBS News reported", "outlet:cbs-news", "relayed", "outlet:cbs-news", "CBS News"),
    ("according to NBC Chicago", "outlet:nbc-chicago", "relayed", "outlet:nbc-chicago", "NBC Chicago"),
    ("DHS spokesperson Carla Whitfield", "agency:dhs", "official", "agency:dhs", "DHS"),
    ("Tempe police Sgt. Ana Ruiz", "agency:tempe-police", "official", "gov:tempe", "Tempe police (Tempe)"),
    (
        "a senior ICE source",
        "anonymous:agency:ice",
        "anonymous_official",
        "agency:dhs",
        "anonymous ICE source (DHS)",
    ),
    (
        "a DHS official who spoke on condition of anonymity",
        "anonymous:agency:dhs",
        "anonymous_official",
        "agency:dhs",
        "anonymous DHS source",
    ),
    (
        "officials",
        "anonymous:officials@harlow-herald",
        "anonymous_official",
        "anonymous:officials@harlow-herald",
        "unnamed officials (in Harlow Herald)",
    ),
    (
        "anonymous sources",
        "anonymous:sources@harlow-herald",
        "anonymous",
        "anonymous:sources@harlow-herald",
        "anonymous sources (in Harlow Herald)",
    ),
    (
        "a witness",
        "witness:unnamed@harlow-herald",
        "witness",
        "witness:unnamed@harlow-herald",
        "unnamed witness (in Harlow Herald)",
    ),
    (
        "witness Dolores Ybarra",
        "witness:dolores-ybarra",
        "witness",
        "person:dolores-ybarra",
        "Dolores Ybarra (witness)",
    ),
    (
        "identified by relatives",
        "family:unnamed@harlow-herald",
        "family",
        "family:unnamed@harlow-herald",
        "unnamed relative (in Harlow Herald)",
    ),
    ("his mother, Elena Reyes", "family:elena-reyes", "family", "person:elena-reyes", "Elena Reyes (family)"),
    (
        "\u2014 Jane Roe (@janeroe) September 13, 2025",
        "social:@janeroe",
        "social_post",
        "social:@janeroe",
        "@janeroe (social post)",
    ),
    ("Ramona Feld", "person:ramona-feld", "person", "person:ramona-feld", "Ramona Feld"),
]


@pytest.mark.parametrize(("attribution", "speaker_id", "kind", "source", "display"), PLANTED)
def test_each_kind_of_attribution_has_an_id_a_kind_a_source_and_a_display(
    attribution: str, speaker_id: str, kind: str, source: str, display: str
) -> None:
    speaker = identify(attribution, outlet=OUTLET)
    assert (speaker.id, speaker.kind, speaker.source) == (speaker_id, kind, source)
    assert independent_source(speaker.id) == source
    assert display_speaker(speaker.id) == display


def test_every_kind_of_attribution_is_planted_above() -> None:
    assert {kind for _, _, kind, _, _ in PLANTED} == set(ATTRIBUTION_KINDS)


# --------------------------------------------------------------------------
# Independent sources
# --------------------------------------------------------------------------


def _sources(*cited: tuple[str, str]) -> set[str]:
    """The independent sources behind (attribution, outlet) citations."""
    return {independent_source(canonical_speaker(a, outlet=o)) for a, o in cited}


def test_one_hierarchy_is_one_source_however_many_outlets_and_components_speak() -> None:
    assert _sources(
        ("DHS", "Mesa Courier"),
        ("ICE spokesperson Rena Hollis", "Valley Ledger"),
        ("a senior ICE source", "Harlow Herald"),
        ("Border Patrol", "KTMP 12"),
        ("according to Homeland Security Investigations", "Channel 9"),
    ) == {"agency:dhs"}


def test_two_departments_are_two_sources() -> None:
    assert _sources(("DHS", "Mesa Courier"), ("FBI", "Mesa Courier")) == {"agency:dhs", "agency:doj"}


def test_a_relayed_report_counts_as_the_outlet_that_made_it_never_as_a_person() -> None:
    relayed = canonical_speaker("CBS News reported", outlet="Harlow Herald")
    own = canonical_speaker("outlet", outlet="CBS News")
    assert relayed == own == "outlet:cbs-news"


@pytest.mark.parametrize(
    ("attribution", "station"),
    [
        ("Mile High 11 reported", "outlet:mile-high-11"),
        ("according to River Valley 7 News", "outlet:river-valley-7-news"),
    ],
)
def test_a_station_branded_by_its_channel_number_is_an_outlet_never_a_person(
    attribution: str, station: str
) -> None:
    assert canonical_speaker(attribution, outlet="Harlow Herald") == station


def test_a_named_witness_is_one_source_whatever_role_an_article_gives_them() -> None:
    assert _sources(
        ("witness Dolores Ybarra", "Mesa Courier"),
        ("Dolores Ybarra", "Valley Ledger"),
    ) == {"person:dolores-ybarra"}


def test_unnamed_sources_are_scoped_to_their_outlet() -> None:
    for unnamed in ["a witness", "anonymous sources", "officials", "relatives"]:
        one = canonical_speaker(unnamed, outlet="Channel 9")
        assert canonical_speaker(unnamed, outlet="Channel 9") == one
        assert canonical_speaker(unnamed, outlet="KTMP 12") != one


def test_without_an_outlet_unnamed_sources_are_scoped_to_the_article() -> None:
    first = canonical_speaker("a witness", outlet=None, article_id="sha256:1")
    assert first == "witness:unnamed@sha256-1"
    assert canonical_speaker("a witness", outlet=None, article_id="sha256:2") != first
    assert canonical_speaker("outlet", outlet=None, article_id="sha256:1") == "outlet:sha256-1"


@pytest.mark.parametrize(
    ("attribution", "source"),
    [
        ("Maricopa sheriff", "gov:maricopa-county"),
        ("Maricopa County Sheriff's Office", "gov:maricopa-county"),
        ("Michigan State Police", "gov:michigan"),
        ("Arizona Department of Public Safety", "gov:arizona"),
        ("City of Tempe", "gov:tempe"),
        ("Tempe PD", "gov:tempe"),
    ],
)
def test_a_local_body_counts_under_its_city_county_or_state(attribution: str, source: str) -> None:
    assert independent_source(canonical_speaker(attribution, outlet=OUTLET)) == source


def test_an_unknown_agency_is_its_own_source() -> None:
    assert independent_source("agency:harlow-port-authority") == "agency:harlow-port-authority"
    assert display_speaker("agency:harlow-port-authority") == "Harlow Port Authority"


# --------------------------------------------------------------------------
# The user's table
# --------------------------------------------------------------------------


def _user_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "my-speakers.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv(SPEAKERS_ENV, str(path))
    return path


def test_an_agency_a_user_puts_under_dhs_counts_under_dhs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _user_table(
        tmp_path,
        monkeypatch,
        "agency:harlow-field-office:\n"
        "  name: Harlow Field Office\n"
        "  aliases: [ICE Harlow Field Office, Harlow Field Office]\n"
        "  part_of: agency:ice\n",
    )
    speaker = identify("the ICE Harlow Field Office", outlet=OUTLET)
    assert (speaker.id, speaker.source) == ("agency:harlow-field-office", "agency:dhs")
    assert display_speaker(speaker.id) == "Harlow Field Office (DHS)"


def test_an_agency_a_user_lists_without_part_of_is_its_own_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _user_table(tmp_path, monkeypatch, "agency:harlow-water:\n  aliases: [Harlow Water Authority]\n")
    assert identify("Harlow Water Authority", outlet=OUTLET).source == "agency:harlow-water"


def test_a_user_can_make_a_component_a_source_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _user_table(tmp_path, monkeypatch, "agency:border-patrol:\n  part_of: null\n")
    assert independent_source("agency:border-patrol") == "agency:border-patrol"
    assert independent_source("agency:cbp") == "agency:dhs"


def test_a_user_can_put_a_city_police_department_under_another_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _user_table(tmp_path, monkeypatch, "agency:tempe-police:\n  part_of: gov:maricopa-county\n")
    assert independent_source(canonical_speaker("Tempe police", outlet=OUTLET)) == "gov:maricopa-county"


@pytest.mark.parametrize(
    ("content", "cycle"),
    [
        ("agency:dhs:\n  part_of: agency:ice\n", "agency:dhs -> agency:ice -> agency:dhs"),
        ("agency:a:\n  part_of: agency:a\n", "agency:a -> agency:a"),
        (
            "agency:a: {part_of: agency:b}\nagency:b: {part_of: agency:c}\nagency:c: {part_of: agency:a}\n",
            "agency:a -> agency:b -> agency:c -> agency:a",
        ),
        ("gov:tempe:\n  part_of: agency:tempe-police\n", "gov:tempe -> agency:tempe-police -> gov:tempe"),
    ],
)
def test_a_cycle_in_the_users_part_of_table_is_refused_naming_its_ids(
    tmp_path: Path, content: str, cycle: str
) -> None:
    path = tmp_path / "loops.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="loops.yaml") as refused:
        load_speaker_table([path])
    assert cycle in str(refused.value)


def test_the_source_of_a_looping_chain_is_found_without_looping() -> None:
    # A table filled by hand skips the cycle check; walking it must still end.
    table = SpeakerTable(parents={"agency:a": "agency:b", "agency:b": "agency:a"})
    assert independent_source("agency:a", table=table) in {"agency:a", "agency:b"}


# --------------------------------------------------------------------------
# One id whichever path computes it
# --------------------------------------------------------------------------

ATTRIBUTIONS = [
    "",
    "outlet",
    "the article",
    "DHS",
    "a DHS spokesperson",
    "DHS spokesperson Carla Whitfield",
    "Carla Whitfield, a DHS spokeswoman",
    "ICE",
    "a senior ICE source",
    "a DHS official who spoke on condition of anonymity",
    "U.S. Border Patrol",
    "Tempe police",
    "Tempe Police Department spokesperson Sgt. Ana Ruiz",
    "Harlow County Sheriff's Office",
    "officials",
    "federal officials",
    "the department",
    "a witness",
    "witnesses",
    "witness Dolores Ybarra",
    "Dolores Ybarra",
    "anonymous sources",
    "sources familiar with the case",
    "relatives",
    "family",
    "his mother",
    "Lucia Quintero, the driver's sister",
    "CBS News reported",
    "NBC Chicago reported",
    "according to the AP",
    "U.S. News Daily",
    "Harlow Herald",
    "\u2014 Jane Roe (@janeroe) September 13, 2025",
    "the driver",
    "unnamed speaker",
]
OUTLETS = [None, "Harlow Herald", "U.S. News Daily", "CBS News", "Channel 9 Desert News", "KTMP 12"]


@given(
    st.sampled_from(ATTRIBUTIONS),
    st.sampled_from(OUTLETS),
    st.sampled_from(["sha256:1", "sha256:2"]),
)
def test_grounding_and_the_fallback_give_one_attribution_the_same_id(
    attribution: str, outlet: str | None, article_id: str
) -> None:
    grounded = canonical_speaker(attribution, outlet=outlet, article_id=article_id)
    assert fallback_speaker(attribution, outlet, article_id) == grounded
    if outlet is not None:
        # With the outlet known, the article id plays no part.
        assert canonical_speaker(attribution, outlet=outlet) == grounded


@given(st.sampled_from(ATTRIBUTIONS) | st.text(max_size=60), st.sampled_from(OUTLETS))
def test_the_kind_read_off_an_id_agrees_with_the_kind_identified(
    attribution: str, outlet: str | None
) -> None:
    speaker = identify(attribution, outlet=outlet, article_id="sha256:1")
    # A named official speaks under the agency's id, so the id alone says "agency".
    expected = "agency" if speaker.kind == "official" else speaker.kind
    assert attribution_kind(speaker.id, outlet=outlet, article_id="sha256:1") == expected
    assert independent_source(speaker.source) == speaker.source
    assert display_speaker(speaker.id)


@pytest.mark.parametrize(
    ("attribution", "outlet", "kind"),
    [
        ("CBS News reported", "Harlow Herald", "relayed"),
        ("CBS News reported", "CBS News", "outlet"),
        ("Harlow Herald", "Harlow Herald", "outlet"),
    ],
)
def test_an_outlet_is_relayed_unless_it_is_the_articles_own(attribution: str, outlet: str, kind: str) -> None:
    speaker_id = canonical_speaker(attribution, outlet=outlet)
    assert identify(attribution, outlet=outlet).kind == kind
    assert attribution_kind(speaker_id, outlet=outlet) == kind
