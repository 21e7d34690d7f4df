{#-
  Per published night x audited dimension x group: how offers and their expected
  and realised value are spread across region, device, segment and tenure band.

  offer_rate = offers / users of the group (holdouts count as users without an
  offer); overall_offer_rate is the night's rate over all users, the reference a
  group is compared with (promoflow.report flags groups beyond
  PROMO_FAIRNESS_MAX_RATIO). realised_margin_uplift_per_user = mean order margin of
  the group's offered users minus that of its holdout users over matured windows
  (fct_promo_outcomes), null until both exist. Segment is each user's latest
  segment up to run_date (dim_users), tenure band is tenure at the run date.
-#}
{%- set dimensions = ['region', 'device', 'segment', 'tenure_band'] -%}
{%- set tenure_days = dbt.datediff('users.signup_date', 'assignments.run_date', 'day') -%}

with

assignments as (

    select * from {{ ref('stg_promo_assignments') }}
    where run_date <= {{ run_date() }}

),

users as (

    select * from {{ ref('dim_users') }}

),

-- platform sends (landed or published only) whose window has closed, one per user and night
outcomes as (

    select
        run_date,
        user_id,
        avg(order_margin) as order_margin

    from {{ ref('fct_promo_outcomes') }}
    where
        run_date is not null
        and is_matured
    group by run_date, user_id

),

assigned_users as (

    select
        assignments.run_date,
        assignments.user_id,
        case when assignments.promo_id <> 'none' then 1 else 0 end as has_offer,
        assignments.is_holdout,
        assignments.expected_incremental_margin,
        coalesce(users.region, 'unknown') as region,
        coalesce(users.device, 'unknown') as device,
        coalesce(users.segment, 'unsegmented') as segment,
        case
            when {{ tenure_days }} < 30 then '0-29 days'
            when {{ tenure_days }} < 180 then '30-179 days'
            when {{ tenure_days }} < 365 then '180-364 days'
            else '365+ days'
        end as tenure_band,
        outcomes.order_margin as realised_order_margin

    from assignments
    left join users
        on assignments.user_id = users.user_id
    left join outcomes
        on
            assignments.run_date = outcomes.run_date
            and assignments.user_id = outcomes.user_id

),

-- one row per user x audited dimension
by_dimension as (

    {% for dimension in dimensions %}
        select
            run_date,
            user_id,
            has_offer,
            is_holdout,
            expected_incremental_margin,
            realised_order_margin,
            '{{ dimension }}' as dimension,
            {{ dimension }} as group_value
        from assigned_users
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

overall as (

    select
        run_date,
        cast(sum(has_offer) as double precision) / count(*) as overall_offer_rate

    from assigned_users
    group by run_date

),

groups as (

    select
        run_date,
        dimension,
        group_value,
        count(*) as users,
        sum(has_offer) as offers,
        avg(expected_incremental_margin) as mean_expected_incremental_margin,
        avg(case when has_offer = 1 then realised_order_margin end) as offered_margin_per_user,
        avg(case when is_holdout then realised_order_margin end) as holdout_margin_per_user

    from by_dimension
    group by run_date, dimension, group_value

),

final as (

    select
        groups.run_date,
        cast(groups.dimension as text) as dimension,
        cast(groups.group_value as text) as group_value,
        cast(groups.users as integer) as users,
        cast(groups.offers as integer) as offers,
        cast(overall.overall_offer_rate as double precision) as overall_offer_rate,
        cast(groups.mean_expected_incremental_margin as double precision) as mean_expected_incremental_margin,
        cast(groups.offered_margin_per_user - groups.holdout_margin_per_user as double precision)
            as realised_margin_uplift_per_user,
        cast(groups.offers as double precision) / groups.users as offer_rate

    from groups
    inner join overall
        on groups.run_date = overall.run_date

)

select * from final
