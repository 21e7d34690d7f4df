{#-
  promo_runs is created by load_warehouse and filled by promoflow.publish; on a
  warehouse nothing has been loaded into it does not exist yet: then this model
  is empty (same columns and types) instead of failing the build.
-#}
{%- set published = source('published', 'promo_runs') -%}
{%- set published_exists = (load_relation(published) is not none) if execute else true -%}

with

source as (

    {% if published_exists %}
    select * from {{ published }}
    {% else %}
    select
        cast(null as date) as run_date,
        cast(null as double precision) as budget,
        cast(null as double precision) as expected_cost,
        cast(null as double precision) as expected_incremental_margin,
        cast(null as bigint) as users,
        cast(null as bigint) as offers,
        cast(null as bigint) as holdout_users,
        cast(null as double precision) as holdout_share,
        cast(null as text) as policy_version,
        cast(null as text) as model_version,
        cast(null as timestamp) as published_at
    where 1 = 0
    {% endif %}

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
