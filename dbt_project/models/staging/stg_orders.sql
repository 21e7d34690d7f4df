with

source as (

    select * from {{ source('raw', 'orders') }}

),

renamed as (

    select

        ----------  ids
        cast(order_id as text) as order_id,
        cast(user_id as text) as user_id,
        cast(promo_id as text) as promo_id,

        ----------  numerics
        cast(gross_amount as double precision) as gross_amount,
        cast(discount_amount as double precision) as discount_amount,
        cast(cogs as double precision) as cogs,
        cast(shipping_fee as double precision) as shipping_fee,
        cast(n_items as integer) as n_items,

        ----------  timestamps
        cast(order_ts as timestamp) as order_ts,
        cast(order_ts as date) as order_date

    from source

),

with_margin as (

    select
        *,
        -- docs/ARCHITECTURE.md "Money definitions": shipping_fee is charged at
        -- cost and nets out; a free_shipping waiver is already in discount_amount.
        gross_amount - discount_amount - cogs as order_margin

    from renamed

)

select * from with_margin
