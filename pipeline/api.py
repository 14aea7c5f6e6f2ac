"""The Python API: the pipeline's stages as plain functions, for notebooks and scripts.

``import triangulate`` gives these names; each function imports the stages it needs when it is
called, so the model clients (openai, instructor, the embedded engine) load only when something
is extracted.

A notebook session, end to end::

    import triangulate

    items = triangulate.read_articles("examples/tempe-traffic-stop")
    results = triangulate.extract(items, model="qwen2.5:7b", base_url="http://localhost:11434/v1")
    merged = triangulate.reconcile(results, out="runs/tempe")   # a run folder report/export accept
    [(f.path, f.verdict) for f in merged.incidents[0].fields if f.verdict == "contradiction"]
    triangulate.report("runs/tempe")                            # runs/tempe/report.html

or the whole batch, with its run store, cache and resumption::

    triangulate.run(["examples/tempe-traffic-stop"], "runs/tempe", model="gpt-4o-mini")
    data = triangulate.load_run("runs/tempe")
    triangulate.export("runs/tempe", formats=["csv"])

Every function takes and returns the typed objects of :mod:`schemas` (``Article``,
``FailureRow``, ``ExtractionResult``, ``IncidentRecord``, ``ReconcileResult``) or
:class:`~pipeline.outputs.rundata.RunData`.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline.outputs.rundata import RunData
from schemas import Article, ExtractionResult, FailureRow, IncidentRecord, ReconcileResult
from schemas.options import DEFAULT_MAX_ARTICLE_BYTES, RunOptions

if TYPE_CHECKING:
    from pipeline.extract.providers import Endpoint
    from pipeline.outputs.export import ExportCounts

# The functions, and the types they take and return (re-exported by ``triangulate`` and ``pipeline``).
__all__ = [
    "read_articles",
    "extract",
    "reconcile",
    "run",
    "load_run",
    "report",
    "export",
    "Article",
    "ExportSummary",
    "ExtractionResult",
    "FailureRow",
    "IncidentRecord",
    "ReconcileResult",
    "RunData",
    "RunOptions",
    "RunWarning",
]

PathLike = str | os.PathLike[str]
_T = TypeVar("_T")


class RunWarning(UserWarning):
    """Something a run folder's reader wants the user to know (``RunData.warnings``), e.g. records
    newer than ``incidents.jsonl``, or article texts re-read from their source files."""


# --------------------------------------------------------------------------- reading and extracting


def read_articles(
    paths: PathLike | Iterable[PathLike], *, max_bytes: int = DEFAULT_MAX_ARTICLE_BYTES
) -> list[Article | FailureRow]:
    """Read files, folders (recursively, in sorted order) and JSONL feeds into articles.

    Every input that cannot be read becomes a :class:`~schemas.FailureRow` saying why (binary,
    not UTF-8, larger than ``max_bytes``, no text...), in the same list and order::

        items = triangulate.read_articles(["articles/", "feed.jsonl"])
        articles = [item for item in items if isinstance(item, triangulate.Article)]
        unreadable = [item for item in items if isinstance(item, triangulate.FailureRow)]
    """
    from pipeline.ingest.sources import iter_sources

    return list(iter_sources(_paths(paths), max_bytes=max_bytes))


def extract(
    articles: Article | Iterable[Article | FailureRow],
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    embedded: str | None = None,
    gguf: PathLike | None = None,
    plan: str | None = None,
    max_reasks: int | None = None,
    max_tokens: int | None = None,
    temperature: float = 0.0,
    timeout: float = 300.0,
    max_transport_retries: int = 5,
    concurrency: int | None = None,
    progress: bool = False,
) -> list[ExtractionResult]:
    """One :class:`~schemas.ExtractionResult` per article, in input order: a cited, grounded
    ``record``, or a ``failure`` saying why there is none.

    The model is chosen as ``triangulate run`` chooses it: ``base_url`` (or ``OPENAI_BASE_URL``)
    and ``model`` for an OpenAI-compatible endpoint, with ``api_key`` (or ``OPENAI_API_KEY``);
    ``gguf`` or ``embedded`` (or nothing at all) for the embedded engine. Up to ``concurrency``
    articles are in flight (default 4; 1 for the embedded engine). Nothing is cached or stored:
    :func:`run` is the batch with a run store, cache, rate limits and resumption.

    ``FailureRow`` items (what :func:`read_articles` could not read) are skipped: they are failures
    already. Raises ``ConnectionError`` when the endpoint cannot be reached at all (nothing is
    sent), and ``pipeline.extract.providers.ProviderError`` when the model cannot be set up::

        results = triangulate.extract(items, model="qwen2.5:7b", base_url="http://localhost:11434/v1")
        records = [r.record for r in results if r.record is not None]
        failed = {r.article_id: r.failure.reason for r in results if r.failure is not None}
    """
    todo = [articles] if isinstance(articles, Article) else [a for a in articles if isinstance(a, Article)]
    if concurrency is not None and concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if not todo:
        return []
    env = dict(os.environ)
    if base_url is not None:
        env["OPENAI_BASE_URL"] = base_url
    if api_key is not None:
        env["OPENAI_API_KEY"] = api_key
    choice = _ModelChoice(
        model=model,
        gguf=Path(gguf) if gguf is not None else None,
        embedded=embedded,
        env=env,
        progress=progress,
        plan=plan,
        max_reasks=max_reasks,
        max_tokens=max_tokens,
        temperature=temperature,
        timeout=timeout,
        max_transport_retries=max_transport_retries,
    )
    return _outside_event_loop(lambda: _extract_all(todo, choice, concurrency))


@dataclass(frozen=True, kw_only=True)
class _ModelChoice:
    """What :func:`extract` was asked for, carried into the worker that opens the endpoint."""

    model: str | None
    gguf: Path | None
    embedded: str | None
    env: dict[str, str] = field(repr=False)  # holds the API key
    progress: bool
    plan: str | None
    max_reasks: int | None
    max_tokens: int | None
    temperature: float
    timeout: float
    max_transport_retries: int


def _extract_all(
    articles: list[Article], choice: _ModelChoice, concurrency: int | None
) -> list[ExtractionResult]:
    from pipeline.batch.runner import DEFAULT_CONCURRENCY, EMBEDDED_DEFAULT_CONCURRENCY
    from pipeline.extract.providers import EMBEDDED, choose_provider, open_endpoint

    if concurrency is None:
        provider = choose_provider(
            model=choice.model, gguf=choice.gguf, env=choice.env, embedded=choice.embedded
        )
        # As the batch runner does: the embedded engine's parallel slots only slow each other down.
        concurrency = EMBEDDED_DEFAULT_CONCURRENCY if provider == EMBEDDED else DEFAULT_CONCURRENCY
    with open_endpoint(
        model=choice.model,
        gguf=choice.gguf,
        concurrency=concurrency,
        env=choice.env,
        embedded=choice.embedded,
        progress=choice.progress,
    ) as endpoint:
        return asyncio.run(_extract_with(endpoint, articles, choice, concurrency))


async def _extract_with(
    endpoint: Endpoint, articles: list[Article], choice: _ModelChoice, concurrency: int
) -> list[ExtractionResult]:
    from pipeline.batch.runner import PREFLIGHT_TIMEOUT_S, decoding_settings, probe_endpoint
    from pipeline.common.redact import redact_url
    from pipeline.extract.extractor import ExtractionSettings, Extractor

    unreachable = await probe_endpoint(
        endpoint.base_url, endpoint.api_key, timeout_s=min(choice.timeout, PREFLIGHT_TIMEOUT_S)
    )
    if unreachable is not None:
        raise ConnectionError(
            f"cannot reach the model endpoint at {redact_url(endpoint.base_url)}: {unreachable}; "
            "nothing was sent"
        )
    extractor = Extractor(
        endpoint,
        ExtractionSettings(
            max_transport_retries=choice.max_transport_retries,
            timeout_s=choice.timeout,
            temperature=choice.temperature,
            **decoding_settings(
                endpoint, max_reasks=choice.max_reasks, max_tokens=choice.max_tokens, plan=choice.plan
            ),
        ),
    )
    results: list[ExtractionResult | None] = [None] * len(articles)
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with gate:
            results[index] = await extractor.extract(articles[index])

    try:
        # A task group cancels the other articles when one raises (an endpoint that rejects the key
        # or the model rejects every article alike), so the error surfaces at once.
        async with asyncio.TaskGroup() as group:
            for index in range(len(articles)):
                group.create_task(one(index))
    except BaseExceptionGroup as errors:
        raise errors.exceptions[0] from None
    finally:
        await extractor.aclose()
    return [result for result in results if result is not None]


# --------------------------------------------------------------------------- reconciling and running


def reconcile(
    records: Iterable[IncidentRecord | ExtractionResult], *, out: PathLike | None = None
) -> ReconcileResult:
    """Cluster records into incidents and judge every field across the articles.

    Takes records, or the results of :func:`extract` (those without a record are left out). The
    result does not depend on the input order. With ``out``, also writes the folder
    ``triangulate reconcile RECORDS --out DIR`` writes (``records.jsonl``, ``incidents.jsonl``,
    ``conflicts.jsonl``), which :func:`report`, :func:`export` and :func:`load_run` accept; a run
    folder with a run store keeps its records, and gets only the incidents and conflicts::

        merged = triangulate.reconcile(records)
        for incident in merged.incidents:
            print(incident.id, len(incident.article_ids), "articles")
            print([(f.path, f.verdict) for f in incident.fields if f.verdict == "contradiction"])
    """
    from pipeline.reconcile.merge import reconcile as reconcile_records

    found: list[IncidentRecord] = []
    for item in records:
        if isinstance(item, ExtractionResult):
            if item.record is not None:
                found.append(item.record)
        else:
            found.append(item)
    if out is not None:
        return _write_reconcile_folder(Path(out), found)
    return reconcile_records(found)


def _write_reconcile_folder(out: Path, records: Sequence[IncidentRecord]) -> ReconcileResult:
    from pipeline.common.atomic import replaced_together
    from pipeline.reconcile.folder import reconcile_into
    from pipeline.store.runfolder import RunFolder
    from pipeline.store.runlock import run_folder_lock

    folder = RunFolder(out)
    with run_folder_lock(out, command="reconcile"):
        if folder.kind != "run":
            # Records before incidents: if the second write fails, the reader sees records newer
            # than incidents.jsonl and says so, rather than incidents of records it cannot find.
            with replaced_together() as files, files.open_text(folder.records) as handle:
                for record in records:
                    handle.write(record.model_dump_json() + "\n")
        # Into the folder's desk, so incidents keep their ids and decisions are re-applied.
        reconcile_into(records, out)
        return ReconcileResult(
            incidents=list(folder.read_incidents()), conflicts=list(folder.read_conflicts())
        )


def run(paths: PathLike | Iterable[PathLike], out: PathLike, /, **options: Any) -> int:
    """``triangulate run PATHS --out OUT``: the batch, with its run store, cache and resumption.

    ``options`` are the fields of :class:`schemas.options.RunOptions` (``model``, ``gguf``,
    ``embedded``, ``plan``, ``concurrency``, ``rpm``, ``tpm``, ``refresh``, ``reconcile``, ``db``,
    ``quiet``...). Returns the command's exit code (0 every article has a record, 1 some failed,
    2 nothing done, 3 the folder cannot be written) and prints its summary on stderr, as the command
    does; read the outcome with :func:`load_run`::

        code = triangulate.run(["articles/"], "runs/today", model="gpt-4o-mini", rpm=60, quiet=True)
        data = triangulate.load_run("runs/today")
    """
    from pipeline.batch.runner import run as run_batch

    for name in ("out", "paths"):
        if name in options:
            raise TypeError(f"run() takes {name!r} as its own argument, not as an option")
    if "command" in options:
        raise TypeError("run() always runs `triangulate run`; 'command' is not an option")
    if isinstance(options.get("gguf"), (str, os.PathLike)):
        options["gguf"] = Path(options["gguf"])
    run_options = RunOptions(out=Path(out), paths=_paths(paths), **options)
    problems = run_options.problems()
    if problems:
        raise ValueError("; ".join(problems))
    return _outside_event_loop(lambda: run_batch(run_options))


# --------------------------------------------------------------------------- reading a run folder


def load_run(out: PathLike) -> RunData:
    """Read a run folder: records, the articles they cite, failure rows, incidents and conflicts.

    Accepts a folder ``triangulate run`` wrote (read from its run store) or one
    ``triangulate reconcile`` wrote (``records.jsonl`` + ``incidents.jsonl``). Re-runs nothing:
    records that were never reconciled raise ``ExportError`` naming the command to run. Each of
    ``RunData.warnings`` is also issued as a :class:`RunWarning`::

        data = triangulate.load_run("runs/tempe")
        len(data.records), len(data.incidents.incidents), len(data.incidents.conflicts)
    """
    return _read_run(out, stacklevel=3)


def _read_run(out: PathLike, *, stacklevel: int) -> RunData:
    # ``stacklevel`` points each warning at the user's call (load_run, report or export).
    from pipeline.outputs.rundata import load_run as read_folder

    data = read_folder(Path(out))
    for message in data.warnings:
        warnings.warn(message, RunWarning, stacklevel=stacklevel)
    return data


def report(out_or_data: PathLike | RunData, html: PathLike | None = None) -> Path:
    """Write the review page of a run (default ``DIR/report.html``) and return its path.

    Takes a run folder, or a :class:`RunData` already loaded::

        page = triangulate.report("runs/tempe")
        page = triangulate.report(data, html="/tmp/review.html")
    """
    from pipeline.common.atomic import replaced_together
    from pipeline.outputs.report import render_report

    data = out_or_data if isinstance(out_or_data, RunData) else _read_run(out_or_data, stacklevel=3)
    target = Path(html) if html is not None else data.folder.report
    page = render_report(data)
    with replaced_together() as files, files.open_text(target) as handle:
        handle.write(page)
    return target


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export` wrote: rows per table, per destination."""

    store: ExportCounts | None = None
    """The tables refreshed inside the run store (a folder with one)."""
    files: dict[str, ExportCounts] = field(default_factory=dict)
    """Per format written under ``to``."""
    db: ExportCounts | None = None
    """The database upsert (``db``)."""


def export(
    out: PathLike,
    formats: Sequence[str] = (),
    to: PathLike | None = None,
    db: str | None = None,
    *,
    wait: float = 0,
) -> ExportSummary:
    """``triangulate export OUT``: the dashboard tables of a run.

    As the command does: always refreshes the tables inside the run store (when the folder has
    one); ``formats`` (``"parquet"``, ``"csv"``, ``"sqlite"``) adds files under ``to`` (default
    ``OUT/export``; a folder without a store gets Parquet and CSV there when nothing else is
    asked); ``db`` upserts into ``postgresql://...`` or ``sqlite:///path``. The folder is locked
    while it is read and written; ``wait`` is how many seconds to wait for another command holding
    it (``RunFolderBusy`` after that)::

        summary = triangulate.export("runs/tempe", formats=["csv"], to="dashboards/tempe")
        summary.files["csv"].rows        # {"records": 4, "field_values": 120, ...}
    """
    from pipeline.outputs.export import _export_to_db, write_files, write_run_store_tables
    from pipeline.store.runlock import run_folder_lock

    folder_path = Path(out)
    with run_folder_lock(folder_path, command="export", wait=wait):
        data = _read_run(folder_path, stacklevel=3)
        store = write_run_store_tables(folder_path, data) if data.folder.kind == "run" else None
        chosen = list(formats)
        if store is None and not chosen and db is None:
            chosen = ["parquet", "csv"]
        target = Path(to) if to is not None else data.folder.export_dir
        files = write_files(data, target, chosen) if chosen else {}
        db_counts = _export_to_db(data, db) if db is not None else None
    return ExportSummary(store=store, files=files, db=db_counts)


# --------------------------------------------------------------------------- helpers


def _paths(paths: PathLike | Iterable[PathLike]) -> tuple[Path, ...]:
    # A str is itself an iterable (of characters): one path, not many.
    if isinstance(paths, (str, os.PathLike)):
        return (Path(paths),)
    return tuple(Path(path) for path in paths)


def _outside_event_loop(function: Callable[[], _T]) -> _T:
    """Call ``function``, in a worker thread when this thread already runs an event loop.

    The extractor and the batch runner drive their requests with ``asyncio.run``, which refuses to
    start inside a running loop, and a Jupyter kernel always has one. (Interrupting the kernel
    then stops the wait, not the work in the thread.)
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return function()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="triangulate") as pool:
        return pool.submit(function).result()
