"""Feature views: which columns of which source, for which entity, how long they stay fresh."""

from __future__ import annotations

from datetime import timedelta

from entities import item, user
from feast import FeatureView, Field
from feast.types import Float64, Int64, String

# Behaviour features are recomputed every night (as of 00:00 UTC); a value older
# than two nights means the pipeline is behind, and training / scoring should see
# a missing value rather than silently stale behaviour (recency counters such as
# days_since_last_order would be wrong by the days missed).
USER_BEHAVIOUR_TTL = timedelta(days=2)

# Item popularity is a 30-day window recomputed nightly: one missed night moves
# it by at most 1/30 of the window, so rankings from up to a week ago still
# describe the catalogue well, and the recommender is better served by a
# slightly stale popularity than by none. Older than that (new launches,
# seasonal swings) it misleads, so it expires.
ITEM_POPULARITY_TTL = timedelta(days=7)

USER_BEHAVIOUR_FIELDS = [
    Field(name="tenure_days", dtype=Int64),
    Field(name="days_since_last_event", dtype=Int64),
    Field(name="days_since_last_order", dtype=Int64),
    Field(name="days_since_last_exposure", dtype=Int64),
    Field(name="orders_7d", dtype=Int64),
    Field(name="orders_30d", dtype=Int64),
    Field(name="orders_90d", dtype=Int64),
    Field(name="spend_7d", dtype=Float64),
    Field(name="spend_30d", dtype=Float64),
    Field(name="spend_90d", dtype=Float64),
    Field(name="views_30d", dtype=Int64),
    Field(name="carts_30d", dtype=Int64),
    Field(name="sessions_30d", dtype=Int64),
    Field(name="searches_30d", dtype=Int64),
    Field(name="events_per_session_30d", dtype=Float64),
    Field(name="view_to_cart_rate_30d", dtype=Float64),
    Field(name="cart_to_order_rate_30d", dtype=Float64),
    Field(name="avg_order_value_90d", dtype=Float64),
    Field(name="order_value_std_90d", dtype=Float64),
    Field(name="discount_order_share_90d", dtype=Float64),
    Field(name="exposures_30d", dtype=Int64),
    Field(name="events_90d", dtype=Int64),
    Field(name="cart_abandonment_rate_30d", dtype=Float64),
    Field(name="avg_viewed_price_90d", dtype=Float64),
    Field(name="purchased_to_viewed_price_ratio_90d", dtype=Float64),
    Field(name="exposures_7d", dtype=Int64),
    Field(name="exposures_90d", dtype=Int64),
    Field(name="redemptions_90d", dtype=Int64),
    Field(name="redemption_rate_90d", dtype=Float64),
    Field(name="redemption_rate_percent_off_90d", dtype=Float64),
    Field(name="redemption_rate_amount_off_90d", dtype=Float64),
    Field(name="redemption_rate_spend_threshold_90d", dtype=Float64),
    Field(name="redemption_rate_free_shipping_90d", dtype=Float64),
    Field(name="redemption_rate_gift_90d", dtype=Float64),
    Field(name="channel_engagement_email_90d", dtype=Float64),
    Field(name="channel_engagement_push_90d", dtype=Float64),
    Field(name="channel_engagement_sms_90d", dtype=Float64),
    Field(name="channel_engagement_in_app_90d", dtype=Float64),
    Field(name="days_since_last_percent_off_offer", dtype=Int64),
    Field(name="days_since_last_amount_off_offer", dtype=Int64),
    Field(name="days_since_last_spend_threshold_offer", dtype=Int64),
    Field(name="days_since_last_free_shipping_offer", dtype=Int64),
    Field(name="days_since_last_gift_offer", dtype=Int64),
    Field(name="preferred_hour", dtype=Int64),
    Field(name="top_category", dtype=String),
    Field(name="segment", dtype=String),  # the night's customer segment (marketing's label)
]


def user_behaviour_view(source) -> FeatureView:
    return FeatureView(
        name="user_behaviour",
        entities=[user],
        ttl=USER_BEHAVIOUR_TTL,
        schema=USER_BEHAVIOUR_FIELDS,
        source=source,
        online=True,
        description="Recency, frequency, monetary, funnel, deal-proneness and fatigue per user, as of 00:00 UTC each night.",
    )


ITEM_POPULARITY_FIELDS = [
    Field(name="item_category", dtype=String),
    Field(name="item_views_30d", dtype=Int64),
    Field(name="item_purchases_30d", dtype=Int64),
    Field(name="item_conversion_rate_30d", dtype=Float64),
    Field(name="item_popularity_rank_in_category", dtype=Int64),
]


def item_popularity_view(source) -> FeatureView:
    return FeatureView(
        name="item_popularity",
        entities=[item],
        ttl=ITEM_POPULARITY_TTL,
        schema=ITEM_POPULARITY_FIELDS,
        source=source,
        online=True,
        description="30-day views, purchases, conversion and rank within its category per item, as of 00:00 UTC each night.",
    )
