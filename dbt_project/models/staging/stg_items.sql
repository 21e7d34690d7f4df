with

source as (

    select * from {{ source('raw', 'items') }}

),

renamed as (

    select

        ----------  ids
        cast(item_id as text) as item_id,

        ----------  text
        cast(category as text) as category,
        cast(brand as text) as brand,

        ----------  numerics
        cast(price as double precision) as price,
        cast(unit_cost as double precision) as unit_cost

    from source

)

select * from renamed
