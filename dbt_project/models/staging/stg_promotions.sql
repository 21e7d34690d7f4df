with

source as (

    select * from {{ source('raw', 'promotions') }}

),

renamed as (

    select

        ----------  ids
        cast(promo_id as text) as promo_id,

        ----------  text
        cast(promo_type as text) as promo_type,
        cast(category as text) as category,
        cast(channel as text) as channel,

        ----------  numerics
        cast(value as double precision) as value,
        cast(min_spend as double precision) as min_spend,
        cast(max_discount as double precision) as max_discount,
        cast(valid_days as integer) as valid_days,

        ----------  dates
        cast(active_from as date) as active_from,
        cast(active_to as date) as active_to

    from source

)

select * from renamed
