"""A loopback stand-in for an OpenAI-compatible Batch API: files, batches and chat completions.

It is a stub, not a model. Each request line of a batch is answered as
``tests/fault_server.py`` answers a live request (the same schema-valid ``ArticleReading``:
a few words of sentence 1 as the summary), so a batch run and a live run on the same articles
get identical replies.

Routes: ``POST /v1/files`` (multipart upload), ``GET /v1/files/{id}`` and ``/content``,
``POST /v1/batches``, ``GET /v1/batches`` (list), ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel``, ``POST /v1/chat/completions`` (live re-asks), ``GET /v1/models``
(the runner's reachability probe), ``GET /stub/stats`` (counters, for a test that runs the
stub in another process) and ``POST /stub/release`` (a slow batch may complete from now on).

How a batch ends is chosen by :class:`BatchMode` (``outcome``, or per batch in creation order
with ``outcome_by_batch``):

* ``complete``: every line answered;
* ``partial``: every ``error_every``-th line goes to the error file instead, status completed;
* ``expired``: the first half of the lines answered, status expired;
* ``failed``: nothing answered, status failed with a batch-level error;
* ``polls_before_done``: the batch stays ``in_progress`` for that many retrievals first
  (slow to complete; the kill -9 test uses it to stop a run between submit and ingest);
* ``invalid_marker``: a batch line whose sentences hold this text is answered with cut-off JSON
  (live requests are always answered well), to drive the re-ask paths.

``max_requests`` and ``max_bytes`` are the provider's caps on one batch input file: creating a
batch from a bigger file is refused (400, counted in ``refused``), so a test with small caps sees
any batch the pipeline failed to split.

With ``required_api_key`` every request must carry it as a bearer token (401 otherwise), and
``echo_authorization_in_errors`` puts the Authorization header into error-file messages, so a
test can check that the pipeline redacts it. The stub never logs the header.

Run standalone (the kill -9 test does)::

    python tests/batch_stub.py --polls-before-done 1000     # prints the base URL, serves until killed
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_server import first_user_message, reading_for, sentences_of  # noqa: E402

OUTCOMES = ("complete", "partial", "expired", "failed")


@dataclass(frozen=True)
class BatchMode:
    outcome: str = "complete"
    polls_before_done: int = 0
    error_every: int = 2
    invalid_marker: str | None = None
    required_api_key: str | None = None
    echo_authorization_in_errors: bool = False
    outcome_by_batch: tuple[str, ...] = ()
    """The outcome of the first, second, ... batch created; later ones end as ``outcome``."""
    max_requests: int | None = None
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        for outcome in (self.outcome, *self.outcome_by_batch):
            if outcome not in OUTCOMES:
                raise ValueError(f"outcome must be one of {OUTCOMES}")

    def outcome_of(self, creation: int) -> str:
        """How the ``creation``-th batch (from 1) ends."""
        if creation <= len(self.outcome_by_batch):
            return self.outcome_by_batch[creation - 1]
        return self.outcome


def completion_for(body: dict[str, Any], *, raw_length: int, valid: bool = True) -> dict[str, Any]:
    """The chat completion fault_server would answer ``body`` with (cut-off JSON when not ``valid``)."""
    content = json.dumps(reading_for(first_user_message(body)))
    if not valid:
        content = content[: len(content) // 2]
    prompt_tokens = max(1, raw_length // 4)
    completion_tokens = max(1, len(content) // 4)
    return {
        "id": f"chatcmpl-batch-{abs(hash(content)) % 10**8}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "batch-stub"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop" if valid else "length",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@dataclass
class _Batch:
    data: dict[str, Any]
    lines: list[dict[str, Any]]
    outcome: str = "complete"
    polls: int = 0


@dataclass
class BatchStub:
    """Serves on 127.0.0.1 (an ephemeral port) from a background thread; use as a context manager."""

    mode: BatchMode = field(default_factory=BatchMode)
    port: int = 0
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    batches: dict[str, _Batch] = field(default_factory=dict)
    creations: int = 0
    uploads: int = 0
    polls: int = 0
    live_requests: list[dict[str, Any]] = field(default_factory=list)
    unauthorized: int = 0
    refused: int = 0
    """Batches refused because their input file was over ``max_requests`` or ``max_bytes``."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> BatchStub:
        stub = self

        class Handler(_Handler):
            owner = stub

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="batch-stub", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> BatchStub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "creations": self.creations,
                "uploads": self.uploads,
                "polls": self.polls,
                "live_requests": len(self.live_requests),
                "unauthorized": self.unauthorized,
                "refused": self.refused,
                "batches": {key: batch.data["status"] for key, batch in self.batches.items()},
            }

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-stub{next(self._ids):04d}"

    # -- what the routes do --

    def upload(self, filename: str, data: bytes) -> dict[str, Any]:
        with self._lock:
            file_id = self.new_id("file")
            self.files[file_id] = (filename, data)
            self.uploads += 1
        return _file_object(file_id, filename, len(data))

    def create(self, request: dict[str, Any]) -> dict[str, Any] | str | None:
        """The new batch; None for an unknown file; the reason, for a file over a cap."""
        input_file_id = request.get("input_file_id")
        with self._lock:
            if input_file_id not in self.files:
                return None
            raw_file = self.files[input_file_id][1]
            lines = [json.loads(raw) for raw in raw_file.splitlines() if raw.strip()]
            mode = self.mode
            over = None
            if mode.max_requests is not None and len(lines) > mode.max_requests:
                over = f"{len(lines)} requests, over the cap of {mode.max_requests}"
            elif mode.max_bytes is not None and len(raw_file) > mode.max_bytes:
                over = f"{len(raw_file)} bytes, over the cap of {mode.max_bytes}"
            if over is not None:
                self.refused += 1
                return f"the input file has {over} (batch stub)"
            batch_id = self.new_id("batch")
            self.creations += 1
            data = {
                "id": batch_id,
                "object": "batch",
                "endpoint": request.get("endpoint"),
                "errors": None,
                "input_file_id": input_file_id,
                "completion_window": request.get("completion_window"),
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": int(time.time()),
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "metadata": request.get("metadata"),
            }
            self.batches[batch_id] = _Batch(data=data, lines=lines, outcome=mode.outcome_of(self.creations))
            return dict(data)

    def retrieve(self, batch_id: str, authorization: str) -> dict[str, Any] | None:
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return None
            self.polls += 1
            batch.polls += 1
            if batch.data["status"] in ("validating", "in_progress"):
                if batch.polls <= self.mode.polls_before_done:
                    batch.data["status"] = "in_progress"
                else:
                    self._finish(batch, authorization)
            return dict(batch.data)

    def cancel(self, batch_id: str) -> dict[str, Any] | None:
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return None
            if batch.data["status"] in ("validating", "in_progress"):
                batch.data["status"] = "cancelled"
            return dict(batch.data)

    def _finish(self, batch: _Batch, authorization: str) -> None:
        mode = self.mode
        outputs: list[str] = []
        errors: list[str] = []
        lines = batch.lines
        outcome = batch.outcome
        if outcome == "failed":
            answered: list[dict[str, Any]] = []
        elif outcome == "expired":
            answered = lines[: len(lines) // 2]
        else:
            answered = lines
        for index, line in enumerate(answered):
            custom_id = line["custom_id"]
            if outcome == "partial" and index % mode.error_every == mode.error_every - 1:
                message = "The model server failed this request"
                if mode.echo_authorization_in_errors:
                    message += f"; request had Authorization: {authorization}"
                errors.append(
                    json.dumps(
                        {
                            "id": f"batch_req_{index}",
                            "custom_id": custom_id,
                            "response": None,
                            "error": {"code": "server_error", "message": message},
                        }
                    )
                )
                continue
            body = line["body"]
            valid = mode.invalid_marker is None or mode.invalid_marker not in sentences_of(body)
            # The live client sends compact JSON: measured the same way, the stubs count the same tokens.
            raw_length = len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
            response = {
                "status_code": 200,
                "request_id": f"req_{index}",
                "body": completion_for(body, raw_length=raw_length, valid=valid),
            }
            outputs.append(
                json.dumps(
                    {"id": f"batch_req_{index}", "custom_id": custom_id, "response": response, "error": None}
                )
            )
        data = batch.data
        if outputs:
            data["output_file_id"] = self._store_file(f"{data['id']}_output.jsonl", outputs)
        if errors:
            data["error_file_id"] = self._store_file(f"{data['id']}_error.jsonl", errors)
        data["request_counts"] = {"total": len(lines), "completed": len(outputs), "failed": len(errors)}
        data["status"] = {"failed": "failed", "expired": "expired"}.get(outcome, "completed")
        if outcome == "failed":
            data["errors"] = {
                "object": "list",
                "data": [
                    {
                        "code": "invalid_request",
                        "message": "The batch could not be run (stub)",
                        "line": None,
                        "param": None,
                    }
                ],
            }

    def _store_file(self, filename: str, lines: list[str]) -> str:
        file_id = self.new_id("file")
        self.files[file_id] = (filename, ("\n".join(lines) + "\n").encode("utf-8"))
        return file_id


def _file_object(file_id: str, filename: str, size: int) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": "batch",
        "status": "processed",
    }


class _Handler(BaseHTTPRequestHandler):
    owner: BatchStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Silent: a request log would hold nothing a test reads, and no Authorization header."""

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self) -> None:
        self._send(404, {"error": {"message": f"no route {self.command} {self.path}", "type": "not_found"}})

    def _authorized(self) -> bool:
        required = self.owner.mode.required_api_key
        if required is None or self.headers.get("authorization", "") == f"Bearer {required}":
            return True
        with self.owner._lock:
            self.owner.unauthorized += 1
        self._send(
            401,
            {
                "error": {
                    "message": "Incorrect API key provided (batch stub)",
                    "type": "invalid_request_error",
                }
            },
        )
        return False

    def _body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        path = self.path.split("?", 1)[0].rstrip("/")
        stub = self.owner
        if path == "/stub/stats":
            self._send(200, stub.stats())
            return
        if not self._authorized():
            return
        parts = path.split("/")
        if path.endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "batch-stub", "object": "model"}]})
        elif path.endswith("/batches"):
            with stub._lock:
                data = [dict(batch.data) for batch in reversed(stub.batches.values())]
            self._send(
                200,
                {
                    "object": "list",
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                },
            )
        elif len(parts) >= 2 and parts[-2] == "batches":
            found = stub.retrieve(parts[-1], self.headers.get("authorization", ""))
            self._send(200, found) if found is not None else self._not_found()
        elif len(parts) >= 3 and parts[-3] == "files" and parts[-1] == "content":
            with stub._lock:
                stored = stub.files.get(parts[-2])
            self._send(200, stored[1], "application/octet-stream") if stored else self._not_found()
        elif len(parts) >= 2 and parts[-2] == "files":
            with stub._lock:
                stored = stub.files.get(parts[-1])
            self._send(
                200, _file_object(parts[-1], stored[0], len(stored[1]))
            ) if stored else self._not_found()
        else:
            self._not_found()

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        path = self.path.split("?", 1)[0].rstrip("/")
        raw = self._body()
        if path != "/stub/release" and not self._authorized():
            return
        stub = self.owner
        parts = path.split("/")
        if path == "/stub/release":
            # The kill -9 test: the first run is killed while the batch is slow; the resumed one may finish.
            with stub._lock:
                stub.mode = replace(stub.mode, polls_before_done=0)
            self._send(200, {"released": True})
        elif path.endswith("/files"):
            filename, data = _multipart_file(self.headers.get("content-type", ""), raw)
            self._send(200, stub.upload(filename, data))
        elif path.endswith("/batches"):
            created = stub.create(json.loads(raw or b"{}"))
            if created is None or isinstance(created, str):
                message = created or "no such input file"
                self._send(400, {"error": {"message": message, "type": "invalid_request_error"}})
            else:
                self._send(200, created)
        elif len(parts) >= 3 and parts[-1] == "cancel" and parts[-3] == "batches":
            found = stub.cancel(parts[-2])
            self._send(200, found) if found is not None else self._not_found()
        elif path.endswith("/chat/completions"):
            body = json.loads(raw or b"{}")
            with stub._lock:
                stub.live_requests.append(body)
            self._send(200, completion_for(body, raw_length=len(raw)))
        else:
            self._not_found()


def _multipart_file(content_type: str, raw: bytes) -> tuple[str, bytes]:
    """The uploaded file of a multipart/form-data body: its filename and bytes."""
    message = BytesParser(policy=default_policy).parsebytes(
        f"content-type: {content_type}\r\n\r\n".encode("latin-1") + raw
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            return part.get_filename() or "upload.jsonl", payload if isinstance(payload, bytes) else b""
    return "upload.jsonl", b""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outcome", choices=OUTCOMES, default="complete")
    parser.add_argument("--polls-before-done", type=int, default=0)
    parser.add_argument("--required-api-key")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    mode = BatchMode(
        outcome=args.outcome, polls_before_done=args.polls_before_done, required_api_key=args.required_api_key
    )
    stub = BatchStub(mode=mode, port=args.port).start()
    print(stub.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stub.stop()


if __name__ == "__main__":
    main()
