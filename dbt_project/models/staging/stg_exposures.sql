with

source as (

    select * from {{ source('raw', 'exposures') }}

),

renamed as (

    select

        ----------  ids
        cast(exposure_id as text) as exposure_id,
        cast(user_id as text) as user_id,
        cast(promo_id as text) as promo_id,

        ----------  text
        cast(channel as text) as channel,
        cast(policy_version as text) as policy_version,

        ----------  numerics
        cast(propensity as double precision) as propensity,

        ----------  timestamps
        cast(sent_ts as timestamp) as sent_ts,
        cast(sent_ts as date) as sent_date

    from source

)

select * from renamed
