"""The ``triangulate`` command line, on click.

Each command turns its flags into typed values and hands off to the module that does the work
(:mod:`pipeline.batch.runner`, :mod:`pipeline.cli.commands`); no pipeline logic lives here. Those
modules are imported inside the commands, so ``triangulate --help`` does not load them.

:func:`main` runs click in non-standalone mode so that it returns the exit code instead of
leaving the interpreter (the tests call it directly) and so that every error, click's own
usage errors included, reaches the user in one form: a single ``error: ...`` line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from pipeline import __version__
from pipeline.extract.plans import PLAN_NAMES
from pipeline.extract.providers import DEFAULT_EMBEDDED_CHOICE, EMBEDDED_ENV, EMBEDDED_MODELS
from schemas.options import DEFAULT_MAX_ARTICLE_BYTES, RunOptions

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

MODEL_ENV = "TRIANGULATE_MODEL"
CONCURRENCY_ENV = "TRIANGULATE_CONCURRENCY"
DB_ENV = "TRIANGULATE_DB"
RAY_ADDRESS_ENV = "TRIANGULATE_RAY_ADDRESS"

# Paths are only parsed here, never checked: each command reports a missing input or run folder
# in its own words and with its own exit code.
PATH = click.Path(path_type=Path)

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

Decorated = TypeVar("Decorated", bound=Callable[..., Any])


class ByteCount(click.ParamType[int, Any]):
    """A whole number of bytes, at least 1 (``--max-article-bytes``)."""

    name = "bytes"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and value >= 1:
            return value
        try:
            count = int(value)
        except (TypeError, ValueError):
            count = 0
        if count < 1:
            self.fail("must be a whole number of bytes, at least 1", param, ctx)
        return count


def _embedded_flag_only(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Keep ``--embedded`` from the command line; drop the value click read from the environment.

    The provider reads TRIANGULATE_EMBEDDED itself, and it means less than the flag: the variable
    picks which embedded model runs *if* the embedded engine is chosen, while ``--embedded`` also
    chooses the engine (over ``--model`` or OPENAI_BASE_URL) and clashes with ``--gguf``. Handing
    the variable's value on as if typed would turn a shell default into that stronger request.
    Click still reads the variable so that help names it and a misspelt model name fails here.
    """
    if param.name and ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT:
        return None
    return value


def model_options(command: Decorated) -> Decorated:
    """The flags that choose and drive the model, shared by ``run`` and ``retry-failed``."""
    options = [
        click.option(
            "--model",
            metavar="NAME",
            envvar=MODEL_ENV,
            show_envvar=True,
            help="Model name at an OpenAI-compatible endpoint (OPENAI_BASE_URL / OPENAI_API_KEY). "
            "Without it and without OPENAI_BASE_URL, the embedded model runs in-process.",
        ),
        click.option("--gguf", type=PATH, metavar="FILE", help="Run this GGUF file in the embedded engine."),
        click.option(
            "--embedded",
            type=click.Choice(list(EMBEDDED_MODELS)),
            metavar="NAME",
            envvar=EMBEDDED_ENV,
            show_envvar=True,
            callback=_embedded_flag_only,
            help=f"Run this embedded model in-process: {', '.join(EMBEDDED_MODELS)} "
            f"(default {DEFAULT_EMBEDDED_CHOICE}). The environment variable only picks the model "
            "for when the embedded engine runs; the flag also chooses the engine.",
        ),
        click.option(
            "--max-reasks",
            type=int,
            metavar="N",
            help="Re-asks after validation errors (default: the model's recommendation, "
            "0 for the embedded models, else 2).",
        ),
        click.option(
            "--max-transport-retries",
            type=int,
            default=5,
            metavar="N",
            help="Retries after 429/5xx replies and timeouts (default 5).",
        ),
        click.option(
            "--timeout",
            type=float,
            default=300.0,
            metavar="SECONDS",
            help="Seconds per request (default 300).",
        ),
        click.option(
            "--stop-after-connection-failures",
            type=click.IntRange(min=0),
            metavar="N",
            help="Stop the run when N articles in a row fail because the endpoint cannot be reached "
            "(connection refused or reset, DNS, timeouts); the rest stay pending. "
            "0: never stop (default 5).",
        ),
        click.option(
            "--temperature",
            type=float,
            default=0.0,
            help="Sampling temperature (default 0).",
        ),
        click.option(
            "--max-tokens",
            type=int,
            metavar="N",
            help="Completion tokens per request (default: the model's recommendation, else 1024).",
        ),
        click.option(
            "--plan",
            type=click.Choice(sorted(PLAN_NAMES)),
            help="Extraction plan (default flat: one call, values with sentence numbers, "
            "one worked example).",
        ),
    ]
    # Applied last to first so that --help lists them in the order written above.
    for option in reversed(options):
        command = option(command)
    return command


def batch_options(command: Decorated) -> Decorated:
    """How hard ``run`` and ``retry-failed`` push the endpoint, and how much they say."""
    options = [
        click.option(
            "--concurrency",
            type=click.IntRange(min=1),
            metavar="N",
            envvar=CONCURRENCY_ENV,
            show_envvar=True,
            help="Requests in flight (default 4; 1 for the embedded model).",
        ),
        click.option(
            "--rpm",
            type=click.FloatRange(min=0, min_open=True),
            metavar="N",
            help="At most this many requests per minute.",
        ),
        click.option(
            "--tpm",
            type=click.FloatRange(min=0, min_open=True),
            metavar="N",
            help="At most this many tokens per minute.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def provider_batch_options(command: Decorated) -> Decorated:
    """``--batch`` and ``--batch-reasks``, declared once for ``run`` and ``retry-failed``."""
    options = [
        click.option(
            "--batch",
            is_flag=True,
            help="Send the requests through the provider's Batch API (JSONL files split at the "
            "provider's caps; cheaper, slower) instead of live; a killed command resumes by polling "
            "the same batches.",
        ),
        click.option(
            "--batch-reasks",
            type=click.Choice(["live", "batch"]),
            default="live",
            show_default=True,
            help="With --batch: ask again the articles whose batch reply failed validation, live or "
            "in a second round of batches.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _flag_problems(options: RunOptions) -> bool:
    """Print each problem with the options as the flag that caused it; True when there were some.

    Click's types already refuse these values; this backstop keeps the command line and
    :meth:`RunOptions.problems` from drifting apart when a check is added to only one of them.
    """
    problems = options.problems()
    for problem in problems:
        name, _, rest = problem.partition(" ")
        print(f"error: --{name.replace('_', '-')} {rest}", file=sys.stderr)
    return bool(problems)


@click.group(name="triangulate", context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="triangulate", message="%(prog)s %(version)s")
def cli() -> None:
    """Cited incident records from news articles, reconciled across sources.

    `run` reads articles and writes a run folder: one cited record per article, the incidents
    they describe and the fields the sources disagree on; `show`, `report` and `export` read
    that folder, `serve` opens it for review and `decide` records an editor's decision in it;
    `eval` scores records against gold annotations.

    Examples:

    \b
        triangulate run examples/tempe-traffic-stop --out out/tempe
        triangulate serve out/tempe
        triangulate report out/tempe
    """


@cli.command("run", short_help="Extract one cited record per article, then reconcile.")
@click.argument(
    "paths",
    nargs=-1,
    required=True,
    type=PATH,
    metavar="PATH...",
    help="Input files, folders or .jsonl feeds.",
)
@click.option(
    "--out", type=PATH, required=True, metavar="DIR", help="Output directory (holds the run store)."
)
@batch_options
@click.option("--refresh", is_flag=True, help="Ignore cached extractions and ask again.")
@click.option(
    "--db",
    metavar="URL",
    envvar=DB_ENV,
    show_envvar=True,
    help="Also write the dashboard tables to this database (postgresql://...).",
)
@click.option("--no-reconcile", is_flag=True, help="Skip the reconcile step.")
@provider_batch_options
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Who runs the extraction: this process (local), or a Ray Data actor pool (ray: one "
    "actor per cluster CPU, --concurrency requests in flight per actor; needs the ray extra and "
    "--model at an HTTP endpoint, not the embedded model).",
)
@click.option(
    "--ray-address",
    metavar="ADDR",
    envvar=RAY_ADDRESS_ENV,
    show_envvar=True,
    help="With --engine ray: the Ray cluster to join (auto, or ray://host:10001); "
    "default: start a local Ray instance for the run.",
)
@click.option(
    "--max-article-bytes",
    type=ByteCount(),
    default=DEFAULT_MAX_ARTICLE_BYTES,
    metavar="N",
    help=f"Refuse (as a 'too-large' failure) an input file or JSONL line over N bytes "
    f"(default {DEFAULT_MAX_ARTICLE_BYTES}, 2 MiB).",
)
@model_options
def run_command(paths: tuple[Path, ...], out: Path, no_reconcile: bool, **flags: Any) -> int:
    """Extract one cited incident record per article, then reconcile the records into incidents.

    Reads .txt, .md and .html files, folders (recursively) and .jsonl feeds; asks the model for
    one record per article, each value tied to the sentence that supports it; keeps every
    outcome in the run store in DIR, so the same command resumes a run that stopped; and writes
    records.jsonl, failures.jsonl, incidents.jsonl and conflicts.jsonl there. Without --model
    or OPENAI_BASE_URL the embedded model runs in-process.

    \b
    Exit codes:
      0  every article has a record
      1  some failed (see retry-failed), or reconcile / the --db export failed
      2  nothing done: no records, a usage error, or the endpoint cannot be used
      3  the run store or the output folder cannot be written
      130 interrupted

    Examples:

    \b
        triangulate run examples/tempe-traffic-stop --out out/tempe
        triangulate run articles/ feed.jsonl --out runs/march --model gpt-4.1-mini --concurrency 16
        triangulate run articles/ --out runs/march --embedded qwen2.5-coder-0.5b
        triangulate run articles/ --out runs/march --model MODEL --engine ray --ray-address auto
    """
    from pipeline.batch.runner import EXIT_NOTHING_DONE, run

    options = RunOptions(command="run", out=out, paths=paths, reconcile=not no_reconcile, **flags)
    return EXIT_NOTHING_DONE if _flag_problems(options) else run(options)


@cli.command("retry-failed", short_help="Retry the articles that failed in a previous run.")
@click.argument("out", type=PATH, metavar="DIR", help="The --out directory of the earlier run.")
@batch_options
@provider_batch_options
@model_options
def retry_failed_command(out: Path, **flags: Any) -> int:
    """Ask the model again for every article the run store in DIR records as failed, then
    reconcile; articles that already have a record are left alone. Takes the model flags of
    `run`, so a failed run can be retried with a stronger model, and --batch, so the failed
    articles (e.g. those of an expired batch) are asked again through the provider's Batch API.
    Exit codes are those of `run`.

    Examples:

    \b
        triangulate retry-failed out/tempe
        triangulate retry-failed runs/march --model gpt-4.1 --max-reasks 3
        triangulate retry-failed runs/march --model gpt-4.1-mini --batch
    """
    from pipeline.batch.runner import EXIT_NOTHING_DONE, retry_failed

    options = RunOptions(command="retry-failed", out=out, **flags)
    return EXIT_NOTHING_DONE if _flag_problems(options) else retry_failed(options)


# reconcile and eval both ground the records they are given (pipeline/reconcile/given.py).
articles_option = click.option(
    "--articles",
    "article_dirs",
    type=PATH,
    multiple=True,
    metavar="DIR",
    help="Where the records' articles are, to ground records that carry no grounding (also looked "
    "for: a run store beside RECORDS.jsonl, and each record's source_path). Repeatable.",
)


@cli.command("reconcile", short_help="Merge records into incidents and flag disagreements.")
@click.argument("records", type=PATH, metavar="RECORDS.jsonl", help="One incident record per line.")
@click.option("--out", type=PATH, required=True, metavar="DIR", help="Where to write the incidents.")
@click.option(
    "--wait",
    type=float,
    default=0,
    metavar="SECONDS",
    help="Wait this long for a DIR another command is using (default: do not wait).",
)
@articles_option
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Who clusters and judges: this process (local), or Ray Data on a Ray cluster (ray; "
    "needs the ray extra). Both write the same incidents.jsonl and conflicts.jsonl; ray also "
    "writes incidents.parquet and conflicts.parquet.",
)
@click.option(
    "--ray-address",
    metavar="ADDR",
    envvar=RAY_ADDRESS_ENV,
    show_envvar=True,
    help="With --engine ray: the Ray cluster to use (auto, or ray://host:10001); default: start "
    "one on this machine for the command.",
)
def reconcile_cli(
    records: Path,
    out: Path,
    wait: float,
    article_dirs: tuple[Path, ...],
    engine: str,
    ray_address: str | None,
) -> int:
    """Group records that describe the same incident, merge each group into one incident record
    and flag every field the sources disagree on.

    Records without grounding (imported or hand-written) are first grounded against their
    articles wherever the texts can be found; values whose article is found nowhere are shown
    as not checked. Writes incidents.jsonl and conflicts.jsonl in DIR and, when DIR has no run
    store, records.jsonl, so that `report` and `export` accept DIR. With --engine ray the
    clustering and judging run on a Ray cluster (docs/scale.md, "Ray"); the files are the same.
    Exit codes: 0 done, 1 some lines were invalid (the rest reconciled), 2 nothing done.

    Examples:

    \b
        triangulate reconcile examples/tempe-traffic-stop/gold_records.jsonl --out out/gold
        triangulate reconcile imported.jsonl --articles articles/ --out out/imported
        triangulate reconcile big/records.jsonl --out out/big --engine ray --ray-address auto
    """
    from pipeline.cli.commands import reconcile_command

    return reconcile_command(
        records, out, wait=wait, article_dirs=article_dirs, engine=engine, ray_address=ray_address
    )


@cli.command("eval", short_help="Score records against gold annotations.")
@click.argument("records", type=PATH, metavar="RECORDS.jsonl", help="The records to score.")
@click.argument("gold", type=PATH, metavar="GOLD.json", help="The gold annotations.")
@click.option("--json", "json_out", type=PATH, metavar="FILE", help="Also write the report as JSON here.")
@articles_option
def eval_cli(records: Path, gold: Path, json_out: Path | None, article_dirs: tuple[Path, ...]) -> int:
    """Score extracted records field by field against hand-written gold annotations and print
    the report. Exit codes: 0 scored, 2 an input cannot be read.

    Examples:

    \b
        triangulate eval out/tempe/records.jsonl examples/tempe-traffic-stop/gold.json
        triangulate eval out/tempe/records.jsonl gold.json --json out/tempe/eval.json
        triangulate eval imported.jsonl gold.json --articles articles/
    """
    from pipeline.cli.commands import eval_command

    return eval_command(records, gold, json_out=json_out, article_dirs=article_dirs)


@cli.command("export", short_help="Write dashboard tables as Parquet/CSV or to a database.")
@click.argument("out", type=PATH, metavar="DIR", help="A run directory.")
@click.option(
    "--format",
    "formats",
    type=click.Choice(["parquet", "csv", "sqlite"]),
    multiple=True,
    help="Write the tables as files in this format; repeat for several "
    "(default parquet and csv when DIR has no run store and no --db is given).",
)
@click.option("--to", type=PATH, metavar="DIR", help="Directory for the files (default DIR/export).")
@click.option(
    "--db",
    metavar="URL",
    envvar=DB_ENV,
    show_envvar=True,
    help="Upsert the tables into this database (postgresql://...).",
)
@click.option(
    "--wait",
    type=float,
    default=0,
    metavar="SECONDS",
    help="Wait this long for a DIR another command is using (default: do not wait).",
)
def export_cli(out: Path, formats: tuple[str, ...], to: Path | None, db: str | None, wait: float) -> int:
    """Write the dashboard tables of a run (articles, records, field_values, incidents,
    conflicts): into its run store, and as files or into a database when asked. Exit codes: 0 done, 1 the
    run or a destination cannot take the export, 2 DIR is in use by another command.

    Examples:

    \b
        triangulate export out/tempe --format parquet --format csv
        triangulate export out/tempe --db postgresql://localhost/incidents
    """
    from pipeline.cli.commands import export_command

    return export_command(out, formats=formats, to=to, db=db, wait=wait)


@cli.command("report", short_help="Write the self-contained HTML review page.")
@click.argument("out", type=PATH, metavar="DIR", help="A run directory.")
@click.option("--html", type=PATH, metavar="FILE", help="Where to write the page (default DIR/report.html).")
def report_cli(out: Path, html: Path | None) -> int:
    """Write one self-contained HTML page for reviewing a run: each incident's merged record,
    the flagged fields, and every value with the quote it came from. Exit codes: 0 written,
    1 DIR is not a run.

    Examples:

    \b
        triangulate report out/tempe
        triangulate report out/tempe --html review/tempe.html
    """
    from pipeline.cli.commands import report_command

    return report_command(out, html)


@cli.command("decide", short_help="Record a reviewer's decision on an incident.")
@click.argument("out", type=PATH, metavar="DIR", help="A run folder (the --out of `run` or `reconcile`).")
@click.option("--incident", "incident_id", required=True, metavar="ID", help="The incident, by its id.")
@click.option("--field", "field_path", metavar="PATH", help="The field, e.g. subjects[0].place_of_death.")
@click.option("--value", metavar="V", help="Set the field to this value (say why with --note).")
@click.option("--accept", metavar="VALUE", help="Accept this one of the sources' values for the field.")
@click.option("--resolved", is_flag=True, help="Mark the field's conflict resolved as merged.")
@click.option("--merge-with", metavar="ID", help="Merge this incident and incident ID into one.")
@click.option(
    "--split", "split_articles", multiple=True, metavar="ARTICLE", help="Split this article off (repeatable)."
)
@click.option("--note", default="", metavar="TEXT", help="Why: shown with the decision everywhere.")
@click.option(
    "--by", default=None, metavar="NAME", envvar="TRIANGULATE_REVIEWER", show_envvar=True, help="Who decides."
)
def decide_cli(
    out: Path,
    incident_id: str,
    field_path: str | None,
    value: str | None,
    accept: str | None,
    resolved: bool,
    merge_with: str | None,
    split_articles: tuple[str, ...],
    note: str,
    by: str | None,
) -> int:
    """Record a reviewer's decision on an incident, in the folder's run store (append-only), and
    reconcile the folder again so every output shows it. Every later reconcile re-applies it; a
    decision that no longer applies is flagged, never dropped (`triangulate decisions`).

    Give a field and one of --value, --accept or --resolved; or --merge-with; or --split.
    Exit codes: 0 recorded, 2 a usage error (no such folder or incident, no decision given).

    Examples:

    \b
        triangulate decide runs/tempe --incident inc-8824bb0c --field where.place --value Apache --note ME
        triangulate decide runs/tempe --incident inc-8824bb0c --field where.city --accept Tempe
        triangulate decide runs/tempe --incident inc-8824bb0c --merge-with inc-77d0e1f2 --note "same raid"
    """
    from pipeline.cli.commands import decide_command

    return decide_command(
        out,
        incident_id,
        field_path=field_path,
        value=value,
        accept=accept,
        resolved=resolved,
        merge_with=merge_with,
        split_articles=split_articles,
        note=note,
        by=by,
    )


@cli.command("decisions", short_help="List the reviewers' decisions of a run folder.")
@click.argument("out", type=PATH, metavar="DIR", help="A run folder.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of text.")
def decisions_cli(out: Path, as_json: bool) -> int:
    """List every decision recorded in DIR, oldest first, each with whether it stands, was
    superseded by a later one on the same field, or no longer applies (and why).

    Examples:

    \b
        triangulate decisions runs/tempe
        triangulate decisions runs/tempe --json > decisions.jsonl
    """
    from pipeline.cli.commands import decisions_command

    return decisions_command(out, as_json=as_json)


@cli.command("serve", short_help="Review a run folder in the browser and record decisions.")
@click.argument("out", type=PATH, metavar="DIR", help="A run folder (the --out of `run` or `reconcile`).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    metavar="N",
    help="The port to listen on; 0 takes any free port (the address is printed).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    metavar="ADDRESS",
    help="The address to listen on. Anything but loopback lets everyone who can reach it record "
    "decisions (a warning says so).",
)
@click.option(
    "--by",
    default=None,
    metavar="NAME",
    envvar="TRIANGULATE_REVIEWER",
    show_envvar=True,
    help="Who decides: recorded with every decision (default: your login name).",
)
@click.option("--no-browser", is_flag=True, help="Do not open the page in a browser.")
def serve_cli(out: Path, port: int, host: str, by: str | None, no_browser: bool) -> int:
    """Serve a small local web app for reviewing DIR: an index of the incidents (contradictions
    first, with search and filters) and, for each incident, the flagged fields with every value's
    evidence in its article, and buttons to accept a value, set one with a note, or resolve. Each
    decision goes to the run store at once and DIR is reconciled again, so a reload, another
    browser and every later `reconcile` show it. Listens on loopback only unless --host says
    otherwise; needs no network. Stop with Ctrl-C. Exit codes: 0 stopped, 1 DIR is not reconciled
    or cannot be read, 2 DIR is no run folder or the port cannot be used.

    Examples:

    \b
        triangulate serve out/tempe
        triangulate serve runs/march --port 0 --no-browser --by "J. Editor"
    """
    import getpass

    from pipeline.review.server import serve

    return serve(out, host=host, port=port, reviewer=by or getpass.getuser(), open_browser=not no_browser)


@cli.command(
    "show", short_help="Audit one article: the prompts, the raw model replies, and the record made from them."
)
@click.argument("out", type=PATH, metavar="DIR", help="A run directory (the --out of `run`).")
@click.argument(
    "article",
    metavar="ARTICLE",
    help="Article id, a unique id prefix (with or without 'sha256:'), a source path, or a file name.",
)
@click.option("--prompt", is_flag=True, help="Also print the full system prompt.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--all-runs", is_flag=True, help="Every stored exchange, not only the current outcome's.")
def show_cli(out: Path, article: str, prompt: bool, as_json: bool, all_runs: bool) -> int:
    """Print one article of a run: its metadata, every request sent to the model for its current
    outcome (user prompt, raw reply), and each cited value with its grounding (or the failure).
    Exit codes: 0 shown, 2 no such run or article.

    Examples:

    \b
        triangulate show runs/tempe 01-valley-ledger.md
        triangulate show runs/tempe sha256:3f9a --prompt
        triangulate show runs/tempe 3f9a --json > article.json
    """
    from pipeline.cli.commands import show_command

    return show_command(out, article, prompt=prompt, as_json=as_json, all_runs=all_runs)


@cli.command("schema", short_help="Print the JSON Schema of the incident record.")
@click.option("--record", is_flag=True, help="The stored record (with grounding and provenance).")
@click.option(
    "--contract",
    is_flag=True,
    help="What the model fills: flat values with sentence numbers (schemas/contract.py).",
)
def schema_cli(record: bool, contract: bool) -> int:
    """Print the JSON Schema of the incident facts (the default), of the stored record, or of
    the reply the model is asked for.

    Examples:

    \b
        triangulate schema
        triangulate schema --record > record.schema.json
    """
    import json

    from schemas import ArticleReading, IncidentFacts, IncidentRecord

    model = ArticleReading if contract else IncidentRecord if record else IncidentFacts
    print(json.dumps(model.model_json_schema(), indent=2))
    return 0


def _one_line(message: str) -> str:
    """``message`` on one line, starting lowercase like the rest of our errors (click capitalises)."""
    text = " ".join(message.split()).rstrip(".")
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``triangulate`` with ``argv`` (default: the process's arguments); return the exit code."""
    try:
        result = cli.main(
            args=None if argv is None else list(argv), prog_name="triangulate", standalone_mode=False
        )
    except click.exceptions.NoArgsIsHelpError as bare:
        # `triangulate` with no command: the overview is the most useful answer, but it is
        # still a command line that did nothing.
        print(bare.format_message(), file=sys.stderr)
        return EXIT_USAGE
    except click.UsageError as error:
        where = error.ctx.command_path if error.ctx is not None else "triangulate"
        print(f"error: {_one_line(error.format_message())}; try '{where} --help'", file=sys.stderr)
        return EXIT_USAGE
    except click.ClickException as error:
        print(f"error: {_one_line(error.format_message())}", file=sys.stderr)
        return error.exit_code
    except (click.Abort, KeyboardInterrupt):
        # click turns Ctrl-C inside a command into Abort (after ending the terminal's ^C line).
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    # --help and --version end in click's Exit, which main returns as the code (0).
    return int(result)


if __name__ == "__main__":
    sys.exit(main())
