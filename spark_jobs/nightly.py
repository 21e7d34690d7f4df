"""build_features: the Spark step of promo_nightly for one run date D.

In detail: docs/spark_features.md, section "The nightly job in detail (spark_jobs/nightly.py)".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path

if __package__ in (None, ""):  # spark-submit spark_jobs/nightly.py: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DataType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from promoflow import atomic, contract
from spark_jobs.category_features import user_category_features_for_dates
from spark_jobs.item_features import (
    ITEM_PAIRS_DAILY_SCHEMA,
    item_pairs_daily,
    roll_up_item_features_with_neighbours_for_dates,
)
from spark_jobs.segments import build_segments
from spark_jobs.sequence_features import user_sequences_for_dates
from spark_jobs.session import build_spark, submitted_master_or
from spark_jobs.user_features import (
    ITEM_DAILY_SCHEMA,
    ITEM_WINDOW_DAYS,
    ROLLUP_LOOKBACK_DAYS,
    USER_CATEGORY_DAILY_SCHEMA,
    USER_DAILY_SCHEMA,
    dedupe_events,
    item_daily,
    roll_up_user_features_for_dates,
    user_category_daily,
    user_daily_aggregates,
)
from spark_jobs.windows import date_array

DAILY_SOURCES = ("events", "orders", "exposures")
# 2: user_daily / user_category_daily gained the behaviour columns; 3: item_daily and item_pairs_daily.
# A new version recomputes the days still in clean.
MANIFEST_VERSION = 3
# The daily tables: folder under features/, and the columns their files are sorted by within a day.
DAILY_TABLES = {
    "user_daily": ("user_id",),
    "user_category_daily": ("user_id", "category"),
    "item_daily": ("item_id",),
    "item_pairs_daily": ("kind", "item_id", "other"),
}
# Partition column of run_many's staged roll-ups (files keep their own as_of column).
_PUBLISH_PARTITION = "publish_as_of"


def _spark_type(arrow_type: pa.DataType) -> DataType:
    """The Spark type of a contract column (promoflow.contract's Arrow types)."""
    if pa.types.is_string(arrow_type):
        return StringType()
    if pa.types.is_timestamp(arrow_type):
        return TimestampType()
    if pa.types.is_float64(arrow_type):
        return DoubleType()
    if pa.types.is_int32(arrow_type):
        return IntegerType()
    if pa.types.is_date32(arrow_type):
        return DateType()
    raise TypeError(f"no Spark type for contract type {arrow_type}")


def _contract_columns(table: str, names: list[str]) -> StructType:
    schema = contract.RAW_TABLES[table]
    return StructType([StructField(name, _spark_type(schema.field(name).type)) for name in names])


# Columns the feature stage reads from the clean tables, with the contract's types.
_CLEAN_COLUMNS: dict[str, StructType] = {
    "events": _contract_columns("events", ["event_id", "user_id", "item_id", "event_type", "event_ts", "session_id"]),
    "orders": _contract_columns(
        "orders", ["order_id", "user_id", "order_ts", "gross_amount", "discount_amount", "promo_id"]
    ),
    "exposures": _contract_columns("exposures", ["user_id", "promo_id", "sent_ts", "channel"]),
    "users": _contract_columns("users", ["user_id", "signup_ts"]),
    "items": _contract_columns("items", ["item_id", "category", "price"]),
    "promotions": _contract_columns("promotions", ["promo_id", "promo_type"]),
}

_DT_DIR = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


# ------------------------------------------------------------------ lake paths and listings
def exposure_dates_without_features(lake_dir: str | Path, run_date: date, window_days: int) -> list[date]:
    """Earlier as_of dates that training needs features for: the days in ``[run_date - window_days,
    run_date)`` with a clean exposures partition and no ``user_features`` yet (sorted)."""
    lake = Path(lake_dir)
    start = run_date - timedelta(days=window_days)
    return [
        day
        for day in sorted(_partition_dirs(lake / "clean" / "exposures"))
        if start <= day < run_date and not (lake / "features" / "user_features" / f"as_of={day.isoformat()}").exists()
    ]


def _partition_dirs(table_dir: Path) -> dict[date, Path]:
    """dt partitions under a table folder, by date; hidden / malformed names ignored."""
    found: dict[date, Path] = {}
    if not table_dir.is_dir():
        return found
    for child in table_dir.iterdir():
        match = _DT_DIR.match(child.name)
        if match and child.is_dir():
            try:
                found[date.fromisoformat(match.group(1))] = child
            except ValueError:
                continue
    return found


def _data_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))


def _fingerprint(files: Iterable[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _days(start: date, end: date) -> list[date]:
    """Dates in [start, end)."""
    return [start + timedelta(days=i) for i in range((end - start).days)]


def _read_manifest(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if data.get("version") != MANIFEST_VERSION:
        return {}
    return data.get("days", {})


def _write_json_atomically(path: Path, payload: dict) -> None:
    atomic.write_text(path, json.dumps(payload, indent=1, sort_keys=True))


def _parquet_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(p).num_rows for p in _data_files(folder) if p.suffix == ".parquet")


# ------------------------------------------------------------------ reading
def _as_utc_timestamp(df: DataFrame, name: str) -> Column:
    """A TIMESTAMP column from TIMESTAMP, TIMESTAMP_NTZ (UTC wall time) or nanosecond longs.

    pyarrow writes pandas datetimes as INT64 nanoseconds, which the session reads as
    longs (spark.sql.legacy.parquet.nanosAsLong).
    """
    data_type = df.schema[name].dataType
    if isinstance(data_type, (LongType, IntegerType)):
        return F.timestamp_micros(F.expr(f"`{name}` div 1000"))  # integer division: exact micros
    return F.col(name).cast(TimestampType())


def _conform(df: DataFrame, table: str, source: str) -> DataFrame:
    wanted = _CLEAN_COLUMNS[table]
    missing = [f.name for f in wanted.fields if f.name not in df.columns]
    if missing:
        raise ValueError(
            f"{source}: clean table {table!r} lacks columns {missing}; it must keep the data "
            "contract's columns (re-run ingest_validate for that date)"
        )
    cols = []
    for field in wanted.fields:
        if isinstance(field.dataType, TimestampType):
            col = _as_utc_timestamp(df, field.name)
        else:
            col = F.col(field.name).cast(field.dataType)
        cols.append(col.alias(field.name))
    return df.select(*cols)


def _physical_signature(path: Path, table: str) -> tuple:
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    return tuple(
        (name, str(schema.field(name).type) if name in schema.names else None) for name in _CLEAN_COLUMNS[table].names
    )


def _read_files(spark: SparkSession, files: list[Path], table: str) -> DataFrame:
    """The clean rows of ``files`` with the columns and types of ``_CLEAN_COLUMNS[table]``.

    Files are read in groups of identical physical schema: Spark infers one schema per
    read, and a column that is all null in one file (pyarrow's null type) or stored
    with another timestamp unit would otherwise break the read of the others.
    """
    groups: dict[tuple, list[Path]] = {}
    for path in sorted(files):
        groups.setdefault(_physical_signature(path, table), []).append(path)
    frames = [
        _conform(spark.read.parquet(*[str(p) for p in paths]), table, str(paths[0].parent))
        for _, paths in sorted(groups.items(), key=lambda kv: str(kv[1][0]))
    ]
    if not frames:
        return spark.createDataFrame([], _CLEAN_COLUMNS[table])
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def _read_partitions(spark: SparkSession, dirs: list[Path], table: str) -> DataFrame:
    files = [f for d in dirs for f in _data_files(d) if f.suffix == ".parquet"]
    return _read_files(spark, files, table)


def _read_snapshot(spark: SparkSession, clean: Path, table: str) -> DataFrame:
    path = clean / table / f"{table}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the {table} snapshot is missing; run ingest_validate first")
    return _read_files(spark, [path], table)


def _read_optional_snapshot(spark: SparkSession, clean: Path, table: str) -> DataFrame | None:
    """A snapshot that older lakes may lack (promotions): None when absent."""
    path = clean / table / f"{table}.parquet"
    return _read_files(spark, [path], table) if path.exists() else None


def _read_features(spark: SparkSession, table_dir: Path, days: list[date], schema: StructType) -> DataFrame:
    partitions = _partition_dirs(table_dir)
    dirs = [str(partitions[d]) for d in sorted(days) if d in partitions and _data_files(partitions[d])]
    if not dirs:
        return spark.createDataFrame([], schema)
    return spark.read.schema(schema).option("basePath", str(table_dir)).parquet(*dirs)


# ------------------------------------------------------------------ writing
def _write_daily(df: DataFrame, table_dir: Path) -> None:
    (
        df.repartition("dt")
        .sortWithinPartitions("dt", *DAILY_TABLES[table_dir.name])
        .write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy("dt")
        .parquet(str(table_dir))
    )


def _sort_keys(sort_key: str | tuple[str, ...]) -> list[str]:
    return [sort_key] if isinstance(sort_key, str) else list(sort_key)


def _publish_as_of(df: DataFrame, table_dir: Path, run_date: date, sort_key: str | tuple[str, ...]) -> Path:
    """Write one as_of folder via a hidden temp folder and a rename."""
    table_dir.mkdir(parents=True, exist_ok=True)
    target = table_dir / f"as_of={run_date.isoformat()}"
    token = uuid.uuid4().hex
    tmp = table_dir / f".tmp-{target.name}-{token}"
    for leftover in table_dir.glob(f".tmp-{target.name}-*"):  # from a crashed earlier attempt
        shutil.rmtree(leftover, ignore_errors=True)
    df.repartition(1).sortWithinPartitions(*_sort_keys(sort_key)).write.mode("overwrite").parquet(str(tmp))
    return _move_into_place(tmp, target, token)


def _move_into_place(folder: Path, target: Path, token: str) -> Path:
    """Rename a fully written ``folder`` to ``target``, replacing an existing one."""
    if target.exists():
        old = target.parent / f".old-{target.name}-{token}"
        os.rename(target, old)
        os.rename(folder, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(folder, target)
    return target


# ------------------------------------------------------------------ the job
def run(
    lake_dir: str,
    run_date: date,
    spark_master: str | None = "local[*]",
    shuffle_partitions: int = 8,
    lookback_days: int = 90,
) -> dict:
    """Build the features of night ``run_date`` (data strictly before run_date 00:00 UTC).

    Returns a small summary: the dt partitions computed and the rows written.
    ``run_many`` with this one date.
    """
    if isinstance(run_date, str):
        run_date = date.fromisoformat(run_date)
    summary = run_many(
        lake_dir,
        [run_date],
        spark_master=spark_master,
        shuffle_partitions=shuffle_partitions,
        lookback_days=lookback_days,
    )
    return {
        "run_date": run_date.isoformat(),
        "days_computed": summary["days_computed"],
        "user_daily_rows": summary["user_daily_rows"],
        "user_category_daily_rows": summary["user_category_daily_rows"],
        **summary["as_of"][run_date.isoformat()],
    }


def run_many(
    lake_dir: str,
    as_of_dates: Iterable[date],
    spark_master: str | None = "local[*]",
    shuffle_partitions: int = 8,
    lookback_days: int = 90,
    training_dates: Iterable[date] = (),
) -> dict:
    """Build the features as of each of ``as_of_dates`` at once (a first night's backfill).

    The same outputs as one ``run`` per date, for a fixed Spark cost: the missing daily
    partitions of the union of the dates' windows are computed once, then one Spark job
    rolls up user_features for every date and one item_features, each written
    partitioned by date to a hidden temp folder whose partitions are renamed into
    place as ``as_of=D`` (replacing an existing one; other dates are left alone).

    ``training_dates``: dates of ``as_of_dates`` that only training reads (a first
    night's past exposure dates): they get user_features alone, and only the rows of
    the users with a clean exposure that day, the rows training's point-in-time join
    reads, each the row a full roll-up of the date holds. So a first night's work grows
    with the exposures' histories, not with users x dates. user_category_features,
    user_sequences and item_features are built for the other dates.

    Returns the dt partitions computed, the daily rows written and, under ``as_of``,
    the rows and folder of each date's tables.
    """
    dates = sorted({date.fromisoformat(d) if isinstance(d, str) else d for d in as_of_dates})
    if not dates:
        raise ValueError("as_of_dates is empty: give at least one as_of date")
    partial = {date.fromisoformat(d) if isinstance(d, str) else d for d in training_dates}
    full_dates = [d for d in dates if d not in partial]
    if partial - set(dates) or not full_dates:
        raise ValueError(
            f"training_dates {sorted(map(str, partial))} must be a proper subset of as_of_dates {[str(d) for d in dates]}"
        )
    lake = Path(lake_dir)
    clean = lake / "clean"
    features = lake / "features"
    user_daily_dir = features / "user_daily"
    category_daily_dir = features / "user_category_daily"

    spark = build_spark(master=spark_master, shuffle_partitions=shuffle_partitions)

    clean_partitions, to_compute, user_daily_rows, category_daily_rows = _update_daily_partitions(
        spark, clean, features, dates, lookback_days
    )

    # --- roll-ups, all dates in one pass each
    rollup_days = sorted(_window_days(dates, ROLLUP_LOOKBACK_DAYS))
    users = _read_snapshot(spark, clean, "users")
    items = _read_snapshot(spark, clean, "items")
    user_daily_df = _read_features(spark, user_daily_dir, rollup_days, USER_DAILY_SCHEMA)
    category_daily_df = _read_features(spark, category_daily_dir, rollup_days, USER_CATEGORY_DAILY_SCHEMA)
    user_features_df = roll_up_user_features_for_dates(user_daily_df, category_daily_df, users, full_dates)
    if partial:
        training_rows = roll_up_user_features_for_dates(
            user_daily_df,
            category_daily_df,
            users,
            sorted(partial),
            targets=_exposed_users(spark, clean_partitions["exposures"], sorted(partial)),
        )
        user_features_df = user_features_df.unionByName(training_rows)
    user_features_paths = _publish_as_of_dates(user_features_df, features / "user_features", dates, "user_id")
    category_paths = _publish_as_of_dates(
        user_category_features_for_dates(category_daily_df, full_dates),
        features / "user_category_features",
        full_dates,
        ("user_id", "rank"),
    )
    sequence_paths = _publish_as_of_dates(
        user_sequences_for_dates(user_daily_df, users, full_dates), features / "user_sequences", full_dates, "user_id"
    )
    segments = _publish_segments(spark, features, max(dates))

    # Item features add up the daily partials of the 30-day windows: no event is re-read.
    item_days = sorted(_window_days(full_dates, ITEM_WINDOW_DAYS))
    item_features_paths = _publish_as_of_dates(
        roll_up_item_features_with_neighbours_for_dates(
            _read_features(spark, features / "item_daily", item_days, ITEM_DAILY_SCHEMA),
            _read_features(spark, features / "item_pairs_daily", item_days, ITEM_PAIRS_DAILY_SCHEMA),
            items,
            full_dates,
            neighbour_dates=[max(dates)],
        ),
        features / "item_features",
        full_dates,
        "item_id",
        keep_as_of=False,
    )

    return {
        "as_of_dates": [d.isoformat() for d in dates],
        "days_computed": [d.isoformat() for d in to_compute],
        "user_daily_rows": user_daily_rows,
        "user_category_daily_rows": category_daily_rows,
        "as_of": {
            d.isoformat(): {
                "user_features_rows": _parquet_rows(user_features_paths[d]),
                "user_features_path": str(user_features_paths[d]),
                **(
                    {
                        "item_features_rows": _parquet_rows(item_features_paths[d]),
                        "user_category_features_rows": _parquet_rows(category_paths[d]),
                        "user_sequences_rows": _parquet_rows(sequence_paths[d]),
                        "item_features_path": str(item_features_paths[d]),
                        "user_category_features_path": str(category_paths[d]),
                        "user_sequences_path": str(sequence_paths[d]),
                    }
                    if d in item_features_paths
                    else {}
                ),
                **(segments if d == max(dates) else {}),
            }
            for d in dates
        },
    }


def _update_daily_partitions(
    spark: SparkSession, clean: Path, features: Path, dates: list[date], lookback_days: int
) -> tuple[dict[str, dict[date, Path]], list[date], int, int]:
    """(Re)compute the daily partitions of the dates' windows that are new or changed since last written.

    Every table of ``DAILY_TABLES`` gets the day's partition from the same deduplicated
    events. Returns the clean partitions by table, the days computed and the user_daily /
    user_category_daily rows written.
    """
    manifest_path = features / "_state" / "daily_manifest.json"
    window = _window_days(dates, lookback_days)
    clean_partitions = {t: _partition_dirs(clean / t) for t in DAILY_SOURCES}
    fingerprints: dict[date, str] = {}
    for day in sorted(window):
        files = [f for t in DAILY_SOURCES if day in clean_partitions[t] for f in _data_files(clean_partitions[t][day])]
        if files:
            fingerprints[day] = _fingerprint(files, clean)

    manifest = _read_manifest(manifest_path)
    existing = {table: _partition_dirs(features / table) for table in DAILY_TABLES}

    def up_to_date(day: date) -> bool:
        entry = manifest.get(day.isoformat())
        if entry is None or entry.get("fingerprint") != fingerprints[day]:
            return False
        return all(entry.get(f"{table}_rows", 0) == 0 or day in existing[table] for table in DAILY_TABLES)

    # Days whose clean partitions have gone (retention) keep their daily rows: those are
    # the durable history the roll-up adds up.
    to_compute = sorted(d for d in fingerprints if not up_to_date(d))

    rows = dict.fromkeys(DAILY_TABLES, 0)
    if to_compute:
        events, orders, exposures = (
            _read_partitions(spark, [clean_partitions[t][d] for d in to_compute if d in clean_partitions[t]], t)
            for t in DAILY_SOURCES
        )
        items = _read_snapshot(spark, clean, "items")
        promotions = _read_optional_snapshot(spark, clean, "promotions")
        # A row is kept only in its own day's partition: dynamic overwrite must not
        # replace a day that is not being recomputed.
        days_col = [F.lit(d) for d in to_compute]
        # Deduplicated once for every table (a shuffle of every event), kept until all are written.
        unique_events = dedupe_events(events).persist(StorageLevel.MEMORY_AND_DISK)
        tables = {
            "user_daily": user_daily_aggregates(unique_events, orders, exposures, items, promotions, deduplicated=True),
            "user_category_daily": user_category_daily(unique_events, items, deduplicated=True),
            "item_daily": item_daily(unique_events, deduplicated=True),
            "item_pairs_daily": item_pairs_daily(unique_events, deduplicated=True),
        }
        before = {d: set().union(*(_files_of(existing[t].get(d)) for t in DAILY_TABLES)) for d in to_compute}
        try:
            for table, df in tables.items():
                _write_daily(df.filter(F.col("dt").isin(*days_col)), features / table)
        finally:
            unique_events.unpersist()
        _remove_unrewritten(to_compute, before, *(features / t for t in DAILY_TABLES))

        written = {table: _partition_dirs(features / table) for table in DAILY_TABLES}
        for day in to_compute:
            counts = {t: _parquet_rows(written[t][day]) if day in written[t] else 0 for t in DAILY_TABLES}
            for table, n in counts.items():
                rows[table] += n
            manifest[day.isoformat()] = {
                "fingerprint": fingerprints[day],
                **{f"{table}_rows": n for table, n in counts.items()},
            }
        _write_json_atomically(manifest_path, {"version": MANIFEST_VERSION, "days": manifest})

    return clean_partitions, to_compute, rows["user_daily"], rows["user_category_daily"]


def _exposed_users(spark: SparkSession, exposure_partitions: dict[date, Path], days: list[date]) -> DataFrame:
    """(user_id, as_of): the users with a clean exposure on each of ``days`` (ingest keeps an
    exposure in the partition of its sent_ts's UTC day), as_of that day."""
    exposures = _read_partitions(spark, [exposure_partitions[d] for d in days if d in exposure_partitions], "exposures")
    # as_of picked out of the literal dates (not to_date's nullable column), as the full roll-up's
    same_day = F.filter(date_array(days), lambda day: day == F.to_date("sent_ts"))
    return (
        exposures.filter(F.col("user_id").isNotNull()).select("user_id", F.explode(same_day).alias("as_of")).distinct()
    )


def _publish_segments(spark: SparkSession, features: Path, as_of: date) -> dict:
    """Tonight's customer segments (spark_jobs.segments) with ids matched to the last earlier night's."""
    state_dir = features / "_state" / "segments"
    earlier = sorted(p for p in state_dir.glob("as_of=*.json") if p.stem.split("=", 1)[1] < as_of.isoformat())
    previous = json.loads(earlier[-1].read_text()) if earlier else None
    user_features = spark.read.parquet(str(features / "user_features" / f"as_of={as_of.isoformat()}"))
    assigned, state = build_segments(user_features, previous)
    path = _publish_as_of(assigned, features / "user_segments", as_of, "user_id")
    state_dir.mkdir(parents=True, exist_ok=True)
    _write_json_atomically(state_dir / f"as_of={as_of.isoformat()}.json", state)
    return {"user_segments_rows": _parquet_rows(path), "user_segments_path": str(path), "segments": state["names"]}


def _window_days(dates: Iterable[date], days: int) -> set[date]:
    """The union of the windows [D - days, D) of ``dates``."""
    return {day for d in dates for day in _days(d - timedelta(days=days), d)}


def _publish_as_of_dates(
    df: DataFrame, table_dir: Path, dates: list[date], sort_key: str | tuple[str, ...], keep_as_of: bool = True
) -> dict[date, Path]:
    """Publish the rows of each date (column ``as_of``) of ``df`` as folder ``as_of=D``.

    One Spark job writes all dates partitioned by date into a hidden temp folder, one
    part file sorted by ``sort_key`` per date; each date's folder is then renamed into
    place as in ``_publish_as_of``. ``keep_as_of=False`` leaves the as_of column out of
    the files (item_features). A date without rows gets an empty file, as a single-date
    write does.
    """
    if len(dates) == 1:
        only = df if keep_as_of else df.drop("as_of")
        return {dates[0]: _publish_as_of(only, table_dir, dates[0], sort_key)}

    table_dir.mkdir(parents=True, exist_ok=True)
    for leftover in table_dir.glob(".tmp-batch-*"):  # from a crashed earlier attempt
        shutil.rmtree(leftover, ignore_errors=True)
    token = uuid.uuid4().hex
    tmp = table_dir / f".tmp-batch-{token}"
    staged = df.withColumn(_PUBLISH_PARTITION, F.col("as_of"))
    if not keep_as_of:
        staged = staged.drop("as_of")
    (
        staged.repartition(_PUBLISH_PARTITION)  # all rows of a date in one task: one file per date
        .sortWithinPartitions(_PUBLISH_PARTITION, *_sort_keys(sort_key))
        .write.mode("overwrite")
        .partitionBy(_PUBLISH_PARTITION)
        .parquet(str(tmp))
    )
    published: dict[date, Path] = {}
    try:
        for day in dates:
            folder = tmp / f"{_PUBLISH_PARTITION}={day.isoformat()}"
            if not folder.is_dir():  # no rows that date: Spark wrote no folder
                only = df.filter(F.col("as_of") == F.lit(day))
                published[day] = _publish_as_of(only if keep_as_of else only.drop("as_of"), table_dir, day, sort_key)
                continue
            published[day] = _move_into_place(folder, table_dir / f"as_of={day.isoformat()}", token)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return published


def _files_of(folder: Path | None) -> set[str]:
    return {str(p) for p in _data_files(folder)} if folder is not None else set()


def _remove_unrewritten(days: list[date], before: dict[date, set[str]], *table_dirs: Path) -> None:
    """Drop partitions of recomputed days that the write left untouched (the day now has no rows).

    Dynamic overwrite only replaces partitions present in the output, so a day whose
    recomputation came out empty would otherwise keep its old rows. Spark names every
    written file uniquely, so an untouched partition still holds exactly its old files.
    """
    for day in days:
        for table_dir in table_dirs:
            folder = table_dir / f"dt={day.isoformat()}"
            if folder.is_dir() and _files_of(folder) and _files_of(folder) <= before[day]:
                shutil.rmtree(folder)


# ------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spark_jobs.nightly", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake-dir", required=True, help="the lake folder (PROMO_LAKE_DIR)")
    parser.add_argument("--run-date", required=True, type=date.fromisoformat, help="run date D, YYYY-MM-DD")
    parser.add_argument(
        "--master",
        default=None,
        help="Spark master, e.g. local[*] or spark://host:7077; default: spark-submit's --master, else local[*]",
    )
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--lookback-days", type=int, default=90)
    args = parser.parse_args(argv)
    summary = run(
        args.lake_dir,
        args.run_date,
        spark_master=args.master or submitted_master_or("local[*]"),
        shuffle_partitions=args.shuffle_partitions,
        lookback_days=args.lookback_days,
    )
    print(json.dumps(summary, indent=1))
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
