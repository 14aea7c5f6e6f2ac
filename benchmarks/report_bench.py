"""Size and speed of the review page (``triangulate report``) on a synthetic run shaped like issue #13's.

The run (``scale_run`` in tests/test_report_browser.py) is copies of the Tempe example (six
articles, one incident each copy) and of the lone Harlow article (one-article incidents), a week
apart, with a few reviewers' decisions; the defaults make 2,000 records in 365 incidents.

    .venv/bin/python benchmarks/report_bench.py [--tempe 327 --lone 38] [--repeat 3] [--browser] [--keep DIR]

Prints the page's size (and what it is made of: article texts, the rest of the JSON data block,
the HTML), the time to load the run and to render the page (best of ``--repeat``), and with
``--browser`` the time a headless Chromium takes from the start of navigation until the first
incident is on screen (TRIANGULATE_CHROMIUM names the browser). The test suite holds the page of
2,000 records to under 5 MB and 2 s (tests/test_report_browser.py, marked slow).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_report_browser import scale_run, start_chromium, time_to_first_incident  # noqa: E402

from pipeline.outputs.report import render_report  # noqa: E402
from pipeline.outputs.rundata import load_run  # noqa: E402

DATA_BLOCK = re.compile(r'<script type="application/json" id="triangulate-data">(.*?)</script>', re.S)


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def composition(page: str) -> dict[str, int]:
    """Bytes of the page by part: article texts, the rest of the data block, and the HTML around it."""
    total = len(page.encode())
    found = DATA_BLOCK.search(page)
    if found is None:  # a page without a data block (an older renderer): all of it is HTML
        return {"total": total, "html": total}
    block = found.group(1)
    texts = json.loads(block).get("texts", [])
    text_bytes = len(json.dumps(texts, ensure_ascii=False, separators=(",", ":")).encode())
    block_bytes = len(block.encode())
    return {
        "total": total,
        "texts": text_bytes,
        "data": block_bytes - text_bytes,
        "html": total - block_bytes,
    }


def browser_open_ms(page_file: Path, tries: int) -> float | None:
    """Best of ``tries`` page opens in headless Chromium, in ms; None (with the reason) without one."""
    import pytest

    try:
        driver = start_chromium(Path(tempfile.mkdtemp(prefix="report-bench-chromium-")))
    except pytest.skip.Exception as exc:
        print(f"browser: skipped ({exc})")
        return None
    try:
        return min(time_to_first_incident(driver, page_file) for _ in range(tries))
    finally:
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tempe", type=int, default=327, help="copies of the six-article Tempe incident")
    parser.add_argument("--lone", type=int, default=38, help="copies of the one-article Harlow incident")
    parser.add_argument("--repeat", type=int, default=3, help="tries per timing; the best is shown")
    parser.add_argument("--browser", action="store_true", help="also time opening the page in Chromium")
    parser.add_argument("--keep", type=Path, help="write the run and its report.html here, and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "run"
        t0 = time.perf_counter()
        scale_run(out, tempe_copies=args.tempe, lone_copies=args.lone)
        print(f"setup (store, reconcile, decisions): {time.perf_counter() - t0:.1f} s")

        t0 = time.perf_counter()
        data = load_run(out)
        print(f"load_run: {time.perf_counter() - t0:.2f} s")
        print(
            f"run: {len(data.records):,} records, {len(data.incidents.incidents):,} incidents, "
            f"{len(data.decisions)} decisions"
        )

        best = float("inf")
        page = ""
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            page = render_report(data)
            best = min(best, time.perf_counter() - t0)
        print(f"render: {best:.2f} s (best of {args.repeat})")
        parts = composition(page)
        print(f"size: {_mb(parts['total'])} ({parts['total']:,} bytes)")
        print("  " + ", ".join(f"{name} {_mb(n)}" for name, n in parts.items() if name != "total"))

        page_file = out / "report.html"
        page_file.write_text(page, encoding="utf-8")
        if args.browser:
            opened = browser_open_ms(page_file, args.repeat)
            if opened is not None:
                print(f"browser: first incident on screen {opened:.0f} ms after navigation started")
    return 0


if __name__ == "__main__":
    sys.exit(main())
