"""Publish: the GX gate blocks bad assignments; a good night replaces table rows and export as a whole."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from promoflow.decisions import staged_assignments_path
from promoflow.publish import export_uri, publish
from promoflow.quality import DataQualityError
from promoflow.settings import Settings
from promoflow.warehouse import RAW_SCHEMA, Warehouse

RUN_DATE = date(2026, 10, 31)
USERS = [f"u{i:03d}" for i in range(100)]


def _staged(settings: Settings, promo_ids: list[str], cost: float = 1.0, holdout_every: int = 20) -> None:
    n = len(USERS)
    is_holdout = [i % holdout_every == 0 for i in range(n)]
    promos = ["none" if h else p for p, h in zip(promo_ids, is_holdout)]
    table = pa.table(
        {
            "run_date": pa.array([RUN_DATE] * n, pa.date32()),
            "user_key": [f"k{u}" for u in USERS],
            "user_id": USERS,
            "promo_id": promos,
            "channel": [None if p == "none" else "email" for p in promos],
            "send_hour": pa.array([9] * n, pa.int32()),
            "message": [None if p == "none" else "10% off" for p in promos],
            "featured_item_ids": [None] * n,
            "expected_incremental_margin": [0.0 if p == "none" else 2.0 for p in promos],
            "expected_cost": [0.0 if p == "none" else cost for p in promos],
            "propensity": [1.0 if p == "none" else 0.95 for p in promos],
            "is_holdout": is_holdout,
            "is_exploration": [False] * n,
            "reason": ["r"] * n,
            "policy_version": ["v1"] * n,
            "model_version": ["m1"] * n,
        }
    )
    path = staged_assignments_path(settings, RUN_DATE)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


@pytest.fixture
def settings(tmp_path):
    settings = Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path)}, overrides={"budget": 80})
    with Warehouse(settings) as wh:
        wh.replace_rows(RAW_SCHEMA, "users", pa.table({"user_id": USERS}), where=None)
        wh.replace_rows(RAW_SCHEMA, "promotions", pa.table({"promo_id": ["p1", "p2"]}), where=None)
    return settings


def _published(settings):
    with Warehouse(settings) as wh:
        return wh.query(
            "select user_id, promo_id from promo_assignments where run_date = ? order by user_id", [RUN_DATE]
        )


def test_good_night_is_published_to_table_and_export(settings):
    _staged(settings, ["p1"] * 50 + ["p2"] * 50, cost=0.5)
    summary = publish(settings, RUN_DATE)
    # every 20th user is held out: 95 offers x 0.5
    assert summary["users"] == 100 and summary["budget_used"] == 47.5
    assert summary["assignments_per_promo"] == {"none": 5, "p1": 47, "p2": 48}
    assert len(_published(settings)) == 100
    exported = pq.read_table(f"{export_uri(settings, RUN_DATE)}/promo_assignments.parquet")
    assert "user_id" not in exported.column_names and exported.num_rows == 100


@pytest.mark.parametrize(
    ("promo_ids", "cost", "message"),
    [
        (["p1"] * 100, 1.0, "expect_column_sum_to_be_between"),  # 95 offers x 1.0 > budget 80
        (["p_unknown"] * 100, 0.5, "expect_column_values_to_be_in_set"),
    ],
)
def test_bad_night_is_stopped_and_the_published_night_stays(settings, promo_ids, cost, message):
    _staged(settings, ["p1"] * 50 + ["none"] * 50, cost=1.0)
    publish(settings, RUN_DATE)
    before = _published(settings)
    export_file = f"{export_uri(settings, RUN_DATE)}/promo_assignments.parquet"
    export_bytes = open(export_file, "rb").read()
    _staged(settings, promo_ids, cost=cost)
    with pytest.raises(DataQualityError, match=message):
        publish(settings, RUN_DATE)
    assert _published(settings) == before
    assert open(export_file, "rb").read() == export_bytes
