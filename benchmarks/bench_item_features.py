"""Benchmark: a night's item features from 30 days of clean events against the daily partials.

On a lake a night has already run on (``features/item_daily`` and ``item_pairs_daily`` hold the
days of ``[as_of - 30, as_of)``), in one Spark session on ``local[*]``, each step written to
Parquet under a scratch folder and timed after a warm-up:

* **events**: read the clean events of the 30 days, deduplicate them and compute
  ``item_features_with_neighbours_for_dates`` (what every night did before the partials);
* **one day's partials**: the same for the last day alone, written as that day's ``item_daily``
  and ``item_pairs_daily`` (what a night adds now);
* **roll-up**: the 30 days' partials added up into the same item features (what a night reads
  now); its rows must equal the events' rows, or the benchmark fails.

Prints the seconds of each and the ratio of the partials' two steps to the events' one, and
writes ``data/bench/bench_item_features.json``.

    make bench-item-features AS_OF=2026-12-09 [BENCH_LAKE=data/lake]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _timed(step) -> float:
    began = time.perf_counter()
    step()
    return time.perf_counter() - began


def measure(lake: Path, as_of: date, repeats: int = 2) -> dict:
    from spark_jobs import nightly
    from spark_jobs.item_features import (
        ITEM_PAIRS_DAILY_SCHEMA,
        item_features_with_neighbours_for_dates,
        item_pairs_daily,
        roll_up_item_features_with_neighbours_for_dates,
    )
    from spark_jobs.session import build_spark
    from spark_jobs.user_features import ITEM_DAILY_SCHEMA, ITEM_WINDOW_DAYS, dedupe_events, item_daily

    spark = build_spark(master="local[*]", app_name="bench-item-features")
    clean, features = lake / "clean", lake / "features"
    days = [as_of - timedelta(days=k) for k in range(ITEM_WINDOW_DAYS, 0, -1)]
    partitions = nightly._partition_dirs(clean / "events")
    event_dirs = [partitions[d] for d in days if d in partitions]
    missing = [d for d in days if not (features / "item_daily" / f"dt={d.isoformat()}").is_dir()]
    if missing:
        raise SystemExit(f"{lake}: no item_daily partials for {len(missing)} of the 30 days (run a night first)")
    items = nightly._read_snapshot(spark, clean, "items")
    scratch = Path(tempfile.mkdtemp(prefix="bench-item-features-"))

    def from_events() -> None:
        events = nightly._read_partitions(spark, event_dirs, "events")
        out = item_features_with_neighbours_for_dates(events, items, [as_of])
        out.write.mode("overwrite").parquet(str(scratch / "events"))

    def one_day() -> None:
        day = days[-1]
        unique = dedupe_events(nightly._read_partitions(spark, [partitions[day]], "events"))
        item_daily(unique, deduplicated=True).write.mode("overwrite").parquet(str(scratch / "item_daily"))
        item_pairs_daily(unique, deduplicated=True).write.mode("overwrite").parquet(str(scratch / "pairs"))

    def roll_up() -> None:
        out = roll_up_item_features_with_neighbours_for_dates(
            nightly._read_features(spark, features / "item_daily", days, ITEM_DAILY_SCHEMA),
            nightly._read_features(spark, features / "item_pairs_daily", days, ITEM_PAIRS_DAILY_SCHEMA),
            items,
            [as_of],
        )
        out.write.mode("overwrite").parquet(str(scratch / "rollup"))

    try:
        from_events()  # warm-up: JVM, code paths, file cache
        roll_up()
        seconds = {
            name: min(_timed(step) for _ in range(repeats))
            for name, step in (("events", from_events), ("one_day_partials", one_day), ("roll_up", roll_up))
        }
        before = spark.read.parquet(str(scratch / "events")).orderBy("item_id").collect()
        after = spark.read.parquet(str(scratch / "rollup")).orderBy("item_id").collect()
        if before != after:
            raise SystemExit("the roll-up of the partials differs from the events' item features")
        n_events = nightly._read_partitions(spark, event_dirs, "events").count()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    now = seconds["one_day_partials"] + seconds["roll_up"]
    return {
        "lake": str(lake),
        "as_of": as_of.isoformat(),
        "events_30d": n_events,
        "items": len(before),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "partials_over_events": round(now / seconds["events"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake-dir", required=True, type=Path)
    parser.add_argument("--as-of", required=True, type=date.fromisoformat)
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "bench" / "bench_item_features.json")
    args = parser.parse_args(argv)
    result = measure(args.lake_dir, args.as_of)
    s = result["seconds"]
    print(f"{result['events_30d']:,} events over 30 days, {result['items']:,} items, as of {result['as_of']}")
    print(f"| step | s |\n|---|---|\n| from 30 days of events (before) | {s['events']:.1f} |")
    print(
        f"| one day's partials (now) | {s['one_day_partials']:.1f} |\n| roll-up of 30 days' partials (now) | {s['roll_up']:.1f} |"
    )
    print(f"partials / events: {result['partials_over_events']:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
