"""The review page: what it holds and says, in what order, and that no value from a run becomes
markup or template code on it.

Hostile input: an article's outlet, title, text and source path, a record's values, quotes and
attributions, the reconciler's notes, failure rows and warnings all reach the page. The hostile
run below puts a script tag, an attribute break-out with an event handler, a bare ``</script>``
and a Jinja expression into each of them. The page renders some of them as HTML (escaped by the
templates) and carries the rest in its JSON data block (escaped for a script element), which
report.js inserts only as text; each must reach the reader as the literal text it is, in the
HTML and in a real Chromium.

What the page says: a summary line naming every flagged verdict, contradictions first; an index
in review order with counts that match the reconciler's files; fields in review order; every
decision with its state; which model setups made the records. Size: each article's text travels
once, and a quote found verbatim travels only as its offsets.

Also: the template environment fails loudly on a misspelt name, escapes by default, and ships
with the package; the legend follows the schema's verdicts.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
import typing
from collections.abc import Iterator
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jinja2
import pytest
from export_fixtures import REPO, c, hand_records, load_articles, two_incident_run, write_run
from test_report_browser import DECIDED_NOTE, DECIDED_PATH, HOSPITAL, review_run, start_chromium

import pipeline.outputs.report as report_module
from pipeline.evidence.ground import ground_record
from pipeline.outputs.report import (
    flagged_summary,
    grounding_line,
    page_view,
    render_report,
    report_environment,
    review_rank,
    script_json,
    summary_line,
)
from pipeline.outputs.rundata import RunData, load_run
from pipeline.store.runfolder import RunFolder
from schemas import Article, FailureRow, Incident, IncidentRecord, Provenance
from schemas.fields import field_kinds
from schemas.incident import FLAGGED_VERDICTS, Verdict

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
CLOSE = "</script>"
JINJA = "{{ 7*7 }}"


def hostile(label: str) -> str:
    """Every payload at once, after a label that says where it was put."""
    return f"{label} {SCRIPT} {BREAKOUT} {CLOSE} {JINJA}"


OUTLET = hostile("outlet")
TITLE = hostile("title")
SOURCE_PATH = hostile("path")
NAME = hostile("name")
QUOTE = hostile("quote")
ATTRIBUTION = hostile("attribution")
NOTE = hostile("note")
FAILURE_DETAIL = hostile("failure")
WARNING = hostile("warning")
URL = "https://example.test/" + BREAKOUT  # a web link: it becomes an href, which must stay one attribute

SHOWN_AS_TEXT = (OUTLET, TITLE, SOURCE_PATH, NAME, QUOTE, ATTRIBUTION, NOTE, FAILURE_DETAIL, WARNING, URL)

TEXT = (
    "Night report from Harlow.\n"
    f"The man was identified as {NAME}.\n"
    f"{QUOTE}\n"
    # Both could end or derail the JSON data block if they travelled in it unescaped.
    "An HTML comment opener <!-- and a line separator \u2028 end the article.\n"
)


def _hostile_article_and_record() -> tuple[Article, IncidentRecord]:
    article = Article.from_text(
        TEXT, source_path=SOURCE_PATH, outlet=OUTLET, url=URL, published=date(2026, 5, 6), title=TITLE
    )
    record = IncidentRecord.model_validate(
        {
            "where": {"city": c("Harlow", "Night report from Harlow", "outlet")},
            "what": {"circumstances": c("a stop", QUOTE, ATTRIBUTION)},
            "subjects": [{"name": c(NAME, f"identified as {NAME}", "outlet")}],
            "article_id": article.id,
            "source_path": article.source_path,
            "provenance": Provenance(article_id=article.id, outlet=article.outlet, model="hand-written"),
        }
    )
    return article, ground_record(record, article)


def _with_hostile_extras(data: RunData) -> RunData:
    """The loaded run, plus hostile text from the reconciler and the run: a note, a failure, a warning."""
    (incident,) = data.incidents.incidents
    name_field = next(f for f in incident.fields if f.path == "subjects[0].name")
    name_field.note = NOTE
    data.failures.append(
        FailureRow(article_id=None, source_path=SOURCE_PATH, reason="validation", detail=FAILURE_DETAIL)
    )
    data.warnings.append(WARNING)
    return data


@pytest.fixture(scope="module")
def hostile_data(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    article, record = _hostile_article_and_record()
    out = write_run(tmp_path_factory.mktemp("hostile") / "run", [record], [article])
    return _with_hostile_extras(load_run(out))


@pytest.fixture(scope="module")
def hostile_page(hostile_data: RunData) -> str:
    return render_report(hostile_data)


# --------------------------------------------------------------------------- reading the page back

DATA_BLOCK = re.compile(r'<script type="application/json" id="triangulate-data">(.*?)</script>', re.S)


def page_data(html: str) -> dict[str, Any]:
    """The JSON data block, parsed (its shape: pipeline/outputs/report.py, _Page)."""
    found = DATA_BLOCK.search(html)
    assert found, "the page has no data block"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def strings_in(value: Any) -> Iterator[str]:
    """Every string anywhere in a parsed JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)


def fields_of(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every field of every incident, decoded: incident, path, verdict, consensus, decision, values."""
    strings = data["strings"]
    for incident in data["incidents"]:
        for field in incident["fields"]:
            yield {
                "incident": incident["id"],
                "path": strings[field[0]],
                "verdict": strings[field[1]],
                "consensus": None if field[2] is None else strings[field[2]],
                "decision": field[5] if len(field) > 5 else None,
                "values": field[4],
            }


def citations_of(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every citation of every value, decoded, with the quote as the page shows it."""
    strings, texts = data["strings"], data["texts"]
    for field in fields_of(data):
        for value in field["values"]:
            for cite in value[4]:
                start, end = cite[4], cite[5]
                sent = len(cite) > 6
                yield {
                    "path": field["path"],
                    "value": strings[value[0]],
                    "article_id": data["articles"][cite[0]][0],
                    "who": strings[cite[1]],
                    "status": strings[cite[2]],
                    "start": start,
                    "end": end,
                    "quote_sent": sent,
                    "quote": cite[6] if sent else texts[cite[0]][start:end],
                }


class _Page(HTMLParser):
    """What a browser would build from the HTML: elements with their attributes, text, script bodies."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._in = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts.append(data)
        elif self._in is None:
            self.text.append(data)


# --------------------------------------------------------------------------- hostile input, in the HTML

# Rendered by the templates: the index row (outlet, and the name through the incident's title),
# the failure table and the warnings. The others travel in the data block.
IN_THE_HTML = (OUTLET, NAME, SOURCE_PATH, FAILURE_DETAIL, WARNING)


def test_hostile_payloads_never_appear_as_markup(hostile_page: str) -> None:
    assert "<script>alert" not in hostile_page
    assert "<img" not in hostile_page
    parsed = _Page(hostile_page)
    tags = [tag for tag, _ in parsed.elements]
    assert "img" not in tags
    assert tags.count("script") == 2  # the JSON data block and the page's own script, nothing else
    handlers = [(tag, name) for tag, attrs in parsed.elements for name in attrs if name.startswith("on")]
    assert handlers == []


def test_every_hostile_value_reaches_the_page_as_its_literal_text(hostile_page: str) -> None:
    text = "".join(_Page(hostile_page).text)
    for value in IN_THE_HTML:
        assert value in text, f"{value!r} is not in the HTML as text"
    data = page_data(hostile_page)
    carried = list(strings_in(data))
    for value in SHOWN_AS_TEXT:
        assert value in text or any(value in s for s in carried), f"{value!r} is not on the page"
    assert data["texts"] == [TEXT]  # the article itself, verbatim


def test_a_jinja_expression_in_the_data_is_shown_not_evaluated(hostile_page: str) -> None:
    text = "".join(_Page(hostile_page).text)
    carried = "\n".join(strings_in(page_data(hostile_page)))
    evaluated = [v for v in SHOWN_AS_TEXT if JINJA in v and v.replace(JINJA, "49") in text + carried]
    assert evaluated == []
    assert JINJA in text and JINJA in carried


def test_the_html_holds_no_link_of_its_own_and_the_data_marks_only_a_web_url_as_one(
    hostile_page: str,
) -> None:
    links = [attrs["href"] for tag, attrs in _Page(hostile_page).elements if tag == "a"]
    assert links and all(href is not None and href.startswith("#") for href in links)
    (article,) = page_data(hostile_page)["articles"]
    assert article[4] == URL and article[5] == 1  # an https URL: report.js may make it a link


def test_a_script_url_is_never_marked_as_a_link(tmp_path: Path) -> None:
    article, record = _hostile_article_and_record()
    article = article.model_copy(update={"url": "javascript:alert(1)"})
    page = render_report(load_run(write_run(tmp_path / "run", [record], [article])))
    (shown,) = page_data(page)["articles"]
    assert shown[4] == "javascript:alert(1)" and shown[5] == 0


def test_the_data_block_carries_the_article_text_exactly_and_inertly(hostile_page: str) -> None:
    data_block, script = _Page(hostile_page).scripts
    assert "<" not in data_block and ">" not in data_block and "&" not in data_block
    assert "\u2028" not in data_block
    assert json.loads(data_block)["texts"] == [TEXT]
    assert "alert(1)" not in script


def test_script_json_escapes_what_could_end_a_script_element_and_reads_back_exactly() -> None:
    value = {"text": "</script><!-- a & b ' \u2028 \u2029 é 😀", "n": [1, None]}
    encoded = str(script_json(value))
    for unsafe in ("<", ">", "&", "'", "\u2028", "\u2029"):
        assert unsafe not in encoded
    assert json.loads(encoded) == value
    assert "é" in encoded and ", " not in encoded  # UTF-8, and compact


def test_report_js_never_inserts_text_as_html() -> None:
    script = (REPO / "pipeline" / "data" / "report.js").read_text(encoding="utf-8")
    sinks = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function(")
    assert [sink for sink in sinks if sink in script] == []
    assert "createElement(" in script and "textContent" in script


# --------------------------------------------------------------------------- hostile input, in Chromium

# Installed before any of the page's own code runs (through the DevTools protocol, so the page's
# Content-Security-Policy does not apply to it). The CSP would block an injected script or
# handler; the violation event is how the test sees that one was there at all.
WATCHERS = """
window.__alerts = [];
window.__errors = [];
window.__blocked = [];
window.alert = function (message) { window.__alerts.push(String(message)); };
window.addEventListener("error", function (e) { window.__errors.push(String(e.message || e.type)); }, true);
document.addEventListener("securitypolicyviolation", function (e) {
  window.__blocked.push(e.violatedDirective + " " + e.sample);
});
"""


@pytest.fixture(scope="module")
def watched_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCHERS})
        yield driver
    finally:
        driver.quit()


def _watched(driver: Any) -> dict[str, list[str]]:
    return dict(
        driver.execute_script(
            "return {alerts: window.__alerts, errors: window.__errors, blocked: window.__blocked};"
        )
    )


@pytest.mark.browser
def test_chromium_shows_the_hostile_page_as_text_and_runs_none_of_it(
    watched_browser: Any, hostile_page: str, tmp_path: Path
) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page_file = tmp_path / "report.html"
    page_file.write_text(hostile_page, encoding="utf-8")
    driver = watched_browser
    driver.get(page_file.as_uri())

    # The one incident opens with the page; showing the quote cuts it from the article's text.
    (button,) = [
        b
        for b in driver.find_elements(By.CSS_SELECTOR, "button.evidence")
        if b.find_element(By.CSS_SELECTOR, "q.quote").text == QUOTE
    ]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    marks = driver.find_elements(By.CSS_SELECTOR, "mark.quote-highlight")
    assert [m.text for m in marks] == [QUOTE]
    for control in ("tr.context-row button.whole-article", "button.read-article"):
        element = driver.find_element(By.CSS_SELECTOR, control)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()

    assert _watched(driver) == {"alerts": [], "errors": [], "blocked": []}
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.accept()
    assert driver.execute_script("return document.querySelectorAll('img').length") == 0
    visible = driver.find_element(By.TAG_NAME, "body").text
    for value in SHOWN_AS_TEXT:
        assert value in visible, f"{value!r} is not visible as text"
    # The article, read in full, is its text character for character (a line separator included,
    # which .text above would show as a line break).
    assert driver.execute_script("return document.querySelector('.article-text').textContent") == TEXT
    links = driver.execute_script(
        "return Array.from(document.querySelectorAll('#incident a'), a => a.getAttribute('href'))"
    )
    assert links == [URL]  # one web link, its whole URL in one attribute

    # The watchers do see a script the page did not bring: the checks above could fail.
    driver.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
        "document.body.append(s);"
    )
    WebDriverWait(driver, 5).until(lambda d: _watched(d)["blocked"])
    assert driver.execute_script("return window.__ran") is None


# --------------------------------------------------------------------------- the template environment


def test_a_misspelt_template_variable_fails_the_render(hostile_data: RunData) -> None:
    env = report_environment()
    page = page_view(hostile_data)
    assert env.from_string("<h1>{{ page.title }}</h1>").render(page=page).startswith("<h1>triangulate")
    with pytest.raises(jinja2.UndefinedError, match="titel"):
        env.from_string("<h1>{{ page.titel }}</h1>").render(page=page)
    with pytest.raises(jinja2.UndefinedError, match="pgae"):
        env.from_string("{% if pgae %}x{% endif %}").render(page=page)


def test_every_template_escapes_by_default() -> None:
    env = report_environment()
    assert env.from_string("{{ v }}").render(v=SCRIPT) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert (
        env.from_string('<a title="{{ v }}">').render(v=BREAKOUT)
        == '<a title="&#34;&gt;&lt;img src=x onerror=alert(1)&gt;">'
    )


def test_the_templates_ship_with_the_package() -> None:
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    templates = REPO / "pipeline" / "outputs" / "templates"
    files = sorted(p for p in templates.rglob("*") if p.is_file())
    assert files
    for path in files:
        covered = [
            package
            for package, patterns in package_data.items()
            if path.is_relative_to(REPO / package.replace(".", "/"))
            and any(
                fnmatch.fnmatch(path.relative_to(REPO / package.replace(".", "/")).as_posix(), pattern)
                for pattern in patterns
            )
        ]
        assert covered, f"{path.relative_to(REPO)} is in no [tool.setuptools.package-data] pattern"


# --------------------------------------------------------------------------- the schema's verdicts and fields


@pytest.fixture(scope="module")
def tempe_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return two_incident_run(tmp_path_factory.mktemp("tempe") / "run")


@pytest.fixture(scope="module")
def tempe_page(tempe_run: Path) -> str:
    return render_report(load_run(tempe_run))


def test_the_legend_lists_every_verdict_of_the_schema_in_its_order(tempe_page: str) -> None:
    legend = re.search(r'<ul class="legend" aria-label="verdicts">(.*?)</ul>', tempe_page, re.S)
    assert legend
    shown = re.findall(r'<span class="badge verdict-([a-z-]+)">\1</span>', legend.group(1))
    assert shown == list(typing.get_args(Verdict))


def test_every_verdict_of_the_schema_has_a_colour_of_its_own() -> None:
    css = (REPO / "pipeline" / "data" / "report.css").read_text()
    for verdict in typing.get_args(Verdict):
        assert re.search(rf"\.badge\.verdict-{verdict} \{{ background: var\(--{verdict}\); \}}", css)
        assert re.search(rf"--{verdict}: #[0-9a-f]{{6}};", css)


def test_every_field_on_the_page_is_a_field_of_the_schema(tempe_page: str) -> None:
    paths = [f["path"] for f in fields_of(page_data(tempe_page))]
    assert paths
    known = set(field_kinds())
    assert [p for p in paths if re.sub(r"\[\d+\]", "[]", p) not in known] == []


# --------------------------------------------------------------------------- what the page says it holds


def test_the_flagged_summary_names_every_flagged_verdict_contradictions_first() -> None:
    counts = {"contradiction": 3, "more-specific": 2, "variant": 6, "single-source": 11}
    assert flagged_summary(counts) == (
        "22 flagged: 3 contradictions, 2 more-specific, 6 variants, 11 single-source, 0 partial"
    )
    assert flagged_summary({"contradiction": 1, "variant": 1, "partial": 1200}) == (
        "1,202 flagged: 1 contradiction, 0 more-specific, 1 variant, 0 single-source, 1,200 partial"
    )


def test_a_flagged_verdict_new_to_the_schema_is_counted_in_the_summary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(report_module, "FLAGGED_VERDICTS", (*FLAGGED_VERDICTS, "disputed"))
    line = flagged_summary({"contradiction": 1, "disputed": 4})
    assert line.startswith("5 flagged: 1 contradiction, ") and line.endswith(", 4 disputed")


def test_the_summary_line_says_how_many_incidents_records_and_flagged_fields(tempe_run: Path) -> None:
    data = load_run(tempe_run)
    view = page_view(data)
    conflicts = data.incidents.conflicts
    n: dict[str, int] = {v: sum(c.verdict == v for c in conflicts) for v in FLAGGED_VERDICTS}
    assert view.summary == summary_line(2, 7, n)
    assert "".join(view.summary_parts) == view.summary and view.summary_parts[1] == str(len(conflicts))
    assert view.summary.startswith(f"2 incidents from 7 records; {len(conflicts)} flagged: ")
    assert view.summary in "".join(_Page(render_report(data)).text)


def test_the_page_says_how_the_quotes_behind_its_values_stand(tempe_page: str) -> None:
    cited = list(citations_of(page_data(tempe_page)))
    exact, normalized = (sum(c["status"] == s for c in cited) for s in ("exact", "normalized"))
    assert exact and normalized
    line = re.search(r'<p class="grounding" id="grounding">(.*?)</p>', tempe_page)
    assert line and line.group(1) == (
        f"Quotes behind the values: {len(cited)} citations: {exact} exact, {normalized} normalized, "
        "1 not found in article"
    )


def test_the_grounding_line_names_only_the_statuses_that_occur() -> None:
    assert grounding_line({"ungrounded": 12}) == "12 citations: 12 not checked"
    assert grounding_line({"unfound": 1, "exact": 2000, "fuzzy": 0}) == (
        "2,001 citations: 2,000 exact, 1 not found in article"
    )
    assert grounding_line({}) == "0 citations"


def test_a_citation_names_who_said_it_without_repeating_the_attribution(tempe_page: str) -> None:
    who = {c["who"] for c in citations_of(page_data(tempe_page))}
    assert "DHS spokesperson Carla Whitfield (DHS)" in who  # the speaker it counts as, added
    assert "Tempe police (Tempe)" in who  # the label replaces the attribution it starts with
    assert not [w for w in who if w.startswith("Tempe police (Tempe police")]


# --------------------------------------------------------------------------- review order


def test_fields_come_in_review_order_contradictions_first_then_flagged_then_the_rest(tempe_run: Path) -> None:
    data = page_data(render_report(load_run(tempe_run)))
    reconciled = {i.id: [f.path for f in i.fields] for i in RunFolder(tempe_run).read_incidents()}
    for incident in data["incidents"]:
        fields = [f for f in fields_of(data) if f["incident"] == incident["id"]]
        ranks = [review_rank(f["verdict"]) for f in fields]
        assert ranks == sorted(ranks)
        # Within one verdict, the schema's order (the reconciler's) stays.
        for verdict in {f["verdict"] for f in fields}:
            same = [f["path"] for f in fields if f["verdict"] == verdict]
            assert same == [p for p in reconciled[incident["id"]] if p in same]
    verdicts = [f["verdict"] for f in fields_of(data) if f["incident"] == data["incidents"][0]["id"]]
    flagged = [v in FLAGGED_VERDICTS for v in verdicts]
    assert verdicts[0] == "contradiction" and flagged == sorted(flagged, reverse=True)


def test_review_rank_puts_contradictions_first_and_unflagged_verdicts_last() -> None:
    ranked = sorted(typing.get_args(Verdict), key=review_rank)
    assert ranked[:5] == ["contradiction", "more-specific", "variant", "single-source", "partial"]
    assert set(ranked[5:]) == set(typing.get_args(Verdict)) - set(FLAGGED_VERDICTS)


def test_the_index_lists_incidents_by_title_with_counts_that_match_the_reconciler(tempe_run: Path) -> None:
    incidents = {i.id: i for i in RunFolder(tempe_run).read_incidents()}
    html = render_report(load_run(tempe_run))
    view = page_view(load_run(tempe_run))
    order = re.findall(r'<tr id="row-([^"]+)"', html)
    assert order == [row.id for row in view.rows] and sorted(order) == sorted(incidents)
    for row in view.rows:
        incident = incidents[row.id]
        verdicts = [f.verdict for f in incident.fields]
        assert row.title == incident.title and f">{incident.title}</a>" in html
        assert row.n_articles == len(incident.article_ids)
        assert row.n_contradictions == verdicts.count("contradiction")
        assert row.n_flagged == sum(v in FLAGGED_VERDICTS for v in verdicts)
        assert row.n_decided == 0 and row.review == "undecided"
    first, last = view.rows[0], view.rows[-1]
    assert first.n_contradictions > last.n_contradictions  # the most contradicted first


def test_the_search_covers_title_id_outlets_and_every_name_a_source_gives(tempe_run: Path) -> None:
    tempe = next(row for row in page_view(load_run(tempe_run)).rows if row.n_articles == 6)
    for expected in (tempe.title.lower(), tempe.id, "valley ledger", "ktmp 12", "quintero-alvares"):
        assert expected in tempe.search  # "Quintero-Alvares": one article's spelling, not the merged one


def test_search_text_is_folded_so_a_query_without_accents_finds_a_name_with_them(tmp_path: Path) -> None:
    text = "Agents shot José Peña in Harlow on Tuesday.\n"
    article = Article.from_text(text, source_path="pena.txt", outlet="Harlow Courier")
    record = IncidentRecord.model_validate(
        {
            "subjects": [{"name": c("José Peña", "Agents shot José Peña")}],
            "article_id": article.id,
            "provenance": Provenance(article_id=article.id, outlet=article.outlet, model="hand-written"),
        }
    )
    view = page_view(load_run(write_run(tmp_path / "run", [ground_record(record, article)], [article])))
    assert "jose pena" in view.rows[0].search


# --------------------------------------------------------------------------- decisions


@pytest.fixture(scope="module")
def decided_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return review_run(tmp_path_factory.mktemp("decided") / "run")


def _tempe(run: Path) -> Incident:
    return next(i for i in RunFolder(run).read_incidents() if len(i.article_ids) == 6)


def test_a_decided_field_carries_the_decision_and_keeps_its_verdict_and_values(decided_run: Path) -> None:
    data = page_data(render_report(load_run(decided_run)))
    tempe = _tempe(decided_run)
    (field,) = [f for f in fields_of(data) if f["incident"] == tempe.id and f["path"] == DECIDED_PATH]
    action, value, note, by, at, seq = field["decision"]
    assert (action, value, note, by, seq) == ("set", "at the hospital", DECIDED_NOTE, "ak", 2)
    assert at.startswith("2026-12-02 12:00")
    assert field["verdict"] == "contradiction"
    assert sorted(data["strings"][v[0]] for v in field["values"]) == ["at the hospital", "at the scene"]
    undecided = [f for f in fields_of(data) if f["path"] != DECIDED_PATH]
    assert all(f["decision"] is None for f in undecided)


def test_a_decision_that_no_longer_applies_travels_with_its_incident_and_reason(decided_run: Path) -> None:
    data = page_data(render_report(load_run(decided_run)))
    (incident,) = [i for i in data["incidents"] if i["id"] == _tempe(decided_run).id]
    ((seq, action, path, value, _, _, _, reason),) = incident["stale"]
    assert (seq, action, path, value) == (3, "accept", "where.city", "Mesa")
    assert reason == "the accepted value is no longer among the sources' values"


def test_the_index_knows_which_incidents_are_decided_undecided_and_stale(decided_run: Path) -> None:
    rows = {row.id: row for row in page_view(load_run(decided_run)).rows}
    tempe = rows.pop(_tempe(decided_run).id)
    assert (tempe.n_decided, tempe.n_stale, tempe.review) == (1, 1, "decided undecided stale")
    assert [row.review for row in rows.values()] == ["undecided", "undecided"]


def test_the_decisions_table_lists_every_decision_with_its_state(decided_run: Path) -> None:
    html = render_report(load_run(decided_run))
    kinds = re.findall(r'<tr class="decision state-([a-z]+)">', html)
    states = re.findall(r'<td class="state">(.*?)</td>', html)
    assert kinds == ["superseded", "applied", "stale"]
    assert states == [
        "superseded by 2",
        "applied",
        "no longer applies: the accepted value is no longer among the sources&#39; values",
    ]
    assert "1 no longer applies" in html


# --------------------------------------------------------------------------- the model


def test_the_page_names_every_model_setup_and_each_article_the_one_that_made_its_record(
    tmp_path: Path,
) -> None:
    tempe = load_articles()
    records = hand_records(tempe)
    other = {
        "model": "qwen3-8b",
        "provider": "ollama",
        "plan": "short",
        "prompt_hash": "0123456789abcdef0123",
    }
    for record in records[:2]:
        record.provenance = record.provenance.model_copy(update=other)
    data = load_run(write_run(tmp_path / "run", records, tempe.all))
    view = page_view(data)
    assert [(m.model, m.provider, m.plan, m.prompt_hash, m.n_records) for m in view.models] == [
        ("hand-written", "fixture", None, None, 4),
        ("qwen3-8b", "ollama", "short", "0123456789abcdef0123", 2),
    ]
    html = render_report(data)
    header = "".join(_Page(html.split("</header>")[0]).text)
    assert "qwen3-8b · provider ollama · plan short · prompt 0123456789ab · 2 records" in header
    assert "2 model setups" in header
    shown = page_data(html)
    by_article = {a[0]: shown["models"][a[7]] for a in shown["articles"]}
    assert by_article[records[0].article_id] == "qwen3-8b (ollama) · plan short · prompt 0123456789ab"
    assert by_article[records[5].article_id] == "hand-written (fixture)"


# --------------------------------------------------------------------------- size


def test_each_article_text_travels_once_and_verbatim_quotes_only_as_offsets(tempe_page: str) -> None:
    valley = load_articles().by_file["01-valley-ledger.md"]
    assert HOSPITAL in valley.text
    assert tempe_page.count(HOSPITAL) == 1  # in the article's text, not again as a quote
    cited = list(citations_of(page_data(tempe_page)))
    exact = [c for c in cited if c["status"] == "exact"]
    assert exact and not any(c["quote_sent"] for c in exact)
    assert any(c["quote"] == HOSPITAL and c["article_id"] == valley.id for c in exact)


def test_unfound_quotes_travel_as_text_without_a_span(tempe_page: str) -> None:
    unfound = [c for c in citations_of(page_data(tempe_page)) if c["status"] == "unfound"]
    assert unfound and all(c["quote_sent"] and c["start"] is None and c["end"] is None for c in unfound)
