"""user_category_features: a user's affinity to each category, as of D, from daily rows.

Rolls up ``user_category_daily`` (spark_jobs.user_features) over the 90 days
[as_of - 90, as_of), so the nightly work reads daily partial aggregates, not events.
One row per (user, category) with any view, add_to_cart or purchase in the window;
users without such events have no rows here (their top_category_1..3 on
user_features are '').

affinity_score = views + carts + purchases in 90 days, the score ``top_category``
and ``top_category_1..3`` of user_features rank by, so rank 1 here is that user's
top_category. rank orders a user's categories by affinity_score (desc), ties by
category name.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, DoubleType, IntegerType, StringType, StructField, StructType

from spark_jobs import windows
from spark_jobs.user_features import (
    DAYS_SINCE_DEFAULT,
    ROLLUP_LOOKBACK_DAYS,
    _order_free_sum,
)

USER_CATEGORY_FEATURES_SCHEMA = StructType(
    [
        StructField("user_id", StringType()),
        StructField("as_of", DateType()),
        StructField("category", StringType()),
        StructField("views_90d", IntegerType()),
        StructField("carts_90d", IntegerType()),
        StructField("purchases_90d", IntegerType()),
        StructField("spend_90d", DoubleType()),
        StructField("days_since_last", IntegerType()),
        StructField("affinity_score", DoubleType()),
        StructField("rank", IntegerType()),
    ]
)


def user_category_features(user_category_daily: DataFrame, as_of: date) -> DataFrame:
    """``user_category_features_for_dates`` with one date."""
    return user_category_features_for_dates(user_category_daily, [as_of])


def user_category_features_for_dates(user_category_daily: DataFrame, as_of_dates: list[date]) -> DataFrame:
    """One row per (user_id, category, as_of) active in [as_of - 90, as_of).

    spend_90d sums item prices of purchase events; days_since_last is as_of minus
    the UTC day of the latest event (999 if unknown). Columns: ``USER_CATEGORY_FEATURES_SCHEMA``.
    """
    dates = windows.sorted_as_of_dates(as_of_dates)
    daily = windows.onto_as_of_dates(user_category_daily, dates, ROLLUP_LOOKBACK_DAYS)
    sums = daily.groupBy("user_id", "as_of", "category").agg(
        F.coalesce(F.sum("views"), F.lit(0)).alias("views_90d"),
        F.coalesce(F.sum("carts"), F.lit(0)).alias("carts_90d"),
        F.coalesce(F.sum("purchases"), F.lit(0)).alias("purchases_90d"),
        F.coalesce(_order_free_sum(F.col("spend").cast(DoubleType())), F.lit(0.0)).alias("spend_90d"),
        F.max("last_event_ts").alias("_last_ts"),
        F.max("dt").alias("_last_dt"),
    )
    scored = sums.withColumn(
        "affinity_score", (F.col("views_90d") + F.col("carts_90d") + F.col("purchases_90d")).cast(DoubleType())
    ).filter(F.col("affinity_score") > 0)
    rank = F.row_number().over(
        Window.partitionBy("user_id", "as_of").orderBy(F.col("affinity_score").desc(), F.col("category").asc())
    )
    # last_event_ts may be null in daily rows written before it existed: fall back to the day.
    last_day = F.coalesce(F.to_date("_last_ts"), F.col("_last_dt"))
    features = {
        "user_id": F.col("user_id"),
        "as_of": F.col("as_of"),
        "category": F.col("category"),
        "views_90d": F.col("views_90d"),
        "carts_90d": F.col("carts_90d"),
        "purchases_90d": F.col("purchases_90d"),
        "spend_90d": F.col("spend_90d"),
        "days_since_last": F.coalesce(F.datediff(F.col("as_of"), last_day), F.lit(DAYS_SINCE_DEFAULT)),
        "affinity_score": F.col("affinity_score"),
        "rank": rank,
    }
    return scored.select(
        *[features[f.name].cast(f.dataType).alias(f.name) for f in USER_CATEGORY_FEATURES_SCHEMA.fields]
    )
