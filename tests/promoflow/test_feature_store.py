"""Feast stage: apply + materialise from the user_features mart; point-in-time joins; online = latest offline."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest
from feature_store_rows import RUN_DATE, write_marts

from promoflow import feature_store
from promoflow.settings import Settings


@pytest.fixture
def bare_settings(tmp_path):
    settings = Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path)})
    write_marts(settings)
    return settings


@pytest.fixture
def store_settings(bare_settings):
    feature_store.apply_and_materialize(bare_settings, RUN_DATE)
    return bare_settings


def _at(day: int, hour: int) -> datetime:
    return datetime(2026, 10, day, hour, tzinfo=UTC)


def test_training_rows_only_see_features_computed_before_the_exposure(store_settings):
    exposures = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u2"],
            "event_timestamp": [_at(1, 6), _at(2, 23), _at(3, 1), _at(2, 6)],
            "label": [0, 1, 0, 1],
        }
    )
    joined = feature_store.historical_features(store_settings, exposures).sort_values(["user_id", "event_timestamp"])
    # u1's exposure on day 2 at 23:00 must see the day-2 row (computed from data before day 2), never day 3's.
    assert joined["orders_30d"].tolist()[:3] == [1, 2, 3]
    # u2 has no feature row at or before its exposure: missing, not a value from the future.
    assert pd.isna(joined["orders_30d"].tolist()[3])
    assert joined["label"].tolist() == [0, 1, 0, 1]


def test_user_features_expire_after_their_ttl(store_settings):
    # u3's only row is stamped day 1 00:00; with the 2-day TTL it is gone by day 3 01:00.
    exposures = pd.DataFrame({"user_id": ["u3", "u3"], "event_timestamp": [_at(2, 12), _at(3, 1)]})
    joined = feature_store.historical_features(store_settings, exposures).sort_values("event_timestamp")
    assert joined["orders_30d"].tolist()[0] == 4
    assert pd.isna(joined["orders_30d"].tolist()[1])


def test_recommender_training_rows_join_user_and_item_features_point_in_time(store_settings):
    rows = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1"],
            "item_id": ["i1", "i1", "i2"],
            "event_timestamp": [_at(2, 12), _at(3, 12), _at(2, 12)],
        }
    )
    joined = feature_store.historical_features(store_settings, rows, service=feature_store.RECOMMENDER_SERVICE)
    joined = joined.sort_values(["item_id", "event_timestamp"])
    assert joined["item_purchases_30d"].tolist()[:2] == [5, 6]
    assert pd.isna(joined["item_purchases_30d"].tolist()[2])  # i2's first row is stamped day 3
    assert joined["orders_30d"].tolist() == [2, 3, 2]
    assert {"item_category", "item_popularity_rank_in_category", "item_conversion_rate_30d"} <= set(joined.columns)


def test_online_values_equal_latest_offline_values(store_settings):
    online = feature_store.online_features(store_settings, ["u1", "u2"]).set_index("user_id")
    offline = feature_store.scoring_features(store_settings, ["u1", "u2"], RUN_DATE).set_index("user_id")
    from features import USER_BEHAVIOUR_FIELDS  # feature_repo is importable once the store is built

    for column in [f.name for f in USER_BEHAVIOUR_FIELDS]:
        assert online.loc[["u1", "u2"], column].tolist() == offline.loc[["u1", "u2"], column].tolist(), column
    assert online.loc["u1", "orders_30d"] == 3 and online.loc["u2", "orders_30d"] == 7


def test_materialises_exactly_the_nights_rows(bare_settings):
    summary = feature_store.apply_and_materialize(bare_settings, date(2026, 10, 2))
    assert summary["materialized_views"] == ["user_behaviour", "item_popularity"]
    online = feature_store.online_features(bare_settings, ["u1", "u2", "u3"]).set_index("user_id")
    # night 2 wrote u1's day-2 row only: not day 3's (a later night), not u3's day-1 row (an earlier night).
    assert online.loc["u1", "orders_30d"] == 2
    assert pd.isna(online.loc["u2", "orders_30d"]) and pd.isna(online.loc["u3", "orders_30d"])


def test_rematerialising_the_same_interval_is_idempotent(store_settings):
    before = feature_store.online_features(store_settings, ["u1", "u2"])
    summary = feature_store.apply_and_materialize(store_settings, RUN_DATE)
    assert summary["materialized_views"] == ["user_behaviour", "item_popularity"]
    pd.testing.assert_frame_equal(feature_store.online_features(store_settings, ["u1", "u2"]), before)


def test_backfilling_an_older_night_keeps_the_latest_values_online(store_settings):
    summary = feature_store.apply_and_materialize(store_settings, date(2026, 10, 2))
    assert summary["materialized_views"] == [] and set(summary["skipped_views"]) == {
        "user_behaviour",
        "item_popularity",
    }
    assert feature_store.online_features(store_settings, ["u1"])["orders_30d"].tolist() == [3]


def test_each_night_exports_only_its_own_date_once_history_exists(store_settings):
    from data_sources import offline_export_dir

    exported = offline_export_dir(store_settings, "user_features")
    assert sorted(p.name for p in exported.glob("*.parquet")) == [
        "2026-10-01.parquet",
        "2026-10-02.parquet",
        "2026-10-03.parquet",
    ]
    written = feature_store.export_offline_rows(store_settings, RUN_DATE)
    assert sorted(p.name for p in written) == [
        "2026-10-03.parquet",
        "2026-10-03.parquet",
    ]  # user + item file of the night
    assert {p.parent.name for p in written} == {"user_features", "item_features"}


def test_promoflows_materialisation_options_write_the_same_values_as_feasts_default(bare_settings):
    objects = feature_store.definitions(bare_settings)
    feature_store.export_offline_rows(bare_settings, RUN_DATE)
    start, end = feature_store.night_interval(RUN_DATE)
    frames = []
    for project, materialization in (
        ("feast_default", {"online_write_batch_size": None, "pull_latest_features": False}),
        ("promoflow", {"online_write_batch_size": 1}),  # promoflow's options, one row per chunk to cross chunk edges
    ):
        store = feature_store.feature_store(bare_settings, project, materialization=materialization)
        store.apply(objects)
        store.materialize(start_date=start, end_date=end)
        frames.append(feature_store.online_features(bare_settings, ["u1", "u2", "u3"], store=store))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert frames[1]["orders_30d"].tolist()[:2] == [3, 7]
