"""Hand-built inputs shared by the Spark tests; expected numbers are worked out in the tests."""

from __future__ import annotations

from datetime import UTC, date, datetime

from pyspark.sql.types import DoubleType, StringType, StructField, StructType, TimestampType

AS_OF = date(2024, 3, 10)

EVENTS_SCHEMA = StructType(
    [
        StructField("event_id", StringType()),
        StructField("user_id", StringType()),
        StructField("item_id", StringType()),
        StructField("event_type", StringType()),
        StructField("event_ts", TimestampType()),
        StructField("session_id", StringType()),
        StructField("query", StringType()),
    ]
)
ORDERS_SCHEMA = StructType(
    [
        StructField("order_id", StringType()),
        StructField("user_id", StringType()),
        StructField("order_ts", TimestampType()),
        StructField("gross_amount", DoubleType()),
        StructField("discount_amount", DoubleType()),
    ]
)
EXPOSURES_SCHEMA = StructType(
    [
        StructField("user_id", StringType()),
        StructField("promo_id", StringType()),
        StructField("sent_ts", TimestampType()),
    ]
)
USERS_SCHEMA = StructType([StructField("user_id", StringType()), StructField("signup_ts", TimestampType())])
ITEMS_SCHEMA = StructType([StructField("item_id", StringType()), StructField("category", StringType())])


def ts(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# i1, i3: shoes; i2: bags; i4: no category
ITEMS = [("i1", "shoes"), ("i2", "bags"), ("i3", "shoes"), ("i4", None)]

# u1: active; u2: orders and an exposure, no events; u3: nothing, signs up after AS_OF.
# u4 has events but is not in the users snapshot.
USERS = [
    ("u1", ts(2024, 1, 1)),
    ("u2", ts(2024, 3, 9, 23, 59)),
    ("u3", ts(2024, 4, 1)),
]

EVENTS = [
    ("e1", "u1", "i1", "view", ts(2024, 3, 9, 8, 15), "s1", None),
    ("e2", "u1", "i2", "view", ts(2024, 3, 9, 8, 40), "s1", None),
    ("e3", "u1", "i1", "add_to_cart", ts(2024, 3, 9, 9, 5), "s1", None),
    ("e4", "u1", "i1", "purchase", ts(2024, 3, 9, 9, 10), "s1", None),
    ("e5", "u1", None, "search", ts(2024, 3, 9, 21, 0), "s2", "red shoes"),
    ("e6", "u1", "i2", "click", ts(2024, 3, 9, 21, 5), "s2", None),
    ("e7", "u1", None, "app_open", ts(2024, 3, 1, 8, 0), "s3", None),
    ("e8", "u1", "i2", "view", ts(2024, 1, 20, 10, 0), None, None),
    # 100 days before AS_OF: outside the 90-day roll-up (it would tie bags with shoes).
    ("e9", "u1", "i2", "view", ts(2023, 12, 1, 10, 0), "s9", None),
    ("e10", "u4", "i3", "view", ts(2024, 3, 5, 10, 0), "s4", None),
    ("e11", "u4", "i3", "view", ts(2024, 3, 5, 10, 1), "s4", None),
    ("e12", "u4", "i3", "purchase", ts(2024, 3, 5, 10, 2), "s4", None),
]
# e2 again, as delivered in a second file.
DUPLICATE_EVENTS = [("e2", "u1", "i2", "view", ts(2024, 3, 9, 8, 40), "s1", None)]

ORDERS = [
    ("o1", "u1", ts(2024, 3, 9, 9, 10), 100.0, 10.0),
    ("o2", "u1", ts(2024, 2, 20, 12, 0), 50.0, 0.0),
    ("o3", "u1", ts(2024, 1, 20, 10, 30), 30.0, 5.0),
    ("o4", "u2", ts(2024, 3, 5, 18, 0), 40.0, 0.0),
]

EXPOSURES = [
    ("u1", "p1", ts(2024, 3, 8, 7, 0)),
    ("u1", "none", ts(2024, 3, 9, 7, 0)),  # control: not an offer
    ("u2", "p2", ts(2024, 2, 1, 7, 0)),
]


def frames(spark, events=EVENTS, orders=ORDERS, exposures=EXPOSURES):
    return {
        "events": spark.createDataFrame(events, EVENTS_SCHEMA),
        "orders": spark.createDataFrame(orders, ORDERS_SCHEMA),
        "exposures": spark.createDataFrame(exposures, EXPOSURES_SCHEMA),
        "users": spark.createDataFrame(USERS, USERS_SCHEMA),
        "items": spark.createDataFrame(ITEMS, ITEMS_SCHEMA),
    }
