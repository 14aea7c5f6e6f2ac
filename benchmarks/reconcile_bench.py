"""Reconcile benchmark: synthetic records over many fictional incidents.

Not a test. Run:

    .venv/bin/python benchmarks/reconcile_bench.py                # 10k, 30k, 100k
    .venv/bin/python benchmarks/reconcile_bench.py --sizes 1000000 --in-memory-limit 0

Each size builds records for incidents of 3-8 records each, with the
disagreements real coverage has (spelling variants, surname-only names,
suburb vs metro, relative weekdays, singular vs plural counts, severity
wording, one statement relayed by several outlets), written to a records.jsonl
file as they are made. Each size then runs in a process of its own, so its peak
memory is its own:

* the CLI path at scale: ``reconcile_to_dir`` over that file's lines
  (``spill.RecordLines``, as ``triangulate reconcile`` and ``run`` pass them), so
  records are spilled to disk as they are, parsed by one worker process per CPU
  (``--workers``), and only their clustering features and one incident's records
  are in memory; incidents are judged by the same number of workers
  (``--models`` reads records into models in the main process instead, the
  path of a caller with an iterable of records);
* the in-memory API (``reconcile`` over a list of records, the whole result as
  models), up to ``--in-memory-limit`` records.

Reported: wall-clock and CPU seconds (the CPU figure counts the worker
processes too; it is the fairer one on a shared machine), the peak resident
memory of the process and of its largest worker (``ru_maxrss``), and the growth
exponent: the slope of log(seconds) against log(records).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pipeline.kinds.gazetteer import get_gazetteer
from pipeline.reconcile.merge import reconcile, reconcile_to_dir
from pipeline.reconcile.spill import RecordLines
from schemas.record import IncidentRecord

FIRST = [
    "Ana", "Bruno", "Carmen", "Dario", "Elena", "Felix", "Gloria", "Hector", "Ines", "Jorge", "Karla",
    "Luis", "Marta", "Nico", "Olga", "Pablo", "Rosa", "Saul", "Tania", "Ulises", "Vera", "Walter",
]  # fmt: skip
SYLLABLES = ["ar", "ben", "cor", "del", "es", "far", "gal", "hor", "ir", "jal", "ken", "lor", "mar",
             "nez", "or", "pra", "quin", "ros", "sal", "tor", "ur", "val", "zam"]  # fmt: skip
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
OUTLETS = [f"Outlet {i:02d}" for i in range(40)]
STATEMENT = "During the stop the driver {verb} toward officer {n} and the officer fired to stop the threat."


def _surname(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def _misspell(name: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(name) - 1)
    return name[:i] + rng.choice("aeiouz") + name[i + 1 :]


def _cited(value: Any, quote: str, attribution: str = "outlet") -> dict[str, Any]:
    return {"value": value, "quote": quote, "attribution": attribution}


def _places() -> list[tuple[str, str, str | None]]:
    """(city, state, metro core name or None) pairs from the gazetteer's US cities."""
    gazetteer = get_gazetteer()
    places: list[tuple[str, str, str | None]] = []
    for big in gazetteer.large_cities():
        if big.country != "US":
            continue
        places.append((big.name, big.admin1, None))
    for name in ("Tempe", "Mesa", "Franklin Park", "Evanston", "Pasadena", "Irving", "Aurora"):
        for admin1 in ("AZ", "IL", "CA", "TX", "CO"):
            city = gazetteer.city(name, admin1, "US")
            if city is not None:
                core = gazetteer.metro_core(city)
                places.append((city.name, admin1, core.name if core.geonameid != city.geonameid else None))
    return places


def synthetic_records(n_records: int, seed: int = 7) -> list[IncidentRecord]:
    return list(iter_synthetic_records(n_records, seed))


def iter_synthetic_records(n_records: int, seed: int = 7) -> Iterator[IncidentRecord]:
    """The records one at a time: a million of them do not fit in memory as models."""
    rng = random.Random(seed)
    places = _places()
    made = 0
    incident = 0
    while made < n_records:
        incident += 1
        first, last = rng.choice(FIRST), f"{_surname(rng)}-{_surname(rng)}"
        full = f"{first} {last}"
        city, state, metro = rng.choice(places)
        day = date(2023, 1, 1) + timedelta(days=rng.randrange(3 * 365))
        age = rng.randint(18, 70)
        fired = rng.choice(["1", "1", "2"])
        statement = STATEMENT.format(verb=rng.choice(["accelerated", "drove", "swerved"]), n=incident)
        for k in range(min(rng.randint(3, 8), n_records - made)):
            published = day + timedelta(days=rng.randint(0, 4))
            first_surname = last.split("-")[0]
            variants = [full, _misspell(full, rng), first_surname, f"{first} {first_surname}"]
            name = rng.choices(variants, weights=[6, 1, 1, 1])[0]
            place = metro if metro and rng.random() < 0.3 else city
            if rng.random() < 0.5:
                date_value = day.isoformat()
                phrase = WEEKDAYS[day.weekday()]
            else:
                date_value = None
                phrase = (
                    "last " if published - day >= timedelta(days=1) and rng.random() < 0.5 else ""
                ) + WEEKDAYS[day.weekday()]
            facts: dict[str, Any] = {
                "when": {
                    "date": _cited(date_value, f"on {phrase}") if date_value else None,
                    "raw_phrase": _cited(phrase, f"on {phrase}"),
                },
                "where": {
                    "city": _cited(place, f"in {place}"),
                    "state": _cited(state, f"in {place}, {state}") if rng.random() < 0.5 else None,
                },
                "what": {"event_type": _cited("shooting", "a shooting")},
                "agencies": [
                    {"name": _cited(rng.choice(["ICE", "U.S. Immigration and Customs Enforcement"]), "ICE")}
                ],
                "subjects": [
                    {
                        "name": _cited(name, f"identified as {name}"),
                        "age": _cited(age, f"{age}-year-old") if rng.random() < 0.6 else None,
                        "outcome": _cited("killed", "was killed"),
                        "place_of_death": _cited(
                            rng.choice(["at the scene", "at the hospital"]), "pronounced dead"
                        ),
                    }
                ],
                "officers": {
                    "count_fired": _cited(rng.choice([fired, fired, "agents"]), "fired"),
                    "injuries": _cited(
                        rng.choice(["serious injuries", "several injuries", "multiple injuries"]), "hurt"
                    ),
                },
                "statements": [
                    {"speaker": "Press Officer", "affiliation": "ICE", "quote": statement}
                    for _ in range(1 if rng.random() < 0.6 else 0)
                ],
            }
            article_id = f"sha256:{incident:012d}{k:04d}"
            facts["article_id"] = article_id
            facts["provenance"] = {
                "article_id": article_id,
                "outlet": rng.choice(OUTLETS),
                "published": published.isoformat(),
            }
            made += 1
            yield IncidentRecord.model_validate(facts)


def _maxrss_mib(who: int = resource.RUSAGE_SELF) -> float:
    # ru_maxrss is KiB on Linux; for RUSAGE_CHILDREN, that of the largest child.
    return resource.getrusage(who).ru_maxrss / 1024.0


def _slope(rows: list[dict[str, Any]], key: str) -> float:
    """Least-squares slope of log(time) against log(records)."""
    xs = [math.log(r["records"]) for r in rows]
    ys = [math.log(r[key]) for r in rows]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return covariance / sum((x - mean_x) ** 2 for x in xs)


def _timed(fn: Any) -> tuple[Any, float, float]:
    def cpu() -> float:
        # The worker processes' CPU counts once they have been waited for.
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    t0, cpu0 = time.perf_counter(), cpu()
    value = fn()
    return value, time.perf_counter() - t0, cpu() - cpu0


def _read(path: Path) -> Iterator[IncidentRecord]:
    with path.open("rb") as handle:
        for line in handle:
            yield IncidentRecord.model_validate_json(line)


def measure(size: int, in_memory_limit: int, workers: int | None, *, models: bool = False) -> dict[str, Any]:
    """One size, in the process that runs it (see ``run``)."""
    get_gazetteer()  # load once, outside the timings
    with tempfile.TemporaryDirectory() as tmp:
        records_path = Path(tmp) / "records.jsonl"
        t0 = time.perf_counter()
        with records_path.open("w", encoding="utf-8") as out:
            for record in iter_synthetic_records(size):
                out.write(record.model_dump_json() + "\n")
        build_s = time.perf_counter() - t0
        gc.collect()
        before_rss = _maxrss_mib()
        counts, stream_s, stream_cpu_s = _timed(
            lambda: reconcile_to_dir(
                _read(records_path) if models else RecordLines.from_file(records_path),
                Path(tmp) / "out",
                workers=workers,
            )
        )
        row: dict[str, Any] = {
            "records": size,
            "incidents": counts.incidents,
            "conflicts": sum(counts.verdicts.values()),
            "build_s": round(build_s, 2),
            "cli_stream_s": round(stream_s, 2),
            "cli_stream_cpu_s": round(stream_cpu_s, 2),
            "maxrss_mib_before": round(before_rss, 1),
            "maxrss_mib_after_stream": round(_maxrss_mib(), 1),
            "maxrss_mib_largest_worker": round(_maxrss_mib(resource.RUSAGE_CHILDREN), 1),
        }
        if size <= in_memory_limit:
            records = list(_read(records_path))
            gc.collect()
            result, seconds, cpu_seconds = _timed(lambda: reconcile(records))
            assert len(result.incidents) == counts.incidents
            row["in_memory_s"] = round(seconds, 2)
            row["in_memory_cpu_s"] = round(cpu_seconds, 2)
            row["maxrss_mib_after_in_memory"] = round(_maxrss_mib(), 1)
    return row


def run(
    sizes: list[int], in_memory_limit: int, workers: int | None, *, models: bool = False
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for size in sizes:
        # A process per size: ru_maxrss only grows, so one process would report the
        # largest size's peak for every size after it.
        argv = [sys.executable, __file__, "--one", str(size), "--in-memory-limit", str(in_memory_limit)]
        if workers is not None:
            argv += ["--workers", str(workers)]
        if models:
            argv.append("--models")
        done = subprocess.run(argv, check=True, capture_output=True, text=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary: dict[str, Any] = {"load_average_1min": round(os.getloadavg()[0], 2)}
    if len(rows) >= 2:
        summary["growth_exponent_cli_stream_wall"] = round(_slope(rows, "cli_stream_s"), 3)
        summary["growth_exponent_cli_stream_cpu"] = round(_slope(rows, "cli_stream_cpu_s"), 3)
        in_memory = [r for r in rows if "in_memory_s" in r]
        if len(in_memory) >= 2:
            summary["growth_exponent_in_memory_wall"] = round(_slope(in_memory, "in_memory_s"), 3)
            summary["growth_exponent_in_memory_cpu"] = round(_slope(in_memory, "in_memory_cpu_s"), 3)
    print(json.dumps(summary))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument(
        "--in-memory-limit", type=int, default=100_000, help="Time the in-memory API only up to this size."
    )
    parser.add_argument("--workers", type=int, help="Worker processes (default: one per available CPU).")
    parser.add_argument(
        "--models", action="store_true", help="Stream records as models parsed in the main process."
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a size, in this process
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.one, args.in_memory_limit, args.workers, models=args.models)))
        return 0
    run(args.sizes, args.in_memory_limit, args.workers, models=args.models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
