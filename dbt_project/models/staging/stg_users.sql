with

source as (

    select * from {{ source('raw', 'users') }}

),

renamed as (

    select

        ----------  ids
        cast(user_id as text) as user_id,
        cast(user_key as text) as user_key,

        ----------  text
        cast(region as text) as region,
        cast(device as text) as device,

        ----------  timestamps
        cast(signup_ts as timestamp) as signup_ts

        -- email is PII and stays in the raw schema: never select it here.

    from source

)

select * from renamed
