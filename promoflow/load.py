"""Load the validated lake into the warehouse's ``raw`` schema (the EL of ELT).

Snapshots are replaced; dated partitions are delete+insert per partition, and
only partitions whose files changed since their last load are touched, so a
night loads one day's new data and a re-run loads nothing twice.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from promoflow.ingest import PARTITIONED, SNAPSHOTS
from promoflow.settings import Settings
from promoflow.warehouse import Warehouse


def _partitions(folder: Path, key: str) -> list[tuple[date, list[Path]]]:
    out = []
    for part in sorted(folder.glob(f"{key}=*")):
        files = sorted(part.glob("*.parquet"))
        if files:
            out.append((date.fromisoformat(part.name.split("=", 1)[1]), files))
    return out


def load_lake(settings: Settings, run_date: date) -> dict[str, int]:
    """Load clean tables, quarantine rows and the night's Spark features; return partitions loaded per table."""
    lake = Path(settings.lake_dir)
    loaded: dict[str, int] = {}

    def count(table: str, did_load: bool) -> None:
        loaded[table] = loaded.get(table, 0) + int(did_load)

    with Warehouse(settings) as wh:
        wh.ensure_promo_assignments()
        wh.ensure_promo_runs()
        for table in SNAPSHOTS:
            count(table, wh.load_files(table, [lake / "clean" / table / f"{table}.parquet"], where=None))
        for table in PARTITIONED:
            for day, files in _partitions(lake / "clean" / table, "dt"):
                count(table, wh.load_files(table, files, where={"dt": day}, extra={"dt": day}))
        for table_dir in sorted((lake / "quarantine").glob("*")):
            partitions = [(f"dt={day.isoformat()}", files) for day, files in _partitions(table_dir, "dt")]
            snapshot = sorted((table_dir / "snapshot").glob("*.parquet"))
            partitions += [("snapshot", snapshot)] if snapshot else []
            for partition, files in partitions:
                where = {"table_name": table_dir.name, "partition": partition}
                count("quarantine", wh.load_files("quarantine", files, where=where))
        features = lake / "features"
        for day, files in _partitions(features / "user_daily", "dt"):
            count(
                "user_daily_activity", wh.load_files("user_daily_activity", files, where={"dt": day}, extra={"dt": day})
            )
        for table in ("user_features", "item_features", "user_segments"):
            for as_of, files in _partitions(features / table, "as_of"):
                count(table, wh.load_files(table, files, where={"as_of": as_of}, extra={"as_of": as_of}))
    return loaded
