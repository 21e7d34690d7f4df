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
from pyspark.sql.types import StringType, StructField, StructType

from spark_jobs import windows
from spark_jobs.user_features import (
    ITEM_FEATURES_SCHEMA,
    ITEM_WINDOW_DAYS,
    dedupe_events,
    item_features_for_dates,
)

NEIGHBOURS = 10
ITEM_FEATURES_WITH_NEIGHBOURS_SCHEMA = StructType(
    ITEM_FEATURES_SCHEMA.fields
    + [StructField("co_viewed_item_ids", StringType()), StructField("co_bought_item_ids", StringType())]
)


def _top_neighbours(baskets: DataFrame, name: str, top_n: int) -> DataFrame:
    """(item_id, as_of, name): from distinct (as_of, basket, item_id) rows, the items most often together."""
    left = baskets.alias("a")
    right = baskets.alias("b")
    pairs = (
        left.join(right, (F.col("a.as_of") == F.col("b.as_of")) & (F.col("a.basket") == F.col("b.basket")))
        .filter(F.col("a.item_id") != F.col("b.item_id"))
        .groupBy(
            F.col("a.item_id").alias("item_id"), F.col("a.as_of").alias("as_of"), F.col("b.item_id").alias("other")
        )
        .agg(F.count(F.lit(1)).alias("n"))
    )
    ranked = pairs.withColumn(
        "_rank",
        F.row_number().over(Window.partitionBy("item_id", "as_of").orderBy(F.col("n").desc(), F.col("other").asc())),
    ).filter(F.col("_rank") <= top_n)
    return ranked.groupBy("item_id", "as_of").agg(
        F.array_join(
            F.transform(F.sort_array(F.collect_list(F.struct("_rank", "other"))), lambda x: x["other"]), ","
        ).alias(name)
    )


def item_neighbours_for_dates(events: DataFrame, as_of_dates: list[date], top_n: int = NEIGHBOURS) -> DataFrame:
    """(item_id, as_of, co_viewed_item_ids, co_bought_item_ids) for items with any neighbour."""
    dates = windows.sorted_as_of_dates(as_of_dates)
    ev = windows.onto_as_of_dates(
        windows.with_event_day(dedupe_events(events)).filter(F.col("item_id").isNotNull()), dates, ITEM_WINDOW_DAYS
    )
    viewed = (
        ev.filter((F.col("event_type") == "view") & F.col("session_id").isNotNull())
        .select("as_of", F.concat_ws("|", "session_id", F.col("dt").cast("string")).alias("basket"), "item_id")
        .distinct()
    )
    bought = (
        ev.filter(F.col("event_type") == "purchase")
        .select("as_of", F.concat_ws("|", "user_id", F.col("dt").cast("string")).alias("basket"), "item_id")
        .distinct()
    )
    co_viewed = _top_neighbours(viewed, "co_viewed_item_ids", top_n)
    co_bought = _top_neighbours(bought, "co_bought_item_ids", top_n)
    return co_viewed.join(co_bought, ["item_id", "as_of"], "full")


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
    base = item_features_for_dates(events, items, as_of_dates)
    neighbours = item_neighbours_for_dates(events, as_of_dates if neighbour_dates is None else neighbour_dates, top_n)
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
