{#-
  raw.user_segments is loaded once a night has run build_features; on a warehouse
  nothing has been loaded into (dbt run by hand, tests) this model is empty instead.
-#}
{%- set segments = source('raw', 'user_segments') -%}
{%- set segments_exist = (load_relation(segments) is not none) if execute else true -%}

with

source as (

    {% if segments_exist %}
    select * from {{ segments }}
    {% else %}
    select
        cast(null as text) as user_id,
        cast(null as integer) as segment_id,
        cast(null as text) as segment,
        cast(null as date) as as_of
    where 1 = 0
    {% endif %}

),

renamed as (

    select

        ----------  ids
        cast(user_id as text) as user_id,
        cast(segment_id as integer) as segment_id,

        ----------  labels
        cast(segment as text) as segment,

        ----------  dates
        cast(as_of as date) as as_of

    from source

)

select * from renamed
