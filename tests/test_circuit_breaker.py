"""A dead or dying endpoint: the request before the batch, the circuit breaker, and the re-run once
the endpoint is back.

Every test runs the real command (``python -m pipeline run``) in a subprocess, against the loopback
fault server (tests/fault_server.py: dropped connections, slow answers, HTML pages) or against a
loopback port with nothing listening (``fault_server.closed_port``), so connections are really
refused or really dropped. Nothing in the pipeline is replaced.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fault_server import FaultMix, FaultServer, closed_port

MODEL = "fault-stub"
KEY = "sk-test-breaker-000000"


def story(number: int) -> str:
    return (
        f"Story {number:03d} from the county desk. A trooper shot a driver on Interstate 10 near "
        f"Casa Grande on Saturday, the department said. The driver, {20 + number % 50}, survived."
    )


def write_articles(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"{i:03d}.txt").write_text(story(i), encoding="utf-8")
    return folder


def run_cli(
    folder: Path, out: Path, base_url: str, *flags: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": KEY}
    command = [sys.executable, "-m", "pipeline", "run", str(folder), "--out", str(out)]
    command += ["--model", MODEL, "-q", "--no-reconcile", *flags]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def store_rows(out: Path, sql: str) -> list[tuple[Any, ...]]:
    path = out / "triangulate.sqlite"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def failure_reasons(out: Path) -> list[str]:
    return [row[0] for row in store_rows(out, "SELECT reason FROM failures")]


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------- before the batch


@pytest.mark.slow  # a whole run in a subprocess; .ci/run runs the slow tests
def test_40_articles_against_a_closed_port_stop_within_60_s_naming_the_refused_connection(
    tmp_path: Path,
) -> None:
    port = closed_port()
    folder, out = write_articles(tmp_path / "in", 40), tmp_path / "out"
    started = time.monotonic()
    try:
        done = run_cli(folder, out, f"http://127.0.0.1:{port}/v1", timeout=60)  # default settings
    except subprocess.TimeoutExpired:
        pytest.fail("40 articles against a closed port were still running after 60 s")
    assert time.monotonic() - started < 60
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(
        f"error: cannot reach the model endpoint at http://127.0.0.1:{port}/v1: connection refused"
    )
    assert "no article was marked failed" in line
    # Nothing was marked failed: no failure rows, no article read in.
    assert failure_reasons(out) == []
    assert store_rows(out, "SELECT COUNT(*) FROM articles") in ([], [(0,)])


class NotFoundEverywhere(BaseHTTPRequestHandler):
    """A loopback server without the OpenAI routes: 404 for every GET and POST, paths noted."""

    paths: ClassVar[list[str]] = []

    def _not_found(self) -> None:
        self.paths.append(f"{self.command} {self.path}")
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        body = b'{"error": {"message": "not found", "type": "not_found"}}'
        self.send_response(404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _not_found

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


@pytest.mark.slow  # seconds of real waiting; .ci/run runs the slow tests
def test_a_server_that_answers_models_with_404_is_not_taken_for_down(tmp_path: Path) -> None:
    # Only a failure to connect means "down": a 404 is an answer. The batch starts, and its first
    # chat request (also a 404) is what stops it, as for any unknown model or wrong path.
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFoundEverywhere)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        done = run_cli(write_articles(tmp_path / "in", 2), tmp_path / "out", url)
    finally:
        server.shutdown()
        server.server_close()
    assert "GET /v1/models" in NotFoundEverywhere.paths
    assert "POST /v1/chat/completions" in NotFoundEverywhere.paths
    assert "cannot reach the model endpoint" not in done.stderr
    assert "stopped early: ExtractorConfigError: NotFoundError" in done.stderr
    assert done.returncode == 2 and "Traceback" not in done.stderr


# ---------------------------------------------------------------- the circuit breaker


@pytest.mark.slow  # seconds of real waiting; .ci/run runs the slow tests
def test_articles_in_a_row_that_cannot_connect_stop_the_run_and_the_rest_stay_pending(tmp_path: Path) -> None:
    # GET /models answers, so the batch starts; then every chat request's connection is dropped.
    folder, out = write_articles(tmp_path / "in", 40), tmp_path / "out"
    with FaultServer(FaultMix(drop=1.0)) as server:
        done = run_cli(folder, out, server.base_url, "--max-transport-retries", "0")  # breaker: default 5
        asked = {log.sentences for log in server.requests}
    assert done.returncode == 2
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(
        "error: stopped early: 5 articles in a row could not connect to the model endpoint "
        f"at {server.base_url}"
    )
    assert "Server disconnected" in line  # the cause, not just "Connection error."
    reasons = failure_reasons(out)
    assert reasons == ["transport"] * len(reasons)
    assert 5 <= len(reasons) <= 5 + 3  # the fifth, plus at most the other three then in flight
    assert len(asked) <= len(reasons) + 3  # nothing new was started once it stopped
    # Every other article has no outcome: pending, or never read.
    assert store_rows(out, "SELECT COUNT(*) FROM articles WHERE status = 'failure'") == [(len(reasons),)]
    assert len(jsonl(out / "failures.jsonl")) == len(reasons)
    assert store_rows(out, "SELECT status FROM runs") == [("stopped",)]


@pytest.mark.slow  # seconds of real waiting; .ci/run runs the slow tests
def test_stopping_cancels_the_requests_in_flight(tmp_path: Path) -> None:
    # Every connection is dropped, half of them only after 30 s: once five quick drops in a row
    # stop the run, the slow ones still waiting are cancelled instead of waited for.
    folder, out = write_articles(tmp_path / "in", 40), tmp_path / "out"
    mix = FaultMix(drop=1.0, slow=0.5, slow_s=30.0, seed=2)
    with FaultServer(mix) as server:
        started = time.monotonic()
        try:
            done = run_cli(
                folder, out, server.base_url, "--max-transport-retries", "0", "--concurrency", "8", timeout=60
            )
        except subprocess.TimeoutExpired:
            pytest.fail("the run waited for the slow requests instead of cancelling them")
        elapsed = time.monotonic() - started
        asked = len({log.sentences for log in server.requests})
    assert done.returncode == 2
    assert elapsed < 25
    failed = len(failure_reasons(out))
    assert failed < asked  # articles that were in flight were cancelled: no outcome, no failure row
    in_flight_left = store_rows(out, "SELECT COUNT(*) FROM articles WHERE status = 'pending'")[0][0]
    assert in_flight_left >= asked - failed


@pytest.mark.slow
def test_the_breaker_counts_only_connection_failures_and_0_turns_it_off(tmp_path: Path) -> None:
    folder = write_articles(tmp_path / "in", 12)
    # 500s until the retries run out: the server answers, so this is no reason to stop.
    with FaultServer(FaultMix(server_error=1.0)) as server:
        errors = run_cli(folder, tmp_path / "errors", server.base_url, "--max-transport-retries", "0")
    assert errors.returncode == 2  # no records
    assert "stopped early" not in errors.stderr
    assert failure_reasons(tmp_path / "errors") == ["transport"] * 12

    with FaultServer(FaultMix(drop=1.0)) as server:
        never = run_cli(
            folder,
            tmp_path / "never",
            server.base_url,
            "--max-transport-retries",
            "0",
            "--stop-after-connection-failures",
            "0",
        )
        soon = run_cli(
            folder,
            tmp_path / "soon",
            server.base_url,
            "--max-transport-retries",
            "0",
            "--concurrency",
            "1",
            "--stop-after-connection-failures",
            "2",
        )
    assert "stopped early" not in never.stderr
    assert failure_reasons(tmp_path / "never") == ["transport"] * 12
    assert "stopped early: 2 articles in a row" in soon.stderr
    assert failure_reasons(tmp_path / "soon") == ["transport"] * 2


# ---------------------------------------------------------------- once the endpoint is back


@pytest.mark.slow
def test_after_a_run_against_a_closed_port_the_same_command_extracts_everything_once_a_server_listens(
    tmp_path: Path,
) -> None:
    port = closed_port()
    folder, out = write_articles(tmp_path / "in", 8), tmp_path / "out"
    url = f"http://127.0.0.1:{port}/v1"
    first = run_cli(folder, out, url, "--max-transport-retries", "0")
    assert first.returncode == 2

    with FaultServer(port=port) as server:
        second = run_cli(folder, out, url, "--max-transport-retries", "0")
        requested = len(server.requests)
    assert second.returncode == 0, second.stderr
    assert len(jsonl(out / "records.jsonl")) == 8
    assert jsonl(out / "failures.jsonl") == []
    assert requested == 8


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mix", "reason"),
    [(FaultMix(drop=1.0), "transport"), (FaultMix(html_page=1.0), "endpoint")],
    ids=["dropped-connections", "html-page"],
)
def test_articles_that_failed_because_of_the_endpoint_are_asked_again_by_a_plain_rerun(
    tmp_path: Path, mix: FaultMix, reason: str
) -> None:
    folder, out = write_articles(tmp_path / "in", 8), tmp_path / "out"
    with FaultServer(mix) as server:
        first = run_cli(folder, out, server.base_url, "--max-transport-retries", "0")
        failed_first = failure_reasons(out)
        assert first.returncode == 2
        assert failed_first and set(failed_first) == {reason}

        server.mix = FaultMix()
        server.reset()
        second = run_cli(folder, out, server.base_url, "--max-transport-retries", "0")  # no --refresh
        requested = len(server.requests)
    assert second.returncode == 0, second.stderr
    assert len(jsonl(out / "records.jsonl")) == 8
    assert failure_reasons(out) == []
    assert requested == 8  # the failed ones and the ones left pending; nothing twice
