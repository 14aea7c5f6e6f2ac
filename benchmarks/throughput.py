"""Throughput: the batch runner against a bare openai loop, on the same 200 ms endpoint.

Not a test. Run:

    .venv/bin/python benchmarks/throughput.py                      # 640 articles, 64 in flight
    .venv/bin/python benchmarks/throughput.py --articles 320 --json out.json

The endpoint is ``tests/fault_server.py`` in its own process (so its CPU time
is not counted as ours), answering every request after ``--latency`` seconds
with no faults; its answer is an ``ArticleReading`` citing one value to
sentence 1. Both sides send the same request bodies (the extractor's own
messages for each article) to the same server:

* **bare**: ``AsyncOpenAI.chat.completions.create`` with ``--concurrency``
  requests in flight, nothing else: the ceiling for this endpoint.
* **pipeline**: ``run_batch`` with the real ``Extractor`` (instructor,
  validation, grounding) and a fresh run store (SQLite, one transaction per
  article), at the same concurrency.
* **runner + store alone**: ``run_batch`` with an extractor that answers at
  once with a canned record: what the batch runner and the store cost by
  themselves, without HTTP, instructor or grounding.

Each side first runs a short warm-up (its own articles) so one-off costs such
as imports and connection set-up are not counted. Reported: articles/s for
both, their ratio, and CPU ms per article (``time.process_time()`` of this
process over the timed part, divided by the articles).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import openai

from pipeline.batch.runner import run_batch
from pipeline.evidence.locate import split_sentences
from pipeline.extract.extractor import ExtractionSettings, Extractor
from pipeline.extract.providers import Endpoint
from pipeline.store.runstore import RunStore
from schemas import Article, AttemptLog, ExtractionResult, IncidentRecord, Provenance, Usage

REPO = Path(__file__).resolve().parent.parent
MODEL = "fault-stub"
API_KEY = "sk-bench-not-a-real-key"


def make_articles(count: int, *, offset: int = 0) -> list[Article]:
    """Invented articles of a realistic length (~1,100 characters)."""
    articles = []
    for i in range(offset, offset + count):
        text = (
            f"Benchmark story {i:05d}. A sheriff's deputy shot a man during a traffic stop on a "
            "county road early Tuesday, the sheriff's office said in a statement.\n\n"
            f"The man, {20 + i % 60}, was taken to a hospital in serious condition. Deputies said he "
            "drove toward them after being asked to step out of the car; a passenger disputed that "
            "account and said he was trying to leave.\n\n"
            "The deputy, who has been with the department for six years, was placed on paid "
            "administrative leave, as is standard after a shooting. The state police will "
            "investigate, a spokesperson said.\n\n"
            "Neighbors said they heard three or four shots shortly before 6 a.m. One of them said "
            "she saw several patrol cars and an ambulance at the scene within minutes.\n\n"
            "The sheriff's office said body camera footage would be reviewed and released "
            "according to department policy."
        )
        articles.append(Article.from_text(text, source_path=f"bench/{i:05d}.txt", outlet="Bench Courier"))
    return articles


def start_server(latency_s: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "fault_server.py"), "--latency", str(latency_s)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    base_url = server.stdout.readline().strip()
    if not base_url.startswith("http://127.0.0.1:"):
        server.kill()
        raise RuntimeError(f"fault server did not start: {base_url!r}")
    return server, base_url


def make_extractor(base_url: str) -> Extractor:
    endpoint = Endpoint(base_url=base_url, model=MODEL, provider="openai-compatible", api_key=API_KEY)
    return Extractor(endpoint, ExtractionSettings())


async def bare_loop(base_url: str, articles: list[Article], concurrency: int) -> tuple[float, float]:
    """Returns (wall seconds, CPU seconds) for ``articles`` sent with ``concurrency`` in flight."""
    builder = make_extractor(base_url)  # only for its messages, so both sides send the same bodies
    client = openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)
    gate = asyncio.Semaphore(concurrency)
    # Built before the clock starts: the bare side pays for HTTP and the openai client only.
    bodies: dict[str, Any] = {a.id: builder.build_messages(split_sentences(a.text), 1, 1) for a in articles}

    async def one(article: Article) -> None:
        async with gate:
            await client.chat.completions.create(model=MODEL, messages=bodies[article.id], temperature=0.0)

    try:
        await asyncio.gather(*(one(a) for a in articles[:concurrency]))  # warm-up
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(a) for a in articles[concurrency:]))
        return time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await client.close()
        await builder.aclose()


async def pipeline_run(
    base_url: str, articles: list[Article], concurrency: int, store_dir: Path
) -> tuple[float, float, int]:
    """Returns (wall seconds, CPU seconds, records) for ``run_batch`` over ``articles``."""
    extractor = make_extractor(base_url)
    try:
        with RunStore(store_dir / "warmup") as warm_store:
            await run_batch(articles[:concurrency], extractor, warm_store, concurrency=concurrency)
        with RunStore(store_dir / "timed") as store:
            wall, cpu = time.perf_counter(), time.process_time()
            summary = await run_batch(articles[concurrency:], extractor, store, concurrency=concurrency)
            return time.perf_counter() - wall, time.process_time() - cpu, summary.records
    finally:
        await extractor.aclose()


class CannedExtractor:
    """Answers at once with a fixed record: isolates the runner's and the store's own cost."""

    def __init__(self) -> None:
        self.endpoint = Endpoint(base_url="http://127.0.0.1:9/v1", model=MODEL, provider="canned")
        self.cache_key_parts = {"model": MODEL, "canned": "1"}

    async def extract(self, article: Article) -> ExtractionResult:
        usage = Usage(prompt_tokens=400, completion_tokens=200, total_tokens=600)
        record = IncidentRecord(
            article_id=article.id,
            source_path=article.source_path,
            provenance=Provenance(article_id=article.id, model=MODEL, usage=usage, attempts=1),
        )
        log = AttemptLog(article_id=article.id, attempt=1, kind="ask", model=MODEL, usage=usage)
        return ExtractionResult(article_id=article.id, record=record, attempts=[log], usage=usage)


async def runner_only(articles: list[Article], concurrency: int, store_dir: Path) -> tuple[float, float]:
    with RunStore(store_dir / "canned") as store:
        wall, cpu = time.perf_counter(), time.process_time()
        await run_batch(articles, CannedExtractor(), store, concurrency=concurrency)
        return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=640)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2, help="Server seconds per answer.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()

    n, concurrency = args.articles, args.concurrency
    # Separate article sets: the pipeline's cache must not turn the timed run into cache hits.
    bare_articles = make_articles(n + concurrency, offset=0)
    pipeline_articles = make_articles(n + concurrency, offset=100_000)
    server, base_url = start_server(args.latency)
    try:
        bare_wall, bare_cpu = asyncio.run(bare_loop(base_url, bare_articles, concurrency))
        with tempfile.TemporaryDirectory() as store_dir:
            pipe_wall, pipe_cpu, records = asyncio.run(
                pipeline_run(base_url, pipeline_articles, concurrency, Path(store_dir))
            )
            canned_wall, canned_cpu = asyncio.run(
                runner_only(pipeline_articles[concurrency:], concurrency, Path(store_dir))
            )
    finally:
        server.terminate()
        server.wait(10)

    ideal = concurrency / args.latency
    figures = {
        "articles": n,
        "concurrency": concurrency,
        "latency_s": args.latency,
        "ideal_articles_per_s": round(ideal, 1),
        "bare_articles_per_s": round(n / bare_wall, 1),
        "pipeline_articles_per_s": round(n / pipe_wall, 1),
        "pipeline_over_bare": round((n / pipe_wall) / (n / bare_wall), 3),
        "bare_cpu_ms_per_article": round(1000 * bare_cpu / n, 2),
        "pipeline_cpu_ms_per_article": round(1000 * pipe_cpu / n, 2),
        "pipeline_records": records,
        "runner_and_store_cpu_ms_per_article": round(1000 * canned_cpu / n, 2),
        "runner_and_store_articles_per_s": round(n / canned_wall, 1),
    }
    print(
        f"{n} articles, {concurrency} in flight, {args.latency * 1000:.0f} ms per answer "
        f"(ideal {ideal:.0f} articles/s)\n"
        f"  bare openai loop  {figures['bare_articles_per_s']:>7} articles/s  "
        f"CPU {figures['bare_cpu_ms_per_article']} ms/article\n"
        f"  run_batch         {figures['pipeline_articles_per_s']:>7} articles/s  "
        f"CPU {figures['pipeline_cpu_ms_per_article']} ms/article  ({records} records)\n"
        f"  pipeline / bare   {figures['pipeline_over_bare']}\n"
        f"  runner + store alone (canned extractor, no HTTP): "
        f"CPU {figures['runner_and_store_cpu_ms_per_article']} ms/article, "
        f"{figures['runner_and_store_articles_per_s']} articles/s"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
