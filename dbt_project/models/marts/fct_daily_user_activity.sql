{#-
  Incremental, keyed by activity_date: a night re-processes the days
  [run_date - incremental_lookback_days, run_date) of Spark's daily aggregates
  and replaces them whole; older days are never read or touched.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='activity_date',
        on_schema_change='append_new_columns',
    )
}}

with

activity as (

    select * from {{ ref('stg_user_daily_activity') }}
    where activity_date < {{ run_date() }}
    {% if is_incremental() %}
        and activity_date >= {{ incremental_window_start() }}
    {% endif %}

),

users as (

    select * from {{ ref('dim_users') }}

),

final as (

    select
        activity.activity_date,
        activity.user_id,
        users.user_key,
        activity.n_events,
        activity.n_sessions,
        activity.n_views,
        activity.n_clicks,
        activity.n_carts,
        activity.n_purchase_events,
        activity.n_searches,
        activity.n_orders,
        activity.order_amount,
        activity.n_discounted_orders,
        activity.discount_amount,
        activity.n_exposures,
        activity.last_event_ts,
        activity.last_order_ts,
        activity.last_exposure_ts,
        activity.n_exposures > 0 as received_offer

    from activity
    left join users
        on activity.user_id = users.user_id

)

select * from final
