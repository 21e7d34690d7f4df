"""Behaviour features on hand-built rows: deal-proneness, fatigue, channels, prices, carts,
hour shares, top-3 categories, user x category affinity, item neighbours, sequences.

Every expected number is worked out in the comments from the rows below. The leakage
and dedupe tests run every output table (user_features, user_category_features,
user_sequences, item_features with neighbours).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampType
from spark_sample_data import AS_OF, EVENTS_SCHEMA, USERS_SCHEMA, ts

from spark_jobs.category_features import USER_CATEGORY_FEATURES_SCHEMA, user_category_features
from spark_jobs.item_features import (
    ITEM_FEATURES_WITH_NEIGHBOURS_SCHEMA,
    item_features_with_neighbours,
    item_features_with_neighbours_for_dates,
    item_neighbours_for_dates,
)
from spark_jobs.sequence_features import USER_SEQUENCES_SCHEMA, user_sequences
from spark_jobs.user_features import (
    USER_FEATURES_SCHEMA,
    roll_up_user_features,
    user_category_daily,
    user_daily_aggregates,
)

ORDERS_SCHEMA = StructType(
    [
        StructField("order_id", StringType()),
        StructField("user_id", StringType()),
        StructField("order_ts", TimestampType()),
        StructField("gross_amount", DoubleType()),
        StructField("discount_amount", DoubleType()),
        StructField("promo_id", StringType()),
    ]
)
EXPOSURES_SCHEMA = StructType(
    [
        StructField("user_id", StringType()),
        StructField("promo_id", StringType()),
        StructField("sent_ts", TimestampType()),
        StructField("channel", StringType()),
    ]
)
ITEMS_SCHEMA = StructType(
    [StructField("item_id", StringType()), StructField("category", StringType()), StructField("price", DoubleType())]
)
PROMOTIONS_SCHEMA = StructType([StructField("promo_id", StringType()), StructField("promo_type", StringType())])

ITEMS = [("a1", "shoes", 10.0), ("a2", "shoes", 30.0), ("b1", "bags", 50.0), ("c1", "hats", 20.0), ("z1", None, 5.0)]
PROMOTIONS = [("p_pct", "percent_off"), ("p_amt", "amount_off"), ("p_gift", "gift")]
USERS = [("v1", ts(2024, 1, 1)), ("v2", ts(2024, 2, 1)), ("v3", ts(2024, 3, 1))]  # v3: no activity

EVENTS = [
    # v1, 03-09: session s1 views a1, a2, carts and buys a2; session s2 views and carts b1 (abandoned)
    ("ev1", "v1", "a1", "view", ts(2024, 3, 9, 8, 0), "s1", None),
    ("ev2", "v1", "a2", "view", ts(2024, 3, 9, 8, 5), "s1", None),
    ("ev3", "v1", "a2", "add_to_cart", ts(2024, 3, 9, 8, 10), "s1", None),
    ("ev6", "v1", "a2", "purchase", ts(2024, 3, 9, 8, 20), "s1", None),
    ("ev4", "v1", "b1", "view", ts(2024, 3, 9, 20, 0), "s2", None),
    ("ev5", "v1", "b1", "add_to_cart", ts(2024, 3, 9, 20, 5), "s2", None),
    # v1, 03-05: views and buys c1; 02-20: a search
    ("ev7", "v1", "c1", "view", ts(2024, 3, 5, 20, 30), "s3", None),
    ("ev8", "v1", "c1", "purchase", ts(2024, 3, 5, 20, 40), "s3", None),
    ("ev9", "v1", None, "search", ts(2024, 2, 20, 20, 0), "s4", "hat"),
    # v2, 03-08: views a1, a2 in s5 and buys both (one basket)
    ("ev20", "v2", "a1", "view", ts(2024, 3, 8, 9, 0), "s5", None),
    ("ev21", "v2", "a2", "view", ts(2024, 3, 8, 9, 1), "s5", None),
    ("ev22", "v2", "a1", "purchase", ts(2024, 3, 8, 9, 5), "s5", None),
    ("ev23", "v2", "a2", "purchase", ts(2024, 3, 8, 9, 6), "s5", None),
]
ORDERS = [
    ("o1", "v1", ts(2024, 3, 9, 8, 20), 30.0, 3.0, "p_pct"),
    ("o2", "v1", ts(2024, 3, 5, 20, 40), 20.0, 0.0, None),
    ("o3", "v2", ts(2024, 3, 8, 9, 5), 40.0, 5.0, "p_amt"),
]
EXPOSURES = [
    ("v1", "p_pct", ts(2024, 3, 3, 7, 0), "email"),  # order on 03-05: engaged
    ("v1", "p_gift", ts(2024, 2, 1, 7, 0), "push"),  # no order by 02-07: not engaged
    ("v1", "p_amt", ts(2024, 3, 8, 7, 0), "email"),  # order on 03-09: engaged
    ("v1", "none", ts(2024, 3, 9, 7, 0), "email"),  # control: not an offer
    ("v2", "p_amt", ts(2024, 3, 7, 12, 0), "sms"),  # order on 03-08: engaged
    ("v2", "p_pct", ts(2024, 3, 8, 12, 0), "sms"),  # order earlier that day: engaged (day resolution)
]

# Rows at or after AS_OF 00:00: none of them may change any output.
LATE_EVENTS = [
    ("late1", "v1", "c1", "view", ts(2024, 3, 10, 0, 0), "s1", None),  # same session as 03-09
    ("late2", "v1", "a1", "purchase", ts(2024, 3, 10, 0, 0), "s9", None),
    ("late3", "v3", "b1", "view", ts(2024, 3, 11, 9, 0), "s8", None),
    ("late4", "v3", "b1", "add_to_cart", ts(2024, 3, 11, 9, 1), "s8", None),
    ("late5", "v2", "b1", "purchase", ts(2024, 3, 10, 1, 0), "s5", None),
    ("late6", "v2", "a1", "purchase", ts(2024, 3, 10, 1, 0), "s5", None),
]
LATE_ORDERS = [
    ("late_o1", "v1", ts(2024, 3, 10, 0, 0), 500.0, 50.0, "p_gift"),
    ("late_o2", "v3", ts(2024, 3, 12, 0, 0), 10.0, 0.0, "p_pct"),
]
LATE_EXPOSURES = [("v1", "p_gift", ts(2024, 3, 10, 0, 0), "push"), ("v3", "p_pct", ts(2024, 3, 10, 6, 0), "in_app")]


def _frames(spark, events=EVENTS, orders=ORDERS, exposures=EXPOSURES):
    return (
        spark.createDataFrame(events, EVENTS_SCHEMA),
        spark.createDataFrame(orders, ORDERS_SCHEMA),
        spark.createDataFrame(exposures, EXPOSURES_SCHEMA),
        spark.createDataFrame(USERS, USERS_SCHEMA),
        spark.createDataFrame(ITEMS, ITEMS_SCHEMA),
        spark.createDataFrame(PROMOTIONS, PROMOTIONS_SCHEMA),
    )


def _outputs(spark, **kwargs) -> dict[str, list[dict]]:
    """Every as_of output for AS_OF, collected and sorted."""
    events, orders, exposures, users, items, promotions = _frames(spark, **kwargs)
    daily = user_daily_aggregates(events, orders, exposures, items, promotions)
    category_daily = user_category_daily(events, items)
    out = {
        "user_features": roll_up_user_features(daily, category_daily, users, AS_OF),
        "user_category_features": user_category_features(category_daily, AS_OF),
        "user_sequences": user_sequences(daily, users, AS_OF),
        "item_features": item_features_with_neighbours(events, items, AS_OF),
    }
    return {
        name: sorted((r.asDict() for r in df.collect()), key=lambda r: tuple(str(v) for v in r.values()))
        for name, df in out.items()
    }


@pytest.fixture(scope="module")
def outputs(spark):
    return _outputs(spark)


def _by(rows, *keys):
    return {tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in rows}


def test_user_features_new_columns_hand_computed(outputs):
    v1 = _by(outputs["user_features"], "user_id")["v1"]
    expected = {
        # 9 distinct events: 8 in [03-03, 03-10), the search of 02-20 too in 30 and 90 days
        "events_7d": 8,
        "events_30d": 9,
        "events_90d": 9,
        "sessions_90d": 4,  # s1, s2 (03-09), s3 (03-05), s4 (02-20)
        "events_per_session_90d": 9 / 4,
        "searches_90d": 1,
        "cart_abandonment_rate_30d": 0.5,  # cart sessions s1 (bought), s2 (not)
        "avg_viewed_price_90d": (10 + 30 + 50 + 20) / 4,  # a1, a2, b1, c1
        "avg_purchased_price_90d": (30 + 20) / 2,  # a2, c1
        "purchased_to_viewed_price_ratio_90d": 25 / 27.5,
        # offers (the 'none' control is not one): 03-03, 03-08 in 7 days; 02-01 too in 90
        "exposures_7d": 2,
        "exposures_30d": 2,
        "exposures_90d": 3,
        "redemptions_90d": 1,  # o1 with p_pct
        "redemption_rate_90d": 1 / 3,
        "redemption_rate_percent_off_90d": 1.0,  # 1 of 1 percent_off offers redeemed
        "redemption_rate_amount_off_90d": 0.0,  # p_amt sent, o1 redeemed p_pct instead
        "redemption_rate_gift_90d": 0.0,
        "redemption_rate_spend_threshold_90d": 0.0,  # never offered
        "redemption_rate_free_shipping_90d": 0.0,
        # the last offer of each type: p_pct 03-03, p_amt 03-08, p_gift 02-01 (the 'none' control is not one)
        "days_since_last_percent_off_offer": 7,
        "days_since_last_amount_off_offer": 2,
        "days_since_last_gift_offer": 38,
        "days_since_last_spend_threshold_offer": 999,
        "days_since_last_free_shipping_offer": 999,
        "hour_share_08": 4 / 9,
        "hour_share_20": 5 / 9,
        "hour_share_09": 0.0,
        "preferred_hour": 20,
        "channel_engagement_email_90d": 1.0,  # 03-03 (order 03-05) and 03-08 (order 03-09)
        "channel_engagement_push_90d": 0.0,  # 02-01, no order within 7 days
        "channel_engagement_sms_90d": 0.0,
        "channel_engagement_in_app_90d": 0.0,
        # shoes 4 (2 views, cart, purchase); bags 2 and hats 2 tie: alphabetical
        "top_category": "shoes",
        "top_category_1": "shoes",
        "top_category_2": "bags",
        "top_category_3": "hats",
        "discount_order_share_90d": 0.5,  # o1 of o1, o2
    }
    for key, value in expected.items():
        assert v1[key] == pytest.approx(value, rel=1e-12) if isinstance(value, float) else v1[key] == value, key
    assert sum(v1[f"hour_share_{h:02d}"] for h in range(24)) == pytest.approx(1.0)


def test_user_features_second_user_deal_proneness_and_channels(outputs):
    v2 = _by(outputs["user_features"], "user_id")["v2"]
    assert v2["redemption_rate_amount_off_90d"] == 1.0  # p_amt sent 03-07, redeemed by o3
    assert v2["redemption_rate_percent_off_90d"] == 0.0
    assert v2["channel_engagement_sms_90d"] == 1.0  # both sms offers followed by an order that day or later
    assert v2["channel_engagement_email_90d"] == 0.0
    assert v2["cart_abandonment_rate_30d"] == 0.0  # no carts
    assert (v2["top_category_1"], v2["top_category_2"], v2["top_category_3"]) == ("shoes", "", "")


def test_user_without_events_gets_defaults_not_nulls(outputs):
    rows = _by(outputs["user_features"], "user_id")
    assert set(rows) == {"v1", "v2", "v3"}
    v3 = rows["v3"]
    for field in USER_FEATURES_SCHEMA.fields[25:]:
        expected = "" if field.name.startswith("top_category_") else 999 if field.name.startswith("days_since_") else 0
        assert v3[field.name] == expected, field.name
    assert all(v is not None for r in rows.values() for v in r.values())
    sequences = _by(outputs["user_sequences"], "user_id")
    assert (sequences["v3"]["last_item_ids"], sequences["v3"]["sequence_length"]) == ("", 0)


def test_user_category_features_hand_computed(outputs):
    got = [tuple(r[f.name] for f in USER_CATEGORY_FEATURES_SCHEMA.fields) for r in outputs["user_category_features"]]
    # (user, as_of, category, views, carts, purchases, spend, days_since_last, affinity, rank)
    assert sorted(got, key=lambda r: (r[0], r[9])) == [
        ("v1", AS_OF, "shoes", 2, 1, 1, 30.0, 1, 4.0, 1),  # spend: a2 bought at 30
        ("v1", AS_OF, "bags", 1, 1, 0, 0.0, 1, 2.0, 2),
        ("v1", AS_OF, "hats", 1, 0, 1, 20.0, 5, 2.0, 3),  # last on 03-05
        ("v2", AS_OF, "shoes", 2, 0, 2, 40.0, 2, 4.0, 1),  # a1 10 + a2 30
    ]


def test_user_sequences_hand_computed(outputs):
    rows = _by(outputs["user_sequences"], "user_id")
    # search ev9 has no item; days in order, each day in event_ts order
    assert rows["v1"]["last_item_ids"] == "c1,c1,a1,a2,a2,a2,b1,b1"
    assert rows["v1"]["sequence_length"] == 8
    assert (rows["v2"]["last_item_ids"], rows["v2"]["sequence_length"]) == ("a1,a2,a1,a2", 4)
    assert [f.name for f in USER_SEQUENCES_SCHEMA.fields] == list(rows["v1"])


def test_user_sequences_keep_the_last_20_across_days(spark):
    # 12 views on 03-01 (x01..x12) and 12 on 03-02 (x13..x24): the last 20 are x05..x24
    events = [
        (f"q{i}", "v1", f"x{i:02d}", "view", ts(2024, 3, 1 if i <= 12 else 2, 10, i), "s", None) for i in range(1, 25)
    ]
    ev, orders, exposures, users, items, promotions = _frames(spark, events=events)
    row = (
        user_sequences(user_daily_aggregates(ev, orders, exposures, items, promotions), users, AS_OF)
        .filter("user_id = 'v1'")
        .first()
    )
    assert row["last_item_ids"] == ",".join(f"x{i:02d}" for i in range(5, 25))
    assert row["sequence_length"] == 20


def test_item_features_with_neighbours_hand_computed(outputs):
    got = [tuple(r[f.name] for f in ITEM_FEATURES_WITH_NEIGHBOURS_SCHEMA.fields) for r in outputs["item_features"]]
    assert got == [
        # a1, a2 viewed together in s1 and s5; bought together by v2 on 03-08
        ("a1", "shoes", 2, 1, 0.5, 2, "a2", "a2"),
        ("a2", "shoes", 2, 2, 1.0, 1, "a1", "a1"),
        ("b1", "bags", 1, 0, 0.0, 1, "", ""),
        ("c1", "hats", 1, 1, 1.0, 1, "", ""),  # v1 bought a2 on 03-09, c1 on 03-05: other baskets
        ("z1", "unknown", 0, 0, 0.0, 1, "", ""),
    ]


def test_neighbours_are_most_frequent_first_ties_by_item_id_top_n(spark):
    events = [
        (f"n{i}", "w", item, "view", ts(2024, 3, 1, 10, i), session, None)
        for i, (session, item) in enumerate(
            [
                ("t1", "m1"),
                ("t1", "m2"),
                ("t1", "m3"),
                ("t2", "m1"),
                ("t2", "m3"),
                ("t3", "m1"),
                ("t3", "m4"),
                ("t3", "m4"),
            ]  # m4 twice in t3: one session, counted once
        )
    ]
    rows = item_neighbours_for_dates(spark.createDataFrame(events, EVENTS_SCHEMA), [AS_OF], top_n=2).collect()
    got = {r["item_id"]: r["co_viewed_item_ids"] for r in rows}
    assert got["m1"] == "m3,m2"  # m3: 2 sessions; m2 and m4: 1 each, m2 first; top 2
    assert got["m4"] == "m1"


def test_neighbours_only_on_the_requested_dates(spark, outputs):
    events, _, _, _, items, _ = _frames(spark)
    earlier = AS_OF - timedelta(days=1)
    rows = item_features_with_neighbours_for_dates(events, items, [earlier, AS_OF], neighbour_dates=[AS_OF]).collect()
    on = {r["item_id"]: r["co_viewed_item_ids"] for r in rows if r["as_of"] == AS_OF}
    off = {r["item_id"]: (r["co_viewed_item_ids"], r["co_bought_item_ids"]) for r in rows if r["as_of"] == earlier}
    assert on == {r["item_id"]: r["co_viewed_item_ids"] for r in outputs["item_features"]}
    assert off and set(off.values()) == {("", "")}


def test_nothing_at_or_after_as_of_changes_any_output(spark, outputs):
    late = _outputs(
        spark, events=EVENTS + LATE_EVENTS, orders=ORDERS + LATE_ORDERS, exposures=EXPOSURES + LATE_EXPOSURES
    )
    for table in outputs:
        assert late[table] == outputs[table], table


def test_duplicate_events_are_counted_once_in_every_output(spark, outputs):
    # ev3, ev6 and ev22 delivered again (another file); same event_id, same content
    duplicated = EVENTS + [e for e in EVENTS if e[0] in ("ev3", "ev6", "ev22")]
    again = _outputs(spark, events=duplicated)
    for table in outputs:
        assert again[table] == outputs[table], table
