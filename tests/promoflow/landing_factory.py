"""A tiny, hand-readable landing zone in the contract's layout, for stage tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

UTC = UTC
DAYS = [date(2026, 10, 1), date(2026, 10, 2)]
RUN_DATE = date(2026, 10, 3)


def ts(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def users() -> pa.Table:
    return pa.table(
        {
            "user_id": ["u1", "u2", "u3"],
            "signup_ts": pa.array([ts(date(2026, 1, 1), 9)] * 3, pa.timestamp("us", tz="UTC")),
            "region": ["north", "south", "CN-31"],
            "device": ["ios", "web", "android"],
            "email": ["a@example.com", None, "c@example.com"],
        }
    )


def items() -> pa.Table:
    return pa.table(
        {
            "item_id": ["i1", "i2", "i3"],
            "category": ["shoes", "shoes", "books"],
            "brand": ["acme", None, "pulp"],
            "price": [50.0, 80.0, 12.0],
            "unit_cost": [20.0, 40.0, 5.0],
        }
    )


def promotions() -> pa.Table:
    return pa.table(
        {
            "promo_id": ["p_pct10", "p_ship"],
            "promo_type": ["percent_off", "free_shipping"],
            "value": [10.0, 0.0],
            "min_spend": [0.0, 30.0],
            "max_discount": pa.array([20.0, None], pa.float64()),
            "category": pa.array([None, None], pa.string()),
            "channel": pa.array([None, "email"], pa.string()),
            "valid_days": pa.array([7, 3], pa.int32()),
            "active_from": pa.array([date(2026, 9, 1)] * 2, pa.date32()),
            "active_to": pa.array([date(2026, 12, 31)] * 2, pa.date32()),
        }
    )


def events(day: date, prefix: str = "") -> pa.Table:
    return pa.table(
        {
            "event_id": [f"{prefix}e{day.day}_{i}" for i in range(4)],
            "user_id": ["u1", "u1", "u2", "u3"],
            "item_id": pa.array(["i1", "i1", None, "i3"], pa.string()),
            "event_type": ["view", "add_to_cart", "search", "view"],
            "event_ts": pa.array([ts(day, 8), ts(day, 8, 5), ts(day, 12), ts(day, 20)], pa.timestamp("us", tz="UTC")),
            "session_id": ["s1", "s1", "s2", "s3"],
            "query": pa.array([None, None, "red shoes", None], pa.string()),
        }
    )


def orders(day: date) -> pa.Table:
    return pa.table(
        {
            "order_id": [f"o{day.day}_1"],
            "user_id": ["u1"],
            "order_ts": pa.array([ts(day, 9)], pa.timestamp("us", tz="UTC")),
            "gross_amount": [50.0],
            "discount_amount": [5.0],
            "cogs": [20.0],
            "shipping_fee": [4.0],
            "promo_id": pa.array(["p_pct10"], pa.string()),
            "n_items": pa.array([1], pa.int32()),
        }
    )


def exposures(day: date) -> pa.Table:
    return pa.table(
        {
            "user_id": ["u1", "u2"],
            "promo_id": ["p_pct10", "none"],
            "sent_ts": pa.array([ts(day, 6), ts(day, 6)], pa.timestamp("us", tz="UTC")),
            "channel": ["email", "push"],
            "propensity": [0.4, 0.2],
            "policy_version": ["random-logging-v0"] * 2,
        }
    )


def write_landing(raw: Path) -> Path:
    for name, table in (("users", users()), ("items", items()), ("promotions", promotions())):
        (raw / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, raw / name / f"{name}.parquet")
    for day in DAYS:
        for name, table in (("events", events(day)), ("orders", orders(day)), ("exposures", exposures(day))):
            folder = raw / name / f"dt={day.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, folder / "part-0.parquet")
    return raw


def replace_file(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path)


def day_after(day: date) -> date:
    return day + timedelta(days=1)
