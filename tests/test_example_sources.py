"""The Commerce City example set: the source-counting cases of issue #12, end to end.

The five articles in ``examples/commerce-city-ice-shooting`` are read through the real
source reader. Their hand-written gold records are grounded against them, so every
speaker comes from the identity authority and not from the gold file. The records are
then reconciled. The set plants ICE and DHS as one source and a second hierarchy (the
city police) that agrees with them, a statement quoted in part, a relayed outlet, an
anonymous official, an embedded social post and a dateline; its README says where.
"""

from __future__ import annotations

import json
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from pipeline.evidence.ground import ground_record
from pipeline.ingest.sources import iter_sources
from pipeline.kinds.identity import display_speaker
from pipeline.kinds.normalize import ValueContext, normalize_value, quote_key, resolve_date
from pipeline.reconcile.merge import reconcile
from schemas.article import Article
from schemas.incident import FieldVerdict, Incident
from schemas.record import Cited, IncidentRecord

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "commerce-city-ice-shooting"
GOLD: dict[str, Any] = json.loads((EXAMPLE / "gold.json").read_text(encoding="utf-8"))
DATELINE: dict[str, str] = GOLD["planted_dateline"]
STATEMENT: dict[str, Any] = GOLD["planted_statement"]

# Both ways a record reaches the reconciler: grounded (speakers from ground_record), and
# as written (speakers from merge's fallback). Both call the same identity authority, so
# both must count sources the same way.
MODES = ("grounded", "as written")


@cache
def articles() -> dict[str, Article]:
    """The example articles read by the real source reader, keyed by file name."""
    paths = sorted(p for p in EXAMPLE.glob("0*") if p.suffix in {".md", ".html"})
    found: dict[str, Article] = {}
    for item in iter_sources(paths):
        assert isinstance(item, Article), f"example article failed to load: {item}"
        found[Path(item.source_path or "").name] = item
    return found


@cache
def gold_records() -> dict[str, IncidentRecord]:
    lines = (EXAMPLE / "gold_records.jsonl").read_text(encoding="utf-8").splitlines()
    records = [IncidentRecord.model_validate_json(line) for line in lines]
    return {Path(r.source_path or "").name: r for r in records}


@cache
def grounded_records() -> dict[str, IncidentRecord]:
    return {name: ground_record(record, articles()[name]) for name, record in gold_records().items()}


@cache
def incident(mode: str) -> Incident:
    records = grounded_records() if mode == "grounded" else gold_records()
    result = reconcile(list(records.values()))
    assert len(result.incidents) == 1, "the five articles describe one incident"
    return result.incidents[0]


def field(found: Incident, path: str) -> FieldVerdict:
    return next(f for f in found.fields if f.path == path)


def cited_values(node: Any) -> list[Cited[Any]]:
    """Every cited value in a record, however deeply nested."""
    if isinstance(node, Cited):
        return [node]
    if isinstance(node, list):
        return [c for item in node for c in cited_values(item)]
    if isinstance(node, BaseModel):
        return [c for name in type(node).model_fields for c in cited_values(getattr(node, name))]
    return []


def value_at(record: IncidentRecord, path: str) -> Any:
    node: Any = record
    for part in path.replace("[0]", ".0").split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part, None)
        if node is None:
            return None
    return node.value


# --------------------------------------------------------------------------- the set


def test_the_wire_story_without_a_date_is_dated_by_its_dateline() -> None:
    loaded = articles()
    assert sorted(loaded) == sorted(GOLD["articles"])
    wire = loaded[DATELINE["article"]]
    assert DATELINE["dateline"] in wire.text
    assert wire.published_from == "dateline"
    assert wire.published == date.fromisoformat(DATELINE["published"])
    # The other articles carry a date in metadata, so only the wire story depends on the dateline reader.
    assert {a.published_from for name, a in loaded.items() if name != DATELINE["article"]} == {"metadata"}


def test_gold_records_carry_the_gold_values_and_verbatim_quotes() -> None:
    loaded = articles()
    for name, expected in GOLD["articles"].items():
        record, article = gold_records()[name], loaded[name]
        assert record.article_id == article.id, f"{name}: article id is not the content hash of its text"
        # The extractor copies the article's date into the provenance: for the wire story, the dateline.
        assert record.provenance.published == article.published, name
        for path, value in expected.items():
            if path == "agencies[].name":
                assert [a.name.value for a in record.agencies] == value, name
            else:
                assert value_at(record, path) == value, f"{name} {path}"
        quotes = [c.quote for c in cited_values(record)] + [s.quote for s in record.statements]
        for quote in quotes:
            assert quote in article.text, f"{name}: quote not verbatim: {quote!r}"


def test_gold_records_leave_speakers_to_grounding() -> None:
    # As in the Tempe set: a hand-written speaker would test the gold file, not the identity authority.
    for record in gold_records().values():
        assert all(c.speaker is None and c.grounding is None for c in cited_values(record))
        assert all(s.speaker_id is None for s in record.statements)


def test_grounding_finds_every_quote_as_evidence() -> None:
    for name, record in grounded_records().items():
        for cited in cited_values(record):
            assert cited.grounding is not None and cited.grounding.is_evidence, f"{name}: {cited.quote!r}"
            assert cited.speaker, f"{name}: {cited.attribution!r} got no speaker"
        assert all(s.grounding is not None and s.grounding.is_evidence for s in record.statements), name


@pytest.mark.parametrize(
    ("article", "path", "speaker"),
    [
        # "Cordillera Network News reported that ...": the relayed outlet, never a person.
        ("05-civic-record.md", "what.operation_name", "outlet:cordillera-network-news"),
        ("05-civic-record.md", "subjects[0].nationality", "anonymous:agency:ice"),
        # The embedded post's signature line: "— Yesenia Carrizales (@yesi_cc303) May 14, 2026".
        ("04-northfield-beacon.md", "subjects[0].armed_with", "social:@yesi_cc303"),
        ("02-mile-high-11.html", "subjects[0].armed_with", "agency:ice"),
        ("01-front-range-ledger.md", "subjects[0].armed_with", "agency:dhs"),
        ("01-front-range-ledger.md", "when.time_of_day", "agency:commerce-city-police"),
    ],
)
def test_grounding_names_the_planted_speakers(article: str, path: str, speaker: str) -> None:
    node: Any = grounded_records()[article]
    for part in path.replace("[0]", ".0").split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    assert node.speaker == speaker


# --------------------------------------------------------------------------- verdicts and counts


@pytest.mark.parametrize("mode", MODES)
def test_the_records_reach_exactly_the_planted_verdicts(mode: str) -> None:
    verdicts = {f.path: f.verdict for f in incident(mode).fields}
    planted: dict[str, str] = GOLD["planted_verdicts"]
    assert {path: verdicts.get(path) for path in planted} == planted


@pytest.mark.parametrize("mode", MODES)
def test_no_field_is_a_contradiction_except_the_planted_ones(mode: str) -> None:
    contradictions = {f.path for f in incident(mode).fields if f.verdict == "contradiction"}
    planted = {path for path, verdict in GOLD["planted_verdicts"].items() if verdict == "contradiction"}
    assert contradictions == planted


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", sorted(GOLD["planted_sources"]))
def test_each_planted_case_counts_its_independent_sources(mode: str, path: str) -> None:
    expected: dict[str, Any] = GOLD["planted_sources"][path]
    verdict = field(incident(mode), path)
    assert verdict.n_independent_sources == expected["n_independent_sources"]
    # The count can be read back as the speakers behind each source.
    assert verdict.sources == expected["sources"]
    assert len(verdict.sources) == verdict.n_independent_sources
    for value, want in expected.get("values", {}).items():
        support = next(v for v in verdict.values if v.value == value)
        assert (support.n_independent_sources, support.sources) == (
            want["n_independent_sources"],
            want["sources"],
        ), value


@pytest.mark.parametrize("mode", MODES)
def test_ice_and_dhs_repeating_the_ramming_claim_are_one_source_over_four_articles(mode: str) -> None:
    vehicle = next(v for v in field(incident(mode), "subjects[0].armed_with").values if v.value == "vehicle")
    # Four articles carry the claim, from two agencies of one hierarchy: one source.
    assert vehicle.n_articles == 4
    assert {c["speaker"] for c in vehicle.citations} == {"agency:dhs", "agency:ice"}
    assert {c["source_group"] for c in vehicle.citations} == {"agency:dhs"}


def test_the_relayed_outlet_is_never_a_person() -> None:
    operation = field(incident("grounded"), "what.operation_name")
    speakers = {c["speaker"] for v in operation.values for c in v.citations}
    assert speakers == {"outlet:cordillera-network-news"}
    # The article's own outlet did not report it; it relayed it.
    assert all(c["outlet"] == "The Civic Record" for v in operation.values for c in v.citations)


@pytest.mark.parametrize(("speaker", "shown"), sorted(GOLD["planted_speakers"].items()))
def test_reviewers_see_ice_speakers_under_dhs(speaker: str, shown: str) -> None:
    found = incident("grounded")
    # The ids must be ones the reconciler really grouped, not only ones the gold file names.
    grouped = {s for f in found.fields for members in f.sources.values() for s in members}
    assert speaker in grouped
    assert display_speaker(speaker) == shown


# --------------------------------------------------------------------------- the partial statement


@pytest.mark.parametrize("mode", MODES)
def test_the_dhs_statement_quoted_in_part_is_one_partial_statement(mode: str) -> None:
    found = incident(mode)
    quote = field(found, "statements[0].quote")
    assert quote.verdict == STATEMENT["verdict"] == "partial"
    assert quote.consensus == STATEMENT["statement"]
    assert quote.n_articles == STATEMENT["n_articles"]
    assert quote.n_independent_sources == STATEMENT["n_independent_sources"]
    assert quote.sources == {STATEMENT["speaker_id"]: [STATEMENT["speaker_id"]]}
    assert field(found, "statements[0].speaker").consensus == STATEMENT["speaker"]
    # Each excerpt is a value of this one statement, so no excerpt forms a statement of its own.
    excerpts = [STATEMENT["last_clause"], STATEMENT["first_sentence"]]
    ids = {name: gold_records()[name].article_id for name in articles()}
    quoted = {(c["article_id"], c["quote"]) for v in quote.values for c in v.citations}
    assert quoted == {(ids[name], STATEMENT["statement"]) for name in STATEMENT["full"]} | {
        (ids[e["article"]], e["quote"]) for e in excerpts
    }


@pytest.mark.parametrize("mode", MODES)
def test_the_merged_record_keeps_the_full_statement_and_drops_no_quoted_words(mode: str) -> None:
    merged = incident(mode).merged
    assert merged.statements[0].quote == STATEMENT["statement"]
    assert merged.statements[0].speaker_id == STATEMENT["speaker_id"]
    full = quote_key(STATEMENT["statement"])
    for excerpt in (STATEMENT["last_clause"], STATEMENT["first_sentence"]):
        assert quote_key(excerpt["quote"]) in full
    # The excerpts lie inside the full quote, so they add no statement of their own.
    assert sum(quote_key(s.quote) in full for s in merged.statements) == 1


# --------------------------------------------------------------------------- relative days


@pytest.mark.parametrize(("name", "planted"), sorted(GOLD["planted_relative_dates"].items()))
def test_each_relative_day_resolves_against_its_publication_date(name: str, planted: dict[str, str]) -> None:
    article, record = articles()[name], gold_records()[name]
    assert article.published == date.fromisoformat(planted["published"])
    assert record.when.raw_phrase is not None and record.when.raw_phrase.value == planted["phrase"]
    span = resolve_date(planted["phrase"], article.published)
    assert span is not None and span.form == planted["resolves_to"]


def test_the_wire_storys_thursday_resolves_only_through_its_dateline() -> None:
    phrase = DATELINE["phrase"]
    # Without the dateline's date the wire story's "Thursday" names no day at all.
    assert resolve_date(phrase, None) is None
    wire = grounded_records()[DATELINE["article"]]
    context = ValueContext(published=wire.provenance.published)
    assert normalize_value("when.date", phrase, context).form == DATELINE["resolves_to"]


def test_a_record_that_copies_the_wire_storys_weekday_still_agrees_on_the_date() -> None:
    # An extractor that copies "Thursday" instead of resolving it: the reconciler resolves it
    # against the date the dateline gave, and the date stays agreed.
    records = dict(grounded_records())
    wire = records[DATELINE["article"]]
    assert wire.when.date is not None
    copied = wire.when.date.model_copy(update={"value": DATELINE["phrase"]})
    records[DATELINE["article"]] = wire.model_copy(
        update={"when": wire.when.model_copy(update={"date": copied})}
    )
    result = reconcile(list(records.values()))
    assert len(result.incidents) == 1
    when = field(result.incidents[0], "when.date")
    assert (when.verdict, when.consensus) == ("agreed", DATELINE["resolves_to"])
    forms = {c["article_id"]: v.form for v in when.values for c in v.citations}
    assert forms[wire.article_id] == DATELINE["resolves_to"]
