"""promo_assignments: a run date is replaced atomically, other dates untouched; on DuckDB and Postgres."""

from __future__ import annotations

import os
import uuid
from datetime import date

import pyarrow as pa
import pytest

from promoflow.settings import Settings
from promoflow.warehouse import PROMO_ASSIGNMENTS_COLUMNS, Warehouse


def _rows(run_date: date, users: list[str], promo: str = "p1") -> pa.Table:
    n = len(users)
    return pa.table(
        {
            "run_date": pa.array([run_date] * n, pa.date32()),
            "user_key": [f"k{u}" for u in users],
            "user_id": users,
            "promo_id": [promo] * n,
            "channel": ["email"] * n,
            "send_hour": pa.array([9] * n, pa.int32()),
            "message": ["10% off"] * n,
            "featured_item_ids": ["i1,i2"] * n,
            "expected_incremental_margin": [1.5] * n,
            "expected_cost": [0.5] * n,
            "propensity": [0.95] * n,
            "is_holdout": [False] * n,
            "is_exploration": [False] * n,
            "reason": ["uplift"] * n,
            "policy_version": ["v1"] * n,
            "model_version": ["m1"] * n,
        }
    )


def _postgres_url() -> str:
    return os.environ.get("PROMO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request, tmp_path):
    if request.param == "duckdb":
        settings = Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path)})
        with Warehouse(settings) as wh:
            yield wh
        return
    settings = Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path), "PROMO_WAREHOUSE_URL": _postgres_url()})
    try:
        wh = Warehouse(settings)
    except Exception as err:  # psycopg2.OperationalError
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL at {_postgres_url()} unreachable ({err}); under CI=true this fails")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    wh.execute(f"create schema {schema}")
    wh.execute(f"set search_path to {schema}")
    wh.default_schema = wh.raw_schema = schema
    try:
        yield wh
    finally:
        wh.execute(f"drop schema {schema} cascade")
        wh.close()


def _published(wh, run_date):
    return wh.query(
        f"select user_id, promo_id from {wh.default_schema}.promo_assignments where run_date = ? order by user_id",
        [run_date],
    )


def test_replacing_a_run_date_never_duplicates_and_keeps_other_dates(warehouse):
    d1, d2 = date(2026, 10, 30), date(2026, 10, 31)
    warehouse.replace_assignments(d1, _rows(d1, ["u1", "u2"]))
    warehouse.replace_assignments(d2, _rows(d2, ["u1", "u2"]))
    warehouse.replace_assignments(d2, _rows(d2, ["u1", "u3"], promo="p2"))
    assert _published(warehouse, d1) == [("u1", "p1"), ("u2", "p1")]
    assert _published(warehouse, d2) == [("u1", "p2"), ("u3", "p2")]


def test_a_failed_replace_leaves_the_published_rows(warehouse):
    d = date(2026, 10, 31)
    warehouse.replace_assignments(d, _rows(d, ["u1", "u2"]))
    broken = _rows(d, ["u9"]).set_column(5, "send_hour", pa.array(["not an int"]))
    with pytest.raises(Exception):  # noqa: B017 - DuckDB and Postgres raise different types
        warehouse.replace_assignments(d, broken)
    assert _published(warehouse, d) == [("u1", "p1"), ("u2", "p1")]


def test_promo_assignments_has_the_contract_columns(warehouse):
    warehouse.ensure_promo_assignments()
    got = warehouse.query(
        "select column_name from information_schema.columns where table_schema = ? and table_name = 'promo_assignments' order by ordinal_position",
        [warehouse.default_schema],
    )
    assert [r[0] for r in got] == list(PROMO_ASSIGNMENTS_COLUMNS)


def test_load_files_replaces_a_partition_and_skips_unchanged_files(warehouse, tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "orders.parquet"
    pq.write_table(pa.table({"order_id": ["o1", "o2"], "amount": [1.0, 2.0]}), path)
    day = date(2026, 10, 1)
    assert warehouse.load_files("orders_test", [path], where={"dt": day}, extra={"dt": day}) is True
    assert warehouse.load_files("orders_test", [path], where={"dt": day}, extra={"dt": day}) is False
    pq.write_table(pa.table({"order_id": ["o3"], "amount": [3.0]}), path)
    os.utime(path, ns=(1, 10**18))
    assert warehouse.load_files("orders_test", [path], where={"dt": day}, extra={"dt": day}) is True
    assert warehouse.query(f"select order_id from {warehouse.raw_schema}.orders_test order by 1") == [("o3",)]


def test_load_files_adds_columns_a_newer_feature_job_writes(warehouse, tmp_path):
    # a warehouse loaded before the Spark job gained columns takes the new files
    import pyarrow.parquet as pq

    old, new = tmp_path / "old.parquet", tmp_path / "new.parquet"
    pq.write_table(pa.table({"user_id": ["u1"], "orders_7d": pa.array([1], pa.int32())}), old)
    pq.write_table(
        pa.table({"user_id": ["u2"], "orders_7d": pa.array([2], pa.int32()), "top_category_1": ["shoes"]}), new
    )
    table = f"features_{uuid.uuid4().hex[:8]}"
    assert warehouse.load_files(table, [old], where={"as_of": date(2024, 3, 9)}, extra={"as_of": date(2024, 3, 9)})
    assert warehouse.load_files(table, [new], where={"as_of": date(2024, 3, 10)}, extra={"as_of": date(2024, 3, 10)})
    rows = warehouse.query(
        f"select user_id, orders_7d, top_category_1 from {warehouse.raw_schema}.{table} order by user_id"
    )
    assert rows == [("u1", 1, None), ("u2", 2, "shoes")]
