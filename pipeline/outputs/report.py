"""``triangulate report DIR``: one self-contained HTML page for reviewing and sharing a run.

The page opens on a summary line of what it holds, the model(s) that made the records, and an
index of incidents (by title, most contradicted first) with a search box and filters by verdict
and by review state. Choosing an incident shows its fields in review order (contradictions
first), every value with the citations behind it, and the reviewers' decisions; a click on a
citation shows the quote highlighted in its surrounding text right below the field. A table of
every decision and its state, and the articles without a record, close the page.

Size and speed: a run of 2,000 records must stay a page a browser opens in a moment. So the
server renders only what the page opens on (header, index, decisions, failures); each incident
travels as compact JSON and is drawn by ``report.js`` when it is chosen, and each article's text
travels once, from which the script cuts both the quotes shown with citations and the context
shown around them (a quote found verbatim is sent only as its offsets).

The page works offline: CSS and JS are inlined, nothing is fetched, and a Content-Security-Policy
with the hashes of the inlined style and script forbids anything else from loading or running.

Article texts and every value are untrusted input. The server-rendered part comes from jinja2
templates (``pipeline/outputs/templates``) rendered with autoescape on, so every value is
HTML-escaped without anyone having to remember to. The JSON data block is escaped for a script
element (:func:`script_json`), and the script only ever inserts its strings as text
(``textContent``, text nodes), never as markup.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
import typing
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
from markupsafe import Markup

from pipeline import __version__
from pipeline.common.atomic import replaced_together
from pipeline.kinds.identity import display_speaker
from pipeline.outputs.rundata import DecisionState, RunData, load_run
from pipeline.outputs.tables import TABLE_SCHEMA_VERSION
from pipeline.store.runfolder import REPORT_FILENAME
from schemas import SCHEMA_VERSION, FailureRow, Grounding, IncidentRecord
from schemas.desk import AppliedDecision, Decision
from schemas.fields import iter_cited
from schemas.incident import FLAGGED_VERDICTS, FieldVerdict, Incident, SourceCitation, ValueSupport, Verdict
from schemas.record import GroundingStatus, Provenance

# The legend lists every verdict the schema can give, in the schema's order.
VERDICTS: tuple[Verdict, ...] = typing.get_args(Verdict)

TEMPLATE = "report.html.j2"

# Most urgent first: where a reviewer's time goes. A flagged verdict added to the schema and not
# named here still counts and shows, after these (see review_rank).
_URGENCY: tuple[str, ...] = ("contradiction", "more-specific", "variant", "single-source", "partial")


def review_rank(verdict: str) -> int:
    """Where a field with this verdict goes in review order: contradictions, then the other flagged
    verdicts, then the rest (each group in the schema's order where _URGENCY does not say)."""
    if verdict in FLAGGED_VERDICTS:
        return _URGENCY.index(verdict) if verdict in _URGENCY else len(_URGENCY)
    return len(_URGENCY) + 1 + (VERDICTS.index(verdict) if verdict in VERDICTS else len(VERDICTS))


def flagged_verdicts_in_review_order() -> list[Verdict]:
    return sorted(FLAGGED_VERDICTS, key=lambda v: (review_rank(v), FLAGGED_VERDICTS.index(v)))


# Verdicts that are nouns take a plural ("3 contradictions"); the adjectives stay as they are
# ("2 more-specific").
_NOUN_PLURALS = {"contradiction": "contradictions", "variant": "variants"}


def flagged_summary(counts: Mapping[str, int]) -> str:
    """The flagged fields by verdict, most urgent first:
    "22 flagged: 3 contradictions, 2 more-specific, 6 variants, 11 single-source, 0 partial".

    Every flagged verdict of the schema is named, zero or not, so the line says what was looked for
    as well as what was found.
    """
    verdicts = flagged_verdicts_in_review_order()
    total = sum(counts.get(v, 0) for v in verdicts)
    parts = []
    for verdict in verdicts:
        n = counts.get(verdict, 0)
        parts.append(f"{n:,} {_NOUN_PLURALS.get(verdict, verdict) if n != 1 else verdict}")
    return f"{total:,} flagged: " + ", ".join(parts)


# --------------------------------------------------------------------------- the template environment


class _Dedent(jinja2.ext.Extension):
    """Drops the indentation at the start of every template line before the template is parsed.

    The templates are indented for their readers; in the page that indentation would add to its
    size for nothing. Line breaks stay: they are whitespace between tags, and keep Jinja
    expressions split over lines apart. No template holds literal text whose leading spaces
    matter: article texts and quotes are values, which this never touches.
    """

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        return _LINE_INDENT.sub("", source)


_LINE_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


@cache
def report_environment() -> jinja2.Environment:
    """The jinja2 environment the review page is rendered with.

    ``autoescape=True`` rather than by file extension: every template here is HTML, and an
    extension rule (``.html.j2`` ends in ``.j2``) is one rename away from turning escaping off.
    ``StrictUndefined``: a misspelt name or attribute raises instead of rendering as nothing.
    ``trim_blocks``: a line holding only a ``{% tag %}`` leaves no empty line behind (so a line of
    inline text must not end with a tag, or it runs into the next line's text).
    """
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.outputs", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
        extensions=[_Dedent],
    )
    env.filters["plural"] = _plural
    return env


# Inside a <script> element only "</script" or "<!--" could end or derail it; escaping every <, >
# and & rules both out whatever the text holds. ' is escaped as jinja's |tojson does, so the JSON
# could also sit in a single-quoted attribute. U+2028/9 are legal in JSON but were line breaks to
# older JavaScript parsers; escaping them costs nothing.
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027"}
_SCRIPT_ESCAPES |= {"\u2028": "\\u2028", "\u2029": "\\u2029"}
_SCRIPT_UNSAFE = re.compile("[<>&'\u2028\u2029]")


def script_json(value: Any) -> Markup:
    """``value`` as JSON that can sit inside a ``<script type="application/json">`` element.

    Unlike jinja's ``|tojson``: compact (no spaces after separators) and UTF-8 rather than
    ``\\uXXXX`` for every non-ASCII character, which together take a fifth off a page of
    article texts; what needs escaping for the element is escaped all the same.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return Markup(_SCRIPT_UNSAFE.sub(lambda m: _SCRIPT_ESCAPES[m.group()], text))


# --------------------------------------------------------------------------- view data


@dataclass(slots=True)
class InlineAsset:
    """A file of the package inlined into the page, and its hash for the Content-Security-Policy."""

    source: Markup
    """Marked safe: it is the package's own CSS or JS, never run data, and escaping would change it."""
    csp_hash: str


@dataclass(slots=True)
class ModelView:
    """One model setup (model, provider, plan, prompt) and how many of the run's records it made."""

    label: str
    model: str
    provider: str | None
    plan: str | None
    prompt_hash: str | None
    n_records: int


@dataclass(slots=True)
class IndexRow:
    """One incident in the index. The incident itself travels as JSON (``report.js`` draws it)."""

    id: str
    title: str
    aliases: list[str]
    n_articles: int
    outlets: list[str]
    n_flagged: int
    n_contradictions: int
    n_decided: int
    n_stale: int
    verdicts: str
    """The flagged verdicts among its fields, space-separated (the verdict filter matches one)."""
    review: str
    """Its review states, space-separated: ``decided``, ``undecided``, ``stale`` (the state filter)."""
    search: str
    """What the search box looks in: title, id, aliases, outlets and every name any source gives."""
    flagged_line: str


@dataclass(slots=True)
class DecisionView:
    seq: int | None
    at: str
    by: str
    incident_id: str
    incident_title: str | None
    """None when the incident is not on the page: the decision names it by id, without a link."""
    action: str
    field_path: str
    value: str
    note: str
    state: str
    state_kind: str
    """``applied``, ``superseded`` or ``stale``: the class that colours the state."""


@dataclass(slots=True)
class FailureView:
    short_id: str
    source_path: str
    reason: str
    detail: str


@dataclass(slots=True)
class PageView:
    title: str
    generator: str
    csp: str
    css: InlineAsset
    js: InlineAsset
    n_incidents: int
    n_records: int
    n_flagged: int
    n_contradictions: int
    n_failures: int
    summary: str
    """What the page holds, in one line (see summary_line)."""
    summary_parts: tuple[str, str, str]
    """The same line around its count of flagged fields, which the page marks as
    ``#conflict-count`` (scripts and tests read the number there)."""
    grounding: str
    """How the citations behind the values stand (see grounding_line)."""
    models: list[ModelView]
    verdicts: tuple[str, ...]
    verdict_filters: list[Verdict]
    warnings: list[str]
    rows: list[IndexRow]
    decisions: list[DecisionView]
    n_stale_decisions: int
    failures: list[FailureView]
    data: Markup
    """The JSON data block's content: incidents, articles and their texts, for the script."""


def _inline_asset(name: str, element: str) -> InlineAsset:
    source = resources.files("pipeline").joinpath("data", name).read_text(encoding="utf-8")
    # Inside <style>/<script> only the closing tag could end the element early; our own files never
    # hold one, and this keeps an edit that adds one from silently breaking the page.
    if f"</{element}" in source.lower():
        raise ValueError(f"pipeline/data/{name} holds '</{element}', which would end its inline element")
    digest = base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii")
    return InlineAsset(Markup(source), f"'sha256-{digest}'")


def _display(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def utf16_offset(text: str, index: int) -> int:
    """A Python (code point) offset as a JavaScript (UTF-16 code unit) offset into the same string."""
    if text.isascii():
        return index
    return len(text[:index].encode("utf-16-le")) // 2


def _grounding_index(records: Iterable[IncidentRecord]) -> dict[tuple[str, str], Grounding]:
    """(article id, quote) -> where that quote was grounded in that article.

    Citations in incidents carry the quote and grounding status but no offsets; the records that
    cited the quote hold the span. A quote is grounded the same way wherever it appears in one article.
    """
    index: dict[tuple[str, str], Grounding] = {}
    for record in records:
        for _, cited in iter_cited(record):
            if cited.grounding is not None:
                index.setdefault((record.article_id, cited.quote), cited.grounding)
        for statement in record.statements:
            if statement.grounding is not None:
                index.setdefault((record.article_id, statement.quote), statement.grounding)
    return index


# A value never located in its article (its text was not available to ground it) was not
# checked: saying "not found" would claim a search that never happened.
STATUS_LABELS = {"unfound": "not found in article", "ungrounded": "not checked"}


def _short(article_id: str) -> str:
    return article_id.removeprefix("sha256:")[:10]


def _fold(text: str) -> str:
    """Lower case without accents, for the search box ("pena" finds "Peña"); report.js folds the
    query the same way."""
    decomposed = unicodedata.normalize("NFD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _model_label(provenance: Provenance) -> str:
    parts = [provenance.model or "unknown model"]
    if provenance.provider:
        parts[0] += f" ({provenance.provider})"
    if provenance.plan:
        parts.append(f"plan {provenance.plan}")
    if provenance.prompt_hash:
        parts.append(f"prompt {provenance.prompt_hash[:12]}")
    return " · ".join(parts)


def _who(attribution: str, speaker: str) -> str:
    """Who a citation quotes: the attribution as the article gives it, and the speaker it was
    counted as when that says more ("DHS spokesperson Carla Whitfield (DHS)"). A speaker label
    that starts with the attribution replaces it rather than repeat it ("Tempe police (Tempe)",
    not "Tempe police (Tempe police (Tempe))")."""
    if not speaker or _fold(speaker) == _fold(attribution):
        return attribution
    if not attribution or _fold(speaker).startswith(_fold(attribution)):
        return speaker
    return f"{attribution} ({speaker})"


def _decision_value(action: str, value: Any) -> str:
    if action in ("merge", "split"):
        return ""
    return "—" if value is None else _display(value)


def _when(at: datetime) -> str:
    """A decision's time, to the minute: enough to tell decisions apart, short enough to read."""
    return at.strftime("%Y-%m-%d %H:%M %Z").strip()


class _Strings:
    """Strings that repeat across fields and citations (paths, verdicts, notes, values, speakers,
    grounding statuses), sent once each and referred to by position."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        found = self.index.get(text)
        if found is None:
            found = self.index[text] = len(self.index)
        return found

    def table(self) -> list[str]:
        return list(self.index)


class _Page:
    """Turns a loaded run into the page's view data and its JSON data block.

    The JSON's shape (arrays rather than objects below the top level: a run of 2,000 records has
    some 30,000 citations, and key names would repeat in each)::

        strings:   [str]                       shared strings, by index ("s" below)
        models:    [label]                     one per model setup
        statusLabels: {status: label}
        flagged:   [verdict]                   the schema's flagged verdicts
        articles:  [[id, outlet, title, published, url, url_is_link, source_path, model]]
        texts:     [text | null]               parallel to articles; null: not in the run
        incidents: [{id, title, aliases, line, articles: [article], stale: [stale decision],
                     fields: [[path s, verdict s, consensus s, [note s], [value], decision]]}]
                    decision absent when the field has none
          value:    [text s, n_articles, n_sources, [source label s], [citation]]
          citation: [article, who s, status s, decides, start, end, quote]
                    who: the attribution, and the speaker it counts as (_who)
                    start/end: UTF-16 offsets into the article's text (JavaScript's units), absent
                    when the quote was not located; quote absent when it is exactly the text
                    between them (the script cuts it from the text)
          decision: [action, value, note, by, at, seq]
          stale decision: [seq, action, field, value, note, by, at, reason]

    Incidents are in index order; article and model numbers are positions in their lists.
    """

    def __init__(self, data: RunData) -> None:
        self.data = data
        self.groundings = _grounding_index(data.records)
        self.strings = _Strings()
        self.article_index: dict[str, int] = {}
        self.articles: list[list[Any]] = []
        self.texts: list[str | None] = []
        self.speakers: dict[str, str] = {}
        self.provenance = {r.article_id: r.provenance for r in data.records}
        self.model_index: dict[str, int] = {}
        self.statuses: Counter[str] = Counter()

    # -- articles and models

    def model(self, provenance: Provenance | None) -> int:
        if provenance is None:
            return -1
        label = _model_label(provenance)
        return self.model_index.setdefault(label, len(self.model_index))

    def article(self, article_id: str, outlet: str | None = None) -> int:
        found = self.article_index.get(article_id)
        if found is not None:
            return found
        article = self.data.article(article_id)
        number = self.article_index[article_id] = len(self.articles)
        model = self.model(self.provenance.get(article_id))
        if article is None:
            self.articles.append([article_id, outlet or "unknown outlet", None, None, None, 0, None, model])
            self.texts.append(None)
            return number
        url = article.url or None
        # Only web links become clickable: a javascript: or data: URL in untrusted metadata stays text.
        is_link = bool(url and url.lower().startswith(("http://", "https://")))
        self.articles.append(
            [
                article_id,
                article.outlet or outlet or "unknown outlet",
                article.title or None,
                article.published.isoformat() if article.published else None,
                url,
                int(is_link),
                article.source_path or None,
                model,
            ]
        )
        self.texts.append(article.text)
        return number

    def models(self) -> list[ModelView]:
        counts: Counter[str] = Counter()
        first: dict[str, Provenance] = {}
        for record in self.data.records:
            label = _model_label(record.provenance)
            counts[label] += 1
            first.setdefault(label, record.provenance)
        return [
            ModelView(
                label=label,
                model=first[label].model or "unknown model",
                provider=first[label].provider,
                plan=first[label].plan,
                prompt_hash=first[label].prompt_hash,
                n_records=n,
            )
            for label, n in counts.most_common()
        ]

    # -- incidents

    def speaker(self, speaker_id: str) -> str:
        label = self.speakers.get(speaker_id)
        if label is None:
            # A speaker that is no canonical id (a fallback from the attribution) has no label.
            label = self.speakers[speaker_id] = display_speaker(speaker_id) or speaker_id
        return label

    def citation(self, citation: SourceCitation) -> list[Any]:
        article_id, quote = citation["article_id"], citation["quote"]
        number = self.article(article_id, citation["outlet"])
        text = self.texts[number]
        status = citation["grounding"].value if citation["grounding"] is not None else "ungrounded"
        self.statuses[status] += 1
        speaker = self.speaker(citation["speaker"]) if citation["speaker"] else ""
        row: list[Any] = [
            number,
            self.strings(_who(citation["attribution"], speaker)),
            self.strings(status),
            int(citation["decides"]),
        ]
        grounding = self.groundings.get((article_id, quote))
        if (
            text is not None
            and grounding is not None
            and status != "unfound"
            and grounding.start is not None
            and grounding.end is not None
            and 0 <= grounding.start <= grounding.end <= len(text)
        ):
            row += [utf16_offset(text, grounding.start), utf16_offset(text, grounding.end)]
            if text[grounding.start : grounding.end] != quote:
                row.append(quote)
        else:
            row += [None, None, quote]
        return row

    def value(self, support: ValueSupport) -> list[Any]:
        sources = [self.strings(self.speaker(source)) for source in support.sources]
        return [
            self.strings(_display(support.value)),
            support.n_articles,
            support.n_independent_sources,
            sources,
            [self.citation(c) for c in support.citations],
        ]

    def field(self, field: FieldVerdict) -> list[Any]:
        # Paths, verdicts, the reconciler's notes and common values repeat from incident to
        # incident: each is sent once, in the string table.
        row: list[Any] = [
            self.strings(field.path),
            self.strings(field.verdict),
            None if field.consensus is None else self.strings(_display(field.consensus)),
            [self.strings(n) for n in (field.rule, field.note) if n],
            [self.value(v) for v in field.values],
        ]
        if field.decision is not None:
            row.append(self.applied(field.decision))
        return row

    def applied(self, decision: AppliedDecision) -> list[Any]:
        value = None if decision.value is None else _display(decision.value)
        return [decision.action, value, decision.note, decision.by, _when(decision.at), decision.seq]

    def stale(self, decision: Decision, reason: str) -> list[Any]:
        return [
            decision.seq,
            decision.action,
            decision.field_path or "",
            _decision_value(decision.action, decision.value),
            decision.note,
            decision.by,
            _when(decision.at),
            reason,
        ]

    def incident(self, incident: Incident) -> tuple[IndexRow, dict[str, Any]]:
        # Fields the sources left empty are not shown: a row saying nothing for every incident.
        shown = [f for f in incident.fields if not (f.verdict == "not-reported" and not f.values)]
        shown.sort(key=lambda f: review_rank(f.verdict))  # stable: schema order within a verdict
        members = [self.article(a) for a in incident.article_ids]
        fields = [self.field(f) for f in shown]
        outlets = sorted({self.articles[n][1] for n in members if self.texts[n] is not None})
        counts: Counter[str] = Counter(f.verdict for f in incident.fields if f.verdict in FLAGGED_VERDICTS)
        n_flagged = sum(counts.values())
        n_decided = sum(1 for f in incident.fields if f.decision is not None)
        undecided = any(f.decision is None for f in incident.fields if f.verdict in FLAGGED_VERDICTS)
        review = [
            state
            for state, present in (
                ("decided", n_decided > 0),
                ("undecided", undecided),
                ("stale", bool(incident.stale_decisions)),
            )
            if present
        ]
        names = {
            _display(v.value)
            for f in incident.fields
            if f.path.endswith(".name") or f.path.endswith(".speaker")
            for v in f.values
        }
        search = " ".join([incident.title, incident.id, *incident.aliases, *outlets, *sorted(names)])
        line = f"{_plural(len(incident.article_ids), 'article')} ({', '.join(outlets) or 'no text'})"
        line += f" · {flagged_summary(counts)} · {n_decided:,} decided"
        row = IndexRow(
            id=incident.id,
            title=incident.title or incident.id,
            aliases=list(incident.aliases),
            n_articles=len(incident.article_ids),
            outlets=outlets,
            n_flagged=n_flagged,
            n_contradictions=counts["contradiction"],
            n_decided=n_decided,
            n_stale=len(incident.stale_decisions),
            verdicts=" ".join(v for v in flagged_verdicts_in_review_order() if counts[v]),
            review=" ".join(review),
            search=_fold(search),
            flagged_line=line,
        )
        payload = {
            "id": incident.id,
            "title": incident.title or incident.id,
            "aliases": list(incident.aliases),
            "line": line,
            "articles": members,
            "fields": fields,
            "stale": [self.stale(s.decision, s.reason) for s in incident.stale_decisions],
        }
        return row, payload

    # -- decisions and failures

    def decision(self, state: DecisionState, titles: Mapping[str, str]) -> DecisionView:
        d = state.decision
        if state.state == "applied":
            kind = "applied"
        elif state.state.startswith("superseded"):
            kind = "superseded"
        else:
            kind = "stale"
        # An incident no longer on the page (split away, or its decision superseded and then the
        # incident gone) is named by id without a link that would lead nowhere.
        title = titles.get(state.incident_id)
        target = d.field_path or ""
        if d.action == "merge":
            target = f"merge with {d.other_incident}"
        elif d.action == "split":
            target = f"split off {', '.join(_short(a) for a in d.article_ids)}"
        return DecisionView(
            seq=d.seq,
            at=_when(d.at),
            by=d.by,
            incident_id=state.incident_id,
            incident_title=title,
            action=d.action,
            field_path=target,
            value=_decision_value(d.action, d.value),
            note=d.note,
            state=state.state,
            state_kind=kind,
        )

    @staticmethod
    def failure(failure: FailureRow) -> FailureView:
        return FailureView(
            short_id=_short(failure.article_id) if failure.article_id else "—",
            source_path=failure.source_path or "",
            reason=failure.reason,
            detail=failure.detail,
        )

    # -- the page

    def page(self) -> PageView:
        data = self.data
        css, js = _inline_asset("report.css", "style"), _inline_asset("report.js", "script")
        title = f"triangulate review: {data.out_dir.resolve().name}"
        rows: list[IndexRow] = []
        payloads: list[dict[str, Any]] = []
        for incident in sorted(data.incidents.incidents, key=_review_order):
            row, payload = self.incident(incident)
            rows.append(row)
            payloads.append(payload)
        counts: Counter[str] = Counter(
            f.verdict for i in data.incidents.incidents for f in i.fields if f.verdict in FLAGGED_VERDICTS
        )
        titles = {r.id: r.title for r in rows}
        decisions = [self.decision(s, titles) for s in data.decisions]
        n_stale = sum(1 for d in decisions if d.state_kind == "stale")
        models = self.models()
        summary = summary_line(len(rows), len(data.records), counts)
        payload = {
            "strings": self.strings.table(),
            "models": list(self.model_index),
            "statusLabels": STATUS_LABELS,
            "flagged": list(FLAGGED_VERDICTS),
            "articles": self.articles,
            "texts": self.texts,
            "incidents": payloads,
        }
        return PageView(
            title=title,
            generator=f"triangulate {__version__}; record schema {SCHEMA_VERSION}; "
            f"table schema {TABLE_SCHEMA_VERSION}",
            csp=f"default-src 'none'; style-src {css.csp_hash}; script-src {js.csp_hash}; "
            "img-src data:; base-uri 'none'; form-action 'none'",
            css=css,
            js=js,
            n_incidents=len(rows),
            n_records=len(data.records),
            n_flagged=sum(counts.values()),
            n_contradictions=counts["contradiction"],
            n_failures=len(data.failures),
            summary=summary,
            summary_parts=_around_flagged_count(summary),
            grounding=grounding_line(self.statuses),
            models=models,
            verdicts=VERDICTS,
            verdict_filters=flagged_verdicts_in_review_order(),
            warnings=list(data.warnings),
            rows=rows,
            decisions=decisions,
            n_stale_decisions=n_stale,
            failures=[self.failure(f) for f in data.failures],
            data=script_json(payload),
        )


# The order a reader checks evidence in: located (most to least certain), not found, never checked.
_STATUS_ORDER = [
    *(s.value for s in GroundingStatus if s is not GroundingStatus.unfound),
    "unfound",
    "ungrounded",
]


def grounding_line(statuses: Mapping[str, int]) -> str:
    """How the citations on the page stand: "31,730 citations: 30,728 exact, 334 not found in article".

    Only the statuses that occur are named: "0 not found in article" on a page whose quotes were
    never searched for would still suggest a search.
    """
    order = _STATUS_ORDER + sorted(set(statuses) - set(_STATUS_ORDER))
    parts = [f"{statuses[s]:,} {STATUS_LABELS.get(s, s)}" for s in order if statuses.get(s)]
    line = _plural(sum(statuses.values()), "citation")
    return f"{line}: {', '.join(parts)}" if parts else line


def summary_line(n_incidents: int, n_records: int, flagged: Mapping[str, int]) -> str:
    """What the page holds, in one line: "367 incidents from 2,000 records; 2,210 flagged: ..."."""
    incidents = _plural(n_incidents, "incident")
    return f"{incidents} from {_plural(n_records, 'record')}; {flagged_summary(flagged)}"


def _around_flagged_count(summary: str) -> tuple[str, str, str]:
    lead, rest = summary.split("; ", 1)
    count, tail = rest.split(" ", 1)
    return f"{lead}; ", count, f" {tail}"


def _review_order(incident: Incident) -> tuple[int, int, str]:
    contradictions = sum(1 for f in incident.fields if f.verdict == "contradiction")
    flagged = sum(1 for f in incident.fields if f.verdict in FLAGGED_VERDICTS)
    return (-contradictions, -flagged, incident.id)


# --------------------------------------------------------------------------- the page


def page_view(data: RunData) -> PageView:
    """What the review page shows for a loaded run, as plain data (no markup) and the JSON block."""
    return _Page(data).page()


def render_report(data: RunData) -> str:
    """The review page for a loaded run, as one HTML string."""
    return report_environment().get_template(TEMPLATE).render(page=page_view(data))


def write_report(out_dir: Path, html_path: Path | None = None) -> Path:
    """Write the review page of a run directory (default ``DIR/report.html``); returns its path."""
    data = load_run(Path(out_dir))
    target = Path(html_path) if html_path else Path(out_dir) / REPORT_FILENAME
    page = render_report(data)
    with replaced_together() as files, files.open_text(target) as handle:
        handle.write(page)
    for warning in data.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return target


__all__: Sequence[str] = [
    "flagged_summary",
    "grounding_line",
    "page_view",
    "render_report",
    "report_environment",
    "review_rank",
    "script_json",
    "summary_line",
    "utf16_offset",
    "write_report",
]
