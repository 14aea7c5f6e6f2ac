"""Time the dashboard export and the review page on a synthetic run of N copies of the Tempe example.

Each copy is six articles whose texts differ (a copy number appended, so quotes keep their
offsets) and whose dates differ, so the reconciler makes one incident per copy.

    .venv/bin/python benchmarks/bench_export.py --copies 200 [--pg postgresql://...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from export_fixtures import hand_records, load_articles, write_run  # noqa: E402

from pipeline.outputs.export import export_to_db, write_files, write_run_store_tables  # noqa: E402
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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=200)
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
        for label, action in (
            ("run store tables", lambda: write_run_store_tables(out, data)),
            ("parquet", lambda: write_files(data, Path(tmp) / "files", ["parquet"])),
            ("csv", lambda: write_files(data, Path(tmp) / "files", ["csv"])),
            ("report html", lambda: render_report(data)),
        ):
            t0 = time.perf_counter()
            result = action()
            extra = f" ({len(result) / 1e6:.1f} MB)" if isinstance(result, str) else ""
            print(f"{label}: {time.perf_counter() - t0:.2f} s{extra}")
        if args.pg:
            for attempt in ("first", "second"):
                t0 = time.perf_counter()
                export_to_db(out, args.pg)
                print(f"postgres export ({attempt}): {time.perf_counter() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
