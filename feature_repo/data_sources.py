"""Where Feast reads its feature tables from.

* ``user_features_mart``: the dbt mart ``analytics.user_features`` (view ``user_behaviour``).
* ``item_features_daily``: Spark's nightly item features, loaded as ``raw.item_features``
  (view ``item_popularity``). There is no dbt mart over them yet, so Feast reads the raw
  table; its columns are prefixed ``item_`` here because a feature service that joins
  users and items (``recommender_v1``) cannot hold two features named ``views_30d``.

DuckDB warehouse (embedded default): the feature-store stage exports each
night's rows to ``{lake}/feast/{table}/{as_of}.parquet`` with an
``event_timestamp`` of as_of 00:00 UTC, and Feast's DuckDB offline store reads
them all through one glob per table.
Postgres warehouse (production): Feast's Postgres offline store reads the
warehouse tables directly.
"""

from __future__ import annotations

from pathlib import Path

from feast import FileSource
from feast.data_format import ParquetFormat

from promoflow.settings import Settings

USER_FEATURES_TIMESTAMP = "event_timestamp"
ITEM_FEATURES_TIMESTAMP = "event_timestamp"

# raw.item_features column -> feature name (see the module docstring for the prefix).
ITEM_FEATURE_COLUMNS = {
    "category": "item_category",
    "views_30d": "item_views_30d",
    "purchases_30d": "item_purchases_30d",
    "conversion_rate_30d": "item_conversion_rate_30d",
    "popularity_rank_in_category": "item_popularity_rank_in_category",
}

# The select list both offline stores read item rows with: features as of D are
# computed from events before D 00:00 UTC, so they are known at that instant.
ITEM_FEATURES_SELECT = (
    "item_id, "
    + ", ".join(f"{source} as {feature}" for source, feature in ITEM_FEATURE_COLUMNS.items())
    + f", as_of, cast(as_of as timestamp) as {ITEM_FEATURES_TIMESTAMP}"
)


def offline_export_dir(settings: Settings, table: str = "user_features") -> Path:
    return Path(settings.lake_dir) / "feast" / table


def _nightly_source(
    settings: Settings, *, name: str, postgres_query: str, export_table: str, timestamp_field: str, description: str
):
    """Postgres warehouse: query the table directly; DuckDB: the nightly Parquet exports of it."""
    if settings.warehouse_kind == "postgres":
        from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

        return PostgreSQLSource(
            name=name, query=postgres_query, timestamp_field=timestamp_field, description=description
        )
    return FileSource(
        name=name,
        path=str(offline_export_dir(settings, export_table) / "*.parquet"),
        file_format=ParquetFormat(),
        timestamp_field=timestamp_field,
        description=f"Nightly Parquet exports of {description}",
    )


def user_features_source(settings: Settings):
    return _nightly_source(
        settings,
        name="user_features_mart",
        postgres_query="select * from analytics.user_features",
        export_table="user_features",
        timestamp_field=USER_FEATURES_TIMESTAMP,
        description="the dbt mart analytics.user_features",
    )


def item_features_source(settings: Settings):
    return _nightly_source(
        settings,
        name="item_features_daily",
        postgres_query=f"select {ITEM_FEATURES_SELECT} from raw.item_features",
        export_table="item_features",
        timestamp_field=ITEM_FEATURES_TIMESTAMP,
        description="raw.item_features (Spark item features)",
    )
