"""The Ray Data engine for reconcile (``pipeline.reconcile.ray_engine``) writes what the single-machine
path writes, byte for byte: the same incidents, ids, verdicts and conflicts.

All slow (a Ray cluster starts, ~10 s on two cores): ``.ci/run`` runs them with ``pytest -m slow``.
One local cluster of two CPUs serves the whole module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli.main import main as cli_main
from pipeline.reconcile.folder import reconcile_into
from pipeline.reconcile.merge import reconcile_to_dir
from schemas.record import IncidentRecord

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("incidents.jsonl", "conflicts.jsonl")

pytestmark = [
    pytest.mark.slow,
    # Ray Data's own context warns about its deprecated settings as it copies itself.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"),
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None,
        reason="ray is not installed: pip install -e '.[ray]' for the Ray engine's tests",
    ),
]

if importlib.util.find_spec("ray") is not None:
    from pipeline.reconcile.ray_engine import CONFLICTS_PARQUET, INCIDENTS_PARQUET, WORK_PREFIX, RayEngine


def _bench() -> Any:
    """The record generator the reconcile benchmark times (``benchmarks/reconcile_bench.py``)."""
    spec = importlib.util.spec_from_file_location(
        "reconcile_bench", REPO / "benchmarks" / "reconcile_bench.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _records(count: int, seed: int) -> Iterator[IncidentRecord]:
    records: Iterator[IncidentRecord] = _bench().iter_synthetic_records(count, seed=seed)
    return records


def _files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in OUTPUTS}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def engine() -> Iterator[RayEngine]:
    with RayEngine(num_cpus=2) as started:
        yield started


@pytest.fixture(scope="module")
def ten_thousand(engine: RayEngine, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """10k synthetic records reconciled by both engines, each reading a generator (so neither
    holds the input); the wall times go to the log (``pytest -s``) for docs/scale.md."""
    root = tmp_path_factory.mktemp("ten-thousand")
    began = time.monotonic()
    reconcile_into(_records(10_000, seed=7), root / "local")
    local = time.monotonic() - began
    began = time.monotonic()
    reconcile_into(_records(10_000, seed=7), root / "ray", engine=engine.writing_to(root / "ray"))
    on_ray = time.monotonic() - began
    print(
        f"\n10k records: local {local:.1f} s, ray {on_ray:.1f} s (cluster already started)", file=sys.stderr
    )
    return root / "local", root / "ray"


def test_ten_thousand_records_give_byte_identical_outputs(ten_thousand: tuple[Path, Path]) -> None:
    local, on_ray = ten_thousand
    assert _files(on_ray) == _files(local)
    assert len(_lines(local / "incidents.jsonl")) > 1000  # many incidents, not a degenerate run


def test_the_work_folder_is_removed(ten_thousand: tuple[Path, Path]) -> None:
    _, on_ray = ten_thousand
    assert not [path for path in on_ray.iterdir() if path.name.startswith(WORK_PREFIX) or ".tmp" in path.name]


def test_the_parquet_files_hold_the_jsonl_rows(ten_thousand: tuple[Path, Path]) -> None:
    import pyarrow.parquet as pq

    _, on_ray = ten_thousand
    incidents = pq.read_table(on_ray / INCIDENTS_PARQUET).to_pylist()
    lines = (on_ray / "incidents.jsonl").read_text(encoding="utf-8").splitlines()
    assert [row["json"] for row in incidents] == lines
    assert [row["incident_id"] for row in incidents] == [json.loads(line)["id"] for line in lines]
    conflicts = pq.read_table(on_ray / CONFLICTS_PARQUET).to_pylist()
    lines = (on_ray / "conflicts.jsonl").read_text(encoding="utf-8").splitlines()
    assert [row["json"] for row in conflicts] == lines
    assert [(row["incident_id"], row["path"], row["verdict"]) for row in conflicts] == [
        (c["incident_id"], c["path"], c["verdict"]) for c in map(json.loads, lines)
    ]


def test_no_records_give_empty_files_and_leave_no_work_folder(engine: RayEngine, tmp_path: Path) -> None:
    counts = reconcile_to_dir(iter([]), tmp_path, engine=engine.writing_to(tmp_path))
    assert counts.incidents == 0
    assert _files(tmp_path) == {name: b"" for name in OUTPUTS}
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [*OUTPUTS, INCIDENTS_PARQUET, CONFLICTS_PARQUET]
    )


def test_reviewers_decisions_and_stable_ids_are_the_same_on_ray(
    engine: RayEngine, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    records = list(_records(400, seed=5))
    first, later = tmp_path / "first.jsonl", tmp_path / "later.jsonl"
    first.write_text("".join(r.model_dump_json() + "\n" for r in records[:320]), encoding="utf-8")
    later.write_text("".join(r.model_dump_json() + "\n" for r in records[320:]), encoding="utf-8")
    folders = {"local": tmp_path / "local", "ray": tmp_path / "ray"}

    def reconcile(name: str, path: Path) -> list[str]:
        """What `triangulate reconcile` printed: records, incidents, ids kept, decisions applied."""
        capsys.readouterr()
        flags = ["--engine", "ray"] if name == "ray" else []
        assert cli_main(["reconcile", str(path), "--out", str(folders[name]), *flags]) == 0
        return capsys.readouterr().out.splitlines()[:-1]  # not the last, "wrote ..."

    assert reconcile("ray", first) == reconcile("local", first)
    assert _files(folders["ray"]) == _files(folders["local"])

    # Decisions from the desk (`triangulate decide`, which reconciles the folder again on this
    # machine): a field settled by hand, and two incidents merged.
    incidents = _lines(folders["local"] / "incidents.jsonl")
    flagged = next(i for i in incidents if any(f["verdict"] == "contradiction" for f in i["fields"]))
    path = next(f["path"] for f in flagged["fields"] if f["verdict"] == "contradiction")
    merged, into = [i["id"] for i in incidents if i["id"] != flagged["id"]][:2]
    # Each folder's decisions made at the same second: the time is written with them.
    decided_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    monkeypatch.setattr("pipeline.cli.commands.now", lambda: decided_at)
    for folder in folders.values():
        settle = ["--incident", flagged["id"], "--field", path, "--value", "settled", "--by", "t"]
        assert cli_main(["decide", str(folder), *settle]) == 0
        assert cli_main(["decide", str(folder), "--incident", merged, "--merge-with", into, "--by", "t"]) == 0
    before = {i["id"] for i in _lines(folders["local"] / "incidents.jsonl")}

    # More records: both engines keep the ids, apply the decisions, and write the same bytes.
    said = reconcile("ray", later)
    assert said == reconcile("local", later)
    assert "1 decision(s) applied" in said[-1] and "no longer apply" not in said[-1], said
    assert _files(folders["ray"]) == _files(folders["local"])
    after = _lines(folders["ray"] / "incidents.jsonl")
    assert before <= {i["id"] for i in after} | {alias for i in after for alias in i.get("aliases", [])}
    settled = next(i for i in after if i["id"] == flagged["id"])
    assert next(f for f in settled["fields"] if f["path"] == path)["decision"] is not None


def test_the_command_line_reconciles_on_ray(engine: RayEngine, tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text("".join(r.model_dump_json() + "\n" for r in _records(300, seed=9)), encoding="utf-8")
    # The module's cluster is already up: the command uses it, and leaves it running.
    assert cli_main(["reconcile", str(records), "--out", str(tmp_path / "ray"), "--engine", "ray"]) == 0
    assert cli_main(["reconcile", str(records), "--out", str(tmp_path / "local")]) == 0
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")
    assert (tmp_path / "ray" / INCIDENTS_PARQUET).is_file()
    assert not (tmp_path / "local" / INCIDENTS_PARQUET).exists()
    import ray

    assert ray.is_initialized()


def test_the_command_joins_a_running_cluster_by_its_address_and_leaves_it_up(
    engine: RayEngine, tmp_path: Path
) -> None:
    import ray

    records = tmp_path / "records.jsonl"
    records.write_text("".join(r.model_dump_json() + "\n" for r in _records(200, seed=4)), encoding="utf-8")
    # Another process, as `ray start --head` and `--ray-address` would be used: it joins the
    # module's cluster (TRIANGULATE_RAY_ADDRESS), reconciles on it and disconnects.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "reconcile",
            str(records),
            "--out",
            str(tmp_path / "ray"),
            "--engine",
            "ray",
        ],
        cwd=REPO,
        env={**os.environ, "TRIANGULATE_RAY_ADDRESS": ray.get_runtime_context().gcs_address},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ray reconcile: pass 3/3" in done.stderr
    assert cli_main(["reconcile", str(records), "--out", str(tmp_path / "local")]) == 0
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")
    assert ray.cluster_resources().get("CPU") == 2  # type: ignore[no-untyped-call]  # still up


def _python(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_single_machine_path_never_imports_ray(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text("".join(r.model_dump_json() + "\n" for r in _records(60, seed=3)), encoding="utf-8")
    done = _python(
        "import sys\n"
        "import triangulate\n"
        "from pipeline.cli.main import main\n"
        "from pipeline.reconcile.merge import load_records\n"
        f"records, _ = load_records(__import__('pathlib').Path({str(records)!r}))\n"
        f"triangulate.reconcile(records, out={str(tmp_path / 'api')!r})\n"
        f"assert main(['reconcile', {str(records)!r}, '--out', {str(tmp_path / 'cli')!r}]) == 0\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


def test_without_ray_the_engine_flag_says_which_extra_to_install(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text("".join(r.model_dump_json() + "\n" for r in _records(5, seed=3)), encoding="utf-8")
    done = _python(
        "import sys\n"
        "sys.modules['ray'] = None  # as if not installed: importing it raises ImportError\n"
        "from pipeline.cli.main import main\n"
        f"argv = ['reconcile', {str(records)!r}, '--out', {str(tmp_path / 'out')!r}, '--engine', 'ray']\n"
        "sys.exit(main(argv))\n"
    )
    assert done.returncode == 2, done.stderr
    assert "error: --engine ray needs the ray extra: pip install 'triangulate[ray]'" in done.stderr
    assert not (tmp_path / "out" / "incidents.jsonl").exists()


def test_an_address_with_no_cluster_is_an_error_at_once(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text("".join(r.model_dump_json() + "\n" for r in _records(5, seed=3)), encoding="utf-8")
    command = ["reconcile", str(records), "--out", str(tmp_path / "out"), "--engine", "ray"]
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *command, "--ray-address", "127.0.0.1:1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,  # ray.init alone would retry for minutes
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "error: cannot join the Ray cluster at 127.0.0.1:1" in done.stderr
    assert not (tmp_path / "out" / "incidents.jsonl").exists()
