{#-
  Every offer sent (or deliberately not sent), from both places it is recorded:

  - landed: raw.exposures, what the shop's sender logged (any system, including
    this platform's earlier runs once the sender lands them);
  - published: this platform's own promo_assignments, one exposure per row
    (holdout and other `none` rows included), sent at run_date 00:00 +
    send_hour hours.

  Dedup rule: a published row and a landed exposure are the same send when
  user_id and promo_id agree and the landed sent_ts falls on the run_date (UTC
  day). Then the landed row wins (the sender's real send time and exposure_id)
  and carries the assignment's run_date, holdout flag and versions; the
  published row is dropped. A published row nobody landed stays, with
  exposure_id 'pa-<run_date>-<user_id>'.
-#}

with

landed as (

    select * from {{ ref('stg_exposures') }}

),

published as (

    select * from {{ ref('stg_promo_assignments') }}

),

-- the platform's decisions as exposures: sent at run_date 00:00 + send_hour
published_sends as (

    select
        {{ dbt.concat(["'pa-'", "cast(run_date as text)", "'-'", "user_id"]) }} as exposure_id,
        run_date,
        user_id,
        promo_id,
        channel,
        propensity,
        is_holdout,
        is_exploration,
        policy_version,
        model_version,
        cast({{ dbt.dateadd('hour', 'coalesce(send_hour, 0)', 'cast(run_date as timestamp)') }} as timestamp) as sent_ts

    from published

),

landed_with_assignment as (

    select
        landed.exposure_id,
        'landed' as exposure_source,
        published_sends.run_date,
        landed.user_id,
        landed.promo_id,
        landed.channel,
        landed.sent_ts,
        coalesce(landed.propensity, published_sends.propensity) as propensity,
        -- a landed `none` is a deliberate control send (DATA_CONTRACT.md exposures)
        coalesce(published_sends.is_holdout, landed.promo_id = 'none') as is_holdout,
        coalesce(published_sends.is_exploration, false) as is_exploration,
        coalesce(landed.policy_version, published_sends.policy_version) as policy_version,
        published_sends.model_version

    from landed
    left join published_sends
        on
            landed.user_id = published_sends.user_id
            and landed.promo_id = published_sends.promo_id
            and landed.sent_date = published_sends.run_date

),

published_not_landed as (

    select
        published_sends.exposure_id,
        'published' as exposure_source,
        published_sends.run_date,
        published_sends.user_id,
        published_sends.promo_id,
        published_sends.channel,
        published_sends.sent_ts,
        published_sends.propensity,
        published_sends.is_holdout,
        published_sends.is_exploration,
        published_sends.policy_version,
        published_sends.model_version

    from published_sends
    where not exists (
        select 1
        from landed
        where
            landed.user_id = published_sends.user_id
            and landed.promo_id = published_sends.promo_id
            and landed.sent_date = published_sends.run_date
    )

),

unioned as (

    select * from landed_with_assignment
    union all
    select * from published_not_landed

),

final as (

    select
        cast(exposure_id as text) as exposure_id,
        cast(exposure_source as text) as exposure_source,
        cast(run_date as date) as run_date,
        cast(user_id as text) as user_id,
        cast(promo_id as text) as promo_id,
        cast(channel as text) as channel,
        cast(sent_ts as timestamp) as sent_ts,
        cast(sent_ts as date) as sent_date,
        cast(propensity as double precision) as propensity,
        cast(is_holdout as boolean) as is_holdout,
        cast(is_exploration as boolean) as is_exploration,
        cast(policy_version as text) as policy_version,
        cast(model_version as text) as model_version

    from unioned

)

select * from final
