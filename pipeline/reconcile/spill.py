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

import os
import tempfile
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from pipeline.reconcile.cluster import (
    Cluster,
    JoinRows,
    RecordFeatures,
    StoredRecords,
    components,
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
        self._dirty = True
        line = record.model_dump_json().encode("utf-8") + b"\n"
        self._offsets.append(self._end)
        self._file.write(line)
        self._end += len(line)
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


def spilled_clusters(records: Iterable[IncidentRecord], spill: RecordSpill) -> list[Cluster]:
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
    # The order sort_records gives: by article id, the full JSON only between records of one
    # article (read back for those alone).
    order = sorted(range(len(article_ids)), key=article_ids.__getitem__)
    if any(article_ids[a] == article_ids[b] for a, b in zip(order, order[1:], strict=False)):
        order.sort(key=lambda row: (article_ids[row], spill.raw(row).decode("utf-8")))
    sorted_ids = [article_ids[row] for row in order]
    roots, best = link_components([features[row] for row in order])
    del features
    return [
        Cluster(
            cid,
            StoredRecords(spill, [order[i] for i in indices], [sorted_ids[i] for i in indices]),
            JoinRows(joins),
        )
        for cid, indices, joins in components(sorted_ids, roots, best)
    ]
