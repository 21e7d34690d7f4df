{#- Marketing's view of the newest published run: no user_id, only user_key. -#}

with

assignments as (

    select * from {{ ref('stg_promo_assignments') }}

),

latest_run as (

    select max(run_date) as run_date from assignments

),

final as (

    select
        assignments.run_date,
        assignments.user_key,
        assignments.promo_id,
        assignments.channel,
        assignments.send_hour,
        assignments.message,
        assignments.featured_item_ids,
        assignments.expected_incremental_margin,
        assignments.expected_cost,
        assignments.propensity,
        assignments.is_holdout,
        assignments.is_exploration,
        assignments.reason,
        assignments.policy_version,
        assignments.model_version

    from assignments
    inner join latest_run
        on assignments.run_date = latest_run.run_date

)

select * from final
