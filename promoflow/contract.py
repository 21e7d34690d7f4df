"""The data contract (DATA_CONTRACT.md) as code: what we read, what we write, and the words both use.

A leaf module (standard library and pyarrow only), so ``ml/`` and ``spark_jobs/`` import it
without pulling in promoflow's engines. Ingest's column types and not-null rules, the demo
landing's Parquet schemas, the warehouse's DDL of the published tables, the marketing export
and the API's fields are all derived from the schemas here.
"""

from __future__ import annotations

import pyarrow as pa

# The arm "send nothing": a reserved promo_id, never in a catalogue.
NONE_ARM = "none"
PROMO_TYPES = ("percent_off", "amount_off", "spend_threshold", "free_shipping", "gift")
CHANNELS = ("email", "push", "sms", "in_app")
EVENT_TYPES = ("view", "click", "add_to_cart", "purchase", "search", "app_open")

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")


def _required(name: str, arrow_type: pa.DataType) -> pa.Field:
    return pa.field(name, arrow_type, nullable=False)


def _optional(name: str, arrow_type: pa.DataType) -> pa.Field:
    return pa.field(name, arrow_type, nullable=True)


# ---------------------------------------------------------------------- the landing zone
# Exactly the contract's columns; ``nullable=False`` where it has no "nullable" note, so a
# writer that produces nulls fails loudly in pyarrow. Ingest quarantines a null in a required
# column (promoflow.ingest names the few it tolerates).
RAW_TABLES: dict[str, pa.Schema] = {
    "users": pa.schema(
        [
            _required("user_id", pa.string()),
            _required("signup_ts", UTC_TIMESTAMP),
            _required("region", pa.string()),
            _required("device", pa.string()),
            _optional("email", pa.string()),  # PII: never leaves the raw zone unhashed
        ]
    ),
    "items": pa.schema(
        [
            _required("item_id", pa.string()),
            _required("category", pa.string()),
            _optional("brand", pa.string()),
            _required("price", pa.float64()),
            _required("unit_cost", pa.float64()),
        ]
    ),
    "promotions": pa.schema(
        [
            _required("promo_id", pa.string()),
            _required("promo_type", pa.string()),
            _required("value", pa.float64()),
            _required("min_spend", pa.float64()),
            _optional("max_discount", pa.float64()),
            _optional("category", pa.string()),
            _optional("channel", pa.string()),
            _required("valid_days", pa.int32()),
            _required("active_from", pa.date32()),
            _required("active_to", pa.date32()),
        ]
    ),
    "events": pa.schema(
        [
            _required("event_id", pa.string()),
            _required("user_id", pa.string()),
            _optional("item_id", pa.string()),
            _required("event_type", pa.string()),
            _required("event_ts", UTC_TIMESTAMP),
            _optional("session_id", pa.string()),
            _optional("query", pa.string()),
        ]
    ),
    "orders": pa.schema(
        [
            _required("order_id", pa.string()),
            _required("user_id", pa.string()),
            _required("order_ts", UTC_TIMESTAMP),
            _required("gross_amount", pa.float64()),
            _required("discount_amount", pa.float64()),
            _required("cogs", pa.float64()),
            _required("shipping_fee", pa.float64()),
            _optional("promo_id", pa.string()),
            _required("n_items", pa.int32()),
        ]
    ),
    "exposures": pa.schema(
        [
            _required("user_id", pa.string()),
            _required("promo_id", pa.string()),
            _required("sent_ts", UTC_TIMESTAMP),
            _required("channel", pa.string()),
            _optional("propensity", pa.float64()),
            _optional("policy_version", pa.string()),
        ]
    ),
}
RAW_KEYS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "items": ("item_id",),
    "promotions": ("promo_id",),
    "events": ("event_id",),
    "orders": ("order_id",),
    "exposures": ("user_id", "promo_id", "sent_ts"),
}
# Whole-table snapshots ({raw_uri}/{table}/*.parquet) and daily partitions ({table}/dt=YYYY-MM-DD/).
SNAPSHOT_TABLES = ("users", "items", "promotions")
DAILY_TABLES = ("events", "orders", "exposures")


def required_columns(table: str) -> tuple[str, ...]:
    """The columns of a landing table that must not be null."""
    return tuple(f.name for f in RAW_TABLES[table] if not f.nullable)


# ---------------------------------------------------------------------- what we write
PROMO_ASSIGNMENTS = pa.schema(
    [
        ("run_date", pa.date32()),
        ("user_key", pa.string()),  # keyed hash of user_id: what marketing sees
        ("user_id", pa.string()),  # warehouse only
        ("promo_id", pa.string()),  # a catalogue promo_id or NONE_ARM
        ("channel", pa.string()),
        ("send_hour", pa.int32()),
        ("message", pa.string()),
        ("featured_item_ids", pa.string()),
        ("expected_incremental_margin", pa.float64()),
        ("expected_cost", pa.float64()),
        ("propensity", pa.float64()),
        ("is_holdout", pa.bool_()),
        ("is_exploration", pa.bool_()),
        ("reason", pa.string()),
        ("policy_version", pa.string()),
        ("model_version", pa.string()),
    ]
)
# Raw ids never leave the warehouse: the marketing export and the API carry the rest.
WAREHOUSE_ONLY_COLUMNS = ("user_id",)
EXPORT_COLUMNS = tuple(name for name in PROMO_ASSIGNMENTS.names if name not in WAREHOUSE_ONLY_COLUMNS)

# One row per published night: the budget it ran under and its totals.
PROMO_RUNS = pa.schema(
    [
        ("run_date", pa.date32()),
        ("budget", pa.float64()),
        ("expected_cost", pa.float64()),
        ("expected_incremental_margin", pa.float64()),
        ("users", pa.int64()),
        ("offers", pa.int64()),
        ("holdout_users", pa.int64()),
        ("holdout_share", pa.float64()),
        ("policy_version", pa.string()),
        ("model_version", pa.string()),
        ("published_at", pa.timestamp("us")),  # UTC, without time zone like every warehouse timestamp
    ]
)


def warehouse_type(arrow_type: pa.DataType) -> str:
    """The SQL type a column of this Arrow type has in the warehouse (DuckDB and Postgres alike)."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "varchar"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_int8(arrow_type) or pa.types.is_int16(arrow_type) or pa.types.is_int32(arrow_type):
        return "integer"
    if pa.types.is_integer(arrow_type):
        return "bigint"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "double precision"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_date(arrow_type):
        return "date"
    raise TypeError(f"no warehouse type for Arrow type {arrow_type}")


def warehouse_columns(schema: pa.Schema) -> dict[str, str]:
    """Column -> warehouse SQL type, in the schema's order (the DDL of a table we write)."""
    return {field.name: warehouse_type(field.type) for field in schema}
