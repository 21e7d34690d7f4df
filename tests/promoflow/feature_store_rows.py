"""Rows of the user_features mart (docs/ARCHITECTURE.md) for feature-store tests."""

from __future__ import annotations

from datetime import date, datetime, time

import pyarrow as pa

from promoflow.settings import Settings
from promoflow.warehouse import ANALYTICS_SCHEMA, RAW_SCHEMA, Warehouse

RUN_DATE = date(2026, 10, 3)  # the night the feature-store tests run by default


def feature_rows(user_id: str, as_of: date, **overrides) -> dict:
    row = {
        "user_id": user_id,
        "event_timestamp": datetime.combine(as_of, time(0)),
        "as_of": as_of,
        "tenure_days": 30,
        "days_since_last_event": 1,
        "days_since_last_order": 2,
        "days_since_last_exposure": 999,
        "orders_7d": 0,
        "orders_30d": 0,
        "orders_90d": 0,
        "spend_7d": 0.0,
        "spend_30d": 10.0 * as_of.day,
        "spend_90d": 0.0,
        "views_30d": 5,
        "carts_30d": 1,
        "sessions_30d": 2,
        "searches_30d": 0,
        "events_per_session_30d": 3.0,
        "view_to_cart_rate_30d": 0.2,
        "cart_to_order_rate_30d": 0.5,
        "avg_order_value_90d": 40.0,
        "order_value_std_90d": 0.0,
        "discount_order_share_90d": 0.0,
        "exposures_30d": 0,
        "preferred_hour": 9,
        "top_category": "shoes",
        "events_90d": 0,
        "cart_abandonment_rate_30d": 0.0,
        "avg_viewed_price_90d": 0.0,
        "purchased_to_viewed_price_ratio_90d": 0.0,
        "exposures_7d": 0,
        "exposures_90d": 0,
        "redemptions_90d": 0,
        "redemption_rate_90d": 0.0,
        "redemption_rate_percent_off_90d": 0.0,
        "redemption_rate_amount_off_90d": 0.0,
        "redemption_rate_spend_threshold_90d": 0.0,
        "redemption_rate_free_shipping_90d": 0.0,
        "redemption_rate_gift_90d": 0.0,
        "channel_engagement_email_90d": 0.0,
        "channel_engagement_push_90d": 0.0,
        "channel_engagement_sms_90d": 0.0,
        "channel_engagement_in_app_90d": 0.0,
        "days_since_last_percent_off_offer": 999,
        "days_since_last_amount_off_offer": 999,
        "days_since_last_spend_threshold_offer": 999,
        "days_since_last_free_shipping_offer": 999,
        "days_since_last_gift_offer": 999,
        "segment": "unsegmented",
    }
    row.update(overrides)
    return row


def item_rows(item_id: str, as_of: date, **overrides) -> dict:
    """A row of raw.item_features (Spark item features + as_of)."""
    row = {
        "item_id": item_id,
        "category": "shoes",
        "views_30d": 100,
        "purchases_30d": 5,
        "conversion_rate_30d": 0.05,
        "popularity_rank_in_category": 1,
        "as_of": as_of,
    }
    row.update(overrides)
    return row


def write_marts(settings: Settings) -> None:
    """Three nights of the user_features mart and two of raw.item_features (tests read them by name)."""
    users = pa.Table.from_pylist(
        [
            feature_rows("u1", date(2026, 10, 1), orders_30d=1),
            feature_rows("u1", date(2026, 10, 2), orders_30d=2),
            feature_rows("u1", date(2026, 10, 3), orders_30d=3),
            feature_rows("u2", date(2026, 10, 3), orders_30d=7),
            feature_rows("u3", date(2026, 10, 1), orders_30d=4),  # left the users snapshot after night 1
        ]
    )
    items = pa.Table.from_pylist(
        [
            item_rows("i1", date(2026, 10, 2), purchases_30d=5),
            item_rows("i1", date(2026, 10, 3), purchases_30d=6),
            item_rows("i2", date(2026, 10, 3), purchases_30d=1, popularity_rank_in_category=2),
        ]
    )
    with Warehouse(settings) as wh:
        wh.replace_rows(ANALYTICS_SCHEMA, "user_features", users, where=None)
        wh.replace_rows(RAW_SCHEMA, "item_features", items, where=None)
