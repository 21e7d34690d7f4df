with

source as (

    select * from {{ source('raw', 'user_daily_activity') }}

),

renamed as (

    select

        ----------  ids
        cast(user_id as text) as user_id,

        ----------  dates
        cast(dt as date) as activity_date,

        ----------  behaviour counts
        cast(n_events as integer) as n_events,
        cast(n_sessions as integer) as n_sessions,
        cast(n_views as integer) as n_views,
        cast(n_clicks as integer) as n_clicks,
        cast(n_carts as integer) as n_carts,
        cast(n_purchase_events as integer) as n_purchase_events,
        cast(n_searches as integer) as n_searches,

        ----------  orders and offers
        cast(n_orders as integer) as n_orders,
        cast(order_amount as double precision) as order_amount,
        cast(n_discounted_orders as integer) as n_discounted_orders,
        cast(discount_amount as double precision) as discount_amount,
        cast(n_exposures as integer) as n_exposures,

        ----------  timestamps
        cast(last_event_ts as timestamp) as last_event_ts,
        cast(last_order_ts as timestamp) as last_order_ts,
        cast(last_exposure_ts as timestamp) as last_exposure_ts

    from source

)

select * from renamed
