"""
### promo_feedback: attribute orders and redemptions to earlier nights' assignments

Runs daily once the day's orders and exposures have landed (it can run before or
without `promo_nightly`). It validates and loads the landing for the run date, then
rebuilds the attribution facts with dbt — `fct_promo_outcomes` (every exposure,
including the platform's own published assignments and holdouts, with the orders and
redemptions inside its `valid_days` window) and `promo_performance` (per run date x
promo vs that night's holdout) — and the models they read, with their tests. Matured
platform sends are training rows of the next `promo_nightly`.

| task | reads | writes |
|---|---|---|
| ingest_validate | landing zone | lake `clean/`, `quarantine/` (GX) |
| load_warehouse | lake | warehouse schema `raw` |
| dbt_attribution | `raw`, `promo_assignments` | `analytics.fct_promo_outcomes`, `analytics.promo_performance` (+ upstream) |
| summarise | `analytics.fct_promo_outcomes` | the per-run attribution summary (task return value / log) |

Idempotent per run date: clear and re-run.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from promoflow.settings import RUN_PARAMS

SETTINGS_PARAMS = {
    name: Param(None, **schema)
    for name, schema in RUN_PARAMS.items()
    if name in ("raw_uri", "warehouse_url", "lake_dir")
}


@dag(
    dag_id="promo_feedback",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["promoflow", "feedback"],
    params=SETTINGS_PARAMS,
    doc_md=__doc__,
    default_args={
        "owner": "data-engineering",
        "retries": int(os.environ.get("PROMO_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=5),
    },
)
def promo_feedback():
    @task
    def ingest_validate(ds=None, params=None) -> dict:
        """Type, check and quarantine the landing partitions of the run date (GX checkpoints)."""
        from promoflow import stages

        return stages.ingest_validate(ds, params)

    @task
    def load_warehouse(ds=None, params=None) -> dict:
        """Load changed lake partitions into the warehouse's `raw` schema."""
        from promoflow import stages

        return stages.load_warehouse(ds, params)

    @task
    def dbt_attribution(ds=None, params=None) -> dict:
        """`dbt build --selector feedback` (dbt_project/selectors.yml): attribution facts, their inputs and tests."""
        from promoflow import stages

        return stages.dbt_build(ds, params, selector="feedback")

    @task
    def summarise(ds=None, params=None) -> dict:
        """Per earlier published run: sends, matured sends, orders, redemptions, discount and margin."""
        from promoflow import stages

        return stages.feedback_summary(ds, params)

    ingest_validate() >> load_warehouse() >> dbt_attribution() >> summarise()


promo_feedback()
