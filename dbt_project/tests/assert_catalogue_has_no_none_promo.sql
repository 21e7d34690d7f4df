-- 'none' is reserved for "sent nothing" (control / holdout); a catalogue promo
-- with that id would be confused with the control arm in every outcome.
select promo_id
from {{ ref('stg_promotions') }}
where promo_id = 'none'
