-- Holdout users are held out from any offer, also in the exposures marts BI
-- reads: a holdout exposure with a promo would bias every uplift in
-- promo_performance. Returns every holdout exposure that carries an offer.
select
    exposure_id,
    exposure_source,
    run_date,
    user_id,
    promo_id

from {{ ref('fct_promo_exposures') }}
where is_holdout
    and promo_id <> 'none'
