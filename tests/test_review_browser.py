"""``triangulate serve`` in a real browser: Debian's headless Chromium driven by selenium.

What an editor does at the desk: open the index, search, open the incident, set a value with a
note through the page, reload and see it, run ``triangulate reconcile`` again and still see it,
and see it from a second browser too; move through the flagged fields with the keyboard and
accept with ``a``; open a whole article at its quote. Hostile article text never runs as script.

The app runs as the command a user types (``triangulate serve DIR --port 0``), in its own
process. Skips (with the reason) where chromium, chromedriver or selenium is missing.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from export_fixtures import REPO, c, hand_record, write_run
from test_report_browser import start_chromium

from pipeline.cli.main import main as cli_main
from pipeline.store.desk import Desk
from pipeline.store.runfolder import RunFolder
from pipeline.store.runstore import RunStore
from schemas import Article

pytestmark = pytest.mark.browser

GOLD = REPO / "examples" / "tempe-traffic-stop" / "gold_records.jsonl"
PLACE_OF_DEATH = "subjects[0].place_of_death"
TITLE = "2026-03-13 · Tempe, Arizona · Rafael Quintero-Alvarez"
NOTE = "Medical examiner: died at the scene"
WAIT_S = 20


@dataclass(frozen=True)
class Serving:
    url: str
    folder: Path
    records: Path


@contextlib.contextmanager
def _serve(folder: Path) -> Iterator[str]:
    """``triangulate serve FOLDER --port 0`` in a process of its own; yields the address it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli.main", "serve", str(folder), "--port", "0", "--no-browser"],
        cwd=REPO,  # the gold records name their articles relative to the repository
        env={**os.environ, "TRIANGULATE_REVIEWER": "Desk Editor"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        try:
            first = lines.get(timeout=60)
        except queue.Empty:
            pytest.fail("triangulate serve printed no address within 60 s")
        assert " at http://127.0.0.1:" in first, first
        yield first.split(" at ", 1)[1].split()[0]
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def gold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Serving]:
    """A folder reconciled from a copy of the gold records, served."""
    monkeypatch.chdir(REPO)
    records = tmp_path / "gold_records.jsonl"
    shutil.copy(GOLD, records)
    folder = tmp_path / "gold"
    assert cli_main(["reconcile", str(records), "--out", str(folder)]) == 0
    with _serve(folder) as url:
        yield Serving(url, folder, records)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


# --------------------------------------------------------------------------- helpers


def _css(driver: Any, css: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, css))


def _until(driver: Any, condition: Callable[[Any], Any], what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(condition, message=what)


def _field(driver: Any, path: str) -> Any:
    (section,) = _css(driver, f'section.field.flagged[data-path="{path}"]')
    return section


def _decision_text(driver: Any, path: str) -> str:
    shown = _css(_field(driver, path), "p.decision")
    return str(shown[0].text) if shown else ""


def _visible_rows(driver: Any) -> list[str]:
    return [row.get_attribute("data-id") for row in _css(driver, "tr.incident-row") if row.is_displayed()]


def _screenshot(driver: Any, path: Path) -> Path:
    assert driver.save_screenshot(str(path))
    keep = os.environ.get("TRIANGULATE_SCREENSHOT_DIR")
    if keep:  # for a human to look at the pages
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def _press(driver: Any, keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(keys).perform()


def _focused_path(driver: Any) -> str | None:
    return driver.execute_script(  # type: ignore[no-any-return]
        "const f = document.activeElement.closest('section.field'); return f ? f.dataset.path : null;"
    )


# --------------------------------------------------------------------------- the desk


def test_a_decision_made_in_the_page_survives_reload_reconcile_and_a_second_browser(
    gold: Serving, browser: Any, tmp_path: Path
) -> None:
    (incident,) = RunFolder(gold.folder).read_incidents()

    # The index names the incident; searching filters it in and out as one types.
    browser.get(gold.url)
    link = _css(browser, "a.title")
    assert [a.text for a in link] == [TITLE]
    index_png = _screenshot(browser, tmp_path / "serve-index.png")
    search = _css(browser, "#search")[0]
    search.send_keys("no such incident")
    _until(browser, lambda d: _visible_rows(d) == [], "search did not hide the incident")
    assert _css(browser, "#no-match")[0].is_displayed()
    search.clear()
    search.send_keys("valley ledger")
    _until(browser, lambda d: _visible_rows(d) == [incident.id], "search did not find the incident")
    search.send_keys("\n")  # and the server's search agrees
    _until(browser, lambda d: "q=valley+ledger" in d.current_url, "the search form was not sent")
    assert _visible_rows(browser) == [incident.id]

    # The incident: set a value with a note.
    _css(browser, "a.title")[0].click()
    _until(browser, lambda d: _css(d, "#incident-title"), "the incident did not open")
    assert _css(browser, "#incident-title")[0].text == TITLE
    field = _field(browser, PLACE_OF_DEATH)
    assert _decision_text(browser, PLACE_OF_DEATH) == ""
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
    value = _css(field, 'form.decide input[name="value"]')[0]
    value.clear()
    value.send_keys("at the scene")
    _css(field, 'form.decide input[name="note"]')[0].send_keys(NOTE)
    _css(field, "button.set")[0].click()
    # The page reloads itself from the server once the decision is stored.
    _until(browser, lambda d: NOTE in _decision_text(d, PLACE_OF_DEATH), "the decision was not shown")
    shown = _decision_text(browser, PLACE_OF_DEATH)
    assert "SET" in shown.upper() and "at the scene" in shown and "Desk Editor" in shown
    incident_png = _screenshot(browser, tmp_path / "serve-incident.png")
    assert _focused_path(browser) == PLACE_OF_DEATH, "the reviewer is brought back to the field"

    with RunStore(gold.folder) as store:
        (stored,) = Desk(store).decisions()
    assert (stored.action, stored.value, stored.note, stored.by) == (
        "set",
        "at the scene",
        NOTE,
        "Desk Editor",
    )

    browser.refresh()
    assert NOTE in _decision_text(browser, PLACE_OF_DEATH)

    assert cli_main(["reconcile", str(gold.records), "--out", str(gold.folder)]) == 0
    browser.refresh()
    assert NOTE in _decision_text(browser, PLACE_OF_DEATH)

    second = start_chromium(tmp_path / "second-profile")
    try:
        second.get(gold.url)
        assert "1" in [cell.text for cell in _css(second, "tr.incident-row td.num")][3]
        _css(second, "a.title")[0].click()
        _until(second, lambda d: _css(d, "#incident-title"), "the second browser did not open the incident")
        assert NOTE in _decision_text(second, PLACE_OF_DEATH)
    finally:
        second.quit()

    assert _is_png(index_png) and _is_png(incident_png)


def test_keys_move_between_flagged_fields_and_accept_the_merged_value(gold: Serving, browser: Any) -> None:
    (incident,) = RunFolder(gold.folder).read_incidents()
    browser.get(f"{gold.url}incident/{incident.id}")
    paths = [s.get_attribute("data-path") for s in _css(browser, "section.field.flagged")]
    assert len(paths) > 2

    _press(browser, "j")
    assert _focused_path(browser) == paths[0]
    _press(browser, "j")
    assert _focused_path(browser) == paths[1]
    _press(browser, "k")
    assert _focused_path(browser) == paths[0]

    keys = _css(browser, "#keys")[0]
    assert not keys.is_displayed()
    _press(browser, "?")
    assert keys.is_displayed()
    _press(browser, "?")

    # The first field with a merged value: accept it with `a`.
    target = next(
        s for s in _css(browser, "section.field.flagged") if s.get_attribute("data-has-consensus") == "true"
    )
    path = target.get_attribute("data-path")
    while _focused_path(browser) != path:
        _press(browser, "j")
    _press(browser, "a")
    _until(browser, lambda d: _decision_text(d, path), "accepting with `a` was not shown")
    verdict = next(f for f in incident.fields if f.path == path)
    assert "ACCEPT" in _decision_text(browser, path).upper()
    with RunStore(gold.folder) as store:
        (stored,) = Desk(store).decisions()
    assert (stored.action, stored.field_path, stored.value) == ("accept", path, verdict.consensus)


def test_the_whole_article_opens_at_its_quote(gold: Serving, browser: Any) -> None:
    (incident,) = RunFolder(gold.folder).read_incidents()
    browser.get(f"{gold.url}incident/{incident.id}")
    citation = next(
        li
        for li in _css(_field(browser, PLACE_OF_DEATH), "li.citation")
        if "pronounced dead at the hospital shortly" in li.text
    )
    quote = _css(citation, "blockquote.excerpt mark.evidence")[0].text
    details = _css(citation, "details.whole-article")[0]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", details)
    _css(details, "summary")[0].click()
    _until(browser, lambda d: _css(details, ".article-text mark.evidence"), "the article did not open")
    text = browser.execute_script("return arguments[0].textContent", _css(details, ".article-text")[0])
    article = (REPO / "examples" / "tempe-traffic-stop" / "01-valley-ledger.md").read_text(encoding="utf-8")
    assert _css(details, ".article-text mark.evidence")[0].text == quote
    assert len(text) > 1000 and text.strip() in article


HOSTILE = (
    "Deputies shot <script>window.__pwned = 'text'</script> "
    "Bobby <img src=x onerror=\"window.__pwned = 'img'\"> Tables in Harlow on Tuesday, the sheriff said.\n"
)


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[str]:
    article = Article.from_text(
        HOSTILE, source_path="hostile.txt", outlet="<b onmouseover=\"window.__pwned='outlet'\">Evil</b>"
    )
    name = "Bobby <img src=x onerror=\"window.__pwned = 'img'\"> Tables"
    record = hand_record(
        article,
        {
            "when": {"date": c("2026-05-05", "on Tuesday, the sheriff said")},
            "where": {"city": c("Harlow", "in Harlow on Tuesday")},
            "subjects": [{"name": c(name, name)}],
            "what": {"event_type": c("</script><script>window.__pwned='value'</script>", "Deputies shot")},
        },
    )
    folder = write_run(tmp_path / "run", [record], [article])
    with _serve(folder) as url:
        yield url


def test_hostile_article_text_and_values_never_run_as_script(hostile: str, browser: Any) -> None:
    browser.get(hostile)
    assert browser.execute_script("return window.__pwned === undefined")
    assert "Bobby <img" in _css(browser, "a.title")[0].text
    _css(browser, "a.title")[0].click()
    _until(browser, lambda d: _css(d, "#incident-title"), "the incident did not open")
    for details in _css(browser, "details.whole-article"):
        browser.execute_script("arguments[0].open = true", details)
    _until(browser, lambda d: all(_css(x, "mark") for x in _css(d, "details.whole-article")), "articles")
    assert browser.execute_script("return window.__pwned === undefined")
    assert _css(browser, "main img") == []
    assert "<script>window.__pwned = 'text'</script>" in _css(browser, "main")[0].text
