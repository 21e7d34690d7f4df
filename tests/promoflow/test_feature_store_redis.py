"""Feast with the production online store: materialise into the machine's Redis and read back.

Each test uses its own Feast project (Redis keys end with the project name), so
parallel test processes sharing one Redis never collide, and deletes its keys after.
Outside CI the tests skip when Redis is down; under CI=true they fail instead.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from datetime import date

import pandas as pd
import pytest
from feature_store_rows import RUN_DATE, write_marts

from promoflow import feature_store
from promoflow.settings import Settings

REDIS_URL = os.environ.get("PROMO_REDIS_URL", "127.0.0.1:6379")


def _redis_client():
    import redis

    host, _, port = REDIS_URL.split(",")[0].partition(":")
    client = redis.Redis(host=host or "127.0.0.1", port=int(port or 6379), socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} unreachable ({err}); CI=true requires it (start redis-server)")
        pytest.skip(f"Redis at {REDIS_URL} unreachable ({err}); under CI=true this fails")
    return client


def _project_keys(client, project: str) -> list[bytes]:
    # Feast's Redis key is serialize(entity key) + project name.
    return list(client.scan_iter(match=f"*{project}", count=10_000))


@pytest.fixture
def redis_store(tmp_path):
    client = _redis_client()
    project = f"pftest_{uuid.uuid4().hex[:12]}"
    settings = Settings.from_env(
        env={"PROMO_DATA_DIR": str(tmp_path), "PROMO_FEAST_ONLINE_STORE": "redis", "PROMO_REDIS_URL": REDIS_URL}
    )
    write_marts(settings)
    yield settings, project, client
    keys = _project_keys(client, project)
    if keys:
        client.delete(*keys)
    assert _project_keys(client, project) == []


def test_redis_online_values_equal_latest_offline_values(redis_store):
    settings, project, client = redis_store
    summary = feature_store.apply_and_materialize(settings, RUN_DATE, project=project)
    assert summary["materialized_views"] == ["user_behaviour", "item_popularity"]
    # u1, u2 and the two items of night 3; u3's row is from night 1, outside the interval.
    assert len(_project_keys(client, project)) == 4

    from features import USER_BEHAVIOUR_FIELDS

    online = feature_store.online_features(settings, ["u1", "u2", "u3"], project=project).set_index("user_id")
    offline = feature_store.scoring_features(settings, ["u1", "u2"], RUN_DATE, project=project).set_index("user_id")
    for column in [f.name for f in USER_BEHAVIOUR_FIELDS]:
        assert online.loc[["u1", "u2"], column].tolist() == offline.loc[["u1", "u2"], column].tolist(), column
    assert online.loc["u1", "orders_30d"] == 3 and pd.isna(online.loc["u3", "orders_30d"])


def test_redis_rematerialising_and_backfilling_keep_the_latest_values(redis_store):
    settings, project, _ = redis_store
    feature_store.apply_and_materialize(settings, date(2026, 10, 2), project=project)
    assert feature_store.online_features(settings, ["u1"], project=project)["orders_30d"].tolist() == [2]
    feature_store.apply_and_materialize(settings, RUN_DATE, project=project)
    after_night_3 = feature_store.online_features(settings, ["u1", "u2"], project=project)
    feature_store.apply_and_materialize(settings, RUN_DATE, project=project)  # re-run
    feature_store.apply_and_materialize(settings, date(2026, 10, 2), project=project)  # backfill of an older night
    pd.testing.assert_frame_equal(feature_store.online_features(settings, ["u1", "u2"], project=project), after_night_3)
    assert after_night_3["orders_30d"].tolist() == [3, 7]


def test_unknown_online_store_is_named_in_the_error(tmp_path):
    settings = dataclasses.replace(
        Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path)}), feast_online_store="memcached"
    )
    with pytest.raises(ValueError, match="PROMO_FEAST_ONLINE_STORE='memcached'"):
        feature_store.repo_config(settings)
