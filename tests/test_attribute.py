"""Attribution: free-text attributions map to canonical speaker ids, so that one
agency's statement repeated by several outlets counts as one voice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.evidence.attribute import SPEAKERS_ENV, canonical_speaker, default_table, load_speaker_table

OUTLET = "Harlow Herald"


def speaker(attribution: str, outlet: str | None = OUTLET) -> str:
    return canonical_speaker(attribution, outlet=outlet)


@pytest.fixture(autouse=True)
def _no_user_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SPEAKERS_ENV, raising=False)


@pytest.mark.parametrize(
    ("attribution", "expected"),
    [
        ("DHS", "agency:dhs"),
        ("Department of Homeland Security", "agency:dhs"),
        ("the U.S. Department of Homeland Security", "agency:dhs"),
        ("Homeland Security", "agency:dhs"),
        ("CBP", "agency:cbp"),
        ("U.S. Customs and Border Protection", "agency:cbp"),
        ("Border Patrol", "agency:cbp"),
        ("U.S. Border Patrol", "agency:cbp"),
        ("ICE", "agency:ice"),
        ("Immigration and Customs Enforcement", "agency:ice"),
        ("FBI", "agency:fbi"),
        ("Federal Bureau of Investigation", "agency:fbi"),
    ],
)
def test_an_agency_acronym_and_its_full_name_map_to_one_id(attribution: str, expected: str) -> None:
    assert speaker(attribution) == expected


@pytest.mark.parametrize(
    ("attribution", "expected"),
    [
        ("Tempe Police Department", "agency:tempe-police"),
        ("Tempe police", "agency:tempe-police"),
        ("Tempe PD", "agency:tempe-police"),
        ("Tempe police spokesperson Sgt. Ana Ruiz", "agency:tempe-police"),
        ("Harlow County Sheriff's Office", "agency:harlow-county-sheriff"),
        ("the Harlow County sheriff's office", "agency:harlow-county-sheriff"),
    ],
)
def test_local_police_and_sheriff_departments_are_named_by_place(attribution: str, expected: str) -> None:
    assert speaker(attribution) == expected


@pytest.mark.parametrize(
    "attribution",
    [
        "DHS spokesperson Carla Whitfield",
        "Carla Whitfield, a DHS spokeswoman",
        "a Homeland Security official",
    ],
)
def test_a_spokesperson_named_with_their_agency_speaks_for_the_agency(attribution: str) -> None:
    assert speaker(attribution) == "agency:dhs"


@pytest.mark.parametrize("attribution", ["outlet", "the article", "reporter", "", "  ", "Harlow Herald"])
def test_the_articles_own_voice_is_the_outlet(attribution: str) -> None:
    assert speaker(attribution) == "outlet:harlow-herald"


def test_outlet_voice_without_a_known_outlet_is_outlet_unknown() -> None:
    assert speaker("outlet", outlet=None) == "outlet:unknown"


@pytest.mark.parametrize(
    ("attribution", "expected"),
    [
        ("witness Dolores Ybarra", "witness:dolores-ybarra"),
        ("Dolores Ybarra, a witness", "witness:dolores-ybarra"),
        ("Dolores Ybarra, who lives nearby and is a neighbor", "witness:dolores-ybarra"),
        ("a witness", "witness:unnamed"),
        ("Jos\u00e9 Pe\u00f1a, an eyewitness", "witness:jose-pena"),
    ],
)
def test_a_witness_is_their_own_speaker(attribution: str, expected: str) -> None:
    assert speaker(attribution) == expected


def test_a_witness_who_mentions_an_agency_is_still_the_witness() -> None:
    assert speaker("witness Dolores Ybarra, who watched Border Patrol agents") == "witness:dolores-ybarra"


def test_a_named_person_without_an_agency_is_a_person() -> None:
    assert speaker("Lucia Quintero, the driver's sister") == "person:lucia-quintero"


def test_unnamed_authorities_are_an_unspecified_agency() -> None:
    assert speaker("officials") == "agency:unspecified"
    assert speaker("authorities") == "agency:unspecified"


def test_a_spokesperson_listed_only_in_a_user_table_maps_to_their_agency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert speaker("Carla Whitfield") == "person:carla-whitfield"
    table = tmp_path / "speakers.yaml"
    table.write_text(
        "agency:dhs:\n"
        "  members: [Carla Whitfield]\n"
        "agency:harlow-water:\n"
        "  aliases: [Harlow Water Authority, HWA]\n",
        encoding="utf-8",
    )
    monkeypatch.setenv(SPEAKERS_ENV, str(table))
    assert speaker("Carla Whitfield") == "agency:dhs"
    assert speaker("carla whitfield said") == "agency:dhs"
    assert speaker("HWA") == "agency:harlow-water"
    assert speaker("a Harlow Water Authority engineer") == "agency:harlow-water"
    # The curated entries are still there.
    assert speaker("CBP") == "agency:cbp"


def test_a_user_table_can_move_an_alias_to_another_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = tmp_path / "speakers.yaml"
    table.write_text("agency:usbp:\n  aliases: [Border Patrol, U.S. Border Patrol]\n", encoding="utf-8")
    monkeypatch.setenv(SPEAKERS_ENV, str(table))
    assert speaker("U.S. Border Patrol") == "agency:usbp"
    assert speaker("CBP") == "agency:cbp"


def test_an_edited_user_table_is_reread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = tmp_path / "speakers.yaml"
    table.write_text("agency:one:\n  aliases: [Harlow Port Authority]\n", encoding="utf-8")
    monkeypatch.setenv(SPEAKERS_ENV, str(table))
    assert speaker("Harlow Port Authority") == "agency:one"
    table.write_text("agency:two:\n  aliases: [Harlow Port Authority]\n", encoding="utf-8")
    os.utime(table, (1, 1))  # a distinct mtime even on coarse-clock file systems
    assert speaker("Harlow Port Authority") == "agency:two"


def test_a_missing_user_table_is_an_error_not_silently_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SPEAKERS_ENV, str(tmp_path / "nope.yaml"))
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        default_table()


@pytest.mark.parametrize(
    "content",
    ["- just\n- a list\n", "dhs:\n  aliases: [DHS]\n", "agency:x:\n  aliases: DHS\n"],
)
def test_a_malformed_user_table_is_rejected_with_its_path(tmp_path: Path, content: str) -> None:
    table = tmp_path / "bad.yaml"
    table.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="bad.yaml"):
        load_speaker_table([table])


@pytest.mark.parametrize(
    "attribution", ["the department", "a spokesperson", "the statement", "federal officials"]
)
def test_an_unnamed_agency_voice_is_unspecified_rather_than_a_person(attribution: str) -> None:
    assert speaker(attribution) == "agency:unspecified"


@pytest.mark.parametrize(
    "attribution", ["a federal source", "sources familiar with the case", "an anonymous official"]
)
def test_unnamed_sources_share_one_anonymous_id(attribution: str) -> None:
    assert speaker(attribution) == "person:anonymous-source"


def test_an_unnamed_person_is_described_without_articles() -> None:
    assert speaker("the victim's cousin") == "person:victim-s-cousin"
