with

outcomes as (

    select * from {{ ref('int_exposure_outcomes') }}

),

users as (

    select * from {{ ref('dim_users') }}

),

final as (

    select
        outcomes.exposure_id,
        outcomes.exposure_source,
        outcomes.run_date,
        outcomes.is_holdout,
        outcomes.user_id,
        users.user_key,
        outcomes.promo_id,
        outcomes.promo_type,
        outcomes.sent_ts,
        outcomes.channel,
        outcomes.propensity,
        outcomes.policy_version,
        outcomes.valid_days,
        outcomes.window_end_ts,
        outcomes.is_matured,
        outcomes.converted,
        outcomes.redeemed,
        outcomes.n_orders,
        outcomes.order_margin,
        outcomes.gross_amount,
        outcomes.discount_amount,
        outcomes.next_offer_ts,
        outcomes.outcome_end_ts,
        outcomes.outcome_days,
        outcomes.outcome_n_orders,
        outcomes.outcome_converted,
        outcomes.outcome_order_margin,
        outcomes.outcome_discount_amount,
        outcomes.had_live_offer_at_send

    from outcomes
    left join users
        on outcomes.user_id = users.user_id

)

select * from final
