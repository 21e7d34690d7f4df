{#-
  What happened after each exposure: the user's orders inside the outcome window
  [sent_ts, sent_ts + valid_days) (docs/ARCHITECTURE.md "Money definitions").
  Only data strictly before run_date 00:00 counts, so re-running an old date
  gives that night's answer.

  Besides the full window (n_orders ... discount_amount, what BI reports), the
  outcome_* columns measure the *uncontaminated* part [sent_ts, outcome_end_ts):
  the window censored at the same user's next offer, and had_live_offer_at_send
  flags exposures sent while another offer was already live. Rules and ties:
  the yml and the CTEs `send_instants` / `offer_neighbours` below.
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

-- One row per user and send instant: how many offers (promo_id <> 'none') went
-- out at that very sent_ts, and the latest window end among them. Collapsing
-- ties first makes the neighbour look-ups below exact on both DuckDB and
-- Postgres (a rows frame over tied sent_ts would order them arbitrarily).
send_instants as (

    select
        user_id,
        sent_ts,
        sum(case when promo_id <> 'none' then 1 else 0 end) as n_offers,
        max(case when promo_id <> 'none' then window_end_ts end) as offers_window_end_ts

    from exposure_windows_with_end
    group by user_id, sent_ts

),

-- Per send instant, the user's offers strictly before and strictly after it.
offer_neighbours as (

    select
        user_id,
        sent_ts,
        n_offers,
        -- the next offer's send time, strictly later: exposures at the identical
        -- sent_ts never interrupt each other (so an outcome window is never empty)
        min(case when n_offers > 0 then sent_ts end) over (
            partition by user_id order by sent_ts
            rows between 1 following and unbounded following
        ) as next_offer_ts,
        -- the latest window end among offers sent strictly earlier
        max(offers_window_end_ts) over (
            partition by user_id order by sent_ts
            rows between unbounded preceding and 1 preceding
        ) as earlier_offers_window_end_ts

    from send_instants

),

-- Censoring rule: an exposure's outcome stops at the user's next offer, which
-- replaces (demo generator: the newest code wins) or at least contaminates it.
-- A later `none` exposure changes nothing for the user and does not censor.
exposure_windows_censored as (

    select
        exposure_windows_with_end.*,
        offer_neighbours.next_offer_ts,
        case
            when offer_neighbours.next_offer_ts < exposure_windows_with_end.window_end_ts
                then offer_neighbours.next_offer_ts
            else exposure_windows_with_end.window_end_ts
        end as outcome_end_ts,
        -- another offer live at this send: sent strictly earlier with a window
        -- still open, or sent at the identical instant (an offer other than
        -- this exposure itself)
        (
            coalesce(
                offer_neighbours.earlier_offers_window_end_ts > exposure_windows_with_end.sent_ts,
                false
            )
            or offer_neighbours.n_offers
            > case when exposure_windows_with_end.promo_id <> 'none' then 1 else 0 end
        ) as had_live_offer_at_send

    from exposure_windows_with_end
    inner join offer_neighbours
        on
            exposure_windows_with_end.user_id = offer_neighbours.user_id
            and exposure_windows_with_end.sent_ts = offer_neighbours.sent_ts

),

-- An order can fall in the windows of several exposures of the same user; it
-- counts for each of them (attribution is the model's job, not the warehouse's).
orders_in_window as (

    select
        exposure_windows_censored.exposure_id,
        orders.order_id,
        orders.gross_amount,
        orders.order_margin,
        -- redeemed this very promo (the control arm `none` never redeems)
        case
            when
                exposure_windows_censored.promo_id <> 'none'
                and orders.promo_id = exposure_windows_censored.promo_id
                then 1
            else 0
        end as is_redemption,
        -- inside the uncontaminated part [sent_ts, outcome_end_ts)
        case
            when orders.order_ts < exposure_windows_censored.outcome_end_ts then 1 else 0
        end as is_in_outcome,
        orders.discount_amount

    from exposure_windows_censored
    inner join orders
        on
            exposure_windows_censored.user_id = orders.user_id
            and exposure_windows_censored.sent_ts <= orders.order_ts
            and exposure_windows_censored.window_end_ts > orders.order_ts

),

outcomes as (

    select
        exposure_id,
        count(*) as n_orders,
        sum(is_redemption) as n_redemptions,
        sum(gross_amount) as gross_amount,
        sum(order_margin) as order_margin,
        sum(case when is_redemption = 1 then discount_amount else 0 end) as discount_amount,
        sum(is_in_outcome) as outcome_n_orders,
        sum(case when is_in_outcome = 1 then order_margin end) as outcome_order_margin,
        sum(case when is_in_outcome = 1 and is_redemption = 1 then discount_amount else 0 end)
            as outcome_discount_amount

    from orders_in_window
    group by exposure_id

),

final as (

    select
        exposure_windows_censored.exposure_id,
        exposure_windows_censored.exposure_source,
        exposure_windows_censored.run_date,
        exposure_windows_censored.is_holdout,
        exposure_windows_censored.user_id,
        exposure_windows_censored.promo_id,
        exposure_windows_censored.promo_type,
        exposure_windows_censored.sent_ts,
        exposure_windows_censored.channel,
        exposure_windows_censored.propensity,
        exposure_windows_censored.policy_version,
        cast(exposure_windows_censored.valid_days as integer) as valid_days,
        cast(exposure_windows_censored.window_end_ts as timestamp) as window_end_ts,
        exposure_windows_censored.window_end_ts <= {{ run_date_ts() }} as is_matured,
        cast(coalesce(outcomes.n_orders, 0) as integer) as n_orders,
        case when coalesce(outcomes.n_orders, 0) > 0 then 1 else 0 end as converted,
        case when coalesce(outcomes.n_redemptions, 0) > 0 then 1 else 0 end as redeemed,
        cast(coalesce(outcomes.order_margin, 0) as double precision) as order_margin,
        cast(coalesce(outcomes.gross_amount, 0) as double precision) as gross_amount,
        cast(coalesce(outcomes.discount_amount, 0) as double precision) as discount_amount,
        cast(exposure_windows_censored.next_offer_ts as timestamp) as next_offer_ts,
        cast(exposure_windows_censored.outcome_end_ts as timestamp) as outcome_end_ts,
        {{ days_between('exposure_windows_censored.sent_ts', 'exposure_windows_censored.outcome_end_ts') }}
            as outcome_days,
        cast(coalesce(outcomes.outcome_n_orders, 0) as integer) as outcome_n_orders,
        case when coalesce(outcomes.outcome_n_orders, 0) > 0 then 1 else 0 end as outcome_converted,
        cast(coalesce(outcomes.outcome_order_margin, 0) as double precision) as outcome_order_margin,
        cast(coalesce(outcomes.outcome_discount_amount, 0) as double precision) as outcome_discount_amount,
        exposure_windows_censored.had_live_offer_at_send

    from exposure_windows_censored
    left join outcomes
        on exposure_windows_censored.exposure_id = outcomes.exposure_id

)

select * from final
