"""``triangulate report DIR``: one self-contained HTML page for reviewing a run.

For each incident the page shows the merged record, every field's verdict
(colour and label), and every value with the citations behind it (outlet,
article, attribution and speaker, grounding status). Clicking a citation
scrolls to its article and highlights the quote at its grounded span; a quote
that was not found says so and highlights nothing.

The page works offline: CSS and JS are inlined, nothing is fetched, and a
Content-Security-Policy with the hashes of the inlined style and script
forbids anything else from loading or running. Article texts and every value
are untrusted input: they are HTML-escaped, and the copies the script uses to
highlight quotes travel as JSON (with ``<``, ``>`` and ``&`` escaped) and are
only ever inserted through ``textContent``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import sys
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.common.atomic import replaced_together
from pipeline.outputs.rundata import RunData, load_run
from pipeline.outputs.tables import TABLE_SCHEMA_VERSION, iter_cited
from pipeline.store.runfolder import REPORT_FILENAME
from schemas import SCHEMA_VERSION, Grounding, IncidentRecord
from schemas.incident import FLAGGED_VERDICTS, FieldVerdict, Incident, SourceCitation, ValueSupport

VERDICTS = ("agreed", "variant", "more-specific", "contradiction", "single-source", "not-reported")


def _asset(name: str) -> str:
    return resources.files("pipeline").joinpath("data", name).read_text(encoding="utf-8")


def _csp_hash(source: str) -> str:
    return (
        "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii") + "'"
    )


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _display(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _json_for_script(payload: Any) -> str:
    # Inside <script> only "</script" or "<!--" could end the block early; escaping every <, > and &
    # (and, via ensure_ascii, U+2028/2029) makes any text inert there while JSON.parse reads it back.
    text = json.dumps(payload, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


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


class _Page:
    def __init__(self, data: RunData) -> None:
        self.data = data
        self.groundings = _grounding_index(data.records)
        self.article_keys: dict[str, str] = {}
        self.texts: dict[str, str] = {}
        self.parts: list[str] = []

    def key(self, article_id: str) -> str:
        # Article ids hold ':' and are long; the page uses short, safe element ids.
        if article_id not in self.article_keys:
            key = f"a{len(self.article_keys)}"
            self.article_keys[article_id] = key
            article = self.data.article(article_id)
            if article is not None:
                self.texts[key] = article.text
        return self.article_keys[article_id]

    def out(self, *chunks: str) -> None:
        self.parts.extend(chunks)

    # -- pieces --

    def citation(self, citation: SourceCitation) -> None:
        article_id, quote, attribution = citation["article_id"], citation["quote"], citation["attribution"]
        key = self.key(article_id)
        article = self.data.article(article_id)
        status = citation["grounding"].value if citation["grounding"] is not None else "ungrounded"
        grounding = self.groundings.get((article_id, quote))
        attrs = [f'data-article="{key}"', f'data-status="{esc(status)}"']
        span_ok = (
            article is not None
            and grounding is not None
            and status != "unfound"
            and grounding.start is not None
            and grounding.end is not None
            and 0 <= grounding.start <= grounding.end <= len(article.text)
        )
        if span_ok:
            assert article is not None and grounding is not None
            assert grounding.start is not None and grounding.end is not None
            attrs.append(f'data-start="{utf16_offset(article.text, grounding.start)}"')
            attrs.append(f'data-end="{utf16_offset(article.text, grounding.end)}"')
        if status == "unfound":
            status_label = "not found in article"
        elif status == "ungrounded":
            status_label = "not grounded"
        else:
            status_label = status
        speaker = f" ({esc(citation['speaker'])})" if citation["speaker"] else ""
        outlet = citation["outlet"] or (article.outlet if article else None) or "unknown outlet"
        not_evidence = "" if citation["decides"] else ' · <span class="not-evidence">not evidence</span>'
        self.out(
            "<li>",
            f'<button type="button" class="evidence" aria-pressed="false" {" ".join(attrs)}>',
            '<span class="cite-meta">',
            f'<span class="outlet">{esc(outlet)}</span> · <code>{esc(_short(article_id))}</code>',
            f" · {esc(attribution)}{speaker}",
            f' · <span class="status status-{esc(status)}">{esc(status_label)}</span>{not_evidence}',
            "</span>",
            f'<q class="quote">{esc(quote)}</q>',
            "</button></li>",
        )

    def value(self, support: ValueSupport) -> None:
        sources = "source" if support.n_independent_sources == 1 else "sources"
        articles = "article" if support.n_articles == 1 else "articles"
        self.out(
            '<li class="value">',
            f'<span class="value-text">{esc(_display(support.value))}</span> ',
            f'<span class="support">{support.n_articles} {articles}, '
            f"{support.n_independent_sources} independent {sources}</span>",
            '<ul class="citations">',
        )
        for citation in support.citations:
            self.citation(citation)
        self.out("</ul></li>")

    def field(self, field: FieldVerdict, flagged_paths: set[str]) -> None:
        flagged = field.path in flagged_paths
        classes = f"field verdict-{esc(field.verdict)}" + (" flagged" if flagged else "")
        if field.consensus is not None:
            merged = f'<span class="merged-value">{esc(_display(field.consensus))}</span>'
        elif field.verdict == "contradiction":
            merged = '<span class="none">no consensus</span>'
        else:
            merged = '<span class="none">—</span>'
        notes = [n for n in (field.rule, field.note) if n]
        self.out(
            f'<tr class="{classes}" data-path="{esc(field.path)}" data-verdict="{esc(field.verdict)}">',
            f'<th scope="row"><code>{esc(field.path)}</code></th>',
            f"<td>{merged}",
            "".join(f'<div class="note">{esc(n)}</div>' for n in notes),
            "</td>",
            f'<td><span class="badge verdict-{esc(field.verdict)}">{esc(field.verdict)}</span></td>',
            '<td><ul class="values">',
        )
        for support in field.values:
            self.value(support)
        self.out("</ul></td></tr>")

    def article(self, article_id: str) -> None:
        key = self.key(article_id)
        article = self.data.article(article_id)
        self.out(f'<article class="source-article" id="article-{key}" data-article-id="{esc(article_id)}">')
        if article is None:
            self.out(
                f"<h4><code>{esc(article_id)}</code></h4>",
                '<p class="quote-note"></p>',
                '<p class="none">The text of this article is not available in this run.</p></article>',
            )
            return
        meta = [esc(article.published.isoformat()) if article.published else "no date"]
        if article.url:
            meta.append(_link(article.url))
        meta.append(f"<code>{esc(article.id)}</code>")
        if article.source_path:
            meta.append(esc(article.source_path))
        title = f" — {esc(article.title)}" if article.title else ""
        self.out(
            f"<h4>{esc(article.outlet or 'unknown outlet')}{title}</h4>",
            f'<div class="article-meta">{" · ".join(meta)}</div>',
            '<p class="quote-note" aria-live="polite"></p>',
            f'<div class="article-text" data-article="{key}">{esc(article.text)}</div>',
            "</article>",
        )

    def incident(self, incident: Incident) -> None:
        flagged_paths = {f.path for f in incident.fields if f.verdict in FLAGGED_VERDICTS}
        n_contradictions = sum(1 for f in incident.fields if f.verdict == "contradiction")
        outlets = sorted(
            {
                a.outlet
                for a in (self.data.article(i) for i in incident.article_ids)
                if a is not None and a.outlet
            }
        )
        has = " has-conflicts" if flagged_paths else ""
        self.out(
            f'<section class="incident{has}" id="incident-{esc(incident.id)}" '
            f'data-conflicts="{len(flagged_paths)}">',
            f"<h2>Incident <code>{esc(incident.id)}</code></h2>",
            f'<p class="incident-stats">{_plural(len(incident.article_ids), "article")} '
            f"({esc(', '.join(outlets))}) · "
            f'<span class="incident-conflicts">{len(flagged_paths)}</span> flagged · '
            f"{_plural(n_contradictions, 'contradiction')}</p>",
            '<table class="fields"><colgroup><col class="c-field"><col class="c-merged">'
            '<col class="c-verdict"><col class="c-values"></colgroup>',
            "<thead><tr><th>Field</th><th>Merged value</th><th>Verdict</th>"
            "<th>Values and their sources</th></tr></thead><tbody>",
        )
        for field in incident.fields:
            if field.verdict == "not-reported" and not field.values:
                continue
            self.field(field, flagged_paths)
        self.out("</tbody></table>", '<div class="articles"><h3>Articles</h3>')
        for article_id in incident.article_ids:
            self.article(article_id)
        self.out("</div></section>")

    def failures(self) -> None:
        failures = self.data.failures
        if not failures:
            return
        self.out(
            '<section class="failures" id="failures"><h2>Articles without a record</h2>',
            '<table class="failures"><thead><tr><th>Article</th><th>Source</th><th>Reason</th>'
            "<th>Detail</th></tr></thead><tbody>",
        )
        for failure in failures:
            self.out(
                f"<tr><td><code>{esc(_short(failure.article_id) if failure.article_id else '—')}</code></td>",
                f"<td>{esc(failure.source_path or '')}</td><td>{esc(failure.reason)}</td>",
                f"<td>{esc(failure.detail)}</td></tr>",
            )
        self.out("</tbody></table></section>")

    def render(self) -> str:
        data = self.data
        incidents = data.incidents.incidents
        n_conflicts = len(data.incidents.conflicts)
        css, js = _asset("report.css"), _asset("report.js")
        csp = (
            f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; "
            "img-src data:; base-uri 'none'; form-action 'none'"
        )
        title = f"triangulate review: {data.out_dir.resolve().name}"
        legend = "".join(f'<li><span class="badge verdict-{v}">{v}</span></li>' for v in VERDICTS)
        self.out(
            "<!DOCTYPE html>\n",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta name="generator" content="triangulate {esc(__version__)}; record schema '
            f'{esc(SCHEMA_VERSION)}; table schema {esc(TABLE_SCHEMA_VERSION)}">',
            f"<title>{esc(title)}</title>",
            f"<style>{css}</style></head><body>",
            '<header class="page">',
            f"<h1>{esc(title)}</h1>",
            '<p class="summary">',
            f'<strong id="incident-count">{len(incidents)}</strong> incidents · ',
            f'<strong id="record-count">{len(data.records)}</strong> records · ',
            f'<span id="conflict-count">{n_conflicts}</span> conflicts · ',
            f'<strong id="failure-count">{len(data.failures)}</strong> failures</p>',
            '<label class="filter"><input type="checkbox" id="conflicts-only"> Conflicts only</label>',
            f'<ul class="legend" aria-label="verdicts">{legend}</ul>',
            "</header><main>",
        )
        if data.warnings:
            self.out('<div class="warnings"><ul>')
            self.out(*(f"<li>{esc(w)}</li>" for w in data.warnings))
            self.out("</ul></div>")
        if not incidents:
            self.out('<p class="none">No incidents: the run has no records yet.</p>')
        # Most contradicted first: that is where a reviewer's time goes.
        for incident in sorted(incidents, key=_review_order):
            self.incident(incident)
        self.failures()
        self.out(
            "</main>",
            f'<script type="application/json" id="triangulate-data">{_json_for_script({"texts": self.texts})}'
            "</script>",
            f"<script>{js}</script></body></html>\n",
        )
        return "".join(self.parts)


def _review_order(incident: Incident) -> tuple[int, int, str]:
    contradictions = sum(1 for f in incident.fields if f.verdict == "contradiction")
    flagged = sum(1 for f in incident.fields if f.verdict in FLAGGED_VERDICTS)
    return (-contradictions, -flagged, incident.id)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _short(article_id: str) -> str:
    return article_id.removeprefix("sha256:")[:10]


def _link(url: str) -> str:
    # Only web links become clickable: a javascript: or data: URL in untrusted metadata stays text.
    if url.lower().startswith(("http://", "https://")):
        return f'<a href="{esc(url)}" rel="noopener noreferrer nofollow">{esc(url)}</a>'
    return esc(url)


def render_report(data: RunData) -> str:
    """The review page for a loaded run, as one HTML string."""
    return _Page(data).render()


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


__all__: Sequence[str] = ["render_report", "write_report", "utf16_offset"]
