{#-
  promo_assignments is created by load_warehouse and filled by promoflow.publish;
  on a warehouse nothing has been loaded into (dbt run by hand, tests) it does not
  exist yet: then this model is empty (same columns and types) instead of failing.
-#}

with

source as (

    {{ source_or_empty(
        source('published', 'promo_assignments'),
        {
            'run_date': 'date',
            'user_key': 'text',
            'user_id': 'text',
            'promo_id': 'text',
            'channel': 'text',
            'send_hour': 'integer',
            'message': 'text',
            'featured_item_ids': 'text',
            'expected_incremental_margin': 'double precision',
            'expected_cost': 'double precision',
            'propensity': 'double precision',
            'is_holdout': 'boolean',
            'is_exploration': 'boolean',
            'reason': 'text',
            'policy_version': 'text',
            'model_version': 'text',
        },
    ) }}

),

renamed as (

    select

        ----------  ids
        cast(run_date as date) as run_date,
        cast(user_key as text) as user_key,
        cast(user_id as text) as user_id,
        cast(promo_id as text) as promo_id,

        ----------  delivery
        cast(channel as text) as channel,
        cast(send_hour as integer) as send_hour,
        cast(message as text) as message,
        cast(featured_item_ids as text) as featured_item_ids,

        ----------  estimates
        cast(expected_incremental_margin as double precision) as expected_incremental_margin,
        cast(expected_cost as double precision) as expected_cost,
        cast(propensity as double precision) as propensity,

        ----------  flags
        cast(is_holdout as boolean) as is_holdout,
        cast(is_exploration as boolean) as is_exploration,

        ----------  provenance
        cast(reason as text) as reason,
        cast(policy_version as text) as policy_version,
        cast(model_version as text) as model_version

    from source

)

select * from renamed
