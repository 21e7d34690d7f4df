"""The pure feature transformations on hand-built rows, against hand-computed values."""

from __future__ import annotations

import math
from datetime import date, datetime
from functools import reduce

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from spark_sample_data import (
    AS_OF,
    DUPLICATE_EVENTS,
    EVENTS,
    EVENTS_SCHEMA,
    EXPOSURES,
    ORDERS,
    frames,
    ts,
)

from spark_jobs.user_features import (
    HOUR_COLUMNS,
    ITEM_FEATURES_SCHEMA,
    PROMO_TYPES,
    USER_CATEGORY_DAILY_SCHEMA,
    USER_DAILY_SCHEMA,
    USER_FEATURES_SCHEMA,
    dedupe_events,
    item_features,
    item_features_for_dates,
    roll_up_user_features,
    roll_up_user_features_for_dates,
    user_category_daily,
    user_daily_aggregates,
)


def _types(schema) -> list[tuple[str, str]]:
    return [(f.name, f.dataType.simpleString()) for f in schema.fields]


def _naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None)  # collected timestamps come back naive (UTC, see conftest)


def _daily_row(**values) -> dict:
    row = {f.name: 0 for f in USER_DAILY_SCHEMA.fields}
    row.update({"order_amount": 0.0, "order_amount_sq": 0.0, "discount_amount": 0.0})
    row.update({"viewed_price_sum": 0.0, "purchased_price_sum": 0.0, "last_item_ids": ""})
    row.update({"last_event_ts": None, "last_order_ts": None, "last_exposure_ts": None})
    row.update(values)
    return row


def _features(spark, **kwargs):
    f = frames(spark, **kwargs)
    # e2 arrives twice, as from two files of the same day.
    events = f["events"].unionByName(spark.createDataFrame(DUPLICATE_EVENTS, EVENTS_SCHEMA))
    daily = user_daily_aggregates(events, f["orders"], f["exposures"])
    category_daily = user_category_daily(events, f["items"])
    return roll_up_user_features(daily, category_daily, f["users"], AS_OF)


@pytest.fixture(scope="module")
def user_features_rows(spark):
    rows = _features(spark).collect()
    return {r["user_id"]: r.asDict() for r in rows}


def test_dedupe_keeps_one_row_per_event_id_earliest_first(spark):
    rows = [
        ("a", "u1", "i1", "view", ts(2024, 3, 9, 10, 0), "s1", None),
        ("a", "u1", "i1", "view", ts(2024, 3, 9, 9, 0), "s2", None),
        ("a", "u1", "i1", "view", ts(2024, 3, 9, 9, 0), "s1", None),
        ("b", "u2", None, "search", ts(2024, 3, 9, 9, 0), None, "x"),
    ]
    out = dedupe_events(spark.createDataFrame(rows, EVENTS_SCHEMA)).orderBy("event_id").collect()
    assert [(r.event_id, _naive(ts(2024, 3, 9, 9, 0)) == r.event_ts, r.session_id) for r in out] == [
        ("a", True, "s1"),
        ("b", True, None),
    ]


def test_user_daily_aggregates_hand_computed(spark):
    f = frames(spark)
    events = f["events"].unionByName(spark.createDataFrame(DUPLICATE_EVENTS, EVENTS_SCHEMA))
    daily = user_daily_aggregates(events, f["orders"], f["exposures"])
    assert _types(daily.schema) == _types(USER_DAILY_SCHEMA)
    got = {(r.user_id, r.dt): r.asDict() for r in daily.collect()}

    hours = lambda **h: {c: h.get(c, 0) for c in HOUR_COLUMNS}  # noqa: E731
    expected = {
        # e1..e6 (e2 once); 'none' exposure that day is not an offer
        ("u1", date(2024, 3, 9)): _daily_row(
            user_id="u1",
            dt=date(2024, 3, 9),
            n_events=6,
            n_views=2,
            n_clicks=1,
            n_carts=1,
            n_purchase_events=1,
            n_searches=1,
            n_sessions=2,
            n_orders=1,
            order_amount=100.0,
            order_amount_sq=10000.0,
            n_discounted_orders=1,
            discount_amount=10.0,
            last_event_ts=datetime(2024, 3, 9, 21, 5),
            last_order_ts=datetime(2024, 3, 9, 9, 10),
            n_cart_sessions=1,
            last_item_ids="i1,i2,i1,i1,i2",  # s1 carted and bought: not abandoned
            **hours(events_h08=2, events_h09=2, events_h21=2),
        ),
        ("u1", date(2024, 3, 8)): _daily_row(
            user_id="u1", dt=date(2024, 3, 8), n_exposures=1, last_exposure_ts=datetime(2024, 3, 8, 7, 0)
        ),
        ("u1", date(2024, 3, 1)): _daily_row(
            user_id="u1",
            dt=date(2024, 3, 1),
            n_events=1,
            n_sessions=1,
            last_event_ts=datetime(2024, 3, 1, 8, 0),
            events_h08=1,
        ),
        ("u1", date(2024, 2, 20)): _daily_row(
            user_id="u1",
            dt=date(2024, 2, 20),
            n_orders=1,
            order_amount=50.0,
            order_amount_sq=2500.0,
            last_order_ts=datetime(2024, 2, 20, 12, 0),
        ),
        # e8 has no session_id: no session counted
        ("u1", date(2024, 1, 20)): _daily_row(
            user_id="u1",
            dt=date(2024, 1, 20),
            n_events=1,
            n_views=1,
            n_orders=1,
            order_amount=30.0,
            order_amount_sq=900.0,
            n_discounted_orders=1,
            discount_amount=5.0,
            last_event_ts=datetime(2024, 1, 20, 10, 0),
            last_order_ts=datetime(2024, 1, 20, 10, 30),
            events_h10=1,
            last_item_ids="i2",
        ),
        ("u1", date(2023, 12, 1)): _daily_row(
            user_id="u1",
            dt=date(2023, 12, 1),
            n_events=1,
            n_views=1,
            n_sessions=1,
            last_event_ts=datetime(2023, 12, 1, 10, 0),
            events_h10=1,
            last_item_ids="i2",
        ),
        ("u2", date(2024, 3, 5)): _daily_row(
            user_id="u2",
            dt=date(2024, 3, 5),
            n_orders=1,
            order_amount=40.0,
            order_amount_sq=1600.0,
            last_order_ts=datetime(2024, 3, 5, 18, 0),
        ),
        ("u2", date(2024, 2, 1)): _daily_row(
            user_id="u2", dt=date(2024, 2, 1), n_exposures=1, last_exposure_ts=datetime(2024, 2, 1, 7, 0)
        ),
        ("u4", date(2024, 3, 5)): _daily_row(
            user_id="u4",
            dt=date(2024, 3, 5),
            n_events=3,
            n_views=2,
            n_purchase_events=1,
            n_sessions=1,
            last_event_ts=datetime(2024, 3, 5, 10, 2),
            events_h10=3,
            last_item_ids="i3,i3,i3",
        ),
    }
    assert got == expected


def test_user_category_daily_hand_computed(spark):
    f = frames(spark)
    events = f["events"].unionByName(spark.createDataFrame(DUPLICATE_EVENTS, EVENTS_SCHEMA))
    out = user_category_daily(events, f["items"])
    assert _types(out.schema) == _types(USER_CATEGORY_DAILY_SCHEMA)
    got = sorted((r.user_id, r.dt, r.category, r.views, r.carts, r.purchases) for r in out.collect())
    # spend (item prices of purchases) is 0 here: these items carry no price; see test_spark_behaviour_features
    assert got == [
        ("u1", date(2023, 12, 1), "bags", 1, 0, 0),
        ("u1", date(2024, 1, 20), "bags", 1, 0, 0),
        ("u1", date(2024, 3, 9), "bags", 1, 0, 0),  # e2 once; the click e6 is not counted
        ("u1", date(2024, 3, 9), "shoes", 1, 1, 1),
        ("u4", date(2024, 3, 5), "shoes", 2, 0, 1),
    ]


def test_roll_up_active_user_hand_computed(user_features_rows):
    u1 = user_features_rows["u1"]
    # orders 100 (03-09, discounted), 50 (02-20), 30 (01-20, discounted): mean 60,
    # population variance (40^2 + 10^2 + 30^2) / 3 = 2600 / 3
    expected = {
        "user_id": "u1",
        "as_of": AS_OF,
        "tenure_days": 69,  # 2024-01-01 -> 2024-03-10
        "days_since_last_event": 1,
        "days_since_last_order": 1,
        "days_since_last_exposure": 2,  # the 'none' exposure of 03-09 does not count
        "orders_7d": 1,
        "orders_30d": 2,
        "orders_90d": 3,
        "spend_7d": 100.0,
        "spend_30d": 150.0,
        "spend_90d": 180.0,
        "views_30d": 2,  # e1, e2 (e2 delivered twice); e8 is 50 days old
        "carts_30d": 1,
        "sessions_30d": 3,  # s1, s2 on 03-09, s3 on 03-01
        "searches_30d": 1,
        "events_per_session_30d": 7 / 3,
        "view_to_cart_rate_30d": 0.5,
        "cart_to_order_rate_30d": 1.0,  # 2 orders / 1 cart, capped
        "avg_order_value_90d": 60.0,
        "order_value_std_90d": math.sqrt(2600 / 3),
        "discount_order_share_90d": 2 / 3,
        "exposures_30d": 1,
        "preferred_hour": 8,  # 08: 3 events, 09: 2, 21: 2, 10: 1 (e9 is outside 90 days)
        "top_category": "shoes",  # shoes 3 vs bags 2 in 90 days (bags would tie with e9)
    }
    assert list(u1)[: len(expected)] == list(expected)  # the original columns come first, in order
    for key, value in expected.items():
        if isinstance(value, float):
            assert u1[key] == pytest.approx(value, rel=1e-12), key
        else:
            assert u1[key] == value, key


def test_roll_up_user_with_orders_only(user_features_rows):
    u2 = user_features_rows["u2"]
    assert u2["tenure_days"] == 1  # signed up 2024-03-09 23:59
    assert u2["days_since_last_event"] == 999
    assert u2["days_since_last_order"] == 5
    assert u2["days_since_last_exposure"] == 38  # 2024-02-01, 2024 is a leap year
    assert (u2["orders_7d"], u2["orders_30d"], u2["orders_90d"]) == (1, 1, 1)
    assert (u2["spend_7d"], u2["spend_30d"], u2["spend_90d"]) == (40.0, 40.0, 40.0)
    assert u2["avg_order_value_90d"] == 40.0
    assert u2["order_value_std_90d"] == 0.0
    assert u2["cart_to_order_rate_30d"] == 0.0  # no carts: no rate
    assert u2["exposures_30d"] == 0  # 38 days ago
    assert (u2["preferred_hour"], u2["top_category"]) == (10, "unknown")


def test_roll_up_defaults_and_no_nulls(spark, user_features_rows):
    assert set(user_features_rows) == {"u1", "u2", "u3"}  # users snapshot only; u4 is not in it
    u3 = user_features_rows["u3"]
    defaults = {
        "tenure_days": 0,  # signs up after as_of
        "days_since_last_event": 999,
        "days_since_last_order": 999,
        "days_since_last_exposure": 999,
        **{f"days_since_last_{t}_offer": 999 for t in PROMO_TYPES},
        "preferred_hour": 10,
        "top_category": "unknown",
        **{f"top_category_{k}": "" for k in (1, 2, 3)},
    }
    for key, value in u3.items():
        if key in ("user_id", "as_of"):
            continue
        assert value == defaults.get(key, 0), key
    for row in user_features_rows.values():
        assert all(v is not None for v in row.values()), row


def test_roll_up_schema_is_the_documented_table(spark):
    assert _types(_features(spark).schema) == _types(USER_FEATURES_SCHEMA)


def test_roll_up_ignores_activity_at_or_after_as_of(spark, user_features_rows):
    late_events = EVENTS + [
        ("x1", "u1", "i2", "view", ts(2024, 3, 10, 0, 0), "s7", None),
        ("x2", "u1", "i2", "purchase", ts(2024, 3, 10, 15, 0), "s7", None),
        ("x3", "u3", "i1", "view", ts(2024, 3, 11, 9, 0), "s8", None),
        ("x4", "u2", None, "search", ts(2024, 3, 10, 0, 0, 1), "s9", "late"),
    ]
    late_orders = ORDERS + [
        ("x5", "u1", ts(2024, 3, 10, 0, 0), 999.0, 99.0),
        ("x6", "u3", ts(2024, 3, 12, 8, 0), 10.0, 0.0),
    ]
    late_exposures = EXPOSURES + [("u3", "p9", ts(2024, 3, 10, 0, 0)), ("u2", "p9", ts(2024, 3, 10, 6, 0))]
    rows = _features(spark, events=late_events, orders=late_orders, exposures=late_exposures).collect()
    assert {r["user_id"]: r.asDict() for r in rows} == user_features_rows


def test_item_features_hand_computed(spark):
    f = frames(spark)
    events = f["events"].unionByName(spark.createDataFrame(DUPLICATE_EVENTS, EVENTS_SCHEMA))
    late = spark.createDataFrame([("x1", "u1", "i2", "purchase", ts(2024, 3, 10, 0, 0), "s", None)], EVENTS_SCHEMA)
    out = item_features(events.unionByName(late), f["items"], AS_OF)
    assert _types(out.schema) == _types(ITEM_FEATURES_SCHEMA)
    got = sorted(tuple(r) for r in out.collect())
    assert got == [
        # i1: view e1 + purchase e4 (the cart e3 is neither); rank 2 of shoes: ties i3 on purchases, fewer views
        ("i1", "shoes", 1, 1, 1.0, 2),
        # i2: view e2 once; the click e6 does not count, e8 is 50 days old, x1 is at as_of
        ("i2", "bags", 1, 0, 0.0, 1),
        ("i3", "shoes", 2, 1, 0.5, 1),
        ("i4", "unknown", 0, 0, 0.0, 1),
    ]


def test_popularity_rank_ties_fall_back_to_item_id(spark):
    f = frames(
        spark,
        events=[
            ("a", "u1", "i3", "view", ts(2024, 3, 9), None, None),
            ("b", "u1", "i1", "view", ts(2024, 3, 9), None, None),
        ],
    )
    ranks = {r.item_id: r.popularity_rank_in_category for r in item_features(f["events"], f["items"], AS_OF).collect()}
    assert (ranks["i1"], ranks["i3"]) == (1, 2)


# ------------------------------------------------------------------ many as_of dates in one pass
# Window edges after u1's activity of 2023-12-01, 2024-01-20 and 2024-03-09: 1 day, 7 days
# (03-09 left out on 03-17), 90 days (01-20 still in on 04-19). Few: each single date costs ~1 s.
MANY_AS_OF = [date(2023, 12, 2), date(2024, 1, 21), AS_OF, date(2024, 3, 17), date(2024, 4, 19)]


@pytest.fixture(scope="module")
def sample_inputs(spark):
    """The sample's daily rows, collected once so that each roll-up plan below stays small."""
    f = frames(spark)
    events = f["events"].unionByName(spark.createDataFrame(DUPLICATE_EVENTS, EVENTS_SCHEMA))
    daily = user_daily_aggregates(events, f["orders"], f["exposures"])
    category_daily = user_category_daily(events, f["items"])
    # The single-date plans below are unioned; one shuffle partition each keeps the tasks few.
    previous = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "1")
    yield {
        "daily": spark.createDataFrame(daily.collect(), USER_DAILY_SCHEMA),
        "category_daily": spark.createDataFrame(category_daily.collect(), USER_CATEGORY_DAILY_SCHEMA),
        "users": f["users"],
        "items": f["items"],
        "events": spark.createDataFrame(events.collect(), EVENTS_SCHEMA),
    }
    spark.conf.set("spark.sql.shuffle.partitions", previous)


def _rows_by_as_of(df, key: str) -> list[dict]:
    return sorted((r.asDict() for r in df.collect()), key=lambda r: (r["as_of"], r[key]))


def test_multi_date_roll_up_equals_single_date_roll_ups(sample_inputs):
    s = sample_inputs
    # unsorted, with a duplicate: one output per distinct date
    multi = roll_up_user_features_for_dates(s["daily"], s["category_daily"], s["users"], [*reversed(MANY_AS_OF), AS_OF])
    assert _types(multi.schema) == _types(USER_FEATURES_SCHEMA)
    singles = reduce(
        DataFrame.unionByName,
        [roll_up_user_features(s["daily"], s["category_daily"], s["users"], d) for d in MANY_AS_OF],
    )
    got, expected = _rows_by_as_of(multi, "user_id"), _rows_by_as_of(singles, "user_id")
    assert len(expected) == 3 * len(MANY_AS_OF)
    assert got == expected  # row for row, exactly: defaults, values and Python types
    assert {r["user_id"]: r for r in got if r["as_of"] == AS_OF}["u1"]["orders_90d"] == 3  # not all defaults
    assert {r["orders_7d"] for r in got if r["user_id"] == "u1"} == {0, 1}


def test_multi_date_item_features_equal_single_date_item_features(sample_inputs):
    s = sample_inputs
    multi = item_features_for_dates(s["events"], s["items"], [*reversed(MANY_AS_OF), AS_OF])
    assert _types(multi.schema) == _types(ITEM_FEATURES_SCHEMA) + [("as_of", "date")]
    singles = reduce(
        DataFrame.unionByName,
        [item_features(s["events"], s["items"], d).withColumn("as_of", F.lit(d)) for d in MANY_AS_OF],
    )
    got, expected = _rows_by_as_of(multi, "item_id"), _rows_by_as_of(singles, "item_id")
    assert len(expected) == 4 * len(MANY_AS_OF)
    assert got == expected


def test_multi_date_roll_ups_need_a_date(sample_inputs):
    s = sample_inputs
    with pytest.raises(ValueError):
        roll_up_user_features_for_dates(s["daily"], s["category_daily"], s["users"], [])
    with pytest.raises(ValueError):
        item_features_for_dates(s["events"], s["items"], [])


def test_roll_up_spend_does_not_depend_on_the_order_of_the_daily_rows(spark, sample_inputs):
    # 0.1 + 0.2 + 0.3 is 0.6000000000000001 in doubles, 0.6 in other orders; NaN stays NaN.
    amounts = {"u1": [0.1, 0.2, 0.3], "u2": [1.5, float("nan")]}
    rows = [
        _daily_row(user_id=u, dt=date(2024, 3, 1 + i), n_orders=1, order_amount=a, order_amount_sq=a * a)
        for u, values in amounts.items()
        for i, a in enumerate(values)
    ]
    daily = spark.createDataFrame(rows, USER_DAILY_SCHEMA)
    got = {
        r.user_id: r
        for r in roll_up_user_features(daily, sample_inputs["category_daily"], sample_inputs["users"], AS_OF).collect()
    }
    assert got["u1"].spend_30d == 0.6 and got["u1"].avg_order_value_90d == 0.6 / 3
    assert math.isnan(got["u2"].spend_30d)
    assert got["u3"].spend_30d == 0.0
