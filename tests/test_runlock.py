"""The run folder's lock (pipeline/store/runlock.py) and output sets replaced together
(pipeline/common/atomic.py).

``flock`` belongs to an open file description, so a second ``run_folder_lock``
in the same process is a second contender, exactly like another process.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli.main import main as cli_main
from pipeline.common.atomic import replaced_together
from pipeline.store.runlock import LOCK_FILENAME, RunFolderBusy, invoked_command, read_holder, run_folder_lock

REPO = Path(__file__).resolve().parent.parent
SINCE = r"since \d\d:\d\d"


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------- the lock


def test_a_second_holder_is_refused_with_the_first_holders_pid_and_command(tmp_path: Path) -> None:
    with run_folder_lock(tmp_path, command="run") as held:
        written = (tmp_path / LOCK_FILENAME).read_bytes()
        with pytest.raises(RunFolderBusy) as refused, run_folder_lock(tmp_path, command="export"):
            pytest.fail("the second holder got the lock")
        assert re.fullmatch(
            rf"{re.escape(str(tmp_path))} is in use by `triangulate run` \(pid {os.getpid()}, {SINCE}\)",
            str(refused.value),
        )
        assert (tmp_path / LOCK_FILENAME).read_bytes() == written
        holder = read_holder(tmp_path / LOCK_FILENAME)
        assert (holder.pid, holder.command, holder.since) == (os.getpid(), "run", held.since)


def test_the_lock_is_free_again_after_the_block_and_takes_the_new_holders_details(tmp_path: Path) -> None:
    with run_folder_lock(tmp_path, command="run"):
        pass
    with run_folder_lock(tmp_path, command="export"):
        assert read_holder(tmp_path / LOCK_FILENAME).command == "export"


_CHILD = """
import sys
from pathlib import Path
from pipeline.store.runlock import run_folder_lock
with run_folder_lock(Path(sys.argv[1]), command="retry-failed"):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_holder_in_another_process_is_named_and_its_death_frees_the_folder(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        with pytest.raises(RunFolderBusy) as refused, run_folder_lock(tmp_path, command="export"):
            pytest.fail("the second holder got the lock")
        assert f"`triangulate retry-failed` (pid {child.pid}, since" in str(refused.value)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        with run_folder_lock(tmp_path, command="export") as held:
            assert held.pid == os.getpid()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_wait_retries_until_the_holder_lets_go(tmp_path: Path) -> None:
    holding = threading.Event()
    released = threading.Event()

    def hold() -> None:
        with run_folder_lock(tmp_path, command="run"):
            holding.set()
            time.sleep(0.3)
            released.set()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(5)
        with run_folder_lock(tmp_path, command="export", wait=10):
            assert released.is_set()
            assert read_holder(tmp_path / LOCK_FILENAME).command == "export"
    finally:
        holder.join()


def test_wait_gives_up_after_the_given_seconds(tmp_path: Path) -> None:
    with run_folder_lock(tmp_path, command="run"):
        started = time.monotonic()
        with pytest.raises(RunFolderBusy), run_folder_lock(tmp_path, command="export", wait=0.2):
            pytest.fail("the second holder got the lock")
        assert time.monotonic() - started >= 0.2


def _lock_file_not_creatable(monkeypatch: pytest.MonkeyPatch) -> None:
    """As for a user who may read the run folder but not write it (root ignores real permissions)."""
    real_open = os.open

    def refusing_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        if Path(path).name == LOCK_FILENAME and flags & (os.O_CREAT | os.O_RDWR | os.O_WRONLY):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", refusing_open)


def test_a_folder_this_user_cannot_write_is_still_locked_through_a_read_only_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with run_folder_lock(tmp_path, command="run"):
        written = (tmp_path / LOCK_FILENAME).read_bytes()
        _lock_file_not_creatable(monkeypatch)
        with (
            pytest.raises(RunFolderBusy, match=r"`triangulate run` \(pid"),
            run_folder_lock(tmp_path, command="export"),
        ):
            pytest.fail("the second holder got the lock")
    with run_folder_lock(tmp_path, command="export"):
        assert (tmp_path / LOCK_FILENAME).read_bytes() == written  # nothing could be written


def test_a_folder_this_user_cannot_write_and_without_a_lock_file_cannot_be_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _lock_file_not_creatable(monkeypatch)
    with pytest.raises(PermissionError), run_folder_lock(tmp_path, command="export"):
        pytest.fail("locked without a lock file")


def test_a_lock_file_from_an_older_version_still_names_the_pid(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILENAME).write_text("4321\n")
    holder = read_holder(tmp_path / LOCK_FILENAME)
    assert (holder.pid, holder.command) == (4321, "")
    assert holder.describe() == "another triangulate process (pid 4321)"


def test_the_command_is_the_subcommand_this_process_was_started_with() -> None:
    assert invoked_command(["/venv/bin/triangulate", "retry-failed", "out/x"]) == "retry-failed"
    assert invoked_command(["/venv/bin/pytest", "-x", "tests/test_runlock.py"]) == ""


def test_run_refused_by_a_busy_folder_says_who_holds_it_and_leaves_the_lock_file_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    article = tmp_path / "article.txt"
    article.write_text("Police said a man was shot in Tempe on Monday.\n")
    with run_folder_lock(out, command="export"):
        written = (out / LOCK_FILENAME).read_bytes()
        assert cli_main(["run", str(article), "--out", str(out), "--quiet"]) == 2
        assert (out / LOCK_FILENAME).read_bytes() == written
    err = capsys.readouterr().err
    assert re.search(
        rf"^error: {re.escape(str(out))} is in use by `triangulate export` \(pid {os.getpid()}, {SINCE}\); "
        r"wait for it or use another --out$",
        err,
        re.MULTILINE,
    ), err
    assert not (out / "triangulate.sqlite").exists()


# --------------------------------------------------------------------------- output sets


def test_a_set_replaces_its_targets_only_when_the_block_completes(tmp_path: Path, umask_022: None) -> None:
    first, second = tmp_path / "incidents.jsonl", tmp_path / "conflicts.jsonl"
    first.write_text("old incidents\n")
    second.write_text("old conflicts\n")
    with replaced_together() as files:
        with files.open_text(first) as handle:
            handle.write("new incidents\n")
        with files.open_text(second) as handle:
            handle.write("new conflicts\n")
        assert (first.read_text(), second.read_text()) == ("old incidents\n", "old conflicts\n")
    assert (first.read_text(), second.read_text()) == ("new incidents\n", "new conflicts\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conflicts.jsonl", "incidents.jsonl"]


def test_an_error_in_the_block_leaves_every_target_and_no_temporary_file(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("old a\n")
    with pytest.raises(RuntimeError), replaced_together() as files:
        files.open_text(first).write("new a\n")
        files.temp_path(second).write_text("new b\n")
        raise RuntimeError("the third file failed")
    assert first.read_text() == "old a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_temporary_files_have_unique_names_that_start_with_their_targets_name(tmp_path: Path) -> None:
    target = tmp_path / "records.parquet"
    (tmp_path / "records.parquet.tmp").write_text("someone else's\n")
    (tmp_path / ".records.parquet.tmp").write_text("someone else's too\n")
    with replaced_together() as files:
        temp = files.temp_path(target)
        assert temp.parent == tmp_path
        assert temp.name.startswith(".records.parquet.") and temp.name.endswith(".tmp")
        assert temp.name != ".records.parquet.tmp"
        temp.write_text("new\n")
        with pytest.raises(ValueError, match="already part of this output set"):
            files.temp_path(target)
    assert target.read_text() == "new\n"
    assert (tmp_path / "records.parquet.tmp").read_text() == "someone else's\n"
    assert (tmp_path / ".records.parquet.tmp").read_text() == "someone else's too\n"


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_files_get_the_mode_the_umask_gives_not_mkstemps_private_one(
    tmp_path: Path, umask: int, mode: int
) -> None:
    previous = os.umask(umask)
    try:
        with replaced_together() as files:
            files.temp_path(tmp_path / "a.parquet").write_bytes(b"PAR1")
            files.open_text(tmp_path / "b.csv").write("x\n")
    finally:
        os.umask(previous)
    assert (_mode(tmp_path / "a.parquet"), _mode(tmp_path / "b.csv")) == (mode, mode)
