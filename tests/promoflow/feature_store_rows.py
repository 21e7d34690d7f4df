"""Rows of the user_features mart (docs/ARCHITECTURE.md) for feature-store tests."""

from __future__ import annotations

from datetime import date, datetime, time


def feature_rows(user_id: str, as_of: date, **overrides) -> dict:
    row = {
        "user_id": user_id,
        "event_timestamp": datetime.combine(as_of, time(0)),
        "as_of": as_of,
        "tenure_days": 30, "days_since_last_event": 1, "days_since_last_order": 2, "days_since_last_exposure": 999,
        "orders_7d": 0, "orders_30d": 0, "orders_90d": 0,
        "spend_7d": 0.0, "spend_30d": 10.0 * as_of.day, "spend_90d": 0.0,
        "views_30d": 5, "carts_30d": 1, "sessions_30d": 2, "searches_30d": 0,
        "events_per_session_30d": 3.0, "view_to_cart_rate_30d": 0.2, "cart_to_order_rate_30d": 0.5,
        "avg_order_value_90d": 40.0, "order_value_std_90d": 0.0, "discount_order_share_90d": 0.0,
        "exposures_30d": 0, "preferred_hour": 9, "top_category": "shoes",
    }
    row.update(overrides)
    return row
