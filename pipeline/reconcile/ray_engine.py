"""Reconcile on a Ray cluster: the clustering and judging passes of a reconcile as Ray Data jobs.

:class:`RayEngine` is a ``merge.ReconcileEngine`` (``reconcile_to_dir(..., engine=RayEngine())``,
``folder.reconcile_into(..., engine=...)``, ``triangulate reconcile --engine ray``). It runs the
passes of docs/scale.md, "Reconcile at scale", on Ray Data instead of in this process:

1. **Features and block keys.** The records are streamed once into JSON-lines shards in a work
   folder (inside the output folder, removed afterwards); this process keeps only their article
   ids, from which it computes each record's row (the order ``cluster.sort_records`` gives).
   ``read_binary_files`` + ``map_batches`` turn each shard into rows of (row, ``RecordFeatures``,
   date bucket, block keys).
2. **Links and components.** Rows are exploded to (block key, row), grouped by key, and each
   block's candidate pairs are made by ``cluster.block_pairs`` (the same ``Block.partners`` the
   single-machine path uses: same bucket adjacency, same size limits), vetoed and compared
   (``cluster.compare``) where the block is. Only the links come back. A pair that shares two
   keys is compared in both blocks; that costs a comparison, never a different result. The
   driver joins them across blocks: ``cluster.join_links`` (union-find, best link per record)
   and ``cluster.components`` give the clusters, whose records stay in the work folder
   (``cluster.StoredRecords`` over :class:`_WorkFolder`). Stable ids and reviewers' decisions
   are settled by the caller (``merge._iter_judged``) between this pass and the next.
3. **Judging.** The clusters are written as plan chunks to the work folder and ``map_batches``
   judges each chunk where it runs (reading its records from the shards by byte offset); the
   results come back and are yielded in cluster order.

So the output is byte for byte that of the single-machine path (``tests/test_ray_reconcile.py``).
When the judge is ``merge._judged_lines`` and the engine knows the output folder, incidents and
conflicts are also written as Parquet (:data:`INCIDENTS_PARQUET`, :data:`CONFLICTS_PARQUET`).

Ray is imported only when a :class:`RayEngine` is made (and in Ray's own worker processes): the
single-machine path never loads it. The work folder must be readable by every node of the
cluster: on one machine it is; across machines put it on shared storage (``work_dir``).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import logging
import os
import pickle
import shutil
import sys
import tempfile
import time
import uuid
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from pipeline.kinds.normalize import clear_caches
from pipeline.reconcile import merge
from pipeline.reconcile.cluster import (
    Cluster,
    JoinRows,
    StoredRecords,
    _blocking_keys,
    _bucket,
    _Vetoes,
    block_pairs,
    compare,
    components,
    has_a_city,
    join_links,
    record_features,
    trim_name_cache,
)
from pipeline.store.runfolder import CONFLICTS_FILENAME, INCIDENTS_FILENAME
from schemas.desk import Decision, StaleDecision
from schemas.record import IncidentRecord

if TYPE_CHECKING:
    import pyarrow as pa

# Beside incidents.jsonl and conflicts.jsonl, the same rows for tools that read Parquet.
INCIDENTS_PARQUET = Path(INCIDENTS_FILENAME).with_suffix(".parquet").name
CONFLICTS_PARQUET = Path(CONFLICTS_FILENAME).with_suffix(".parquet").name
WORK_PREFIX = ".ray-reconcile-"
RAY_MISSING = "--engine ray needs the ray extra: pip install 'triangulate[ray]'"
# Records per shard of pass 1 (one read task each): small enough that a few thousand records
# already spread over the cores, large enough that a million make a few hundred tasks.
SHARD_RECORDS = 2048
# Incidents per judging task: a task's start costs milliseconds, an incident a few.
PLAN_CHUNK = 128
# The environment variables a judge reads (the speaker tables, TRIANGULATE_SPEAKERS, ...): sent
# to a cluster this process did not start, whose workers do not inherit them.
ENV_PREFIX = "TRIANGULATE_"
_NO_BUCKET = -1  # an undated record's bucket in an integer column (real buckets are positive)


class RayMissing(ImportError):
    """Ray (or Ray Data) is not installed: the ``ray`` extra is needed."""


class RayUnreachable(ConnectionError):
    """The Ray cluster at the given address cannot be joined (nothing there, or it refused)."""


def require_ray() -> None:
    """Raise :class:`RayMissing` unless Ray Data and pyarrow can be imported: the one check both
    Ray engines (this one, and ``pipeline.batch.ray_extract``) make before anything starts."""
    try:
        import pyarrow  # noqa: F401
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as missing:
        raise RayMissing(RAY_MISSING) from missing


# --------------------------------------------------------------------------- the work folder


def _shard_name(shard: int) -> str:
    return f"records-{shard:06d}.jsonl"


def _plan_name(chunk: int) -> str:
    return f"plan-{chunk:06d}.pickle"


# Where a record is: its shard, byte offset and length (without the newline).
_Location = tuple[int, int, int]


class _WorkFolder:
    """The records of one run as JSON-lines shards of ``shard_records`` lines, in input order, and
    where each line starts. The driver reads records back by position (``load``, a
    ``cluster.RecordRows``), the workers by location (``_read_located``)."""

    def __init__(self, parent: Path, shard_records: int) -> None:
        parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=parent))
        self.shard_records = shard_records
        self._starts = array("q")  # each record's offset in its shard
        self._sizes: list[int] = []  # each closed shard's size
        self._out: IO[bytes] | None = None
        self._end = 0
        self._readers: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._starts)

    @property
    def shards(self) -> list[Path]:
        return [self.path / _shard_name(shard) for shard in range(len(self._sizes))]

    def add(self, record: IncidentRecord) -> None:
        if len(self._starts) % self.shard_records == 0:
            self._close_shard()
            self._out = (self.path / _shard_name(len(self._sizes))).open("wb")
            self._end = 0
        assert self._out is not None
        line = record.model_dump_json().encode("utf-8") + b"\n"
        self._starts.append(self._end)
        self._out.write(line)
        self._end += len(line)

    def _close_shard(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
            self._sizes.append(self._end)

    def finish(self) -> None:
        """Close the last shard: every record is written."""
        self._close_shard()

    def location(self, position: int) -> _Location:
        shard = position // self.shard_records
        start = self._starts[position]
        last = position + 1 == len(self._starts) or (position + 1) % self.shard_records == 0
        end = self._sizes[shard] if last else self._starts[position + 1]
        return shard, start, end - start - 1

    def raw(self, position: int) -> bytes:
        shard, start, length = self.location(position)
        fd = self._readers.get(shard)
        if fd is None:
            fd = self._readers[shard] = os.open(self.path / _shard_name(shard), os.O_RDONLY)
        return os.pread(fd, length, start)

    def load(self, rows: Sequence[int]) -> list[IncidentRecord]:
        return [IncidentRecord.model_validate_json(self.raw(row)) for row in rows]

    def remove(self) -> None:
        self._close_shard()
        for fd in self._readers.values():
            os.close(fd)
        self._readers.clear()
        shutil.rmtree(self.path, ignore_errors=True)


def _read_located(work: str, locations: Sequence[_Location]) -> list[IncidentRecord]:
    """Records read from the shards of the work folder ``work`` (in a worker)."""
    records: list[IncidentRecord] = []
    handles: dict[int, int] = {}
    try:
        for shard, start, length in locations:
            fd = handles.get(shard)
            if fd is None:
                fd = handles[shard] = os.open(os.path.join(work, _shard_name(shard)), os.O_RDONLY)
            records.append(IncidentRecord.model_validate_json(os.pread(fd, length, start)))
    finally:
        for fd in handles.values():
            os.close(fd)
    return records


# --------------------------------------------------------------------------- the passes, in workers


def _shard_features(batch: dict[str, Any], *, row_of: Any, shard_records: int) -> pa.Table:
    """Pass 1, one shard: each record's row, features (pickled), date bucket, whether it has a
    city, and its block keys ("kind\\x1fvalue", one a line)."""
    import numpy as np
    import pyarrow as pa
    import ray

    rows_of = ray.get(row_of) if isinstance(row_of, ray.ObjectRef) else row_of
    rows: list[int] = []
    features: list[bytes] = []
    buckets: list[int] = []
    cities: list[bool] = []
    keys: list[str] = []
    for data, path in zip(batch["bytes"], batch["path"], strict=True):
        first = int(Path(str(path)).stem.rsplit("-", 1)[1]) * shard_records
        # Split on b"\n" only: JSON escapes a newline within a string, but not U+2028 and the
        # other separators str.splitlines (and so read_text) would also break lines at.
        lines = bytes(data).split(b"\n")
        for offset, line in enumerate(lines[:-1] if lines and not lines[-1] else lines):
            f = record_features(IncidentRecord.model_validate_json(line))
            rows.append(int(rows_of[first + offset]))
            features.append(pickle.dumps(f, pickle.HIGHEST_PROTOCOL))
            bucket = _bucket(f.date)
            buckets.append(_NO_BUCKET if bucket is None else bucket)
            cities.append(has_a_city(f))
            keys.append("\n".join(f"{kind}\x1f{value}" for kind, value in _blocking_keys(f)))
    return pa.table(
        {
            "row": pa.array(np.asarray(rows, dtype=np.int64)),
            "features": pa.array(features, type=pa.binary()),
            "bucket": pa.array(buckets, type=pa.int64()),
            "city": pa.array(cities, type=pa.bool_()),
            "keys": pa.array(keys, type=pa.string()),
        }
    )


def _explode(batch: pa.Table) -> pa.Table:
    """Pass 2, before grouping: one row per (block key, record)."""
    import pyarrow as pa

    take: list[int] = []
    keys: list[str] = []
    for index, joined in enumerate(batch.column("keys").to_pylist()):
        for key in joined.split("\n") if joined else ():
            take.append(index)
            keys.append(key)
    picked = batch.drop_columns(["keys"]).take(pa.array(take, type=pa.int64()))
    return picked.append_column("key", pa.array(keys, type=pa.string()))


def _links_table(i: list[int], j: list[int], matched: list[str]) -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {
            "i": pa.array(i, type=pa.int64()),
            "j": pa.array(j, type=pa.int64()),
            "matched": pa.array(matched, type=pa.string()),
        }
    )


def _block_links(group: dict[str, Any]) -> pa.Table:
    """Pass 2, one block: its candidate pairs (``cluster.block_pairs``), vetoed and compared; the
    linked ones as (row, row, what matched as JSON)."""
    rows_in = [int(row) for row in group["row"]]
    if not rows_in:
        return _links_table([], [], [])
    kind = str(group["key"][0]).split("\x1f", 1)[0]
    # In row order, so a pair's first position is its smaller row, as on one machine.
    order = sorted(range(len(rows_in)), key=rows_in.__getitem__)
    rows = [rows_in[k] for k in order]
    features = [pickle.loads(group["features"][k]) for k in order]
    members = [
        (None if int(group["bucket"][k]) == _NO_BUCKET else int(group["bucket"][k]), bool(group["city"][k]))
        for k in order
    ]
    vetoes = _Vetoes(features)
    left: list[int] = []
    right: list[int] = []
    matched_json: list[str] = []
    for n, (i, j) in enumerate(block_pairs(kind, members, vetoes.allow)):
        if n % 65536 == 0:
            trim_name_cache()
        matched = compare(features[i], features[j])
        if matched is not None:
            left.append(rows[i])
            right.append(rows[j])
            # JSON keeps the keys' order and each float exactly: the score is their sum.
            matched_json.append(json.dumps(matched))
    return _links_table(left, right, matched_json)


# The run whose caches this worker holds: a judge's memo caches (normalised values, speakers,
# the speaker table) are cleared when a new run starts, as merge._iter_judged does on one machine.
_WORKER_RUN: str | None = None


def _clear_judge_caches() -> None:
    clear_caches()
    merge._normalize_cached.cache_clear()
    merge._speaker_cached.cache_clear()
    merge.counts_under.cache_clear()


# One planned incident: its index, id, records (locations in the work folder, or the records'
# JSON when a reviewer's merge or split rebuilt it), article ids, joins, decisions, aliases.
_Planned = tuple[int, str, list[_Location] | list[str], list[str], Sequence[Any], list[Decision], list[str]]


def _judge_chunk(
    batch: dict[str, Any], *, work: str, judge: merge._Judge[Any], with_desk: bool, run: str
) -> pa.Table:
    """Pass 3, one plan chunk: each incident judged, as (index, pickled result)."""
    import pyarrow as pa

    global _WORKER_RUN
    if run != _WORKER_RUN:
        _clear_judge_caches()
        _WORKER_RUN = run
    indices: list[int] = []
    results: list[bytes] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as in merge._iter_judged: judging makes many objects and no cycles
    try:
        for chunk in batch["item"]:
            with open(os.path.join(work, _plan_name(int(chunk))), "rb") as handle:
                planned: list[_Planned] = pickle.load(handle)
            for index, cluster_id, held, article_ids, joins, mine, aliases in planned:
                if held and isinstance(held[0], str):
                    records = [IncidentRecord.model_validate_json(line) for line in held]
                else:
                    records = _read_located(work, held)  # type: ignore[arg-type]
                assert [r.article_id for r in records] == article_ids
                cluster = Cluster(cluster_id, tuple(records), joins)
                indices.append(index)
                results.append(
                    pickle.dumps(judge(cluster, mine, aliases, with_desk), pickle.HIGHEST_PROTOCOL)
                )
    finally:
        if gc_was_enabled:
            gc.enable()
    return pa.table(
        {"index": pa.array(indices, type=pa.int64()), "result": pa.array(results, type=pa.binary())}
    )


# --------------------------------------------------------------------------- Parquet


class _ParquetOut:
    """incidents.parquet and conflicts.parquet, written in batches while incidents are judged and
    put in place together at the end (``commit``); a failed run leaves the old ones."""

    BATCH = 1024

    def __init__(self, out_dir: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self.out_dir = out_dir
        self.incident_schema = pa.schema([("incident_id", pa.string()), ("json", pa.string())])
        self.conflict_schema = pa.schema(
            [
                ("incident_id", pa.string()),
                ("path", pa.string()),
                ("verdict", pa.string()),
                ("json", pa.string()),
            ]
        )
        self._tmp = {
            name: out_dir / f".{name}.{uuid.uuid4().hex}.tmp"
            for name in (INCIDENTS_PARQUET, CONFLICTS_PARQUET)
        }
        self.incidents = pq.ParquetWriter(self._tmp[INCIDENTS_PARQUET], self.incident_schema)
        self.conflicts = pq.ParquetWriter(self._tmp[CONFLICTS_PARQUET], self.conflict_schema)
        self._incident_rows: list[tuple[str, str]] = []
        self._conflict_rows: list[tuple[str, str, str, str]] = []

    def add(self, incident_id: str, lines: merge._Lines) -> None:
        incident, conflicts = lines
        self._incident_rows.append((incident_id, incident))
        for line, verdict in conflicts:
            self._conflict_rows.append((incident_id, str(json.loads(line)["path"]), verdict, line))
        if len(self._incident_rows) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        pa = self._pa
        if self._incident_rows:
            columns = list(zip(*self._incident_rows, strict=True))
            self.incidents.write_table(
                pa.Table.from_arrays([pa.array(c, pa.string()) for c in columns], schema=self.incident_schema)
            )
            self._incident_rows.clear()
        if self._conflict_rows:
            columns = list(zip(*self._conflict_rows, strict=True))
            self.conflicts.write_table(
                pa.Table.from_arrays([pa.array(c, pa.string()) for c in columns], schema=self.conflict_schema)
            )
            self._conflict_rows.clear()

    def commit(self) -> None:
        self._flush()
        self.incidents.close()
        self.conflicts.close()
        for name, tmp in self._tmp.items():
            os.replace(tmp, self.out_dir / name)

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.incidents.close()
            self.conflicts.close()
        for tmp in self._tmp.values():
            tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the engine


class RayEngine:
    """The clustering and judging passes of a reconcile on Ray Data (see the module docstring).

    ``address=None`` starts a local Ray cluster of ``num_cpus`` CPUs (default: those this process
    may use), unless this process is already connected to one; otherwise it connects to
    ``address`` (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``). :meth:`close` (or leaving a
    ``with`` block) shuts down, or disconnects from, only what this engine started.

    ``out_dir`` is the output folder: the work folder is made inside it (unless ``work_dir`` is
    given: for a cluster of several machines, a folder on storage they all see), and
    :data:`INCIDENTS_PARQUET` and :data:`CONFLICTS_PARQUET` are written there. Without either,
    the work folder goes to the system's temporary folder and no Parquet is written.
    :meth:`writing_to` gives an engine on the same connection for another output folder.

    Ray's own progress bars and logs are off unless ``quiet=False``; one line per pass goes to
    stderr unless ``progress=False``.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        out_dir: Path | None = None,
        work_dir: Path | None = None,
        object_store_memory: int | None = None,
        shard_records: int = SHARD_RECORDS,
        quiet: bool = True,
        progress: bool = True,
    ) -> None:
        require_ray()
        import ray
        import ray.data

        self.address = address
        self.out_dir = out_dir
        self.work_dir = work_dir
        self.shard_records = shard_records
        self.progress = progress
        self._work: _WorkFolder | None = None
        self._started = False
        with _quieted(quiet):
            if not ray.is_initialized():
                self._started = True
                # ray.init sets its logger to this level: the notices it logs on starting (token
                # authentication turned on) say nothing about the run.
                level = logging.ERROR if quiet else logging.INFO
                if address is None:
                    ray.init(
                        num_cpus=num_cpus or _usable_cpus(),
                        object_store_memory=object_store_memory,
                        include_dashboard=False,
                        log_to_driver=not quiet,
                        logging_level=level,
                    )
                else:
                    _check_reachable(address)
                    env = {name: value for name, value in os.environ.items() if name.startswith(ENV_PREFIX)}
                    try:
                        ray.init(
                            address=address,
                            runtime_env={"env_vars": env} if env else None,
                            log_to_driver=not quiet,
                            logging_level=level,
                        )
                    except (ConnectionError, ValueError) as refused:
                        self._started = False
                        first = (
                            str(refused).strip().splitlines()[0]
                            if str(refused).strip()
                            else type(refused).__name__
                        )
                        raise RayUnreachable(
                            f"cannot join the Ray cluster at {address}: {first}"
                        ) from refused
            if quiet:
                context = ray.data.DataContext.get_current()
                context.enable_progress_bars = False
                context.enable_operator_progress_bars = False
                context.print_on_execution_start = False
                context.verbose_stats_logs = False
                # Which says, once, that they are off.
                logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)

    def writing_to(self, out_dir: Path) -> RayEngine:
        """This engine, on the same connection, for the output folder ``out_dir``."""
        other = copy.copy(self)
        other.out_dir = out_dir
        other._work = None
        other._started = False  # the connection stays this engine's to close
        return other

    def close(self) -> None:
        """Remove a work folder left by an unfinished run; shut down what this engine started."""
        self._drop_work()
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _say(self, line: str) -> None:
        if self.progress:
            print(f"ray reconcile: {line}", file=sys.stderr, flush=True)

    def _new_work(self) -> _WorkFolder:
        return _WorkFolder(self.work_dir or self.out_dir or Path(tempfile.gettempdir()), self.shard_records)

    def _drop_work(self) -> None:
        if self._work is not None:
            self._work.remove()
            self._work = None

    # ----------------------------------------------------------------- clustering (passes 1-2)

    def clusters(self, records: Iterable[IncidentRecord]) -> list[Cluster]:
        import numpy as np
        import ray

        self._drop_work()
        began = time.monotonic()
        work = self._work = self._new_work()
        article_ids: list[str] = []
        for record in records:
            work.add(record)
            article_ids.append(record.article_id)
        work.finish()
        if not article_ids:
            self._say("no records")
            return []
        # The order sort_records gives: by article id, the record's JSON only between records of
        # one article (read back for those alone), as spill.spilled_clusters does.
        order = sorted(range(len(article_ids)), key=article_ids.__getitem__)
        if any(article_ids[a] == article_ids[b] for a, b in zip(order, order[1:], strict=False)):
            order.sort(key=lambda position: (article_ids[position], work.raw(position).decode("utf-8")))
        row_of = np.empty(len(order), dtype=np.int64)
        row_of[np.asarray(order, dtype=np.int64)] = np.arange(len(order), dtype=np.int64)
        sorted_ids = [article_ids[position] for position in order]
        article_ids.clear()

        # A sort-based shuffle for the grouping by key: it runs as plain tasks, while the default
        # hash shuffle first starts a pool of aggregator actors (9 s of a 9.3 s pass on two cores
        # for 300 records, and they held the cores from the judging pass after it). Set before
        # the first dataset is made: each dataset keeps the settings it was made with.
        with _data_context(shuffle_strategy=ray.data.context.ShuffleStrategy.SORT_SHUFFLE_PULL_BASED):
            features = (
                ray.data.read_binary_files([str(p) for p in work.shards], include_paths=True)
                .map_batches(
                    cast(Any, _shard_features),  # Ray's stubs know no keyword arguments
                    batch_size=1,
                    batch_format="numpy",
                    fn_kwargs={"row_of": ray.put(row_of), "shard_records": self.shard_records},
                )
                .materialize()
            )
            self._say(
                f"pass 1/3: features and block keys of {len(order)} record(s) in {len(work.shards)} "
                f"shard(s), {time.monotonic() - began:.1f} s"
            )

            began = time.monotonic()
            links = (
                features.map_batches(_explode, batch_format="pyarrow")
                .groupby("key")
                .map_groups(_block_links, batch_format="numpy")
            )
            found = 0

            def arriving() -> Iterator[tuple[int, int, dict[str, float]]]:
                # Joined as they arrive: only each record's best link is kept, never all links.
                nonlocal found
                for table in links.iter_batches(batch_size=65536, batch_format="pyarrow"):
                    batch: pa.Table = table
                    found += batch.num_rows
                    yield from zip(
                        batch.column("i").to_pylist(),
                        batch.column("j").to_pylist(),
                        map(json.loads, batch.column("matched").to_pylist()),
                        strict=True,
                    )

            roots, best = join_links(len(order), arriving())
        del features
        planned = components(sorted_ids, roots, best)
        self._say(
            f"pass 2/3: {found} link(s) within blocks, {len(planned)} incident(s), "
            f"{time.monotonic() - began:.1f} s"
        )
        return [
            Cluster(
                cid,
                StoredRecords(work, [order[i] for i in indices], [sorted_ids[i] for i in indices]),
                JoinRows(joins),
            )
            for cid, indices, joins in planned
        ]

    # ----------------------------------------------------------------- judging (pass 3)

    def judge_all(
        self,
        clusters: Sequence[Cluster],
        mine: Sequence[list[Decision]],
        aliases: Sequence[list[str]],
        with_desk: bool,
        judge: merge._Judge[merge._T],
    ) -> Iterator[tuple[merge._T, list[StaleDecision]]]:
        import ray

        began = time.monotonic()
        # The folder clusters() filled (an empty one when there were no records: not `or`).
        work = self._work if self._work is not None else self._new_work()
        self._work = work
        parquet = (
            _ParquetOut(self.out_dir) if self.out_dir is not None and judge is merge._judged_lines else None
        )
        try:
            chunks = self._write_plan(work, clusters, mine, aliases)
            if chunks:
                waiting: dict[int, tuple[merge._T, list[StaleDecision]]] = {}
                following = 0
                # In plan order, so results arrive in the order they are yielded and few wait in
                # `waiting` (which makes any order right, but holds what comes early).
                with _data_context(preserve_order=True):
                    judged = ray.data.from_items(list(range(chunks)), override_num_blocks=chunks).map_batches(
                        cast(Any, _judge_chunk),
                        batch_size=1,
                        batch_format="numpy",
                        fn_kwargs={
                            "work": str(work.path),
                            "judge": judge,
                            "with_desk": with_desk,
                            "run": uuid.uuid4().hex,
                        },
                    )
                    for table in judged.iter_batches(batch_size=None, batch_format="pyarrow"):
                        batch: pa.Table = table
                        for index, blob in zip(
                            batch.column("index").to_pylist(), batch.column("result").to_pylist(), strict=True
                        ):
                            waiting[index] = pickle.loads(blob)
                        while following in waiting:
                            result = waiting.pop(following)
                            if parquet is not None:
                                parquet.add(clusters[following].id, result[0])  # type: ignore[arg-type]
                            yield result
                            following += 1
                if following != len(clusters):
                    raise RuntimeError(f"ray judged {following} of {len(clusters)} incident(s)")
            if parquet is not None:
                parquet.commit()
                parquet = None
            self._say(f"pass 3/3: judged {len(clusters)} incident(s), {time.monotonic() - began:.1f} s")
        finally:
            if parquet is not None:
                parquet.discard()
            self._drop_work()

    def _write_plan(
        self,
        work: _WorkFolder,
        clusters: Sequence[Cluster],
        mine: Sequence[list[Decision]],
        aliases: Sequence[list[str]],
    ) -> int:
        """The clusters as plan chunks in the work folder; how many chunks."""
        chunk: list[_Planned] = []
        chunks = 0
        for index, (cluster, decisions, alias) in enumerate(zip(clusters, mine, aliases, strict=True)):
            records = cluster.records
            held: list[_Location] | list[str]
            if isinstance(records, StoredRecords) and records.source is work:
                held = [work.location(position) for position in records.rows]
            else:
                # Rebuilt by a reviewer's merge or split: the records themselves, as JSON (a record
                # comes back from it unchanged, as from the spill; pickle cannot name the classes
                # of generic models such as Cited[str]).
                held = [record.model_dump_json() for record in records]
            joins = cluster.joins if isinstance(cluster.joins, JoinRows) else list(cluster.joins)
            chunk.append((index, cluster.id, held, cluster.article_ids, joins, decisions, alias))
            if len(chunk) == PLAN_CHUNK or index + 1 == len(clusters):
                with (work.path / _plan_name(chunks)).open("wb") as handle:
                    pickle.dump(chunk, handle, pickle.HIGHEST_PROTOCOL)
                chunk = []
                chunks += 1
        return chunks


# How long to try a cluster's port before giving up: ray.init itself retries an address with
# nothing behind it for minutes (over 200 s here) before it fails.
CONNECT_TIMEOUT_S = 10.0


def _check_reachable(address: str) -> None:
    """Raise :class:`RayUnreachable` at once when ``host:port`` (or ``ray://host:port``) takes no
    connection; ``auto`` and addresses without a port are left to ``ray.init``."""
    import socket

    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as refused:
        raise RayUnreachable(f"cannot join the Ray cluster at {address}: {refused}") from refused


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def _data_context(*, shuffle_strategy: Any = None, preserve_order: bool | None = None) -> Iterator[None]:
    """Ray Data settings for the datasets made (and run) inside the block; the earlier ones
    after it."""
    import ray.data

    context = ray.data.DataContext.get_current()
    kept = (context.shuffle_strategy, context.execution_options.preserve_order)
    if shuffle_strategy is not None:
        context.shuffle_strategy = shuffle_strategy
    if preserve_order is not None:
        context.execution_options.preserve_order = preserve_order
    try:
        yield
    finally:
        context.shuffle_strategy, context.execution_options.preserve_order = kept


@contextlib.contextmanager
def _quieted(quiet: bool) -> Iterator[None]:
    """While Ray starts and its Data context is set: only errors from Ray's loggers. Starting
    logs notices (token authentication, progress bars turned off) that say nothing about the
    run; this engine prints one line per pass instead. Warnings during the run still show."""
    if not quiet:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("ray", "ray.data")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(max(level, logging.WARNING))
