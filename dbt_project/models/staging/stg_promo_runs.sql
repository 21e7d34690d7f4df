{#-
  promo_runs is created by load_warehouse and filled by promoflow.publish; on a
  warehouse nothing has been loaded into it does not exist yet: then this model
  is empty (same columns and types) instead of failing the build.
-#}

with

source as (

    {{ source_or_empty(
        source('published', 'promo_runs'),
        {
            'run_date': 'date',
            'budget': 'double precision',
            'expected_cost': 'double precision',
            'expected_incremental_margin': 'double precision',
            'users': 'bigint',
            'offers': 'bigint',
            'holdout_users': 'bigint',
            'holdout_share': 'double precision',
            'policy_version': 'text',
            'model_version': 'text',
            'published_at': 'timestamp',
        },
    ) }}

),

renamed as (

    select

        ----------  ids
        cast(run_date as date) as run_date,

        ----------  money
        cast(budget as double precision) as budget,
        cast(expected_cost as double precision) as expected_cost,
        cast(expected_incremental_margin as double precision) as expected_incremental_margin,

        ----------  counts
        cast(users as bigint) as users,
        cast(offers as bigint) as offers,
        cast(holdout_users as bigint) as holdout_users,
        cast(holdout_share as double precision) as holdout_share,

        ----------  provenance
        cast(policy_version as text) as policy_version,
        cast(model_version as text) as model_version,
        cast(published_at as timestamp) as published_at

    from source

)

select * from renamed
