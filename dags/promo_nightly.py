"""
### promo_nightly: tonight's promotion for every customer

Runs once per **run date** (the logical date, UTC) and decides, per user, which
offer to send tomorrow, or none, maximising expected *incremental* margin
within the night's budget on expected discount cost.

| task | reads | writes |
|---|---|---|
| ingest_validate | landing zone (`raw_uri`) | lake `clean/`, `quarantine/` (GX checkpoints) |
| build_features | lake `clean/` | lake `features/` (Spark) |
| load_warehouse | lake | warehouse schema `raw` |
| dbt_staging → dbt_intermediate → dbt_marts | `raw` | schema `analytics`: `dbt build --select <layer>` (models + tests) |
| feature_store | `analytics.user_features` | Feast registry, online store |
| train_model | `analytics.fct_promo_outcomes` + Feast | model store |
| train_recommender | lake `clean/events`, `features/` as of D-1 | model store `recommender/` (card: held-out recall, featured items' source) |
| assign | Feast + both models | lake `assignments/` (staged) |
| publish | staged assignments | `promo_assignments` + `{export_uri}/promo_assignments/run_date=…/` |

Every task is idempotent for its run date: **clear and re-run** any task, or the
whole run, to replace that date's outputs. A task that fails on bad data says
why in its log; nothing is published until `publish` succeeds, and the last
published night stays as it was. Params override the `PROMO_*` settings for one
run (empty = use the environment).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from promoflow.settings import RUN_PARAMS

SETTINGS_PARAMS = {name: Param(None, **schema) for name, schema in RUN_PARAMS.items()}


@dag(
    dag_id="promo_nightly",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["promoflow", "nightly", "marketing"],
    params=SETTINGS_PARAMS,
    doc_md=__doc__,
    default_args={
        "owner": "data-engineering",
        "retries": int(os.environ.get("PROMO_TASK_RETRIES", "2")),
        "retry_delay": timedelta(minutes=5),
    },
)
def promo_nightly():
    @task
    def ingest_validate(ds=None, params=None) -> dict:
        """Type, check and quarantine the landing partitions this night needs; GX checkpoint per table.
        Stops (and publishes nothing) on schema drift, an empty partition or too many bad rows.

        **Reads** the landing zone (`raw_uri`, `dt=D-1`; the first night every earlier partition).
        **Writes** lake `clean/`, `quarantine/` and GX Data Docs (`data/gx/`).
        **Re-run**: fix or re-deliver the partition the log names, then clear this task (downstream follows)."""
        from promoflow import stages

        return stages.ingest_validate(ds, params)

    @task
    def build_features(ingested: dict, ds=None, params=None) -> dict:
        """Spark: daily partial aggregates for new days, rolled up into user and item features as of the run date.
        GX checkpoints (Spark engine) on tonight's new event partitions and on the features.

        **Reads** lake `clean/`. **Writes** lake `features/*/as_of=D/` (replaced). **Re-run**: clear; safe."""
        from promoflow import stages

        return stages.build_features(ds, params, ingested_events=ingested["events"]["ingested"])

    @task
    def load_warehouse(ds=None, params=None) -> dict:
        """Load changed lake partitions into the warehouse's `raw` schema (delete+insert per partition).

        **Reads** lake `clean/`, `features/`. **Writes** warehouse schema `raw`. **Re-run**: clear; safe."""
        from promoflow import stages

        return stages.load_warehouse(ds, params)

    # dbt runs per layer, one task each, as a plain `dbt build --select <layer>`
    # (no dbt import at parse time): a failure names its layer, and a re-run
    # restarts from that layer instead of rebuilding everything.
    @task
    def dbt_staging(ds=None, params=None) -> dict:
        """`dbt build --select staging`: raw tables renamed and cast (`stg_*`, email dropped), with their tests.
        Reads schema `raw` and `promo_assignments` / `promo_runs`; writes schema `analytics`. Safe to clear and re-run."""
        from promoflow import stages

        return stages.dbt_build(ds, params, layer="staging")

    @task
    def dbt_intermediate(ds=None, params=None) -> dict:
        """`dbt build --select intermediate`: exposures united with published sends, outcome windows, holdout arms.

        **Reads** `analytics.stg_*`. **Writes** `analytics.int_*`. **Re-run**: clear; safe."""
        from promoflow import stages

        return stages.dbt_build(ds, params, layer="intermediate")

    @task
    def dbt_marts(ds=None, params=None) -> dict:
        """`dbt build --select marts`: contracted dims, facts (incremental by day), user_features, promo_performance,
        assignments_latest, fairness_audit, and the tests that span layers.

        **Reads** `analytics.int_*`, `stg_*`. **Writes** `analytics` marts. **Re-run**: clear; replaces the same days."""
        from promoflow import stages

        return stages.dbt_build(ds, params, layer="marts")

    @task
    def feature_store(ds=None, params=None) -> dict:
        """Feast apply, then materialise the run's interval into the online store.

        **Reads** `analytics.user_features` (+ item features). **Writes** the Feast registry and online store
        (SQLite or Redis) for (D-1, D]. **Re-run**: clear; materialising the same interval again is idempotent."""
        from promoflow import stages

        return stages.feature_store(ds, params)

    @task(queue="gpu", pool="gpu")
    def train_model(ds=None, params=None) -> dict:
        """Value the candidate policies (none, blanket offers, a ranked rule, a policy tree, per-user uplift models incl.
        TensorFlow) on a Feast training set of matured exposures, choose tonight's by the written rule; store a version.

        Runs on the `gpu` queue and pool (one training at a time). **Reads** `analytics.fct_promo_outcomes` +
        Feast offline store. **Writes** a model version (policy, `metrics.json`, `model_card.md`) in
        `model_store_uri`. **Re-run**: clear; same data + `training_seed` give the same model."""
        from promoflow import stages

        return stages.train_model(ds, params)

    @task(queue="gpu", pool="gpu")
    def train_recommender(ds=None, params=None) -> dict:
        """Train the two-tower recommender; featured items come from it tonight only if its held-out recall@10
        beats the category rule's (the card and the run summary say which).

        Runs on the `gpu` queue and pool. **Reads** the lake's item events before the run date (D-1 held out)
        and `raw.items`. **Writes** `recommender/{version}` with its model card in `model_store_uri`.
        **Re-run**: clear; same data + `training_seed` give the same model."""
        from promoflow import stages

        return stages.train_recommender(ds, params)

    @task
    def assign(trained: dict, recommended: dict, ds=None, params=None) -> dict:
        """Apply tonight's policy within budget, hold out `holdout_share`, explore, render channel / message / items.

        **Reads** Feast features, the model versions, `raw.users` / `raw.promotions`. **Writes** the staged rows
        `lake/assignments/run_date=D/` (nothing is published yet). **Re-run**: clear; deterministic per date."""
        from promoflow import stages

        return stages.assign(ds, trained["model_version"], params, recommender=recommended)

    @task
    def publish(ds=None, params=None) -> dict:
        """GX gate on the staged rows, then replace the run date in `promo_assignments` and the export folder.

        **Reads** the staged rows. **Writes** warehouse `promo_assignments` + `promo_runs` (one transaction) and
        `{export_uri}/promo_assignments/run_date=D/`. **Re-run**: clear; replaces only date D."""
        from promoflow import stages

        return stages.publish(ds, params)

    @task
    def summarise(
        ingested: dict, trained: dict, recommended: dict, assigned: dict, published: dict, ds=None, params=None
    ) -> dict:
        """Write and log the night's summary and campaign report (users, offers, budget used, policy, featured items' source).

        **Reads** the tasks' results, `promo_assignments`, `analytics.promo_performance`, `analytics.fairness_audit`.
        **Writes** `data/runs/run_date=D/summary.json` and `{export_uri}/reports/run_date=D/report.html`; the log's
        `campaign report:` line links it. **Re-run**: clear; replaces both."""
        from promoflow import stages

        parts = {
            "ingest": ingested,
            "train": trained,
            "recommend": recommended,
            "assign": assigned,
            "publish": published,
        }
        return stages.write_run_summary(ds, parts, params)

    ingested = ingest_validate()
    features = build_features(ingested)
    loaded = load_warehouse()
    staged, intermediate, marts = dbt_staging(), dbt_intermediate(), dbt_marts()
    materialised = feature_store()
    trained = train_model()
    recommended = train_recommender()
    assigned = assign(trained, recommended)
    published = publish()
    ingested >> features >> loaded >> staged >> intermediate >> marts >> materialised >> [trained, recommended]
    assigned >> published
    summarise(ingested, trained, recommended, assigned, published)


promo_nightly()
