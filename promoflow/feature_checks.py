"""GX checkpoint at the Spark -> warehouse hand-off: the night's user features.

Runs on GX's Spark execution engine over the Parquet the Spark job wrote, so
the feature table (one row per user) is never loaded into pandas.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from promoflow import quality
from promoflow.settings import Settings

SHARE_COLUMNS = (
    "cart_to_order_rate_30d",
    "discount_order_share_90d",
    "redemption_rate_90d",
    "cart_abandonment_rate_30d",
)


def user_feature_expectations(n_users: int) -> list:
    import great_expectations as gx

    E = gx.expectations
    exps = [
        E.ExpectTableRowCountToEqual(value=n_users),  # one row per user of the snapshot, active or not
        E.ExpectColumnValuesToBeUnique(column="user_id"),
        E.ExpectColumnValuesToBeBetween(column="tenure_days", min_value=0),
        E.ExpectColumnValuesToBeBetween(column="preferred_hour", min_value=0, max_value=23),
    ]
    # Each expectation is at least one Spark job: check the columns whose defaults and
    # ranges later stages rely on, not every column (the Spark tests pin the rest).
    exps += [E.ExpectColumnValuesToNotBeNull(column=c) for c in ("user_id", "top_category", "days_since_last_event")]
    exps += [
        E.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in ("spend_90d", "views_30d", "exposures_30d")
    ]
    exps += [E.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=1) for c in SHARE_COLUMNS]
    exps.append(E.ExpectColumnValuesToBeBetween(column="days_since_last_order", min_value=0, max_value=999))
    # orders_7d <= orders_30d <= orders_90d: windows nest
    exps.append(E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="orders_30d", column_B="orders_7d", or_equal=True))
    exps.append(E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="orders_90d", column_B="orders_30d", or_equal=True))
    return exps


def validate_clean_events(settings: Settings, partitions: list[str]) -> dict:
    """GX checkpoint (Spark engine) over the event partitions ingested tonight, e.g. ``["dt=2026-10-30"]``."""
    from promoflow.ingest import TABLES, expectations
    from spark_jobs.session import build_spark

    if not partitions:
        return {"event_partitions_checked": 0}
    spark = build_spark(master=settings.spark_master, shuffle_partitions=settings.spark_shuffle_partitions)
    paths = [str(Path(settings.lake_dir) / "clean" / "events" / p) for p in sorted(partitions)]
    events = spark.read.parquet(*paths)  # partition folders read directly: no dt column is added
    result = quality.run_checkpoint(
        settings.data_dir, "raw_events", events, expectations(TABLES["events"]), engine="spark"
    )
    result.raise_if_failed("Clean events do not meet the contract; fix the source and re-run the date.")
    return {"event_partitions_checked": len(paths)}


def validate_user_features(settings: Settings, run_date: date) -> dict:
    """Check ``features/user_features/as_of=run_date``; raises DataQualityError before anything is loaded."""
    from spark_jobs.session import build_spark

    spark = build_spark(master=settings.spark_master, shuffle_partitions=settings.spark_shuffle_partitions)
    lake = Path(settings.lake_dir)
    features = spark.read.parquet(str(lake / "features" / "user_features" / f"as_of={run_date.isoformat()}"))
    n_users = spark.read.parquet(str(lake / "clean" / "users" / "users.parquet")).count()
    result = quality.run_checkpoint(
        settings.data_dir, "user_features", features, user_feature_expectations(n_users), engine="spark"
    )
    result.raise_if_failed(
        f"The Spark features as of {run_date} are not fit for training and scoring; "
        "fix the feature job or its input and re-run the date."
    )
    return {"user_feature_rows": n_users, "checks": "passed"}
