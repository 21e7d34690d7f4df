{#-
  The holdout comparison's raw material, per platform run_date x promo:

  - treated: users the run assigned that promo (not held out);
  - control: the run's holdout users (promo `none`, is_holdout), repeated once
    per promo of the run, so each promo is compared with the same holdout group.

  Both arms are measured over the PROMO's window [sent_ts, sent_ts +
  valid_days) (the control users' own sent_ts, i.e. when their `none` went
  out), counting only orders before run_date 00:00.
-#}

with

exposures as (

    select * from {{ ref('int_promo_exposures') }}
    where
        run_date is not null
        and sent_ts < {{ run_date_ts() }}

),

promotions as (

    select * from {{ ref('stg_promotions') }}

),

orders as (

    select * from {{ ref('stg_orders') }}
    where order_ts < {{ run_date_ts() }}

),

-- one send per user and run (a sender that logged a send twice counts once)
sends as (

    select
        run_date,
        user_id,
        promo_id,
        is_holdout,
        min(sent_ts) as sent_ts

    from exposures
    group by run_date, user_id, promo_id, is_holdout

),

treated as (

    select
        run_date,
        promo_id,
        user_id,
        sent_ts,
        'treated' as arm
    from sends
    where
        not is_holdout
        and promo_id <> 'none'

),

promos_of_run as (

    select distinct
        run_date,
        promo_id
    from treated

),

control as (

    select
        promos_of_run.run_date,
        promos_of_run.promo_id,
        sends.user_id,
        sends.sent_ts,
        'control' as arm

    from sends
    inner join promos_of_run
        on sends.run_date = promos_of_run.run_date
    where
        sends.is_holdout
        and sends.promo_id = 'none'

),

arms as (

    select * from treated
    union all
    select * from control

),

-- Window rule as in int_exposure_outcomes: the promo's valid_days; a promo no
-- longer in the catalogue falls back to var control_window_days.
arm_windows as (

    select
        arms.*,
        coalesce(promotions.valid_days, {{ var('control_window_days') }}) as valid_days,
        {{ dbt.dateadd('day', 'coalesce(promotions.valid_days, ' ~ var('control_window_days') ~ ')', 'arms.sent_ts') }}
            as window_end_ts

    from arms
    left join promotions
        on arms.promo_id = promotions.promo_id

),

orders_in_window as (

    select
        arm_windows.run_date,
        arm_windows.promo_id,
        arm_windows.user_id,
        orders.order_margin,
        orders.discount_amount,
        case
            when arm_windows.arm = 'treated' and orders.promo_id = arm_windows.promo_id then 1 else 0
        end as is_redemption

    from arm_windows
    inner join orders
        on
            arm_windows.user_id = orders.user_id
            and arm_windows.sent_ts <= orders.order_ts
            and arm_windows.window_end_ts > orders.order_ts

),

outcomes as (

    select
        run_date,
        promo_id,
        user_id,
        count(*) as n_orders,
        sum(is_redemption) as n_redemptions,
        sum(order_margin) as order_margin,
        sum(case when is_redemption = 1 then discount_amount else 0 end) as discount_amount

    from orders_in_window
    group by run_date, promo_id, user_id

),

final as (

    select
        arm_windows.run_date,
        cast(arm_windows.promo_id as text) as promo_id,
        arm_windows.user_id,
        cast(arm_windows.arm as text) as arm,
        cast(arm_windows.sent_ts as timestamp) as sent_ts,
        cast(arm_windows.valid_days as integer) as valid_days,
        cast(arm_windows.window_end_ts as timestamp) as window_end_ts,
        arm_windows.window_end_ts <= {{ run_date_ts() }} as is_matured,
        case when coalesce(outcomes.n_orders, 0) > 0 then 1 else 0 end as converted,
        case when coalesce(outcomes.n_redemptions, 0) > 0 then 1 else 0 end as redeemed,
        cast(coalesce(outcomes.order_margin, 0) as double precision) as order_margin,
        cast(coalesce(outcomes.discount_amount, 0) as double precision) as discount_amount

    from arm_windows
    left join outcomes
        on
            arm_windows.run_date = outcomes.run_date
            and arm_windows.promo_id = outcomes.promo_id
            and arm_windows.user_id = outcomes.user_id

)

select * from final
