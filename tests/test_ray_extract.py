"""``triangulate run --engine ray``: extraction on a Ray Data actor pool, compared with a live run.

The model is a loopback stub (``tests/fault_server.py``, in this process on 127.0.0.1), not a
model: it answers every chat completion with a schema-valid reading built from the request, so a
record depends only on the article and the extractor. One local Ray cluster (two CPUs) serves
the whole module; its workers are other processes that reach the stub over loopback.

Every test is slow (Ray starts in about ten seconds); ``.ci/run`` runs them (``pytest -m slow``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_server import FaultMix, FaultServer

from pipeline.batch.runner import EXIT_NOTHING_DONE, EXIT_PARTIAL, run
from pipeline.store.runstore import RunStore
from schemas.options import RunOptions

pytestmark = pytest.mark.slow

MODEL = "fault-stub"
API_KEY = "sk-ray-engine-test-Zq7XwV93kLpT0042"
"""A distinctive fake key: it must reach the stub's Authorization header and nowhere else."""
FAILING_MARKER = "Quarry Lane"
"""The one article whose every reply is cut off (``truncated_content``): a validation failure."""
ARTICLES = 20
LATENCY_S = 0.05

PLACES = ("Mesa", "Tempe", "Gilbert", "Chandler", "Glendale")
WEAPONS = ("a knife", "a pellet gun", "a tire iron", "nothing", "a box cutter")


def invented_story(number: int) -> str:
    """An invented news item (no real event): numbered so that every text, hence id, differs."""
    place = PLACES[number % len(PLACES)]
    street = FAILING_MARKER if number == 7 else f"{number + 3}00 block of Elm Street"
    return (
        f"Officers in {place} shot a man near the {street} late on Tuesday, police said. "
        f"The man, {24 + number}, was armed with {WEAPONS[number % len(WEAPONS)]}, according to a "
        f"department spokesperson. He was taken to a hospital in serious condition. "
        f"No officers were hurt, and the case number is {1000 + number}."
    )


class _MarkedStub(FaultServer):
    """The fault server, answering every request for the marked article with cut-off JSON
    (``truncated_content``: ``finish_reason: length``), which fails validation after the re-asks."""

    _body = b""

    async def _respond(
        self, method: str, target: str, headers: dict[str, str], raw_body: bytes, writer: Any
    ) -> bool:
        # _respond calls _choose without awaiting anything before it, on the server's one loop.
        self._body = raw_body
        return await super()._respond(method, target, headers, raw_body, writer)

    def _choose(self, article_key: str) -> tuple[int, str, bool]:
        nth, outcome, slow = super()._choose(article_key)
        if FAILING_MARKER.encode() in self._body:
            outcome = "truncated_content"
        return nth, outcome, slow


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    try:
        import ray
    except ImportError:
        pytest.skip("ray is not installed (pip install 'triangulate[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def stub() -> Iterator[FaultServer]:
    with _MarkedStub(FaultMix(latency_s=LATENCY_S, required_api_key=API_KEY)) as server:
        yield server


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("articles")
    for number in range(ARTICLES):
        (folder / f"{number:03d}.txt").write_text(invented_story(number), encoding="utf-8")
    return folder


def _env(base_url: str) -> dict[str, str]:
    return {"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": API_KEY}


def _run(inputs: Path, out: Path, base_url: str, **options: Any) -> int:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _env(base_url).items():
            patch.setenv(name, value)
        patch.delenv("TRIANGULATE_RAY_ADDRESS", raising=False)
        options.setdefault("reconcile", False)
        return run(RunOptions(out=out, paths=(inputs,), model=MODEL, **options))


TIMING_KEYS = frozenset({"latency_s", "created", "created_at", "extracted_at", "wall_s"})


def _untimed(value: Any) -> Any:
    """``value`` without the fields that say when or how long (none are expected in a record)."""
    if isinstance(value, dict):
        return {key: _untimed(item) for key, item in value.items() if key not in TIMING_KEYS}
    if isinstance(value, list):
        return [_untimed(item) for item in value]
    return value


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _rate(stderr: str) -> float:
    """articles/s from the run's summary line (``time  1.2 s wall, 16.4 articles/s, ...``)."""
    match = re.search(r"time\s+([\d.]+) s wall, ([\d.]+) articles/s", stderr)
    assert match, stderr
    return float(match[2])


@pytest.fixture(scope="module")
def runs(
    ray_cluster: None, stub: FaultServer, inputs: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The same articles through a live local run, then through ``--engine ray``."""
    root = tmp_path_factory.mktemp("runs")
    live_code = _run(inputs, root / "live", stub.base_url)
    live_requests = len(stub.requests)
    ray_code = _run(inputs, root / "ray", stub.base_url, engine="ray")
    return {
        "live": root / "live",
        "ray": root / "ray",
        "codes": (live_code, ray_code),
        "live_requests": live_requests,
        "ray_requests": len(stub.requests) - live_requests,
    }


def test_a_ray_run_gives_the_records_a_live_run_gives(runs: dict[str, Any]) -> None:
    assert runs["codes"] == (EXIT_PARTIAL, EXIT_PARTIAL)  # one article fails under both engines
    live = {row["article_id"]: _untimed(row) for row in _jsonl(runs["live"] / "records.jsonl")}
    ray = {row["article_id"]: _untimed(row) for row in _jsonl(runs["ray"] / "records.jsonl")}
    assert len(live) == ARTICLES - 1
    assert ray == live
    with RunStore(runs["live"]) as live_store, RunStore(runs["ray"]) as ray_store:
        assert [r.model_dump(mode="json") for r in ray_store.records()] == [
            r.model_dump(mode="json") for r in live_store.records()
        ]
    # The same requests too: retries and re-asks happen alike.
    assert runs["ray_requests"] == runs["live_requests"]


def test_an_article_whose_every_reply_fails_ends_as_one_failure_row_with_a_reason(
    runs: dict[str, Any],
) -> None:
    for engine in ("live", "ray"):
        (failure,) = _jsonl(runs[engine] / "failures.jsonl")
        assert failure["reason"] == "validation" and failure["detail"]
        assert failure["source_path"].endswith("007.txt")
    with RunStore(runs["ray"]) as store:
        counts = store.outcome_counts()
    assert counts == {"record": ARTICLES - 1, "failure": 1, "pending": 0, "input_failure": 0}


def test_the_parquet_directory_holds_one_row_per_record(runs: dict[str, Any]) -> None:
    import pyarrow.dataset as ds

    table = ds.dataset(runs["ray"] / "records.parquet", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == ARTICLES - 1
    ids = table["article_id"].to_pylist()
    assert len(set(ids)) == len(ids)
    assert set(table["status"].to_pylist()) == {"record"} and set(table["model"].to_pylist()) == {MODEL}
    records = {row["article_id"]: row for row in _jsonl(runs["ray"] / "records.jsonl")}
    for article_id, record_json, part in zip(
        ids, table["record_json"].to_pylist(), table["part"].to_pylist(), strict=True
    ):
        assert json.loads(record_json) == records[article_id]
        assert article_id.split(":", 1)[1].startswith(str(part))


def test_a_rerun_asks_nothing_and_adds_no_parquet_row(
    runs: dict[str, Any], stub: FaultServer, inputs: Path
) -> None:
    import pyarrow.dataset as ds

    before = len(stub.requests)
    assert _run(inputs, runs["ray"], stub.base_url, engine="ray") == EXIT_PARTIAL
    assert len(stub.requests) == before
    table = ds.dataset(runs["ray"] / "records.parquet", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == ARTICLES - 1


def test_a_ray_run_reconciles_on_ray_into_the_incidents_a_local_reconcile_writes(
    runs: dict[str, Any], stub: FaultServer, inputs: Path
) -> None:
    """Both folders again with the reconcile step on: nothing is asked (every outcome is cached);
    the Ray run reconciles with ``RayEngine`` (which also writes incidents.parquet) into the same
    incidents and conflicts as the local reconcile."""
    before = len(stub.requests)
    assert _run(inputs, runs["live"], stub.base_url, reconcile=True) == EXIT_PARTIAL
    assert _run(inputs, runs["ray"], stub.base_url, engine="ray", reconcile=True) == EXIT_PARTIAL
    assert len(stub.requests) == before
    assert (runs["ray"] / "incidents.parquet").exists()
    assert not (runs["live"] / "incidents.parquet").exists()
    for name in ("incidents.jsonl", "conflicts.jsonl"):
        assert _jsonl(runs["ray"] / name) == _jsonl(runs["live"] / name), name
    assert _jsonl(runs["ray"] / "incidents.jsonl")


def test_no_key_reaches_the_run_folder_or_stderr_and_progress_is_one_line_per_step(
    ray_cluster: None, stub: FaultServer, inputs: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A fresh run whose failing article carries its error text into the store, the failure row and
    the attempts; the key sits in the object store for the workers and nowhere else. Also prints
    both engines' articles/s (the figure in docs/scale.md)."""
    out_live, out_ray = tmp_path / "live", tmp_path / "ray"
    assert _run(inputs, out_live, stub.base_url, concurrency=4) == EXIT_PARTIAL
    live_err = capfd.readouterr().err
    assert _run(inputs, out_ray, stub.base_url, engine="ray", concurrency=4) == EXIT_PARTIAL
    err = capfd.readouterr().err
    assert API_KEY not in err and API_KEY not in live_err
    for path in out_ray.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path
    lines = [line for line in err.splitlines() if line.startswith("progress: ")]
    done = [int(line.split()[1]) for line in lines]
    assert done and done == sorted(set(done)) and done[-1] == ARTICLES
    with capfd.disabled():
        print(
            f"\n[figure] {ARTICLES} articles, stub latency {LATENCY_S} s, 4 in flight (per actor for ray):"
            f" local {_rate(live_err):.1f} articles/s, ray {_rate(err):.1f} articles/s",
            file=sys.stderr,
        )
    # Ray's own logs (driver, workers, Ray Data) never saw the key either.
    import ray

    node = ray._private.worker._global_node
    assert node is not None
    session = Path(node.get_session_dir_path())
    for path in (session / "logs").rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_a_killed_ray_run_keeps_what_it_saved_and_the_rerun_asks_only_for_the_rest(
    ray_cluster: None, inputs: Path, tmp_path: Path
) -> None:
    """``triangulate run --engine ray --ray-address ADDR`` in a subprocess that joins this module's
    cluster, against a slower stub, killed (SIGKILL) once some outcomes are saved; the same
    command then asks only for the articles without an outcome."""
    import ray

    out = tmp_path / "out"
    with _MarkedStub(FaultMix(latency_s=0.4, required_api_key=API_KEY)) as slow:
        env = {**os.environ, **_env(slow.base_url)}
        env.pop("TRIANGULATE_RAY_ADDRESS", None)
        command = [sys.executable, "-m", "pipeline", "run", str(inputs), "--out", str(out)]
        command += ["--model", MODEL, "--engine", "ray", "--concurrency", "1", "--no-reconcile"]
        command += ["--ray-address", ray.get_runtime_context().gcs_address]
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 90
        while _saved(out) < 2:
            if first.poll() is not None:
                pytest.fail(f"the run ended before it could be killed: {first.communicate()}")
            if time.monotonic() > deadline:
                first.kill()
                pytest.fail(f"nothing was saved in time: {first.communicate()}")
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.communicate()
        with RunStore(out) as store:
            saved = [
                store.article(article_id)
                for (article_id,) in store.connection.execute(
                    "SELECT id FROM articles WHERE status != 'pending'"
                )
            ]
        assert 2 <= len(saved) < ARTICLES
        asked_before_kill = len(slow.requests)
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == EXIT_PARTIAL, again.stderr
        assert API_KEY not in again.stderr
        with RunStore(out) as store:
            counts = store.outcome_counts()
        assert counts["record"] == ARTICLES - 1 and counts["failure"] == 1 and counts["pending"] == 0
        # Nothing was asked again for an article saved before the kill (each story names its own
        # case number, which its request carries).
        asked_after = [log.sentences for log in slow.requests[asked_before_kill:]]
        assert asked_after  # the rest were asked
        for article in saved:
            assert article is not None
            case = re.search(r"case number is \d+", article.text)
            assert case is not None
            assert not [sentences for sentences in asked_after if case[0] in sentences], article.source_path


def _saved(out: Path) -> int:
    db = out / "triangulate.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
            row = connection.execute("SELECT COUNT(*) FROM articles WHERE status != 'pending'").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0])


def test_an_exception_in_a_worker_becomes_that_articles_failure_row(tmp_path: Path) -> None:
    """The actor's extraction loop, driven without Ray: one article's extractor raises (its message
    carrying the key), the others fail validation as usual; each ends as one failure row, the raised
    one as ``internal`` with the key redacted."""
    from pipeline.batch.ray_extract import WorkerConfig, _Driver, _Worker
    from pipeline.batch.runner import BatchSummary, Progress
    from pipeline.extract.extractor import ExtractionSettings
    from pipeline.extract.providers import Endpoint
    from schemas import Article, ExtractionResult, FailureRow

    items = [Article.from_text(invented_story(n), source_path=f"in/{n}.txt") for n in range(3)]

    class Raising:
        endpoint = Endpoint(base_url="http://127.0.0.1:9/v1", model=MODEL, provider="x", api_key=API_KEY)

        async def extract(self, article: Article) -> ExtractionResult:
            if article.id == items[1].id:
                raise RuntimeError(f"boom with {API_KEY}")
            failure = FailureRow(article_id=article.id, reason="validation", detail="stub")
            return ExtractionResult(article_id=article.id, failure=failure)

        async def aclose(self) -> None:
            return None

    config = WorkerConfig(endpoint=Raising.endpoint, settings=ExtractionSettings(), concurrency=2)
    worker = _Worker(config, extractor=Raising())
    rows = worker.run(
        [{"article_id": a.id, "key": f"k-{a.id}", "article": a.model_dump_json()} for a in items]
    )
    worker.close()
    assert [row["article_id"] for row in rows] == [a.id for a in items]
    with RunStore(tmp_path / "out", secrets=[API_KEY]) as store:
        run_id = store.start_run("run", model=MODEL, provider="x")
        for seq, article in enumerate(items, start=1):
            store.register_article(article, run_id=run_id, seq=seq, key=None)
        summary = BatchSummary(run_id=run_id, model=MODEL, provider="x")
        driver = _Driver(store, run_id=run_id, summary=summary, progress=Progress(quiet=True), breaker=5)
        for row in rows:
            assert driver.save(row) is None
        failures = {row.article_id: row for row in store.iter_failures(run_id)}
    assert set(failures) == {a.id for a in items}
    raised = failures[items[1].id]
    assert raised.reason == "internal" and raised.last_error is not None
    assert "boom" in raised.last_error and API_KEY not in raised.last_error
    assert summary.failures == 3 and summary.reason_counts == {"validation": 2, "internal": 1}


def test_without_ray_the_command_says_how_to_get_it_and_marks_nothing(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    out = tmp_path / "out"
    assert _run(inputs, out, "http://127.0.0.1:9/v1", engine="ray") == EXIT_NOTHING_DONE
    assert capsys.readouterr().err.strip() == (
        "error: --engine ray needs the ray extra: pip install 'triangulate[ray]'"
    )
    assert not (out / "triangulate.sqlite").exists()


def test_the_embedded_model_and_batch_are_refused_with_the_ray_engine(
    inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli.main import main

    for name in ("OPENAI_BASE_URL", "TRIANGULATE_PROVIDER", "TRIANGULATE_MODEL", "TRIANGULATE_RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "out"
    assert main(["run", str(inputs), "--out", str(out), "--engine", "ray"]) == EXIT_NOTHING_DONE
    err = capsys.readouterr().err
    assert "--engine ray needs an HTTP endpoint" in err and "embedded" in err
    assert not (out / "triangulate.sqlite").exists()
    argv = ["run", str(inputs), "--out", str(out), "--model", MODEL, "--engine", "ray", "--batch"]
    assert main(argv) == EXIT_NOTHING_DONE
    assert "error: --engine ray cannot be combined with --batch" in capsys.readouterr().err
    assert RunOptions(out=out, engine="spark").problems() == ["engine must be one of local, ray"]


def test_an_outcome_the_store_cannot_take_becomes_a_bookkeeping_failure_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.batch.ray_extract import _Driver
    from pipeline.batch.runner import BatchSummary, Progress
    from schemas import Article, ExtractionResult, FailureRow

    items = [Article.from_text(invented_story(n), source_path=f"in/{n}.txt") for n in range(2)]
    with RunStore(tmp_path / "out", secrets=[API_KEY]) as store:
        run_id = store.start_run("run", model=MODEL, provider="x")
        for seq, article in enumerate(items, start=1):
            store.register_article(article, run_id=run_id, seq=seq, key=None)
        real_save = store.save_outcome

        def save_outcome(article: Article, result: ExtractionResult, **kwargs: Any) -> None:
            if article.id == items[0].id:
                raise ValueError(f"cannot encode this with {API_KEY}")
            real_save(article, result, **kwargs)

        monkeypatch.setattr(store, "save_outcome", save_outcome)
        summary = BatchSummary(run_id=run_id, model=MODEL, provider="x")
        driver = _Driver(store, run_id=run_id, summary=summary, progress=Progress(quiet=True), breaker=5)
        for article in items:
            failure = FailureRow(article_id=article.id, reason="validation", detail="stub")
            result = ExtractionResult(article_id=article.id, failure=failure)
            row = {"article_id": article.id, "key": "k", "article": article.model_dump_json()}
            assert driver.save({**row, "result": result.model_dump_json(), "stop": ""}) is None
        failures = {row.article_id: row for row in store.iter_failures(run_id)}
    assert failures[items[0].id].reason == "bookkeeping"
    assert API_KEY not in (failures[items[0].id].last_error or "")
    assert failures[items[1].id].reason == "validation"
    assert summary.articles == 2 and summary.reason_counts == {"bookkeeping": 1, "validation": 1}
