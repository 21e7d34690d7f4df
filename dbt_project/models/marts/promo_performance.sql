{#-
  Per platform run_date x promo: the offer's sends against the run's holdout
  group (int_promo_arm_outcomes), both measured over the promo's valid_days.

  Uplift = treated rate/mean - control rate/mean, with a 95% normal-approximation
  interval: diff +- 1.96 * sqrt(var_treated / n_treated + var_control / n_control),
  where var = p(1 - p) for conversion and the sample variance of margin per user
  for margin. Null when either group is too small to estimate (no control
  users; for margin, fewer than 2 users in a group).
  incremental margin = margin uplift per user x sends; ROI = incremental
  margin / discount cost (null when nothing was redeemed). order_margin is
  already net of discounts, so the incremental margin is too.
-#}

with

arm_outcomes as (

    select * from {{ ref('int_promo_arm_outcomes') }}

),

assignments as (

    select * from {{ ref('stg_promo_assignments') }}

),

promotions as (

    select * from {{ ref('dim_promotions') }}

),

by_arm as (

    select
        run_date,
        promo_id,
        arm,
        count(*) as n_users,
        sum(converted) as n_converted,
        sum(redeemed) as n_redeemed,
        avg(cast(converted as double precision)) as conversion_rate,
        avg(order_margin) as margin_per_user,
        var_samp(order_margin) as margin_variance,
        sum(discount_amount) as discount_cost,
        max(window_end_ts) as last_window_end_ts

    from arm_outcomes
    group by run_date, promo_id, arm

),

treated as (

    select * from by_arm
    where arm = 'treated'

),

control as (

    select * from by_arm
    where arm = 'control'

),

planned as (

    select
        run_date,
        promo_id,
        sum(expected_cost) as expected_cost,
        sum(expected_incremental_margin) as expected_incremental_margin

    from assignments
    where not is_holdout
    group by run_date, promo_id

),

compared as (

    select
        treated.run_date,
        treated.promo_id,
        treated.n_users as sends,
        treated.n_redeemed as redemptions,
        treated.conversion_rate as treated_conversion_rate,
        treated.margin_per_user as treated_margin_per_user,
        treated.discount_cost,
        control.conversion_rate as holdout_conversion_rate,
        control.margin_per_user as holdout_margin_per_user,
        coalesce(control.n_users, 0) as holdout_users,
        treated.conversion_rate - control.conversion_rate as conversion_uplift,
        treated.margin_per_user - control.margin_per_user as margin_uplift_per_user,
        -- standard errors of the differences (normal approximation)
        sqrt(
            treated.conversion_rate * (1 - treated.conversion_rate) / treated.n_users
            + control.conversion_rate * (1 - control.conversion_rate) / control.n_users
        ) as conversion_uplift_se,
        sqrt(
            treated.margin_variance / treated.n_users
            + control.margin_variance / control.n_users
        ) as margin_uplift_se,
        case
            when control.last_window_end_ts is null then treated.last_window_end_ts
            when control.last_window_end_ts > treated.last_window_end_ts then control.last_window_end_ts
            else treated.last_window_end_ts
        end as last_window_end_ts

    from treated
    left join control
        on
            treated.run_date = control.run_date
            and treated.promo_id = control.promo_id

),

final as (

    select
        compared.run_date,
        compared.promo_id,
        promotions.promo_type,
        cast(compared.sends as integer) as sends,
        cast(compared.redemptions as integer) as redemptions,
        cast(compared.holdout_users as integer) as holdout_users,
        cast(compared.treated_conversion_rate as double precision) as treated_conversion_rate,
        cast(compared.holdout_conversion_rate as double precision) as holdout_conversion_rate,
        cast(compared.conversion_uplift as double precision) as conversion_uplift,
        cast(compared.conversion_uplift - 1.96 * compared.conversion_uplift_se as double precision)
            as conversion_uplift_ci_low,
        cast(compared.conversion_uplift + 1.96 * compared.conversion_uplift_se as double precision)
            as conversion_uplift_ci_high,
        cast(compared.treated_margin_per_user as double precision) as treated_margin_per_user,
        cast(compared.holdout_margin_per_user as double precision) as holdout_margin_per_user,
        cast(compared.margin_uplift_per_user as double precision) as margin_uplift_per_user,
        cast(compared.margin_uplift_per_user - 1.96 * compared.margin_uplift_se as double precision)
            as margin_uplift_ci_low,
        cast(compared.margin_uplift_per_user + 1.96 * compared.margin_uplift_se as double precision)
            as margin_uplift_ci_high,
        cast(compared.margin_uplift_per_user * compared.sends as double precision) as incremental_margin,
        cast(compared.discount_cost as double precision) as discount_cost,
        cast(
            compared.margin_uplift_per_user * compared.sends / nullif(compared.discount_cost, 0)
            as double precision
        ) as roi,
        cast(planned.expected_cost as double precision) as expected_cost,
        cast(planned.expected_incremental_margin as double precision) as expected_incremental_margin,
        cast(compared.redemptions as double precision) / compared.sends as redemption_rate,
        compared.last_window_end_ts <= {{ run_date_ts() }} as is_matured

    from compared
    left join promotions
        on compared.promo_id = promotions.promo_id
    left join planned
        on
            compared.run_date = planned.run_date
            and compared.promo_id = planned.promo_id

)

select * from final
