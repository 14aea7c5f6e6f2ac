"""The review page is rendered from jinja2 templates that escape every value.

An article's outlet, title, text and source path, a record's values, quotes and
attributions, the reconciler's notes, failure rows and warnings all reach the
page; none may become markup or template code there. The hostile run below puts
a script tag, an attribute break-out with an event handler, a bare ``</script>``
and a Jinja expression into each of them, and the page must show every one as
the literal text it is, in the HTML and in a real Chromium.

Also: the template environment fails loudly on a misspelt name, escapes by
default, and ships with the package; the legend follows the schema's verdicts.
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
from export_fixtures import REPO, c, two_incident_run, write_run
from test_report_browser import start_chromium

from pipeline.evidence.ground import ground_record
from pipeline.outputs.report import page_view, render_report, report_environment
from pipeline.outputs.rundata import RunData, load_run
from schemas import Article, FailureRow, IncidentRecord, Provenance
from schemas.fields import field_kinds
from schemas.incident import Verdict

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


def test_hostile_payloads_never_appear_as_markup(hostile_page: str) -> None:
    assert "<script>alert" not in hostile_page
    assert "<img" not in hostile_page
    parsed = _Page(hostile_page)
    tags = [tag for tag, _ in parsed.elements]
    assert "img" not in tags
    assert tags.count("script") == 2  # the JSON data block and the page's own script, nothing else
    handlers = [(tag, name) for tag, attrs in parsed.elements for name in attrs if name.startswith("on")]
    assert handlers == []


def test_every_hostile_value_is_shown_as_its_literal_text(hostile_page: str) -> None:
    text = "".join(_Page(hostile_page).text)
    for value in SHOWN_AS_TEXT:
        assert value in text, f"{value!r} is not on the page as text"
    assert TEXT.strip() in text  # the article itself, verbatim


def test_a_jinja_expression_in_the_data_is_shown_not_evaluated(hostile_page: str) -> None:
    text = "".join(_Page(hostile_page).text)
    evaluated = [v for v in SHOWN_AS_TEXT if JINJA in v and v.replace(JINJA, "49") in text]
    assert evaluated == []
    assert JINJA in text


def test_a_hostile_web_link_stays_one_href_attribute(hostile_page: str) -> None:
    links = [attrs for tag, attrs in _Page(hostile_page).elements if tag == "a"]
    assert links == [{"href": URL, "rel": "noopener noreferrer nofollow"}]


def test_the_data_block_carries_the_article_text_exactly_and_inertly(hostile_page: str) -> None:
    data_block, script = _Page(hostile_page).scripts
    assert "<" not in data_block and ">" not in data_block and "&" not in data_block
    assert "\u2028" not in data_block
    assert list(json.loads(data_block)["texts"].values()) == [TEXT]
    assert "alert(1)" not in script


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

    # Showing the quote re-renders the article from the JSON copy: injected markup would run now.
    (button,) = [
        b
        for b in driver.find_elements(By.CSS_SELECTOR, "button.evidence")
        if b.find_element(By.CSS_SELECTOR, "q.quote").text == QUOTE
    ]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    marks = driver.find_elements(By.CSS_SELECTOR, "mark.quote-highlight")
    assert [m.text for m in marks] == [QUOTE]

    assert _watched(driver) == {"alerts": [], "errors": [], "blocked": []}
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.accept()
    assert driver.execute_script("return document.querySelectorAll('img').length") == 0
    visible = driver.find_element(By.TAG_NAME, "body").text
    for value in SHOWN_AS_TEXT:
        assert value in visible, f"{value!r} is not visible as text"

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
def tempe_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    return render_report(load_run(two_incident_run(tmp_path_factory.mktemp("tempe") / "run")))


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


def test_every_field_row_names_a_field_of_the_schema(tempe_page: str) -> None:
    paths = re.findall(r'<tr class="field [^"]*" data-path="([^"]+)"', tempe_page)
    assert paths
    known = set(field_kinds())
    assert [p for p in paths if re.sub(r"\[\d+\]", "[]", p) not in known] == []
