"""The review app's view data: plain dataclasses built from a loaded run, which the templates only
lay out. Nothing here writes; :class:`RunView` is one loaded state of a folder and everything the
pages need from it, built once per state (the app reloads it when the folder's files change).

Values, quotes, titles and article texts are untrusted; they stay plain strings here and the
templates escape them (autoescape). Evidence in context is cut here, in Python, on the article's
own character offsets, so the page never has to re-count characters (JavaScript counts UTF-16
units, which differ from Python's after an emoji).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, get_args

from pipeline.evidence.locate import Sentence, split_sentences
from pipeline.kinds.identity import display_speaker
from pipeline.outputs.rundata import DecisionState, RunData
from schemas import Grounding, IncidentRecord
from schemas.desk import AppliedDecision, StaleDecision
from schemas.fields import iter_cited
from schemas.incident import FLAGGED_VERDICTS, FieldVerdict, Incident, Scalar, SourceCitation

ReviewState = Literal["decided", "undecided", "stale"]
REVIEW_STATES: tuple[ReviewState, ...] = get_args(ReviewState)

# The order a reviewer meets flagged fields in: what the sources contradict first, then what
# they word or narrow differently, then what only one source says.
FLAGGED_ORDER: dict[str, int] = {
    verdict: rank
    for rank, verdict in enumerate(("contradiction", "variant", "more-specific", "partial", "single-source"))
}
assert set(FLAGGED_ORDER) == set(FLAGGED_VERDICTS), "every flagged verdict needs a place in the order"

# A quote never located in its article (its text was not available) was not checked: saying
# "not found" would claim a search that never happened. Same words as the static report.
STATUS_LABELS = {"unfound": "not found in article", "ungrounded": "not checked"}

# Context shown around a piece of evidence: the sentences on either side of the one holding it,
# each side cut to this many characters, so that a run-on paragraph cannot fill the screen.
CONTEXT_SENTENCES = 1
CONTEXT_CHARS = 360

_INDEX = re.compile(r"\[\d+\]")
_BLANK_LINES = re.compile(r"[ \t]*\n\s*\n\s*")
# Fields whose values are names: searched from the index along with titles, ids and outlets.
_NAME_FIELD = re.compile(r"(?:name|speaker|city|place|state)$")


def field_kind(path: str) -> str:
    """A field path without its list positions: ``subjects[0].name`` -> ``subjects[].name``, so
    the index can filter on "every subject's name" across incidents."""
    return _INDEX.sub("[]", path)


def shown(value: Scalar) -> str:
    """A value as the page prints it."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def as_json(value: Scalar) -> str:
    """A value as the page hands it back when a button is pressed (JSON keeps its type)."""
    return json.dumps(value, ensure_ascii=False)


def same_value(a: Scalar, b: Scalar) -> bool:
    # Compared as JSON, so that True and 1 (equal in Python) stay different values.
    return as_json(a) == as_json(b)


# --------------------------------------------------------------------------- the index


@dataclass(frozen=True)
class IndexQuery:
    """The index's search and filters; empty strings mean "any"."""

    q: str = ""
    verdict: str = ""
    field: str = ""
    state: str = ""

    def problems(self) -> list[str]:
        """What is wrong with the filters, for a 400 page (an unknown field simply matches nothing)."""
        problems = []
        if self.verdict and self.verdict not in FLAGGED_VERDICTS:
            problems.append(f"unknown verdict {self.verdict!r}; one of {', '.join(FLAGGED_VERDICTS)}")
        if self.state and self.state not in REVIEW_STATES:
            problems.append(f"unknown review state {self.state!r}; one of {', '.join(REVIEW_STATES)}")
        return problems

    @property
    def terms(self) -> list[str]:
        return self.q.casefold().split()

    @property
    def active(self) -> bool:
        return bool(self.q.strip() or self.verdict or self.field or self.state)


@dataclass(frozen=True)
class Flag:
    """One flagged field of an incident, as the index filters on it."""

    verdict: str
    kind: str
    decided: bool


@dataclass(frozen=True)
class IndexRow:
    id: str
    title: str
    aliases: tuple[str, ...]
    n_articles: int
    n_flagged: int
    n_contradictions: int
    n_open_contradictions: int
    n_decided: int
    n_stale: int
    outlets: tuple[str, ...]
    verdicts: tuple[str, ...]
    """The flagged verdicts present, in review order (for the row's badges)."""
    flags: tuple[Flag, ...]
    search_text: str
    """Casefolded: title, ids, article ids, outlets, names. The page filters on it too."""

    def matches(self, query: IndexQuery) -> bool:
        if any(term not in self.search_text for term in query.terms):
            return False
        if query.state == "stale" and not self.n_stale:
            return False
        if not (query.verdict or query.field or query.state in ("decided", "undecided")):
            return True
        # Verdict, field and decided/undecided describe one and the same flagged field: "an
        # undecided contradiction" is not "a contradiction, and some other field undecided".
        return any(
            (not query.verdict or flag.verdict == query.verdict)
            and (not query.field or flag.kind == query.field)
            and (query.state != "decided" or flag.decided)
            and (query.state != "undecided" or not flag.decided)
            for flag in self.flags
        )


@dataclass(frozen=True)
class IndexPage:
    rows: list[IndexRow]
    total: int
    query: IndexQuery
    verdicts: tuple[str, ...]
    field_kinds: list[str]
    states: tuple[str, ...]


# --------------------------------------------------------------------------- the incident view


@dataclass(frozen=True)
class Excerpt:
    """Evidence in context: ``lead`` + ``head`` + ``quote`` + ``tail`` + ``trail`` is a stretch of
    the article; ``head``/``quote``/``tail`` is the sentence (or sentences) holding the quote."""

    lead: str
    head: str
    quote: str
    tail: str
    trail: str
    clipped_lead: bool
    """More of the article comes before ``lead`` (the page shows an ellipsis)."""
    clipped_trail: bool


@dataclass(frozen=True)
class EvidenceView:
    article_id: str
    outlet: str
    speaker: str
    attribution: str
    quote: str
    status: str
    status_label: str
    decides: bool
    model: str
    excerpt: Excerpt | None
    """None when the quote was not located in a text the app has."""
    start: int | None
    end: int | None


@dataclass(frozen=True)
class ValueView:
    value: Scalar
    text: str
    json: str
    n_articles: int
    n_independent_sources: int
    sources: list[str]
    speakers: list[str]
    decides: bool
    is_consensus: bool
    is_decided: bool
    citations: list[EvidenceView]


@dataclass(frozen=True)
class FieldView:
    path: str
    anchor: str
    verdict: str
    flagged: bool
    consensus: Scalar
    consensus_text: str
    consensus_json: str
    rule: str | None
    note: str | None
    n_articles: int
    n_independent_sources: int
    sources: list[str]
    decision: AppliedDecision | None
    values: list[ValueView]
    stale: list[StaleDecision]


@dataclass(frozen=True)
class SourceView:
    """One article of the incident and how its record was made."""

    article_id: str
    outlet: str
    url: str | None
    """Only an http(s) address: any other scheme in a feed is shown as text, never linked."""
    url_text: str
    published: str
    source_path: str
    model: str
    provider: str
    plan: str
    prompt_hash: str
    has_text: bool


@dataclass(frozen=True)
class IncidentPage:
    id: str
    title: str
    aliases: tuple[str, ...]
    flagged: list[FieldView]
    others: list[FieldView]
    sources: list[SourceView]
    stale: list[StaleDecision]
    history: list[DecisionState]
    n_contradictions: int
    n_decided: int


@dataclass(frozen=True)
class ArticleSpan:
    """An article's whole text cut at one span, for the "whole article" toggle."""

    article_id: str
    outlet: str
    before: str
    quote: str
    after: str


# --------------------------------------------------------------------------- building them


def excerpt(text: str, sentences: Sequence[Sentence], start: int, end: int) -> Excerpt:
    """The sentence(s) holding ``text[start:end]``, with ``CONTEXT_SENTENCES`` on either side."""
    holding = [i for i, s in enumerate(sentences) if s.end > start and s.start < max(end, start + 1)]
    if holding:
        first, last = holding[0], holding[-1]
        sentence_start, sentence_end = min(sentences[first].start, start), max(sentences[last].end, end)
        lead_start = sentences[max(first - CONTEXT_SENTENCES, 0)].start
        trail_end = sentences[min(last + CONTEXT_SENTENCES, len(sentences) - 1)].end
    else:  # a span in whitespace only: show it with its neighbourhood
        sentence_start, sentence_end = start, end
        lead_start, trail_end = max(start - CONTEXT_CHARS, 0), min(end + CONTEXT_CHARS, len(text))
    lead_start = min(lead_start, sentence_start)
    trail_end = max(trail_end, sentence_end)
    if sentence_start - lead_start > CONTEXT_CHARS:
        lead_start = _word_start(text, sentence_start - CONTEXT_CHARS, sentence_start)
    if trail_end - sentence_end > CONTEXT_CHARS:
        trail_end = _word_end(text, sentence_end + CONTEXT_CHARS, sentence_end)
    return Excerpt(
        lead=_squeeze(text[lead_start:sentence_start]),
        head=_squeeze(text[sentence_start:start]),
        quote=text[start:end],
        tail=_squeeze(text[end:sentence_end]),
        trail=_squeeze(text[sentence_end:trail_end]),
        clipped_lead=bool(text[:lead_start].strip()),
        clipped_trail=bool(text[trail_end:].strip()),
    )


def _squeeze(context: str) -> str:
    # Blank lines between paragraphs become one line break: the excerpt stays a few lines tall,
    # and the whole article (shown as it is) is one click away.
    return _BLANK_LINES.sub("\n", context)


def _word_start(text: str, at: int, limit: int) -> int:
    """``at`` moved forward to the start of a word (not past ``limit``), so a cut never halves one."""
    space = text.find(" ", at, limit)
    return space + 1 if space != -1 else at


def _word_end(text: str, at: int, limit: int) -> int:
    space = text.rfind(" ", limit, at)
    return space if space != -1 else at


def evidence_of(verdict: FieldVerdict) -> list[dict[str, Scalar]]:
    """What the reviewer saw of a field when deciding: each value with its articles' quotes
    (stored with the decision, as ``triangulate decide`` does)."""
    return [
        {
            "value": value.value,
            "article_id": citation["article_id"],
            "outlet": citation["outlet"],
            "quote": citation["quote"],
        }
        for value in verdict.values
        for citation in value.citations
    ]


def _field_order(verdict: FieldVerdict, position: int) -> tuple[int, int]:
    return (FLAGGED_ORDER.get(verdict.verdict, len(FLAGGED_ORDER)), position)


@dataclass
class RunView:
    """One loaded state of a run folder, and the pages built from it."""

    data: RunData
    _sentences: dict[str, list[Sentence]] = field(default_factory=dict, repr=False)
    _groundings: dict[str, dict[str, Grounding]] = field(default_factory=dict, repr=False)

    @cached_property
    def incidents(self) -> dict[str, Incident]:
        return {incident.id: incident for incident in self.data.incidents.incidents}

    @cached_property
    def aliases(self) -> dict[str, str]:
        """An id an incident went by before a merge -> the incident it is part of now."""
        return {alias: incident.id for incident in self.incidents.values() for alias in incident.aliases}

    @cached_property
    def records(self) -> dict[str, IncidentRecord]:
        return {record.article_id: record for record in self.data.records}

    @cached_property
    def rows(self) -> list[IndexRow]:
        """Every incident, undecided contradictions first, then by contradictions and flags."""
        rows = [self._row(incident) for incident in self.incidents.values()]
        rows.sort(key=lambda r: (-r.n_open_contradictions, -r.n_contradictions, -r.n_flagged, r.title, r.id))
        return rows

    @cached_property
    def field_kinds(self) -> list[str]:
        return sorted({flag.kind for row in self.rows for flag in row.flags})

    def find(self, incident_id: str) -> Incident | None:
        """The incident by its id or by an id it had before a merge."""
        return self.incidents.get(incident_id) or self.incidents.get(self.aliases.get(incident_id, ""))

    # -- the index --

    def index(self, query: IndexQuery) -> IndexPage:
        rows = [row for row in self.rows if row.matches(query)] if query.active else self.rows
        return IndexPage(
            rows=rows,
            total=len(self.rows),
            query=query,
            verdicts=tuple(sorted(FLAGGED_VERDICTS, key=FLAGGED_ORDER.__getitem__)),
            field_kinds=self.field_kinds,
            states=REVIEW_STATES,
        )

    def _row(self, incident: Incident) -> IndexRow:
        flagged = [f for f in incident.fields if f.verdict in FLAGGED_VERDICTS]
        contradictions = [f for f in flagged if f.verdict == "contradiction"]
        outlets = sorted({self._outlet(article_id) for article_id in incident.article_ids})
        names = {
            shown(value.value)
            for f in incident.fields
            if _NAME_FIELD.search(f.path)
            for value in f.values
            if value.value is not None
        }
        words = [incident.title, incident.id, *incident.aliases, *incident.article_ids, *outlets]
        present = {f.verdict for f in flagged}
        return IndexRow(
            id=incident.id,
            title=incident.title or incident.id,
            aliases=tuple(incident.aliases),
            n_articles=len(incident.article_ids),
            n_flagged=len(flagged),
            n_contradictions=len(contradictions),
            n_open_contradictions=sum(1 for f in contradictions if f.decision is None),
            n_decided=sum(1 for f in incident.fields if f.decision is not None),
            n_stale=len(incident.stale_decisions),
            outlets=tuple(outlets),
            verdicts=tuple(sorted(present, key=FLAGGED_ORDER.__getitem__)),
            flags=tuple(Flag(f.verdict, field_kind(f.path), f.decision is not None) for f in flagged),
            search_text=" ".join([*words, *sorted(names)]).casefold(),
        )

    def _outlet(self, article_id: str) -> str:
        record = self.records.get(article_id)
        article = self.data.article(article_id)
        return (
            (record.provenance.outlet if record else None)
            or (article.outlet if article else None)
            or "unknown outlet"
        )

    # -- one incident --

    def incident(self, incident: Incident) -> IncidentPage:
        stale_by_field: dict[str, list[StaleDecision]] = {}
        for stale in incident.stale_decisions:
            stale_by_field.setdefault(stale.decision.field_path or "", []).append(stale)
        numbered = list(enumerate(incident.fields))
        flagged = sorted(
            ((i, f) for i, f in numbered if f.verdict in FLAGGED_VERDICTS),
            key=lambda p: _field_order(p[1], p[0]),
        )
        others = [(i, f) for i, f in numbered if f.verdict not in FLAGGED_VERDICTS]
        known = {incident.id, *incident.aliases}
        return IncidentPage(
            id=incident.id,
            title=incident.title or incident.id,
            aliases=tuple(incident.aliases),
            flagged=[self._field(f, i, stale_by_field.get(f.path, [])) for i, f in flagged],
            others=[self._field(f, i, stale_by_field.get(f.path, []), evidence=False) for i, f in others],
            sources=[self._source(article_id) for article_id in incident.article_ids],
            stale=list(incident.stale_decisions),
            history=[s for s in self.data.decisions if s.incident_id in known],
            n_contradictions=sum(1 for f in incident.fields if f.verdict == "contradiction"),
            n_decided=sum(1 for f in incident.fields if f.decision is not None),
        )

    def _field(
        self, verdict: FieldVerdict, position: int, stale: list[StaleDecision], *, evidence: bool = True
    ) -> FieldView:
        decision = verdict.decision
        return FieldView(
            path=verdict.path,
            anchor=f"field-{position}",
            verdict=verdict.verdict,
            flagged=verdict.verdict in FLAGGED_VERDICTS,
            consensus=verdict.consensus,
            consensus_text=shown(verdict.consensus),
            consensus_json=as_json(verdict.consensus),
            rule=verdict.rule,
            note=verdict.note,
            n_articles=verdict.n_articles,
            n_independent_sources=verdict.n_independent_sources,
            sources=[display_speaker(source) for source in verdict.sources],
            decision=decision,
            values=[
                ValueView(
                    value=value.value,
                    text=shown(value.value),
                    json=as_json(value.value),
                    n_articles=value.n_articles,
                    n_independent_sources=value.n_independent_sources,
                    sources=[display_speaker(source) for source in value.sources],
                    speakers=[display_speaker(speaker) for speaker in value.speakers],
                    decides=value.decides,
                    is_consensus=verdict.consensus is not None and same_value(value.value, verdict.consensus),
                    is_decided=decision is not None
                    and decision.action in ("accept", "set")
                    and same_value(value.value, decision.value),
                    citations=[self._evidence(c) for c in value.citations] if evidence else [],
                )
                for value in verdict.values
            ],
            stale=stale,
        )

    def _evidence(self, citation: SourceCitation) -> EvidenceView:
        article_id, quote = citation["article_id"], citation["quote"]
        status = citation["grounding"].value if citation["grounding"] is not None else "ungrounded"
        record = self.records.get(article_id)
        span = self._span(article_id, quote) if status != "unfound" else None
        article = self.data.article(article_id)
        cut = (
            excerpt(article.text, self._sentences_of(article_id, article.text), *span)
            if span is not None and article is not None
            else None
        )
        return EvidenceView(
            article_id=article_id,
            outlet=citation["outlet"] or self._outlet(article_id),
            speaker=display_speaker(citation["speaker"]) if citation["speaker"] else "",
            attribution=citation["attribution"],
            quote=quote,
            status=status,
            status_label=STATUS_LABELS.get(status, status),
            decides=citation["decides"],
            model=(record.provenance.model if record else None) or "unknown model",
            excerpt=cut,
            start=span[0] if span else None,
            end=span[1] if span else None,
        )

    def _span(self, article_id: str, quote: str) -> tuple[int, int] | None:
        """Where ``quote`` was grounded in the article, if the span fits the text the app has."""
        grounding = self._groundings_of(article_id).get(quote)
        article = self.data.article(article_id)
        if grounding is None or article is None or grounding.start is None or grounding.end is None:
            return None
        if not 0 <= grounding.start <= grounding.end <= len(article.text):
            return None
        return grounding.start, grounding.end

    def _groundings_of(self, article_id: str) -> dict[str, Grounding]:
        # Citations carry the quote and its status but no offsets; the record that cited the quote
        # holds the span, and a quote is grounded the same way wherever it recurs in one article.
        if article_id not in self._groundings:
            index: dict[str, Grounding] = {}
            record = self.records.get(article_id)
            if record is not None:
                for _, cited in iter_cited(record):
                    if cited.grounding is not None:
                        index.setdefault(cited.quote, cited.grounding)
                for statement in record.statements:
                    if statement.grounding is not None:
                        index.setdefault(statement.quote, statement.grounding)
            self._groundings[article_id] = index
        return self._groundings[article_id]

    def _sentences_of(self, article_id: str, text: str) -> list[Sentence]:
        if article_id not in self._sentences:
            self._sentences[article_id] = split_sentences(text)
        return self._sentences[article_id]

    def _source(self, article_id: str) -> SourceView:
        record = self.records.get(article_id)
        article = self.data.article(article_id)
        provenance = record.provenance if record else None
        url = (provenance.url if provenance else None) or (article.url if article else None) or ""
        published = (provenance.published if provenance else None) or (article.published if article else None)
        return SourceView(
            article_id=article_id,
            outlet=self._outlet(article_id),
            url=url if url.lower().startswith(("http://", "https://")) else None,
            url_text=url,
            published=published.isoformat() if published else "",
            source_path=(record.source_path if record else None)
            or (article.source_path if article else "")
            or "",
            model=(provenance.model if provenance else None) or "unknown",
            provider=(provenance.provider if provenance else None) or "",
            plan=(provenance.plan if provenance else None) or "",
            prompt_hash=(provenance.prompt_hash if provenance else None) or "",
            has_text=article is not None,
        )

    # -- the whole article --

    def article_span(self, article_id: str, start: int, end: int) -> ArticleSpan | None:
        """The article's text cut at ``start``/``end``; None for an unknown article. Raises
        ValueError for a span outside the text."""
        article = self.data.article(article_id)
        if article is None:
            return None
        if not 0 <= start <= end <= len(article.text):
            raise ValueError(f"span {start}-{end} is outside the article ({len(article.text)} characters)")
        return ArticleSpan(
            article_id=article_id,
            outlet=self._outlet(article_id),
            before=article.text[:start],
            quote=article.text[start:end],
            after=article.text[end:],
        )


def flagged_paths(incident: Incident) -> list[str]:
    return [f.path for f in incident.fields if f.verdict in FLAGGED_VERDICTS]


def verdict_of(incident: Incident, path: str) -> FieldVerdict | None:
    return next((f for f in incident.fields if f.path == path), None)


def typed_like(text: str, values: Iterable[Scalar]) -> Scalar:
    """A value the reviewer typed, given the type the sources' values have: a whole number for a
    field of numbers, true/false for a field of booleans; text otherwise."""
    kinds = {type(v) for v in values if v is not None}
    stripped = text.strip()
    if kinds == {bool} and stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    if kinds and kinds <= {int, float} and re.fullmatch(r"-?\d+", stripped):
        return int(stripped)
    return text
