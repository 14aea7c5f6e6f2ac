"""Reconciling more records than fit in memory: records wait on disk between the passes.

A reconcile runs in three passes (see docs/scale.md, "Reconcile at scale"), the same steps a
distributed executor would split between machines:

1. each record is written once to a spill file and reduced to what clustering compares
   (``cluster.record_features``) and its article id; the record itself is dropped;
2. candidate pairs within blocks are compared and joined by union-find
   (``cluster.link_components``): one component, an incident, per record;
3. each component's records are read back from the spill file and judged on their own
   (``merge._incident_dict``), then dropped.

So memory holds the features of every record but the full records of one incident at a time.
The spill file is JSONL (one ``model_dump_json`` a line, found by byte offset): the standard
library reads it back, and a record survives the round trip unchanged, which keeps the output
byte for byte that of the in-memory path.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from array import array
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from multiprocessing.pool import AsyncResult
from pathlib import Path
from types import TracebackType
from typing import IO

from pydantic import ValidationError

from pipeline.kinds.gazetteer import get_gazetteer
from pipeline.reconcile.cluster import (
    Cluster,
    JoinRows,
    RecordFeatures,
    StoredRecords,
    components,
    fork_context,
    link_components,
    record_features,
)
from schemas.record import IncidentRecord


class RecordSpill:
    """Records written once to a temporary file and read back by row number."""

    def __init__(self, directory: Path | None = None) -> None:
        # Unlinked at once (nothing is left behind if the process dies); closed by close().
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=directory, prefix="reconcile-spill-")  # noqa: SIM115
        # Offsets as 8-byte ints, not a list of Python ints: at 10M records that is 80 MB, not 360.
        self._offsets = array("q")
        self._end = 0
        self._dirty = False

    def __len__(self) -> int:
        return len(self._offsets)

    def add(self, record: IncidentRecord) -> int:
        """Write ``record``; its row number."""
        return self.add_json(record.model_dump_json().encode("utf-8"))

    def add_json(self, line: bytes) -> int:
        """Write a record's JSON (one line, no line break) as given; its row number."""
        self._dirty = True
        self._offsets.append(self._end)
        self._file.write(line + b"\n")
        self._end += len(line) + 1
        return len(self._offsets) - 1

    def raw(self, row: int) -> bytes:
        """The record of ``row`` as JSON."""
        if self._dirty:
            self._file.flush()
            self._dirty = False
        start = self._offsets[row]
        end = self._offsets[row + 1] if row + 1 < len(self._offsets) else self._end
        # pread, not seek and read: forked workers share this file's offset with the parent.
        return os.pread(self._file.fileno(), end - start - 1, start)

    def load(self, rows: Sequence[int]) -> list[IncidentRecord]:
        return [IncidentRecord.model_validate_json(self.raw(row)) for row in rows]

    def flush(self) -> None:
        self._file.flush()
        self._dirty = False

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordSpill:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True)
class LineError:
    """A line of a ``RecordLines`` stream that is not a valid record: its number and why."""

    line: int
    message: str


def line_error(number: int, error: ValidationError) -> LineError:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "line"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return LineError(number, f"{where}: {first['msg']}{more}")


@dataclass
class RecordLines(Iterable[IncidentRecord]):
    """Records as JSON lines, not yet parsed: records.jsonl, or the run store's ``record_json``.

    Iterated, it gives each record (a line that is not a valid record is noted in ``errors``
    and skipped, never dropped silently). A spilled reconcile does better: it writes the lines to
    its spill file as they are and parses them in worker processes
    (``spilled_clusters_from_lines``), so the one process that must read every record only
    copies bytes. ``lines`` is read once.
    """

    lines: Iterable[str | bytes]
    errors: list[LineError] = field(default_factory=list)

    @classmethod
    def from_file(cls, path: Path) -> RecordLines:
        def read() -> Iterator[bytes]:
            with path.open("rb") as handle:
                yield from handle

        return cls(read())

    def numbered(self) -> Iterator[tuple[int, bytes]]:
        """(line number, the line's bytes without its line break), blank lines left out."""
        for number, line in enumerate(self.lines, start=1):
            raw = line.encode("utf-8") if isinstance(line, str) else line
            raw = raw.strip()
            if raw:
                yield number, raw

    def __iter__(self) -> Iterator[IncidentRecord]:
        for number, raw in self.numbered():
            try:
                yield IncidentRecord.model_validate_json(raw)
            except ValidationError as error:
                self.errors.append(line_error(number, error))


# Lines sent to a worker at a time: large enough that pickling and the pipe cost little per
# record, small enough that two workers stay busy and little waits in the pipe.
LINE_CHUNK = 512

_Parsed = tuple[str, RecordFeatures] | LineError


def _parse_lines(chunk: list[tuple[int, bytes]]) -> list[_Parsed]:
    """Pass 1 in a worker: each line's article id and clustering features, or why it is not a record."""
    parsed: list[_Parsed] = []
    for number, raw in chunk:
        try:
            record = IncidentRecord.model_validate_json(raw)
        except ValidationError as error:
            parsed.append(line_error(number, error))
            continue
        parsed.append((record.article_id, record_features(record)))
    return parsed


def spilled_clusters_from_lines(lines: RecordLines, spill: RecordSpill, *, workers: int = 1) -> list[Cluster]:
    """``spilled_clusters`` over JSON lines, parsed by ``workers`` forked processes.

    The lines go to the spill file as they are (the parent never builds a record); workers send
    back only article ids and features. Clusters, ids, members and joins are those of
    ``spilled_clusters`` over the same records. Invalid lines end in ``lines.errors``.
    """
    article_ids: list[str] = []
    features: list[RecordFeatures] = []
    rows: list[int] = []  # the spill row of each valid line (an invalid line has a row too)

    def chunks() -> Iterator[list[tuple[int, bytes]]]:
        numbered = lines.numbered()
        while chunk := list(islice(numbered, LINE_CHUNK)):
            # Spill rows follow the order of the chunks, which is the order results are taken in.
            for _number, raw in chunk:
                spill.add_json(raw)
            yield chunk

    spilled = len(spill)

    def take(parsed: list[_Parsed]) -> None:
        nonlocal spilled
        for item in parsed:
            row, spilled = spilled, spilled + 1
            if isinstance(item, LineError):
                lines.errors.append(item)
                continue
            rows.append(row)
            article_ids.append(item[0])
            features.append(item[1])

    # Loaded before any worker forks, so workers share it instead of each loading GeoNames
    # (half a second of CPU per process).
    get_gazetteer()
    pieces = chunks()
    first = next(pieces, [])
    # One chunk is the whole input: parsing it here costs less than starting workers.
    context = fork_context() if workers > 1 and len(first) == LINE_CHUNK else None
    if context is None:
        take(_parse_lines(first))
        for chunk in pieces:
            take(_parse_lines(chunk))
    else:
        # The workers fork after the first chunk is read, so they hold next to nothing of the
        # input. Lines are read in this thread (a SQLite cursor may only be read where it was
        # made), and a few chunks at a time are in flight: memory holds a few chunks, never
        # the input.
        in_flight: deque[AsyncResult[list[_Parsed]]] = deque()
        with context.Pool(workers) as pool:
            for chunk in itertools.chain([first], pieces):
                in_flight.append(pool.apply_async(_parse_lines, (chunk,)))
                if len(in_flight) > 2 * workers:
                    take(in_flight.popleft().get())
            while in_flight:
                take(in_flight.popleft().get())
    spill.flush()
    return _clusters(spill, rows, article_ids, features, canonical=True, workers=workers)


def spilled_clusters(
    records: Iterable[IncidentRecord], spill: RecordSpill, *, workers: int = 1
) -> list[Cluster]:
    """``cluster.cluster_records(records)``, with each cluster's records left in ``spill``.

    ``records`` is read once, one at a time (a generator over records.jsonl or the run store
    will do), and none is kept. The clusters, their ids, members and joins are those of
    ``cluster_records``: members in the same order (article id, then the record's JSON), the
    same pairs compared.
    """
    article_ids: list[str] = []
    features: list[RecordFeatures] = []
    for record in records:
        spill.add(record)
        article_ids.append(record.article_id)
        features.append(record_features(record))
    # Written out before any worker forks: a buffer flushed in a child would be written twice.
    spill.flush()
    return _clusters(spill, range(len(article_ids)), article_ids, features, canonical=False, workers=workers)


def _clusters(
    spill: RecordSpill,
    rows: Sequence[int],
    article_ids: list[str],
    features: list[RecordFeatures],
    *,
    canonical: bool,
    workers: int = 1,
) -> list[Cluster]:
    """Passes 2 and 3's plan over spilled records: ``rows[k]`` is the spill row of the record
    with ``article_ids[k]`` and ``features[k]``. With ``canonical`` the spilled JSON is as the
    input gave it, so ties are broken on the record's own ``model_dump_json`` instead."""

    def tie_key(k: int) -> str:
        raw = spill.raw(rows[k])
        if canonical:
            return IncidentRecord.model_validate_json(raw).model_dump_json()
        return raw.decode("utf-8")

    # The order sort_records gives: by article id, the full JSON only between records of one
    # article (read back for those alone).
    order = sorted(range(len(article_ids)), key=article_ids.__getitem__)
    tied = {
        article_ids[a] for a, b in zip(order, order[1:], strict=False) if article_ids[a] == article_ids[b]
    }
    if tied:
        order.sort(key=lambda k: (article_ids[k], tie_key(k) if article_ids[k] in tied else ""))
    sorted_ids = [article_ids[k] for k in order]
    roots, best = link_components([features[k] for k in order], workers=workers)
    features.clear()
    return [
        Cluster(
            cid,
            StoredRecords(spill, [rows[order[i]] for i in indices], [sorted_ids[i] for i in indices]),
            JoinRows(joins),
        )
        for cid, indices, joins in components(sorted_ids, roots, best)
    ]
