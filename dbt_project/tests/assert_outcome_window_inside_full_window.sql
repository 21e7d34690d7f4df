-- The censored outcome window [sent_ts, outcome_end_ts) is a non-empty part of
-- the full window [sent_ts, window_end_ts), so its aggregates never exceed the
-- full window's. Returns the contradicting rows.
select
    exposure_id,
    valid_days,
    outcome_days,
    n_orders,
    outcome_n_orders,
    discount_amount,
    outcome_discount_amount

from {{ ref('fct_promo_outcomes') }}
where not (outcome_days > 0)
    or outcome_days > valid_days
    or outcome_end_ts > window_end_ts
    or outcome_n_orders > n_orders
    or outcome_converted > converted
    or outcome_discount_amount > discount_amount + 1e-9
    or (next_offer_ts is not null and next_offer_ts <= sent_ts)
