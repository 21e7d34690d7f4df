with

promotions as (

    select * from {{ ref('stg_promotions') }}

),

final as (

    select
        promo_id,
        promo_type,
        value,
        min_spend,
        max_discount,
        category,
        channel,
        valid_days,
        active_from,
        active_to,
        {{ run_date() }} between active_from and active_to as is_active_on_run_date

    from promotions

)

select * from final
