with

users as (

    select * from {{ ref('stg_users') }}

),

segments as (

    select * from {{ ref('stg_user_segments') }}
    where as_of <= {{ run_date() }}

),

latest_night as (

    select max(as_of) as as_of
    from segments

),

-- the segment of the latest night up to run_date
latest_segments as (

    select
        segments.user_id,
        segments.segment_id,
        segments.segment
    from segments
    inner join latest_night
        on segments.as_of = latest_night.as_of

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
