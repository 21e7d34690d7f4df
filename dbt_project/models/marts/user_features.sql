{#-
  The table Feast's offline store reads (view `user_behaviour`). event_timestamp
  is as_of 00:00 UTC: features as of D use only data strictly before D, so they
  are known at that instant and point-in-time joins never leak. Rows after
  run_date are left out so a re-run of an old date sees what that night saw.
  segment is the user's customer segment of the same night (spark_jobs.segments,
  built from these features), 'unsegmented' where that night has none (past
  dates a first night backfilled, users new since).
-#}

with

user_features as (

    select * from {{ ref('stg_user_features') }}
    where as_of <= {{ run_date() }}

),

segments as (

    select * from {{ ref('stg_user_segments') }}
    where as_of <= {{ run_date() }}

),

with_segments as (

    select
        user_features.*,
        segments.segment
    from user_features
    left join segments
        on
            user_features.user_id = segments.user_id
            and user_features.as_of = segments.as_of

),

final as (

    select
        user_id,
        cast(as_of as timestamp) as event_timestamp,
        as_of,
        tenure_days,
        days_since_last_event,
        days_since_last_order,
        days_since_last_exposure,
        orders_7d,
        orders_30d,
        orders_90d,
        spend_7d,
        spend_30d,
        spend_90d,
        views_30d,
        carts_30d,
        sessions_30d,
        searches_30d,
        events_per_session_30d,
        view_to_cart_rate_30d,
        cart_to_order_rate_30d,
        avg_order_value_90d,
        order_value_std_90d,
        discount_order_share_90d,
        exposures_30d,
        events_90d,
        cart_abandonment_rate_30d,
        avg_viewed_price_90d,
        purchased_to_viewed_price_ratio_90d,
        exposures_7d,
        exposures_90d,
        redemptions_90d,
        redemption_rate_90d,
        redemption_rate_percent_off_90d,
        redemption_rate_amount_off_90d,
        redemption_rate_spend_threshold_90d,
        redemption_rate_free_shipping_90d,
        redemption_rate_gift_90d,
        channel_engagement_email_90d,
        channel_engagement_push_90d,
        channel_engagement_sms_90d,
        channel_engagement_in_app_90d,
        days_since_last_percent_off_offer,
        days_since_last_amount_off_offer,
        days_since_last_spend_threshold_offer,
        days_since_last_free_shipping_offer,
        days_since_last_gift_offer,
        preferred_hour,
        top_category,
        coalesce(segment, 'unsegmented') as segment

    from with_segments

)

select * from final
