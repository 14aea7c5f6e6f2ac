"""The ``triangulate`` command line.

Each subcommand parses its flags here and hands off to the module that does
the work; no pipeline logic lives in this file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.extract.plans import PLAN_NAMES
from schemas.options import DEFAULT_MAX_ARTICLE_BYTES, RunOptions


def _cmd_schema(args: argparse.Namespace) -> int:
    from schemas import ArticleReading, IncidentFacts, IncidentRecord

    model = ArticleReading if args.contract else IncidentRecord if args.record else IncidentFacts
    print(json.dumps(model.model_json_schema(), indent=2))
    return 0


def _run_options(args: argparse.Namespace, command: str) -> RunOptions:
    return RunOptions(
        out=Path(args.out),
        paths=tuple(getattr(args, "paths", ())),
        command=command,
        model=args.model,
        gguf=args.gguf,
        embedded=args.embedded,
        plan=args.plan,
        max_reasks=args.max_reasks,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        max_transport_retries=args.max_transport_retries,
        timeout=args.timeout,
        concurrency=args.concurrency,
        rpm=args.rpm,
        tpm=args.tpm,
        stop_after_connection_failures=args.stop_after_connection_failures,
        refresh=bool(getattr(args, "refresh", False)),
        reconcile=not getattr(args, "no_reconcile", False),
        db=getattr(args, "db", None),
        quiet=bool(args.quiet),
        max_article_bytes=getattr(args, "max_article_bytes", DEFAULT_MAX_ARTICLE_BYTES),
    )


def _flag_problems(options: RunOptions) -> bool:
    """Print each problem with the options as the flag that caused it; True when there were some."""
    for problem in options.problems():
        name, _, rest = problem.partition(" ")
        print(f"error: --{name.replace('_', '-')} {rest}", file=sys.stderr)
    return bool(options.problems())


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.batch.runner import EXIT_NOTHING_DONE, run

    options = _run_options(args, "run")
    return EXIT_NOTHING_DONE if _flag_problems(options) else run(options)


def _cmd_retry_failed(args: argparse.Namespace) -> int:
    from pipeline.batch.runner import EXIT_NOTHING_DONE, retry_failed

    options = _run_options(args, "retry-failed")
    return EXIT_NOTHING_DONE if _flag_problems(options) else retry_failed(options)


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from pipeline.cli.commands import reconcile_command

    return reconcile_command(args.records, args.out, wait=float(args.wait or 0))


def _cmd_eval(args: argparse.Namespace) -> int:
    from pipeline.cli.commands import eval_command

    return eval_command(args.records, args.gold, json_out=args.json_out)


def _cmd_export(args: argparse.Namespace) -> int:
    from pipeline.cli.commands import export_command

    return export_command(
        Path(args.out), formats=args.format or (), to=args.to, db=args.db, wait=float(args.wait or 0)
    )


def _cmd_report(args: argparse.Namespace) -> int:
    from pipeline.cli.commands import report_command

    return report_command(Path(args.out), args.html)


def _cmd_show(args: argparse.Namespace) -> int:
    from pipeline.cli.commands import show_command

    return show_command(
        Path(args.out), args.article, prompt=args.prompt, as_json=args.json, all_runs=args.all_runs
    )


def parse_max_article_bytes(text: str) -> int:
    """The argparse ``type`` of ``--max-article-bytes``: a whole number of bytes, at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError("must be a whole number of bytes, at least 1")
    return value


def _add_model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        help="Model name at an OpenAI-compatible endpoint (OPENAI_BASE_URL / OPENAI_API_KEY). "
        "Without it and without OPENAI_BASE_URL, the embedded model runs in-process.",
    )
    group.add_argument("--gguf", type=Path, help="Run this GGUF file in the embedded engine.")
    from pipeline.extract.providers import DEFAULT_EMBEDDED_CHOICE, EMBEDDED_ENV, EMBEDDED_MODELS

    group.add_argument(
        "--embedded",
        choices=list(EMBEDDED_MODELS),
        metavar="NAME",
        help=f"Run this embedded model in-process: {', '.join(EMBEDDED_MODELS)} "
        f"(default: ${EMBEDDED_ENV}, else {DEFAULT_EMBEDDED_CHOICE}). "
        "Example: --embedded qwen2.5-coder-0.5b",
    )
    group.add_argument(
        "--max-reasks",
        type=int,
        default=None,
        help="Re-asks after validation errors (default: the model's recommendation, 0 for the "
        "embedded models, else 2).",
    )
    group.add_argument(
        "--max-transport-retries", type=int, default=5, help="Retries after 429/5xx/timeouts (default 5)."
    )
    group.add_argument("--timeout", type=float, default=300.0, help="Seconds per request (default 300).")
    group.add_argument(
        "--stop-after-connection-failures",
        type=int,
        default=None,
        metavar="N",
        help="Stop the run when N articles in a row fail because the endpoint cannot be reached "
        "(connection refused or reset, DNS, timeouts); the rest stay pending. 0: never stop (default 5).",
    )
    group.add_argument("--temperature", type=float, default=0.0)
    group.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="Completion tokens per request (default: the model's recommendation, else 1024).",
    )
    group.add_argument(
        "--plan",
        choices=sorted(PLAN_NAMES),
        default=None,
        help="Extraction plan (default flat: one call, values with sentence numbers, one worked example).",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="triangulate",
        description="Cited incident records from news articles, reconciled across sources.",
    )
    from pipeline import __version__

    parser.add_argument("--version", action="version", version=f"triangulate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="Extract one cited record per article, then reconcile.")
    p.description = (
        "Read articles (.txt/.md/.html files, folders recursively, .jsonl), extract one cited "
        "incident record per article, and reconcile them into incidents."
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--out", type=Path, required=True, help="Output directory (holds the run store).")
    p.add_argument(
        "--concurrency", type=int, default=None, help="Requests in flight (default: 4, embedded: 1)."
    )
    p.add_argument("--rpm", type=float, default=None, help="Max requests per minute.")
    p.add_argument("--tpm", type=float, default=None, help="Max tokens per minute.")
    p.add_argument("--refresh", action="store_true", help="Ignore cached extractions and ask again.")
    p.add_argument("--db", help="Also write dashboard tables to this database URL (postgresql://...).")
    p.add_argument("--no-reconcile", action="store_true", help="Skip the reconcile step.")
    p.add_argument("--quiet", "-q", action="store_true", help="No progress bar.")
    p.add_argument(
        "--max-article-bytes",
        type=parse_max_article_bytes,
        default=DEFAULT_MAX_ARTICLE_BYTES,
        metavar="N",
        help=f"Refuse (as a 'too-large' failure) an input file or JSONL line over N bytes "
        f"(default {DEFAULT_MAX_ARTICLE_BYTES}, 2 MiB).",
    )
    _add_model_flags(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("retry-failed", help="Retry the articles that failed in a previous run.")
    p.add_argument("out", type=Path, metavar="DIR", help="The --out directory of the earlier run.")
    p.add_argument("--concurrency", type=int, default=None)
    p.add_argument("--rpm", type=float, default=None)
    p.add_argument("--tpm", type=float, default=None)
    p.add_argument("--quiet", "-q", action="store_true")
    _add_model_flags(p)
    p.set_defaults(func=_cmd_retry_failed)

    p = sub.add_parser("reconcile", help="Merge records into incidents and flag disagreements.")
    p.add_argument("records", type=Path, metavar="RECORDS.jsonl")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--wait", type=float, default=0, metavar="SECONDS", help="Wait this long for a busy DIR.")
    p.set_defaults(func=_cmd_reconcile)

    p = sub.add_parser("eval", help="Score records against gold annotations.")
    p.add_argument("records", type=Path, metavar="RECORDS.jsonl")
    p.add_argument("gold", type=Path, metavar="GOLD.json")
    p.add_argument("--json", dest="json_out", type=Path, help="Write the report as JSON here.")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("export", help="Write dashboard tables as Parquet/CSV or to a database.")
    p.add_argument("out", type=Path, metavar="DIR", help="A run directory.")
    p.add_argument("--format", choices=["parquet", "csv", "sqlite"], action="append")
    p.add_argument("--to", type=Path, help="Directory for the files (default DIR/export).")
    p.add_argument("--db", help="Database URL (postgresql://...) to upsert the tables into.")
    p.add_argument("--wait", type=float, default=0, metavar="SECONDS", help="Wait this long for a busy DIR.")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("report", help="Write the self-contained HTML review page.")
    p.add_argument("out", type=Path, metavar="DIR", help="A run directory.")
    p.add_argument("--html", type=Path, help="Where to write the page (default DIR/report.html).")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "show",
        help="Audit one article: the prompts, the raw model replies, and the record made from them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print one article of a run: its metadata, every request sent to the model for\n"
        "its current outcome (user prompt, raw reply), and each cited value with its grounding\n"
        "(or the failure).",
        epilog="examples:\n"
        "  triangulate show runs/tempe 01-valley-ledger.md\n"
        "  triangulate show runs/tempe sha256:3f9a --prompt\n"
        "  triangulate show runs/tempe 3f9a --json > article.json",
    )
    p.add_argument("out", type=Path, metavar="DIR", help="A run directory (the --out of `run`).")
    p.add_argument(
        "article",
        metavar="ARTICLE",
        help="Article id, a unique id prefix (with or without 'sha256:'), a source path, or a file name.",
    )
    p.add_argument("--prompt", action="store_true", help="Also print the full system prompt.")
    p.add_argument("--json", action="store_true", help="Print one JSON object instead of text.")
    p.add_argument(
        "--all-runs", action="store_true", help="Every stored exchange, not only the current outcome's."
    )
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("schema", help="Print the JSON Schema of the incident record.")
    p.add_argument("--record", action="store_true", help="The stored record (with grounding and provenance).")
    p.add_argument(
        "--contract",
        action="store_true",
        help="What the model fills: flat values with sentence numbers (schemas/contract.py).",
    )
    p.set_defaults(func=_cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
