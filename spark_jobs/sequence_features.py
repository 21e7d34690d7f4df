"""user_sequences: each user's last 20 interacted items as of D (input for sequence models).

Built from ``user_daily.last_item_ids`` (spark_jobs.user_features): every day keeps
its own last 20 item ids in event_ts order (ties by event_id), so joining the days
of [as_of - 90, as_of) in dt order and keeping the last 20 gives the user's last 20
before as_of without reading events. An interaction is any event with an item_id
(view, click, add_to_cart, purchase); repeats are kept (a sequence, not a set).
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, IntegerType, StringType, StructField, StructType

from spark_jobs import windows
from spark_jobs.user_features import (
    ROLLUP_LOOKBACK_DAYS,
    SEQUENCE_LENGTH,
)

USER_SEQUENCES_SCHEMA = StructType(
    [
        StructField("user_id", StringType()),
        StructField("as_of", DateType()),
        StructField("last_item_ids", StringType()),  # comma-separated, oldest first
        StructField("sequence_length", IntegerType()),
    ]
)


def user_sequences(user_daily: DataFrame, users: DataFrame, as_of: date) -> DataFrame:
    """``user_sequences_for_dates`` with one date."""
    return user_sequences_for_dates(user_daily, users, [as_of])


def user_sequences_for_dates(user_daily: DataFrame, users: DataFrame, as_of_dates: list[date]) -> DataFrame:
    """One row per (user of ``users``, as_of): last_item_ids ('' without any) and its length.

    Columns: ``USER_SEQUENCES_SCHEMA``.
    """
    dates = windows.sorted_as_of_dates(as_of_dates)
    daily = (
        windows.onto_as_of_dates(user_daily, dates, ROLLUP_LOOKBACK_DAYS)
        .filter(F.coalesce(F.col("last_item_ids"), F.lit("")) != "")
        .select("user_id", "as_of", "dt", "last_item_ids")
    )
    joined_days = daily.groupBy("user_id", "as_of").agg(
        F.sort_array(F.collect_list(F.struct("dt", "last_item_ids"))).alias("_days")
    )
    all_ids = F.split(F.array_join(F.transform("_days", lambda d: d["last_item_ids"]), ","), ",")
    sequences = joined_days.select(
        "user_id",
        "as_of",
        F.slice(all_ids, F.greatest(F.size(all_ids) - SEQUENCE_LENGTH + 1, F.lit(1)), SEQUENCE_LENGTH).alias("_ids"),
    )
    roster = users.filter(F.col("user_id").isNotNull()).select("user_id").distinct()
    out = windows.with_as_of_dates(roster, dates).join(sequences, ["user_id", "as_of"], "left")
    features = {
        "user_id": F.col("user_id"),
        "as_of": F.col("as_of"),
        "last_item_ids": F.coalesce(F.array_join("_ids", ","), F.lit("")),
        "sequence_length": F.when(F.col("_ids").isNull(), F.lit(0)).otherwise(F.size("_ids")),
    }
    return out.select(*[features[f.name].cast(f.dataType).alias(f.name) for f in USER_SEQUENCES_SCHEMA.fields])
