"""``triangulate run --engine ray``: the extraction of a run on a Ray Data actor pool.

Shape of a run::

    inputs -> register (cache hits, duplicates and unreadable inputs as in a live run)
           -> pending articles -> ray.data.from_items
           -> map_batches(_ExtractActor, concurrency=A actors): one Extractor per actor,
              ``--concurrency`` requests in flight per actor (an asyncio semaphore)
           -> the driver iterates the results as they come -> store.save_outcome (the one writer)
           -> records.parquet/part=XX/ (upserted from the store), records.jsonl, failures.jsonl

Why the driver alone writes the store: SQLite has one writer, and an outcome saved as soon as its
batch comes back is the same guarantee a live run gives. A killed run loses only the batches in
flight; the same command then finds every saved article in the cache and asks nothing for it.

Workers run the same ``Extractor`` (prompts, transport retries, re-asks, validation, citation,
grounding) as a live run, so an article's record is the same under either engine. An exception
in a worker while extracting one article becomes that article's failure row (reason
``internal``); only an error that would repeat for every article (a refused key, an unknown model:
``ExtractorConfigError``) stops the run, leaving the articles without an outcome pending.

The API key travels to the workers inside an object in Ray's object store (``ray.put``), never in
a ``runtime_env`` (Ray logs those) nor in a task argument's repr; every error text made in a
worker passes through :func:`pipeline.common.redact.redact` with the key as a known secret, and
the store redacts again on save.

Ray is imported only when ``--engine ray`` runs; without the ``ray`` extra the command stops
before touching the store (``require_ray``, the one check both Ray engines make).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.batch.runner import (
    BatchSummary,
    ExtractorLike,
    Progress,
    _as_async,
    _config_errors,
    _EndpointUnreachable,
    _estimate_tokens,
    _unreachable_text,
    connection_failure,
)
from pipeline.common.redact import redact
from pipeline.reconcile.ray_engine import RayMissing, require_ray
from pipeline.store.runstore import RunStore, StoreError, cache_key
from schemas import Article, ExtractionResult, FailureRow
from schemas.options import RunOptions

if TYPE_CHECKING:
    from pipeline.extract.extractor import ExtractionSettings
    from pipeline.extract.providers import Endpoint

log = logging.getLogger(__name__)

PARQUET_DIRNAME = "records.parquet"
PARQUET_FILENAME = "records.parquet"
PARTITION_CHARS = 2
"""Records are partitioned by the first two hex digits of the article id's hash (``part=3f``):
at most 256 partitions, each rewritten on its own when a run adds records to it."""
WAVES_PER_BATCH = 4
"""A worker's batch holds this many rounds of ``concurrency`` articles: large enough that the
requests in flight stay at ``concurrency`` for most of a batch, small enough that results reach
the driver (and the store) steadily."""


def refusal(options: RunOptions, env: Mapping[str, str]) -> str | None:
    """Why ``options`` cannot run on Ray here, before anything is opened or marked: the extra is
    missing, or the run would use the embedded model (Ray workers are other processes, on other
    machines too, and reach the model over HTTP)."""
    try:
        require_ray()
    except RayMissing as error:
        return str(error)
    from pipeline.extract.providers import EMBEDDED, choose_provider

    provider = choose_provider(model=options.model, gguf=options.gguf, env=env, embedded=options.embedded)
    if provider == EMBEDDED:
        return (
            "--engine ray needs an HTTP endpoint: Ray workers cannot share the embedded in-process "
            "model; pass --model MODEL (and OPENAI_BASE_URL for a local server such as vLLM)"
        )
    return None


@dataclass(frozen=True)
class WorkerConfig:
    """What every actor needs to build its extractor; put in the object store once."""

    endpoint: Endpoint
    settings: ExtractionSettings
    concurrency: int
    rpm: float | None = None
    tpm: float | None = None
    """Per actor: the run's ``--rpm``/``--tpm`` divided by the number of actors."""
    secrets: tuple[str, ...] = field(default=(), repr=False)


# ---------------------------------------------------------------- the worker


class _ExtractActor:
    """One Ray actor: one ``Extractor`` and one event loop, kept for every batch it is given.

    The loop is the actor's own and outlives each batch because the extractor's HTTP client
    (httpx) binds its connection pool to the loop it first ran on; ``asyncio.run`` per batch would
    close that loop under the pool.
    """

    def __init__(self, config_box: list[Any]) -> None:
        import ray

        # The reference comes inside a list: Ray resolves only top-level references, and warns
        # about (restartable) actors whose top-level arguments live in the object store.
        config = ray.get(config_box[0])
        self._worker = _Worker(config)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        rows = [
            {name: str(batch[name][index]) for name in ("article_id", "key", "article")}
            for index in range(len(batch["article_id"]))
        ]
        return _columns(self._worker.run(rows))

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._worker.close()


class _Worker:
    """The Ray-free part of an actor (tests drive it directly): extract a batch of article rows,
    ``concurrency`` at a time, every article ending as one result row."""

    def __init__(self, config: WorkerConfig, *, extractor: Any = None) -> None:
        from pipeline.extract.extractor import Extractor
        from pipeline.extract.ratelimit import RateLimiter

        self.config = config
        self.secrets = tuple({*config.secrets, config.endpoint.api_key})
        self.loop = asyncio.new_event_loop()
        self.extractor = extractor if extractor is not None else Extractor(config.endpoint, config.settings)
        self.limiter = RateLimiter(rpm=config.rpm, tpm=config.tpm)
        self.stopped: str | None = None
        """Set by an error that would repeat for every article: later articles are not asked."""

    def run(self, rows: list[dict[str, str]]) -> list[dict[str, str]]:
        return self.loop.run_until_complete(self._run(rows))

    async def _run(self, rows: list[dict[str, str]]) -> list[dict[str, str]]:
        limit = asyncio.Semaphore(self.config.concurrency)
        return list(await asyncio.gather(*(self._one(row, limit) for row in rows)))

    async def _one(self, row: dict[str, str], limit: asyncio.Semaphore) -> dict[str, str]:
        out = {"article_id": row["article_id"], "key": row["key"], "article": row["article"]}
        try:
            article = Article.model_validate_json(row["article"])
            async with limit:
                if self.stopped is not None:
                    return {**out, "result": "", "stop": self.stopped}
                estimate = _estimate_tokens(article)
                await self.limiter.acquire(estimate)
                try:
                    result = await self.extractor.extract(article)
                except _config_errors() as error:
                    self.stopped = redact(f"{type(error).__name__}: {error}", self.secrets) or ""
                    return {**out, "result": "", "stop": self.stopped}
                self.limiter.settle(
                    requests_made=len(result.attempts),
                    tokens_used=result.usage.total_tokens,
                    estimated_tokens=estimate,
                )
        except Exception as error:  # noqa: BLE001 - one article's bug must not sink its batch or the run
            result = worker_failure(row, error, self.secrets)
        return {**out, "result": result.model_dump_json(), "stop": ""}

    def close(self) -> None:
        if self.loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(self.extractor.aclose())
        self.loop.close()


def worker_failure(row: dict[str, str], error: BaseException, secrets: Iterable[str]) -> ExtractionResult:
    """The failure row of an article whose extraction raised in a worker (a bug: ``internal``),
    its error text redacted there already."""
    source_path: str | None = None
    with contextlib.suppress(Exception):
        source_path = json.loads(row["article"]).get("source_path")
    article_id = row["article_id"]
    return ExtractionResult(
        article_id=article_id,
        failure=FailureRow(
            article_id=article_id,
            source_path=source_path,
            reason="internal",
            detail=f"the Ray worker raised {type(error).__name__}; this is a bug in triangulate",
            last_error=redact(f"{type(error).__name__}: {error}", secrets),
        ),
    )


def _columns(rows: list[dict[str, str]]) -> dict[str, list[str]]:
    names = ("article_id", "key", "article", "result", "stop")
    return {name: [row[name] for row in rows] for name in names}


# ---------------------------------------------------------------- the driver


class _Driver:
    def __init__(
        self, store: RunStore, *, run_id: str, summary: BatchSummary, progress: Progress, breaker: int
    ) -> None:
        self.store, self.run_id, self.summary, self.progress = store, run_id, summary, progress
        self.breaker = breaker
        self.connection_failures_in_a_row = 0
        self.last_connection_error = ""

    def _count_failure(self, reason: str) -> None:
        self.summary.reason_counts[reason] = self.summary.reason_counts.get(reason, 0) + 1

    async def read(
        self,
        articles: Iterable[Article | FailureRow] | AsyncIterable[Article | FailureRow],
        parts: dict[str, str],
        *,
        refresh: bool,
        retry_failures: bool,
    ) -> list[dict[str, str]]:
        """Register every input as a live run does; return the rows of the articles to extract."""
        summary, store = self.summary, self.store
        pending: list[dict[str, str]] = []
        seq = 0
        async for item in _as_async(articles):
            seq += 1
            summary.inputs += 1
            if isinstance(item, FailureRow):
                store.record_input_failure(item, run_id=self.run_id, seq=seq)
                summary.saved += 1
                summary.input_failures += 1
                self._count_failure(item.reason)
                continue
            key = cache_key(item.id, parts)
            if retry_failures:
                # retry-failed: the articles come from the store; only a record made since counts.
                cached = None if refresh else store.reuse_cached(item.id, key, allow_cached_failure=False)
            else:
                registration = store.register_article(
                    item, run_id=self.run_id, seq=seq, key=None if refresh else key
                )
                if not registration.first_in_run:
                    summary.duplicates += 1
                    continue
                cached = registration.cached
            if cached is not None:
                summary.count_cached(cached)
                continue
            pending.append({"article_id": item.id, "key": key, "article": item.model_dump_json()})
        done = summary.articles + summary.input_failures
        if done:
            self.progress.update(summary, advanced=done)
        return pending

    def _bookkeeping_failure(self, article: Article, error: Exception, *, key: str) -> None:
        """Saving ``article``'s outcome raised (not a store failure): the article fails with reason
        ``bookkeeping``, as in a live run, and the run goes on."""
        log.debug("recording %s failed", article.id, exc_info=True)
        failure = FailureRow(
            article_id=article.id,
            source_path=article.source_path,
            reason="bookkeeping",
            detail=f"triangulate could not record this article in the run store ({type(error).__name__}); "
            "the other articles are not affected",
            last_error=redact(f"{type(error).__name__}: {error}", self.store.secrets),
        )
        try:
            self.store.record_article_failure(article, failure, run_id=self.run_id, seq=None, key=key)
            self.summary.saved += 1
        except StoreError:
            raise
        except Exception as again:  # noqa: BLE001 - reported, and the run goes on
            log.error(
                "could not record the failure of %s either: %s",
                redact(article.source_path or article.id, self.store.secrets),
                redact(f"{type(again).__name__}: {again}", self.store.secrets),
            )
        self.summary.articles += 1
        self.summary.failures += 1
        self._count_failure("bookkeeping")

    def save(self, row: dict[str, str]) -> str | None:
        """Save one worker result; returns why the run must stop, if it must."""
        if row["stop"]:
            return row["stop"]  # not asked: the article stays pending
        article = Article.model_validate_json(row["article"])
        try:
            result = ExtractionResult.model_validate_json(row["result"])
        except Exception as error:  # noqa: BLE001 - a garbled result is that article's failure, not the run's
            result = worker_failure(row, error, self.store.secrets)
        summary = self.summary
        summary.extracted += 1
        summary.requests += len(result.attempts)
        summary.usage = summary.usage + result.usage
        try:
            self.store.save_outcome(article, result, key=row["key"], run_id=self.run_id)
        except StoreError:
            raise
        except Exception as error:  # noqa: BLE001 - one article's bookkeeping must not sink the run
            self._bookkeeping_failure(article, error, key=row["key"])
            return None
        summary.saved += 1
        summary.articles += 1
        if result.record is not None:
            summary.records += 1
        else:
            summary.failures += 1
            self._count_failure(result.failure.reason if result.failure else "internal")
        cause = connection_failure(result)
        if cause is None:
            self.connection_failures_in_a_row = 0
            return None
        self.connection_failures_in_a_row += 1
        self.last_connection_error = cause
        if self.breaker and self.connection_failures_in_a_row >= self.breaker:
            raise _EndpointUnreachable(self.connection_failures_in_a_row, cause)
        return None


def _quiet_ray() -> None:
    """Ray Data's progress bars and execution banners would bury the run's own progress lines."""
    from ray.data import DataContext

    # ERROR, not WARNING: Ray warns that the progress bars are off, and a local instance warns
    # that it uses token authentication; neither is the user's business.
    for name in ("ray", "ray.data", "ray._private", "ray.data._internal"):
        logging.getLogger(name).setLevel(logging.ERROR)
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.enable_operator_progress_bars = False
    context.enable_auto_log_stats = False


_scopes = 0
"""How many :func:`ray_scope` blocks are open: inside one, Ray stays up after the extraction."""


@contextlib.contextmanager
def ray_scope() -> Iterator[None]:
    """A command's Ray lifetime: Ray started by anything in the block (the extraction, the
    reconcile engine) stays up until the block ends, then is shut down; a Ray session this
    process had before is left alone."""
    global _scopes
    import ray

    had = ray.is_initialized()
    _scopes += 1
    try:
        yield
    finally:
        _scopes -= 1
        if not had and ray.is_initialized():
            ray.shutdown()


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Use the Ray instance this process already joined, else join ``address`` (None: start a
    local one) for the block, and leave it after unless a :func:`ray_scope` keeps it. Leaving a
    cluster does not stop it."""
    import ray

    if ray.is_initialized():
        _quiet_ray()
        yield
        return
    ray.init(
        address=address,
        include_dashboard=False,
        logging_level=logging.ERROR,
        configure_logging=True,
        log_to_driver=True,
    )
    _quiet_ray()
    try:
        yield
    finally:
        if not _scopes:
            ray.shutdown()


def actor_count(pending: int, concurrency: int) -> int:
    """One actor per CPU of the cluster, no more than there are batches to give them."""
    import ray

    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    cpus = int(resources.get("CPU", 1) or 1)
    return max(1, min(cpus, math.ceil(pending / max(1, concurrency))))


async def run_ray_extract(
    articles: Iterable[Article | FailureRow] | AsyncIterable[Article | FailureRow],
    extractor: ExtractorLike,
    store: RunStore,
    *,
    run_id: str,
    endpoint: Endpoint,
    settings: ExtractionSettings,
    out_dir: Path,
    address: str | None = None,
    concurrency: int = 4,
    rpm: float | None = None,
    tpm: float | None = None,
    refresh: bool = False,
    retry_failures: bool = False,
    progress: Progress | None = None,
    stop_after_connection_failures: int = 5,
) -> BatchSummary:
    """Extract every pending article of ``articles`` on a Ray Data actor pool and save each outcome.

    ``extractor`` (the driver's own) gives the cache key; the actors build their own from
    ``endpoint`` and ``settings``. Returns the summary a live batch returns: ``stopped`` when an
    error would repeat for every article (the articles without an outcome stay pending) or the
    circuit breaker tripped, ``store_failure`` when the store cannot be written.

    The driver blocks this event loop while it consumes Ray's results: the run store's SQLite
    connection belongs to this thread, and nothing else runs on the loop meanwhile.
    """
    require_ray()
    ep = extractor.endpoint
    summary = BatchSummary(run_id=run_id, model=ep.model, provider=ep.provider)
    reporter = progress or Progress(quiet=True)
    driver = _Driver(
        store, run_id=run_id, summary=summary, progress=reporter, breaker=stop_after_connection_failures
    )
    started_wall, started_cpu = time.monotonic(), time.process_time()
    try:
        pending = await driver.read(
            articles, extractor.cache_key_parts, refresh=refresh, retry_failures=retry_failures
        )
        if pending:
            with ray_session(address):
                _consume(driver, pending, endpoint, settings, concurrency, rpm, tpm, store.secrets)
        write_records_parquet(store, out_dir)
    except StoreError as error:
        summary.store_failure = redact(str(error), store.secrets)
    except _Stop as stop:
        summary.stopped = str(stop)
    except _EndpointUnreachable as unreachable:
        summary.stopped = await _unreachable_text(unreachable, extractor, store.secrets)
    finally:
        summary.wall_s = time.monotonic() - started_wall
        summary.cpu_s = time.process_time() - started_cpu
    return summary


class _Stop(Exception):  # noqa: N818 - ends the run early, with its reason for the summary
    pass


def _consume(
    driver: _Driver,
    pending: list[dict[str, str]],
    endpoint: Endpoint,
    settings: ExtractionSettings,
    concurrency: int,
    rpm: float | None,
    tpm: float | None,
    secrets: Iterable[str],
) -> None:
    import ray
    import ray.data

    actors = actor_count(len(pending), concurrency)
    config = WorkerConfig(
        endpoint=endpoint,
        settings=settings,
        concurrency=concurrency,
        rpm=rpm / actors if rpm else None,
        tpm=tpm / actors if tpm else None,
        secrets=tuple(secrets),
    )
    # Spread a small run over every actor; a large one in batches of a few rounds each.
    batch_size = max(1, min(WAVES_PER_BATCH * concurrency, math.ceil(len(pending) / actors)))
    dataset = ray.data.from_items(pending, override_num_blocks=math.ceil(len(pending) / batch_size))
    results = dataset.map_batches(
        _ExtractActor,
        fn_constructor_args=([ray.put(config)],),
        compute=ray.data.ActorPoolStrategy(size=actors),
        batch_size=batch_size,
        batch_format="numpy",
        num_cpus=1,
    )
    summary, reporter = driver.summary, driver.progress
    try:
        for batch in results.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
            done_before = summary.articles
            stop: str | None = None
            unreachable: _EndpointUnreachable | None = None
            # Every result of the batch is saved before the run stops: it has been paid for.
            for index in range(len(batch["article_id"])):
                row = {name: str(batch[name][index]) for name in batch}
                try:
                    stop = driver.save(row) or stop
                except _EndpointUnreachable as tripped:
                    unreachable = tripped
            if summary.articles != done_before:
                reporter.update(summary, advanced=summary.articles - done_before)
            if stop:
                raise _Stop(stop)
            if unreachable is not None:
                raise unreachable
    except (StoreError, _Stop, _EndpointUnreachable):
        raise
    except Exception as error:  # Ray itself failed (an actor died for good, the cluster went away)
        log.debug("the Ray dataset failed", exc_info=True)
        raise _Stop(
            "the Ray run failed: " + (redact(f"{type(error).__name__}: {_first_line(error)}", secrets) or "")
        ) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


# ---------------------------------------------------------------- Parquet


def _partition(article_id: str) -> str:
    return article_id.split(":", 1)[-1][:PARTITION_CHARS] or "00"


def write_records_parquet(store: RunStore, out_dir: Path) -> int:
    """Upsert the current records of the store's latest input set into ``records.parquet/``.

    One file per partition (``part=XX/records.parquet``); a partition this run has records for is
    rewritten with them and with its earlier rows for other articles, so a re-run replaces an
    article's row instead of adding a second one, and partitions it does not touch stay as they
    are. Rows stream from the store in partition order, so memory holds one partition's ids.
    Each file is written beside its target under a dot name (which Parquet readers skip) and
    renamed into place. Returns the rows written for this run.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("article_id", pa.string()),
            ("status", pa.string()),
            ("model", pa.string()),
            ("provider", pa.string()),
            ("cache_key", pa.string()),
            ("run_id", pa.string()),
            ("record_json", pa.string()),
        ]
    )
    run_id = store.latest_input_run()
    if run_id is None:
        return 0
    root = Path(out_dir) / PARQUET_DIRNAME
    cursor = store.connection.execute(
        "SELECT a.id AS article_id, e.cache_key, e.record_json, e.model, e.provider, e.run_id"
        " FROM articles a JOIN extractions e ON e.article_id = a.id AND e.cache_key = a.current_key"
        " WHERE a.last_run = ? AND a.status = 'record'"
        " ORDER BY substr(a.id, instr(a.id, ':') + 1, ?), a.id",
        (run_id, PARTITION_CHARS),
    )
    written = 0
    current: str | None = None
    rows: list[dict[str, Any]] = []

    def flush(part: str, new_rows: list[dict[str, Any]]) -> None:
        folder = root / f"part={part}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / PARQUET_FILENAME
        table = pa.Table.from_pylist(new_rows, schema=schema)
        if target.exists():
            import pyarrow.compute as pc

            old = pq.read_table(target, schema=schema)
            keep = pc.invert(pc.is_in(old["article_id"], value_set=table["article_id"]))
            table = pa.concat_tables([old.filter(keep), table])
        temp = folder / f".{PARQUET_FILENAME}.{os.getpid()}.tmp"
        try:
            pq.write_table(table, temp)
            os.replace(temp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

    try:
        for row in cursor:
            part = _partition(str(row["article_id"]))
            if part != current and rows:
                assert current is not None
                flush(current, rows)
                rows = []
            current = part
            rows.append(
                {
                    "article_id": row["article_id"],
                    "status": "record",
                    "model": row["model"],
                    "provider": row["provider"],
                    "cache_key": row["cache_key"],
                    "run_id": row["run_id"],
                    "record_json": row["record_json"],
                }
            )
            written += 1
        if rows and current is not None:
            flush(current, rows)
    except OSError as error:
        raise StoreError(root, str(error), what="records.parquet") from error
    return written
