"""Acceptance test for "hardening the batch" (inputs): awkward folder entries never crash, hang or vanish.

A folder holds good articles next to a file name that is not UTF-8, a symlinked
subfolder, a subfolder nobody may read, a FIFO named ``x.txt`` and a PDF. The
real command line runs against the loopback fault server; every entry must end
as a record or as one failure row with its reason.

The CLI runs in a child process with a timeout, so an input that blocks (the
FIFO) fails the test instead of hanging it. File permissions do not stop root
(it holds CAP_DAC_OVERRIDE), so when the tests run as root the child is started
without the two capabilities that bypass them: then a folder with mode 000 is
unreadable to it as to anyone else. Where that is not possible, the tests that
need it are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_server import FaultServer

from pipeline.cli.main import main

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL = "fault-stub"
CHILD_TIMEOUT_S = 60

# Run argv[1:] without CAP_DAC_OVERRIDE (1) and CAP_DAC_READ_SEARCH (2): dropped from the
# bounding set, they are gone from the capabilities root gets at exec.
_DROP_PERMISSION_BYPASS = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for capability in (1, 2):
    if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
        sys.exit(f"cannot drop capability {capability}: errno {ctypes.get_errno()}")
os.execv(sys.argv[1], sys.argv[1:])
"""

# Print one JSON line per item iter_sources yields for the paths in argv.
_READ_SOURCES = """
import json, sys
from pathlib import Path
from pipeline.ingest.sources import iter_sources
from schemas import FailureRow
for item in iter_sources([Path(arg) for arg in sys.argv[1:]]):
    if isinstance(item, FailureRow):
        print(json.dumps([item.source_path, item.reason, item.detail]))
    else:
        print(json.dumps([item.source_path, "article", item.text]))
"""


def python_where_permissions_apply(*args: str) -> list[str]:
    """A command line running Python with ``args`` for which file permissions are enforced."""
    command = [sys.executable, *args]
    if os.geteuid() == 0:
        return [sys.executable, "-c", _DROP_PERMISSION_BYPASS, *command]
    return command


def run_child(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    child_env = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        python_where_permissions_apply(*args),
        cwd=cwd,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )


@pytest.fixture
def locked_folders() -> Iterator[list[Path]]:
    """Folders a test makes unreadable; given back their permissions afterwards so they can be removed."""
    locked: list[Path] = []
    yield locked
    for folder in locked:
        folder.chmod(0o755)


def lock(folder: Path, locked_folders: list[Path]) -> None:
    folder.chmod(0)
    locked_folders.append(folder)


@pytest.fixture
def permissions_apply(tmp_path: Path, locked_folders: list[Path]) -> None:
    """Skip unless a child started by ``run_child`` is really refused a folder with mode 000."""
    probe = tmp_path / "probe"
    probe.mkdir()
    lock(probe, locked_folders)
    try:
        result = run_child(["-c", "import os; os.listdir('probe')"], cwd=tmp_path)
    except OSError as error:
        pytest.skip(f"cannot start a child process that file permissions apply to: {error}")
    if result.returncode == 0:
        pytest.skip("file permissions are not enforced for this user here, so nothing is unreadable")
    if "PermissionError" not in result.stderr:
        pytest.skip(f"cannot start a child process that file permissions apply to: {result.stderr[-300:]}")


def story(number: int) -> str:
    return (
        f"Story {number:03d} from the county desk. A deputy shot a man during a traffic stop in Mesa "
        f"on Tuesday, the sheriff's office said. The man, {20 + number}, was taken to a hospital."
    )


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_folder_and_a_file_nobody_may_read_are_unreadable_rows(
    tmp_path: Path, permissions_apply: None, locked_folders: list[Path]
) -> None:
    inbox = tmp_path / "in"
    (inbox / "locked").mkdir(parents=True)
    (inbox / "locked" / "hidden-story.txt").write_text(story(1))
    (inbox / "ok.txt").write_text(story(2))
    (inbox / "secret.txt").write_text(story(3))
    (inbox / "secret.txt").chmod(0)
    lock(inbox / "locked", locked_folders)
    result = run_child(["-c", _READ_SOURCES, "in"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(path, reason) for path, reason, _ in rows] == [
        ("in/ok.txt", "article"),
        ("in/secret.txt", "unreadable"),
        ("in/locked", "unreadable"),
    ]
    assert "Permission denied" in rows[1][2]
    assert "cannot list" in rows[2][2] and "Permission denied" in rows[2][2]


@pytest.mark.slow  # a whole run in a subprocess; .ci/run runs the slow tests
def test_a_folder_of_awkward_entries_runs_to_the_end_and_accounts_for_every_entry(
    tmp_path: Path, permissions_apply: None, locked_folders: list[Path]
) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "01-good.md").write_text(f"---\noutlet: Mesa Courier\n---\n{story(1)}\n")
    (inbox / "02-good.txt").write_text(story(2))
    descriptor = os.open(os.fsencode(inbox) + b"/03-caf\xe9.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(descriptor, story(3).encode())
    os.close(descriptor)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "04-linked.md").write_text(story(4))
    (inbox / "linked").symlink_to(Path("..") / "elsewhere", target_is_directory=True)
    (inbox / "locked").mkdir()
    (inbox / "locked" / "05-locked.txt").write_text(story(5))
    lock(inbox / "locked", locked_folders)
    os.mkfifo(inbox / "x.txt")
    (inbox / "story.pdf").write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    command = ["-m", "pipeline", "run", "in", "--out", "out", "--model", MODEL, "-q", "--no-reconcile"]

    with FaultServer() as server:
        env = {"OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test-inputs-key-00000"}
        first = run_child(command, cwd=tmp_path, env=env)
        again = run_child(command, cwd=tmp_path, env=env)
        requests = len(server.requests)

    for result in (first, again):
        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode == 1, result.stderr  # 1: some records, some failures
    records = jsonl(tmp_path / "out" / "records.jsonl")
    assert sorted(record["source_path"] for record in records) == [
        "in/01-good.md",
        "in/02-good.txt",
        "in/03-caf\\xe9.txt",
        "in/linked/04-linked.md",
    ]
    failures = jsonl(tmp_path / "out" / "failures.jsonl")
    assert sorted((row["source_path"], row["reason"]) for row in failures) == [
        ("in/locked", "unreadable"),
        ("in/story.pdf", "unsupported-type"),
        ("in/x.txt", "not-a-file"),
    ]
    assert requests == 4  # the second run found every article in the cache


def test_run_refuses_an_article_over_max_article_bytes_with_a_row_naming_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "short.txt").write_text(story(1))
    (inbox / "long.txt").write_text(" ".join(story(n) for n in range(2, 30)))
    out = tmp_path / "out"
    with FaultServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-inputs-key-00000")
        argv = ["run", str(inbox), "--out", str(out), "--model", MODEL, "-q", "--no-reconcile"]
        code = main([*argv, "--max-article-bytes", "1000"])
        requests = len(server.requests)
    assert code == 1
    assert requests == 1
    [row] = jsonl(out / "failures.jsonl")
    assert (row["source_path"], row["reason"]) == (str(inbox / "long.txt"), "too-large")
    assert "--max-article-bytes" in row["detail"]


def test_max_article_bytes_defaults_to_2_mib_and_must_be_at_least_one_byte(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.batch import runner

    limits: list[int] = []

    def run(options: Any) -> int:
        limits.append(options.max_article_bytes)
        return 0

    monkeypatch.setattr(runner, "run", run)
    assert main(["run", "in", "--out", "out"]) == 0
    assert main(["run", "in", "--out", "out", "--max-article-bytes", "5000"]) == 0
    assert limits == [2 * 1024 * 1024, 5000]
    assert main(["run", "in", "--out", "out", "--max-article-bytes", "0"]) == 2
    assert limits == [2 * 1024 * 1024, 5000]
    assert "'--max-article-bytes': must be a whole number of bytes, at least 1" in capsys.readouterr().err
