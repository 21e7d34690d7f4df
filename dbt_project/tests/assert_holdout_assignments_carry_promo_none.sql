-- A holdout user is held out from any offer: promo_id 'none', no channel, no
-- message. Returns every holdout row that would still send something.
select
    run_date,
    user_id,
    promo_id,
    channel

from {{ ref('stg_promo_assignments') }}
where is_holdout
    and (promo_id <> 'none' or channel is not null)
