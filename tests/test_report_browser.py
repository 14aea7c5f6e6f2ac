"""The review page in a real browser: Debian's headless Chromium driven by selenium + chromedriver.

What a reviewer does: read the conflict count, click a value's evidence and see
the quote highlighted inside its article, click an unfound quote and be told so,
filter to conflicts only. Also: hostile article text and metadata never run as
script, and quote offsets stay right after characters outside the BMP (emoji),
which JavaScript counts as two.

Skips (with the reason) where chromium, chromedriver or selenium is missing;
CI installs them with scripts/ci_services.sh.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from export_fixtures import UNFOUND_QUOTE, hand_records, load_articles, write_run

from pipeline.evidence.ground import ground_record
from pipeline.outputs.report import write_report
from schemas import Article, IncidentRecord, Provenance

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("TRIANGULATE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)

HOSTILE_TEXT = (
    "Night report 😀 from the river district.\n"
    "<script>window.__pwned = 'script-in-text'</script>\n"
    "<img src=x onerror=\"window.__pwned = 'img-in-text'\">\n"
    "The deputy said the car 🚗 was blue and sped off.\n"
)
HOSTILE_QUOTE = "The deputy said the car 🚗 was blue and sped off."


def _hostile_record() -> tuple[Article, IncidentRecord]:
    article = Article.from_text(
        HOSTILE_TEXT,
        source_path="hostile.txt",
        outlet="<i>Evil</i> Outlet</script><script>window.__pwned='outlet'</script>",
        url="javascript:window.__pwned='url'",
    )
    record = IncidentRecord.model_validate(
        {
            "when": {"date": {"value": "2020-01-01", "quote": "Night report", "attribution": "outlet"}},
            "where": {"city": {"value": "Rivertown", "quote": "river district", "attribution": "outlet"}},
            "what": {
                "circumstances": {
                    "value": "</script><script>window.__pwned='value'</script>",
                    "quote": HOSTILE_QUOTE,
                    "attribution": "<b onmouseover=\"window.__pwned='attribution'\">deputy</b>",
                }
            },
            "article_id": article.id,
            "source_path": article.source_path,
            "provenance": Provenance(article_id=article.id, outlet=article.outlet, model="hand-written"),
        }
    )
    return article, ground_record(record, article)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    tempe = load_articles()
    hostile_article, hostile_record = _hostile_record()
    write_run(out, [*hand_records(tempe), hostile_record], [*tempe.all, hostile_article])
    return write_report(out)


def start_chromium(profile_dir: Path) -> Any:
    """A headless Chromium under selenium, with its own profile; skips where any part is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM} (apt-get install chromium chromium-driver)")
    if not Path(CHROMEDRIVER).exists():
        pytest.skip("chromedriver not found (apt-get install chromium-driver)")
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium not installed (pip install selenium)"
    )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    # An explicit driver path: selenium never tries to download a driver or a browser.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: Any, report: Path) -> Any:
    browser.get(report.as_uri())
    return browser


def _by_css(driver: Any, css: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, css))


def _evidence(driver: Any, path: str, *, quote: str) -> Any:
    rows = _by_css(driver, f'tr.field[data-path="{path}"]')
    assert rows, f"no row for {path}"
    buttons = [
        b
        for r in rows
        for b in _by_css(r, "button.evidence")
        if b.find_element("css selector", "q").text == quote
    ]
    assert buttons, f"no evidence button for {path} with quote {quote!r}"
    return buttons[0]


def _click(driver: Any, element: Any) -> None:
    """Scroll the element to mid-screen first, as a reader would, so the sticky header never covers it."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def _in_viewport(driver: Any, element: Any) -> bool:
    return bool(
        driver.execute_script(
            "const r = arguments[0].getBoundingClientRect();"
            "return r.bottom > 0 && r.top < window.innerHeight && r.height > 0;",
            element,
        )
    )


def test_conflict_count_shown_equals_lines_of_conflicts_jsonl(page: Any, report: Path) -> None:
    lines = [line for line in (report.parent / "conflicts.jsonl").read_text().splitlines() if line.strip()]
    assert lines, "the example run must have conflicts for this test to mean anything"
    shown = _by_css(page, "#conflict-count")[0].text
    assert int(shown) == len(lines)


def test_clicking_evidence_highlights_its_quote_inside_the_article(page: Any, report: Path) -> None:
    articles = load_articles()
    hospital = articles.by_file["01-valley-ledger.md"]
    quote = "where he was pronounced dead at the hospital"
    _click(page, _evidence(page, "subjects[0].place_of_death", quote=quote))

    marks = _by_css(page, "mark.quote-highlight")
    assert len(marks) == 1
    assert marks[0].text == quote
    article = page.execute_script("return arguments[0].closest('article.source-article')", marks[0])
    assert article.get_attribute("data-article-id") == hospital.id
    assert _in_viewport(page, marks[0])
    # The whole article is still there around the highlight, unchanged.
    text = page.execute_script("return arguments[0].closest('.article-text').textContent", marks[0])
    assert text == hospital.text


def test_a_second_click_moves_the_highlight_instead_of_adding_one(page: Any) -> None:
    _click(
        page,
        _evidence(page, "subjects[0].place_of_death", quote="where he was pronounced dead at the hospital"),
    )
    _click(page, _evidence(page, "subjects[0].place_of_death", quote="died at the scene Friday morning"))
    marks = _by_css(page, "mark.quote-highlight")
    assert [m.text for m in marks] == ["died at the scene Friday morning"]


def test_an_unfound_quote_is_reported_and_never_highlighted(page: Any) -> None:
    button = _evidence(page, "what.circumstances", quote=UNFOUND_QUOTE)
    assert "not found in article" in button.text
    _click(page, button)
    assert _by_css(page, "mark.quote-highlight") == []
    notes = [n.text for n in _by_css(page, ".quote-note") if n.text]
    assert notes == [f"Quote not found in article: “{UNFOUND_QUOTE}”"]


def test_offsets_stay_right_after_emoji(page: Any) -> None:
    _click(page, _evidence(page, "what.circumstances", quote=HOSTILE_QUOTE))
    marks = _by_css(page, "mark.quote-highlight")
    assert [m.text for m in marks] == [HOSTILE_QUOTE]


def test_hostile_article_text_and_metadata_never_run_as_script(page: Any) -> None:
    # Showing the hostile article's evidence re-renders its text: any injected markup would run now.
    _click(page, _evidence(page, "what.circumstances", quote=HOSTILE_QUOTE))
    assert page.execute_script("return window.__pwned === undefined")
    assert _by_css(page, ".article-text img") == []
    assert _by_css(page, "a[href^='javascript']") == []
    body = page.find_element("css selector", "body").text
    assert "<script>window.__pwned = 'script-in-text'</script>" in body  # shown as text, inert


def test_conflicts_only_hides_agreed_fields_and_shows_every_flagged_one(page: Any, report: Path) -> None:
    conflicts = [
        json.loads(line) for line in (report.parent / "conflicts.jsonl").read_text().splitlines() if line
    ]
    rows = _by_css(page, "tr.field")
    agreed = [r for r in rows if r.get_attribute("data-verdict") == "agreed"]
    assert agreed and all(r.is_displayed() for r in agreed)

    _click(page, _by_css(page, "#conflicts-only")[0])

    visible = [r for r in rows if r.is_displayed()]
    assert not any(r.is_displayed() for r in agreed)
    shown = sorted(
        (
            page.execute_script("return arguments[0].closest('section.incident').id", r),
            r.get_attribute("data-path"),
            r.get_attribute("data-verdict"),
        )
        for r in visible
    )
    assert shown == sorted((f"incident-{c['incident_id']}", c["path"], c["verdict"]) for c in conflicts)


def test_screenshot_of_a_highlighted_quote(page: Any, tmp_path: Path) -> None:
    _click(
        page,
        _evidence(page, "subjects[0].place_of_death", quote="where he was pronounced dead at the hospital"),
    )
    shot = tmp_path / "report.png"
    assert page.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("TRIANGULATE_SCREENSHOT_DIR")
    if keep:  # for a human to look at the page
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")
