"""Reconcile the records of each incident into one merged record with per-field verdicts.

Per incident and field path, the distinct values (by comparison form, see
``pipeline.kinds.normalize``) are collected with every citation behind them, and
the field gets one verdict:

* ``not-reported``: no article reports it, or only citations that are not
  evidence (quote not found in the article, or not supporting the value);
* ``agreed``: one value, from at least two independent sources;
* ``single-source``: one value, from one independent source (one article,
  or several outlets relaying one speaker or copying one text);
* ``variant``: several forms of one value ("Quintero-Alvarez" /
  "Quintero-Alvares" / "Rafael Quintero"; "serious" / "several" injuries);
* ``more-specific``: values that nest ("Tempe" within "Phoenix"; "2" within
  "agents"; "7:30 a.m." within "morning");
* ``contradiction``: at least two values that cannot both be true.

Statements (``statements[i].quote`` / ``.speaker``) are judged by how the
articles quote them, never as a contradiction: ``same`` (two or more articles,
the same words), ``partial`` (some quote only part of it; the merged record
holds the fullest quotation), ``single-source`` (one article) or
``not-reported``. See ``_align_statements`` for what makes one statement.

Only citations that are evidence decide a verdict; the others are listed
with ``decides: false``. A record that was never grounded (``grounding`` is
null, e.g. written by hand) counts as evidence: unchecked, not disproven.

Independence: citations with the same speaker, or whose quotes are
near-identical across articles (copying), form one source group.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from pydantic import ValidationError
from rapidfuzz import fuzz

from pipeline.common.atomic import replaced_together
from pipeline.kinds.base import KindStrategy, record_context
from pipeline.kinds.gazetteer import get_gazetteer
from pipeline.kinds.identity import identify, independent_source
from pipeline.kinds.normalize import (
    CACHE_SIZE,
    NAME_MATCH,
    CountRange,
    Normalized,
    Relation,
    ValueContext,
    agency_key,
    clear_caches,
    name_similarity,
    normalize_value,
    quote_key,
    quotes_match,
    relate,
)
from pipeline.kinds.strategies import strategy_for
from pipeline.reconcile.cluster import Cluster, cluster_records, fork_context
from pipeline.reconcile.decide import (
    DeskState,
    apply_field_decisions,
    field_decisions,
    regroup,
    title_of,
)
from pipeline.reconcile.spill import RecordLines, RecordSpill, spilled_clusters, spilled_clusters_from_lines
from pipeline.reconcile.stable import assign_ids
from pipeline.store.runfolder import CONFLICTS_FILENAME, INCIDENTS_FILENAME
from schemas.desk import Decision, StaleDecision
from schemas.fields import cited_fields_of
from schemas.incident import (
    FLAGGED_VERDICTS,
    Conflict,
    FieldVerdict,
    Incident,
    ReconcileResult,
    Scalar,
    Verdict,
)
from schemas.record import Cited, Grounding, IncidentFacts, IncidentRecord, Statement, Subject

# Quotes at least this long (normalised characters) that are near-identical
# across outlets are taken as copied text; shorter ones ("in Tempe") are not.
COPY_MIN_CHARS = 40
COPY_MIN_RATIO = 95.0

# The Cited fields of each part of the record, from the schema (schemas.fields).
SCALAR_SECTIONS: dict[str, tuple[str, ...]] = {
    section: cited_fields_of(section) for section in ("when", "where", "what", "officers")
}
SUBJECT_FIELDS = cited_fields_of("subjects")
AGENCY_FIELDS = cited_fields_of("agencies")


@dataclass(slots=True)
class _Cite:
    """One record's value for one field, with what reconciliation needs to judge it."""

    value: Scalar
    norm: Normalized
    article_id: str
    outlet: str | None
    quote: str
    attribution: str
    speaker: str
    grounding: Grounding | None
    decides: bool


def _decides(grounding: Grounding | None) -> bool:
    return grounding is None or grounding.is_evidence


@dataclass(frozen=True, slots=True)
class _RecordContext:
    """A record's context: its publication date, state and country. Each kind's strategy cuts
    out the part it reads, so normalisation caches hit across records (only dates need the
    publication date, only cities the state and country)."""

    values: ValueContext
    speakers: dict[str, str]  # attribution -> fallback speaker id, for this record
    kinds: dict[str, ValueContext]  # field template -> the part of ``values`` its kind reads


def _context(record: IncidentRecord) -> _RecordContext:
    return _RecordContext(values=record_context(record), speakers={}, kinds={})


@lru_cache(maxsize=256)
def _strategy(template: str) -> KindStrategy:
    return strategy_for(template)


def _normalize(template: str, text: str, ctx: _RecordContext) -> Normalized:
    kind_context = ctx.kinds.get(template)
    if kind_context is None:
        kind_context = ctx.kinds[template] = _strategy(template).context(ctx.values)
    return _normalize_cached(template, text, kind_context)


@lru_cache(maxsize=CACHE_SIZE)
def _normalize_cached(template: str, text: str, ctx: ValueContext) -> Normalized:
    return normalize_value(template, text, ctx)


def _cite(
    template: str, cited: Cited[Any] | None, record: IncidentRecord, ctx: _RecordContext
) -> _Cite | None:
    if cited is None:
        return None
    value = cited.value
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
    elif not isinstance(value, int | float | bool):
        value = str(value)
    speaker = cited.speaker
    if not speaker:
        speaker = ctx.speakers.get(cited.attribution)
        if speaker is None:
            speaker = _fallback_speaker(cited.attribution, record.provenance.outlet, record.article_id)
            ctx.speakers[cited.attribution] = speaker
    grounding = cited.grounding
    return _Cite(
        value,
        _normalize(template, value if isinstance(value, str) else str(value), ctx),
        record.article_id,
        record.provenance.outlet,
        cited.quote,
        cited.attribution,
        speaker,
        grounding,
        grounding is None or grounding.is_evidence,
    )


# --------------------------------------------------------------------------- list items


@dataclass
class _Slot:
    """One list item (a subject, an agency, a statement) matched across records."""

    items: list[tuple[int, Any]]  # (record index, item)
    created: int

    @property
    def records(self) -> set[int]:
        return {r for r, _ in self.items}


def _subject_has_content(subject: Subject) -> bool:
    return any(
        getattr(subject, f) is not None and getattr(subject, f).value is not None for f in SUBJECT_FIELDS
    )


def _subject_name(subject: Subject) -> str | None:
    if subject.name is None or subject.name.value is None:
        return None
    return str(subject.name.value).strip() or None


def _attribute_agreement(subject: Subject, slot: _Slot) -> int:
    """How well an unnamed subject fits a slot: agreeing minus conflicting age/gender."""
    score = 0
    for field_name in ("age", "gender"):
        mine = getattr(subject, field_name)
        if mine is None or mine.value is None:
            continue
        for _, other in slot.items:
            theirs = getattr(other, field_name)
            if theirs is not None and theirs.value is not None:
                score += 1 if str(theirs.value).casefold() == str(mine.value).casefold() else -1
    return score


def _align_subjects(records: Sequence[IncidentRecord]) -> list[_Slot]:
    slots: list[_Slot] = []
    # Named subjects first, so an unnamed one never founds a slot a name should have.
    for index, record in enumerate(records):
        for subject in record.subjects:
            name = _subject_name(subject)
            if name is None:
                continue
            best, best_slot = 0.0, None
            for slot in slots:
                if index in slot.records:
                    continue
                names = [_subject_name(s) for _, s in slot.items]
                score = max((name_similarity(name, n) for n in names if n), default=0.0)
                if score > best:
                    best, best_slot = score, slot
            if best_slot is not None and best >= NAME_MATCH:
                best_slot.items.append((index, subject))
            else:
                slots.append(_Slot([(index, subject)], len(slots)))
    for index, record in enumerate(records):
        for subject in record.subjects:
            if _subject_name(subject) is not None or not _subject_has_content(subject):
                continue
            free = [s for s in slots if index not in s.records]
            scored = [(_attribute_agreement(subject, s), -s.created, s) for s in free]
            fits = [t for t in scored if t[0] >= 0]
            if fits:
                max(fits, key=lambda t: (t[0], t[1]))[2].items.append((index, subject))
            else:
                slots.append(_Slot([(index, subject)], len(slots)))
    return _order_slots(slots)


def _align_agencies(records: Sequence[IncidentRecord]) -> list[_Slot]:
    by_key: dict[str, _Slot] = {}
    for index, record in enumerate(records):
        for agency in record.agencies:
            if agency.name.value is None or not str(agency.name.value).strip():
                continue
            key = agency_key(str(agency.name.value))
            slot = by_key.setdefault(key, _Slot([], len(by_key)))
            slot.items.append((index, agency))
    return _order_slots(list(by_key.values()))


def _order_slots(slots: list[_Slot]) -> list[_Slot]:
    """Most-reported item first; creation order (records sorted by article id) breaks ties.
    Within a slot, items follow record order, like every other citation list."""
    for slot in slots:
        slot.items.sort(key=lambda item: item[0])
    return sorted(slots, key=lambda s: (-len(s.records), s.created))


# --------------------------------------------------------------------------- statements

# Two quotations from one speaker are one statement, fully or partly quoted,
# when they share a run of at least this many words (case, punctuation and
# quote marks folded), or when the shorter lies wholly inside the longer. Six
# words in the same order is about a clause: outlets excerpting one statement
# share at least that, while one speaker's separate statements tend to share
# only stock phrases shorter than that ("the investigation is ongoing").
STATEMENT_RUN_WORDS = 6


def _statement_speaker_id(statement: Statement, record: IncidentRecord) -> str:
    """The speaker id a statement is compared by: the pipeline's, or a fallback."""
    return statement.speaker_id or _statement_speaker(statement, record)


def _same_speaker(a: str, b: str) -> bool:
    """Whether two speaker ids can have made one statement: the same speaker, or two parts of
    one press operation (an ICE spokesperson and DHS issue one statement; see ``counts_under``).

    Every comparison of statement speakers goes through here.
    """
    return a == b or counts_under(a) == counts_under(b)


@dataclass(frozen=True, slots=True)
class _Words:
    """A quotation as folded words, with what the overlap test needs precomputed."""

    key: str  # quote_key: the words joined by single spaces
    n: int
    runs: frozenset[str]  # every run of STATEMENT_RUN_WORDS consecutive words

    @property
    def padded(self) -> str:
        # Spaces on both sides make substring search match whole words only.
        return f" {self.key} "


def _words(quote: str) -> _Words:
    key = quote_key(quote)
    words = key.split()
    size = STATEMENT_RUN_WORDS
    return _Words(
        key, len(words), frozenset(" ".join(words[i : i + size]) for i in range(len(words) - size + 1))
    )


def _overlap(a: _Words, b: _Words) -> bool:
    """Whether two quotations of one speaker are one statement (see ``STATEMENT_RUN_WORDS``)."""
    if not a.n or not b.n:
        return False
    short, long = (a, b) if a.n <= b.n else (b, a)
    # Near-identical wording (a spelling, "U.S." / "US") counts too: what
    # matched before word runs were compared still matches.
    return short.padded in long.padded or not a.runs.isdisjoint(b.runs) or quotes_match(a.key, b.key)


@dataclass(frozen=True, slots=True)
class _Quoted:
    index: int  # of the record
    statement: Statement
    speaker: str
    words: _Words


def _align_statements(records: Sequence[IncidentRecord]) -> list[_Slot]:
    """One slot per statement: the connected groups of a speaker's quotations that
    contain or overlap one another, so a later quotation bridging two earlier ones
    joins them. Every pair is compared, so the slots do not depend on record order."""
    quoted = [
        _Quoted(index, statement, _statement_speaker_id(statement, record), _words(statement.quote))
        for index, record in enumerate(records)
        for statement in record.statements
        if statement.quote.strip()
    ]
    parent = list(range(len(quoted)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        parent[root(i)] = root(j)

    # Leaders, quotations of six words or more that are evidence, form the
    # statements among themselves. A short excerpt may fit several of a
    # speaker's statements, and a quotation that is not evidence (not found in
    # its article) must not join two statements, as such values neither link
    # nor veto in clustering; so the others follow.
    leads = [q.words.n >= STATEMENT_RUN_WORDS and _decides(q.statement.grounding) for q in quoted]
    follows: dict[int, list[int]] = defaultdict(list)
    for i, a in enumerate(quoted):
        for j in range(i + 1, len(quoted)):
            b = quoted[j]
            if not _same_speaker(a.speaker, b.speaker):
                continue
            if not _overlap(a.words, b.words):
                continue
            if leads[i] and leads[j]:
                union(i, j)
            else:
                follows[i].append(j)
                follows[j].append(i)
    # A follower joins the one statement it links to; linked to several, it
    # stays apart, grouped only with other such followers it links to. Both
    # read the groups of leaders alone, so neither depends on order.
    homes = {i: {root(j) for j in partners if leads[j]} for i, partners in follows.items() if not leads[i]}
    loose = {i for i, found in homes.items() if len(found) != 1}
    for i, found in homes.items():
        if len(found) == 1:
            union(i, next(iter(found)))
    for i in loose:
        for j in follows[i]:
            if j in loose:
                union(i, j)

    groups: dict[int, list[_Quoted]] = defaultdict(list)
    for i, q in enumerate(quoted):
        groups[root(i)].append(q)

    def rank(group: list[_Quoted]) -> tuple[bool, int, tuple[str, str, str, str]]:
        # Statements with evidence first, so merged.statements[i] is the
        # consensus of statements[i]; then the most reported; then by content,
        # never by record order.
        first = min((records[q.index].article_id, q.words.key, q.speaker, q.statement.quote) for q in group)
        has_evidence = any(_decides(q.statement.grounding) for q in group)
        return (not has_evidence, -len({q.index for q in group}), first)

    ordered = sorted(groups.values(), key=rank)
    return [_Slot([(q.index, q.statement) for q in group], n) for n, group in enumerate(ordered)]


# --------------------------------------------------------------------------- independence


@lru_cache(maxsize=CACHE_SIZE)
def counts_under(speaker: str) -> str:
    """The independent source a speaker counts under: the root of an agency's part-of chain
    (``agency:ice`` -> ``agency:dhs``), a named person whatever role an article gave them, or
    the speaker itself (``pipeline.kinds.identity.independent_source``)."""
    return independent_source(speaker)


def _source_groups(cites: Sequence[_Cite]) -> list[str]:
    """The independent source of each citation: one press operation (an agency and its parents),
    one person, or copied text across articles."""
    sources = [counts_under(c.speaker) for c in cites]
    distinct_set = set(sources)
    if len(distinct_set) == 1:
        return sources
    distinct = sorted(distinct_set)
    # Union-find over sources: copied wording joins two sources' groups.
    parent = {source: source for source in distinct}

    def root(source: str) -> str:
        while parent[source] != source:
            source = parent[source]
        return source

    keys = [quote_key(c.quote) for c in cites]
    for i in range(len(cites)):
        if len(keys[i]) < COPY_MIN_CHARS:
            continue
        for j in range(i + 1, len(cites)):
            if (
                sources[i] != sources[j]
                and cites[i].article_id != cites[j].article_id
                and len(keys[j]) >= COPY_MIN_CHARS
                and (keys[i] == keys[j] or fuzz.ratio(keys[i], keys[j]) >= COPY_MIN_RATIO)
            ):
                ri, rj = root(sources[i]), root(sources[j])
                if ri != rj:
                    # The smallest id names the group, whatever the order.
                    parent[max(ri, rj)] = min(ri, rj)
    return [root(source) for source in sources]


def _grouped_speakers(
    cites: Sequence[_Cite], groups: Sequence[str], indices: Sequence[int]
) -> dict[str, list[str]]:
    """Each independent source among ``indices`` and the speakers it groups, so every count
    can be read back as the speakers behind it ("agency:dhs": ICE and DHS)."""
    if len(indices) == 1:  # the commonest case, without the sets and sorts
        return {groups[indices[0]]: [cites[indices[0]].speaker]}
    grouped: dict[str, set[str]] = {}
    for i in indices:
        grouped.setdefault(groups[i], set()).add(cites[i].speaker)
    return {group: sorted(speakers) for group, speakers in sorted(grouped.items())}


# --------------------------------------------------------------------------- verdicts

# Verdicts are built as plain dicts in the shape of ``FieldVerdict`` and
# validated once per incident: one validation call over a nested dict costs a
# fraction of constructing hundreds of small models one by one.
FieldDict = dict[str, Any]


def _display_value(cites: Sequence[_Cite]) -> Scalar:
    """The most common raw value of a form (ties: the first in sorted order)."""
    if len(cites) == 1:
        return cites[0].value
    counts: dict[Scalar, int] = {}
    for cite in cites:
        counts[cite.value] = counts.get(cite.value, 0) + 1
    return min(counts, key=lambda v: (-counts[v], str(v)))


def _rank_key(value: FieldDict, deciding: dict[str, tuple[int, int]]) -> tuple[int, int, int, str]:
    n_sources, n_articles = deciding.get(value["form"], (0, 0))
    return (-n_sources, -n_articles, -len(str(value["value"])), value["form"])


def _not_reported(path: str) -> FieldDict:
    return {
        "path": path,
        "verdict": "not-reported",
        "values": [],
        "consensus": None,
        "rule": None,
        "note": None,
        "n_articles": 0,
        "n_independent_sources": 0,
        "sources": {},
    }


def _citation(cite: _Cite, group: str) -> dict[str, Any]:
    return {
        "article_id": cite.article_id,
        "outlet": cite.outlet,
        "quote": cite.quote,
        "attribution": cite.attribution,
        "speaker": cite.speaker,
        "source_group": group,
        "grounding": cite.grounding.status.value if cite.grounding is not None else None,
        "decides": cite.decides,
    }


def _judge_one(path: str, cite: _Cite) -> FieldDict:
    """One citation (the commonest case): single-source, or not-reported if it is not evidence.
    Same result as the general path, without its bookkeeping."""
    group = counts_under(cite.speaker)
    sources = {group: [cite.speaker]}
    value = {
        "value": cite.value,
        "form": cite.norm.form,
        "article_ids": [cite.article_id],
        "speakers": [cite.speaker],
        "n_articles": 1,
        "n_independent_sources": 1,
        "sources": sources,
        "decides": cite.decides,
        "citations": [_citation(cite, group)],
    }
    if cite.decides:
        verdict, consensus, rule, note = "single-source", cite.value, "only source", None
    else:
        verdict, consensus, rule, note = "not-reported", None, None, _UNGROUNDED_ONLY
    return {
        "path": path,
        "verdict": verdict,
        "values": [value],
        "consensus": consensus,
        "rule": rule,
        "note": note,
        "n_articles": 1,
        "n_independent_sources": 1 if cite.decides else 0,
        "sources": sources if cite.decides else {},
    }


_UNGROUNDED_ONLY = "reported only by values whose quotes are not evidence (unfound or unsupported)"


def _value_dicts(
    cites: Sequence[_Cite], groups: Sequence[str]
) -> tuple[list[FieldDict], dict[str, tuple[int, int]], dict[str, Normalized]]:
    """Each distinct form with its citations (unranked); for the forms some evidence backs,
    (independent sources, articles) among that evidence; and each form's normalisation."""
    by_form: dict[str, list[int]] = {}
    for i, cite in enumerate(cites):
        by_form.setdefault(cite.norm.form, []).append(i)
    values: list[FieldDict] = []
    deciding_stats: dict[str, tuple[int, int]] = {}
    norms: dict[str, Normalized] = {}
    for form, indices in by_form.items():
        if len(indices) == 1:  # one citation: what the general case gives, without its bookkeeping
            i = indices[0]
            cite, group = cites[i], groups[i]
            norms[form] = cite.norm
            if cite.decides:
                deciding_stats[form] = (1, 1)
            values.append(
                {
                    "value": cite.value,
                    "form": form,
                    "article_ids": [cite.article_id],
                    "speakers": [cite.speaker],
                    "n_articles": 1,
                    "n_independent_sources": 1,
                    "sources": {group: [cite.speaker]},
                    "decides": cite.decides,
                    "citations": [_citation(cite, group)],
                }
            )
            continue
        form_cites = [cites[i] for i in indices]
        norms[form] = form_cites[0].norm
        # Cites arrive in record order (records sorted by article id, list
        # items sorted by record), so citations need no further sorting.
        citations = [_citation(c, groups[i]) for i, c in zip(indices, form_cites, strict=True)]
        decisive = [i for i in indices if cites[i].decides]
        if decisive:
            deciding_stats[form] = (
                len({groups[i] for i in decisive}),
                len({cites[i].article_id for i in decisive}),
            )
        article_ids = list(dict.fromkeys(c.article_id for c in form_cites))
        values.append(
            {
                "value": _display_value(form_cites),
                "form": form,
                "article_ids": article_ids,
                "speakers": sorted({c.speaker for c in form_cites}),
                "n_articles": len(article_ids),
                "n_independent_sources": len({groups[i] for i in indices}),
                "sources": _grouped_speakers(cites, groups, indices),
                "decides": bool(decisive),
                "citations": citations,
            }
        )
    return values, deciding_stats, norms


def _judge(path: str, cites: Sequence[_Cite]) -> FieldDict:
    if not cites:
        return _not_reported(path)
    if len(cites) == 1:
        return _judge_one(path, cites[0])
    groups = _source_groups(cites)
    values, deciding_stats, norms = _value_dicts(cites, groups)
    values.sort(key=lambda v: _rank_key(v, deciding_stats))
    n_sources = len({groups[i] for i, c in enumerate(cites) if c.decides})
    decisive_values = [v for v in values if v["form"] in deciding_stats]
    verdict: Verdict
    note: str | None = None
    consensus: Scalar = None
    rule: str | None = None
    if not decisive_values:
        verdict = "not-reported"
        note = _UNGROUNDED_ONLY
    elif len(decisive_values) == 1:
        verdict = "agreed" if n_sources >= 2 else "single-source"
        consensus = decisive_values[0]["value"]
        rule = "all sources agree" if verdict == "agreed" else "only source"
        relaying = deciding_stats[decisive_values[0]["form"]][1]
        if verdict == "single-source" and relaying > 1:
            note = f"{relaying} articles relay one source"
    else:
        verdict, consensus, rule, note = _judge_values(path, decisive_values, norms, deciding_stats)
    return {
        "path": path,
        "verdict": verdict,
        "values": values,
        "consensus": consensus,
        "rule": rule,
        "note": _ungrounded_note(note, values, verdict),
        "n_articles": len({c.article_id for c in cites}),
        "n_independent_sources": n_sources,
        "sources": _grouped_speakers(cites, groups, [i for i, c in enumerate(cites) if c.decides]),
    }


def _ungrounded_note(note: str | None, values: Sequence[FieldDict], verdict: Verdict) -> str | None:
    n_ungrounded = sum(1 for v in values if not v["decides"])
    if n_ungrounded and verdict != "not-reported":
        extra = f"{n_ungrounded} value(s) shown but not evidence"
        return f"{note}; {extra}" if note else extra
    return note


def judge_field(path: str, cites: Sequence[_Cite]) -> FieldVerdict:
    """The verdict for one field of one incident, from every record's citation."""
    return FieldVerdict.model_validate(_judge(path, cites))


def _judge_values(
    path: str,
    values: list[FieldDict],
    norms: dict[str, Normalized],
    stats: dict[str, tuple[int, int]],
) -> tuple[Verdict, Scalar, str, str | None]:
    """Two or more decisive forms: variant, more-specific or contradiction, and a consensus."""
    more_specific_than: dict[str, set[str]] = defaultdict(set)
    contradictions: list[tuple[str, str]] = []
    for i, a in enumerate(values):
        for b in values[i + 1 :]:
            relation = relate(path, norms[a["form"]], norms[b["form"]])
            if relation is Relation.CONTRADICTION:
                contradictions.append((a["form"], b["form"]))
            elif relation is Relation.LEFT_MORE_SPECIFIC:
                more_specific_than[a["form"]].add(b["form"])
            elif relation is Relation.RIGHT_MORE_SPECIFIC:
                more_specific_than[b["form"]].add(a["form"])
    ranked = sorted(values, key=lambda v: _rank_key(v, stats))
    if contradictions:
        disputed = "; ".join(f"{a} vs {b}" for a, b in sorted(contradictions))
        counts = [norms[v["form"]].data for v in ranked]
        if all(isinstance(c, CountRange) for c in counts):
            # ACLED practice: report the conservative figure, note the dispute.
            lowest = min(ranked, key=lambda v: (_count_low(norms[v["form"]]), _rank_key(v, stats)))
            note = f"disputed: {disputed}"
            if any(isinstance(c, CountRange) and c.high is None for c in counts):
                note += " (ambiguous count: plural wording without a figure)"
            return "contradiction", lowest["value"], "conservative figure (lowest count)", note
        top, second = stats[ranked[0]["form"]][0], stats[ranked[1]["form"]][0]
        if top > second:
            return "contradiction", ranked[0]["value"], "most independent sources", f"disputed: {disputed}"
        return (
            "contradiction",
            None,
            "no consensus: independent sources split evenly",
            f"disputed: {disputed}",
        )
    if more_specific_than:
        less_specific = {f for forms in more_specific_than.values() for f in forms}
        candidates = [v for v in ranked if v["form"] not in less_specific]
        return "more-specific", candidates[0]["value"], "most specific compatible value", None
    return "variant", ranked[0]["value"], "most independent sources", None


def _count_low(norm: Normalized) -> int:
    return norm.data.low if isinstance(norm.data, CountRange) else 1 << 30


# Statements are words someone said, judged by how the articles quote them,
# never as a contradiction: one article quoting a clause and another the whole
# statement disagree about nothing. The articles are the witnesses that it was
# said, so ``same`` needs two articles; the independent sources are still the
# speakers, so a statement relayed by five outlets counts one.


def _covers(fuller: str, part: str) -> bool:
    """Every word of ``part`` is in ``fuller``, in the same order (forms of quote_key):
    an excerpt, or an excerpt with words cut out ("We acted ... to protect")."""
    remaining = iter(fuller.split())
    # ``in`` consumes the iterator up to the match, so the order is checked.
    return all(word in remaining for word in part.split())


def _judge_statement(path: str, cites: Sequence[_Cite], *, quote: bool) -> tuple[FieldDict, list[str]]:
    """The verdict for a statement's quote (``quote``) or speaker across its articles,
    and the forms the merged record carries: the fullest quotation first, then any
    quotation holding words the fullest lacks, so that no quoted words are dropped."""
    groups = _source_groups(cites)
    values, stats, _ = _value_dicts(cites, groups)
    words = {v["form"]: len(v["form"].split()) if quote else 0 for v in values}

    def support(value: FieldDict) -> tuple[int, int, int, str]:
        n_sources, n_articles = stats.get(value["form"], (0, 0))
        return (-n_sources, -words[value["form"]], -n_articles, value["form"])

    values.sort(key=support)
    decisive = [v for v in values if v["form"] in stats]
    deciding_articles = {c.article_id for c in cites if c.decides}
    verdict: Verdict
    consensus: Scalar = None
    rule: str | None = None
    note: str | None = None
    forms: list[str] = []
    if not decisive:
        verdict, note = "not-reported", _UNGROUNDED_ONLY
    else:
        if quote:
            fullest = sorted(decisive, key=lambda v: (-words[v["form"]], -stats[v["form"]][1], v["form"]))
            forms = [fullest[0]["form"]]
            for value in fullest[1:]:
                if not any(_covers(form, value["form"]) for form in forms):
                    forms.append(value["form"])
        else:
            forms = [decisive[0]["form"]]
        top = next(v for v in decisive if v["form"] == forms[0])
        consensus = top["value"]
        whole = {c.article_id for c in cites if c.decides and c.norm.form == forms[0]}
        # Articles that quote the statement only in part. An article that also
        # carries the fullest quotation (a lede repeating a clause of it) is not one.
        part_only = deciding_articles - whole
        if len(deciding_articles) == 1:
            verdict, rule = "single-source", "only source"
        elif not quote:
            # Several speaker ids only when _same_speaker accepts two (an agency and its parent).
            verdict = "same" if len(decisive) == 1 else "variant"
            rule = "all articles name the same speaker" if verdict == "same" else "most independent sources"
        elif not part_only and len(forms) == 1:
            verdict, rule = "same", "all articles quote the same words"
        else:
            verdict, rule = "partial", "fullest quotation"
        notes = []
        # Articles quoting words beyond the fullest quotation are told apart
        # from those quoting a part of it: the two notes below.
        beyond = {c.article_id for c in cites if c.decides and c.norm.form in forms[1:]}
        if quote and (part_only - beyond):
            notes.append(
                f"{len(part_only - beyond)} of {len(deciding_articles)} articles quote only part of it"
            )
        if len(forms) > 1:
            notes.append(
                f"{len(forms) - 1} quotation(s) hold words the fullest lacks; "
                "each is a further statement of the merged record"
            )
        note = "; ".join(notes) or None
    field = {
        "path": path,
        "verdict": verdict,
        "values": values,
        "consensus": consensus,
        "rule": rule,
        "note": _ungrounded_note(note, values, verdict),
        "n_articles": len({c.article_id for c in cites}),
        "n_independent_sources": len({groups[i] for i, c in enumerate(cites) if c.decides}),
        "sources": _grouped_speakers(cites, groups, [i for i, c in enumerate(cites) if c.decides]),
    }
    return field, forms


# --------------------------------------------------------------------------- incidents


def _scalar_cites(
    records: Sequence[IncidentRecord], contexts: Sequence[_RecordContext]
) -> dict[str, list[_Cite]]:
    """Every record's citation for every scalar field, in one pass over the records."""
    cites: dict[str, list[_Cite]] = {path: [] for path in _SCALAR_PATHS}
    for record, ctx in zip(records, contexts, strict=True):
        for section, names in SCALAR_SECTIONS.items():
            part = getattr(record, section)
            for name in names:
                cited = getattr(part, name)
                if cited is not None and cited.value is not None:
                    path = f"{section}.{name}"
                    cite = _cite(path, cited, record, ctx)
                    if cite is not None:
                        cites[path].append(cite)
    return cites


def _statement_cites(
    records: Sequence[IncidentRecord], slot: _Slot, contexts: Sequence[_RecordContext]
) -> tuple[list[_Cite], list[_Cite]]:
    speakers: list[_Cite] = []
    quotes: list[_Cite] = []
    for index, statement in slot.items:
        record: IncidentRecord = records[index]
        assert isinstance(statement, Statement)
        attribution = statement.speaker + (f" ({statement.affiliation})" if statement.affiliation else "")
        speaker = _statement_speaker_id(statement, record)
        said = _Cite(
            value=statement.speaker,
            norm=Normalized(speaker),
            article_id=record.article_id,
            outlet=record.provenance.outlet,
            quote=statement.quote,
            attribution=attribution,
            speaker=speaker,
            grounding=statement.grounding,
            decides=_decides(statement.grounding),
        )
        speakers.append(said)
        quote_norm = _normalize("statements[].quote", statement.quote, contexts[index])
        quotes.append(dataclasses.replace(said, value=statement.quote, norm=quote_norm))
    return speakers, quotes


def _fallback_speaker(attribution: str, outlet: str | None, article_id: str) -> str:
    """``identity.fallback_speaker``, cached across articles.

    The article id only scopes unnamed sources when the outlet is not known
    (``identity._scope``), so with an outlet it is left out of the key, and one outlet's
    "a spokesperson" is identified once, not once per article (a seventh of the run at 20k).
    """
    return _speaker_cached(attribution, outlet, None if outlet and outlet.strip() else article_id)


@lru_cache(maxsize=CACHE_SIZE)
def _speaker_cached(attribution: str, outlet: str | None, article_id: str | None) -> str:
    return identify(attribution, outlet=outlet, article_id=article_id).id


def _statement_speaker(statement: Statement, record: IncidentRecord) -> str:
    """A spokesperson speaks for their agency; anyone else for themselves."""
    own = _fallback_speaker(statement.speaker, record.provenance.outlet, record.article_id)
    if statement.affiliation and not own.startswith("agency:"):
        affiliated = _fallback_speaker(statement.affiliation, record.provenance.outlet, record.article_id)
        if affiliated.startswith("agency:"):
            return affiliated
    return own


def _best_cite(cites: Sequence[_Cite], form: str) -> _Cite | None:
    """The citation the merged record shows for a value: decisive first, then by article."""
    matching = [c for c in cites if c.norm.form == form]
    if not matching:
        return None
    return min(matching, key=lambda c: (not c.decides, c.article_id, c.quote))


def _consensus_form(verdict: FieldDict) -> str | None:
    if verdict.get("consensus") is None:
        return None
    return next((v["form"] for v in verdict["values"] if v["value"] == verdict["consensus"]), None)


def _merged_cited(verdict: FieldDict, cites: Sequence[_Cite]) -> dict[str, Any] | None:
    form = _consensus_form(verdict)
    cite = _best_cite(cites, form) if form is not None else None
    if cite is None:
        return None
    return {
        "value": verdict["consensus"],
        "quote": cite.quote,
        "attribution": cite.attribution,
        "speaker": cite.speaker,
        "grounding": cite.grounding,
    }


_SCALAR_PATHS = [f"{section}.{name}" for section, names in SCALAR_SECTIONS.items() for name in names]


def _incident_dict(cluster: Cluster) -> dict[str, Any]:
    # Read once: a spilled cluster's records are read back from disk each time they are iterated.
    records = tuple(cluster.records)
    contexts = [_context(r) for r in records]
    fields: list[FieldDict] = []
    merged: dict[str, Any] = {section: {} for section in SCALAR_SECTIONS}

    def add(path: str, cites: list[_Cite]) -> dict[str, Any] | None:
        verdict = _judge(path, cites)
        fields.append(verdict)
        return _merged_cited(verdict, cites)

    for path, cites in _scalar_cites(records, contexts).items():
        cited = add(path, cites)
        if cited is not None:
            section, name = path.split(".")
            merged[section][name] = cited

    def merge_slot(slot: Any, slot_index: int, section: str, field_names: Sequence[str]) -> dict[str, Any]:
        """Verdicts for one matched list item (a subject or an agency) across the records."""
        item_fields: dict[str, Any] = {}
        for name in field_names:
            template = f"{section}[].{name}"
            cites = [
                c
                for index, item in slot.items
                if (c := _cite(template, getattr(item, name), records[index], contexts[index])) is not None
            ]
            cited = add(f"{section}[{slot_index}].{name}", cites)
            if cited is not None:
                item_fields[name] = cited
        return item_fields

    merged["subjects"] = [
        merge_slot(slot, i, "subjects", SUBJECT_FIELDS) for i, slot in enumerate(_align_subjects(records))
    ]
    agencies = [
        merge_slot(slot, i, "agencies", AGENCY_FIELDS) for i, slot in enumerate(_align_agencies(records))
    ]
    merged["agencies"] = [agency for agency in agencies if "name" in agency]

    merged["statements"] = []
    further: list[dict[str, Any]] = []
    for slot_index, slot in enumerate(_align_statements(records)):
        speaker_cites, quote_cites = _statement_cites(records, slot, contexts)
        said_by, _ = _judge_statement(f"statements[{slot_index}].speaker", speaker_cites, quote=False)
        said, forms = _judge_statement(f"statements[{slot_index}].quote", quote_cites, quote=True)
        fields.extend((said_by, said))
        quote_values = {v["form"]: v["value"] for v in said["values"]}
        for n, form in enumerate(forms):
            cite = _best_cite(quote_cites, form)
            assert cite is not None  # every form comes from a citation
            statement = {
                # Speaker and quote citations share their evidence, so a quote
                # with a consensus has a speaker with one.
                "speaker": said_by["consensus"],
                "quote": quote_values[form],
                "speaker_id": cite.speaker,
                "grounding": cite.grounding,
            }
            # The fullest quotation of each statement stays at its slot's
            # index; quotations reaching beyond it follow all of them.
            (merged["statements"] if n == 0 else further).append(statement)
    merged["statements"].extend(further)

    _set_precisions(merged, fields)
    shape = {
        "id": cluster.id,
        "article_ids": [r.article_id for r in records],
        "joins": list(cluster.joins),
        "merged": merged,
        "fields": fields,
        "aliases": [],
        "stale_decisions": [],
    }
    shape["title"] = title_of(shape)
    return shape


def reconcile_cluster(cluster: Cluster) -> Incident:
    """Verdicts for every field of one incident, and its merged record."""
    return Incident.model_validate(_incident_dict(cluster))


_DATE_FORM_PRECISIONS = (
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "day"),
    (re.compile(r"^\d{4}-\d{2}-\d{2}/\d{4}-\d{2}-\d{2}$"), "week"),
    (re.compile(r"^\d{4}-\d{2}$"), "month"),
    (re.compile(r"^\d{4}$"), "year"),
)


def _date_precision(form: str) -> str:
    """The precision of a date form (see ``DateSpan.form``); 'unknown' for unparsed text."""
    return next((precision for pattern, precision in _DATE_FORM_PRECISIONS if pattern.match(form)), "unknown")


def _set_precisions(merged: dict[str, Any], fields: Sequence[FieldDict]) -> None:
    by_path = {f["path"]: f for f in fields}
    date_form = _consensus_form(by_path["when.date"])
    if date_form is not None:
        merged["when"]["precision"] = _date_precision(date_form)
    where = merged["where"]
    for name, precision in (
        ("place", "address"),
        ("city", "city"),
        ("county", "county"),
        ("state", "state"),
        ("country", "country"),
    ):
        if name in where:
            if name == "city":
                city_form = _consensus_form(by_path["where.city"]) or ""
                precision = "metro" if city_form.endswith("(area)") else "city"
            where["precision"] = precision
            break


def _conflict_dicts(incident: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "incident_id": incident["id"],
            "path": f["path"],
            "verdict": f["verdict"],
            "values": [{k: v for k, v in value.items() if k != "citations"} for value in f["values"]],
            "consensus": f.get("consensus"),
            "rule": f.get("rule"),
            "note": f.get("note"),
            "decision": f.get("decision"),
        }
        for f in incident["fields"]
        if f["verdict"] in FLAGGED_VERDICTS
    ]


_T = TypeVar("_T")
# A judge turns one cluster, the field decisions on it and its aliases into what the caller
# wants (a shape, or the lines to write), and the decisions that no longer apply.
_Judge = Callable[[Cluster, list[Decision], list[str], bool], tuple[_T, list[StaleDecision]]]
# Below this many incidents, starting worker processes costs more than it saves.
PARALLEL_MIN_INCIDENTS = 1000


def _judged_shape(
    cluster: Cluster, mine: list[Decision], aliases: list[str], with_desk: bool
) -> tuple[dict[str, Any], list[StaleDecision]]:
    shape = _incident_dict(cluster)
    stale: list[StaleDecision] = []
    if with_desk:
        shape["aliases"] = sorted(aliases)
        stale = apply_field_decisions(shape, mine)
        shape["stale_decisions"] = [s.model_dump(mode="json") for s in stale]
    return shape, stale


_Lines = tuple[str, list[tuple[str, str]]]


def _judged_lines(
    cluster: Cluster, mine: list[Decision], aliases: list[str], with_desk: bool
) -> tuple[_Lines, list[StaleDecision]]:
    """An incident's line of incidents.jsonl and its (line, verdict) pairs of conflicts.jsonl."""
    shape, stale = _judged_shape(cluster, mine, aliases, with_desk)
    # The shapes are written as they are, without building models: validating and dumping
    # them again would cost a third of the run. A test holds these bytes identical to
    # write_outputs(reconcile()).
    conflicts = [(_json_line(c), str(c["verdict"])) for c in _conflict_dicts(shape)]
    return (_json_line(_jsonable_incident(shape)), conflicts), stale


# What forked workers judge: set just before the pool forks, so they inherit it instead of
# having each cluster pickled to them; only a cluster's index travels, and its lines come back.
_FORKED: tuple[list[Cluster], list[list[Decision]], list[list[str]], bool, _Judge[Any]] | None = None


def _judge_forked(index: int) -> tuple[Any, list[StaleDecision]]:
    assert _FORKED is not None
    clusters, mine, aliases, with_desk, judge = _FORKED
    return judge(clusters[index], mine[index], aliases[index], with_desk)


class ReconcileEngine(Protocol):
    """Where the two heavy passes of a reconcile run: clustering records into incidents, and
    judging each incident. Everything between them (stable ids, reviewers' decisions) runs in
    this process, so every engine settles the same ids and applies the same decisions.

    The default is :class:`LocalEngine`; ``pipeline.reconcile.ray_engine`` runs both passes on a
    Ray cluster."""

    def clusters(self, records: Iterable[IncidentRecord]) -> list[Cluster]:
        """The incidents, sorted by id, members by article id (``cluster.cluster_records``)."""
        ...

    def judge_all(
        self,
        clusters: Sequence[Cluster],
        mine: Sequence[list[Decision]],
        aliases: Sequence[list[str]],
        with_desk: bool,
        judge: _Judge[_T],
    ) -> Iterator[tuple[_T, list[StaleDecision]]]:
        """``judge`` applied to each cluster with its decisions and aliases, in the clusters' order."""
        ...


@dataclass
class LocalEngine:
    """Both passes in this machine: records in memory, or spilled to ``spill`` and judged by
    ``workers`` forked processes."""

    spill: RecordSpill | None = None
    workers: int = 1

    def clusters(self, records: Iterable[IncidentRecord]) -> list[Cluster]:
        if self.spill is None:
            return cluster_records(records)
        if isinstance(records, RecordLines):
            return spilled_clusters_from_lines(records, self.spill, workers=self.workers)
        return spilled_clusters(records, self.spill, workers=self.workers)

    def judge_all(
        self,
        clusters: Sequence[Cluster],
        mine: Sequence[list[Decision]],
        aliases: Sequence[list[str]],
        with_desk: bool,
        judge: _Judge[_T],
    ) -> Iterator[tuple[_T, list[StaleDecision]]]:
        global _FORKED
        context = fork_context() if self.workers > 1 and self.spill is not None else None
        if context is None or len(clusters) < PARALLEL_MIN_INCIDENTS:
            for cluster, decisions, alias in zip(clusters, mine, aliases, strict=True):
                yield judge(cluster, decisions, alias, with_desk)
            return
        get_gazetteer()  # loaded once here, not once in each worker
        # Only with a spill: workers read their incidents' records from its file, so the
        # parent holds no records for them to copy. (With records in memory, forked workers
        # copied the records' pages as reference counts changed, and one process was faster.)
        _FORKED = (list(clusters), list(mine), list(aliases), with_desk, judge)
        try:
            with context.Pool(self.workers) as pool:
                yield from pool.imap(_judge_forked, range(len(clusters)), chunksize=8)
        finally:
            _FORKED = None


def _iter_judged(
    records: Iterable[IncidentRecord],
    desk: DeskState | None,
    judge: _Judge[_T],
    *,
    engine: ReconcileEngine | None = None,
) -> Iterator[_T]:
    """Each incident judged by ``judge``, in id order. With ``desk``, incidents keep the ids
    they had (``pipeline.reconcile.stable``) and reviewers' decisions are applied
    (``pipeline.reconcile.decide``); ``desk`` then holds the ids settled on. ``engine`` runs
    the clustering and judging passes (by default in memory, in this process)."""
    if engine is None:
        engine = LocalEngine()
    # Reconciling allocates millions of small objects and no reference cycles;
    # the cyclic collector would rescan the input records over and over (half
    # the run time at 10k records), so it is paused while this runs.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        clusters = engine.clusters(records)
        decided: dict[str, list[Decision]] = {}
        if desk is not None:
            regroupings = [d for d in desk.decisions if d.action in ("merge", "split")]
            clusters = regroup(clusters, sorted(regroupings, key=lambda d: d.seq or 0), desk)
            desk.assignment = assign_ids(
                clusters, desk.previous, desk.created_at, at=desk.at or datetime.now(UTC)
            )
            clusters = desk.assignment.clusters
            for old, into in desk.assignment.merged.items():
                desk.aliases.setdefault(into, []).append(old)
            decided = field_decisions(desk)
        mine = [decided.pop(cluster.id, []) for cluster in clusters]
        aliases = [desk.aliases.get(cluster.id, []) if desk is not None else [] for cluster in clusters]
        judged_all = engine.judge_all(clusters, mine, aliases, desk is not None, judge)
        for index, (judged, stale) in enumerate(judged_all):
            if desk is not None:
                desk.applied += len(mine[index]) - len(stale)
                desk.stale.extend(stale)
            yield judged
        if desk is not None:  # decided is empty without a desk
            desk.stale.extend(
                StaleDecision(decision=d, reason="its incident no longer exists (split, or articles removed)")
                for gone in decided.values()
                for d in gone
            )
    finally:
        clear_caches()
        _normalize_cached.cache_clear()
        _speaker_cached.cache_clear()
        # The speaker table can change between runs (TRIANGULATE_SPEAKERS): sources are per run.
        counts_under.cache_clear()
        if gc_was_enabled:
            gc.enable()


def _iter_shapes(
    records: Iterable[IncidentRecord], desk: DeskState | None = None
) -> Iterator[dict[str, Any]]:
    """Each incident as plain dicts in the shape of ``Incident``, in id order (see
    ``_iter_judged``)."""
    return _iter_judged(records, desk, _judged_shape)


def iter_incidents(
    records: Sequence[IncidentRecord], desk: DeskState | None = None
) -> Iterator[tuple[Incident, list[Conflict]]]:
    """Each incident with its conflicts, in incident-id order, one at a time.

    Each is validated as soon as it is built, so the intermediate dicts are
    freed at once; a caller that drops each incident keeps memory at the size
    of the input.
    """
    for shape in _iter_shapes(records, desk):
        conflicts = [Conflict.model_validate(c) for c in _conflict_dicts(shape)]
        yield Incident.model_validate(shape), conflicts


def reconcile(records: Sequence[IncidentRecord], *, desk: DeskState | None = None) -> ReconcileResult:
    """Cluster records into incidents and judge every field; independent of input order. With
    ``desk``, incidents keep their earlier ids and reviewers' decisions are applied."""
    incidents: list[Incident] = []
    conflicts: list[Conflict] = []
    for incident, flagged in iter_incidents(records, desk):
        incidents.append(incident)
        conflicts.extend(flagged)
    return ReconcileResult(incidents=incidents, conflicts=conflicts)


# --------------------------------------------------------------------------- files and CLI


def _json_line(data: Any) -> str:
    # orjson, not json.dumps: encoding the lines was a fifth of a large reconcile's time.
    # Keys sorted, so a line does not depend on the order its dict was built in.
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode("utf-8")


def _dump_line(model: Incident | Conflict) -> str:
    return _json_line(model.model_dump(mode="json"))


def _jsonable_incident(shape: dict[str, Any]) -> dict[str, Any]:
    """An incident shape as ``Incident.model_dump(mode="json")`` would give it.

    Only the parts holding models or needing schema defaults are converted;
    field verdicts are built JSON-ready.
    """
    return {
        **shape,
        "joins": [join.model_dump(mode="json") for join in shape["joins"]],
        "merged": IncidentFacts.model_validate(shape["merged"]).model_dump(mode="json"),
        "fields": [{"decision": None, **field} for field in shape["fields"]],
    }


def write_outputs(result: ReconcileResult, out_dir: Path) -> None:
    """``incidents.jsonl`` (one merged incident a line) and ``conflicts.jsonl`` (one flagged field a line).

    Both are replaced together (``pipeline.common.atomic``): a reader sees the old pair or the new one.
    """
    with (
        replaced_together() as files,
        files.open_text(out_dir / INCIDENTS_FILENAME) as inc_out,
        files.open_text(out_dir / CONFLICTS_FILENAME) as con_out,
    ):
        for incident in result.incidents:
            inc_out.write(_dump_line(incident) + "\n")
        for conflict in result.conflicts:
            con_out.write(_dump_line(conflict) + "\n")


@dataclass
class RunCounts:
    """What a streamed run wrote, for the summary line."""

    records: int = 0
    incidents: int = 0
    verdicts: Counter[str] = dataclasses.field(default_factory=Counter)


def reconcile_to_dir(
    records: Iterable[IncidentRecord],
    out_dir: Path,
    *,
    desk: DeskState | None = None,
    spill: bool | None = None,
    workers: int | None = None,
    engine: ReconcileEngine | None = None,
) -> RunCounts:
    """Reconcile and write both files as incidents are judged (the CLI path).

    The files are byte-for-byte those of ``write_outputs(reconcile(records))``, and like
    them replaced together. ``records`` that are not a sequence (a generator over
    records.jsonl or the run store) are read once and spilled to a temporary file beside
    ``out_dir``, so memory holds each record's clustering features and one incident's records,
    not the input; ``spill`` forces either way. A spilled run judges incidents in ``workers``
    processes (by default one per available CPU; the order and bytes do not change).
    ``engine`` runs the clustering and judging passes elsewhere (``pipeline.reconcile.ray_engine``);
    ``spill`` and ``workers`` are then not used.
    """
    if engine is not None:
        spill = False
    if spill is None:
        spill = not isinstance(records, Sequence)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if spill:
        out_dir.mkdir(parents=True, exist_ok=True)
    # In out_dir, not /tmp: the spill is as large as the input, and /tmp may be a small tmpfs.
    store = RecordSpill(out_dir) if spill else None
    try:
        counts = RunCounts()
        spilled_lines = store is not None and isinstance(records, RecordLines)
        if isinstance(records, Sequence):
            counts.records = len(records)
        elif not spilled_lines:
            records = _counted(records, counts)
        with (
            replaced_together() as files,
            files.open_text(out_dir / INCIDENTS_FILENAME) as inc_out,
            files.open_text(out_dir / CONFLICTS_FILENAME) as con_out,
        ):
            for incident, conflicts in _iter_judged(
                records, desk, _judged_lines, engine=engine or LocalEngine(store, workers)
            ):
                inc_out.write(incident + "\n")
                for line, verdict in conflicts:
                    con_out.write(line + "\n")
                    counts.verdicts[verdict] += 1
                counts.incidents += 1
        if spilled_lines:
            assert isinstance(records, RecordLines) and store is not None
            # Lines that were not records were spilled too, and noted in their errors.
            counts.records = len(store) - len(records.errors)
    finally:
        if store is not None:
            store.close()
    return counts


def _counted(records: Iterable[IncidentRecord], counts: RunCounts) -> Iterator[IncidentRecord]:
    """``records``, counted into ``counts.records`` as an engine reads them."""
    for record in records:
        counts.records += 1
        yield record


@dataclass(frozen=True)
class LoadError:
    line: int
    message: str


def load_records(path: Path) -> tuple[list[IncidentRecord], list[LoadError]]:
    """Records from a JSONL file; lines that are not valid records are reported, not dropped silently."""
    records: list[IncidentRecord] = []
    errors: list[LoadError] = []
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(IncidentRecord.model_validate_json(line))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "line"
                more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
                errors.append(LoadError(number, f"{where}: {first['msg']}{more}"))
    return records, errors


def summary(counts: RunCounts) -> str:
    detail = ", ".join(f"{counts.verdicts[v]} {v}" for v in FLAGGED_VERDICTS if counts.verdicts[v])
    return (
        f"reconciled {counts.records} record(s) into {counts.incidents} incident(s); "
        f"{sum(counts.verdicts.values())} flagged field(s)" + (f" ({detail})" if detail else "")
    )


# Re-exported for callers that only need the pieces.
__all__ = [
    "judge_field",
    "load_records",
    "reconcile",
    "reconcile_cluster",
    "reconcile_to_dir",
    "iter_incidents",
    "write_outputs",
]
