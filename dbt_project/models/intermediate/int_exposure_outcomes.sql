{#-
  What happened after each exposure: the user's orders inside the outcome window
  [sent_ts, sent_ts + valid_days) (docs/ARCHITECTURE.md "Money definitions").
  Only data strictly before run_date 00:00 counts, so re-running an old date
  gives that night's answer.
-#}

with

exposures as (

    -- landed exposures united with the platform's own published sends
    select * from {{ ref('int_promo_exposures') }}
    where sent_ts < {{ run_date_ts() }}

),

promotions as (

    select * from {{ ref('stg_promotions') }}

),

orders as (

    select * from {{ ref('stg_orders') }}
    where order_ts < {{ run_date_ts() }}

),

-- Window length rule: the promo's catalogue valid_days. The control arm `none`
-- (and a promo since dropped from the catalogue) has no valid_days; it gets
-- var control_window_days (default 7) so control outcomes are measured over a
-- fixed, documented window.
exposure_windows as (

    select
        exposures.exposure_id,
        exposures.exposure_source,
        exposures.run_date,
        exposures.is_holdout,
        exposures.user_id,
        exposures.promo_id,
        case
            when exposures.promo_id = 'none' then 'none'
            else promotions.promo_type
        end as promo_type,
        exposures.sent_ts,
        exposures.channel,
        exposures.propensity,
        exposures.policy_version,
        coalesce(promotions.valid_days, {{ var('control_window_days') }}) as valid_days

    from exposures
    left join promotions
        on exposures.promo_id = promotions.promo_id

),

exposure_windows_with_end as (

    select
        *,
        {{ dbt.dateadd('day', 'valid_days', 'sent_ts') }} as window_end_ts

    from exposure_windows

),

-- An order can fall in the windows of several exposures of the same user; it
-- counts for each of them (attribution is the model's job, not the warehouse's).
orders_in_window as (

    select
        exposure_windows_with_end.exposure_id,
        orders.order_id,
        orders.gross_amount,
        orders.order_margin,
        -- redeemed this very promo (the control arm `none` never redeems)
        case
            when exposure_windows_with_end.promo_id <> 'none'
                and orders.promo_id = exposure_windows_with_end.promo_id
            then 1 else 0
        end as is_redemption,
        orders.discount_amount

    from exposure_windows_with_end
    inner join orders
        on orders.user_id = exposure_windows_with_end.user_id
        and orders.order_ts >= exposure_windows_with_end.sent_ts
        and orders.order_ts < exposure_windows_with_end.window_end_ts

),

outcomes as (

    select
        exposure_id,
        count(*) as n_orders,
        sum(is_redemption) as n_redemptions,
        sum(gross_amount) as gross_amount,
        sum(order_margin) as order_margin,
        sum(case when is_redemption = 1 then discount_amount else 0 end) as discount_amount

    from orders_in_window
    group by exposure_id

),

final as (

    select
        exposure_windows_with_end.exposure_id,
        exposure_windows_with_end.exposure_source,
        exposure_windows_with_end.run_date,
        exposure_windows_with_end.is_holdout,
        exposure_windows_with_end.user_id,
        exposure_windows_with_end.promo_id,
        exposure_windows_with_end.promo_type,
        exposure_windows_with_end.sent_ts,
        exposure_windows_with_end.channel,
        exposure_windows_with_end.propensity,
        exposure_windows_with_end.policy_version,
        cast(exposure_windows_with_end.valid_days as integer) as valid_days,
        cast(exposure_windows_with_end.window_end_ts as timestamp) as window_end_ts,
        exposure_windows_with_end.window_end_ts <= {{ run_date_ts() }} as is_matured,
        cast(coalesce(outcomes.n_orders, 0) as integer) as n_orders,
        case when coalesce(outcomes.n_orders, 0) > 0 then 1 else 0 end as converted,
        case when coalesce(outcomes.n_redemptions, 0) > 0 then 1 else 0 end as redeemed,
        cast(coalesce(outcomes.order_margin, 0) as double precision) as order_margin,
        cast(coalesce(outcomes.gross_amount, 0) as double precision) as gross_amount,
        cast(coalesce(outcomes.discount_amount, 0) as double precision) as discount_amount

    from exposure_windows_with_end
    left join outcomes
        on exposure_windows_with_end.exposure_id = outcomes.exposure_id

)

select * from final
