"""What extracting N articles costs, live and through the Batch API.

Not a test. Run:

    .venv/bin/python benchmarks/cost_table.py                      # 1M articles, the cassettes' tokens
    .venv/bin/python benchmarks/cost_table.py --store runs/x       # tokens of a real run instead
    .venv/bin/python benchmarks/cost_table.py --articles 250000 --article-kb 4

Tokens per article come from a measurement, never a guess:

* by default the recorded cassettes (``cassettes/extract/*.yaml``): every request the
  extractor sent for each example article and the ``usage`` the server returned, re-asks
  included;
* with ``--store DIR``, the run store of a finished run (``triangulate.sqlite``: the tokens
  stored per article on its record or failure row).

Prompt tokens are split into a fixed part (the instructions and schema, the same for every
article) and a part that grows with the article's text, fitted on the measured articles
(least squares over characters), so ``--article-kb`` can price longer articles than the
examples. Prices are per million tokens, as published on OpenAI's pricing page
(developers.openai.com/api/docs/pricing) on the date in ``PRICES_AS_OF``; the Batch API bills
half of each. Check the page before budgeting: prices change.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes" / "extract"
EXAMPLES = ROOT / "examples"

PRICES_AS_OF = "2026-07"
# model: (input $/1M tokens, output $/1M tokens), live. The Batch API: half of each.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4o": (2.50, 10.00),
}
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class ArticleTokens:
    name: str
    chars: int  # of the article's text as the extractor sent it (0 when unknown)
    requests: int
    prompt: int
    completion: int


def _sent_text_chars(body: dict[str, object]) -> int:
    """Characters of the user message: the article's numbered sentences."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return sum(len(str(m.get("content", ""))) for m in users)


def from_cassettes(folder: Path = CASSETTES) -> list[ArticleTokens]:
    """One row per recorded article: its requests (first ask and re-asks) and their usage."""
    rows = []
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        requests = prompt = completion = chars = 0
        for interaction in data.get("interactions", []):
            request_body = json.loads(interaction["request"]["body"] or "{}")
            reply = json.loads(interaction["response"]["body"]["string"] or "{}")
            usage = reply.get("usage") or {}
            requests += 1
            prompt += int(usage.get("prompt_tokens", 0))
            completion += int(usage.get("completion_tokens", 0))
            if requests == 1:
                chars = _sent_text_chars(request_body)
        name = path.stem.split("[", 1)[-1].rstrip("]")
        rows.append(ArticleTokens(name, chars, requests, prompt, completion))
    return rows


def from_store(folder: Path) -> list[ArticleTokens]:
    """One row per article of a finished run: the tokens over all attempts of its latest
    extraction (asks, re-asks and chunks), or of its failure row, since a failed article was paid
    for too. Runs that asked an article again (``--refresh``) are not added up."""
    db = folder / "triangulate.sqlite"
    if not db.exists():
        raise SystemExit(f"error: no run store at {db}")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        latest: dict[str, ArticleTokens] = {}
        for article, attempts, prompt, completion in con.execute(
            "SELECT article_id, attempts, prompt_tokens, completion_tokens FROM extractions ORDER BY created"
        ):
            latest[str(article)] = ArticleTokens(str(article), 0, int(attempts), int(prompt), int(completion))
        for article, attempts, prompt, completion in con.execute(
            "SELECT article_id, attempts, prompt_tokens, completion_tokens FROM failures"
            " WHERE article_id IS NOT NULL"
        ):
            latest.setdefault(
                str(article), ArticleTokens(str(article), 0, int(attempts), int(prompt), int(completion))
            )
        return list(latest.values())
    finally:
        con.close()


def fit_prompt(rows: list[ArticleTokens]) -> tuple[float, float] | None:
    """Prompt tokens of a first ask = fixed + per_char x characters (least squares); None when
    the articles' lengths are unknown or all alike."""
    points = [(r.chars, r.prompt / max(r.requests, 1)) for r in rows if r.chars and r.requests]
    if len(points) < 2 or len({x for x, _ in points}) < 2:
        return None
    slope, intercept = statistics.linear_regression([x for x, _ in points], [y for _, y in points])
    return intercept, slope


def cost(prompt: float, completion: float, model: str, *, batch: bool) -> float:
    price_in, price_out = PRICES[model]
    factor = BATCH_DISCOUNT if batch else 1.0
    return (prompt * price_in + completion * price_out) * factor / 1_000_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=1_000_000, help="articles to price (default 1M)")
    parser.add_argument("--store", type=Path, help="a finished run folder to take tokens from")
    parser.add_argument(
        "--article-kb", type=float, default=None, help="also price articles of this many KB of text"
    )
    args = parser.parse_args(argv)
    rows = from_store(args.store) if args.store else from_cassettes()
    if not rows:
        print("error: no token counts found", file=sys.stderr)
        return 2
    prompt = statistics.fmean(r.prompt for r in rows)
    completion = statistics.fmean(r.completion for r in rows)
    requests = statistics.fmean(r.requests for r in rows) if rows[0].requests else float("nan")
    chars = statistics.fmean(r.chars for r in rows) if rows[0].chars else 0.0
    recorded = f"{len(rows)} recorded articles ({CASSETTES.relative_to(ROOT)})"
    source = str(args.store) if args.store else recorded
    print(f"tokens from {source}:")
    print(
        f"  per article: {prompt:,.0f} prompt + {completion:,.0f} completion tokens, "
        f"{requests:.2f} request(s)" + (f", {chars:,.0f} characters sent" if chars else "")
    )
    scenarios = [("measured articles", prompt, completion)]
    fitted = fit_prompt(rows)
    if args.article_kb and fitted is not None:
        fixed, per_char = fitted
        longer = (fixed + per_char * args.article_kb * 1024) * requests
        print(f"  prompt fit: {fixed:,.0f} fixed + {per_char:.3f} per character")
        scenarios.append((f"{args.article_kb:g} KB articles", longer, completion))
    print(f"\ncost of {args.articles:,} articles, USD (prices as of {PRICES_AS_OF}; Batch API = half):")
    print("| articles | model | prompt tokens | completion tokens | live | Batch API |")
    print("|---|---|---|---|---|---|")
    for label, p, c in scenarios:
        total_p, total_c = p * args.articles, c * args.articles
        for model in PRICES:
            print(
                f"| {label} | {model} | {total_p / 1e6:,.0f}M | {total_c / 1e6:,.0f}M | "
                f"${cost(total_p, total_c, model, batch=False):,.0f} | "
                f"${cost(total_p, total_c, model, batch=True):,.0f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
