"""Read API: the latest run's offer per user with the online features it was based on."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from feature_store_rows import RUN_DATE, write_marts
from promoflow import feature_store
from promoflow.api import create_app
from promoflow.settings import Settings
from promoflow.warehouse import PROMO_ASSIGNMENTS_COLUMNS, Warehouse


def assignment(run_date: date, user_id: str, **overrides) -> dict:
    row = {
        "run_date": run_date, "user_key": f"key-{user_id}", "user_id": user_id, "promo_id": "pct10",
        "channel": "email", "send_hour": 9, "message": "10% off shoes", "featured_item_ids": "i1,i2",
        "expected_incremental_margin": 1.25, "expected_cost": 0.5, "propensity": 0.95, "is_holdout": False,
        "is_exploration": False, "reason": "margin_gain", "policy_version": "lagrangian-greedy-v1", "model_version": "m-1",
    }
    row.update(overrides)
    return row


def publish(settings: Settings, run_date: date, rows: list[dict]) -> None:
    with Warehouse(settings) as wh:
        wh.replace_assignments(run_date, pa.Table.from_pylist([{c: r[c] for c in PROMO_ASSIGNMENTS_COLUMNS} for r in rows]))


@pytest.fixture
def settings(tmp_path):
    settings = Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path)})
    write_marts(settings)
    feature_store.apply_and_materialize(settings, RUN_DATE)
    return settings


@pytest.fixture
def client(settings):
    publish(settings, date(2026, 10, 2), [assignment(date(2026, 10, 2), "u1", promo_id="old"), assignment(date(2026, 10, 2), "u3")])
    publish(
        settings,
        RUN_DATE,
        [
            assignment(RUN_DATE, "u1"),
            assignment(RUN_DATE, "u2", promo_id="none", channel=None, message=None, featured_item_ids=None,
                       expected_incremental_margin=0.0, expected_cost=0.0, is_holdout=True, reason="holdout"),
        ],
    )
    return TestClient(create_app(settings))


def test_offer_is_the_latest_runs_row_with_its_online_features(client):
    response = client.get("/users/u1/offer")
    assert response.status_code == 200
    body = response.json()
    assert body["run_date"] == "2026-10-03" and body["promo_id"] == "pct10" and body["user_key"] == "key-u1"
    assert body["channel"] == "email" and body["send_hour"] == 9 and body["featured_item_ids"] == "i1,i2"
    assert body["expected_incremental_margin"] == 1.25 and body["propensity"] == 0.95 and body["is_holdout"] is False
    assert body["policy_version"] == "lagrangian-greedy-v1" and body["model_version"] == "m-1"
    # the features materialised for night 3 (orders_30d = 3), not an older night's
    assert body["features"]["orders_30d"] == 3 and body["features"]["top_category"] == "shoes"
    assert "user_id" not in body["features"]


def test_holdout_user_has_nulls_not_strings(client):
    body = client.get("/users/u2/offer").json()
    assert body["promo_id"] == "none" and body["is_holdout"] is True and body["channel"] is None and body["message"] is None
    assert body["features"]["orders_30d"] == 7


def test_unknown_user_is_404_with_a_reason(client):
    response = client.get("/users/nobody/offer")
    assert response.status_code == 404
    assert response.json()["detail"] == "unknown user 'nobody': no assignment in the latest run (run_date 2026-10-03)"
    # in an older run only: still not an offer of the latest run
    assert client.get("/users/u3/offer").status_code == 404


def test_nothing_published_yet_is_503(settings):
    response = TestClient(create_app(settings)).get("/users/u1/offer")
    assert response.status_code == 503
    assert "promo_assignments" in response.json()["detail"]
