"""``triangulate run --batch``: the articles of a run through the provider's Batch API.

Shape of a run::

    inputs -> register (cache hits, duplicates and unreadable inputs as in a live run)
           -> resume: every batch in the store not yet ingested is polled, never submitted again
           -> pending articles -> Extractor.request_bodies -> one JSONL file (custom_id per chunk)
           -> upload -> store (file id, custom_id -> article) -> create -> store (batch id)
           -> poll with backoff, progress lines -> download output + error files
           -> Extractor.extract_from_replies (validate, cite, ground) -> store.save_outcome
           -> replies that failed validation: asked again live (default) or in one second batch

Why the store is written twice around ``create``: the input file id and every line's article
are recorded right after the upload, the batch id right after the batch is created. A process
killed after the upload finds the file in the store and looks up the batch made from it (the
provider lists batches with their input file) before creating one, so a kill anywhere between
submission and ingestion never submits the same requests twice.

Every article ends as exactly one record or failure row, as in a live run. Failure reasons
added here: ``batch-expired`` (the batch expired before the article's lines were answered),
``batch-failed`` (the provider failed the whole batch), ``batch-cancelled``, ``batch-error``
(the article's line is in the error file; its message is redacted) and ``batch-missing`` (a
completed batch with no line for it). Tokens come from each output line's ``usage``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
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
from pipeline.extract.batchapi import BatchAPI, BatchLine, PollBackoff, Sleep, request_lines
from pipeline.store.runstore import BatchRequest, ProviderBatch, RunStore, StoreError, cache_key
from schemas import Article, AttemptLog, ExtractionResult, FailureRow, Usage

REASKS = ("live", "batch")
POLL_ENV = "TRIANGULATE_BATCH_POLL_S"
"""Seconds before the first poll (default 5); tests and demos set it low."""

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


def open_client(endpoint: Any) -> openai.AsyncOpenAI:
    """A client for the endpoint's files and batches (the extractor's own client has retries off;
    these few calls keep openai's default retries)."""
    return openai.AsyncOpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key)


class _Stop(Exception):  # noqa: N818 - ends the run early, with its reason for the summary
    pass


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
    ) -> None:
        self.extractor, self.store, self.api = extractor, store, api
        self.run_id, self.summary, self.progress, self.say = run_id, summary, progress, say
        self.backoff, self.sleep, self.reasks, self.concurrency = backoff, sleep, reasks, concurrency
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
        self, articles: Iterable[Article | FailureRow] | AsyncIterable[Article | FailureRow], *, refresh: bool
    ) -> None:
        """Register every input as a live run does; what needs the model goes to ``pending``."""
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
            registration = self.store.register_article(
                item, run_id=self.run_id, seq=seq, key=None if refresh else key
            )
            if not registration.first_in_run:
                summary.duplicates += 1
                continue
            if registration.cached is not None:
                summary.articles += 1
                summary.saved += 1
                if registration.cached == "record":
                    summary.records += 1
                    summary.cached_records += 1
                else:
                    summary.failures += 1
                    summary.cached_failures += 1
                continue
            self.pending[item.id] = (item, key)

    # -- batches --

    async def resume(self) -> list[tuple[Article, str, ExtractionResult]]:
        """Poll and ingest every batch in the store whose results were not ingested yet."""
        reasks: list[tuple[Article, str, ExtractionResult]] = []
        for batch in self.store.provider_batches(open_only=True):
            requests = self.store.batch_requests(batch.input_file_id)
            if not any(self._waits_for(request) for request in requests):
                # Every article it asked for has an outcome already (or is not in this run's inputs):
                # nothing to wait for.
                self.store.mark_batch_ingested(batch.input_file_id)
                continue
            self.say(f"resuming batch {batch.batch_id or '(uploaded ' + batch.input_file_id + ')'}")
            reasks += await self.complete(batch, requests)
        return reasks

    def _waits_for(self, request: BatchRequest) -> bool:
        """Whether ``request`` answers an article of this run that has no outcome yet, under the
        same settings (cache key) it was built with."""
        pending = self.pending.get(request.article_id)
        return pending is not None and pending[1] == request.cache_key

    async def submit(self, articles: Sequence[tuple[Article, str]], attempt: int) -> ProviderBatch | None:
        """One batch for ``articles`` (an article without text fails at once, as live); None when
        no request is left to send."""
        requests: list[BatchRequest] = []
        lines: list[tuple[str, dict[str, Any]]] = []
        for number, (article, key) in enumerate(articles, start=1):
            bodies = await self.extractor.request_bodies(article)
            if not bodies:
                self.save(article, key, await self.extractor.extract_from_replies(article, []))
                continue
            for chunk, body in enumerate(bodies, start=1):
                custom_id = f"r{attempt}-a{number}-c{chunk}"
                requests.append(BatchRequest(custom_id, article.id, chunk, len(bodies), attempt, key))
                lines.append((custom_id, body))
        if not requests:
            return None
        input_file_id = await self.api.upload(
            request_lines(lines), f"triangulate-{self.run_id}-r{attempt}.jsonl"
        )
        self.store.record_batch_upload(
            run_id=self.run_id, input_file_id=input_file_id, round=attempt, requests=requests
        )
        await self._create(input_file_id)
        stored = next(b for b in self.store.provider_batches() if b.input_file_id == input_file_id)
        self.say(
            f"submitted batch {stored.batch_id}: {len(requests)} requests for "
            f"{len({r.article_id for r in requests})} articles (input file {input_file_id})"
        )
        return stored

    async def _create(self, input_file_id: str) -> str:
        batch = await self.api.create(input_file_id, metadata={"triangulate_run": self.run_id})
        self.store.update_provider_batch(input_file_id, batch_id=batch.id, status=batch.status)
        return batch.id

    async def complete(
        self, batch: ProviderBatch, requests: Sequence[BatchRequest]
    ) -> list[tuple[Article, str, ExtractionResult]]:
        """Poll ``batch`` to its end and save an outcome for each of its pending articles; returns the
        articles whose reply failed validation in a first batch (to be asked again)."""
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
            batch_id, backoff=self.backoff, sleep=self.sleep, progress=self.say, on_status=note
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
            batch = await self.submit([(article, key) for article, key, _ in reasks], attempt=2)
            if batch is not None:
                await self.complete(batch, self.store.batch_requests(batch.input_file_id))
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
) -> BatchSummary:
    """Extract every article of ``articles`` not already done through the provider Batch API.

    Returns the summary a live batch returns (``summary.stopped`` when the provider refused a
    call: the articles without an outcome stay pending and the same command resumes them;
    ``summary.store_failure`` when the store cannot be written).
    """
    if reasks not in REASKS:
        raise ValueError(f"reasks must be one of {', '.join(REASKS)}")
    endpoint = extractor.endpoint
    summary = BatchSummary(run_id=run_id, model=endpoint.model, provider=endpoint.provider)
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
    )
    loop = asyncio.get_running_loop()
    started_wall, started_cpu = loop.time(), time.process_time()
    try:
        await driver.read(articles, refresh=refresh)
        to_reask = await driver.resume()
        fresh = list(driver.pending.values())
        if fresh:
            batch = await driver.submit(fresh, attempt=1)
            if batch is not None:
                to_reask += await driver.complete(batch, store.batch_requests(batch.input_file_id))
        await driver.reask(to_reask)
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
