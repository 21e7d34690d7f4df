"""Feast access for the nightly DAG: apply, materialise, training sets, bulk scoring reads.

The repository in ``feature_repo/`` is declarative; this module builds the
Feast configuration from promoflow's settings (DuckDB offline store + SQLite
online store by default; Postgres offline store and Redis online store in
production) and calls ``apply`` / ``materialize`` / ``get_historical_features``.
"""

from __future__ import annotations

import importlib
import logging
import sys
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from promoflow.settings import Settings
from promoflow.warehouse import ANALYTICS_SCHEMA, Warehouse

log = logging.getLogger(__name__)

FEATURE_SERVICE = "promo_response_v1"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def repo_config(settings: Settings):
    from feast.repo_config import RepoConfig

    feast_dir = Path(settings.data_dir) / "feast"
    feast_dir.mkdir(parents=True, exist_ok=True)
    if settings.warehouse_kind == "postgres":
        url = urlparse(settings.warehouse_url)
        offline = {
            "type": "postgres", "host": url.hostname or "127.0.0.1", "port": url.port or 5432,
            "database": (url.path or "/postgres").lstrip("/"), "db_schema": ANALYTICS_SCHEMA,
            "user": url.username or "postgres", "password": url.password or "",
        }
    else:
        offline = {"type": "duckdb"}
    if settings.feast_online_store == "redis":
        online = {"type": "redis", "connection_string": settings.redis_url}
    elif settings.feast_online_store == "sqlite":
        online = {"type": "sqlite", "path": str(feast_dir / "online_store.db")}
    else:
        raise ValueError(f"PROMO_FEAST_ONLINE_STORE={settings.feast_online_store!r}: use 'sqlite' or 'redis'")
    return RepoConfig(
        project="promoflow",
        provider="local",
        registry={"registry_type": "file", "path": str(feast_dir / "registry.db")},
        offline_store=offline,
        online_store=online,
        entity_key_serialization_version=3,
        repo_path=settings.feast_repo,
    )


def definitions(settings: Settings) -> list:
    """The Feast objects of ``feature_repo/`` for these settings."""
    repo = str(Path(settings.feast_repo).resolve())
    if repo not in sys.path:
        sys.path.insert(0, repo)
    return importlib.import_module("repo").definitions(settings)


def feature_store(settings: Settings):
    from feast import FeatureStore

    return FeatureStore(repo_path=settings.feast_repo, config=repo_config(settings))


def export_offline_rows(settings: Settings, as_of_dates: list[date]) -> list[Path]:
    """DuckDB warehouse only: write the mart's rows of each as_of date to the Feast file source folder."""
    from data_sources import offline_export_dir  # feature_repo is on sys.path after definitions()

    if settings.warehouse_kind != "duckdb":
        return []
    out_dir = offline_export_dir(settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with Warehouse(settings) as wh:
        for as_of in as_of_dates:
            target = out_dir / f"{as_of.isoformat()}.parquet"
            tmp = out_dir / f".{as_of.isoformat()}.parquet.tmp"
            wh.execute(
                f"copy (select * replace (cast(event_timestamp as timestamptz) as event_timestamp) "
                f"from {ANALYTICS_SCHEMA}.user_features where as_of = ? order by user_id) "
                f"to '{tmp}' (format parquet)",
                [as_of],
            )
            tmp.replace(target)
            written.append(target)
    return written


def apply_and_materialize(settings: Settings, run_date: date) -> dict:
    """``feast apply`` and materialise the run's data interval [run_date - 1 day, run_date] into the online store.

    Re-running the date re-writes the same rows: idempotent.
    """
    objects = definitions(settings)
    with Warehouse(settings) as wh:
        as_of_dates = [r[0] for r in wh.query(f"select distinct as_of from {ANALYTICS_SCHEMA}.user_features order by 1")]
    exported = export_offline_rows(settings, as_of_dates)
    store = feature_store(settings)
    store.apply(objects)
    start, end = _midnight(run_date - timedelta(days=1)), _midnight(run_date)
    store.materialize(start_date=start, end_date=end + timedelta(seconds=1))
    return {"as_of_dates": len(as_of_dates), "exported_files": len(exported), "materialized": [start.isoformat(), end.isoformat()]}


def historical_features(settings: Settings, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time correct join of the feature service onto ``entity_df`` (user_id, event_timestamp, ...)."""
    definitions(settings)  # makes feature_repo importable
    store = feature_store(settings)
    service = store.get_feature_service(FEATURE_SERVICE)
    frame = entity_df.copy()
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return store.get_historical_features(entity_df=frame, features=service).to_df()


def scoring_features(settings: Settings, user_ids: list[str], run_date: date) -> pd.DataFrame:
    """Features of every user as of the run, read in bulk from the offline store (not one online call per user)."""
    entity_df = pd.DataFrame({"user_id": user_ids, "event_timestamp": _midnight(run_date)})
    return historical_features(settings, entity_df)


def online_features(settings: Settings, user_ids: list[str]) -> pd.DataFrame:
    definitions(settings)
    store = feature_store(settings)
    service = store.get_feature_service(FEATURE_SERVICE)
    return store.get_online_features(features=service, entity_rows=[{"user_id": u} for u in user_ids]).to_df()
