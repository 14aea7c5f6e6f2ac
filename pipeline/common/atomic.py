"""Replace a step's output files as a set: all of them new, or all of them as they were.

Each file is written to its own temporary file beside its target (a unique
``mkstemp`` name starting with ``.<target name>.``, so nobody else's file is
touched), and nothing is renamed until every one of them is complete and on
disk. Then each is renamed into place and the folder is synced::

    with replaced_together() as files:
        with files.open_text(out / "incidents.jsonl") as incidents, files.open_text(
            out / "conflicts.jsonl"
        ) as conflicts:
            ...
        write_parquet_to(files.temp_path(out / "records.parquet"))

If the block raises, every temporary file is removed and every target is left
as it was. The renames themselves are one system call each, done back to back
after all the writing, so a reader can only catch the set between two renames.

Files get the permissions an ordinary ``open(..., "w")`` would give them
(``0o666`` less the umask), not ``mkstemp``'s private ``0o600``: outputs are
meant to be read by the rest of a team and by a dashboard's service user.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def current_umask() -> int:
    """This process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a newly created output file gets: ``0o666`` less the umask (0o644 under 022)."""
    return 0o666 & ~current_umask()


class OutputSet:
    """Temporary files waiting to replace their targets; see ``replaced_together``."""

    def __init__(self) -> None:
        self._pending: dict[Path, Path] = {}  # target -> its temporary file
        self._handles: list[IO[str]] = []

    def temp_path(self, target: Path) -> Path:
        """A new empty file beside ``target`` for a writer that wants a path (pyarrow, sqlite3)."""
        fd, temp = self._create(Path(target))
        os.close(fd)
        return temp

    def open_text(self, target: Path, *, newline: str | None = None) -> IO[str]:
        """A UTF-8 text handle on a new temporary file beside ``target``."""
        fd, _ = self._create(Path(target))
        handle = os.fdopen(fd, "w", encoding="utf-8", newline=newline)
        self._handles.append(handle)
        return handle

    def _create(self, target: Path) -> tuple[int, Path]:
        key = Path(os.path.abspath(target))
        if key in self._pending:
            raise ValueError(f"{target} is already part of this output set")
        key.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=key.parent, prefix=f".{key.name}.", suffix=".tmp")
        self._pending[key] = Path(name)
        return fd, Path(name)

    def commit(self) -> None:
        """Sync every temporary file, rename each onto its target, then sync the folders."""
        pending = list(self._pending.items())
        try:
            self._close_handles()
            mode = file_mode()
            for _, temp in pending:
                os.chmod(temp, mode)
                _fsync_path(temp)
            for target, temp in pending:
                os.replace(temp, target)
        finally:
            self.discard()  # whatever a failure on the way left behind
        for folder in dict.fromkeys(target.parent for target, _ in pending):
            _fsync_folder(folder)

    def discard(self) -> None:
        """Remove every temporary file that has not been renamed; targets stay as they are."""
        self._close_handles()
        for temp in self._pending.values():
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        self._pending.clear()

    def _close_handles(self) -> None:
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.close()


@contextlib.contextmanager
def replaced_together() -> Iterator[OutputSet]:
    """Collect output files in the block; on success replace their targets together, on error none."""
    files = OutputSet()
    try:
        yield files
    except BaseException:
        files.discard()
        raise
    files.commit()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make the renames durable; a file system that cannot sync a folder is not an error."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


__all__ = ["OutputSet", "current_umask", "file_mode", "replaced_together"]
