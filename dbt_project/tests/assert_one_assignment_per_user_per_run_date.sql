-- promo_assignments holds one row per eligible user per run_date (a re-run
-- replaces the date, never appends). Returns every (run_date, user) seen twice.
select
    run_date,
    user_id,
    count(*) as n_rows

from {{ ref('stg_promo_assignments') }}
group by run_date, user_id
having count(*) > 1
