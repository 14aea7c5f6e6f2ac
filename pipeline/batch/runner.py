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

Before the first article, one cheap request (``GET {base_url}/models``, which
llama.cpp, vLLM, Ollama and OpenAI all serve) checks that the endpoint can be
reached at all. Any HTTP answer, a 404 included, counts as reachable; a refused
connection, a failed DNS lookup or a timeout stops the command at once, naming
the cause and the URL (credentials removed), before any article is touched.

During the batch, a circuit breaker watches for the endpoint going away:
``--stop-after-connection-failures N`` (default 5) articles in a row that end in
a transport failure caused by the connection (refused, reset, DNS, timeouts;
not 429s or 5xx replies) stop the run. Requests in flight are cancelled; every
article without a saved outcome stays pending (no failure row), and transport
failures are never cached, so the same command resumes once the endpoint is back.

When the run store or the output folder cannot be written (disk full,
read-only, an I/O error), the run stops at once with one line on stderr; every
outcome saved before stays. Anything else that goes wrong while recording one
article (registering it or saving its outcome) becomes that article's failure
row, with reason ``bookkeeping``, and the batch goes on.

Exit codes (``run`` and ``retry-failed``), over the whole input set:

* 0: every article has a record;
* 1: some records, some failures (unreadable inputs count as failures), or the
  reconcile step or the ``--db`` export failed;
* 2: nothing done, or the endpoint cannot be used: no records at all; a usage
  error (bad flags, no such run directory, another run holds the directory);
  the model cannot be set up; the endpoint rejected the key or the model; the
  endpoint cannot be reached before the batch; or the circuit breaker stopped
  the run (articles not yet extracted stay pending);
* 3: the run store or the output folder cannot be written (disk full,
  read-only, I/O error, a file where the folder should be); outcomes saved
  before the failure are kept, the rest stay pending;
* 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from pipeline.common.redact import redact, redact_url
from pipeline.extract.ratelimit import RateLimiter
from pipeline.store.runfolder import RunFolder
from pipeline.store.runlock import lock_refusing_with
from pipeline.store.runstore import RunStore, StoreError, cache_key, storage_cause
from schemas import Article, ExtractionResult, FailureRow, Usage
from schemas.options import RunOptions

if TYPE_CHECKING:
    from pipeline.extract.providers import Endpoint

log = logging.getLogger(__name__)

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
EXIT_STORAGE = 3

DEFAULT_STOP_AFTER_CONNECTION_FAILURES = 5
PREFLIGHT_TIMEOUT_S = 30.0
PREFLIGHT_TRIES = 2
PREFLIGHT_PAUSE_S = 1.0
# The error classes (first word of ``FailureRow.last_error``, as pipeline.extract.extractor.describe_error
# writes it) that mean the connection itself failed: refused, reset, DNS, timeouts. Not 429/5xx.
CONNECTION_ERROR_NAMES = frozenset({"APIConnectionError", "APITimeoutError", "ReplyTimeout"})


class _EndpointLike(Protocol):
    @property
    def model(self) -> str: ...
    @property
    def provider(self) -> str: ...


class ExtractorLike(Protocol):
    """What the batch runner needs from ``pipeline.extract.extractor.Extractor``."""

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
    store_failure: str | None = None
    """Why the batch stopped because the run store cannot be written (disk full, read-only...)."""
    saved: int = 0
    """Outcomes this batch committed to the store (records, failures, cache hits, unreadable inputs)."""
    reason_counts: dict[str, int] = field(default_factory=dict)

    @property
    def cpu_ms_per_article(self) -> float:
        return 1000.0 * self.cpu_s / max(1, self.articles)

    @property
    def articles_per_s(self) -> float:
        return self.articles / self.wall_s if self.wall_s > 0 else 0.0

    def count_cached(self, outcome: str) -> None:
        """An article answered from the cache: a saved record, or a saved failure."""
        self.articles += 1
        self.saved += 1
        if outcome == "record":
            self.records += 1
            self.cached_records += 1
        else:
            self.failures += 1
            self.cached_failures += 1

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
        from pipeline.extract.extractor import ExtractorConfigError
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


async def _as_async(
    items: Iterable[Article | FailureRow] | AsyncIterable[Article | FailureRow],
) -> AsyncIterator[Article | FailureRow]:
    if isinstance(items, AsyncIterable):
        # e.g. pipeline.ingest.sources.aiter_sources, which reads each input in a worker thread.
        async for item in items:
            yield item
        return
    for count, item in enumerate(items, start=1):
        yield item
        if count % 64 == 0:
            # Reading inputs and cache hits never await; let workers and progress run.
            await asyncio.sleep(0)


def connection_failure(result: ExtractionResult) -> str | None:
    """The error text when ``result`` is a transport failure caused by the connection (refused,
    reset, DNS, timeouts), else None. 429s and 5xx replies that outlasted the retries are not:
    the server answered."""
    failure = result.failure
    if failure is None or failure.reason != "transport":
        return None
    text = failure.last_error or (result.attempts[-1].error if result.attempts else None) or ""
    return text if text.split(":", 1)[0].strip() in CONNECTION_ERROR_NAMES else None


def describe_connection_error(error: BaseException) -> str:
    """What went wrong on the wire, in words, with the innermost error: ``connection refused
    (ConnectionRefusedError: [Errno 111] ...)``. openai says only "Connection error."."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    kind = "cannot connect"
    for link in reversed(chain):
        if isinstance(link, ConnectionRefusedError):
            kind = "connection refused"
        elif isinstance(link, socket.gaierror):
            kind = "the host name cannot be resolved (DNS)"
        elif isinstance(link, ConnectionResetError):
            kind = "connection reset"
        elif isinstance(link, ssl.SSLError):
            kind = "TLS handshake failed"
        elif isinstance(link, TimeoutError) or "Timeout" in type(link).__name__:
            kind = "timed out"
        else:
            continue
        break
    innermost = next((link for link in reversed(chain) if str(link).strip()), error)
    return f"{kind} ({type(innermost).__name__}: {innermost})"


async def probe_endpoint(
    base_url: str,
    api_key: str | None,
    *,
    timeout_s: float = PREFLIGHT_TIMEOUT_S,
    secrets: Iterable[str] = (),
) -> str | None:
    """None when the endpoint answers ``GET {base_url}/models`` at all, else why it cannot be reached
    (through :func:`pipeline.common.redact.redact`, with ``secrets`` and ``api_key`` as known secrets).

    Any HTTP reply counts as reachable: a 404 (a server without that route), a 401, a 5xx, a page
    that is not JSON; what those mean is for the batch's own requests to find out. Only a failure
    to connect (tried ``PREFLIGHT_TRIES`` times, ``PREFLIGHT_PAUSE_S`` apart) or to get a reply
    within ``timeout_s`` does not.
    """
    import openai

    client = openai.AsyncOpenAI(
        base_url=base_url, api_key=api_key or "unused", max_retries=0, timeout=timeout_s
    )
    problem: BaseException | None = None
    try:
        for attempt in range(PREFLIGHT_TRIES):
            if attempt:
                await asyncio.sleep(PREFLIGHT_PAUSE_S)
            try:
                async with asyncio.timeout(timeout_s + 1.0):
                    await client.models.list()
                return None
            except (openai.APIConnectionError, TimeoutError) as error:  # APITimeoutError included
                problem = error
                if isinstance(error, (openai.APITimeoutError, TimeoutError)):
                    break  # waited long enough; a refused connection may be a server still starting
            except Exception:  # noqa: BLE001 - an HTTP error status or an odd body is still an answer
                return None
    finally:
        await client.close()
    if problem is None:
        return None
    return redact(describe_connection_error(problem), [*secrets, api_key or ""]) or ""


class _EndpointUnreachable(Exception):
    """Raised by a worker to stop the batch: too many articles in a row could not connect."""

    def __init__(self, count: int, last_error: str) -> None:
        super().__init__(f"{count} articles in a row could not connect to the endpoint")
        self.count = count
        self.last_error = last_error


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        found.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found


async def run_batch(
    articles: Iterable[Article | FailureRow] | AsyncIterable[Article | FailureRow],
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
    stop_after_connection_failures: int = DEFAULT_STOP_AFTER_CONNECTION_FAILURES,
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

    The batch stops early, cancelling the requests in flight and leaving every
    article without a saved outcome pending, when ``stop_after_connection_failures``
    articles in a row end in a connection failure (``summary.stopped`` says why; 0
    never stops), and when the store cannot be written (``summary.store_failure``;
    a store that cannot even record the start of the run raises ``StoreError``).
    An exception other than ``StoreError`` while registering or saving one article
    becomes that article's failure row (reason ``bookkeeping``).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if stop_after_connection_failures < 0:
        raise ValueError("stop_after_connection_failures must be 0 (never) or more")
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

    connection_failures_in_a_row = 0

    def count_failure(reason: str) -> None:
        summary.reason_counts[reason] = summary.reason_counts.get(reason, 0) + 1

    def record_bookkeeping_failure(article: Article, error: Exception, *, seq: int | None, key: str) -> None:
        """Registering or saving ``article`` raised ``error`` (not a store failure): the article
        fails with reason ``bookkeeping`` and the batch goes on."""
        log.debug("recording %s failed", article.id, exc_info=True)
        failure = FailureRow(
            article_id=article.id,
            source_path=article.source_path,
            reason="bookkeeping",
            detail=f"triangulate could not record this article in the run store ({type(error).__name__}); "
            "the other articles are not affected",
            last_error=redact(f"{type(error).__name__}: {error}", store.secrets),
        )
        try:
            store.record_article_failure(article, failure, run_id=run_id, seq=seq, key=key)
            summary.saved += 1
        except StoreError:
            raise
        except Exception as again:  # noqa: BLE001 - reported, and the batch goes on
            log.error(
                "could not record the failure of %s either: %s",
                redact(article.source_path or article.id, store.secrets),
                redact(f"{type(again).__name__}: {again}", store.secrets),
            )
        summary.articles += 1
        summary.failures += 1
        count_failure("bookkeeping")

    async def produce() -> None:
        seq = 0
        async for item in _as_async(articles):
            if stop.is_set():
                break
            seq += 1
            summary.inputs += 1
            if isinstance(item, FailureRow):
                try:
                    store.record_input_failure(item, run_id=run_id, seq=seq)
                    summary.saved += 1
                except StoreError:
                    raise
                except Exception as error:  # noqa: BLE001 - reported, and the batch goes on
                    log.error(
                        "could not record the unreadable input %s: %s",
                        redact(item.source_path or "(unknown)", store.secrets),
                        redact(f"{type(error).__name__}: {error}", store.secrets),
                    )
                summary.input_failures += 1
                count_failure(item.reason)
                reporter.update(summary)
                continue
            key = cache_key(item.id, parts)
            if retry_failures:
                cached = None if refresh else store.reuse_cached(item.id, key, allow_cached_failure=False)
            else:
                try:
                    registration = store.register_article(
                        item, run_id=run_id, seq=seq, key=None if refresh else key
                    )
                except StoreError:
                    raise
                except Exception as error:  # noqa: BLE001 - one article's bookkeeping must not sink the batch
                    record_bookkeeping_failure(item, error, seq=seq, key=key)
                    reporter.update(summary)
                    continue
                if not registration.first_in_run:
                    summary.duplicates += 1
                    continue
                cached = registration.cached
            if cached is not None:
                summary.count_cached(cached)
                reporter.update(summary)
                continue
            await queue.put((item, key))
        for _ in range(concurrency):
            await queue.put(None)

    async def work() -> None:
        nonlocal connection_failures_in_a_row
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
                log.debug("extracting %s raised", article.id, exc_info=True)
                log.error(
                    "extracting %s raised %s",
                    article.id,
                    redact(f"{type(error).__name__}: {error}", store.secrets),
                )
                result = _internal_failure(article, error)
            limiter.settle(
                requests_made=len(result.attempts),
                tokens_used=result.usage.total_tokens,
                estimated_tokens=estimate,
            )
            summary.extracted += 1
            summary.requests += len(result.attempts)
            summary.usage = summary.usage + result.usage
            try:
                store.save_outcome(article, result, key=key, run_id=run_id)
            except StoreError:
                raise
            except Exception as error:  # noqa: BLE001 - one article's bookkeeping must not sink the batch
                record_bookkeeping_failure(article, error, seq=None, key=key)
            else:
                summary.saved += 1
                summary.articles += 1
                if result.record is not None:
                    summary.records += 1
                else:
                    summary.failures += 1
                    count_failure(result.failure.reason if result.failure else "internal")
            reporter.update(summary)
            cause = connection_failure(result)
            if cause is None:
                connection_failures_in_a_row = 0
                continue
            connection_failures_in_a_row += 1
            if (
                stop_after_connection_failures
                and connection_failures_in_a_row >= stop_after_connection_failures
            ):
                raise _EndpointUnreachable(connection_failures_in_a_row, cause)

    status = "interrupted"
    try:
        try:
            # A worker that raises (StoreError, _EndpointUnreachable) makes the group cancel the
            # other workers and the reader: requests in flight are dropped, nothing half-saved.
            async with asyncio.TaskGroup() as group:
                group.create_task(produce())
                for _ in range(concurrency):
                    group.create_task(work())
        except BaseExceptionGroup as errors:
            stopping, rest = errors.split((StoreError, _EndpointUnreachable))
            if stopping is None or rest is not None:
                raise
            reasons = _leaves(stopping)
            # A store that cannot be written outranks an endpoint that cannot be reached.
            store_errors = [reason for reason in reasons if isinstance(reason, StoreError)]
            if store_errors:
                summary.store_failure = redact(str(store_errors[0]), store.secrets)
            else:
                unreachable = reasons[0]
                assert isinstance(unreachable, _EndpointUnreachable)
                summary.stopped = await _unreachable_text(unreachable, extractor, store.secrets)
        status = _status(summary)
    finally:
        summary.wall_s = time.monotonic() - started_wall
        summary.cpu_s = time.process_time() - started_cpu
        if not isinstance(progress, Progress):
            reporter.close()
        if owns_run:
            _finish_run(store, run_id, status, summary.as_dict())
    return summary


async def _unreachable_text(
    stop: _EndpointUnreachable, extractor: ExtractorLike, secrets: Iterable[str]
) -> str:
    """Why the circuit breaker stopped the batch: the endpoint's URL and, from one more probe,
    whether it still cannot be reached and why."""
    # Each part is redacted on its own: redacting the joined text again would read the punctuation
    # after a URL as part of the URL.
    endpoint = extractor.endpoint
    base_url = getattr(endpoint, "base_url", None)
    where = f" at {redact_url(base_url)}" if isinstance(base_url, str) else ""
    text = f"{stop.count} articles in a row could not connect to the model endpoint{where}"
    if isinstance(base_url, str):
        now = await probe_endpoint(
            base_url, getattr(endpoint, "api_key", None), timeout_s=5.0, secrets=secrets
        )
        text += f": {now}" if now else " (its server still answers GET /models)"
    return f"{text}; last error: {redact(stop.last_error, secrets)}"


def _status(summary: BatchSummary) -> str:
    """The ``runs.status`` of a batch that returned."""
    if summary.store_failure:
        return "store-failed"
    return "stopped" if summary.stopped else "finished"


def _finish_run(store: RunStore, run_id: str, status: str, counts: Mapping[str, Any]) -> None:
    """Mark the run finished; a store that cannot be written any more has already been reported."""
    try:
        store.finish_run(run_id, status=status, counts=counts)
    except StoreError:
        log.debug("could not mark run %s %s", run_id, status, exc_info=True)


# ---------------------------------------------------------------- commands


class UsageError(Exception):
    """A problem with the command line or the run directory: exit code 2."""


# One process per output directory: two writers would interleave runs in one store. The lock
# (pipeline/store/runlock.py) names its holder; here a busy directory is a usage error (exit code 2).
_directory_lock = lock_refusing_with(UsageError)


def _check_limits(options: RunOptions) -> None:
    problems = options.problems()
    if problems:
        raise UsageError("; ".join(problems))


def _default_concurrency(options: RunOptions, env: Mapping[str, str]) -> int:
    if options.concurrency is not None:
        return int(options.concurrency)
    try:
        from pipeline.extract.providers import EMBEDDED, choose_provider
    except ImportError:
        return DEFAULT_CONCURRENCY
    provider = choose_provider(model=options.model, gguf=options.gguf, env=env, embedded=options.embedded)
    # The embedded engine shares two cores: parallel slots only slow each other down.
    return EMBEDDED_DEFAULT_CONCURRENCY if provider == EMBEDDED else DEFAULT_CONCURRENCY


# Used when neither the user nor the model's description says otherwise.
FALLBACK_MAX_REASKS = 2
FALLBACK_MAX_TOKENS = 1024


def decoding_settings(
    endpoint: Endpoint | None,
    *,
    max_reasks: int | None = None,
    max_tokens: int | None = None,
    plan: str | None = None,
) -> dict[str, Any]:
    """Re-asks, max tokens and plan: the caller's choice, else the model's recommendation, else ours.

    The embedded models carry settings chosen by benchmarks/embedded_models.py
    (``Endpoint.recommended``); a remote endpoint has none and gets the fallbacks.
    """
    recommended: Mapping[str, Any] = getattr(endpoint, "recommended", None) or {}
    from pipeline.extract.plans import DEFAULT_PLAN

    def pick(name: str, given: Any, fallback: Any) -> Any:
        return given if given is not None else recommended.get(name, fallback)

    return {
        "max_reasks": int(pick("max_reasks", max_reasks, FALLBACK_MAX_REASKS)),
        "max_tokens": int(pick("max_tokens", max_tokens, FALLBACK_MAX_TOKENS)),
        "plan": str(pick("plan", plan, DEFAULT_PLAN)),
    }


def _decoding(options: RunOptions, endpoint: Endpoint | None) -> dict[str, Any]:
    return decoding_settings(
        endpoint, max_reasks=options.max_reasks, max_tokens=options.max_tokens, plan=options.plan
    )


def _settings_from(options: RunOptions, endpoint: Endpoint | None = None) -> Any:
    from pipeline.extract.extractor import ExtractionSettings

    return ExtractionSettings(
        max_transport_retries=options.max_transport_retries,
        timeout_s=options.timeout,
        temperature=options.temperature,
        **_decoding(options, endpoint),
    )


def _run_settings(options: RunOptions, endpoint: Endpoint, concurrency: int) -> dict[str, Any]:
    """What the runs table keeps about a command: flags and endpoint, never a key (the base URL
    without its userinfo and query string; the store redacts the whole text again)."""
    settings: dict[str, Any] = {
        "command": options.command,
        "base_url": redact_url(endpoint.base_url),
        "concurrency": concurrency,
        "stop_after_connection_failures": _breaker(options),
        "rpm": options.rpm,
        "tpm": options.tpm,
        "max_transport_retries": options.max_transport_retries,
        "timeout_s": options.timeout,
        "temperature": options.temperature,
        **_decoding(options, endpoint),
    }
    if options.command == "run":
        settings["paths"] = [str(path) for path in options.paths]
        settings["refresh"] = options.refresh
        settings["reconcile"] = options.reconcile
        settings["db"] = redact(options.db) if options.db else None
    if options.batch:
        settings["batch"] = True
        settings["batch_reasks"] = options.batch_reasks
    if options.engine != "local":
        settings["engine"] = options.engine
        settings["ray_address"] = redact_url(options.ray_address) if options.ray_address else None
    if options.gguf is not None:
        settings["gguf"] = str(options.gguf)
    return settings


def _breaker(options: RunOptions) -> int:
    value = options.stop_after_connection_failures
    return DEFAULT_STOP_AFTER_CONNECTION_FAILURES if value is None else int(value)


def _url_credentials(url: str) -> list[str]:
    """The userinfo and query values of ``url``: a key put there is a secret wherever it shows up."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = [unquote(value) for value in (parts.username, parts.password) if value]
    found += [value for _, value in parse_qsl(parts.query)]
    return found


def _secrets(env: Mapping[str, str], endpoint: Endpoint | None = None) -> list[str]:
    values = [env.get("OPENAI_API_KEY", ""), *_url_credentials(env.get("OPENAI_BASE_URL", ""))]
    if endpoint is not None:
        values.append(endpoint.api_key)
        values += _url_credentials(endpoint.base_url)
    # A placeholder like "unused" is not a secret, and scrubbing it would mangle ordinary text.
    return [value for value in values if value and len(value) >= 12]


def run(options: RunOptions) -> int:
    """``triangulate run PATH... --out DIR``: see the module docstring for exit codes."""
    from pipeline.ingest.sources import aiter_sources

    max_bytes = options.max_article_bytes
    return _command(
        options, kind="run", articles=lambda _store: aiter_sources(options.paths, max_bytes=max_bytes)
    )


def retry_failed(options: RunOptions) -> int:
    """``triangulate retry-failed DIR``: extract again only the articles whose outcome is a failure
    (live, or through the provider's Batch API with ``options.batch``)."""
    store_path = RunFolder(Path(options.out)).store
    if not store_path.is_file():
        print(
            f"error: no run store at {store_path}; run `triangulate run ... --out {options.out}` first",
            file=sys.stderr,
        )
        return EXIT_NOTHING_DONE
    options = replace(options, command="retry-failed")
    return _command(options, kind="retry-failed", articles=lambda store: store.failed_articles())


def _command(options: RunOptions, *, kind: str, articles: Any) -> int:
    env = os.environ
    out_dir = Path(options.out)
    _quiet_library_loggers()
    try:
        _check_limits(options)
        if options.engine == "ray":
            # Before the lock and the store: a run that cannot start marks nothing failed.
            from pipeline.batch.ray_extract import refusal

            refused = refusal(options, env)
            if refused:
                raise UsageError(refused)
        with _directory_lock(out_dir):
            return _command_locked(options, kind=kind, articles=articles, env=env, out_dir=out_dir)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_NOTHING_DONE
    except StoreError as error:
        print(f"error: {redact(str(error), _secrets(env))}; nothing was saved", file=sys.stderr)
        return EXIT_STORAGE
    except OSError as error:
        # Creating, locking or writing into the output folder (the store's own errors are StoreError).
        if not _inside(error.filename, out_dir) or storage_cause(error) is None:
            raise
        print(
            f"error: cannot write the output folder {redact(str(out_dir))}: {storage_cause(error)}; "
            "nothing was saved",
            file=sys.stderr,
        )
        return EXIT_STORAGE


def _inside(filename: object, folder: Path) -> bool:
    if not isinstance(filename, (str, os.PathLike)):
        return False
    path, folder = Path(os.path.abspath(filename)), Path(os.path.abspath(folder))
    return path == folder or folder in path.parents


def _command_locked(
    options: RunOptions, *, kind: str, articles: Any, env: Mapping[str, str], out_dir: Path
) -> int:
    from pipeline.extract.extractor import Extractor
    from pipeline.extract.providers import ProviderError, open_endpoint

    concurrency = _default_concurrency(options, env)
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
                        model=options.model,
                        gguf=options.gguf,
                        concurrency=concurrency,
                        env=env,
                        embedded=options.embedded,
                        progress=not options.quiet,
                    )
                )
            except ProviderError as error:
                print(f"error: {redact(str(error), _secrets(env))}", file=sys.stderr)
                return EXIT_NOTHING_DONE
            store.secrets = tuple(_secrets(env, endpoint))
            return _execute(options, kind, articles, store, endpoint, concurrency, out_dir, Extractor)


def _execute(
    options: RunOptions,
    kind: str,
    articles: Any,
    store: RunStore,
    endpoint: Endpoint,
    concurrency: int,
    out_dir: Path,
    extractor_class: Any,
) -> int:
    if options.engine != "ray":
        return _execute_here(options, kind, articles, store, endpoint, concurrency, out_dir, extractor_class)
    from pipeline.batch.ray_extract import ray_scope

    # One Ray session for the extraction and the reconcile (starting Ray takes seconds), started
    # only by whichever needs it first, and shut down here if this command started it.
    with ray_scope():
        return _execute_here(options, kind, articles, store, endpoint, concurrency, out_dir, extractor_class)


def _execute_here(
    options: RunOptions,
    kind: str,
    articles: Any,
    store: RunStore,
    endpoint: Endpoint,
    concurrency: int,
    out_dir: Path,
    extractor_class: Any,
) -> int:
    # Printed lines are put together from parts that each went through pipeline.common.redact (the URL
    # through redact_url): redacting a whole line again would take the punctuation after a URL
    # for part of its query string.
    where = redact_url(endpoint.base_url)
    print(
        f"triangulate {kind}: model {redact(endpoint.model, store.secrets)} ({endpoint.provider}) at "
        f"{where}, {concurrency} in flight{' per Ray actor' if options.engine == 'ray' else ''}, "
        f"store {store.db_path}",
        file=sys.stderr,
    )
    preflight_s = min(float(options.timeout), PREFLIGHT_TIMEOUT_S)
    unreachable = asyncio.run(
        probe_endpoint(endpoint.base_url, endpoint.api_key, timeout_s=preflight_s, secrets=store.secrets)
    )
    if unreachable is not None:
        print(
            f"error: cannot reach the model endpoint at {where}: {unreachable}; nothing was sent and "
            "no article was marked failed (start the server or fix OPENAI_BASE_URL, then run the same "
            "command again)",
            file=sys.stderr,
        )
        return EXIT_NOTHING_DONE
    extractor = extractor_class(endpoint, _settings_from(options, endpoint))
    try:
        run_id = store.start_run(
            kind,
            model=endpoint.model,
            provider=endpoint.provider,
            cache_key_parts=extractor.cache_key_parts,
            settings=_run_settings(options, endpoint, concurrency),
        )
    except BaseException:
        asyncio.run(extractor.aclose())
        raise
    # The Ray engine's results come back a batch at a time: one line each time the count moves.
    progress = Progress(
        quiet=options.quiet, interval_s=0.0 if options.engine == "ray" else PROGRESS_INTERVAL_S
    )

    async def go() -> BatchSummary:
        try:
            if options.engine == "ray":
                from pipeline.batch.ray_extract import run_ray_extract

                return await run_ray_extract(
                    articles(store),
                    extractor,
                    store,
                    run_id=run_id,
                    endpoint=endpoint,
                    settings=extractor.settings,
                    out_dir=out_dir,
                    address=options.ray_address,
                    concurrency=concurrency,
                    rpm=options.rpm,
                    tpm=options.tpm,
                    refresh=options.refresh,
                    retry_failures=kind == "retry-failed",
                    progress=progress,
                    stop_after_connection_failures=_breaker(options),
                )
            if options.batch:
                from pipeline.batch.provider_batch import run_provider_batch

                return await run_provider_batch(
                    articles(store),
                    extractor,
                    store,
                    run_id=run_id,
                    refresh=options.refresh,
                    progress=progress,
                    reasks=options.batch_reasks,
                    concurrency=concurrency,
                    retry_failures=kind == "retry-failed",
                )
            return await run_batch(
                articles(store),
                extractor,
                store,
                concurrency=concurrency,
                rpm=options.rpm,
                tpm=options.tpm,
                refresh=options.refresh,
                progress=progress,
                run_id=run_id,
                retry_failures=kind == "retry-failed",
                stop_after_connection_failures=_breaker(options),
            )
        finally:
            await extractor.aclose()

    summary: BatchSummary | None = None
    status = "interrupted"
    try:
        summary = asyncio.run(go())
        status = _status(summary)
    finally:
        progress.close()
        _finish_run(store, run_id, status, summary.as_dict() if summary else {})
    assert summary is not None  # asyncio.run either returned one or raised
    if summary.store_failure:  # redacted by run_batch
        print(
            f"error: {summary.store_failure}; the run stopped: {summary.saved} article outcome(s) of this "
            "run were saved, nothing after them; free space or fix the folder, then run the same command "
            "again to resume",
            file=sys.stderr,
        )
        return EXIT_STORAGE
    try:
        derived = store.write_derived(out_dir)
    except StoreError as error:
        print(
            f"error: {redact(str(error), store.secrets)}; every outcome is saved in {store.db_path}: run "
            "the same command again once the folder can be written (nothing will be asked again)",
            file=sys.stderr,
        )
        return EXIT_STORAGE
    code = _exit_code(store.outcome_counts())
    if summary.stopped:  # redacted by run_batch
        print(
            f"error: stopped early: {summary.stopped}; articles not yet extracted stay pending "
            "(no failure row): run the same command again to resume",
            file=sys.stderr,
        )
        code = EXIT_NOTHING_DONE
    print(_summary_text(summary, out_dir, derived.records, derived.failures), file=sys.stderr)
    if options.reconcile and not summary.stopped:
        code = max(code, _reconcile(store, out_dir, options))
    if options.db:
        code = max(code, _export_db(out_dir, options.db))
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


def _reconcile(store: RunStore, out_dir: Path, options: RunOptions | None = None) -> int:
    from pipeline.outputs.export import write_run_store_tables
    from pipeline.reconcile.folder import reconcile_into
    from pipeline.reconcile.spill import RecordLines

    if not store.outcome_counts().get("record", 0):
        return EXIT_OK
    # JSON lines, not a list of records: the reconciler spills them to disk as they are, parses
    # them in worker processes and holds only each record's clustering features, so a run of
    # any size reconciles in bounded memory.
    records = RecordLines(store.iter_record_json())
    try:
        # Into the folder's desk: incidents keep their ids across runs, decisions are re-applied.
        if options is not None and options.engine == "ray":
            from pipeline.reconcile.ray_engine import RayEngine

            # On the Ray session the extraction opened, if it is still up (see _execute).
            with RayEngine(options.ray_address, out_dir=out_dir) as engine:
                outcome = reconcile_into(records, out_dir, engine=engine)
        else:
            outcome = reconcile_into(records, out_dir)
        # The dashboard tables live in the run store by default, so a dashboard
        # pointed at DIR/triangulate.sqlite sees every run without an export step.
        write_run_store_tables(out_dir)
    except Exception as error:
        cause = storage_cause(error)
        if cause is not None:
            print(
                f"error: cannot write the reconciled outputs in {out_dir}: {redact(cause, store.secrets)}; "
                "the records are kept in the run store: run the same command again once the folder "
                "can be written",
                file=sys.stderr,
            )
            return EXIT_STORAGE
        log.debug("reconcile failed", exc_info=True)
        print(
            redact(
                f"error: reconcile failed: {type(error).__name__}: {error}; records are kept", store.secrets
            ),
            file=sys.stderr,
        )
        return EXIT_PARTIAL
    print(f"reconciled {outcome.counts.records} records into {out_dir}: {outcome.summary()}", file=sys.stderr)
    return EXIT_OK


def _export_db(out_dir: Path, url: str) -> int:
    from pipeline.outputs.export import export_to_db

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
