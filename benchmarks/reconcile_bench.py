"""Reconcile benchmark: synthetic records over many fictional incidents.

Not a test. Run:

    .venv/bin/python benchmarks/reconcile_bench.py                # 1k, 10k, 100k
    .venv/bin/python benchmarks/reconcile_bench.py --sizes 1000 10000

Each size builds records for incidents of 3-8 records each, with the
disagreements real coverage has (spelling variants, surname-only names,
suburb vs metro, relative weekdays, singular vs plural counts, severity
wording, one statement relayed by several outlets). Records are built in
memory first; then it times the CLI path (``reconcile_to_dir``: judge and
write incidents.jsonl/conflicts.jsonl as it goes) and the in-memory API
(``reconcile``: the whole result as models), in wall-clock and CPU seconds
(the CPU figure is the fairer one on a shared machine), reports peak memory of the process
(``ru_maxrss``) and of Python allocations during reconcile (tracemalloc is
too slow at 100k, so it is only used for sizes up to --trace-limit), and the
growth exponent: the slope of log(seconds) against log(records).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pipeline.kinds.gazetteer import get_gazetteer
from pipeline.reconcile.merge import reconcile, reconcile_to_dir
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
    rng = random.Random(seed)
    places = _places()
    records: list[IncidentRecord] = []
    incident = 0
    while len(records) < n_records:
        incident += 1
        first, last = rng.choice(FIRST), f"{_surname(rng)}-{_surname(rng)}"
        full = f"{first} {last}"
        city, state, metro = rng.choice(places)
        day = date(2023, 1, 1) + timedelta(days=rng.randrange(3 * 365))
        age = rng.randint(18, 70)
        fired = rng.choice(["1", "1", "2"])
        statement = STATEMENT.format(verb=rng.choice(["accelerated", "drove", "swerved"]), n=incident)
        for k in range(min(rng.randint(3, 8), n_records - len(records))):
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
            records.append(IncidentRecord.model_validate(facts))
    return records


def _maxrss_mib() -> float:
    # ru_maxrss is KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _slope(rows: list[dict[str, Any]], key: str) -> float:
    """Least-squares slope of log(time) against log(records)."""
    xs = [math.log(r["records"]) for r in rows]
    ys = [math.log(r[key]) for r in rows]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    return covariance / sum((x - mean_x) ** 2 for x in xs)


def _timed(fn: Any) -> tuple[Any, float, float]:
    t0, cpu0 = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - t0, time.process_time() - cpu0


def _traced_peak_mib(fn: Any) -> float:
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak


def measure(size: int, trace_limit: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    records = synthetic_records(size)
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        # The CLI path first, so the process peak right after it is the streamed one.
        gc.collect()
        counts, stream_s, stream_cpu_s = _timed(lambda: reconcile_to_dir(records, out))
        stream_rss = _maxrss_mib()
        gc.collect()
        result, seconds, cpu_seconds = _timed(lambda: reconcile(records))
        memory_rss = _maxrss_mib()
        n_incidents, n_conflicts = len(result.incidents), len(result.conflicts)
        del result
        stream_peak = memory_peak = None
        if size <= trace_limit:
            # Separate traced runs: tracemalloc slows Python several-fold, so
            # it never touches the timings above.
            stream_peak = _traced_peak_mib(lambda: reconcile_to_dir(records, out))
            memory_peak = _traced_peak_mib(lambda: reconcile(records))
    assert counts.incidents == n_incidents
    return {
        "records": size,
        "incidents": n_incidents,
        "conflicts": n_conflicts,
        "build_s": round(build_s, 2),
        "cli_stream_s": round(stream_s, 2),
        "cli_stream_cpu_s": round(stream_cpu_s, 2),
        "in_memory_s": round(seconds, 2),
        "in_memory_cpu_s": round(cpu_seconds, 2),
        "tracemalloc_peak_mib_stream": round(stream_peak, 1) if stream_peak is not None else None,
        "tracemalloc_peak_mib_in_memory": round(memory_peak, 1) if memory_peak is not None else None,
        "maxrss_mib_after_stream": round(stream_rss, 1),
        "maxrss_mib_after_in_memory": round(memory_rss, 1),
    }


def run(sizes: list[int], trace_limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    get_gazetteer()  # load once, outside the timings
    for size in sizes:
        row = measure(size, trace_limit)
        rows.append(row)
        print(json.dumps(row), flush=True)
        gc.collect()
    if len(rows) >= 2:
        summary = {
            "growth_exponent_cli_stream_wall": round(_slope(rows, "cli_stream_s"), 3),
            "growth_exponent_cli_stream_cpu": round(_slope(rows, "cli_stream_cpu_s"), 3),
            "growth_exponent_in_memory_wall": round(_slope(rows, "in_memory_s"), 3),
            "growth_exponent_in_memory_cpu": round(_slope(rows, "in_memory_cpu_s"), 3),
            "load_average_1min": round(os.getloadavg()[0], 2),
        }
        print(json.dumps(summary))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument(
        "--trace-limit", type=int, default=10_000, help="Use tracemalloc only up to this many records."
    )
    args = parser.parse_args(argv)
    run(args.sizes, args.trace_limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
