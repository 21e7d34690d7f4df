"""Where Feast reads the dbt mart ``user_features`` from.

DuckDB warehouse (embedded default): the feature-store stage exports each
night's rows of the mart to ``{lake}/feast/user_features/{as_of}.parquet`` and
Feast's DuckDB offline store reads them all through one glob.
Postgres warehouse (production): Feast's Postgres offline store reads the mart
table ``analytics.user_features`` directly.
"""

from __future__ import annotations

from pathlib import Path

from feast import FileSource
from feast.data_format import ParquetFormat

from promoflow.settings import Settings

USER_FEATURES_TIMESTAMP = "event_timestamp"


def offline_export_dir(settings: Settings) -> Path:
    return Path(settings.lake_dir) / "feast" / "user_features"


def user_features_source(settings: Settings):
    if settings.warehouse_kind == "postgres":
        from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

        return PostgreSQLSource(
            name="user_features_mart",
            query="select * from analytics.user_features",
            timestamp_field=USER_FEATURES_TIMESTAMP,
            description="dbt mart analytics.user_features",
        )
    return FileSource(
        name="user_features_mart",
        path=str(offline_export_dir(settings) / "*.parquet"),
        file_format=ParquetFormat(),
        timestamp_field=USER_FEATURES_TIMESTAMP,
        description="Nightly Parquet exports of the dbt mart analytics.user_features",
    )
