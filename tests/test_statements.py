"""Statements: quotations matched across articles, and how the articles quote them.

A quotation from one speaker that lies inside, or shares a run of six words
with, another quotation from that speaker is the same statement, fully or
partly quoted; any other quotation is another statement. A statement's
verdict says how the articles quote it (``same``, ``partial``, or
``single-source`` for one article) and is never a contradiction. The merged
record holds the fullest quotation of each statement, and no words any
article quotes are dropped from it. All statements below are invented.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.kinds.normalize import quote_key
from pipeline.reconcile import merge
from pipeline.reconcile.cluster import Cluster
from pipeline.reconcile.merge import reconcile_cluster
from schemas.incident import FLAGGED_VERDICTS, FieldVerdict, Incident
from schemas.record import IncidentRecord

# The statement a DHS assistant secretary issued, sentence by sentence.
OPENING = (
    "Our officer was completing a lawful arrest when the driver ignored repeated orders to leave the car."
)
MIDDLE = "The driver then reversed into two agents and pinned one of them against a patrol vehicle."
CLOSING = "Fearing for his partner's life, the officer fired, and we are cooperating with investigators."
FULL = f"{OPENING} {MIDDLE} {CLOSING}"
LAST_CLAUSE = "we are cooperating with investigators"  # five words: shorter than a bridging run

# Another statement the same office gave the same day, about something else.
FOOTAGE = (
    "Footage from a patrol vehicle camera is under review, and the agents involved have been placed on "
    "administrative leave."
)

SECRETARY = {
    "speaker": "Assistant Secretary Dana Whitcombe",
    "affiliation": "Department of Homeland Security",
}


def said(quote: str, who: dict[str, Any] = SECRETARY, **extra: Any) -> dict[str, Any]:
    return {**who, "quote": quote, **extra}


def article(number: int, *statements: dict[str, Any]) -> IncidentRecord:
    """One outlet's record of an invented shooting in Tempe, with the statements it quotes."""
    article_id = f"sha256:{number:04d}"

    def cited(value: str) -> dict[str, str]:
        return {"value": value, "quote": f"it was {value}", "attribution": "outlet"}

    return IncidentRecord.model_validate(
        {
            "article_id": article_id,
            "provenance": {"article_id": article_id, "outlet": f"Outlet {number}", "published": "2026-03-14"},
            "when": {"date": cited("2026-03-13")},
            "where": {"city": cited("Tempe"), "state": cited("Arizona")},
            "subjects": [{"name": cited("Rafael Quintero-Alvarez")}],
            "statements": list(statements),
        }
    )


def incident(records: list[IncidentRecord] | tuple[IncidentRecord, ...]) -> Incident:
    """The records as one incident, in the order given (no sorting, no clustering)."""
    return reconcile_cluster(Cluster(id="inc-statements", records=tuple(records), joins=()))


def statement_fields(result: Incident, part: str = "quote") -> list[FieldVerdict]:
    return [f for f in result.fields if f.path.startswith("statements[") and f.path.endswith(f".{part}")]


def cited_quotes(field: FieldVerdict) -> set[tuple[str, str]]:
    return {(c["article_id"], c["quote"]) for v in field.values for c in v.citations}


def words(text: str) -> list[str]:
    return quote_key(text).split()


def in_order(part: str, whole: str) -> bool:
    """Every word of ``part`` appears in ``whole``, in the same order."""
    rest = words(whole)
    for word in words(part):
        if word not in rest:
            return False
        rest = rest[rest.index(word) + 1 :]
    return True


def summary(result: Incident) -> str:
    """What the statements came to, independent of citation order."""
    fields = [
        {
            "path": f.path,
            "verdict": f.verdict,
            "consensus": f.consensus,
            "n_articles": f.n_articles,
            "n_sources": f.n_independent_sources,
            "values": sorted((v.form, sorted(v.article_ids)) for v in f.values),
        }
        for f in result.fields
        if f.path.startswith("statements[")
    ]
    merged = [(s.speaker_id, s.quote) for s in result.merged.statements]
    return json.dumps({"fields": fields, "merged": merged}, sort_keys=True)


# --------------------------------------------------------------------------- the planted case


def planted_articles() -> list[IncidentRecord]:
    """Issue #12: five articles quote one statement, each in its own way."""
    return [
        article(1, said(f"\u201c{FULL}\u201d")),  # the whole statement, in curly quote marks
        article(2, said(f"{OPENING} {MIDDLE}", {"speaker": "Dana Whitcombe", "affiliation": "DHS"})),
        article(3, said(LAST_CLAUSE), said(MIDDLE)),  # a clause, and the middle sentence apart
        article(4, said(MIDDLE.upper())),  # the middle sentence alone, as a shouted headline
        article(5, said(MIDDLE.rstrip("."))),  # again alone, without its full stop
    ]


def test_the_planted_statement_is_one_statement_partly_quoted_and_never_a_contradiction() -> None:
    result = incident(planted_articles())
    (quote,) = statement_fields(result)
    (speaker,) = statement_fields(result, "speaker")
    assert quote.verdict == "partial"
    assert quote.consensus == f"\u201c{FULL}\u201d"
    assert quote.rule == "fullest quotation"
    assert quote.note == "4 of 5 articles quote only part of it"
    assert speaker.verdict == "same" and speaker.consensus is not None
    assert all(f.verdict != "contradiction" for f in result.fields)


def test_every_article_that_quotes_any_part_is_cited_and_the_speaker_counts_once() -> None:
    records = planted_articles()
    (quote,) = statement_fields(incident(records))
    assert cited_quotes(quote) == {(r.article_id, s.quote) for r in records for s in r.statements}
    assert quote.n_articles == 5
    # Five outlets relaying one office are one independent source.
    assert quote.n_independent_sources == 1
    assert {s for v in quote.values for s in v.speakers} == {"agency:dhs"}


def test_the_middle_sentence_is_one_value_carried_by_the_three_articles_that_quote_it_alone() -> None:
    (quote,) = statement_fields(incident(planted_articles()))
    middle = next(v for v in quote.values if v.form == quote_key(MIDDLE))
    assert middle.article_ids == ["sha256:0003", "sha256:0004", "sha256:0005"]
    assert middle.n_independent_sources == 1


def test_the_merged_record_keeps_the_whole_statement_with_its_speaker() -> None:
    (statement,) = incident(planted_articles()).merged.statements
    assert statement.quote == f"\u201c{FULL}\u201d"
    assert statement.speaker_id == "agency:dhs"
    assert statement.speaker == "Assistant Secretary Dana Whitcombe"


def test_a_partly_quoted_statement_is_flagged_for_an_editor_but_is_no_contradiction() -> None:
    # An excerpt can change what a statement seems to say, so an editor sees it.
    result = merge.reconcile(planted_articles())
    assert len(result.incidents) == 1
    flagged = {c.path: c.verdict for c in result.conflicts if c.path.startswith("statements[")}
    assert flagged == {"statements[0].quote": "partial"}
    assert not [c for c in result.conflicts if c.verdict == "contradiction"]


def test_the_planted_case_does_not_depend_on_the_order_of_the_articles() -> None:
    records = planted_articles()
    expected = summary(incident(records))
    for order in itertools.permutations(records):
        assert summary(incident(order)) == expected


# --------------------------------------------------------------------------- what is one statement


def test_articles_quoting_the_same_words_agree_on_the_statement() -> None:
    result = incident([article(1, said(FULL)), article(2, said(f"\u201c{FULL.lower()}\u201d"))])
    (quote,) = statement_fields(result)
    assert (quote.verdict, quote.rule, quote.n_articles) == ("same", "all articles quote the same words", 2)
    assert "same" not in FLAGGED_VERDICTS


def test_an_article_repeating_a_clause_of_the_whole_statement_still_quotes_the_same_words() -> None:
    # A lede quoting a clause, with the whole statement further down.
    result = incident([article(1, said(LAST_CLAUSE), said(FULL)), article(2, said(FULL))])
    (quote,) = statement_fields(result)
    assert (quote.verdict, quote.consensus, quote.note) == ("same", FULL, None)


def test_a_statement_one_article_quotes_is_single_source() -> None:
    (quote,) = statement_fields(incident([article(1, said(FULL))]))
    assert (quote.verdict, quote.consensus) == ("single-source", FULL)


def test_a_quotation_bridging_two_others_joins_them_into_one_statement() -> None:
    # The first article quotes the opening, the second the closing; the third
    # overlaps both. Whichever comes first, one statement results.
    records = [
        article(1, said(OPENING)),
        article(2, said(CLOSING)),
        article(3, said(f"{OPENING} {MIDDLE} {CLOSING}")),
    ]
    for order in itertools.permutations(records):
        (quote,) = statement_fields(incident(order))
        assert quote.verdict == "partial" and quote.consensus == FULL


def test_a_quotation_overlapping_two_others_joins_them_though_it_contains_neither() -> None:
    first_two = f"{OPENING} {MIDDLE}"
    seam = "pinned one of them against a patrol vehicle. Fearing for his partner's life, the officer fired"
    records = [article(1, said(first_two)), article(2, said(CLOSING)), article(3, said(seam))]
    for order in itertools.permutations(records):
        result = incident(order)
        (quote,) = statement_fields(result)
        assert cited_quotes(quote) == {(r.article_id, r.statements[0].quote) for r in records}
        assert quote.consensus == first_two
        assert sorted(s.quote for s in result.merged.statements) == sorted([first_two, CLOSING, seam])


def test_overlapping_quotations_that_neither_contains_keep_every_word_in_the_merged_record() -> None:
    # Nobody quotes the whole statement: one article has its first two
    # sentences, another its last two. They share the middle sentence.
    first_two, last_two = f"{OPENING} {MIDDLE}", f"{MIDDLE} {CLOSING}"
    result = incident([article(1, said(first_two)), article(2, said(last_two))])
    (quote,) = statement_fields(result)
    assert quote.verdict == "partial"
    merged = [s.quote for s in result.merged.statements]
    assert sorted(merged) == sorted([first_two, last_two])
    assert merged[0] == quote.consensus
    assert quote.note is not None and "1 quotation(s) hold words the fullest lacks" in quote.note


def test_an_excerpt_with_words_cut_out_is_covered_by_the_fullest_quotation() -> None:
    cut = "Our officer was completing a lawful arrest ... and we are cooperating with investigators."
    result = incident([article(1, said(FULL)), article(2, said(cut))])
    (quote,) = statement_fields(result)
    assert quote.verdict == "partial"
    assert [s.quote for s in result.merged.statements] == [FULL]


def test_two_different_statements_by_one_speaker_stay_two() -> None:
    result = incident(
        [
            article(1, said(FULL), said(FOOTAGE)),
            article(2, said(MIDDLE)),
            article(3, said(FOOTAGE)),
        ]
    )
    quotes = statement_fields(result)
    assert len(quotes) == 2
    assert {q.consensus for q in quotes} == {FULL, FOOTAGE}
    assert {q.verdict for q in quotes} == {"partial", "same"}
    assert sorted(s.quote for s in result.merged.statements) == sorted([FULL, FOOTAGE])


def test_an_excerpt_too_short_to_tell_which_statement_it_is_from_bridges_neither() -> None:
    # "a patrol vehicle" lies in both statements; it must not make them one.
    result = incident(
        [article(1, said(FULL)), article(2, said(FOOTAGE)), article(3, said("a patrol vehicle"))]
    )
    quotes = statement_fields(result)
    assert sorted(q.consensus for q in quotes if q.consensus) == sorted([FULL, FOOTAGE, "a patrol vehicle"])
    assert all(q.verdict == "single-source" for q in quotes)


def test_a_short_excerpt_joins_the_one_statement_it_lies_in() -> None:
    result = incident([article(1, said(FULL)), article(2, said(FOOTAGE)), article(3, said(LAST_CLAUSE))])
    full = next(q for q in statement_fields(result) if q.consensus == FULL)
    assert full.verdict == "partial" and full.n_articles == 2


def test_a_quotation_not_found_in_its_article_joins_no_two_statements() -> None:
    # A model's splice of two statements, not in the article it cites.
    splice = "pinned one of them against a patrol vehicle camera is under review"
    unfound = {"status": "unfound", "score": 0.0}
    records = [article(1, said(FULL)), article(2, said(FOOTAGE)), article(3, said(splice, grounding=unfound))]
    quotes = statement_fields(incident(records))
    assert [(q.consensus, q.verdict) for q in quotes] == [
        (FULL, "single-source"),
        (FOOTAGE, "single-source"),
        (None, "not-reported"),
    ]


def test_a_quotation_not_found_in_its_article_is_shown_with_the_one_statement_it_overlaps() -> None:
    unfound = {"status": "unfound", "score": 0.0}
    result = incident(
        [article(1, said(FULL)), article(2, said(f"{MIDDLE} and drove off", grounding=unfound))]
    )
    (quote,) = statement_fields(result)
    assert (quote.verdict, quote.consensus, quote.n_articles) == ("single-source", FULL, 2)


def test_the_same_words_from_two_speakers_are_two_statements() -> None:
    slogan = "This community deserves to see every minute of that video."
    councilor = {"speaker": "Ana Ruiz", "affiliation": "Tempe City Council"}
    senator = {"speaker": "Marco Bell", "affiliation": "Arizona State Senate"}
    result = incident(
        [
            article(1, said(slogan, councilor)),
            article(2, said(slogan, senator)),
            article(3, said(slogan, senator)),
        ]
    )
    quotes = statement_fields(result)
    assert len(quotes) == 2
    by_speaker = {q.values[0].speakers[0]: q for q in quotes}
    assert set(by_speaker) == {"person:ana-ruiz", "person:marco-bell"}
    assert by_speaker["person:marco-bell"].verdict == "same"
    assert by_speaker["person:ana-ruiz"].verdict == "single-source"
    assert {s.speaker_id for s in result.merged.statements} == {"person:ana-ruiz", "person:marco-bell"}


def test_a_statement_issued_by_an_agency_and_its_parent_is_one_statement_from_one_source() -> None:
    # CBP is part of DHS: its spokesperson and DHS's press office are one press operation,
    # so their overlapping quotes are one statement, counted once, and both speakers are named.
    cbp = {"speaker": "CBP", "speaker_id": "agency:cbp"}
    dhs = {"speaker": "DHS", "speaker_id": "agency:dhs"}
    result = incident([article(1, said(FULL, dhs)), article(2, said(MIDDLE, cbp))])
    (quote,) = statement_fields(result)
    (speaker,) = statement_fields(result, "speaker")
    assert quote.verdict == "partial"
    assert quote.n_independent_sources == 1
    assert quote.sources == {"agency:dhs": ["agency:cbp", "agency:dhs"]}
    assert speaker.verdict == "variant"  # one source under two ids, never a contradiction


def test_the_same_words_from_agencies_of_two_hierarchies_stay_two_statements() -> None:
    fbi = {"speaker": "FBI", "speaker_id": "agency:fbi"}
    dhs = {"speaker": "DHS", "speaker_id": "agency:dhs"}
    result = incident([article(1, said(FULL, dhs)), article(2, said(MIDDLE, fbi))])
    assert len(statement_fields(result)) == 2


def test_statement_speakers_are_compared_through_one_replaceable_helper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fbi = {"speaker": "FBI", "speaker_id": "agency:fbi"}
    dhs = {"speaker": "DHS", "speaker_id": "agency:dhs"}
    records = [article(1, said(FULL, dhs)), article(2, said(MIDDLE, fbi))]
    monkeypatch.setattr(merge, "_same_speaker", lambda a, b: True)
    (quote,) = statement_fields(incident(records))
    assert quote.verdict == "partial"


def test_quotations_that_are_not_evidence_are_shown_but_decide_nothing() -> None:
    unfound = {"status": "unfound", "score": 0.0}
    result = incident([article(1, said(FULL)), article(2, said(MIDDLE, grounding=unfound))])
    (quote,) = statement_fields(result)
    assert (quote.verdict, quote.consensus) == ("single-source", FULL)
    assert quote.note == "1 value(s) shown but not evidence"
    assert [s.quote for s in result.merged.statements] == [FULL]
    only_unfound = incident([article(2, said(MIDDLE, grounding=unfound))])
    assert statement_fields(only_unfound)[0].verdict == "not-reported"
    assert only_unfound.merged.statements == []


# --------------------------------------------------------------------------- properties

# Statements for the generator: two from one office, one from a witness, and
# one that both say word for word. No two share a run of six words.
TEXTS = [
    ("agency:dhs", FULL),
    ("agency:dhs", FOOTAGE),
    ("person:ana-ruiz", "He had both hands on the wheel when the first shot hit the windshield, I saw it."),
    ("agency:dhs", "Everyone on that street deserves answers, and we intend to give them."),
    ("person:ana-ruiz", "Everyone on that street deserves answers, and we intend to give them."),
]


@st.composite
def quotation(draw: st.DrawFn) -> tuple[int, str, bool]:
    """A quotation of one of TEXTS: which, its words as printed, and whether it is a plain excerpt."""
    which = draw(st.integers(0, len(TEXTS) - 1))
    text = TEXTS[which][1].split()
    length = draw(st.integers(3, len(text)))
    start = draw(st.integers(0, len(text) - length))
    excerpt = text[start : start + length]
    plain = True
    if length >= 8 and draw(st.booleans()):
        # An ellipsis where the outlet cut words out of the middle.
        cut = draw(st.integers(2, length - 4))
        excerpt = [*excerpt[:cut], "...", *excerpt[cut + 2 :]]
        plain = False
    printed = " ".join(excerpt)
    if draw(st.booleans()):
        printed = f"\u201c{printed}\u201d"
    if draw(st.booleans()):
        printed = printed.lower()
    return which, printed, plain


@st.composite
def quoting_articles(draw: st.DrawFn) -> list[tuple[IncidentRecord, list[tuple[int, str, bool]]]]:
    n_articles = draw(st.integers(1, 6))
    out = []
    for number in range(n_articles):
        quotes = draw(st.lists(quotation(), min_size=1, max_size=3))
        grounded = draw(st.sampled_from([None, None, None, {"status": "unfound", "score": 0.0}]))
        statements = [
            said(printed, {"speaker": "x", "speaker_id": TEXTS[which][0]}, grounding=grounded)
            for which, printed, _ in quotes
        ]
        out.append((article(number, *statements), quotes if grounded is None else []))
    return out


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(generated=quoting_articles(), data=st.data())
def test_no_quoted_words_are_dropped_and_no_statement_is_a_contradiction(
    generated: list[tuple[IncidentRecord, list[tuple[int, str, bool]]]], data: st.DataObject
) -> None:
    records = [record for record, _ in generated]
    result = incident(data.draw(st.permutations(records)))
    merged = [(s.speaker_id, s.quote) for s in result.merged.statements]
    for _, evidence in generated:
        for which, printed, _ in evidence:
            speaker = TEXTS[which][0]
            assert any(who == speaker and in_order(printed, quote) for who, quote in merged), printed
    assert all(f.verdict != "contradiction" for f in result.fields if f.path.startswith("statements["))
    for quote in statement_fields(result):
        assert len({s for v in quote.values for s in v.speakers}) == 1, "one speaker per statement"


@PROPERTY
@given(generated=quoting_articles(), data=st.data())
def test_statements_do_not_depend_on_the_order_of_the_articles(
    generated: list[tuple[IncidentRecord, list[tuple[int, str, bool]]]], data: st.DataObject
) -> None:
    records = [record for record, _ in generated]
    shuffled = data.draw(st.permutations(records))
    assert summary(incident(shuffled)) == summary(incident(records))


@PROPERTY
@given(generated=quoting_articles())
def test_with_the_whole_statement_quoted_every_long_excerpt_of_it_is_the_same_statement(
    generated: list[tuple[IncidentRecord, list[tuple[int, str, bool]]]],
) -> None:
    whole = article(99, *(said(text, {"speaker": "x", "speaker_id": speaker}) for speaker, text in TEXTS))
    result = incident([*(record for record, _ in generated), whole])
    for which, (speaker, text) in enumerate(TEXTS):
        (home,) = [
            q
            for q in statement_fields(result)
            if (whole.article_id, text) in cited_quotes(q) and q.values[0].speakers == [speaker]
        ]
        assert quote_key(str(home.consensus)) == quote_key(text)
        for record, evidence in generated:
            for quoted, printed, plain in evidence:
                if quoted == which and plain and len(words(printed)) >= merge.STATEMENT_RUN_WORDS:
                    assert (record.article_id, printed) in cited_quotes(home)
