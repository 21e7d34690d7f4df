with

source as (

    select * from {{ source('raw', 'user_features') }}

),

renamed as (

    select

        ----------  ids
        cast(user_id as text) as user_id,

        ----------  dates
        cast(as_of as date) as as_of,

        ----------  recency and tenure (days)
        cast(tenure_days as integer) as tenure_days,
        cast(days_since_last_event as integer) as days_since_last_event,
        cast(days_since_last_order as integer) as days_since_last_order,
        cast(days_since_last_exposure as integer) as days_since_last_exposure,

        ----------  orders and spend
        cast(orders_7d as integer) as orders_7d,
        cast(orders_30d as integer) as orders_30d,
        cast(orders_90d as integer) as orders_90d,
        cast(spend_7d as double precision) as spend_7d,
        cast(spend_30d as double precision) as spend_30d,
        cast(spend_90d as double precision) as spend_90d,

        ----------  browsing
        cast(views_30d as integer) as views_30d,
        cast(carts_30d as integer) as carts_30d,
        cast(sessions_30d as integer) as sessions_30d,
        cast(searches_30d as integer) as searches_30d,
        cast(events_per_session_30d as double precision) as events_per_session_30d,
        cast(view_to_cart_rate_30d as double precision) as view_to_cart_rate_30d,
        cast(cart_to_order_rate_30d as double precision) as cart_to_order_rate_30d,

        ----------  order values and discounts
        cast(avg_order_value_90d as double precision) as avg_order_value_90d,
        cast(order_value_std_90d as double precision) as order_value_std_90d,
        cast(discount_order_share_90d as double precision) as discount_order_share_90d,
        cast(exposures_30d as integer) as exposures_30d,

        ----------  deal-proneness, price sensitivity, fatigue, channels
        cast(events_90d as integer) as events_90d,
        cast(cart_abandonment_rate_30d as double precision) as cart_abandonment_rate_30d,
        cast(avg_viewed_price_90d as double precision) as avg_viewed_price_90d,
        cast(purchased_to_viewed_price_ratio_90d as double precision) as purchased_to_viewed_price_ratio_90d,
        cast(exposures_7d as integer) as exposures_7d,
        cast(exposures_90d as integer) as exposures_90d,
        cast(redemptions_90d as integer) as redemptions_90d,
        cast(redemption_rate_90d as double precision) as redemption_rate_90d,
        cast(redemption_rate_percent_off_90d as double precision) as redemption_rate_percent_off_90d,
        cast(redemption_rate_amount_off_90d as double precision) as redemption_rate_amount_off_90d,
        cast(redemption_rate_spend_threshold_90d as double precision) as redemption_rate_spend_threshold_90d,
        cast(redemption_rate_free_shipping_90d as double precision) as redemption_rate_free_shipping_90d,
        cast(redemption_rate_gift_90d as double precision) as redemption_rate_gift_90d,
        cast(channel_engagement_email_90d as double precision) as channel_engagement_email_90d,
        cast(channel_engagement_push_90d as double precision) as channel_engagement_push_90d,
        cast(channel_engagement_sms_90d as double precision) as channel_engagement_sms_90d,
        cast(channel_engagement_in_app_90d as double precision) as channel_engagement_in_app_90d,
        cast(days_since_last_percent_off_offer as integer) as days_since_last_percent_off_offer,
        cast(days_since_last_amount_off_offer as integer) as days_since_last_amount_off_offer,
        cast(days_since_last_spend_threshold_offer as integer) as days_since_last_spend_threshold_offer,
        cast(days_since_last_free_shipping_offer as integer) as days_since_last_free_shipping_offer,
        cast(days_since_last_gift_offer as integer) as days_since_last_gift_offer,

        ----------  preferences
        cast(preferred_hour as integer) as preferred_hour,
        cast(top_category as text) as top_category

    from source

)

select * from renamed
