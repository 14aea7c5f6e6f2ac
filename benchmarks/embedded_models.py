"""Which small GGUF should the embedded engine run by default? Speed and accuracy on the examples.

Not a test. Run:

    .venv/bin/python benchmarks/embedded_models.py                       # both candidates, all articles
    .venv/bin/python benchmarks/embedded_models.py --models smollm2-135m --json out.json

Each candidate (``pipeline.providers.EMBEDDED_MODELS``) runs in the embedded
engine (xllamacpp, 2 threads, one slot) over the example articles in
``examples/tempe-traffic-stop/``, one article at a time, through the real
``Extractor`` with default settings (re-asks included). Reported per model:
wall seconds per article (mean and max), records versus failure rows, and
field accuracy against ``gold.json`` as ``pipeline.evaluate.score_records``
computes it (a failed article scores 0 on every field it is graded on), plus
the share of cited values whose quote was located in the article.

Per-article outcomes are written to ``--json`` after each article, so a long
run that is interrupted still leaves its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from pipeline.evaluate import score_records  # noqa: E402
from pipeline.extract import ExtractionSettings, Extractor  # noqa: E402
from pipeline.providers import EMBEDDED_MODELS, EmbeddedServer  # noqa: E402
from pipeline.sources import iter_sources  # noqa: E402
from schemas import Article, ExtractionResult  # noqa: E402

EXAMPLES = REPO_ROOT / "examples" / "tempe-traffic-stop"


def example_articles(limit: int | None) -> list[Article]:
    paths = sorted(p for p in EXAMPLES.glob("0*") if p.suffix in {".md", ".html", ".txt"})
    articles = [item for item in iter_sources(paths[:limit] if limit else paths) if isinstance(item, Article)]
    if not articles:
        raise SystemExit(f"no example articles under {EXAMPLES}")
    return articles


async def run_model(
    name: str,
    articles: list[Article],
    settings: ExtractionSettings,
    progress: dict[str, Any],
    out: Path | None,
) -> dict[str, Any]:
    gguf = EMBEDDED_MODELS[name]()
    rows: list[dict[str, Any]] = []
    results: list[ExtractionResult] = []
    started = time.monotonic()
    with EmbeddedServer(gguf, concurrency=1) as endpoint:
        load_s = time.monotonic() - started
        extractor = Extractor(endpoint, settings)
        try:
            for article in articles:
                began = time.monotonic()
                result = await extractor.extract(article)
                seconds = time.monotonic() - began
                results.append(result)
                rows.append(
                    {
                        "article": Path(article.source_path or article.id).name,
                        "seconds": round(seconds, 1),
                        "outcome": "record" if result.record else f"failure:{result.failure.reason}",  # type: ignore[union-attr]
                        "requests": len(result.attempts),
                        "prompt_tokens": result.usage.prompt_tokens,
                        "completion_tokens": result.usage.completion_tokens,
                    }
                )
                print(f"  {name} {rows[-1]}", flush=True)
                progress[name] = {"gguf": gguf.name, "load_s": round(load_s, 1), "articles": rows}
                if out:
                    out.write_text(json.dumps(progress, indent=2) + "\n", encoding="utf-8")
        finally:
            await extractor.aclose()

    gold = json.loads((EXAMPLES / "gold.json").read_text(encoding="utf-8"))
    records = [r.record for r in results if r.record is not None]
    report = score_records(records, gold)
    per_article: list[float] = [row["seconds"] for row in rows]
    summary = {
        "gguf": gguf.name,
        "load_s": round(load_s, 1),
        "articles": rows,
        "seconds_per_article_mean": round(statistics.mean(per_article), 1),
        "seconds_per_article_max": round(max(per_article), 1),
        "records": len(records),
        "failures": len(results) - len(records),
        "graded": report.graded,
        "accuracy": report.accuracy,
        "grounding_rate": report.grounding_rate,
        "completion_tokens_per_s": round(
            sum(row["completion_tokens"] for row in rows) / max(sum(per_article), 1e-9), 1
        ),
    }
    progress[name] = summary
    if out:
        out.write_text(json.dumps(progress, indent=2) + "\n", encoding="utf-8")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list(EMBEDDED_MODELS), choices=list(EMBEDDED_MODELS))
    parser.add_argument("--limit", type=int, help="Only the first N example articles.")
    parser.add_argument("--max-reasks", type=int, default=ExtractionSettings.max_reasks)
    parser.add_argument("--max-tokens", type=int, default=ExtractionSettings.max_tokens)
    parser.add_argument(
        "--timeout", type=float, default=ExtractionSettings.timeout_s, help="Seconds per request."
    )
    parser.add_argument("--json", type=Path, help="Write the figures here (updated after every article).")
    args = parser.parse_args()

    settings = ExtractionSettings(
        max_reasks=args.max_reasks, max_tokens=args.max_tokens, timeout_s=args.timeout
    )
    articles = example_articles(args.limit)
    progress: dict[str, Any] = {}
    summaries = {
        name: asyncio.run(run_model(name, articles, settings, progress, args.json)) for name in args.models
    }

    print()
    print(
        f"{len(articles)} articles; max_reasks={settings.max_reasks}, max_tokens={settings.max_tokens}, "
        f"timeout={settings.timeout_s:g}s"
    )
    columns = ("s/article", "max s", "records", "failed", "accuracy", "grounded")
    print(f"{'model':<14} " + " ".join(f"{c:>9}" for c in columns))
    for name, s in summaries.items():
        accuracy = "-" if s["accuracy"] is None else f"{s['accuracy'] * 100:.0f}%"
        grounded = "-" if s["grounding_rate"] is None else f"{s['grounding_rate'] * 100:.0f}%"
        print(
            f"{name:<14} {s['seconds_per_article_mean']:>9} {s['seconds_per_article_max']:>9} "
            f"{s['records']:>9} {s['failures']:>9} {accuracy:>9} {grounded:>9}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
