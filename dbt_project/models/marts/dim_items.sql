with

items as (

    select * from {{ ref('stg_items') }}

),

final as (

    select
        item_id,
        category,
        brand,
        price,
        unit_cost,
        -- margin of one unit sold at list price, before any discount
        price - unit_cost as unit_margin_at_list_price

    from items

)

select * from final
