"""The provider Batch API, through the ``openai`` client's public ``files`` and ``batches``.

A batch is one JSONL input file, one line per request::

    {"custom_id": "...", "method": "POST", "url": "/v1/chat/completions", "body": {...}}

uploaded with purpose ``batch``; the batch is created from the file's id and polled until it
reaches a terminal status. Its output file holds one line per answered request (the chat
completion under ``response.body``), its error file one line per request that failed; both are
keyed by ``custom_id``, in no particular order.

Polling backs off from :attr:`PollBackoff.initial_s` to :attr:`PollBackoff.max_s`: a batch takes
minutes to hours, and a tight loop would only spend the provider's request quota. The sleep is
injectable so tests run in milliseconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import openai
from openai.types import Batch

CHAT_COMPLETIONS_URL: Final[Literal["/v1/chat/completions"]] = "/v1/chat/completions"
COMPLETION_WINDOW: Final[Literal["24h"]] = "24h"
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})

Sleep = Callable[[float], Awaitable[None]]
ProgressLine = Callable[[str], None]


@dataclass(frozen=True)
class PollBackoff:
    """Seconds between two polls: ``initial_s``, times ``factor`` after each poll, at most ``max_s``."""

    initial_s: float = 5.0
    max_s: float = 60.0
    factor: float = 1.5

    def delays(self) -> Iterator[float]:
        delay = self.initial_s
        while True:
            yield delay
            delay = min(self.max_s, delay * self.factor)


@dataclass(frozen=True)
class BatchLine:
    """One line of a batch's output or error file."""

    custom_id: str
    status_code: int | None
    body: dict[str, Any] | None
    """The chat completion for a 200, the provider's error body otherwise."""
    error: str | None
    """The error message of a line that failed (from ``error`` or the response body), else None."""

    @property
    def ok(self) -> bool:
        return self.status_code == 200 and self.body is not None and self.error is None


def request_line(custom_id: str, body: Mapping[str, Any]) -> bytes:
    """One line of a JSONL input file, newline included: its length is what the line adds to the
    file, which is what the provider's byte cap counts."""
    line = json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": CHAT_COMPLETIONS_URL, "body": dict(body)},
        ensure_ascii=False,
    )
    return (line + "\n").encode("utf-8")


def request_lines(requests: Iterable[tuple[str, Mapping[str, Any]]]) -> bytes:
    """The JSONL input file for ``(custom_id, chat-completion body)`` pairs."""
    return b"".join(request_line(custom_id, body) for custom_id, body in requests)


def parse_result_file(text: str) -> list[BatchLine]:
    """The lines of an output or error file; a line that is not JSON is skipped (its request then
    has no result and fails as missing, which says more than a parse error would)."""
    found: list[BatchLine] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("custom_id"), str):
            continue
        response = data.get("response")
        if not isinstance(response, dict):
            response = {}
        body = response.get("body")
        if not isinstance(body, dict):
            body = None
        status = response.get("status_code")
        error = _error_message(data.get("error"))
        if error is None and status != 200:
            error = _error_message((body or {}).get("error")) or f"HTTP {status}"
        found.append(
            BatchLine(
                custom_id=data["custom_id"],
                status_code=status if isinstance(status, int) else None,
                body=body,
                error=error,
            )
        )
    return found


def _error_message(error: Any) -> str | None:
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        text = str(message or "").strip() or None
        if code and text:
            return f"{code}: {text}"
        return text or (str(code) if code else None)
    if isinstance(error, str) and error.strip():
        return error.strip()
    return None


class BatchAPI:
    """Upload, create, poll and download through one ``openai.AsyncOpenAI`` client."""

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self.client = client

    async def upload(self, data: bytes, filename: str) -> str:
        uploaded = await self.client.files.create(file=(filename, data, "application/jsonl"), purpose="batch")
        return uploaded.id

    async def create(self, input_file_id: str, metadata: Mapping[str, str] | None = None) -> Batch:
        return await self.client.batches.create(
            input_file_id=input_file_id,
            endpoint=CHAT_COMPLETIONS_URL,
            completion_window=COMPLETION_WINDOW,
            metadata=dict(metadata) if metadata else None,
        )

    async def retrieve(self, batch_id: str) -> Batch:
        return await self.client.batches.retrieve(batch_id)

    async def find_by_input_file(self, input_file_id: str) -> Batch | None:
        """The batch created from ``input_file_id``, if any: after a kill between create and the
        store recording its id, this finds it rather than creating a second one."""
        async for batch in self.client.batches.list(limit=100):
            if batch.input_file_id == input_file_id:
                return batch
        return None

    async def poll(
        self,
        batch_id: str,
        *,
        backoff: PollBackoff,
        sleep: Sleep = asyncio.sleep,
        progress: ProgressLine | None = None,
        on_status: Callable[[Batch], None] | None = None,
        label: str = "batch",
    ) -> Batch:
        """Retrieve ``batch_id`` until its status is terminal, reporting each change of status or
        count through ``progress`` (each line starts with ``label``, e.g. ``batch 2/5``, so the
        lines of batches polled together can be told apart); returns the final batch."""
        delays = iter(backoff.delays())
        last_line = ""
        while True:
            batch = await self.retrieve(batch_id)
            if on_status is not None:
                on_status(batch)
            line = progress_text(batch, label)
            if progress is not None and line != last_line:
                progress(line)
                last_line = line
            if batch.status in TERMINAL_STATUSES:
                return batch
            await sleep(next(delays))

    async def download(self, file_id: str | None) -> list[BatchLine]:
        if not file_id:
            return []
        content = await self.client.files.content(file_id)
        return parse_result_file(content.text)


def progress_text(batch: Batch, label: str = "batch") -> str:
    """``batch 2/5 batch_abc: in_progress, 1200/5000 done`` (``label`` is ``batch 2/5``)."""
    counts = batch.request_counts
    done = f", {counts.completed}/{counts.total} done" if counts is not None else ""
    failed = f", {counts.failed} failed" if counts is not None and counts.failed else ""
    return f"{label} {batch.id}: {batch.status}{done}{failed}"
