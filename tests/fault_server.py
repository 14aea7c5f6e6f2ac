"""A loopback OpenAI-compatible chat-completions server that misbehaves on purpose.

It stands in for a model endpoint in tests and benchmarks. It is a stub, not a
model: every proper answer is a schema-valid ``ArticleReading`` JSON (the flat
contract of ``schemas/contract.py``: every key present) built from the request.
It reads the numbered sentences of the first user message ("[1] ...",
"[2] ...") and answers ``summary`` with the first few words of sentence 1 and
``summary_sent: 1``; every other value is null and the lists are empty. Those
words stand in sentence 1, so the pipeline finds the evidence there.

A request is identified by the numbered sentences it carried (re-asks append
messages after the first user message, so they share their article's key).

Faults, each a fraction of requests (see :class:`FaultMix`):

* ``rate_limit``: HTTP 429 with ``Retry-After`` and ``retry-after-ms``;
* ``server_error``: HTTP 500 (with ``retry-after-ms`` so tests stay quick);
* ``truncated_body``: a 200 whose body stops mid-JSON and the connection closes
  (the client sees an incomplete response);
* ``truncated_content``: a complete 200 whose message content is cut-off JSON
  with ``finish_reason: length`` (what a model hitting ``max_tokens`` returns);
* ``drop``: the connection closes without any response;
* ``trickle``: a 200 whose headers arrive at once and whose body then comes one
  byte every ``trickle_interval_s`` (each read succeeds, so a per-read timeout
  never fires; only a deadline on the whole request ends it);
* ``html_page``: a 200 ``text/html`` page instead of a chat completion, as a
  captive portal, a proxy's sign-in page or a web UI at the wrong URL answers;
* ``slow``: this fraction of answers waits ``slow_s`` longer; every answer waits
  ``latency_s`` (the benchmark uses 200 ms).

Which fault a request gets is a pure function of (seed, the request's numbered
sentences, how many requests with those sentences came before), so a run is reproducible no matter
in which order concurrent requests arrive.

Every request is logged (:attr:`FaultServer.requests`) with the numbered
sentences and the parsed body; the ``Authorization`` header is never logged.

Run standalone (used by ``benchmarks/throughput.py``)::

    python tests/fault_server.py --latency 0.2     # prints the base URL, serves until killed

For "nothing listens there", :func:`closed_port` / :func:`closed_base_url` give a loopback
address whose connections are refused.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

NUMBERED_SENTENCE = re.compile(r"^\[(\d+)\] (.*)$", re.MULTILINE)
SUMMARY_WORDS = 8

# ArticleReading's scalar value keys with their sentence keys, in contract order (a stub keeps
# its own copy rather than importing the pipeline: it plays the server, not the client).
READING_KEYS = (
    ("date_words", "date_sent"),
    ("time_of_day", "time_sent"),
    ("place", "place_sent"),
    ("city", "city_sent"),
    ("county", "county_sent"),
    ("state", "state_sent"),
    ("event_type", "event_sent"),
    ("summary", "summary_sent"),
    ("operation", "operation_sent"),
    ("name", "name_sent"),
    ("age", "age_sent"),
    ("gender", "gender_sent"),
    ("nationality", "nationality_sent"),
    ("status", "status_sent"),
    ("armed_with", "armed_sent"),
    ("outcome", "outcome_sent"),
    ("place_of_death", "death_sent"),
    ("officers_involved", "involved_sent"),
    ("officers_fired", "fired_sent"),
    ("officer_injuries", "injuries_sent"),
    ("officer_condition", "condition_sent"),
)

# New kinds go at the end: a request's fault is drawn by walking this order, so appending keeps
# every existing seeded mix answering as before.
FAULT_KINDS = (
    "rate_limit",
    "server_error",
    "truncated_body",
    "truncated_content",
    "drop",
    "trickle",
    "html_page",
)

HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Sign in - Corporate Web Proxy</title></head>\n"
    "<body><h1>Sign in to continue</h1><p>Your session has expired. Please sign in to reach "
    "the requested site.</p></body></html>\n"
)


@dataclass(frozen=True)
class FaultMix:
    rate_limit: float = 0.0
    server_error: float = 0.0
    truncated_body: float = 0.0
    truncated_content: float = 0.0
    drop: float = 0.0
    trickle: float = 0.0
    html_page: float = 0.0
    slow: float = 0.0
    latency_s: float = 0.0
    slow_s: float = 1.0
    retry_after_s: float = 0.05
    trickle_interval_s: float = 2.0
    """Seconds between the bytes of a ``trickle`` answer."""
    max_faults_per_article: int | None = None
    """After this many faulty answers for one article, answer it properly (None: no limit)."""
    seed: int = 0
    required_api_key: str | None = None
    """If set, requests without ``Authorization: Bearer <it>`` get 401 (as a hosted API would)."""
    echo_authorization_in_errors: bool = False
    """500 bodies repeat the Authorization header, as some misconfigured proxies do: a secret
    that reaches an error message must still never reach the store or the logs."""

    def __post_init__(self) -> None:
        if sum(getattr(self, kind) for kind in FAULT_KINDS) > 1.0:
            raise ValueError("fault fractions add up to more than 1")


@dataclass
class RequestLog:
    article_key: str
    """sha256 of :attr:`sentences`."""
    sentences: str
    """The numbered sentences the request carried, one "[n] text" per line as sent (the whole
    first user message if it has no numbered lines)."""
    nth: int
    """1-based: the how-many-th request for this article."""
    outcome: str
    """'ok' or one of FAULT_KINDS."""
    body: dict[str, Any] = field(repr=False)
    had_authorization: bool = False
    received_at: float = 0.0


def numbered_sentences(user_text: str) -> dict[int, str]:
    """The "[n] text" lines of a user message, by number."""
    return {int(match[1]): match[2] for match in NUMBERED_SENTENCE.finditer(user_text)}


def first_user_message(body: dict[str, Any]) -> str:
    """The first user message: the article's sentences (re-asks append more messages after it)."""
    messages = body.get("messages") or []
    return next(
        (
            m["content"]
            for m in messages
            if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str)
        ),
        "",
    )


def sentences_of(body: dict[str, Any]) -> str:
    """What identifies a request: its numbered sentence lines, or the whole first user message."""
    user = first_user_message(body)
    lines = [match[0] for match in NUMBERED_SENTENCE.finditer(user)]
    return "\n".join(lines) if lines else user


def reading_for(user_text: str) -> dict[str, Any]:
    """A schema-valid ArticleReading: a few words of sentence 1 as the summary, cited as sentence 1.

    Without numbered sentences there is nothing to cite, and every value is null.
    """
    reading: dict[str, Any] = {}
    for value_key, sentence_key in READING_KEYS:
        reading[value_key] = None
        reading[sentence_key] = None
    reading.update({"agencies": [], "agency_sents": [], "speakers": [], "speaker_sents": []})
    first = numbered_sentences(user_text).get(1, "")
    words = first.split()[:SUMMARY_WORDS]
    summary = " ".join(words).strip(" ,;:.!?\"'")
    if summary:
        reading["summary"] = summary
        reading["summary_sent"] = 1
    return reading


class FaultServer:
    """Serves on 127.0.0.1 (an ephemeral port) from a background thread; use as a context manager."""

    def __init__(self, mix: FaultMix | None = None, *, port: int = 0) -> None:
        self.mix = mix or FaultMix()
        self.requests: list[RequestLog] = []
        self._port = port
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._faults: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.port = 0
        self.in_flight = 0
        self.max_in_flight = 0

    # -- lifecycle --

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FaultServer:
        self._thread = threading.Thread(target=self._serve_forever, name="fault-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault server did not start")
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return
        # Answers still being written (a trickle takes minutes) are cancelled, not left pending.
        asyncio.run_coroutine_threadsafe(self._shutdown(server), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    @staticmethod
    async def _shutdown(server: asyncio.Server) -> None:
        server.close()
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve_forever(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self._port, backlog=1024)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    # -- bookkeeping --

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._counts.clear()
            self._faults.clear()
            self.max_in_flight = 0

    def requests_containing(self, marker: str) -> list[RequestLog]:
        with self._lock:
            return [log for log in self.requests if marker in log.sentences]

    def outcome_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for log in self.requests:
                counts[log.outcome] = counts.get(log.outcome, 0) + 1
        return counts

    def _choose(self, article_key: str) -> tuple[int, str, bool]:
        with self._lock:
            nth = self._counts.get(article_key, 0) + 1
            self._counts[article_key] = nth
            faults_so_far = self._faults.get(article_key, 0)
        draw = random.Random(f"{self.mix.seed}:{article_key}:{nth}")
        roll, slow_roll = draw.random(), draw.random()
        outcome = "ok"
        limit = self.mix.max_faults_per_article
        if limit is None or faults_so_far < limit:
            threshold = 0.0
            for kind in FAULT_KINDS:
                threshold += getattr(self.mix, kind)
                if roll < threshold:
                    outcome = kind
                    break
        if outcome != "ok":
            with self._lock:
                self._faults[article_key] = faults_so_far + 1
        return nth, outcome, slow_roll < self.mix.slow

    # -- HTTP --

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line.strip():
                    break
                parts = request_line.decode("latin-1").split()
                if len(parts) != 3:
                    break
                method, target, _ = parts
                headers: dict[str, str] = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                with self._lock:
                    self.in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    keep_alive = await self._respond(method, target, headers, body, writer)
                finally:
                    with self._lock:
                        self.in_flight -= 1
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            # stop() cancels answers still being written; end quietly (Python 3.11's start_server
            # logs a handler that ends cancelled as an error).
            pass
        finally:
            writer.close()

    async def _respond(
        self, method: str, target: str, headers: dict[str, str], raw_body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        path = target.split("?", 1)[0].rstrip("/")
        if method == "GET" and path.endswith("/models"):
            await self._send_json(
                writer, 200, {"object": "list", "data": [{"id": "fault-stub", "object": "model"}]}
            )
            return True
        if method != "POST" or not path.endswith("/chat/completions"):
            await self._send_json(writer, 404, {"error": {"message": f"no route {method} {path}"}})
            return True
        try:
            body = json.loads(raw_body or b"{}")
        except json.JSONDecodeError:
            await self._send_json(writer, 400, {"error": {"message": "request body is not JSON"}})
            return True
        authorization = headers.get("authorization", "")
        required = self.mix.required_api_key
        if required is not None and authorization != f"Bearer {required}":
            error = {
                "error": {
                    "message": "Incorrect API key provided (fault server)",
                    "type": "invalid_request_error",
                }
            }
            await self._send_json(writer, 401, error)
            return True
        sentences = sentences_of(body)
        key = hashlib.sha256(sentences.encode("utf-8")).hexdigest()
        nth, outcome, slow = self._choose(key)
        with self._lock:
            self.requests.append(
                RequestLog(
                    article_key=key,
                    sentences=sentences,
                    nth=nth,
                    outcome=outcome,
                    body=body,
                    had_authorization="authorization" in headers,
                    received_at=time.monotonic(),
                )
            )
        delay = self.mix.latency_s + (self.mix.slow_s if slow else 0.0)
        if delay:
            await asyncio.sleep(delay)
        retry_headers = {
            "retry-after-ms": str(int(self.mix.retry_after_s * 1000)),
            "retry-after": f"{self.mix.retry_after_s:g}",
        }
        if outcome == "drop":
            return False
        if outcome == "html_page":
            page = HTML_PAGE.encode("utf-8")
            writer.write(_status_head(200, len(page), {"content-type": "text/html; charset=utf-8"}) + page)
            await writer.drain()
            return True
        if outcome == "rate_limit":
            error = {"error": {"message": "Rate limit reached (fault server)", "type": "rate_limit_exceeded"}}
            await self._send_json(writer, 429, error, retry_headers)
            return True
        if outcome == "server_error":
            message = "Internal error (fault server)"
            if self.mix.echo_authorization_in_errors:
                message += f"; request had Authorization: {authorization}"
            error = {"error": {"message": message, "type": "server_error"}}
            await self._send_json(writer, 500, error, {"retry-after-ms": retry_headers["retry-after-ms"]})
            return True
        content = json.dumps(reading_for(first_user_message(body)))
        if outcome == "truncated_content":
            content = content[: len(content) // 2]
        completion = {
            "id": f"chatcmpl-fault-{key[:8]}-{nth}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fault-stub"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "length" if outcome == "truncated_content" else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": max(1, len(raw_body) // 4),
                "completion_tokens": max(1, len(content) // 4),
                "total_tokens": max(1, len(raw_body) // 4) + max(1, len(content) // 4),
            },
        }
        if outcome == "truncated_body":
            payload = json.dumps(completion).encode("utf-8")
            head = _status_head(200, len(payload), {"content-type": "application/json"})
            writer.write(head + payload[: len(payload) // 2])
            await writer.drain()
            return False
        if outcome == "trickle":
            payload = json.dumps(completion).encode("utf-8")
            writer.write(_status_head(200, len(payload), {"content-type": "application/json"}))
            await writer.drain()
            for index in range(len(payload)):
                await asyncio.sleep(self.mix.trickle_interval_s)
                # A client that gave up closed its end: the next write or drain raises
                # ConnectionError, which ends this connection in _handle.
                if writer.is_closing():
                    return False
                writer.write(payload[index : index + 1])
                await writer.drain()
            return True
        await self._send_json(writer, 200, completion)
        return True

    @staticmethod
    async def _send_json(
        writer: asyncio.StreamWriter,
        status: int,
        payload: dict[str, Any],
        extra: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(payload).encode("utf-8")
        writer.write(
            _status_head(status, len(data), {"content-type": "application/json", **(extra or {})}) + data
        )
        await writer.drain()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def closed_port() -> int:
    """A loopback TCP port with nothing listening on it: connections to it are refused at once.

    The port is bound to pick a free one and released again, so another process could take it
    in the meantime; on a test machine that is rare enough to ignore.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def closed_base_url() -> str:
    """An OpenAI-style base URL (``http://127.0.0.1:PORT/v1``) at a :func:`closed_port`."""
    return f"http://127.0.0.1:{closed_port()}/v1"


def _status_head(status: int, length: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"content-length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def main() -> None:
    parser = argparse.ArgumentParser(description="Loopback OpenAI-compatible fault-injection server.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="Seconds before every answer.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--trickle-interval", type=float, default=2.0, help="Seconds between the bytes of a trickle answer."
    )
    for kind in (*FAULT_KINDS, "slow"):
        parser.add_argument(f"--{kind.replace('_', '-')}", type=float, default=0.0, help=f"Fraction: {kind}.")
    args = parser.parse_args()
    mix = FaultMix(
        latency_s=args.latency,
        seed=args.seed,
        slow=args.slow,
        trickle_interval_s=args.trickle_interval,
        **{kind: getattr(args, kind) for kind in FAULT_KINDS},
    )
    server = FaultServer(mix, port=args.port).start()
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
