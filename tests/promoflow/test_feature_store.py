"""Feast stage: apply + materialise from the user_features mart; point-in-time joins; online = latest offline."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pandas as pd
import pyarrow as pa
import pytest

from feature_store_rows import feature_rows
from promoflow import feature_store
from promoflow.settings import Settings
from promoflow.warehouse import ANALYTICS_SCHEMA, Warehouse

RUN_DATE = date(2026, 10, 3)


@pytest.fixture
def store_settings(tmp_path):
    settings = Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path)})
    rows = pa.Table.from_pylist(
        [
            feature_rows("u1", date(2026, 10, 1), orders_30d=1),
            feature_rows("u1", date(2026, 10, 2), orders_30d=2),
            feature_rows("u1", date(2026, 10, 3), orders_30d=3),
            feature_rows("u2", date(2026, 10, 3), orders_30d=7),
        ]
    )
    with Warehouse(settings) as wh:
        wh.replace_rows(ANALYTICS_SCHEMA, "user_features", rows, where=None)
    feature_store.apply_and_materialize(settings, RUN_DATE)
    return settings


def _at(day: int, hour: int) -> datetime:
    return datetime(2026, 10, day, hour, tzinfo=timezone.utc)


def test_training_rows_only_see_features_computed_before_the_exposure(store_settings):
    exposures = pd.DataFrame(
        {"user_id": ["u1", "u1", "u1", "u2"], "event_timestamp": [_at(1, 6), _at(2, 23), _at(3, 1), _at(2, 6)], "label": [0, 1, 0, 1]}
    )
    joined = feature_store.historical_features(store_settings, exposures).sort_values(["user_id", "event_timestamp"])
    # u1's exposure on day 2 at 23:00 must see the day-2 row (computed from data before day 2), never day 3's.
    assert joined["orders_30d"].tolist()[:3] == [1, 2, 3]
    # u2 has no feature row at or before its exposure: missing, not a value from the future.
    assert pd.isna(joined["orders_30d"].tolist()[3])
    assert joined["label"].tolist() == [0, 1, 0, 1]


def test_online_values_equal_latest_offline_values(store_settings):
    online = feature_store.online_features(store_settings, ["u1", "u2"]).set_index("user_id")
    offline = feature_store.scoring_features(store_settings, ["u1", "u2"], RUN_DATE).set_index("user_id")
    for column in ("orders_30d", "spend_30d", "top_category", "preferred_hour"):
        assert online.loc[["u1", "u2"], column].tolist() == offline.loc[["u1", "u2"], column].tolist(), column
    assert online.loc["u1", "orders_30d"] == 3 and online.loc["u2", "orders_30d"] == 7


def test_rematerialising_the_same_interval_is_idempotent(store_settings):
    before = feature_store.online_features(store_settings, ["u1", "u2"])
    feature_store.apply_and_materialize(store_settings, RUN_DATE)
    pd.testing.assert_frame_equal(feature_store.online_features(store_settings, ["u1", "u2"]), before)
