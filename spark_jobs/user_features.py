"""Behaviour features as pure DataFrame -> DataFrame transformations.

Two layers, so nightly work grows with one day of new data:

* daily partial aggregates, written once per ``dt`` (``user_daily_aggregates``,
  ``user_category_daily``): sums, counts, sums of squares and latest timestamps
  that can be added up over any window of days;
* the nightly roll-up (``roll_up_user_features``) that adds the daily rows of
  ``[as_of - 90 days, as_of)`` into the ``user_features`` table of
  docs/ARCHITECTURE.md, and ``item_features`` from the last 30 days of events.
  ``roll_up_user_features_for_dates`` / ``item_features_for_dates`` do the same for
  many as_of dates in one pass (the single-date functions are these with one date).

Only built-in Spark functions (no Python UDFs). Reading and writing live in
``spark_jobs.nightly``. Timestamp columns may be TIMESTAMP or TIMESTAMP_NTZ
holding UTC; the session time zone must be UTC (``spark_jobs.session``).
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from promoflow.contract import CHANNELS, PROMO_TYPES
from spark_jobs import windows

ROLLUP_LOOKBACK_DAYS = 90
ITEM_WINDOW_DAYS = 30

# Defaults for users without activity (docs/ARCHITECTURE.md, user_features).
DAYS_SINCE_DEFAULT = 999
PREFERRED_HOUR_DEFAULT = 10
TOP_CATEGORY_DEFAULT = "unknown"

# Exact sums of money amounts (see _order_free_sum): 26 integer and 12 fractional digits.
_EXACT_SUM_TYPE = DecimalType(38, 12)
_EXACT_SUM_LIMIT = 1e15

HOURS = list(range(24))
HOUR_COLUMNS = [f"events_h{h:02d}" for h in HOURS]
HOUR_SHARE_COLUMNS = [f"hour_share_{h:02d}" for h in HOURS]

# The contract's channels and promo types; exposures on another channel count only in n_exposures.
CHANNEL_EXPOSURE_COLUMNS = [f"n_exposures_{c}" for c in CHANNELS]
TYPE_EXPOSURE_COLUMNS = [f"n_exposures_{t}" for t in PROMO_TYPES]
TYPE_REDEMPTION_COLUMNS = [f"n_redemptions_{t}" for t in PROMO_TYPES]
# Days since the last offer of each promo type (the smallest is the last offer's type).
DAYS_SINCE_TYPE_COLUMNS = [f"days_since_last_{t}_offer" for t in PROMO_TYPES]
# An exposure is engaged when its user orders on the send's UTC day or the next 6 days.
ENGAGEMENT_WINDOW_DAYS = 7
# Items kept per user and day (and per user in user_sequences).
SEQUENCE_LENGTH = 20
TOP_CATEGORIES = 3
TOP_CATEGORY_COLUMNS_DEFAULT = ""

_EVENT_TYPE_COUNTS = {  # user_daily column -> event_type
    "n_views": "view",
    "n_clicks": "click",
    "n_carts": "add_to_cart",
    "n_purchase_events": "purchase",
    "n_searches": "search",
}
_EVENT_COUNT_COLUMNS = ["n_events", *_EVENT_TYPE_COUNTS, "n_sessions"]
_ORDER_COUNT_COLUMNS = ["n_orders", "n_discounted_orders"]
_ORDER_AMOUNT_COLUMNS = [
    "order_amount",
    "order_amount_sq",
    "discount_amount",
    "viewed_price_sum",
    "purchased_price_sum",
]

USER_DAILY_SCHEMA = StructType(
    [StructField("user_id", StringType())]
    + [StructField(c, LongType()) for c in _EVENT_COUNT_COLUMNS]
    + [
        StructField("n_orders", LongType()),
        StructField("order_amount", DoubleType()),
        StructField("order_amount_sq", DoubleType()),
        StructField("n_discounted_orders", LongType()),
        StructField("discount_amount", DoubleType()),
        StructField("n_exposures", LongType()),
        StructField("last_event_ts", TimestampType()),
        StructField("last_order_ts", TimestampType()),
        StructField("last_exposure_ts", TimestampType()),
    ]
    + [StructField(c, LongType()) for c in HOUR_COLUMNS]
    # behaviour columns (after the original columns, so older readers keep working)
    + [
        StructField("n_cart_sessions", LongType()),
        StructField("n_abandoned_cart_sessions", LongType()),
        StructField("n_priced_views", LongType()),
        StructField("viewed_price_sum", DoubleType()),
        StructField("n_priced_purchases", LongType()),
        StructField("purchased_price_sum", DoubleType()),
        StructField("n_redemptions", LongType()),
    ]
    + [StructField(c, LongType()) for c in CHANNEL_EXPOSURE_COLUMNS + TYPE_EXPOSURE_COLUMNS + TYPE_REDEMPTION_COLUMNS]
    + [StructField("last_item_ids", StringType())]
    + [StructField("dt", DateType())]
)

USER_CATEGORY_DAILY_SCHEMA = StructType(
    [
        StructField("user_id", StringType()),
        StructField("category", StringType()),
        StructField("views", LongType()),
        StructField("carts", LongType()),
        StructField("purchases", LongType()),
        StructField("spend", DoubleType()),
        StructField("last_event_ts", TimestampType()),
        StructField("dt", DateType()),
    ]
)

USER_FEATURES_SCHEMA = StructType(
    [
        StructField("user_id", StringType()),
        StructField("as_of", DateType()),
        StructField("tenure_days", IntegerType()),
        StructField("days_since_last_event", IntegerType()),
        StructField("days_since_last_order", IntegerType()),
        StructField("days_since_last_exposure", IntegerType()),
        StructField("orders_7d", IntegerType()),
        StructField("orders_30d", IntegerType()),
        StructField("orders_90d", IntegerType()),
        StructField("spend_7d", DoubleType()),
        StructField("spend_30d", DoubleType()),
        StructField("spend_90d", DoubleType()),
        StructField("views_30d", IntegerType()),
        StructField("carts_30d", IntegerType()),
        StructField("sessions_30d", IntegerType()),
        StructField("searches_30d", IntegerType()),
        StructField("events_per_session_30d", DoubleType()),
        StructField("view_to_cart_rate_30d", DoubleType()),
        StructField("cart_to_order_rate_30d", DoubleType()),
        StructField("avg_order_value_90d", DoubleType()),
        StructField("order_value_std_90d", DoubleType()),
        StructField("discount_order_share_90d", DoubleType()),
        StructField("exposures_30d", IntegerType()),
        StructField("preferred_hour", IntegerType()),
        StructField("top_category", StringType()),
        # behaviour columns (after the original ones, so older readers keep working)
        StructField("events_7d", IntegerType()),
        StructField("events_30d", IntegerType()),
        StructField("events_90d", IntegerType()),
        StructField("sessions_90d", IntegerType()),
        StructField("events_per_session_90d", DoubleType()),
        StructField("searches_90d", IntegerType()),
        StructField("cart_abandonment_rate_30d", DoubleType()),
        StructField("avg_viewed_price_90d", DoubleType()),
        StructField("avg_purchased_price_90d", DoubleType()),
        StructField("purchased_to_viewed_price_ratio_90d", DoubleType()),
        StructField("exposures_7d", IntegerType()),
        StructField("exposures_90d", IntegerType()),
        StructField("redemptions_90d", IntegerType()),
        StructField("redemption_rate_90d", DoubleType()),
    ]
    + [StructField(f"redemption_rate_{t}_90d", DoubleType()) for t in PROMO_TYPES]
    + [StructField(c, DoubleType()) for c in HOUR_SHARE_COLUMNS]
    + [StructField(f"channel_engagement_{c}_90d", DoubleType()) for c in CHANNELS]
    + [StructField(f"top_category_{k}", StringType()) for k in range(1, TOP_CATEGORIES + 1)]
    + [StructField(c, IntegerType()) for c in DAYS_SINCE_TYPE_COLUMNS]
)

ITEM_DAILY_SCHEMA = StructType(
    [
        StructField("item_id", StringType()),
        StructField("views", LongType()),
        StructField("purchases", LongType()),
        StructField("dt", DateType()),
    ]
)

ITEM_FEATURES_SCHEMA = StructType(
    [
        StructField("item_id", StringType()),
        StructField("category", StringType()),
        StructField("views_30d", IntegerType()),
        StructField("purchases_30d", IntegerType()),
        StructField("conversion_rate_30d", DoubleType()),
        StructField("popularity_rank_in_category", IntegerType()),
    ]
)


# ------------------------------------------------------------------ helpers
def _count_if(condition: Column) -> Column:
    return F.sum(F.when(condition, F.lit(1)).otherwise(F.lit(0))).cast(LongType())


def _safe_ratio(numerator: Column, denominator: Column) -> Column:
    """numerator / denominator, 0.0 when the denominator is 0 (ANSI mode raises on /0)."""
    return F.when(denominator > 0, numerator.cast(DoubleType()) / denominator).otherwise(F.lit(0.0))


def _order_free_sum(value: Column) -> Column:
    """SUM of a DOUBLE column whose result does not depend on the order of the rows.

    Spark adds doubles in whatever order the plan's partitions deliver them, so the same
    rows can sum to results a last bit apart in two plans (one as_of date or many, other
    file splits). The values are added exactly as DECIMAL instead and the total rounded
    to the nearest double once; with NaN, infinities or huge values the plain double sum.
    """
    inexact = F.isnan(value) | (F.abs(value) >= F.lit(_EXACT_SUM_LIMIT))
    exact = F.sum(F.when(~inexact, value).cast(_EXACT_SUM_TYPE)).cast(DoubleType())
    return F.when(F.count(F.when(inexact, F.lit(1))) > 0, F.sum(value)).otherwise(exact)


# ------------------------------------------------------------------ daily partial aggregates
def dedupe_events(events: DataFrame) -> DataFrame:
    """One row per event_id, the same row on every run.

    The contract allows the same event in several files; of duplicates the earliest
    event_ts wins, then the smallest value of the remaining columns (nulls last).
    """
    order = [F.col("event_ts").asc_nulls_last()] + [
        F.col(c).asc_nulls_last() for c in events.columns if c not in ("event_id", "event_ts")
    ]
    ranked = events.withColumn("_rank", F.row_number().over(Window.partitionBy("event_id").orderBy(*order)))
    return ranked.filter(F.col("_rank") == 1).drop("_rank")


def _dedupe_orders(orders: DataFrame) -> DataFrame:
    order = [F.col("order_ts").asc_nulls_last()] + [
        F.col(c).asc_nulls_last() for c in orders.columns if c not in ("order_id", "order_ts")
    ]
    ranked = orders.withColumn("_rank", F.row_number().over(Window.partitionBy("order_id").orderBy(*order)))
    return ranked.filter(F.col("_rank") == 1).drop("_rank")


def _optional(df: DataFrame, name: str, data_type=StringType()) -> Column:
    """Column ``name`` of ``df``, or a typed null when ``df`` lacks it (older hand-built inputs)."""
    return F.col(name).cast(data_type) if name in df.columns else F.lit(None).cast(data_type)


def _item_prices(items: DataFrame | None, spark) -> DataFrame:
    """item_id -> price (one per item, the smallest when the snapshot repeats an item)."""
    if items is None or "price" not in items.columns:
        return spark.createDataFrame([], "item_id string, price double")
    return (
        items.filter(F.col("item_id").isNotNull() & F.col("price").isNotNull())
        .groupBy("item_id")
        .agg(F.min(F.col("price").cast(DoubleType())).alias("price"))
    )


def _promo_types(promotions: DataFrame | None, spark) -> DataFrame:
    """promo_id -> promo_type of the promotions snapshot (empty without one)."""
    if promotions is None:
        return spark.createDataFrame([], "promo_id string, promo_type string")
    return (
        promotions.filter(F.col("promo_id").isNotNull())
        .groupBy("promo_id")
        .agg(F.min("promo_type").alias("promo_type"))
    )


def _last_item_ids(items: Column) -> Column:
    """The last ``SEQUENCE_LENGTH`` item ids of an array of (event_ts, event_id, item_id), oldest first.

    Ordered by event_ts, ties by event_id. Adding the days in dt order and keeping the
    last 20 gives the last 20 over any window, so this is a partial aggregate like the counts.
    """
    ordered = F.sort_array(items)
    n = F.size(ordered)
    last = F.slice(ordered, F.greatest(n - SEQUENCE_LENGTH + 1, F.lit(1)), SEQUENCE_LENGTH)
    return F.when(n > 0, F.array_join(F.transform(last, lambda x: x["item_id"]), ",")).otherwise(F.lit(""))


def user_daily_aggregates(
    events: DataFrame,
    orders: DataFrame,
    exposures: DataFrame,
    items: DataFrame | None = None,
    promotions: DataFrame | None = None,
    deduplicated: bool = False,
) -> DataFrame:
    """One row per (user_id, dt) with any event, order or offer exposure that UTC day.

    dt is the date of event_ts / order_ts / sent_ts. Counts are 0, sums 0.0,
    ``last_item_ids`` '' and last_*_ts null for a source without rows that day.
    Exposures with promo_id 'none' (deliberately sent nothing) are not offers: they
    neither count nor make a user active.

    ``items`` (price) gives the viewed / purchased price sums; ``promotions``
    (promo_type) splits exposures and redemptions (orders with a promo_id) by
    promo type; without them those columns are 0. A cart session is a session_id
    with an add_to_cart that day; it is abandoned without a purchase event in the
    same session that day. ``deduplicated``: ``events`` already went through
    ``dedupe_events`` (the nightly job dedupes once for both daily tables).
    Columns and types: ``USER_DAILY_SCHEMA``.
    """
    spark = events.sparkSession
    unique = events if deduplicated else dedupe_events(events)
    ev = windows.with_event_day(unique).withColumn("_hour", F.hour("event_ts"))
    prices = _item_prices(items, spark)
    ev = ev.join(F.broadcast(prices), "item_id", "left")
    is_view, is_purchase = F.col("event_type") == "view", F.col("event_type") == "purchase"
    # Two hash aggregations, first per (user, day, session), then per (user, day), where a
    # session is one row: distinct sessions without COUNT(DISTINCT) (which expands every row)
    # or collected sets (which sort-aggregate every column). Partitioned by (user_id, dt), the
    # second needs no shuffle of its own; the item sequences are shuffled apart (fewer columns).
    ev = ev.repartition("user_id", "dt")
    per_session = [F.count(F.lit(1)).alias("n_events")]
    per_session += [_count_if(F.col("event_type") == t).alias(c) for c, t in _EVENT_TYPE_COUNTS.items()]
    per_session += [_count_if(F.col("_hour") == h).alias(c) for h, c in zip(HOURS, HOUR_COLUMNS)]
    per_session += [
        _count_if(is_view & F.col("price").isNotNull()).alias("n_priced_views"),
        F.sum(F.when(is_view, F.col("price"))).alias("viewed_price_sum"),
        _count_if(is_purchase & F.col("price").isNotNull()).alias("n_priced_purchases"),
        F.sum(F.when(is_purchase, F.col("price"))).alias("purchased_price_sum"),
        F.max("event_ts").alias("last_event_ts"),
        F.max(F.col("event_type") == "add_to_cart").alias("_carted"),
        F.max(is_purchase).alias("_bought"),
    ]
    counted = ["n_events", *_EVENT_TYPE_COUNTS, *HOUR_COLUMNS, "n_priced_views", "n_priced_purchases"]
    session = F.col("session_id").isNotNull()
    per_day = [F.sum(c).cast(LongType()).alias(c) for c in counted]
    per_day += [
        F.sum("viewed_price_sum").alias("viewed_price_sum"),
        F.sum("purchased_price_sum").alias("purchased_price_sum"),
        F.max("last_event_ts").alias("last_event_ts"),
        _count_if(session).alias("n_sessions"),
        _count_if(session & F.col("_carted")).alias("n_cart_sessions"),
        _count_if(session & F.col("_carted") & ~F.col("_bought")).alias("n_abandoned_cart_sessions"),
    ]
    sequences = (
        ev.filter(F.col("item_id").isNotNull())
        .groupBy("user_id", "dt")
        .agg(_last_item_ids(F.collect_list(F.struct("event_ts", "event_id", "item_id"))).alias("last_item_ids"))
    )
    sessions = ev.groupBy("user_id", "dt", "session_id").agg(*per_session)

    types = F.broadcast(_promo_types(promotions, spark))
    gross = F.col("gross_amount").cast(DoubleType())
    discount = F.coalesce(F.col("discount_amount").cast(DoubleType()), F.lit(0.0))
    order_promo = F.coalesce(_optional(orders, "promo_id"), F.lit("none"))
    by_orders = (
        _dedupe_orders(orders)
        .withColumn("order_ts", windows.utc_ts("order_ts"))
        .withColumn("promo_id", order_promo)
        .join(types, "promo_id", "left")
        .groupBy("user_id", F.to_date("order_ts").alias("dt"))
        .agg(
            F.count(F.lit(1)).cast(LongType()).alias("n_orders"),
            F.sum(gross).alias("order_amount"),
            F.sum(gross * gross).alias("order_amount_sq"),
            _count_if(discount > 0).alias("n_discounted_orders"),
            F.sum(discount).alias("discount_amount"),
            F.max("order_ts").alias("last_order_ts"),
            _count_if(F.col("promo_id") != "none").alias("n_redemptions"),
            *[_count_if(F.col("promo_type") == t).alias(c) for t, c in zip(PROMO_TYPES, TYPE_REDEMPTION_COLUMNS)],
        )
    )

    by_exposures = (
        exposures.withColumn("promo_id", F.coalesce(F.col("promo_id"), F.lit("none")))
        .filter(F.col("promo_id") != "none")
        .withColumn("channel", _optional(exposures, "channel"))
        .withColumn("sent_ts", windows.utc_ts("sent_ts"))
        .join(types, "promo_id", "left")
        .groupBy("user_id", F.to_date("sent_ts").alias("dt"))
        .agg(
            F.count(F.lit(1)).cast(LongType()).alias("n_exposures"),
            F.max("sent_ts").alias("last_exposure_ts"),
            *[_count_if(F.col("channel") == c).alias(n) for c, n in zip(CHANNELS, CHANNEL_EXPOSURE_COLUMNS)],
            *[_count_if(F.col("promo_type") == t).alias(n) for t, n in zip(PROMO_TYPES, TYPE_EXPOSURE_COLUMNS)],
        )
    )

    # Orders and exposures per (user_id, dt) join the sessions' rows as rows of their own
    # (session_id null), so one hash aggregation per (user_id, dt) adds up the events and
    # takes each source's columns: no full outer sort-merge joins of every user-day's wide row.
    keys = ("user_id", "dt")
    stacked = sessions.unionByName(by_orders, allowMissingColumns=True).unionByName(
        by_exposures, allowMissingColumns=True
    )
    taken = [c for c in [*by_orders.columns, *by_exposures.columns] if c not in keys]
    joined = (
        stacked.groupBy(*keys)
        .agg(*per_day, *[F.max(c).alias(c) for c in taken])
        .join(sequences.hint("shuffle_hash"), list(keys), "left")
    )
    out = []
    for field in USER_DAILY_SCHEMA.fields:
        col = F.col(field.name)
        if isinstance(field.dataType, LongType):
            col = F.coalesce(col, F.lit(0)).cast(LongType())
        elif isinstance(field.dataType, DoubleType):
            col = F.coalesce(col, F.lit(0.0)).cast(DoubleType())
        elif isinstance(field.dataType, StringType) and field.name != "user_id":
            col = F.coalesce(col, F.lit(""))
        else:
            col = col.cast(field.dataType)
        out.append(col.alias(field.name))
    return joined.filter(F.col("user_id").isNotNull() & F.col("dt").isNotNull()).select(*out)


def user_category_daily(events: DataFrame, items: DataFrame, deduplicated: bool = False) -> DataFrame:
    """One row per (user_id, dt, category) with views, carts (add_to_cart) and purchases.

    spend sums the item price (``items.price``, 0 without one) of the purchase events;
    last_event_ts is the latest of those events. Events whose item is unknown or has
    no category are left out. ``deduplicated`` as in ``user_daily_aggregates``.
    Columns and types: ``USER_CATEGORY_DAILY_SCHEMA``.
    """
    item_category = (
        items.filter(F.col("category").isNotNull())
        .groupBy("item_id")
        .agg(
            F.min("category").alias("category"),  # one category per item, deterministically
            F.min(_optional(items, "price", DoubleType())).alias("_price"),
        )
    )
    ev = (
        windows.with_event_day(events if deduplicated else dedupe_events(events))
        .filter(F.col("event_type").isin("view", "add_to_cart", "purchase") & F.col("item_id").isNotNull())
        .join(F.broadcast(item_category), "item_id")
    )
    return (
        ev.groupBy("user_id", "dt", "category")
        .agg(
            _count_if(F.col("event_type") == "view").alias("views"),
            _count_if(F.col("event_type") == "add_to_cart").alias("carts"),
            _count_if(F.col("event_type") == "purchase").alias("purchases"),
            F.coalesce(F.sum(F.when(F.col("event_type") == "purchase", F.col("_price"))), F.lit(0.0)).alias("spend"),
            F.max("event_ts").alias("last_event_ts"),
        )
        .filter(F.col("user_id").isNotNull() & F.col("dt").isNotNull())
        .select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in USER_CATEGORY_DAILY_SCHEMA.fields])
    )


# ------------------------------------------------------------------ nightly roll-ups
def _channel_engagement(daily: DataFrame) -> DataFrame:
    """(user_id, as_of, _engagement_<channel>): engaged share of the channel's offers in 90 days.

    ``daily`` is user_daily already put onto its as_of dates (90-day windows). An
    exposure sent on day d is engaged when the user has an order on a day in
    [d, d + ENGAGEMENT_WINDOW_DAYS) that is also before as_of: day resolution, so an
    order earlier on the send day counts, and offers of the last 6 days before as_of
    have had less time to be engaged. Additive per day: only the daily order days are
    needed, not history.
    """
    order_days = daily.groupBy("user_id", "as_of").agg(
        F.collect_set(F.when(F.col("n_orders") > 0, F.col("dt"))).alias("_order_days")
    )
    sent = daily.filter(F.col("n_exposures") > 0).join(order_days, ["user_id", "as_of"])
    engaged = F.exists(
        "_order_days",
        lambda o: (o >= F.col("dt")) & (o < F.date_add(F.col("dt"), ENGAGEMENT_WINDOW_DAYS)),
    )
    return sent.groupBy("user_id", "as_of").agg(
        *[
            _safe_ratio(F.sum(F.when(engaged, F.col(n)).otherwise(F.lit(0))), F.sum(F.col(n))).alias(f"_engagement_{c}")
            for c, n in zip(CHANNELS, CHANNEL_EXPOSURE_COLUMNS)
        ]
    )


def roll_up_user_features(
    user_daily: DataFrame,
    user_category_daily: DataFrame,
    users: DataFrame,
    as_of: date,
) -> DataFrame:
    """The user_features table as of ``as_of`` 00:00 UTC: one row per user in ``users``.

    Only daily rows with dt in [as_of - 90 days, as_of) count, so nothing at or after
    as_of leaks in. An n-day window is dt in [as_of - n, as_of). No nulls: users without
    activity get the documented defaults. Columns and types: ``USER_FEATURES_SCHEMA``.

    sessions_30d adds daily distinct sessions, so a session spanning midnight counts
    once per day. preferred_hour ties go to the earlier hour, top_category ties to the
    alphabetically first category.

    The same computation as ``roll_up_user_features_for_dates`` with one date.
    """
    return roll_up_user_features_for_dates(user_daily, user_category_daily, users, [as_of])


def roll_up_user_features_for_dates(
    user_daily: DataFrame,
    user_category_daily: DataFrame,
    users: DataFrame,
    as_of_dates: list[date],
    targets: DataFrame | None = None,
) -> DataFrame:
    """``roll_up_user_features`` for several as_of dates in one pass.

    One row per (user in ``users``, distinct date of ``as_of_dates``), its ``as_of``
    column telling which; the rows of one as_of are exactly those of
    ``roll_up_user_features(..., as_of)``. Each daily row is joined onto the as_of dates
    whose 90-day window [as_of - 90, as_of) holds its dt, then everything is grouped by
    (user_id, as_of). Columns and types: ``USER_FEATURES_SCHEMA``.

    ``targets``: (user_id, as_of) pairs to roll up instead of every user on every date
    (``as_of_dates`` is then ignored); only the daily rows of those users are read, so
    the work grows with the pairs' histories, not with users x dates. Each row is the
    one the full roll-up of its date holds; pairs whose user is not in ``users`` are dropped.
    """
    as_of_col = F.col("as_of")
    if targets is None:
        dates = windows.sorted_as_of_dates(as_of_dates)

        def onto(df: DataFrame) -> DataFrame:
            return windows.onto_as_of_dates(df, dates, ROLLUP_LOOKBACK_DAYS)

        def on_dates(df: DataFrame) -> DataFrame:
            return windows.with_as_of_dates(df, dates)
    else:
        pairs = targets.select("user_id", "as_of").distinct()

        def onto(df: DataFrame) -> DataFrame:
            return windows.onto_target_rows(df, pairs, ROLLUP_LOOKBACK_DAYS)

        def on_dates(df: DataFrame) -> DataFrame:
            return df.join(pairs, "user_id")

    daily = onto(user_daily)
    in_7d = windows.col_in_window(F.col("dt"), as_of_col, 7)
    in_30d = windows.col_in_window(F.col("dt"), as_of_col, 30)

    def window_sum(name: str, window: Column | None) -> Column:
        value = F.col(name) if window is None else F.when(window, F.col(name))
        total = _order_free_sum(value) if name in _ORDER_AMOUNT_COLUMNS else F.sum(value)
        return F.coalesce(total, F.lit(0))

    activity = daily.groupBy("user_id", "as_of").agg(
        F.max("last_event_ts").alias("_last_event_ts"),
        F.max("last_order_ts").alias("_last_order_ts"),
        F.max("last_exposure_ts").alias("_last_exposure_ts"),
        window_sum("n_orders", in_7d).alias("_orders_7d"),
        window_sum("n_orders", in_30d).alias("_orders_30d"),
        window_sum("n_orders", None).alias("_orders_90d"),
        window_sum("order_amount", in_7d).cast(DoubleType()).alias("_spend_7d"),
        window_sum("order_amount", in_30d).cast(DoubleType()).alias("_spend_30d"),
        window_sum("order_amount", None).cast(DoubleType()).alias("_spend_90d"),
        window_sum("order_amount_sq", None).cast(DoubleType()).alias("_spend_sq_90d"),
        window_sum("n_discounted_orders", None).alias("_discounted_orders_90d"),
        window_sum("n_events", in_30d).alias("_events_30d"),
        window_sum("n_views", in_30d).alias("_views_30d"),
        window_sum("n_carts", in_30d).alias("_carts_30d"),
        window_sum("n_sessions", in_30d).alias("_sessions_30d"),
        window_sum("n_searches", in_30d).alias("_searches_30d"),
        window_sum("n_exposures", in_30d).alias("_exposures_30d"),
        window_sum("n_events", None).alias("_events_90d"),
        *[window_sum(c, None).alias(f"_{c}") for c in HOUR_COLUMNS],
        window_sum("n_events", in_7d).alias("_events_7d"),
        window_sum("n_sessions", None).alias("_sessions_90d"),
        window_sum("n_searches", None).alias("_searches_90d"),
        window_sum("n_cart_sessions", in_30d).alias("_cart_sessions_30d"),
        window_sum("n_abandoned_cart_sessions", in_30d).alias("_abandoned_cart_sessions_30d"),
        window_sum("n_priced_views", None).alias("_priced_views_90d"),
        window_sum("viewed_price_sum", None).cast(DoubleType()).alias("_viewed_price_90d"),
        window_sum("n_priced_purchases", None).alias("_priced_purchases_90d"),
        window_sum("purchased_price_sum", None).cast(DoubleType()).alias("_purchased_price_90d"),
        window_sum("n_exposures", in_7d).alias("_exposures_7d"),
        window_sum("n_exposures", None).alias("_exposures_90d"),
        window_sum("n_redemptions", None).alias("_redemptions_90d"),
        *[window_sum(c, None).alias(f"_{c}") for c in TYPE_EXPOSURE_COLUMNS + TYPE_REDEMPTION_COLUMNS],
        *[
            F.max(F.when(F.col(n) > 0, F.col("dt"))).alias(f"_last_{t}_dt")
            for t, n in zip(PROMO_TYPES, TYPE_EXPOSURE_COLUMNS)
        ],
    )
    engagement = _channel_engagement(daily)
    # Most frequent hour: the greatest (count, -hour) struct, so ties go to the earlier hour.
    busiest = F.greatest(
        *[F.struct(F.col(f"_{c}").alias("n"), F.lit(-h).alias("neg_hour")) for h, c in zip(HOURS, HOUR_COLUMNS)]
    )
    activity = activity.withColumn(
        "_preferred_hour",
        F.when(F.col("_events_90d") > 0, -busiest["neg_hour"]).otherwise(F.lit(PREFERRED_HOUR_DEFAULT)),
    )

    category_scores = (
        onto(user_category_daily)
        .groupBy("user_id", "as_of", "category")
        .agg(F.sum(F.col("views") + F.col("carts") + F.col("purchases")).alias("_score"))
        .filter(F.col("_score") > 0)
    )
    top_category = (
        category_scores.withColumn(
            "_rank",
            F.row_number().over(
                Window.partitionBy("user_id", "as_of").orderBy(F.col("_score").desc(), F.col("category").asc())
            ),
        )
        .filter(F.col("_rank") <= TOP_CATEGORIES)
        .groupBy("user_id", "as_of")
        .agg(
            F.max(F.when(F.col("_rank") == 1, F.col("category"))).alias("_top_category"),
            *[
                F.max(F.when(F.col("_rank") == k, F.col("category"))).alias(f"_top_category_{k}")
                for k in range(1, TOP_CATEGORIES + 1)
            ],
        )
    )

    # One row per user of the snapshot and as_of date, whatever duplicates the snapshot holds.
    roster = (
        users.filter(F.col("user_id").isNotNull())
        .groupBy("user_id")
        .agg(F.min(windows.utc_ts("signup_ts")).alias("_signup_ts"))
    )
    joined = (
        on_dates(roster)
        .join(activity, ["user_id", "as_of"], "left")
        .join(top_category, ["user_id", "as_of"], "left")
        .join(engagement, ["user_id", "as_of"], "left")
    )

    def days_since(ts_col: str) -> Column:
        return F.coalesce(F.datediff(as_of_col, F.to_date(F.col(ts_col))), F.lit(DAYS_SINCE_DEFAULT))

    def zero(name: str) -> Column:
        return F.coalesce(F.col(name), F.lit(0))

    orders_90d = zero("_orders_90d")
    spend_90d = F.coalesce(F.col("_spend_90d"), F.lit(0.0))
    mean_90d = _safe_ratio(spend_90d, orders_90d)
    mean_sq_90d = _safe_ratio(F.coalesce(F.col("_spend_sq_90d"), F.lit(0.0)), orders_90d)
    variance_90d = F.greatest(mean_sq_90d - mean_90d * mean_90d, F.lit(0.0))
    # E[x^2] - E[x]^2 leaves rounding noise when all orders are equal; call that 0.
    std_90d = F.when(variance_90d > mean_sq_90d * F.lit(1e-12), F.sqrt(variance_90d)).otherwise(F.lit(0.0))
    avg_viewed_price = _safe_ratio(F.coalesce(F.col("_viewed_price_90d"), F.lit(0.0)), zero("_priced_views_90d"))
    avg_purchased_price = _safe_ratio(
        F.coalesce(F.col("_purchased_price_90d"), F.lit(0.0)), zero("_priced_purchases_90d")
    )

    features = {
        "user_id": F.col("user_id"),
        "as_of": as_of_col,
        "tenure_days": F.greatest(F.coalesce(F.datediff(as_of_col, F.to_date("_signup_ts")), F.lit(0)), F.lit(0)),
        "days_since_last_event": days_since("_last_event_ts"),
        "days_since_last_order": days_since("_last_order_ts"),
        "days_since_last_exposure": days_since("_last_exposure_ts"),
        "orders_7d": zero("_orders_7d"),
        "orders_30d": zero("_orders_30d"),
        "orders_90d": orders_90d,
        "spend_7d": F.coalesce(F.col("_spend_7d"), F.lit(0.0)),
        "spend_30d": F.coalesce(F.col("_spend_30d"), F.lit(0.0)),
        "spend_90d": spend_90d,
        "views_30d": zero("_views_30d"),
        "carts_30d": zero("_carts_30d"),
        "sessions_30d": zero("_sessions_30d"),
        "searches_30d": zero("_searches_30d"),
        "events_per_session_30d": _safe_ratio(zero("_events_30d"), zero("_sessions_30d")),
        "view_to_cart_rate_30d": _safe_ratio(zero("_carts_30d"), zero("_views_30d")),
        "cart_to_order_rate_30d": F.least(_safe_ratio(zero("_orders_30d"), zero("_carts_30d")), F.lit(1.0)),
        "avg_order_value_90d": mean_90d,
        "order_value_std_90d": std_90d,
        "discount_order_share_90d": _safe_ratio(zero("_discounted_orders_90d"), orders_90d),
        "exposures_30d": zero("_exposures_30d"),
        "preferred_hour": F.coalesce(F.col("_preferred_hour"), F.lit(PREFERRED_HOUR_DEFAULT)),
        "top_category": F.coalesce(F.col("_top_category"), F.lit(TOP_CATEGORY_DEFAULT)),
        "events_7d": zero("_events_7d"),
        "events_30d": zero("_events_30d"),
        "events_90d": zero("_events_90d"),
        "sessions_90d": zero("_sessions_90d"),
        "events_per_session_90d": _safe_ratio(zero("_events_90d"), zero("_sessions_90d")),
        "searches_90d": zero("_searches_90d"),
        "cart_abandonment_rate_30d": _safe_ratio(zero("_abandoned_cart_sessions_30d"), zero("_cart_sessions_30d")),
        "avg_viewed_price_90d": avg_viewed_price,
        "avg_purchased_price_90d": avg_purchased_price,
        "purchased_to_viewed_price_ratio_90d": _safe_ratio(avg_purchased_price, avg_viewed_price),
        "exposures_7d": zero("_exposures_7d"),
        "exposures_90d": zero("_exposures_90d"),
        "redemptions_90d": zero("_redemptions_90d"),
        "redemption_rate_90d": F.least(_safe_ratio(zero("_redemptions_90d"), zero("_exposures_90d")), F.lit(1.0)),
        **{
            f"redemption_rate_{t}_90d": F.least(
                _safe_ratio(zero(f"_n_redemptions_{t}"), zero(f"_n_exposures_{t}")), F.lit(1.0)
            )
            for t in PROMO_TYPES
        },
        **{
            share: _safe_ratio(zero(f"_{count}"), zero("_events_90d"))
            for share, count in zip(HOUR_SHARE_COLUMNS, HOUR_COLUMNS)
        },
        **{f"channel_engagement_{c}_90d": F.coalesce(F.col(f"_engagement_{c}"), F.lit(0.0)) for c in CHANNELS},
        **{
            f"top_category_{k}": F.coalesce(F.col(f"_top_category_{k}"), F.lit(TOP_CATEGORY_COLUMNS_DEFAULT))
            for k in range(1, TOP_CATEGORIES + 1)
        },
        **{c: days_since(f"_last_{t}_dt") for t, c in zip(PROMO_TYPES, DAYS_SINCE_TYPE_COLUMNS)},
    }
    return joined.select(*[features[f.name].cast(f.dataType).alias(f.name) for f in USER_FEATURES_SCHEMA.fields])


def item_features(events: DataFrame, items: DataFrame, as_of: date) -> DataFrame:
    """One row per item of ``items`` from view / purchase events with dt in [as_of - 30, as_of).

    conversion_rate_30d = purchases / views (0 without views); popularity_rank_in_category
    is 1 for the most purchased item of its category, ties by views (desc) then item_id.
    Items without a category fall in 'unknown'. Columns and types: ``ITEM_FEATURES_SCHEMA``.
    """
    return item_features_for_dates(events, items, [as_of]).drop("as_of")


def item_daily(events: DataFrame, deduplicated: bool = False) -> DataFrame:
    """One row per (item_id, dt) with a view or purchase event that UTC day: their counts.

    The daily partial that ``roll_up_item_features_for_dates`` adds up (the nightly job
    writes one partition per landed day). ``deduplicated`` as in ``user_daily_aggregates``.
    Columns and types: ``ITEM_DAILY_SCHEMA``.
    """
    ev = windows.with_event_day(events if deduplicated else dedupe_events(events)).filter(
        F.col("item_id").isNotNull() & F.col("dt").isNotNull() & F.col("event_type").isin("view", "purchase")
    )
    return (
        ev.groupBy("item_id", "dt")
        .agg(
            _count_if(F.col("event_type") == "view").alias("views"),
            _count_if(F.col("event_type") == "purchase").alias("purchases"),
        )
        .select(*[F.col(f.name).cast(f.dataType) for f in ITEM_DAILY_SCHEMA.fields])
    )


def item_features_for_dates(events: DataFrame, items: DataFrame, as_of_dates: list[date]) -> DataFrame:
    """``item_features`` for several as_of dates in one pass.

    One row per (item of ``items``, distinct date of ``as_of_dates``): the columns of
    ``ITEM_FEATURES_SCHEMA`` and then a DATE column ``as_of``; the rows of one as_of are
    exactly those of ``item_features(..., as_of)``. dt is the event's UTC day.
    """
    return roll_up_item_features_for_dates(item_daily(events), items, as_of_dates)


def roll_up_item_features_for_dates(item_daily_df: DataFrame, items: DataFrame, as_of_dates: list[date]) -> DataFrame:
    """``item_features_for_dates`` from the ``item_daily`` rows of the dates' 30-day windows."""
    dates = windows.sorted_as_of_dates(as_of_dates)
    counts = (
        windows.onto_as_of_dates(item_daily_df, dates, ITEM_WINDOW_DAYS)
        .groupBy("item_id", "as_of")
        .agg(F.sum("views").alias("_views"), F.sum("purchases").alias("_purchases"))
    )
    catalogue = (
        items.filter(F.col("item_id").isNotNull())
        .groupBy("item_id")
        .agg(F.coalesce(F.min("category"), F.lit(TOP_CATEGORY_DEFAULT)).alias("category"))
    )
    joined = (
        windows.with_as_of_dates(catalogue, dates)
        .join(counts, ["item_id", "as_of"], "left")
        .select(
            "item_id",
            "as_of",
            "category",
            F.coalesce(F.col("_views"), F.lit(0)).alias("views_30d"),
            F.coalesce(F.col("_purchases"), F.lit(0)).alias("purchases_30d"),
        )
    )
    rank = F.row_number().over(
        Window.partitionBy("as_of", "category").orderBy(
            F.col("purchases_30d").desc(), F.col("views_30d").desc(), F.col("item_id").asc()
        )
    )
    features = {
        "item_id": F.col("item_id"),
        "category": F.col("category"),
        "views_30d": F.col("views_30d"),
        "purchases_30d": F.col("purchases_30d"),
        "conversion_rate_30d": _safe_ratio(F.col("purchases_30d"), F.col("views_30d")),
        "popularity_rank_in_category": rank,
    }
    return joined.select(
        *[features[f.name].cast(f.dataType).alias(f.name) for f in ITEM_FEATURES_SCHEMA.fields],
        F.col("as_of"),
    )
