"""Feast access for the nightly DAG: apply, materialise, training sets, bulk scoring reads.

The repository in ``feature_repo/`` is declarative; this module builds the
Feast configuration from promoflow's settings (DuckDB offline store + SQLite
online store by default; Postgres offline store and Redis online store in
production) and calls ``apply`` / ``materialize`` / ``get_historical_features``.

Timestamps: a feature row "as of D" is computed from data strictly before D
00:00 UTC and is stamped ``event_timestamp = D 00:00 UTC``. Night D therefore
produces exactly the rows stamped in ``(D-1 00:00, D 00:00]``, and that is the
interval :func:`apply_and_materialize` writes to the online store.
"""

from __future__ import annotations

import importlib
import logging
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd

from promoflow.settings import Settings
from promoflow.warehouse import ANALYTICS_SCHEMA, RAW_SCHEMA, Warehouse

log = logging.getLogger(__name__)

FEAST_PROJECT = "promoflow"
FEATURE_SERVICE = "promo_response_v1"
RECOMMENDER_SERVICE = "recommender_v1"
USER_VIEW = "user_behaviour"
ITEM_VIEW = "item_popularity"

# Materialisation settings, measured by benchmarks/bench_materialize.py (figures in
# docs/feature_store.md). Feast's local engine spends its time converting rows to
# protobuf in Python; no supported option changed that clearly (all within the
# noise of a shared machine). Writing in chunks is speed-neutral but keeps one chunk's
# protobuf rows in memory instead of every user's at once. pull_latest_features stays
# off: a night's interval holds one row per entity, so SQL dedup saves nothing.
ONLINE_WRITE_BATCH_SIZE = 50_000
PULL_LATEST_FEATURES = False


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def night_interval(run_date: date) -> tuple[datetime, datetime]:
    """The event-timestamp interval night ``run_date`` produces, as Feast's inclusive bounds.

    ``(D-1 00:00, D 00:00]``: Feast's offline stores filter ``start <= ts <= end``, so
    the start moves one microsecond past the previous night's rows.
    """
    return _midnight(run_date - timedelta(days=1)) + timedelta(microseconds=1), _midnight(run_date)


def repo_config(
    settings: Settings,
    project: str = FEAST_PROJECT,
    materialization: dict | None = None,
    online_store_options: dict | None = None,
):
    """Feast's configuration for these settings.

    ``project`` namespaces the registry entries and online keys (tests use a unique one
    per test so parallel processes sharing one Redis never collide); ``materialization``
    and ``online_store_options`` override the defaults above (the benchmark compares them).
    """
    from feast.repo_config import RepoConfig

    feast_dir = Path(settings.data_dir) / "feast"
    feast_dir.mkdir(parents=True, exist_ok=True)
    if settings.warehouse_kind == "postgres":
        url = urlparse(settings.warehouse_url)
        offline = {
            "type": "postgres",
            "host": url.hostname or "127.0.0.1",
            "port": url.port or 5432,
            "database": (url.path or "/postgres").lstrip("/"),
            "db_schema": ANALYTICS_SCHEMA,
            "user": url.username or "postgres",
            "password": url.password or "",
            # Feast defaults to sslmode=require; follow the URL (?sslmode=...) and else libpq's default
            "sslmode": parse_qs(url.query).get("sslmode", ["prefer"])[0],
        }
    else:
        offline = {"type": "duckdb"}
    if settings.feast_online_store == "redis":
        online = {"type": "redis", "connection_string": settings.redis_url}
    elif settings.feast_online_store == "sqlite":
        online = {"type": "sqlite", "path": str(feast_dir / "online_store.db")}
    else:
        raise ValueError(f"PROMO_FEAST_ONLINE_STORE={settings.feast_online_store!r}: use 'sqlite' or 'redis'")
    online.update(online_store_options or {})
    return RepoConfig(
        project=project,
        provider="local",
        registry={"registry_type": "file", "path": str(feast_dir / "registry.db")},
        offline_store=offline,
        online_store=online,
        materialization={
            "online_write_batch_size": ONLINE_WRITE_BATCH_SIZE,
            "pull_latest_features": PULL_LATEST_FEATURES,
            **(materialization or {}),
        },
        entity_key_serialization_version=3,
        repo_path=settings.feast_repo,
    )


def definitions(settings: Settings) -> list:
    """The Feast objects of ``feature_repo/`` for these settings."""
    repo = str(Path(settings.feast_repo).resolve())
    if repo not in sys.path:
        sys.path.insert(0, repo)
    return importlib.import_module("repo").definitions(settings)


def feature_store(settings: Settings, project: str = FEAST_PROJECT, **config_options):
    from feast import FeatureStore

    definitions(settings)  # makes feature_repo importable
    return FeatureStore(repo_path=settings.feast_repo, config=repo_config(settings, project, **config_options))


# ------------------------------------------------------------------ offline exports (DuckDB)
def _export_as_of(wh: Warehouse, select_sql: str, as_of: date, out_dir: Path) -> Path:
    target = out_dir / f"{as_of.isoformat()}.parquet"
    tmp = out_dir / f".{as_of.isoformat()}.parquet.tmp"
    wh.execute(f"copy ({select_sql}) to '{tmp}' (format parquet)", [as_of])
    tmp.replace(target)  # atomic: a reader never sees half a file
    return target


def export_offline_rows(settings: Settings, run_date: date) -> list[Path]:
    """DuckDB warehouse only: write feature rows to the Feast file sources' folders, one file per as_of.

    The run's own as_of date is always rewritten (a re-run sees the re-built mart);
    earlier dates only when their file is missing (first night, or a new lake), so a
    night's work does not grow with history.
    """
    from data_sources import ITEM_FEATURES_SELECT, offline_export_dir  # feature_repo is on sys.path

    if settings.warehouse_kind != "duckdb":
        return []
    tables = {
        "user_features": (
            ANALYTICS_SCHEMA,
            f"select * replace (cast(event_timestamp as timestamptz) as event_timestamp) "
            f"from {ANALYTICS_SCHEMA}.user_features where as_of = ? order by user_id",
        ),
        "item_features": (
            RAW_SCHEMA,
            f"select * replace (cast(event_timestamp as timestamptz) as event_timestamp) from "
            f"(select {ITEM_FEATURES_SELECT} from {RAW_SCHEMA}.item_features) where as_of = ? order by item_id",
        ),
    }
    written = []
    with Warehouse(settings) as wh:
        for table, (schema, select_sql) in tables.items():
            if not wh.table_exists(schema, table):
                continue
            out_dir = offline_export_dir(settings, table)
            out_dir.mkdir(parents=True, exist_ok=True)
            as_of_dates = [
                r[0]
                for r in wh.query(
                    f"select distinct as_of from {schema}.{table} where as_of <= ? order by 1", [run_date]
                )
            ]
            for as_of in as_of_dates:
                if as_of == run_date or not (out_dir / f"{as_of.isoformat()}.parquet").exists():
                    written.append(_export_as_of(wh, select_sql, as_of, out_dir))
    return written


def _views_with_data(settings: Settings) -> list[str]:
    """Feature views whose source has rows (no item features before Spark's first night)."""
    from data_sources import offline_export_dir

    views = [USER_VIEW]
    if settings.warehouse_kind == "duckdb":
        has_items = any(offline_export_dir(settings, "item_features").glob("*.parquet"))
    else:
        with Warehouse(settings) as wh:
            has_items = wh.table_exists(RAW_SCHEMA, "item_features")
    if has_items:
        views.append(ITEM_VIEW)
    return views


# --------------------------------------------------------------------------- the DAG stage
def apply_and_materialize(settings: Settings, run_date: date, project: str = FEAST_PROJECT) -> dict:
    """``feast apply``, then materialise exactly night ``run_date``'s rows into the online store.

    The interval is :func:`night_interval` (rows stamped ``(D-1 00:00, D 00:00]``).
    Re-running the date re-writes the same rows: idempotent. Re-running an *older*
    date (a backfill) refreshes the offline exports but leaves the online store
    alone: it already holds a later night, and online serving must show the latest
    values (SQLite would otherwise overwrite them with older ones).
    """
    from feast import utils as feast_utils

    objects = definitions(settings)
    exported = export_offline_rows(settings, run_date)
    store = feature_store(settings, project)
    store.apply(objects)
    start, end = night_interval(run_date)
    materialized, skipped = [], {}
    for view_name in _views_with_data(settings):
        view = store.get_feature_view(view_name)
        later = [
            feast_utils.make_tzaware(e) for _, e in view.materialization_intervals if feast_utils.make_tzaware(e) > end
        ]
        if later:
            skipped[view_name] = (
                f"online store already holds a later night (materialised up to {max(later).isoformat()})"
            )
            log.info("feature view %s: not materialising %s: %s", view_name, run_date, skipped[view_name])
            continue
        materialized.append(view_name)
    summary = {
        "exported_files": len(exported),
        "materialized_views": materialized,
        "skipped_views": skipped,
        "interval": [start.isoformat(), end.isoformat()],
    }
    if materialized:
        try:
            store.materialize(start_date=start, end_date=end, feature_views=materialized)
        except Exception as err:
            if not _online_store_unreachable(err):
                raise
            summary["materialized_views"] = []
            summary["online_store_skipped"] = _online_store_failure(settings, run_date, err)
    return summary


class OnlineStoreUnavailableError(RuntimeError):
    """The online store could not be written and PROMO_ONLINE_STORE_ON_FAILURE=fail."""


def _online_store_unreachable(err: BaseException) -> bool:
    import redis

    seen: BaseException | None = err
    while seen is not None:
        if isinstance(
            seen, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ConnectionError, TimeoutError)
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _online_store_failure(settings: Settings, run_date: date, err: BaseException) -> str:
    """``fail``: raise one paragraph; ``skip``: log it as a warning and return it (the offline path carries on)."""
    where = (
        f"Redis at {settings.redis_url}"
        if settings.feast_online_store == "redis"
        else f"the {settings.feast_online_store} online store"
    )
    message = (
        f"feature_store {run_date}: {where} is unreachable while materialising ({type(err).__name__}: "
        f"{' '.join(str(err).split())[:300]}). "
    )
    if settings.online_store_on_failure == "skip":
        message += (
            "PROMO_ONLINE_STORE_ON_FAILURE=skip: the online store keeps the previous night's values; assign scores "
            "every user from the offline store, so the night publishes as usual. Re-run feature_store for this date "
            "once the online store is back, to refresh what the read API serves."
        )
        log.warning(message)
        return message
    if settings.online_store_on_failure != "fail":
        raise ValueError(
            f"PROMO_ONLINE_STORE_ON_FAILURE={settings.online_store_on_failure!r}: use 'fail' or 'skip'"
        ) from err
    raise OnlineStoreUnavailableError(
        message + "PROMO_ONLINE_STORE_ON_FAILURE=fail stops the night here, before anything is published; the last "
        "published night is untouched. Start the online store and re-run the date, or set "
        "PROMO_ONLINE_STORE_ON_FAILURE=skip to publish from the offline store without refreshing the online one."
    ) from err


# ------------------------------------------------------------------------------- reads
def historical_features(
    settings: Settings, entity_df: pd.DataFrame, service: str = FEATURE_SERVICE, project: str = FEAST_PROJECT
) -> pd.DataFrame:
    """Point-in-time correct join of a feature service onto ``entity_df`` (user_id, event_timestamp, ...).

    The only way training sets are built: every row gets the latest feature values
    stamped at or before its ``event_timestamp`` and within the view's TTL, else missing.
    """
    store = feature_store(settings, project)
    frame = entity_df.copy()
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return store.get_historical_features(entity_df=frame, features=store.get_feature_service(service)).to_df()


def scoring_features(
    settings: Settings, user_ids: list[str], run_date: date, project: str = FEAST_PROJECT
) -> pd.DataFrame:
    """Features of every user as of the run, read in bulk from the offline store (not one online call per user)."""
    entity_df = pd.DataFrame({"user_id": user_ids, "event_timestamp": _midnight(run_date)})
    return historical_features(settings, entity_df, FEATURE_SERVICE, project)


def online_features(
    settings: Settings, user_ids: list[str], service: str = FEATURE_SERVICE, project: str = FEAST_PROJECT, store=None
) -> pd.DataFrame:
    """Online (latest materialised) features of ``user_ids``; pass ``store`` to reuse one FeatureStore."""
    store = store or feature_store(settings, project)
    return store.get_online_features(
        features=store.get_feature_service(service), entity_rows=[{"user_id": u} for u in user_ids]
    ).to_df()
