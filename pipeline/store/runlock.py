"""One process at a time in a run folder: the ``flock`` on ``DIR/.triangulate.lock``.

Every command that writes into a run folder (``run``, ``retry-failed``,
``reconcile --out DIR``, ``export DIR``) holds this lock while it works, so an
export can never write a snapshot of a half-finished run into its store.

The lock file is opened without truncating it, and the holder's pid, command
and start time are written only once the lock is taken: a refused process
leaves the holder's details intact and quotes them in its refusal::

    out/tempe is in use by `triangulate run` (pid 1234, since 13:02)

``flock`` belongs to an open file description and the kernel drops it when
the holder dies, so a killed run never leaves the folder locked. Code that
already holds the lock (``run`` reconciling and exporting at its end) calls
the library functions, never the commands, so it never asks for it twice.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.store.runfolder import LOCK_FILENAME

LOCK_FILE_MODE = 0o644
_POLL_S = 0.05
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
# The holder writes its details right after taking the lock; a refused process that reads
# the file in between sees it empty (a new file) and looks again for this long.
_READ_HOLDER_PATIENCE_S = 0.5


@dataclass(frozen=True)
class Holder:
    """What the lock file says about the process holding the lock."""

    pid: int | None
    command: str
    since: datetime | None

    def describe(self) -> str:
        who = f"`triangulate {self.command}`" if self.command else "another triangulate process"
        details = [f"pid {self.pid}"] if self.pid is not None else []
        if self.since is not None:
            details.append(f"since {_clock_time(self.since)}")
        return f"{who} ({', '.join(details)})" if details else who


class RunFolderBusy(Exception):
    """Another process holds the run folder's lock. Commands report it and exit with 2."""

    def __init__(self, out_dir: Path, holder: Holder) -> None:
        self.out_dir = out_dir
        self.holder = holder
        super().__init__(f"{out_dir} is in use by {holder.describe()}")


@dataclass(frozen=True)
class RunFolderLock:
    """A held lock: the folder, and the details this process wrote into the lock file (if writable)."""

    out_dir: Path
    path: Path
    command: str
    pid: int
    since: datetime


@contextlib.contextmanager
def run_folder_lock(out_dir: Path, *, command: str, wait: float = 0.0) -> Iterator[RunFolderLock]:
    """Hold ``out_dir``'s lock for the duration of the block (creating the folder if needed).

    ``command`` is the subcommand holding it (``"run"``, ``"export"``), quoted to anyone refused.
    With ``wait`` > 0, a busy folder is retried for that many seconds before giving up.
    Raises ``RunFolderBusy`` (naming the holder) when the folder stays busy, and ``OSError``
    when the lock file can be neither created nor opened (a read-only folder that has none).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_FILENAME
    fd, writable = _open_lock_file(path)
    try:
        _acquire(fd, out_dir, path, wait)
        held = RunFolderLock(
            out_dir=out_dir,
            path=path,
            command=command,
            pid=os.getpid(),
            since=datetime.now().astimezone().replace(microsecond=0),
        )
        if writable:
            _write_holder(fd, held)
        yield held
    finally:
        os.close(fd)  # closing the last descriptor of the open file description releases the flock


def _open_lock_file(path: Path) -> tuple[int, bool]:
    """A descriptor on the lock file, and whether the holder's details can be written to it."""
    try:
        # No O_TRUNC: the file names the current holder until this process owns the lock.
        return os.open(path, os.O_RDWR | os.O_CREAT, LOCK_FILE_MODE), True
    except OSError as exc:
        if exc.errno not in _NOT_WRITABLE:
            raise
        try:
            # A folder this user may read but not write (an export by a dashboard's service
            # user): flock works on a read-only descriptor, so the lock is still honoured.
            return os.open(path, os.O_RDONLY), False
        except FileNotFoundError:
            raise exc from None


def _acquire(fd: int, out_dir: Path, path: Path, wait: float) -> None:
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RunFolderBusy(out_dir, read_holder(path)) from None
            time.sleep(min(_POLL_S, remaining))


def _write_holder(fd: int, held: RunFolderLock) -> None:
    text = json.dumps(
        {"pid": held.pid, "command": held.command, "since": held.since.isoformat(timespec="seconds")}
    )
    data = (text + "\n").encode("utf-8")
    # Overwrite in place, then cut: the file is never empty once a holder has written it, and
    # a reader that catches the moment in between still finds the new details first.
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))


def read_holder(path: Path) -> Holder:
    """The holder's details from a lock file (pid only for a file written by an older version)."""
    deadline = time.monotonic() + _READ_HOLDER_PATIENCE_S
    while True:
        holder = _parse_holder(_read_text(path))
        if holder.pid is not None or time.monotonic() >= deadline:
            return holder
        time.sleep(_POLL_S)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _parse_holder(text: str) -> Holder:
    stripped = text.strip()
    if re.fullmatch(r"\d+", stripped):  # the older format: the pid alone
        return Holder(pid=int(stripped), command="", since=None)
    try:
        value, _ = json.JSONDecoder().raw_decode(stripped)
    except ValueError:
        return Holder(pid=None, command="", since=None)
    if not isinstance(value, dict):
        return Holder(pid=None, command="", since=None)
    pid = value.get("pid")
    command = value.get("command")
    return Holder(
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        command=command if isinstance(command, str) else "",
        since=_parse_time(value.get("since")),
    )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _clock_time(since: datetime) -> str:
    local = since.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def invoked_command(argv: list[str] | None = None) -> str:
    """The subcommand this process was started with (``triangulate run ...`` -> ``"run"``), or ``""``."""
    args = sys.argv if argv is None else argv
    if len(args) > 1 and re.fullmatch(r"[a-z][a-z-]*", args[1]):
        return args[1]
    return ""


def lock_refusing_with(
    refusal: Callable[[str], Exception], advice: str = "wait for it or use another --out"
) -> Callable[[Path], AbstractContextManager[RunFolderLock]]:
    """``run_folder_lock`` for a caller that reports its own error type (the batch runner's
    ``UsageError``) and knows only the folder: the command is the one this process was started with."""

    @contextlib.contextmanager
    def lock(out_dir: Path) -> Iterator[RunFolderLock]:
        with contextlib.ExitStack() as stack:
            try:
                held = stack.enter_context(run_folder_lock(out_dir, command=invoked_command()))
            except RunFolderBusy as busy:
                raise refusal(f"{busy}; {advice}") from busy
            yield held

    return lock


__all__ = [
    "LOCK_FILENAME",
    "Holder",
    "RunFolderBusy",
    "RunFolderLock",
    "invoked_command",
    "lock_refusing_with",
    "read_holder",
    "run_folder_lock",
]
