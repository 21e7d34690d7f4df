with

users as (

    select * from {{ ref('stg_users') }}

),

segments as (

    select * from {{ ref('stg_user_segments') }}
    where as_of <= {{ run_date() }}

),

-- the segment of the latest night up to run_date
latest_segments as (

    select user_id, segment_id, segment
    from segments
    where as_of = (select max(as_of) from segments)

),

final as (

    select
        users.user_id,
        users.user_key,
        users.region,
        users.device,
        users.signup_ts,
        cast(users.signup_ts as date) as signup_date,
        latest_segments.segment_id,
        latest_segments.segment

    from users
    left join latest_segments
        on users.user_id = latest_segments.user_id

)

select * from final
