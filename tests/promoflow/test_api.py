"""Read API: the latest run's offer per user with the online features it was based on."""

from __future__ import annotations

import hmac
import secrets
from datetime import date

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from feature_store_rows import RUN_DATE, write_marts

from promoflow import feature_store
from promoflow.api import MissingTokenError, create_app
from promoflow.settings import Settings
from promoflow.warehouse import PROMO_ASSIGNMENTS_COLUMNS, Warehouse


def assignment(run_date: date, user_id: str, **overrides) -> dict:
    row = {
        "run_date": run_date,
        "user_key": f"key-{user_id}",
        "user_id": user_id,
        "promo_id": "pct10",
        "channel": "email",
        "send_hour": 9,
        "message": "10% off shoes",
        "featured_item_ids": "i1,i2",
        "expected_incremental_margin": 1.25,
        "expected_cost": 0.5,
        "propensity": 0.95,
        "is_holdout": False,
        "is_exploration": False,
        "reason": "margin_gain",
        "policy_version": "lagrangian-greedy-v1",
        "model_version": "m-1",
    }
    row.update(overrides)
    return row


def publish(settings: Settings, run_date: date, rows: list[dict]) -> None:
    with Warehouse(settings) as wh:
        wh.replace_assignments(
            run_date, pa.Table.from_pylist([{c: r[c] for c in PROMO_ASSIGNMENTS_COLUMNS} for r in rows])
        )


@pytest.fixture
def settings(tmp_path):
    settings = Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path), "PROMO_API_TOKEN": secrets.token_urlsafe(32)})
    write_marts(settings)
    feature_store.apply_and_materialize(settings, RUN_DATE)
    return settings


@pytest.fixture
def client(settings):
    publish(
        settings,
        date(2026, 10, 2),
        [assignment(date(2026, 10, 2), "u1", promo_id="old"), assignment(date(2026, 10, 2), "u3")],
    )
    publish(
        settings,
        RUN_DATE,
        [
            assignment(RUN_DATE, "u1"),
            assignment(
                RUN_DATE,
                "u2",
                promo_id="none",
                channel=None,
                message=None,
                featured_item_ids=None,
                expected_incremental_margin=0.0,
                expected_cost=0.0,
                is_holdout=True,
                reason="holdout",
            ),
        ],
    )
    return TestClient(create_app(settings), headers={"Authorization": f"Bearer {settings.api_token}"})


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
    assert (
        body["promo_id"] == "none"
        and body["is_holdout"] is True
        and body["channel"] is None
        and body["message"] is None
    )
    assert body["features"]["orders_30d"] == 7


def test_unknown_user_is_404_with_a_reason(client):
    response = client.get("/users/nobody/offer")
    assert response.status_code == 404
    assert response.json()["detail"] == "unknown user 'nobody': no assignment in the latest run (run_date 2026-10-03)"
    # in an older run only: still not an offer of the latest run
    assert client.get("/users/u3/offer").status_code == 404


def test_nothing_published_yet_is_503(settings):
    response = TestClient(create_app(settings), headers={"Authorization": f"Bearer {settings.api_token}"}).get(
        "/users/u1/offer"
    )
    assert response.status_code == 503
    assert "promo_assignments" in response.json()["detail"]


# ------------------------------------------------------------------------------ security
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer wrong-token", "Basic dXNlcjpwYXNz", "bearer{token}x", "Token {token}"],
    ids=["none", "empty", "wrong", "basic", "token_plus_one", "other_scheme"],
)
def test_offer_without_the_bearer_token_is_401(client, settings, authorization):
    headers = {} if authorization is None else {"Authorization": authorization.format(token=" " + settings.api_token)}
    response = TestClient(client.app).get("/users/u1/offer", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "user_key" not in response.text and "u1" not in response.text


def test_token_is_compared_in_constant_time(client, settings, monkeypatch):
    seen = []
    original = hmac.compare_digest

    def recording(a, b):
        seen.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    assert client.get("/users/u1/offer").status_code == 200
    assert seen == [(settings.api_token.encode(), settings.api_token.encode())]


def test_api_refuses_to_start_without_a_token(tmp_path):
    with pytest.raises(MissingTokenError, match="PROMO_API_TOKEN is empty"):
        create_app(Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path)}))


@pytest.mark.parametrize(
    "user_id",
    ["u" * 129, "u1' or '1'='1", "u1%20", "a b", "u1;drop", "%00", "..%2F..%2Fetc", "u1%0A"],
    ids=["too_long", "sql_quote", "trailing_space", "space", "semicolon", "nul", "dot_dot_slash", "newline"],
)
def test_invalid_user_id_is_422_before_any_query(client, user_id):
    response = client.get(f"/users/{user_id}/offer")
    assert response.status_code in (404, 422) if "%2F" in user_id else response.status_code == 422
    assert "user_key" not in response.text


def test_each_user_gets_only_their_own_row(client):
    assert client.get("/users/u1/offer").json()["user_key"] == "key-u1"
    assert client.get("/users/u2/offer").json()["user_key"] == "key-u2"
    # look-alikes of a published id are other users: not found, never u1's row
    for other in ("U1", "u1.", "u", "u10"):
        assert client.get(f"/users/{other}/offer").status_code == 404, other
    # 128 characters and non-ASCII letters are valid ids (here unknown)
    assert client.get("/users/" + "u" * 128 + "/offer").status_code == 404
    assert client.get("/users/李-ü/offer").status_code == 404
