with

orders as (

    select * from {{ ref('stg_orders') }}

),

users as (

    select * from {{ ref('dim_users') }}

),

final as (

    select
        orders.order_id,
        orders.user_id,
        users.user_key,
        orders.promo_id,
        orders.order_ts,
        orders.order_date,
        orders.gross_amount,
        orders.discount_amount,
        orders.cogs,
        orders.shipping_fee,
        orders.n_items,
        orders.order_margin,
        orders.promo_id is not null as is_promo_order

    from orders
    left join users
        on orders.user_id = users.user_id

)

select * from final
