-- A redemption is an order, so every redeemed exposure also converted, and the
-- control arm 'none' can never be redeemed. Returns the contradicting rows.
select
    exposure_id,
    promo_id,
    converted,
    redeemed

from {{ ref('fct_promo_outcomes') }}
where (redeemed = 1 and converted = 0)
    or (redeemed = 1 and promo_id = 'none')
