"""Which embedded model and plan fill the best records? Accuracy, evidence, speed and memory.

Not a test. The smaller models are in the ``models`` extra
(``TRIANGULATE_BENCH_MODELS=1 scripts/setup.sh``). Run (one model at a time is loaded, in its
own process, so peak RSS is its own):

    .venv/bin/python benchmarks/embedded_models.py
    .venv/bin/python benchmarks/embedded_models.py --models qwen2.5-coder-1.5b --plans flat
    .venv/bin/python benchmarks/embedded_models.py --examples examples/riverside-raid --json out.json

Every model × plan runs in the embedded engine (xllamacpp, 2 threads, one
slot) over the articles of an example folder, one at a time, through the real
``Extractor`` with the settings the CLI would use for that model (its
``Endpoint.recommended`` re-asks and max tokens). Reported per row:

* records (of the folder's articles) and failure rows;
* field accuracy against the folder's ``gold.json``, as ``triangulate eval``
  computes it (a failed article scores 0 on every field it is graded on);
* located: the share of cited values whose evidence sentence was located;
* unsupported: the share of cited values whose evidence does not support them;
* seconds per article (mean; the first article also pays for the uncached system prompt);
* peak RSS of the process that ran the model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from pipeline.batch.runner import decoding_settings  # noqa: E402
from pipeline.extract.extractor import ExtractionSettings, Extractor  # noqa: E402
from pipeline.extract.plans import DEFAULT_PLAN, PLANS  # noqa: E402
from pipeline.extract.providers import DEFAULT_EMBEDDED_CHOICE, EMBEDDED_MODELS  # noqa: E402
from pipeline.ingest.sources import iter_sources  # noqa: E402
from pipeline.outputs.evaluate import score_records  # noqa: E402
from schemas import Article, ExtractionResult  # noqa: E402

DEFAULT_EXAMPLES = REPO_ROOT / "examples" / "tempe-traffic-stop"


def example_articles(folder: Path, limit: int | None) -> list[Article]:
    paths = sorted(
        p for p in folder.iterdir() if p.name[:1].isdigit() and p.suffix in {".md", ".html", ".txt"}
    )
    articles = [item for item in iter_sources(paths[:limit] if limit else paths) if isinstance(item, Article)]
    if not articles:
        raise SystemExit(f"no example articles under {folder}")
    return articles


async def _run_plans(model: str, plans: list[str], folder: Path, limit: int | None) -> list[dict[str, Any]]:
    from pipeline.extract.providers import open_endpoint

    articles = example_articles(folder, limit)
    gold = json.loads((folder / "gold.json").read_text(encoding="utf-8"))
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    with open_endpoint(model=None, gguf=None, concurrency=1, env={}, embedded=model) as endpoint:
        load_s = time.monotonic() - started
        for plan in plans:
            decoding = decoding_settings(endpoint, plan=plan)
            settings = ExtractionSettings(**decoding)
            extractor = Extractor(endpoint, settings)
            results: list[ExtractionResult] = []
            seconds: list[float] = []
            try:
                for article in articles:
                    began = time.monotonic()
                    results.append(await extractor.extract(article))
                    seconds.append(time.monotonic() - began)
                    outcome = "record" if results[-1].record else f"failure: {results[-1].failure}"
                    print(
                        f"  {model} {plan} {Path(article.source_path or '').name}: "
                        f"{seconds[-1]:.1f}s {outcome}",
                        file=sys.stderr,
                        flush=True,
                    )
            finally:
                await extractor.aclose()
            records = [r.record for r in results if r.record is not None]
            report = score_records(records, gold)
            rows.append(
                {
                    "model": model,
                    "plan": plan,
                    "articles": len(articles),
                    "records": len(records),
                    "failures": len(results) - len(records),
                    "accuracy": report.accuracy,
                    "located": report.grounding_rate,
                    "unsupported": report.unsupported_rate,
                    "seconds_per_article": round(statistics.mean(seconds), 1),
                    "seconds_first": round(seconds[0], 1),
                    "seconds_max": round(max(seconds), 1),
                    "completion_tokens_per_article": round(
                        sum(r.usage.completion_tokens for r in results) / len(results)
                    ),
                    "max_reasks": settings.max_reasks,
                    "max_tokens": settings.max_tokens,
                    "load_s": round(load_s, 1),
                    "mismatches": [m.model_dump(mode="json") for m in report.mismatches],
                }
            )
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for row in rows:
        row["peak_rss_gb"] = round(peak_kib / 1024 / 1024, 2)
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def print_table(rows: list[dict[str, Any]], folder: Path) -> None:
    print(f"\n{folder.relative_to(REPO_ROOT) if folder.is_relative_to(REPO_ROOT) else folder}")
    header = ("model", "plan", "records", "accuracy", "located", "unsupported", "s/article", "peak RSS")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        cells = (
            row["model"],
            row["plan"],
            f"{row['records']}/{row['articles']}",
            _pct(row["accuracy"]),
            _pct(row["located"]),
            _pct(row["unsupported"]),
            f"{row['seconds_per_article']}",
            f"{row['peak_rss_gb']} GB",
        )
        print("| " + " | ".join(cells) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list(EMBEDDED_MODELS), choices=list(EMBEDDED_MODELS))
    parser.add_argument("--plans", nargs="+", default=sorted(PLANS), choices=sorted(PLANS))
    parser.add_argument(
        "--examples", type=Path, default=DEFAULT_EXAMPLES, help="Folder with articles and gold.json."
    )
    parser.add_argument("--limit", type=int, help="Only the first N articles.")
    parser.add_argument("--json", type=Path, help="Write every row (with mismatches) here.")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = args.examples.resolve()

    if args.one:
        rows = asyncio.run(_run_plans(args.one, args.plans, folder, args.limit))
        print(json.dumps(rows))
        return 0

    rows = []
    for model in args.models:
        # A process per model: its peak RSS is its own, and one model's crash does not end the rest.
        command = [
            sys.executable,
            __file__,
            "--one",
            model,
            "--examples",
            str(folder),
            "--plans",
            *args.plans,
        ]
        if args.limit:
            command += ["--limit", str(args.limit)]
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        if done.returncode != 0:
            print(f"{model}: exited {done.returncode}", file=sys.stderr)
            continue
        rows.extend(json.loads(done.stdout.strip().splitlines()[-1]))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print_table(rows, folder)
    print(f"\ndefault: {DEFAULT_EMBEDDED_CHOICE} with plan {DEFAULT_PLAN}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
