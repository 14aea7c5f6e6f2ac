"""kill -9 in the middle of a run, or a disk that fills up, then the same command: nothing finished
is asked for again.

The CLI runs in a subprocess against the loopback fault server
(tests/fault_server.py) with slow answers, so the kill lands while requests
are in flight.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_server import FaultMix, FaultServer

from pipeline.evidence.locate import number_sentences, split_sentences
from schemas.article import content_hash

MODEL = "fault-stub"
ARTICLES = 16


def story(number: int) -> str:
    return (
        f"Story {number:03d} from the county desk. Officers shot a man outside a store in Chandler "
        f"on Sunday, police said. He was {30 + number} years old."
    )


def committed_extractions(db_path: Path) -> set[str]:
    if not db_path.exists():
        return set()
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as db:
            return {row[0] for row in db.execute("SELECT article_id FROM extractions")}
    except sqlite3.OperationalError:  # the writer has not created the tables yet
        return set()


def start_run(folder: Path, out: Path, server: FaultServer) -> subprocess.Popen[str]:
    env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test-resume-0000000"}
    command = [sys.executable, "-m", "pipeline", "run", str(folder), "--out", str(out)]
    command += ["--model", MODEL, "--concurrency", "4", "-q", "--no-reconcile"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when(proc: subprocess.Popen[str], db_path: Path, at_least: int) -> set[str]:
    deadline = time.monotonic() + 120
    while len(committed_extractions(db_path)) < at_least:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the run made no progress")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return committed_extractions(db_path)


@pytest.mark.slow  # kills a run in a subprocess; .ci/run runs the slow tests
@pytest.mark.parametrize("kill_after", [2, ARTICLES - 3])
def test_killed_run_resumes_without_re_requesting_finished_articles(tmp_path: Path, kill_after: int) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for i in range(ARTICLES):
        (folder / f"{i:03d}.txt").write_text(story(i), encoding="utf-8")
    every_id = {content_hash(story(i)) for i in range(ARTICLES)}

    with FaultServer(FaultMix(latency_s=0.25)) as server:
        finished = kill_when(start_run(folder, out, server), out / "triangulate.sqlite", kill_after)
        assert kill_after <= len(finished) < ARTICLES, "the kill did not land mid-run"

        server.reset()
        resumed = start_run(folder, out, server)
        stdout, stderr = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, stderr

        # The server tells requests apart by the numbered sentences they carry.
        by_sentences = {
            number_sentences(split_sentences(story(i))): content_hash(story(i)) for i in range(ARTICLES)
        }
        asked_again = [by_sentences[log.sentences] for log in server.requests]
    assert not set(asked_again) & finished, "a finished article was requested again"
    assert set(asked_again) == every_id - finished
    assert len(asked_again) == len(set(asked_again))

    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    record_ids = [record["article_id"] for record in records]
    assert len(record_ids) == len(set(record_ids)) == ARTICLES
    assert set(record_ids) == every_id
    assert (out / "failures.jsonl").read_text() == ""
    with sqlite3.connect(out / "triangulate.sqlite") as db:
        statuses = [row[0] for row in db.execute("SELECT status FROM runs ORDER BY started")]
        extraction_rows = db.execute("SELECT COUNT(*) FROM extractions").fetchone()[0]
    assert statuses == ["killed", "finished"]
    assert extraction_rows == ARTICLES


# Every file the run writes may grow to this size: a full disk as the run store sees it (its WAL
# file stops growing and SQLite reports an I/O error). A real limit of the operating system, so it
# binds root too, where a read-only folder would not.
FILE_SIZE_LIMIT = 1_500_000


def limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_stops_with_exit_3_and_one_line_and_the_same_command_resumes(
    tmp_path: Path,
) -> None:
    count = 60
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for i in range(count):
        (folder / f"{i:03d}.txt").write_text(story(i), encoding="utf-8")
    every_id = {content_hash(story(i)) for i in range(count)}
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-resume-0000000"}
    command = [sys.executable, "-m", "pipeline", "run", str(folder), "--out", str(out)]
    command += ["--model", MODEL, "--concurrency", "4", "-q", "--no-reconcile"]

    with FaultServer(FaultMix(latency_s=0.02)) as server:
        env["OPENAI_BASE_URL"] = server.base_url
        full = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=300, preexec_fn=limit_file_size
        )
        assert full.returncode == 3, full.stderr
        header, line = full.stderr.splitlines()  # one line says what happened, nothing else
        assert header.startswith("triangulate run: model fault-stub")
        assert line.startswith(f"error: cannot write the run store at {out / 'triangulate.sqlite'}: ")
        saved = committed_extractions(out / "triangulate.sqlite")
        assert 0 < len(saved) < count
        assert f"the run stopped: {len(saved)} article outcome(s) of this run were saved" in line
        with sqlite3.connect(out / "triangulate.sqlite") as db:
            assert db.execute("SELECT COUNT(*) FROM failures").fetchone()[0] == 0  # no article blamed
            assert [row[0] for row in db.execute("SELECT status FROM runs")] == ["store-failed"]

        server.reset()
        resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr
        by_sentences = {
            number_sentences(split_sentences(story(i))): content_hash(story(i)) for i in range(count)
        }
        asked_again = [by_sentences[log.sentences] for log in server.requests]
    assert not set(asked_again) & saved, "an article saved before the disk filled was requested again"
    assert set(asked_again) == every_id - saved
    record_ids = [json.loads(line)["article_id"] for line in (out / "records.jsonl").read_text().splitlines()]
    assert sorted(record_ids) == sorted(every_id)
