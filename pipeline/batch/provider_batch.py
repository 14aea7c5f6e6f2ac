"""``triangulate run --batch``: the articles of a run through the provider's Batch API.

Shape of a run::

    inputs -> register (cache hits, duplicates and unreadable inputs as in a live run;
              retry-failed: the failed articles of the store, asked again)
           -> resume: every batch in the store not yet ingested is polled, never submitted again
           -> the other pending articles -> Extractor.request_bodies -> JSONL lines (custom_id
              per chunk), packed in input order into files under the caps
           -> per file: upload -> store (file id, custom_id -> article) -> create -> store (batch id)
           -> every batch of the round polled together, with backoff, one progress line per change
           -> download output + error files
           -> Extractor.extract_from_replies (validate, cite, ground) -> store.save_outcome
           -> replies that failed validation: asked again live (default) or in a second round of batches

Why the store is written twice around ``create``: the input file id and every line's article
are recorded right after the upload, the batch id right after the batch is created. A process
killed after the upload finds the file in the store and looks up the batch made from it (the
provider lists batches with their input file) before creating one, so a kill anywhere between
submission and ingestion never submits the same requests twice.

Why a round may need several batches: OpenAI takes at most 50,000 request lines and 200 MB per
batch input file (:data:`MAX_REQUESTS`, :data:`MAX_BYTES`; ``TRIANGULATE_BATCH_MAX_REQUESTS`` and
``TRIANGULATE_BATCH_MAX_BYTES`` set others, e.g. lower ones to keep each batch under an
organisation's enqueued-token limit). An article's lines always go into one file: its record is
built from the replies to all its chunks at once, and a file that asked half of them could end
with the article half-answered. Each file is uploaded, recorded and created before the next one
is built, so the invariant above holds per batch: after a kill, the batches created so far are
polled, and the articles of the files not yet uploaded are still pending and are packed again.
An article whose lines alone exceed a cap fails as ``batch-too-large`` (asking it live, with
``retry-failed`` without ``--batch``, has no such cap).

Every article ends as exactly one record or failure row, as in a live run. Failure reasons
added here: ``batch-expired`` (the batch expired before the article's lines were answered),
``batch-failed`` (the provider failed the whole batch), ``batch-cancelled``, ``batch-error``
(the article's line is in the error file; its message is redacted) and ``batch-missing`` (a
completed batch with no line for it), ``batch-too-large`` (one article over a cap). Tokens come
from each output line's ``usage``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import openai

from pipeline.batch.runner import (
    BatchSummary,
    Progress,
    _as_async,
    _config_errors,
    _EndpointLike,
)
from pipeline.common.redact import redact
from pipeline.extract.batchapi import BatchAPI, BatchLine, PollBackoff, Sleep, request_line
from pipeline.store.runstore import BatchRequest, ProviderBatch, RunStore, StoreError, cache_key
from schemas import Article, AttemptLog, ExtractionResult, FailureRow, Usage

REASKS = ("live", "batch")
POLL_ENV = "TRIANGULATE_BATCH_POLL_S"
"""Seconds before the first poll (default 5); tests and demos set it low."""

MAX_REQUESTS = 50_000
"""Request lines per batch input file: OpenAI's cap."""
MAX_BYTES = 200_000_000
"""Bytes per batch input file: OpenAI's cap is 200 MB, read as the smaller 200 * 10**6."""
MAX_REQUESTS_ENV = "TRIANGULATE_BATCH_MAX_REQUESTS"
MAX_BYTES_ENV = "TRIANGULATE_BATCH_MAX_BYTES"

STATUS_REASONS = {"expired": "batch-expired", "failed": "batch-failed", "cancelled": "batch-cancelled"}


class BatchExtractorLike(Protocol):
    """What the driver needs from ``pipeline.extract.extractor.Extractor``."""

    @property
    def endpoint(self) -> _EndpointLike: ...
    @property
    def cache_key_parts(self) -> dict[str, str]: ...
    async def extract(self, article: Article) -> ExtractionResult: ...
    async def request_bodies(self, article: Article) -> list[dict[str, Any]]: ...
    async def extract_from_replies(
        self, article: Article, replies: Sequence[dict[str, Any]]
    ) -> ExtractionResult: ...


def poll_backoff(env: Mapping[str, str]) -> PollBackoff:
    """The default backoff, with the first delay from ``TRIANGULATE_BATCH_POLL_S`` when set."""
    value = env.get(POLL_ENV)
    if not value:
        return PollBackoff()
    initial = max(0.0, float(value))
    return PollBackoff(initial_s=initial, max_s=max(initial, PollBackoff.max_s))


@dataclass(frozen=True)
class BatchCaps:
    """The most one batch input file may hold; a round's lines are split into files under both."""

    max_requests: int = MAX_REQUESTS
    max_bytes: int = MAX_BYTES

    def __post_init__(self) -> None:
        if self.max_requests < 1 or self.max_bytes < 1:
            raise ValueError("batch caps must be at least 1")


def batch_caps(env: Mapping[str, str]) -> BatchCaps:
    """The provider's caps, each replaced by its variable when set (``TRIANGULATE_BATCH_MAX_REQUESTS``,
    ``TRIANGULATE_BATCH_MAX_BYTES``): lower, to keep a batch under an organisation's enqueued-token
    limit, or other, for a provider with other caps. A value that is not a whole number of at least
    1 raises ValueError naming the variable."""
    caps: dict[str, int] = {}
    for name, variable in (("max_requests", MAX_REQUESTS_ENV), ("max_bytes", MAX_BYTES_ENV)):
        raw = env.get(variable, "").strip()
        if not raw:
            continue
        value = int(raw) if raw.isdigit() else 0
        if value < 1:
            raise ValueError(f"{variable} must be a whole number of at least 1, not {raw!r}")
        caps[name] = value
    return BatchCaps(**caps)


def open_client(endpoint: Any) -> openai.AsyncOpenAI:
    """A client for the endpoint's files and batches (the extractor's own client has retries off;
    these few calls keep openai's default retries)."""
    return openai.AsyncOpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key)


class _Stop(Exception):  # noqa: N818 - ends the run early, with its reason for the summary
    pass


@dataclass
class _File:
    """A batch input file being filled: whole articles' lines, under the caps."""

    requests: list[BatchRequest] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    size: int = 0

    def fits(self, lines: Sequence[bytes], size: int, caps: BatchCaps) -> bool:
        return len(self.lines) + len(lines) <= caps.max_requests and self.size + size <= caps.max_bytes


class _Driver:
    def __init__(
        self,
        extractor: BatchExtractorLike,
        store: RunStore,
        api: BatchAPI,
        *,
        run_id: str,
        summary: BatchSummary,
        progress: Progress,
        say: Callable[[str], None],
        backoff: PollBackoff,
        sleep: Sleep,
        reasks: str,
        concurrency: int,
        caps: BatchCaps,
    ) -> None:
        self.extractor, self.store, self.api = extractor, store, api
        self.run_id, self.summary, self.progress, self.say = run_id, summary, progress, say
        self.backoff, self.sleep, self.reasks, self.concurrency = backoff, sleep, reasks, concurrency
        self.caps = caps
        self.pending: dict[str, tuple[Article, str]] = {}
        """Article id -> (article, cache key): read in this run, no outcome yet."""

    # -- bookkeeping --

    def _count_failure(self, reason: str) -> None:
        self.summary.reason_counts[reason] = self.summary.reason_counts.get(reason, 0) + 1

    def save(self, article: Article, key: str, result: ExtractionResult) -> None:
        summary = self.summary
        summary.extracted += 1
        summary.requests += len(result.attempts)
        summary.usage = summary.usage + result.usage
        self.store.save_outcome(article, result, key=key, run_id=self.run_id)
        self.pending.pop(article.id, None)
        summary.saved += 1
        summary.articles += 1
        if result.record is not None:
            summary.records += 1
        else:
            summary.failures += 1
            self._count_failure(result.failure.reason if result.failure else "internal")
        self.progress.update(summary)

    async def read(
        self,
        articles: Iterable[Article | FailureRow] | AsyncIterable[Article | FailureRow],
        *,
        refresh: bool,
        retry_failures: bool,
    ) -> None:
        """Register every input as a live run does; what needs the model goes to ``pending``.

        ``retry_failures`` (``retry-failed``): the articles come from the store, registered already,
        and the failure stored under the cache key is the very outcome to replace, so only a record
        under the key counts as done (as in ``run_batch``)."""
        parts = self.extractor.cache_key_parts
        summary = self.summary
        seq = 0
        async for item in _as_async(articles):
            seq += 1
            summary.inputs += 1
            if isinstance(item, FailureRow):
                self.store.record_input_failure(item, run_id=self.run_id, seq=seq)
                summary.saved += 1
                summary.input_failures += 1
                self._count_failure(item.reason)
                continue
            key = cache_key(item.id, parts)
            if retry_failures:
                cached = (
                    None if refresh else self.store.reuse_cached(item.id, key, allow_cached_failure=False)
                )
            else:
                registration = self.store.register_article(
                    item, run_id=self.run_id, seq=seq, key=None if refresh else key
                )
                if not registration.first_in_run:
                    summary.duplicates += 1
                    continue
                cached = registration.cached
            if cached is not None:
                summary.count_cached(cached)
                continue
            self.pending[item.id] = (item, key)

    # -- batches --

    def open_batches(self, *, retry_failures: bool) -> list[ProviderBatch]:
        """The batches in the store whose results were not ingested yet and that answer a pending
        article under its cache key: they are polled, and their articles are not submitted again.

        An open batch that answers none is closed unread in a ``run`` (every article it asked for
        has an outcome, or was asked under other settings). ``retry-failed`` reads only the failed
        articles, so a batch that answers none of them may still be waited for by the run's pending
        articles: it stays open for the next ``run``."""
        found: list[ProviderBatch] = []
        for batch in self.store.provider_batches(open_only=True):
            requests = self.store.batch_requests(batch.input_file_id)
            if not any(self._waits_for(request) for request in requests):
                if not retry_failures:
                    self.store.mark_batch_ingested(batch.input_file_id)
                continue
            self.say(f"resuming batch {batch.batch_id or '(uploaded ' + batch.input_file_id + ')'}")
            found.append(batch)
        return found

    def asked_by(self, batches: Iterable[ProviderBatch]) -> set[str]:
        """The pending articles that ``batches`` answer."""
        return {
            request.article_id
            for batch in batches
            for request in self.store.batch_requests(batch.input_file_id)
            if self._waits_for(request)
        }

    def _waits_for(self, request: BatchRequest) -> bool:
        """Whether ``request`` answers an article of this run that has no outcome yet, under the
        same settings (cache key) it was built with."""
        pending = self.pending.get(request.article_id)
        return pending is not None and pending[1] == request.cache_key

    async def submit(self, articles: Sequence[tuple[Article, str]], attempt: int) -> list[ProviderBatch]:
        """The batches for ``articles``, as many as the caps need, in input order; empty when no
        request is left to send.

        An article without text fails at once, as live; one whose lines alone exceed a cap fails as
        ``batch-too-large``. The lines are encoded once and held for one file at a time: each file
        is uploaded, recorded and created before the next is filled, so a kill leaves every batch
        created so far in the store and the rest of the articles pending."""
        caps = self.caps
        submitted: list[ProviderBatch] = []
        current = _File()
        for number, (article, key) in enumerate(articles, start=1):
            bodies = await self.extractor.request_bodies(article)
            if not bodies:
                self.save(article, key, await self.extractor.extract_from_replies(article, []))
                continue
            requests: list[BatchRequest] = []
            lines: list[bytes] = []
            for chunk, body in enumerate(bodies, start=1):
                custom_id = f"r{attempt}-a{number}-c{chunk}"
                requests.append(BatchRequest(custom_id, article.id, chunk, len(bodies), attempt, key))
                lines.append(request_line(custom_id, body))
            size = sum(len(line) for line in lines)
            if not _File().fits(lines, size, caps):
                self.save(article, key, _too_large(article, len(lines), size, caps))
                continue
            if not current.fits(lines, size, caps):
                submitted.append(await self._submit_file(current, attempt, part=len(submitted) + 1))
                current = _File()
            current.requests += requests
            current.lines += lines
            current.size += size
        if current.requests:
            submitted.append(await self._submit_file(current, attempt, part=len(submitted) + 1))
        return submitted

    async def _submit_file(self, file: _File, attempt: int, *, part: int) -> ProviderBatch:
        """Upload ``file``, record it with what each line asks, create its batch and record its id."""
        input_file_id = await self.api.upload(
            b"".join(file.lines), f"triangulate-{self.run_id}-r{attempt}-b{part}.jsonl"
        )
        self.store.record_batch_upload(
            run_id=self.run_id, input_file_id=input_file_id, round=attempt, requests=file.requests
        )
        await self._create(input_file_id)
        stored = next(b for b in self.store.provider_batches() if b.input_file_id == input_file_id)
        self.say(
            f"submitted batch {stored.batch_id}: {len(file.requests)} requests for "
            f"{len({r.article_id for r in file.requests})} articles (input file {input_file_id})"
        )
        return stored

    async def _create(self, input_file_id: str) -> str:
        batch = await self.api.create(input_file_id, metadata={"triangulate_run": self.run_id})
        self.store.update_provider_batch(input_file_id, batch_id=batch.id, status=batch.status)
        return batch.id

    async def complete_all(
        self, batches: Sequence[ProviderBatch]
    ) -> list[tuple[Article, str, ExtractionResult]]:
        """Poll ``batches`` together and ingest each as it ends: the round takes as long as its
        slowest batch, not the sum of them. Returns the articles to ask again (see ``complete``)."""
        count = len(batches)
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(
                    self.complete(
                        batch, self.store.batch_requests(batch.input_file_id), label=f"batch {i}/{count}"
                    )
                )
                for i, batch in enumerate(batches, start=1)
            ]
        return [reask for task in tasks for reask in task.result()]

    async def complete(
        self, batch: ProviderBatch, requests: Sequence[BatchRequest], *, label: str = "batch"
    ) -> list[tuple[Article, str, ExtractionResult]]:
        """Poll ``batch`` to its end (progress lines start with ``label``) and save an outcome for each
        of its pending articles; returns the articles whose reply failed validation in a first-round
        batch (to be asked again)."""
        batch_id = batch.batch_id
        if batch_id is None:
            found = await self.api.find_by_input_file(batch.input_file_id)
            if found is not None:
                batch_id = found.id
                self.store.update_provider_batch(batch.input_file_id, batch_id=batch_id, status=found.status)
            else:
                batch_id = await self._create(batch.input_file_id)
        input_file_id = batch.input_file_id

        def note(status: Any) -> None:
            self.store.update_provider_batch(input_file_id, status=status.status)

        final = await self.api.poll(
            batch_id, backoff=self.backoff, sleep=self.sleep, progress=self.say, on_status=note, label=label
        )
        self.store.update_provider_batch(
            input_file_id,
            status=final.status,
            output_file_id=final.output_file_id,
            error_file_id=final.error_file_id,
            finished=True,
        )
        results: dict[str, BatchLine] = {}
        # Error lines first: an output line for the same request (a retry that succeeded) wins.
        for line in await self.api.download(final.error_file_id) + await self.api.download(
            final.output_file_id
        ):
            results[line.custom_id] = line
        batch_errors = "; ".join(
            error.message or error.code or "" for error in (final.errors.data or [] if final.errors else [])
        )
        by_article: dict[str, list[BatchRequest]] = {}
        for request in requests:
            by_article.setdefault(request.article_id, []).append(request)
        reasks: list[tuple[Article, str, ExtractionResult]] = []
        for article_id, chunks in by_article.items():
            if not self._waits_for(chunks[0]):
                continue
            article, key = self.pending[article_id]
            chunks.sort(key=lambda request: request.chunk)
            lines = [results.get(request.custom_id) for request in chunks]
            answered = [line for line in lines if line is not None and line.ok]
            if len(answered) == len(chunks):
                result = await self.extractor.extract_from_replies(
                    article, [line.body for line in answered if line.body is not None]
                )
                if result.failure is not None and result.failure.reason == "validation" and batch.round == 1:
                    reasks.append((article, key, result))
                    continue
            else:
                result = self._batch_failure(article, final.status, chunks, lines, answered, batch_errors)
            self.save(article, key, result)
        self.store.mark_batch_ingested(input_file_id)
        return reasks

    def _batch_failure(
        self,
        article: Article,
        status: str,
        chunks: Sequence[BatchRequest],
        lines: Sequence[BatchLine | None],
        answered: Sequence[BatchLine],
        batch_errors: str,
    ) -> ExtractionResult:
        secrets = self.store.secrets
        usage = Usage()
        for line in answered:
            usage = usage + _usage_of(line.body)
        errored = next(
            (
                (request, line)
                for request, line in zip(chunks, lines, strict=True)
                if line is not None and not line.ok
            ),
            None,
        )
        where = f" (chunk {errored[0].chunk} of {len(chunks)})" if errored and len(chunks) > 1 else ""
        if errored is not None:
            reason = "batch-error"
            detail = f"the batch answered this article's request{where} with an error"
            last_error = redact(errored[1].error or "", secrets)
        elif status in STATUS_REASONS:
            reason = STATUS_REASONS[status]
            detail = f"the provider batch ended {status} before answering this article"
            last_error = redact(batch_errors, secrets) or None
        else:
            reason = "batch-missing"
            detail = f"the provider batch ended {status} without a result line for this article"
            last_error = None
        return ExtractionResult(
            article_id=article.id,
            failure=FailureRow(
                article_id=article.id,
                source_path=article.source_path,
                reason=reason,
                detail=detail,
                attempts=len(answered),
                last_error=last_error,
                usage=usage,
            ),
            usage=usage,
        )

    # -- re-asks --

    async def reask(self, reasks: Sequence[tuple[Article, str, ExtractionResult]]) -> None:
        if not reasks:
            return
        self.say(f"{len(reasks)} batch replies failed validation: asking again {self.reasks}")
        if self.reasks == "batch":
            await self.complete_all(
                await self.submit([(article, key) for article, key, _ in reasks], attempt=2)
            )
            return
        config_errors = _config_errors()
        limit = asyncio.Semaphore(self.concurrency)

        async def one(article: Article, key: str, first: ExtractionResult) -> None:
            async with limit:
                try:
                    again = await self.extractor.extract(article)
                except config_errors as error:
                    raise _Stop(redact(f"{type(error).__name__}: {error}", self.store.secrets)) from None
            self.save(article, key, _joined(first, again))

        async with asyncio.TaskGroup() as group:
            for article, key, first in reasks:
                group.create_task(one(article, key, first))


def _too_large(article: Article, lines: int, size: int, caps: BatchCaps) -> ExtractionResult:
    """The failure of an article that no batch input file can hold: its lines are never split across
    files, so it would stay pending (or loop) otherwise."""
    if lines > caps.max_requests:
        over = f"{lines} request lines, over the {caps.max_requests} one batch may hold ({MAX_REQUESTS_ENV})"
    else:
        over = (
            f"{size} bytes of request lines, over the {caps.max_bytes} one batch file may hold "
            f"({MAX_BYTES_ENV})"
        )
    return ExtractionResult(
        article_id=article.id,
        failure=FailureRow(
            article_id=article.id,
            source_path=article.source_path,
            reason="batch-too-large",
            detail=f"this article alone needs {over}, and an article's lines are never split across "
            "batches; ask it live with `triangulate retry-failed DIR` (without --batch)",
            attempts=0,
        ),
    )


def _usage_of(body: Mapping[str, Any] | None) -> Usage:
    usage = (body or {}).get("usage")
    if not isinstance(usage, dict):
        return Usage()
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        total_tokens=int(usage.get("total_tokens") or 0),
    )


def _joined(first: ExtractionResult, again: ExtractionResult) -> ExtractionResult:
    """The live re-ask's outcome, with the batch reply's attempts, tokens and exchanges before it:
    the article's cost is both."""
    attempts: list[AttemptLog] = []
    for number, entry in enumerate([*first.attempts, *again.attempts], start=1):
        attempts.append(entry.model_copy(update={"attempt": number}))
    offset = len(first.attempts)
    exchanges = [
        *first.exchanges,
        *(e.model_copy(update={"attempt": e.attempt + offset}) for e in again.exchanges),
    ]
    return again.model_copy(
        update={"attempts": attempts, "usage": first.usage + again.usage, "exchanges": exchanges}
    )


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf of ``group`` (a task group nests the errors of its tasks)."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


def _say_to_stderr(quiet: bool) -> Callable[[str], None]:
    def say(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    return say


async def run_provider_batch(
    articles: Iterable[Article | FailureRow] | AsyncIterable[Article | FailureRow],
    extractor: BatchExtractorLike,
    store: RunStore,
    *,
    run_id: str,
    api: BatchAPI | None = None,
    refresh: bool = False,
    progress: Progress | None = None,
    reasks: str = "live",
    concurrency: int = 4,
    backoff: PollBackoff | None = None,
    sleep: Sleep = asyncio.sleep,
    say: Callable[[str], None] | None = None,
    caps: BatchCaps | None = None,
    retry_failures: bool = False,
) -> BatchSummary:
    """Extract every article of ``articles`` not already done through the provider Batch API.

    ``caps``: the most one batch input file holds (default :func:`batch_caps` of the environment:
    OpenAI's caps unless overridden). ``retry_failures``: ``articles`` are the store's failed
    articles (``retry-failed --batch``), asked again rather than taken as cached.

    Returns the summary a live batch returns (``summary.stopped`` when the provider refused a
    call, or a cap variable is not a number: the articles without an outcome stay pending and
    the same command resumes them; ``summary.store_failure`` when the store cannot be written).
    """
    if reasks not in REASKS:
        raise ValueError(f"reasks must be one of {', '.join(REASKS)}")
    endpoint = extractor.endpoint
    summary = BatchSummary(run_id=run_id, model=endpoint.model, provider=endpoint.provider)
    if caps is None:
        try:
            caps = batch_caps(os.environ)
        except ValueError as problem:
            summary.stopped = str(problem)
            return summary
    reporter = progress or Progress(quiet=True)
    owns_client = api is None
    if api is None:
        api = BatchAPI(open_client(endpoint))
    driver = _Driver(
        extractor,
        store,
        api,
        run_id=run_id,
        summary=summary,
        progress=reporter,
        say=say or _say_to_stderr(reporter.quiet),
        backoff=backoff or poll_backoff(os.environ),
        sleep=sleep,
        reasks=reasks,
        concurrency=concurrency,
        caps=caps,
    )
    loop = asyncio.get_running_loop()
    started_wall, started_cpu = loop.time(), time.process_time()
    try:
        await driver.read(articles, refresh=refresh, retry_failures=retry_failures)
        resumed = driver.open_batches(retry_failures=retry_failures)
        asked = driver.asked_by(resumed)
        fresh = [pending for article_id, pending in driver.pending.items() if article_id not in asked]
        # Submitted before any poll, so the resumed and the new batches of the round run side by side.
        batches = resumed + await driver.submit(fresh, attempt=1)
        await driver.reask(await driver.complete_all(batches))
    except* StoreError as errors:
        summary.store_failure = redact(str(_first(errors)), store.secrets)
    except* _Stop as stops:
        summary.stopped = str(_first(stops))
    except* openai.APIError as errors:
        error = _first(errors)
        from pipeline.extract.extractor import describe_error

        summary.stopped = "the provider's Batch API refused a call: " + describe_error(
            error, secret=getattr(endpoint, "api_key", None), url=getattr(endpoint, "base_url", None)
        )
    finally:
        summary.wall_s = loop.time() - started_wall
        summary.cpu_s = time.process_time() - started_cpu
        if owns_client:
            await api.client.close()
    return summary
