"""One function per task of ``promo_nightly``: resolve settings, call the stage, return a small summary.

The DAG passes the run date (``ds``) and the run's params; these functions are
plain Python, callable and testable without Airflow. Each is idempotent per
run date: re-running replaces that date's outputs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from promoflow.settings import Settings

log = logging.getLogger(__name__)

# ml.recommender.RecommenderConfig.holdout_days (a test keeps them equal): here without importing TensorFlow.
RECOMMENDER_HOLDOUT_DAYS = 1


def resolve(params: Mapping[str, Any] | None) -> Settings:
    """Environment settings with the run's non-empty params applied on top."""
    known = {k: v for k, v in (params or {}).items() if v not in (None, "")}
    return Settings.from_env(overrides=known).validate()


def _date(run_date: str | date) -> date:
    return run_date if isinstance(run_date, date) else date.fromisoformat(run_date)


def ingest_validate(run_date: str, params: Mapping[str, Any] | None = None) -> dict:
    from promoflow.ingest import ingest

    return ingest(resolve(params), _date(run_date))


def build_features(
    run_date: str, params: Mapping[str, Any] | None = None, ingested_events: list[str] | None = None
) -> dict:
    """Spark features as of the run date, plus any earlier as_of date that training exposures need.

    Its input (the event partitions ingested tonight) and its output (tonight's user
    features) each pass a GX checkpoint on the Spark engine before anything moves on.
    """
    from promoflow.decisions import TRAINING_WINDOW_DAYS
    from promoflow.feature_checks import validate_clean_events, validate_user_features
    from spark_jobs import nightly

    settings, day = resolve(params), _date(run_date)
    events_checked = validate_clean_events(settings, ingested_events or [])
    backfill = nightly.exposure_dates_without_features(settings.lake_dir, day, TRAINING_WINDOW_DAYS)
    # One Spark pass for every date: the daily partitions once, one roll-up job per feature table.
    # Past dates get user_features only, of the users exposed that day (all training reads as of an
    # exposure date), but the day before keeps every user: the recommender holds that day out and
    # trains with the user_features as of it (RecommenderConfig.holdout_days).
    held_out = day - timedelta(days=RECOMMENDER_HOLDOUT_DAYS)
    summary = nightly.run_many(
        settings.lake_dir,
        [*backfill, day],
        spark_master=settings.spark_master,
        shuffle_partitions=settings.spark_shuffle_partitions,
        lookback_days=settings.feature_lookback_days,
        training_dates=[d for d in backfill if d < held_out],
    )
    tonight = {
        "run_date": day.isoformat(),
        "days_computed": summary["days_computed"],
        "user_daily_rows": summary["user_daily_rows"],
        "user_category_daily_rows": summary["user_category_daily_rows"],
        **summary["as_of"][day.isoformat()],
    }
    features_checked = validate_user_features(settings, day)
    return {
        "as_of_dates_built": len(summary["as_of_dates"]),
        "tonight": tonight,
        "checks": {**events_checked, **features_checked},
    }


def load_warehouse(run_date: str, params: Mapping[str, Any] | None = None) -> dict:
    from promoflow.load import load_lake

    return load_lake(resolve(params), _date(run_date))


def dbt_build(
    run_date: str, params: Mapping[str, Any] | None = None, layer: str | None = None, selector: str | None = None
) -> dict:
    """``dbt build`` of one layer (``staging``, ``intermediate``, ``marts``) with its tests, of a named
    selector of ``dbt_project/selectors.yml`` (``feedback``, ``report``), or of everything."""
    from promoflow.dbt_runner import LAYERS
    from promoflow.dbt_runner import dbt_build as build

    if layer is not None and layer not in LAYERS:
        raise ValueError(f"dbt layer {layer!r} is not one of {', '.join(LAYERS)}; pass one of those or None for all")
    return build(resolve(params), _date(run_date), select=layer, selector=selector)


def feedback_summary(run_date: str, params: Mapping[str, Any] | None = None) -> dict:
    from promoflow.feedback import attribution_summary

    return attribution_summary(resolve(params), _date(run_date))


def feature_store(run_date: str, params: Mapping[str, Any] | None = None) -> dict:
    from promoflow.feature_store import apply_and_materialize

    return apply_and_materialize(resolve(params), _date(run_date))


def train_model(run_date: str, params: Mapping[str, Any] | None = None) -> dict:
    from promoflow.decisions import train

    return train(resolve(params), _date(run_date))


def train_recommender(run_date: str, params: Mapping[str, Any] | None = None) -> dict:
    from promoflow.recommend import train

    return train(resolve(params), _date(run_date))


def assign(
    run_date: str, model_version: str | None, params: Mapping[str, Any] | None = None, recommender: dict | None = None
) -> dict:
    from promoflow.decisions import assign as assign_users

    return assign_users(resolve(params), _date(run_date), model_version, recommender=recommender)


def publish(run_date: str, params: Mapping[str, Any] | None = None) -> dict:
    from promoflow.publish import publish as publish_assignments

    return publish_assignments(resolve(params), _date(run_date))


def write_run_summary(run_date: str, parts: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> dict:
    """The night's summary (users, assignments per promo, budget used, where the outputs are) as JSON."""
    from promoflow.report import write_report

    settings = resolve(params)
    quarantined = {t: s["rows_quarantined"] for t, s in parts["ingest"].items() if s["rows_quarantined"]}
    late = {t: s["late"] for t, s in parts["ingest"].items() if s.get("late")}  # landed after their night ran
    missing = {t: s["missing"] for t, s in parts["ingest"].items() if s.get("missing")}  # yesterday's, not landed
    summary = {
        **parts["publish"],
        "quarantined_rows": quarantined,
        "late_partitions": late,
        "missing_partitions": missing,
        "dropped_users_with_live_offer": parts["ingest"].get("users", {}).get("dropped_users_with_live_offer", 0),
        "model": parts["train"],
        "assign": parts["assign"],
    }
    if parts.get("recommend") is not None:
        summary["recommender"] = parts["recommend"]
    # the fairness audit with tonight's published rows in it (dbt_marts ran before publish)
    dbt_build(run_date, params, selector="report")
    summary.update(write_report(settings, _date(run_date), summary))
    path = Path(settings.data_dir) / "runs" / f"run_date={_date(run_date).isoformat()}" / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=str))
    log.info("run summary: %s", json.dumps(summary, default=str))
    for flag in summary["fairness_flags"]:
        log.warning(
            "fairness audit: %s (more than %gx apart; a warning, not a failure)", flag, settings.fairness_max_ratio
        )
    log.info("campaign report: %s", summary["report"])
    return summary
