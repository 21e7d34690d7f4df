{#-
  raw.user_segments is loaded once a night has run build_features; on a warehouse
  nothing has been loaded into (dbt run by hand, tests) this model is empty instead.
-#}

with

source as (

    {{ source_or_empty(
        source('raw', 'user_segments'),
        {
            'user_id': 'text',
            'segment_id': 'integer',
            'segment': 'text',
            'as_of': 'date',
        },
    ) }}

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
