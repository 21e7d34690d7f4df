with

users as (

    select * from {{ ref('stg_users') }}

),

final as (

    select
        user_id,
        user_key,
        region,
        device,
        signup_ts,
        cast(signup_ts as date) as signup_date

    from users

)

select * from final
