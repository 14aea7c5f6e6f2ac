"""``triangulate report DIR``: one self-contained HTML page for reviewing a run.

For each incident the page shows the merged record, every field's verdict
(colour and label), and every value with the citations behind it (outlet,
article, attribution and speaker, grounding status). Clicking a citation
scrolls to its article and highlights the quote at its grounded span; a quote
that was not found says so and highlights nothing.

The page works offline: CSS and JS are inlined, nothing is fetched, and a
Content-Security-Policy with the hashes of the inlined style and script
forbids anything else from loading or running.

Article texts and every value are untrusted input. This module only turns a
run into plain view data (the dataclasses below); the markup is in jinja2
templates (``pipeline/outputs/templates``) rendered with autoescape on, so
every value is HTML-escaped without anyone having to remember to. The copies
of the article texts the script uses to highlight quotes travel as JSON
(``|tojson``: ``<``, ``>``, ``&`` and ``'`` escaped) and are only ever inserted
through ``textContent``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
from markupsafe import Markup

from pipeline import __version__
from pipeline.common.atomic import replaced_together
from pipeline.outputs.rundata import RunData, load_run
from pipeline.outputs.tables import TABLE_SCHEMA_VERSION, iter_cited
from pipeline.store.runfolder import REPORT_FILENAME
from schemas import SCHEMA_VERSION, Article, FailureRow, Grounding, IncidentRecord
from schemas.incident import FLAGGED_VERDICTS, FieldVerdict, Incident, SourceCitation, ValueSupport, Verdict

# The legend lists every verdict the schema can give, in the schema's order.
VERDICTS: tuple[Verdict, ...] = typing.get_args(Verdict)

TEMPLATE = "report.html.j2"


# --------------------------------------------------------------------------- the template environment


class _Dedent(jinja2.ext.Extension):
    """Drops the indentation at the start of every template line before the template is parsed.

    The templates are indented for their readers; in the page that indentation would add a tenth
    to its size (every citation is several indented lines). Line breaks stay: they are whitespace
    between tags, and keep Jinja expressions split over lines apart. No template holds literal
    text whose leading spaces matter: article texts and quotes are values, which this never touches.
    """

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        return _LINE_INDENT.sub("", source)


_LINE_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


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


# --------------------------------------------------------------------------- view data


@dataclass(slots=True)
class InlineAsset:
    """A file of the package inlined into the page, and its hash for the Content-Security-Policy."""

    source: Markup
    """Marked safe: it is the package's own CSS or JS, never run data, and escaping would change it."""
    csp_hash: str


@dataclass(slots=True)
class CitationView:
    article_key: str
    status: str
    """The grounding status, or ``"ungrounded"`` when the record was never grounded."""
    status_label: str
    start: int | None
    """UTF-16 offsets of the quote in its article's text; None unless the quote was located there."""
    end: int | None
    outlet: str
    short_id: str
    attribution: str
    speaker: str
    decides: bool
    quote: str


@dataclass(slots=True)
class ValueView:
    text: str
    n_articles: int
    n_sources: int
    citations: list[CitationView]


@dataclass(slots=True)
class FieldView:
    path: str
    verdict: str
    flagged: bool
    consensus: str | None
    notes: list[str]
    """The rule that chose the consensus, then the reconciler's note."""
    values: list[ValueView]


@dataclass(slots=True)
class ArticleView:
    key: str
    article_id: str
    available: bool
    """False when the run does not hold the article's text: only its id is shown."""
    outlet: str
    title: str | None
    published: str | None
    url: str | None
    url_is_link: bool
    source_path: str | None
    text: str


@dataclass(slots=True)
class IncidentView:
    id: str
    n_articles: int
    outlets: list[str]
    n_flagged: int
    n_contradictions: int
    fields: list[FieldView]
    articles: list[ArticleView]


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
    n_conflicts: int
    n_failures: int
    verdicts: tuple[str, ...]
    warnings: list[str]
    incidents: list[IncidentView]
    failures: list[FailureView]
    texts: dict[str, str]
    """Article key -> article text, for the script (the JSON data block)."""


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
_STATUS_LABELS = {"unfound": "not found in article", "ungrounded": "not checked"}


class _Views:
    """Turns a loaded run into the page's view data."""

    def __init__(self, data: RunData) -> None:
        self.data = data
        self.groundings = _grounding_index(data.records)
        self.article_keys: dict[str, str] = {}
        self.texts: dict[str, str] = {}

    def key(self, article_id: str) -> str:
        # Article ids hold ':' and are long; the page uses short, safe element ids.
        if article_id not in self.article_keys:
            key = f"a{len(self.article_keys)}"
            self.article_keys[article_id] = key
            article = self.data.article(article_id)
            if article is not None:
                self.texts[key] = article.text
        return self.article_keys[article_id]

    def citation(self, citation: SourceCitation) -> CitationView:
        article_id, quote = citation["article_id"], citation["quote"]
        article = self.data.article(article_id)
        status = citation["grounding"].value if citation["grounding"] is not None else "ungrounded"
        grounding = self.groundings.get((article_id, quote))
        start = end = None
        if (
            article is not None
            and grounding is not None
            and status != "unfound"
            and grounding.start is not None
            and grounding.end is not None
            and 0 <= grounding.start <= grounding.end <= len(article.text)
        ):
            start = utf16_offset(article.text, grounding.start)
            end = utf16_offset(article.text, grounding.end)
        return CitationView(
            article_key=self.key(article_id),
            status=status,
            status_label=_STATUS_LABELS.get(status, status),
            start=start,
            end=end,
            outlet=citation["outlet"] or (article.outlet if article else None) or "unknown outlet",
            short_id=_short(article_id),
            attribution=citation["attribution"],
            speaker=citation["speaker"],
            decides=citation["decides"],
            quote=quote,
        )

    def value(self, support: ValueSupport) -> ValueView:
        return ValueView(
            text=_display(support.value),
            n_articles=support.n_articles,
            n_sources=support.n_independent_sources,
            citations=[self.citation(c) for c in support.citations],
        )

    def field(self, field: FieldVerdict, flagged_paths: set[str]) -> FieldView:
        return FieldView(
            path=field.path,
            verdict=field.verdict,
            flagged=field.path in flagged_paths,
            consensus=None if field.consensus is None else _display(field.consensus),
            notes=[n for n in (field.rule, field.note) if n],
            values=[self.value(v) for v in field.values],
        )

    def article(self, article_id: str) -> ArticleView:
        key = self.key(article_id)
        article: Article | None = self.data.article(article_id)
        if article is None:
            return ArticleView(key, article_id, False, "", None, None, None, False, None, "")
        return ArticleView(
            key=key,
            article_id=article_id,
            available=True,
            outlet=article.outlet or "unknown outlet",
            title=article.title or None,
            published=article.published.isoformat() if article.published else None,
            url=article.url or None,
            # Only web links become clickable: a javascript: or data: URL in untrusted metadata stays text.
            url_is_link=bool(article.url and article.url.lower().startswith(("http://", "https://"))),
            source_path=article.source_path or None,
            text=article.text,
        )

    def incident(self, incident: Incident) -> IncidentView:
        outlets = {
            a.outlet for a in map(self.data.article, incident.article_ids) if a is not None and a.outlet
        }
        flagged_paths = {f.path for f in incident.fields if f.verdict in FLAGGED_VERDICTS}
        # Fields before articles: article keys are handed out in that order, the order the page reads in.
        fields = [
            self.field(f, flagged_paths)
            for f in incident.fields
            if not (f.verdict == "not-reported" and not f.values)
        ]
        return IncidentView(
            id=incident.id,
            n_articles=len(incident.article_ids),
            outlets=sorted(outlets),
            n_flagged=len(flagged_paths),
            n_contradictions=sum(1 for f in incident.fields if f.verdict == "contradiction"),
            fields=fields,
            articles=[self.article(a) for a in incident.article_ids],
        )

    def failure(self, failure: FailureRow) -> FailureView:
        return FailureView(
            short_id=_short(failure.article_id) if failure.article_id else "—",
            source_path=failure.source_path or "",
            reason=failure.reason,
            detail=failure.detail,
        )

    def page(self) -> PageView:
        data = self.data
        css, js = _inline_asset("report.css", "style"), _inline_asset("report.js", "script")
        title = f"triangulate review: {data.out_dir.resolve().name}"
        # Most contradicted first: that is where a reviewer's time goes.
        incidents = [self.incident(i) for i in sorted(data.incidents.incidents, key=_review_order)]
        return PageView(
            title=title,
            generator=f"triangulate {__version__}; record schema {SCHEMA_VERSION}; "
            f"table schema {TABLE_SCHEMA_VERSION}",
            csp=f"default-src 'none'; style-src {css.csp_hash}; script-src {js.csp_hash}; "
            "img-src data:; base-uri 'none'; form-action 'none'",
            css=css,
            js=js,
            n_incidents=len(incidents),
            n_records=len(data.records),
            n_conflicts=len(data.incidents.conflicts),
            n_failures=len(data.failures),
            verdicts=VERDICTS,
            warnings=list(data.warnings),
            incidents=incidents,
            failures=[self.failure(f) for f in data.failures],
            texts=self.texts,
        )


def _review_order(incident: Incident) -> tuple[int, int, str]:
    contradictions = sum(1 for f in incident.fields if f.verdict == "contradiction")
    flagged = sum(1 for f in incident.fields if f.verdict in FLAGGED_VERDICTS)
    return (-contradictions, -flagged, incident.id)


def _short(article_id: str) -> str:
    return article_id.removeprefix("sha256:")[:10]


# --------------------------------------------------------------------------- the page


def page_view(data: RunData) -> PageView:
    """What the review page shows for a loaded run, as plain data (no markup)."""
    return _Views(data).page()


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


__all__: Sequence[str] = ["page_view", "render_report", "report_environment", "utf16_offset", "write_report"]
