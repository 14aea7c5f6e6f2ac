"""Attribution: free-text attributions, and the sentences they are read off, map to
canonical speaker ids, so that one agency's statement repeated by several outlets
counts as one voice. (What each id counts under: tests/test_identity.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.evidence.attribute import (
    SPEAKERS_ENV,
    canonical_speaker,
    default_table,
    identify,
    load_speaker_table,
)
from pipeline.evidence.locate import Sentence, attribution_for, split_sentences

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
        ("Border Patrol", "agency:border-patrol"),
        ("U.S. Border Patrol", "agency:border-patrol"),
        ("USBP", "agency:border-patrol"),
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
        ("Harlow sheriff's deputies", "agency:harlow-county-sheriff"),
        ("Arizona Department of Public Safety", "agency:arizona-dps"),
        ("City of Tempe", "gov:tempe"),
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
        ("a witness", "witness:unnamed@harlow-herald"),
        ("Jos\u00e9 Pe\u00f1a, an eyewitness", "witness:jose-pena"),
    ],
)
def test_a_witness_is_their_own_speaker(attribution: str, expected: str) -> None:
    assert speaker(attribution) == expected


def test_a_witness_who_mentions_an_agency_is_still_the_witness() -> None:
    assert speaker("witness Dolores Ybarra, who watched Border Patrol agents") == "witness:dolores-ybarra"


def test_a_named_person_without_an_agency_is_a_person() -> None:
    assert speaker("Ramona Feld, an immigration lawyer") == "person:ramona-feld"


@pytest.mark.parametrize(
    ("attribution", "expected"),
    [
        ("Lucia Quintero, the driver's sister", "family:lucia-quintero"),
        ("his mother", "family:unnamed@harlow-herald"),
        ("relatives", "family:unnamed@harlow-herald"),
        ("family", "family:unnamed@harlow-herald"),
        ("the victim's cousin", "family:unnamed@harlow-herald"),
        ("Aldo Brenn's sister", "family:unnamed@harlow-herald"),
    ],
)
def test_relatives_are_family_and_a_possessor_is_not_their_name(attribution: str, expected: str) -> None:
    assert speaker(attribution) == expected


def test_unnamed_authorities_are_unnamed_officials_of_the_outlet() -> None:
    assert speaker("officials") == "anonymous:officials@harlow-herald"
    assert speaker("authorities") == "anonymous:officials@harlow-herald"
    assert speaker("officials", outlet="Mesa Courier") == "anonymous:officials@mesa-courier"


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
    table.write_text("agency:ice-ero:\n  aliases: [ERO, ICE ERO]\n", encoding="utf-8")
    monkeypatch.setenv(SPEAKERS_ENV, str(table))
    assert speaker("ICE ERO") == "agency:ice-ero"
    assert speaker("ICE") == "agency:ice"


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
    [
        "- just\n- a list\n",
        "dhs:\n  aliases: [DHS]\n",
        "agency:x:\n  aliases: DHS\n",
        "agency:x:\n  partof: agency:dhs\n",
        "agency:x:\n  part_of: dhs\n",
        "agency:x:\n  name: [X]\n",
    ],
)
def test_a_malformed_user_table_is_rejected_with_its_path(tmp_path: Path, content: str) -> None:
    table = tmp_path / "bad.yaml"
    table.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match="bad.yaml"):
        load_speaker_table([table])


@pytest.mark.parametrize(
    "attribution", ["the department", "a spokesperson", "the statement", "federal officials", "Police"]
)
def test_an_unnamed_agency_voice_is_unnamed_officials_rather_than_a_person(attribution: str) -> None:
    assert speaker(attribution) == "anonymous:officials@harlow-herald"


@pytest.mark.parametrize(
    ("attribution", "expected"),
    [
        ("sources familiar with the case", "anonymous:sources@harlow-herald"),
        ("anonymous sources", "anonymous:sources@harlow-herald"),
        ("people familiar with the matter", "anonymous:sources@harlow-herald"),
        ("a federal source", "anonymous:officials@harlow-herald"),
        ("an anonymous official", "anonymous:officials@harlow-herald"),
        ("a senior ICE source", "anonymous:agency:ice"),
        ("a DHS official who spoke on condition of anonymity", "anonymous:agency:dhs"),
        ("a Tempe police officer who was not authorized to speak", "anonymous:agency:tempe-police"),
    ],
)
def test_anonymous_sources_belong_to_their_agency_or_else_to_the_outlet(
    attribution: str, expected: str
) -> None:
    assert speaker(attribution) == expected


def test_an_unnamed_person_is_described_without_articles_and_scoped_to_the_outlet() -> None:
    assert speaker("the driver") == "person:driver@harlow-herald"


@pytest.mark.parametrize(
    ("attribution", "expected"),
    [
        ("CBS News reported", "outlet:cbs-news"),
        ("CBS News", "outlet:cbs-news"),
        ("according to NBC Chicago", "outlet:nbc-chicago"),
        ("a report by the AP", "outlet:associated-press"),
        ("The Associated Press", "outlet:associated-press"),
        ("a Reuters report", "outlet:reuters"),
        ("The Arizona Republic reported", "outlet:arizona-republic"),
        ("U.S. News Daily", "outlet:us-news-daily"),
        ("Fox 10 Phoenix", "outlet:fox-10-phoenix"),
        ("KTAR News reported", "outlet:ktar-news"),
    ],
)
def test_a_relayed_report_is_the_outlet_that_reported_it(attribution: str, expected: str) -> None:
    relayed = identify(attribution, outlet=OUTLET)
    assert (relayed.id, relayed.kind) == (expected, "relayed")


@pytest.mark.parametrize(
    ("attribution", "expected"),
    [
        ("Maria Lopez reported", "person:maria-lopez"),
        ("White House Press Secretary Jane Roe", "agency:white-house"),
        ("DHS told CBS News", "agency:dhs"),
    ],
)
def test_only_a_news_outlet_is_read_as_a_relayed_report(attribution: str, expected: str) -> None:
    assert speaker(attribution) == expected


def test_the_articles_own_outlet_by_any_of_its_names_is_its_own_voice() -> None:
    own = identify("according to the AP", outlet="The Associated Press")
    assert (own.id, own.kind) == ("outlet:associated-press", "outlet")


@pytest.mark.parametrize(
    "attribution", ["\u2014 Jane Roe (@janeroe) September 13, 2025", "Jane Roe (@JaneRoe)", "@janeroe"]
)
def test_an_embedded_post_is_its_account(attribution: str) -> None:
    assert speaker(attribution) == "social:@janeroe"


def test_an_agencys_own_account_is_the_agency() -> None:
    assert speaker("\u2014 DHS (@DHSgov) September 13, 2025") == "agency:dhs"


# --------------------------------------------------------------------------
# Read off a sentence, then identified
# --------------------------------------------------------------------------


def _sentence(text: str) -> Sentence:
    return Sentence(number=1, start=0, end=len(text), text=text)


@pytest.mark.parametrize(
    ("sentence", "phrase", "expected"),
    [
        ("CBS News reported that the agent fired twice.", "CBS News", "outlet:cbs-news"),
        ("The agent fired twice, NBC Chicago reported.", "NBC Chicago", "outlet:nbc-chicago"),
        ("According to a report by CBS News, the van was stolen.", "CBS News", "outlet:cbs-news"),
        ("The stop was first reported by KTAR News on Friday.", "KTAR News", "outlet:ktar-news"),
        (
            "A DHS official, who spoke on condition of anonymity, said the agent fired twice.",
            "A DHS official who spoke on condition of anonymity",
            "anonymous:agency:dhs",
        ),
        (
            "The agent fired twice, according to a senior ICE official who was not authorized to speak.",
            "a senior ICE official who was not authorized to speak",
            "anonymous:agency:ice",
        ),
        ("The agent fired twice, a senior ICE source said.", "a senior ICE source", "anonymous:agency:ice"),
        ("His mother said he was unarmed.", "family", "family:unnamed@harlow-herald"),
        ('"He was gentle," said his sister.', "family", "family:unnamed@harlow-herald"),
        (
            "Her son, Mateo Ruiz, said the car never moved.",
            "Her son, Mateo Ruiz",
            "family:mateo-ruiz",
        ),
        ("The woman was identified by relatives as Ines Marr.", "family", "family:unnamed@harlow-herald"),
        (
            "\u2014 Jane Roe (@janeroe) September 13, 2025",
            "Jane Roe (@janeroe)",
            "social:@janeroe",
        ),
    ],
)
def test_a_sentence_gives_a_phrase_the_canonicaliser_maps_to_the_right_speaker(
    sentence: str, phrase: str, expected: str
) -> None:
    said = attribution_for(_sentence(sentence))
    assert said == phrase
    assert speaker(said) == expected


def test_an_embedded_posts_body_is_the_posts_and_the_paragraph_before_it_is_not() -> None:
    text = (
        "Agents arrived at noon.\n\n"
        "Masked agents grabbed my neighbor. Nobody showed a warrant.\n"
        "\u2014 Jane Roe (@janeroe) September 13, 2025\n\n"
        "The agency did not comment."
    )
    sentences = split_sentences(text)
    said = [attribution_for(s, following=sentences[i + 1 :], text=text) for i, s in enumerate(sentences)]
    assert said == ["outlet", "Jane Roe (@janeroe)", "Jane Roe (@janeroe)", "Jane Roe (@janeroe)", "outlet"]


def test_without_the_article_a_posts_body_is_the_outlets() -> None:
    sentences = split_sentences("Nobody showed a warrant.\n\u2014 Jane Roe (@janeroe) September 13, 2025")
    assert attribution_for(sentences[0], following=sentences[1:]) == "outlet"
