-- DATA_CONTRACT.md: "The sum of expected_cost over a run never exceeds that
-- run's budget." Checked on promo_runs (the budget the run was published under)
-- against both its recorded total and the sum over the run's promo_assignments
-- rows. A 1e-6 tolerance absorbs float summation order. Returns every run
-- over budget.
with

runs as (

    select * from {{ ref('stg_promo_runs') }}

),

assigned as (

    select
        run_date,
        sum(expected_cost) as expected_cost

    from {{ ref('stg_promo_assignments') }}
    group by run_date

)

select
    runs.run_date,
    runs.budget,
    runs.expected_cost as recorded_expected_cost,
    assigned.expected_cost as assigned_expected_cost

from runs
left join assigned
    on runs.run_date = assigned.run_date
where runs.expected_cost > runs.budget + 0.000001
    or assigned.expected_cost > runs.budget + 0.000001
