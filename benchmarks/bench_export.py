"""Time the dashboard export and the review page on a synthetic run of N copies of the Tempe example.

Each copy is six articles whose texts differ (a copy number appended, so quotes keep their
offsets) and whose dates differ, so the reconciler makes one incident per copy.

    .venv/bin/python benchmarks/bench_export.py --copies 200 [--repeat 3] [--pg postgresql://...]

The run is read once (``load_run``); each destination is then timed on its own, best of
``--repeat`` tries, so the figures are the writing alone. Every try after the first rewrites
rows that are already there (the upsert path), as a re-export does.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from export_fixtures import hand_records, load_articles, write_run  # noqa: E402

from pipeline.outputs.export import _export_to_db, write_files, write_run_store_tables  # noqa: E402
from pipeline.outputs.report import render_report  # noqa: E402
from pipeline.outputs.rundata import load_run  # noqa: E402
from schemas import Article, IncidentRecord  # noqa: E402


def synthetic_run(out: Path, copies: int) -> int:
    tempe = load_articles()
    base = {r.article_id: r for r in hand_records(tempe)}
    articles: list[Article] = []
    records: list[IncidentRecord] = []
    for k in range(copies):
        day = (date(2020, 1, 1) + timedelta(days=7 * k)).isoformat()
        for article in tempe.all:
            copy = Article.from_text(
                article.text + f"\n\n[copy {k}]",
                source_path=f"{article.source_path}#{k}",
                outlet=article.outlet,
                url=article.url,
                published=article.published,
            )
            record = base[article.id].model_copy(deep=True)
            record.article_id = copy.id
            record.provenance.article_id = copy.id
            if record.when.date is not None:
                record.when.date.value = day
            articles.append(copy)
            records.append(record)
    write_run(out, records, articles)
    return len(records)


def best_of(repeat: int, action: Callable[[], Any]) -> tuple[float, Any]:
    times: list[float] = []
    result: Any = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3, help="tries per destination; the best is shown")
    parser.add_argument("--pg", help="also time an export into this PostgreSQL URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        t0 = time.perf_counter()
        n = synthetic_run(out, args.copies)
        print(f"setup (store + reconcile): {n} records in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        data = load_run(out)
        print(f"load_run: {time.perf_counter() - t0:.2f} s ({len(data.incidents.incidents)} incidents)")
        files = Path(tmp) / "files"
        actions: list[tuple[str, Callable[[], Any]]] = [
            ("run store tables", lambda: write_run_store_tables(out, data)),
            ("sqlite file", lambda: write_files(data, files, ["sqlite"])),
            ("--db sqlite", lambda: _export_to_db(data, f"sqlite:///{Path(tmp) / 'shared.sqlite'}")),
            ("parquet", lambda: write_files(data, files, ["parquet"])),
            ("csv", lambda: write_files(data, files, ["csv"])),
            ("report html", lambda: render_report(data)),
        ]
        if args.pg:
            actions.append(("--db postgres", lambda: _export_to_db(data, args.pg)))
        for label, action in actions:
            seconds, result = best_of(args.repeat, action)
            extra = f" ({len(result) / 1e6:.1f} MB)" if isinstance(result, str) else ""
            print(f"{label}: {seconds:.2f} s{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
