"""The batch runner: many articles, N requests in flight, a store that survives faults.

Shape of a run::

    iter_sources (streamed) -> producer -> bounded queue -> N workers -> Extractor.extract
                                  |                                        |
                                  +-- cache hit / duplicate / bad input    +-- store.save_outcome
                                      recorded without a request               (one transaction)

The queue holds at most ``2 * concurrency`` articles, so memory stays flat
however many articles stream in. Every outcome is committed to the run store
as soon as the article finishes; ``records.jsonl``/``failures.jsonl`` are
rewritten from the store at the end. Killing the process at any point loses
only the articles in flight: the same command then finds every finished
article in the cache and makes no request for it.

Exit codes (``run`` and ``retry-failed``), over the whole input set:

* 0: every article has a record;
* 1: some records, some failures (unreadable inputs count as failures);
* 2: nothing done: no records at all, a usage error (bad flags, no such run
  directory, another run holds the directory), or the endpoint cannot be used
  (unknown model, bad key);
* 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from pipeline.ratelimit import RateLimiter
from pipeline.redact import redact
from pipeline.store import RunStore, cache_key
from schemas import Article, ExtractionResult, FailureRow, Usage

if TYPE_CHECKING:
    from pipeline.providers import Endpoint

log = logging.getLogger(__name__)

LOCK_FILENAME = ".triangulate.lock"
DEFAULT_CONCURRENCY = 4
EMBEDDED_DEFAULT_CONCURRENCY = 1
PROGRESS_INTERVAL_S = 10.0
# Token estimate before a request (settled with the real usage afterwards); the same
# proportions the extractor uses to size chunks.
_ESTIMATE_OVERHEAD_TOKENS = 1200
_ESTIMATE_CHARS_PER_TOKEN = 3

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_NOTHING_DONE = 2


class _EndpointLike(Protocol):
    @property
    def model(self) -> str: ...
    @property
    def provider(self) -> str: ...


class ExtractorLike(Protocol):
    """What the batch runner needs from ``pipeline.extract.Extractor``."""

    @property
    def endpoint(self) -> _EndpointLike: ...
    @property
    def cache_key_parts(self) -> dict[str, str]: ...
    async def extract(self, article: Article) -> ExtractionResult: ...


@dataclass
class BatchSummary:
    """What one batch did. Counts cover the articles this batch read."""

    run_id: str
    model: str | None
    provider: str | None
    inputs: int = 0
    """Items read: articles (duplicates included) and unreadable inputs."""
    articles: int = 0
    """Distinct articles handled (extracted or found in the cache)."""
    duplicates: int = 0
    input_failures: int = 0
    records: int = 0
    failures: int = 0
    cached_records: int = 0
    cached_failures: int = 0
    extracted: int = 0
    """Articles sent to the model in this batch."""
    requests: int = 0
    usage: Usage = field(default_factory=Usage)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    """``time.process_time()`` spent by the whole process during the batch (with the embedded
    engine this includes the model's own inference threads)."""
    stopped: str | None = None
    """Why the batch stopped early (an endpoint problem that would hit every article)."""
    reason_counts: dict[str, int] = field(default_factory=dict)

    @property
    def cpu_ms_per_article(self) -> float:
        return 1000.0 * self.cpu_s / max(1, self.articles)

    @property
    def articles_per_s(self) -> float:
        return self.articles / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["usage"] = self.usage.model_dump()
        data["cpu_ms_per_article"] = round(self.cpu_ms_per_article, 3)
        return data


# ---------------------------------------------------------------- progress


class Progress:
    """A tqdm bar on a terminal; on a pipe or a log file, one line every ``interval_s``; nothing if quiet."""

    def __init__(
        self, *, quiet: bool = False, stream: IO[str] | None = None, interval_s: float = PROGRESS_INTERVAL_S
    ) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.interval_s = interval_s
        self._bar: Any = None
        self._last_line = time.monotonic()
        self._started = time.monotonic()
        if not quiet and _isatty(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(unit="article", file=self.stream, dynamic_ncols=True, smoothing=0.1)

    def update(self, summary: BatchSummary, *, advanced: int = 1) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.update(advanced)
            self._bar.set_postfix(
                records=summary.records, failed=summary.failures + summary.input_failures, refresh=False
            )
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval_s:
            self._last_line = now
            self.stream.write(self.line(summary, now - self._started) + "\n")
            self.stream.flush()

    @staticmethod
    def line(summary: BatchSummary, elapsed_s: float) -> str:
        rate = summary.articles / elapsed_s if elapsed_s > 0 else 0.0
        return (
            f"progress: {summary.articles} articles ({summary.records} records, "
            f"{summary.failures + summary.input_failures} failed, "
            f"{summary.cached_records + summary.cached_failures} cached), "
            f"{summary.requests} requests, {summary.usage.total_tokens} tokens, "
            f"{elapsed_s:.0f} s, {_speed(rate)}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# ---------------------------------------------------------------- the runner


def _config_errors() -> tuple[type[BaseException], ...]:
    try:
        from pipeline.extract import ExtractorConfigError
    except ImportError:
        return ()
    return (ExtractorConfigError,)


def _estimate_tokens(article: Article) -> int:
    return _ESTIMATE_OVERHEAD_TOKENS + len(article.text) // _ESTIMATE_CHARS_PER_TOKEN


def _internal_failure(article: Article, error: BaseException) -> ExtractionResult:
    """The extractor promises not to raise per article; if it does anyway, the article still gets a row."""
    return ExtractionResult(
        article_id=article.id,
        failure=FailureRow(
            article_id=article.id,
            source_path=article.source_path,
            reason="internal",
            detail=f"the extractor raised {type(error).__name__}; this is a bug in triangulate",
            last_error=f"{type(error).__name__}: {error}",
        ),
    )


async def _as_async(items: Iterable[Article | FailureRow]) -> AsyncIterator[Article | FailureRow]:
    for count, item in enumerate(items, start=1):
        yield item
        if count % 64 == 0:
            # Reading inputs and cache hits never await; let workers and progress run.
            await asyncio.sleep(0)


async def run_batch(
    articles: Iterable[Article | FailureRow],
    extractor: ExtractorLike,
    store: RunStore,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    rpm: float | None = None,
    tpm: float | None = None,
    refresh: bool = False,
    progress: Progress | bool = False,
    run_id: str | None = None,
    retry_failures: bool = False,
) -> BatchSummary:
    """Extract every article not already done, ``concurrency`` requests at a time.

    ``articles`` is consumed lazily (pass ``iter_sources(...)`` directly). Each
    article ends as exactly one record or one failure row in ``store``:
    duplicates of an article already read in this run only add their path, and
    articles whose outcome is cached under the extractor's cache key make no
    request (``refresh`` ignores the cache). A failure stored under the same
    key is a cached outcome too, unless ``retry_failures`` (``retry-failed``:
    the articles come from the store and are not re-registered).

    ``run_id``: the run this batch belongs to (see ``RunStore.start_run``). If
    None, the batch starts and finishes its own ``run``.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    endpoint = extractor.endpoint
    parts = extractor.cache_key_parts
    owns_run = run_id is None
    if run_id is None:
        run_id = store.start_run(
            "run", model=endpoint.model, provider=endpoint.provider, cache_key_parts=parts, settings={}
        )
    summary = BatchSummary(run_id=run_id, model=endpoint.model, provider=endpoint.provider)
    reporter = progress if isinstance(progress, Progress) else Progress(quiet=not progress)
    limiter = RateLimiter(rpm=rpm, tpm=tpm)
    config_errors = _config_errors()
    queue: asyncio.Queue[tuple[Article, str] | None] = asyncio.Queue(maxsize=2 * concurrency)
    stop = asyncio.Event()
    started_wall, started_cpu = time.monotonic(), time.process_time()

    def count_failure(reason: str) -> None:
        summary.reason_counts[reason] = summary.reason_counts.get(reason, 0) + 1

    async def produce() -> None:
        seq = 0
        async for item in _as_async(articles):
            if stop.is_set():
                break
            seq += 1
            summary.inputs += 1
            if isinstance(item, FailureRow):
                store.record_input_failure(item, run_id=run_id, seq=seq)
                summary.input_failures += 1
                count_failure(item.reason)
                reporter.update(summary)
                continue
            key = cache_key(item.id, parts)
            if retry_failures:
                cached = None if refresh else store.reuse_cached(item.id, key, allow_cached_failure=False)
            else:
                registration = store.register_article(
                    item, run_id=run_id, seq=seq, key=None if refresh else key
                )
                if not registration.first_in_run:
                    summary.duplicates += 1
                    continue
                cached = registration.cached
            if cached is not None:
                summary.articles += 1
                if cached == "record":
                    summary.records += 1
                    summary.cached_records += 1
                else:
                    summary.failures += 1
                    summary.cached_failures += 1
                reporter.update(summary)
                continue
            await queue.put((item, key))
        for _ in range(concurrency):
            await queue.put(None)

    async def work() -> None:
        while True:
            job = await queue.get()
            if job is None:
                return
            if stop.is_set():
                continue  # drain: the article stays pending and the next run picks it up
            article, key = job
            estimate = _estimate_tokens(article)
            await limiter.acquire(estimate)
            try:
                result = await extractor.extract(article)
            except config_errors as error:
                if not stop.is_set():
                    summary.stopped = redact(f"{type(error).__name__}: {error}", store.secrets)
                    stop.set()
                continue
            except Exception as error:  # noqa: BLE001 - one article's bug must not sink the batch
                log.exception("extracting %s raised", article.id)
                result = _internal_failure(article, error)
            limiter.settle(
                requests_made=len(result.attempts),
                tokens_used=result.usage.total_tokens,
                estimated_tokens=estimate,
            )
            store.save_outcome(article, result, key=key, run_id=run_id)
            summary.articles += 1
            summary.extracted += 1
            summary.requests += len(result.attempts)
            summary.usage = summary.usage + result.usage
            if result.record is not None:
                summary.records += 1
            else:
                summary.failures += 1
                count_failure(result.failure.reason if result.failure else "internal")
            reporter.update(summary)

    status = "interrupted"
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(produce())
            for _ in range(concurrency):
                group.create_task(work())
        status = "stopped" if summary.stopped else "finished"
    finally:
        summary.wall_s = time.monotonic() - started_wall
        summary.cpu_s = time.process_time() - started_cpu
        if not isinstance(progress, Progress):
            reporter.close()
        if owns_run:
            store.finish_run(run_id, status=status, counts=summary.as_dict())
    return summary


# ---------------------------------------------------------------- commands


class UsageError(Exception):
    """A problem with the command line or the run directory: exit code 2."""


@contextlib.contextmanager
def _directory_lock(out_dir: Path) -> Iterator[None]:
    """One process per output directory: two writers would interleave runs in one store.
    flock is released by the kernel when a process dies, so a killed run never leaves it stuck."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / LOCK_FILENAME, "w") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise UsageError(f"another triangulate process is using {out_dir}") from exc
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield


def _check_limits(args: argparse.Namespace) -> None:
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    for flag in ("rpm", "tpm"):
        value = getattr(args, flag, None)
        if value is not None and value <= 0:
            raise UsageError(f"--{flag} must be positive")


def _default_concurrency(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    if args.concurrency is not None:
        return int(args.concurrency)
    try:
        from pipeline.providers import EMBEDDED, choose_provider
    except ImportError:
        return DEFAULT_CONCURRENCY
    provider = choose_provider(
        model=args.model, gguf=args.gguf, env=env, embedded=getattr(args, "embedded", None)
    )
    # The embedded engine shares two cores: parallel slots only slow each other down.
    return EMBEDDED_DEFAULT_CONCURRENCY if provider == EMBEDDED else DEFAULT_CONCURRENCY


# Used when neither the user nor the model's description says otherwise.
FALLBACK_MAX_REASKS = 2
FALLBACK_MAX_TOKENS = 1024


def _decoding(args: argparse.Namespace, endpoint: Endpoint | None) -> dict[str, Any]:
    """Re-asks, max tokens and plan: the user's flags, else the model's recommendation, else ours.

    The embedded models carry settings chosen by benchmarks/embedded_models.py
    (``Endpoint.recommended``); a remote endpoint has none and gets the fallbacks.
    """
    recommended: Mapping[str, Any] = getattr(endpoint, "recommended", None) or {}

    def pick(flag: str, fallback: Any) -> Any:
        given = getattr(args, flag, None)
        if given is not None:
            return given
        return recommended.get(flag, fallback)

    from pipeline.plans import DEFAULT_PLAN

    return {
        "max_reasks": int(pick("max_reasks", FALLBACK_MAX_REASKS)),
        "max_tokens": int(pick("max_tokens", FALLBACK_MAX_TOKENS)),
        "plan": str(pick("plan", DEFAULT_PLAN)),
    }


def _settings_from(args: argparse.Namespace, endpoint: Endpoint | None = None) -> Any:
    from pipeline.extract import ExtractionSettings

    return ExtractionSettings(
        max_transport_retries=args.max_transport_retries,
        timeout_s=args.timeout,
        temperature=args.temperature,
        **_decoding(args, endpoint),
    )


def _run_settings(args: argparse.Namespace, endpoint: Endpoint, concurrency: int) -> dict[str, Any]:
    """What the runs table keeps about a command: flags and endpoint, never a key."""
    settings: dict[str, Any] = {
        "command": args.command if hasattr(args, "command") else None,
        "base_url": endpoint.base_url,
        "concurrency": concurrency,
        "rpm": args.rpm,
        "tpm": args.tpm,
        "max_transport_retries": args.max_transport_retries,
        "timeout_s": args.timeout,
        "temperature": args.temperature,
        **_decoding(args, endpoint),
    }
    if hasattr(args, "paths"):
        settings["paths"] = [str(path) for path in args.paths]
        settings["refresh"] = bool(args.refresh)
        settings["reconcile"] = not args.no_reconcile
        settings["db"] = redact(args.db) if args.db else None
    if args.gguf is not None:
        settings["gguf"] = str(args.gguf)
    return settings


def _secrets(env: Mapping[str, str], endpoint: Endpoint | None = None) -> list[str]:
    values = [env.get("OPENAI_API_KEY", "")]
    if endpoint is not None:
        values.append(endpoint.api_key)
    # A placeholder like "unused" is not a secret, and scrubbing it would mangle ordinary text.
    return [value for value in values if value and len(value) >= 12]


def run_command(args: argparse.Namespace) -> int:
    """``triangulate run PATH... --out DIR``: see the module docstring for exit codes."""
    from pipeline.sources import iter_sources

    return _command(args, kind="run", articles=lambda _store: iter_sources(args.paths))


def retry_failed_command(args: argparse.Namespace) -> int:
    """``triangulate retry-failed DIR``: extract again only the articles whose outcome is a failure."""
    store_path = Path(args.out) / "triangulate.sqlite"
    if not store_path.is_file():
        print(
            f"error: no run store at {store_path}; run `triangulate run ... --out {args.out}` first",
            file=sys.stderr,
        )
        return EXIT_NOTHING_DONE
    return _command(args, kind="retry-failed", articles=lambda store: store.failed_articles())


def _command(args: argparse.Namespace, *, kind: str, articles: Any) -> int:
    env = os.environ
    out_dir = Path(args.out)
    _quiet_library_loggers()
    try:
        _check_limits(args)
        with _directory_lock(out_dir):
            return _command_locked(args, kind=kind, articles=articles, env=env, out_dir=out_dir)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_NOTHING_DONE


def _command_locked(
    args: argparse.Namespace, *, kind: str, articles: Any, env: Mapping[str, str], out_dir: Path
) -> int:
    from pipeline.extract import Extractor
    from pipeline.providers import ProviderError, open_endpoint

    concurrency = _default_concurrency(args, env)
    with RunStore(out_dir, secrets=_secrets(env)) as store:
        if kind == "retry-failed":
            pending = sum(1 for _ in store.failed_articles())
            if pending == 0:
                print(f"nothing to retry: no failed articles in {out_dir}", file=sys.stderr)
                counts = store.outcome_counts()
                store.write_derived(out_dir)
                return _exit_code(counts)
            print(f"retrying {pending} failed article(s) from {out_dir}", file=sys.stderr)
        with contextlib.ExitStack() as stack:
            try:
                endpoint = stack.enter_context(
                    open_endpoint(
                        model=args.model,
                        gguf=args.gguf,
                        concurrency=concurrency,
                        env=env,
                        embedded=getattr(args, "embedded", None),
                        progress=not getattr(args, "quiet", False),
                    )
                )
            except ProviderError as error:
                print(f"error: {redact(str(error), _secrets(env))}", file=sys.stderr)
                return EXIT_NOTHING_DONE
            store.secrets = tuple(_secrets(env, endpoint))
            return _execute(args, kind, articles, store, endpoint, concurrency, out_dir, Extractor)


def _execute(
    args: argparse.Namespace,
    kind: str,
    articles: Any,
    store: RunStore,
    endpoint: Endpoint,
    concurrency: int,
    out_dir: Path,
    extractor_class: Any,
) -> int:
    extractor = extractor_class(endpoint, _settings_from(args, endpoint))
    run_id = store.start_run(
        kind,
        model=endpoint.model,
        provider=endpoint.provider,
        cache_key_parts=extractor.cache_key_parts,
        settings=_run_settings(args, endpoint, concurrency),
    )
    print(
        f"triangulate {kind}: model {endpoint.model} ({endpoint.provider}), {concurrency} in flight, "
        f"store {store.db_path}",
        file=sys.stderr,
    )
    progress = Progress(quiet=bool(args.quiet))

    async def go() -> BatchSummary:
        try:
            return await run_batch(
                articles(store),
                extractor,
                store,
                concurrency=concurrency,
                rpm=args.rpm,
                tpm=args.tpm,
                refresh=bool(getattr(args, "refresh", False)),
                progress=progress,
                run_id=run_id,
                retry_failures=kind == "retry-failed",
            )
        finally:
            await extractor.aclose()

    summary: BatchSummary | None = None
    status = "interrupted"
    try:
        summary = asyncio.run(go())
        status = "stopped" if summary.stopped else "finished"
    finally:
        progress.close()
        store.finish_run(run_id, status=status, counts=summary.as_dict() if summary else {})
    assert summary is not None  # asyncio.run either returned one or raised
    derived = store.write_derived(out_dir)
    code = _exit_code(store.outcome_counts())
    if summary.stopped:
        print(f"error: stopped early: {summary.stopped}", file=sys.stderr)
        code = EXIT_NOTHING_DONE
    print(_summary_text(summary, out_dir, derived.records, derived.failures), file=sys.stderr)
    if not getattr(args, "no_reconcile", False) and not summary.stopped:
        code = max(code, _reconcile(store, out_dir))
    if getattr(args, "db", None):
        code = max(code, _export_db(out_dir, args.db))
    return code


def _speed(articles_per_s: float) -> str:
    """A local model takes tens of seconds per article, where "0.0 articles/s" says nothing."""
    if articles_per_s >= 1 or articles_per_s == 0:
        return f"{articles_per_s:.1f} articles/s"
    return f"{1 / articles_per_s:.0f} s/article"


def _exit_code(counts: Mapping[str, int]) -> int:
    failed = counts.get("failure", 0) + counts.get("input_failure", 0) + counts.get("pending", 0)
    if counts.get("record", 0) == 0:
        return EXIT_NOTHING_DONE
    return EXIT_PARTIAL if failed else EXIT_OK


def _summary_text(summary: BatchSummary, out_dir: Path, n_records: int, n_failures: int) -> str:
    usage = summary.usage
    reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(summary.reason_counts.items()))
    lines = [
        f"run {summary.run_id}: model {summary.model} ({summary.provider})",
        f"  articles  {summary.articles} ({summary.duplicates} duplicate paths, "
        f"{summary.input_failures} unreadable inputs)",
        f"  records   {summary.records} ({summary.cached_records} from cache)",
        f"  failures  {summary.failures + summary.input_failures}"
        + (f" ({reasons})" if reasons else "")
        + (f", {summary.cached_failures} from cache" if summary.cached_failures else ""),
        f"  requests  {summary.requests} for {summary.extracted} articles; tokens {usage.total_tokens} "
        f"(prompt {usage.prompt_tokens}, completion {usage.completion_tokens})",
        f"  time      {summary.wall_s:.1f} s wall, {_speed(summary.articles_per_s)}, "
        + (
            # In-process, llama.cpp's threads count as ours: say so rather than blame the pipeline.
            f"process CPU {summary.cpu_ms_per_article:.0f} ms per article (includes the embedded model)"
            if summary.provider == "embedded"
            else f"pipeline CPU {summary.cpu_ms_per_article:.2f} ms per article"
        ),
        f"  outputs   {out_dir / 'records.jsonl'} ({n_records}), {out_dir / 'failures.jsonl'} ({n_failures})",
    ]
    if summary.failures:
        lines.append(f"  retry the failures with: triangulate retry-failed {out_dir}")
    return "\n".join(lines)


def _reconcile(store: RunStore, out_dir: Path) -> int:
    from pipeline.export import write_run_store_tables
    from pipeline.reconcile import reconcile, write_outputs

    records = store.records()
    if not records:
        return EXIT_OK
    try:
        write_outputs(reconcile(records), out_dir)
        # The dashboard tables live in the run store by default, so a dashboard
        # pointed at DIR/triangulate.sqlite sees every run without an export step.
        write_run_store_tables(out_dir)
    except Exception as error:
        log.exception("reconcile failed")
        print(f"error: reconcile failed: {type(error).__name__}: {error}; records are kept", file=sys.stderr)
        return EXIT_PARTIAL
    print(f"reconciled {len(records)} records into {out_dir}", file=sys.stderr)
    return EXIT_OK


def _export_db(out_dir: Path, url: str) -> int:
    from pipeline.export import export_to_db

    try:
        export_to_db(out_dir, url)
    except Exception as error:
        print(
            f"error: export to {redact(url)} failed: {type(error).__name__}: {redact(str(error))}",
            file=sys.stderr,
        )
        return EXIT_PARTIAL
    return EXIT_OK


def _quiet_library_loggers() -> None:
    # Every attempt and its error are in the store's attempts table; the libraries' per-retry
    # messages (instructor logs each failed attempt at ERROR) would bury the progress output.
    logging.getLogger("instructor").setLevel(logging.CRITICAL)
    for name in ("httpx", "httpx2", "openai"):
        logging.getLogger(name).setLevel(logging.ERROR)
