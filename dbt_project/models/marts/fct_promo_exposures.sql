{#-
  Every offer sent before run_date, landed or published (dedup rule in
  int_promo_exposures). Incremental, keyed by sent_date: a night re-processes
  the days [run_date - incremental_lookback_days, run_date) and replaces them
  whole; older days are never read or touched.
-#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='sent_date',
        on_schema_change='append_new_columns',
    )
}}

with

exposures as (

    select * from {{ ref('int_promo_exposures') }}
    where sent_ts < {{ run_date_ts() }}
    {% if is_incremental() %}
        and sent_date >= {{ incremental_window_start() }}
    {% endif %}

),

users as (

    select * from {{ ref('dim_users') }}

),

final as (

    select
        exposures.exposure_id,
        exposures.exposure_source,
        exposures.run_date,
        exposures.user_id,
        users.user_key,
        exposures.promo_id,
        exposures.channel,
        exposures.sent_ts,
        exposures.sent_date,
        exposures.propensity,
        exposures.is_holdout,
        exposures.is_exploration,
        exposures.policy_version,
        exposures.model_version

    from exposures
    left join users
        on exposures.user_id = users.user_id

)

select * from final
