"""The API key never lands in the store, the outputs, the logs or the cassettes.

The CLI runs in a subprocess against the loopback fault server
(tests/fault_server.py), which requires the key (so it is really sent) and,
like a misconfigured proxy, echoes the Authorization header in its 500
error bodies (so the key really reaches error messages).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from fault_server import FaultMix, FaultServer

REPO = Path(__file__).resolve().parent.parent
MODEL = "fault-stub"


def files_containing(root: Path, needle: bytes) -> list[Path]:
    if not root.exists():
        return []
    return [path for path in root.rglob("*") if path.is_file() and needle in path.read_bytes()]


@pytest.mark.slow  # a whole run in a subprocess; .ci/run runs the slow tests
def test_api_key_is_in_no_store_output_log_or_cassette(tmp_path: Path) -> None:
    key = f"sk-test-{secrets.token_hex(16)}"
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for i in range(8):
        (folder / f"{i:02d}.txt").write_text(
            f"Story {i}. A trooper shot a driver on Interstate 10 near Casa Grande on Saturday. "
            f"The driver, {25 + i}, survived.",
            encoding="utf-8",
        )
    mix = FaultMix(
        required_api_key=key,
        echo_authorization_in_errors=True,
        server_error=0.3,
        rate_limit=0.2,
        truncated_content=0.1,
        seed=5,
    )
    env = {**os.environ, "OPENAI_BASE_URL": "", "OPENAI_API_KEY": key}
    logs: list[str] = []
    with FaultServer(mix) as server:
        env["OPENAI_BASE_URL"] = server.base_url
        for command in (
            ["run", str(folder), "--out", str(out), "--model", MODEL, "--concurrency", "4"],
            ["retry-failed", str(out), "--model", MODEL],
        ):
            done = subprocess.run(
                [sys.executable, "-m", "pipeline", *command],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            logs += [done.stdout, done.stderr]
        outcomes = server.outcome_counts()

    # The test only means something if the key was sent and echoed back in errors.
    assert all(log.had_authorization for log in server.requests)
    assert outcomes.get("server_error", 0) > 0 and outcomes.get("ok", 0) > 0
    assert (out / "records.jsonl").read_text().strip()

    needle = key.encode()
    secret_part = key.removeprefix("sk-test-").encode()
    assert files_containing(out, needle) == []
    assert files_containing(out, secret_part) == []
    assert files_containing(REPO / "cassettes", needle) == []
    for log in logs:
        assert key not in log and secret_part.decode() not in log
