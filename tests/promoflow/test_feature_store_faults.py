"""Redis unavailable during materialisation: the night stops with a paragraph, or (a setting) skips the online store.

Redis is "down" for real: the online store points at a loopback port nobody listens on.
With ``PROMO_ONLINE_STORE_ON_FAILURE=skip`` the stage logs a warning and the offline
path, which assign scores from, still serves every feature.
"""

from __future__ import annotations

import logging
import socket

import pytest
from feature_store_rows import RUN_DATE, write_marts

from promoflow import feature_store
from promoflow.settings import Settings


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(tmp_path, mode: str) -> Settings:
    settings = Settings.from_env(
        env={
            "PROMO_DATA_DIR": str(tmp_path),
            "PROMO_FEAST_ONLINE_STORE": "redis",
            "PROMO_REDIS_URL": f"127.0.0.1:{_closed_port()}",
            "PROMO_ONLINE_STORE_ON_FAILURE": mode,
        }
    )
    write_marts(settings)
    return settings


def test_redis_down_stops_the_night_with_one_paragraph(tmp_path):
    settings = _settings(tmp_path, "fail")
    with pytest.raises(feature_store.OnlineStoreUnavailableError) as stopped:
        feature_store.apply_and_materialize(settings, RUN_DATE, project="pf_redis_down")
    message = str(stopped.value)
    assert message.startswith(
        f"feature_store {RUN_DATE}: Redis at {settings.redis_url} is unreachable while materialising"
    )
    assert (
        "before anything is published" in message
        and "PROMO_ONLINE_STORE_ON_FAILURE=skip" in message
        and "\n" not in message
    )


def test_redis_down_with_skip_warns_and_the_offline_path_still_serves(tmp_path, caplog):
    settings = _settings(tmp_path, "skip")
    with caplog.at_level(logging.WARNING, logger="promoflow.feature_store"):
        summary = feature_store.apply_and_materialize(settings, RUN_DATE, project="pf_redis_skip")
    assert (
        summary["materialized_views"] == [] and "is unreachable while materialising" in summary["online_store_skipped"]
    )
    assert "the night publishes as usual" in caplog.text
    offline = feature_store.scoring_features(settings, ["u1", "u2"], RUN_DATE, project="pf_redis_skip").set_index(
        "user_id"
    )
    assert offline.loc["u1", "orders_30d"] == 3 and offline.loc["u2", "orders_30d"] == 7


def test_unknown_failure_mode_is_named(tmp_path):
    settings = _settings(tmp_path, "ignore")
    with pytest.raises(ValueError, match="PROMO_ONLINE_STORE_ON_FAILURE='ignore'"):
        feature_store.apply_and_materialize(settings, RUN_DATE, project="pf_redis_mode")
