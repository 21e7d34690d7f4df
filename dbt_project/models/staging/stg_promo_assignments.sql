{#-
  promo_assignments is created by load_warehouse and filled by promoflow.publish;
  on a warehouse nothing has been loaded into (dbt run by hand, tests) it does not
  exist yet: then this model is empty (same columns and types) instead of failing.
-#}
{%- set published = source('published', 'promo_assignments') -%}
{%- set published_exists = (load_relation(published) is not none) if execute else true -%}

with

source as (

    {% if published_exists %}
    select * from {{ published }}
    {% else %}
    select
        cast(null as date) as run_date,
        cast(null as text) as user_key,
        cast(null as text) as user_id,
        cast(null as text) as promo_id,
        cast(null as text) as channel,
        cast(null as integer) as send_hour,
        cast(null as text) as message,
        cast(null as text) as featured_item_ids,
        cast(null as double precision) as expected_incremental_margin,
        cast(null as double precision) as expected_cost,
        cast(null as double precision) as propensity,
        cast(null as boolean) as is_holdout,
        cast(null as boolean) as is_exploration,
        cast(null as text) as reason,
        cast(null as text) as policy_version,
        cast(null as text) as model_version
    where 1 = 0
    {% endif %}

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
