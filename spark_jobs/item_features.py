"""item_features with neighbours: the top-N co-viewed and co-bought items of each item.

``item_features_with_neighbours_for_dates`` is ``item_features_for_dates``
(spark_jobs.user_features: popularity, conversion rate, rank in category) plus two
columns, each a comma-separated string of up to ``NEIGHBOURS`` item ids, most
frequent first (ties by item_id), '' when none:

* ``co_viewed_item_ids``: items viewed in the same session (session_id, same UTC
  day) as the item, counted once per session; events without a session_id are left out;
* ``co_bought_item_ids``: items with a purchase event by the same user on the same
  UTC day (orders carry no item lines in the contract, so a user-day is the basket),
  counted once per basket.

Both over the events of [as_of - 30, as_of), like the other item features. Strings,
not arrays, so the warehouse (raw.item_features) and Feast can hold them. Only the
dates in ``neighbour_dates`` get neighbours (the nightly job: the newest as_of, the
one the night's offers are rendered with); the pair count of a 30-day window grows
with the square of session length, and a first night over 30 back-filled as_of dates
ran a 50,000-user shop's 2 GB driver out of memory.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, LongType, StringType, StructField, StructType

from spark_jobs import windows
from spark_jobs.user_features import (
    ITEM_FEATURES_SCHEMA,
    ITEM_WINDOW_DAYS,
    dedupe_events,
    item_daily,
    roll_up_item_features_for_dates,
)

NEIGHBOURS = 10
CO_VIEWED, CO_BOUGHT = "co_viewed", "co_bought"
ITEM_PAIRS_DAILY_SCHEMA = StructType(
    [
        StructField("kind", StringType()),
        StructField("item_id", StringType()),
        StructField("other", StringType()),
        StructField("n", LongType()),
        StructField("dt", DateType()),
    ]
)
ITEM_FEATURES_WITH_NEIGHBOURS_SCHEMA = StructType(
    ITEM_FEATURES_SCHEMA.fields
    + [StructField("co_viewed_item_ids", StringType()), StructField("co_bought_item_ids", StringType())]
)


def item_pairs_daily(events: DataFrame, deduplicated: bool = False) -> DataFrame:
    """One row per (kind, item_id, other, dt): the day's baskets holding both items.

    kind ``co_viewed``: sessions (session_id, same UTC day) that viewed both; ``co_bought``:
    user-days with a purchase event of both. Every basket is one UTC day's, so the 30-day
    counts are the sums of these daily partials (the nightly job writes one partition per
    landed day). ``deduplicated`` as in ``user_features.user_daily_aggregates``. Columns and
    types: ``ITEM_PAIRS_DAILY_SCHEMA``.
    """
    ev = windows.with_event_day(events if deduplicated else dedupe_events(events)).filter(
        F.col("item_id").isNotNull() & F.col("dt").isNotNull()
    )
    viewed = (
        ev.filter((F.col("event_type") == "view") & F.col("session_id").isNotNull())
        .select("dt", F.concat_ws("|", "session_id", F.col("dt").cast("string")).alias("basket"), "item_id")
        .distinct()
    )
    bought = (
        ev.filter(F.col("event_type") == "purchase")
        .select("dt", F.concat_ws("|", "user_id", F.col("dt").cast("string")).alias("basket"), "item_id")
        .distinct()
    )
    return _pairs(viewed, CO_VIEWED).unionByName(_pairs(bought, CO_BOUGHT))


def _pairs(baskets: DataFrame, kind: str) -> DataFrame:
    left, right = baskets.alias("a"), baskets.alias("b")
    return (
        left.join(right, (F.col("a.dt") == F.col("b.dt")) & (F.col("a.basket") == F.col("b.basket")))
        .filter(F.col("a.item_id") != F.col("b.item_id"))
        .groupBy(F.col("a.dt").alias("dt"), F.col("a.item_id").alias("item_id"), F.col("b.item_id").alias("other"))
        .agg(F.count(F.lit(1)).cast(LongType()).alias("n"))
        .select(
            *[
                (F.lit(kind) if f.name == "kind" else F.col(f.name)).alias(f.name)
                for f in ITEM_PAIRS_DAILY_SCHEMA.fields
            ]
        )
    )


def roll_up_item_neighbours_for_dates(
    pairs_daily: DataFrame, as_of_dates: list[date], top_n: int = NEIGHBOURS
) -> DataFrame:
    """(item_id, as_of, co_viewed_item_ids, co_bought_item_ids) for items with any neighbour,
    from the ``item_pairs_daily`` rows of the dates' 30-day windows."""
    dates = windows.sorted_as_of_dates(as_of_dates)
    counts = (
        windows.onto_as_of_dates(pairs_daily, dates, ITEM_WINDOW_DAYS)
        .groupBy("kind", "item_id", "as_of", "other")
        .agg(F.sum("n").alias("n"))
    )
    ranked = counts.withColumn(
        "_rank",
        F.row_number().over(
            Window.partitionBy("kind", "item_id", "as_of").orderBy(F.col("n").desc(), F.col("other").asc())
        ),
    ).filter(F.col("_rank") <= top_n)
    lists = ranked.groupBy("kind", "item_id", "as_of").agg(
        F.array_join(
            F.transform(F.sort_array(F.collect_list(F.struct("_rank", "other"))), lambda x: x["other"]), ","
        ).alias("neighbours")
    )

    def of(kind: str) -> DataFrame:
        return lists.filter(F.col("kind") == kind).select(
            "item_id", "as_of", F.col("neighbours").alias(f"{kind}_item_ids")
        )

    return of(CO_VIEWED).join(of(CO_BOUGHT), ["item_id", "as_of"], "full")


def item_neighbours_for_dates(events: DataFrame, as_of_dates: list[date], top_n: int = NEIGHBOURS) -> DataFrame:
    """(item_id, as_of, co_viewed_item_ids, co_bought_item_ids) for items with any neighbour."""
    return roll_up_item_neighbours_for_dates(item_pairs_daily(events), as_of_dates, top_n)


def item_features_with_neighbours_for_dates(
    events: DataFrame,
    items: DataFrame,
    as_of_dates: list[date],
    top_n: int = NEIGHBOURS,
    neighbour_dates: list[date] | None = None,
) -> DataFrame:
    """``item_features_for_dates`` plus co_viewed_item_ids / co_bought_item_ids ('' without any,
    and on dates outside ``neighbour_dates``; default: every date).

    Columns: ``ITEM_FEATURES_WITH_NEIGHBOURS_SCHEMA`` then ``as_of``.
    """
    unique = dedupe_events(events)
    return roll_up_item_features_with_neighbours_for_dates(
        item_daily(unique, deduplicated=True),
        item_pairs_daily(unique, deduplicated=True),
        items,
        as_of_dates,
        top_n,
        neighbour_dates,
    )


def roll_up_item_features_with_neighbours_for_dates(
    item_daily_df: DataFrame,
    pairs_daily: DataFrame,
    items: DataFrame,
    as_of_dates: list[date],
    top_n: int = NEIGHBOURS,
    neighbour_dates: list[date] | None = None,
) -> DataFrame:
    """``item_features_with_neighbours_for_dates`` from the daily partials (``item_daily``,
    ``item_pairs_daily``) of the dates' 30-day windows: what the nightly job runs, so a night
    reads 30 days of per-item and per-pair counts instead of 30 days of events."""
    base = roll_up_item_features_for_dates(item_daily_df, items, as_of_dates)
    neighbours = roll_up_item_neighbours_for_dates(
        pairs_daily, as_of_dates if neighbour_dates is None else neighbour_dates, top_n
    )
    joined = base.join(neighbours, ["item_id", "as_of"], "left")
    cols = [F.col(f.name) for f in ITEM_FEATURES_SCHEMA.fields] + [
        F.coalesce(F.col(c), F.lit("")).alias(c) for c in ("co_viewed_item_ids", "co_bought_item_ids")
    ]
    return joined.select(*cols, F.col("as_of"))


def item_features_with_neighbours(
    events: DataFrame, items: DataFrame, as_of: date, top_n: int = NEIGHBOURS
) -> DataFrame:
    """``item_features_with_neighbours_for_dates`` for one date, without the as_of column."""
    return item_features_with_neighbours_for_dates(events, items, [as_of], top_n).drop("as_of")
