"""`dbt build` of dbt_project/ on a tiny hand-made warehouse, on DuckDB and Postgres.

Each test loads the `raw` tables and the published `promo_assignments` table the
way promoflow.warehouse and promoflow.publish leave them, runs dbt through its
programmatic API with the env vars / vars the DAG's dbt_build task sets, and
checks mart values computed by hand below.

Hand-made night: run_date 2026-10-10, catalogue p10 (percent_off, 7 days) and
p5 (amount_off, 3 days); the control arm `none` uses control_window_days = 7.

| exposure | user | promo | sent             | window end       | orders in window        |
|----------|------|-------|------------------|------------------|-------------------------|
| e1       | u1   | p10   | 2026-10-01 10:00 | 2026-10-08 10:00 | o1 (redeems p10), o2    |
| e2       | u2   | none  | 2026-10-01 00:00 | 2026-10-08 00:00 | o3 (redeems p5)         |
| e3       | u3   | p5    | 2026-10-01 00:00 | 2026-10-04 00:00 | none (o4 is after end)  |
| e4       | u1   | p5    | 2026-10-08 00:00 | 2026-10-11 00:00 | none yet: not matured   |
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
RUN_DATE = "2026-10-10"

# Contract types portable to DuckDB and Postgres.
RAW_TABLES_SQL = """
create table {raw}.users (
    user_id text, user_key text, signup_ts timestamp, region text, device text, email text
);
insert into {raw}.users values
    ('u1', 'k1', '2026-01-05 08:00:00', 'north', 'ios', 'u1@example.com'),
    ('u2', 'k2', '2026-03-01 12:00:00', 'CN-31', 'web', null),
    ('u3', 'k3', '2026-09-30 23:00:00', 'south', 'android', 'u3@example.com');

create table {raw}.items (
    item_id text, category text, brand text, price double precision, unit_cost double precision
);
insert into {raw}.items values
    ('i1', 'shoes', 'acme', 80.0, 50.0),
    ('i2', 'books', null, 20.0, 8.0);

create table {raw}.promotions (
    promo_id text, promo_type text, value double precision, min_spend double precision,
    max_discount double precision, category text, channel text, valid_days integer,
    active_from date, active_to date
);
insert into {raw}.promotions values
    ('p10', 'percent_off', 10.0, 0.0, 20.0, null, null, 7, '2026-09-01', '2026-12-31'),
    ('p5', 'amount_off', 5.0, 30.0, null, 'shoes', 'push', 3, '2026-09-01', '2026-10-05');

create table {raw}.orders (
    order_id text, user_id text, order_ts timestamp, gross_amount double precision,
    discount_amount double precision, cogs double precision, shipping_fee double precision,
    promo_id text, n_items integer, dt date
);
insert into {raw}.orders values
    ('o1', 'u1', '2026-10-02 12:00:00', 100.0, 10.0, 60.0, 5.0, 'p10', 2, '2026-10-02'),
    ('o2', 'u1', '2026-10-05 08:00:00', 40.0, 0.0, 20.0, 0.0, null, 1, '2026-10-05'),
    ('o3', 'u2', '2026-10-03 09:00:00', 50.0, 5.0, 30.0, 4.0, 'p5', 1, '2026-10-03'),
    ('o4', 'u3', '2026-10-09 18:00:00', 20.0, 0.0, 10.0, 3.0, null, 1, '2026-10-09');

create table {raw}.exposures (
    exposure_id text, user_id text, promo_id text, sent_ts timestamp, channel text,
    propensity double precision, policy_version text, dt date
);
insert into {raw}.exposures values
    ('e1', 'u1', 'p10', '2026-10-01 10:00:00', 'email', 0.5, 'v1', '2026-10-01'),
    ('e2', 'u2', 'none', '2026-10-01 00:00:00', 'email', 0.05, 'v1', '2026-10-01'),
    ('e3', 'u3', 'p5', '2026-10-01 00:00:00', 'push', null, null, '2026-10-01'),
    ('e4', 'u1', 'p5', '2026-10-08 00:00:00', 'push', 0.25, 'v1', '2026-10-08');

create table {raw}.user_features (
    user_id text, as_of date, tenure_days integer, days_since_last_event integer,
    days_since_last_order integer, days_since_last_exposure integer,
    orders_7d integer, orders_30d integer, orders_90d integer,
    spend_7d double precision, spend_30d double precision, spend_90d double precision,
    views_30d integer, carts_30d integer, sessions_30d integer, searches_30d integer,
    events_per_session_30d double precision, view_to_cart_rate_30d double precision,
    cart_to_order_rate_30d double precision, avg_order_value_90d double precision,
    order_value_std_90d double precision, discount_order_share_90d double precision,
    exposures_30d integer, preferred_hour integer, top_category text
);
insert into {raw}.user_features values
    ('u1', '2026-10-09', 277, 1, 4, 1, 0, 2, 2, 0.0, 140.0, 140.0, 9, 3, 4, 1, 3.25, 0.333, 0.667, 70.0, 30.0, 0.5, 2, 10, 'shoes'),
    ('u2', '2026-10-09', 222, 6, 6, 8, 0, 1, 1, 0.0, 50.0, 50.0, 2, 1, 1, 0, 3.0, 0.5, 1.0, 50.0, 0.0, 1.0, 0, 9, 'shoes'),
    ('u3', '2026-10-09', 8, 999, 999, 8, 0, 0, 0, 0.0, 0.0, 0.0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1, 10, 'unknown'),
    ('u1', '2026-10-10', 278, 2, 5, 2, 0, 2, 2, 0.0, 140.0, 140.0, 9, 3, 4, 1, 3.25, 0.333, 0.667, 70.0, 30.0, 0.5, 2, 10, 'shoes'),
    ('u2', '2026-10-10', 223, 7, 7, 9, 0, 1, 1, 0.0, 50.0, 50.0, 2, 1, 1, 0, 3.0, 0.5, 1.0, 50.0, 0.0, 1.0, 0, 9, 'shoes'),
    ('u3', '2026-10-10', 9, 1, 1, 9, 1, 1, 1, 20.0, 20.0, 20.0, 3, 1, 1, 0, 4.0, 0.333, 1.0, 20.0, 0.0, 0.0, 1, 18, 'books'),
    -- a later night's row: after run_date, so the user_features mart leaves it out
    ('u1', '2026-10-11', 279, 3, 6, 3, 0, 2, 2, 0.0, 140.0, 140.0, 9, 3, 4, 1, 3.25, 0.333, 0.667, 70.0, 30.0, 0.5, 2, 10, 'shoes');

create table {raw}.user_daily_activity (
    user_id text, dt date, n_events integer, n_views integer, n_carts integer,
    n_orders integer, spend double precision
);
insert into {raw}.user_daily_activity values ('u1', '2026-10-05', 5, 3, 1, 1, 40.0);

create table {raw}.item_features (
    item_id text, category text, views_30d integer, purchases_30d integer,
    conversion_rate_30d double precision, popularity_rank_in_category integer, as_of date
);
insert into {raw}.item_features values
    ('i1', 'shoes', 12, 3, 0.25, 1, '2026-10-10'),
    ('i2', 'books', 4, 1, 0.25, 1, '2026-10-10');
"""

PROMO_ASSIGNMENTS_SQL = """
create table {published}.promo_assignments (
    run_date date, user_key text, user_id text, promo_id text, channel text,
    send_hour integer, message text, featured_item_ids text,
    expected_incremental_margin double precision, expected_cost double precision,
    propensity double precision, is_holdout boolean, is_exploration boolean,
    reason text, policy_version text, model_version text
);
insert into {published}.promo_assignments values
    ('2026-10-09', 'k1', 'u1', 'p10', 'email', 10, '10% off for you', 'i1,i2', 3.5, 2.0, 0.9, false, false, 'top_uplift', 'v1', 'm1'),
    ('2026-10-09', 'k2', 'u2', 'none', null, 9, null, null, 0.0, 0.0, 1.0, true, false, 'holdout', 'v1', 'm1'),
    ('2026-10-10', 'k1', 'u1', 'p5', 'push', 10, '5 off shoes', 'i1', 1.5, 1.0, 0.8, false, true, 'explore', 'v1', 'm2'),
    ('2026-10-10', 'k2', 'u2', 'p10', 'email', 9, '10% off for you', 'i1', 2.5, 1.5, 0.9, false, false, 'top_uplift', 'v1', 'm2'),
    ('2026-10-10', 'k3', 'u3', 'none', null, 18, null, null, 0.0, 0.0, 1.0, true, false, 'holdout', 'v1', 'm2');
"""

MARTS = {
    "dim_users",
    "dim_items",
    "dim_promotions",
    "fct_orders",
    "fct_promo_outcomes",
    "user_features",
    "assignments_latest",
}


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def run_dbt(args: list[str], env: dict[str, str], tmp_path: Path):
    """Invoke dbt in-process with `env` set; target/ and logs/ go under tmp_path."""
    from dbt.cli.main import dbtRunner

    full_env = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **env}
    saved = {key: os.environ.get(key) for key in full_env}
    os.environ.update(full_env)
    try:
        return dbtRunner().invoke(
            [
                *args,
                "--project-dir", str(DBT_PROJECT_DIR),
                "--profiles-dir", str(DBT_PROJECT_DIR),
                "--target-path", str(tmp_path / "dbt_target"),
                "--log-path", str(tmp_path / "dbt_logs"),
            ]
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def failures(result) -> list[str]:
    """Human-readable list of what went wrong in a dbtRunnerResult."""
    if result.exception is not None:
        return [f"dbt raised: {result.exception!r}"]
    return [
        f"{r.node.unique_id}: {r.status} {r.message}"
        for r in (result.result or [])
        if str(r.status) not in ("success", "pass")
    ]


def assert_build_succeeded(result) -> None:
    assert result.success, "dbt build failed:\n" + "\n".join(failures(result))
    built = {r.node.name for r in result.result if r.node.resource_type == "model"}
    assert MARTS <= built, f"marts not built: {sorted(MARTS - built)}"
    unit_tests = [r for r in result.result if r.node.resource_type == "unit_test"]
    assert len(unit_tests) >= 2, "unit tests for stg_orders and int_exposure_outcomes did not run"


def check_marts(query, columns_of) -> None:
    """Mart values of the hand-made night; `query(sql)` returns rows, `columns_of(table)` names."""
    outcomes = {
        row[0]: row[1:]
        for row in query(
            "select exposure_id, user_key, promo_type, valid_days, window_end_ts, is_matured,"
            " converted, redeemed, n_orders, order_margin, discount_amount"
            " from {analytics}.fct_promo_outcomes"
        )
    }
    assert set(outcomes) == {"e1", "e2", "e3", "e4"}
    # e1: o1 (redeems p10, margin 100-10-60=30) + o2 (margin 40-0-20=20)
    assert outcomes["e1"] == ("k1", "percent_off", 7, datetime(2026, 10, 8, 10), True, 1, 1, 2, 50.0, 10.0)
    # e2: control arm, 7-day window; o3 redeemed p5, which is not this exposure's promo
    assert outcomes["e2"] == ("k2", "none", 7, datetime(2026, 10, 8), True, 1, 0, 1, 15.0, 0.0)
    # e3: o4 falls after the 3-day window
    assert outcomes["e3"] == ("k3", "amount_off", 3, datetime(2026, 10, 4), True, 0, 0, 0, 0.0, 0.0)
    # e4: window ends after run_date: not matured yet
    assert outcomes["e4"][4] is False

    margins = dict(query("select order_id, order_margin from {analytics}.fct_orders"))
    assert margins == {"o1": 30.0, "o2": 20.0, "o3": 15.0, "o4": 10.0}

    # PII: email never reaches analytics
    assert "email" not in columns_of("dim_users")
    assert "user_key" in columns_of("dim_users")
    assert query("select count(*) from {analytics}.dim_users") == [(3,)]

    # Feast's table: as_of <= run_date only, event_timestamp = as_of 00:00
    feature_rows = query(
        "select as_of, event_timestamp, count(*) from {analytics}.user_features group by 1, 2 order by 1"
    )
    assert feature_rows == [
        (date(2026, 10, 9), datetime(2026, 10, 9), 3),
        (date(2026, 10, 10), datetime(2026, 10, 10), 3),
    ]

    # Marketing's view: newest run only, no user_id
    latest = query("select run_date, user_key, promo_id from {analytics}.assignments_latest order by user_key")
    assert latest == [
        (date(2026, 10, 10), "k1", "p5"),
        (date(2026, 10, 10), "k2", "p10"),
        (date(2026, 10, 10), "k3", "none"),
    ]
    assert "user_id" not in columns_of("assignments_latest")


# --------------------------------------------------------------------------- DuckDB


@pytest.fixture
def duckdb_warehouse(tmp_path: Path) -> Path:
    """A DuckDB file with schema `raw` and main.promo_assignments filled by hand."""
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema raw")
    for statement in _statements(RAW_TABLES_SQL.format(raw="raw")):
        con.execute(statement)
    for statement in _statements(PROMO_ASSIGNMENTS_SQL.format(published="main")):
        con.execute(statement)
    con.close()
    return path


def _duckdb_env(path: Path) -> dict[str, str]:
    return {"PROMO_DBT_TARGET": "duckdb", "PROMO_DUCKDB_PATH": str(path)}


def test_dbt_build_on_duckdb_computes_outcomes_and_hides_pii(duckdb_warehouse: Path, tmp_path: Path):
    started = time.monotonic()
    result = run_dbt(["build", "--vars", json.dumps({"run_date": RUN_DATE})], _duckdb_env(duckdb_warehouse), tmp_path)
    assert_build_succeeded(result)

    # same configuration as dbt-duckdb's connection, which stays open in this process
    con = duckdb.connect(str(duckdb_warehouse))
    try:
        check_marts(
            lambda sql: con.execute(sql.format(analytics="analytics")).fetchall(),
            lambda table: [c[0] for c in con.execute(f"describe analytics.{table}").fetchall()],
        )
        # Every model lands in `analytics` itself, no `analytics_<custom>` schemas.
        schemas = {row[0] for row in con.execute("select schema_name from information_schema.schemata").fetchall()}
        assert not {s for s in schemas if s.startswith("analytics_")}
    finally:
        con.close()
    print(f"duckdb dbt build: {time.monotonic() - started:.1f}s")


def test_dbt_build_on_duckdb_fails_on_a_user_assigned_twice_in_one_run(duckdb_warehouse: Path, tmp_path: Path):
    con = duckdb.connect(str(duckdb_warehouse))
    con.execute(
        "insert into main.promo_assignments select * from main.promo_assignments"
        " where run_date = '2026-10-10' and user_id = 'u1'"
    )
    con.close()

    result = run_dbt(
        ["build", "--select", "stg_promo_assignments+", "--vars", json.dumps({"run_date": RUN_DATE})],
        _duckdb_env(duckdb_warehouse),
        tmp_path,
    )

    assert not result.success
    failed = {r.node.name for r in result.result if str(r.status) in ("fail", "error")}
    assert "assert_one_assignment_per_user_per_run_date" in failed


def test_dbt_build_on_duckdb_before_first_publish(tmp_path: Path):
    """Night one: promo_assignments does not exist yet; the build still succeeds."""
    path = tmp_path / "first_night.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema raw")
    for statement in _statements(RAW_TABLES_SQL.format(raw="raw")):
        con.execute(statement)
    con.close()

    result = run_dbt(
        ["build", "--select", "+assignments_latest", "--vars", json.dumps({"run_date": RUN_DATE})],
        _duckdb_env(path),
        tmp_path,
    )

    assert result.success, "dbt build failed:\n" + "\n".join(failures(result))
    con = duckdb.connect(str(path))
    assert con.execute("select count(*) from analytics.assignments_latest").fetchall() == [(0,)]
    con.close()


# --------------------------------------------------------------------------- Postgres


def _pg_settings() -> dict[str, str]:
    return {
        "PROMO_PG_HOST": os.environ.get("PROMO_PG_HOST", "127.0.0.1"),
        "PROMO_PG_PORT": os.environ.get("PROMO_PG_PORT", "5432"),
        "PROMO_PG_USER": os.environ.get("PROMO_PG_USER", "postgres"),
        "PROMO_PG_DBNAME": os.environ.get("PROMO_PG_DBNAME", "test"),
    }


@pytest.fixture
def postgres_warehouse():
    """Unique raw / published / analytics schemas in database `test`, dropped afterwards."""
    psycopg2 = pytest.importorskip("psycopg2")
    settings = _pg_settings()
    try:
        con = psycopg2.connect(
            host=settings["PROMO_PG_HOST"],
            port=int(settings["PROMO_PG_PORT"]),
            user=settings["PROMO_PG_USER"],
            dbname=settings["PROMO_PG_DBNAME"],
            connect_timeout=3,
        )
    except psycopg2.OperationalError as error:
        message = (
            f"PostgreSQL unreachable at {settings['PROMO_PG_HOST']}:{settings['PROMO_PG_PORT']} "
            f"(db {settings['PROMO_PG_DBNAME']}, user {settings['PROMO_PG_USER']}): {error}".strip()
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " -- CI=true requires Postgres")
        pytest.skip(message)
    con.autocommit = True
    suffix = uuid.uuid4().hex[:12]
    schemas = {"raw": f"raw_{suffix}", "published": f"pub_{suffix}", "analytics": f"analytics_{suffix}"}
    try:
        with con.cursor() as cur:
            cur.execute(f"create schema {schemas['raw']}")
            cur.execute(f"create schema {schemas['published']}")
            for statement in _statements(RAW_TABLES_SQL.format(raw=schemas["raw"])):
                cur.execute(statement)
            for statement in _statements(PROMO_ASSIGNMENTS_SQL.format(published=schemas["published"])):
                cur.execute(statement)
        yield con, settings, schemas
    finally:
        with con.cursor() as cur:
            for schema in schemas.values():
                cur.execute(f"drop schema if exists {schema} cascade")
        con.close()


@pytest.mark.postgres
def test_dbt_build_on_postgres_computes_outcomes_and_hides_pii(postgres_warehouse, tmp_path: Path):
    con, settings, schemas = postgres_warehouse
    started = time.monotonic()
    env = {**settings, "PROMO_DBT_TARGET": "postgres", "PROMO_DBT_SCHEMA": schemas["analytics"]}
    dbt_vars = {"run_date": RUN_DATE, "raw_schema": schemas["raw"], "published_schema": schemas["published"]}

    result = run_dbt(["build", "--vars", json.dumps(dbt_vars)], env, tmp_path)
    assert_build_succeeded(result)

    def query(sql: str):
        with con.cursor() as cur:
            cur.execute(sql.format(analytics=schemas["analytics"]))
            return cur.fetchall()

    def columns_of(table: str) -> list[str]:
        with con.cursor() as cur:
            cur.execute(
                "select column_name from information_schema.columns"
                " where table_schema = %s and table_name = %s order by ordinal_position",
                (schemas["analytics"], table),
            )
            return [row[0] for row in cur.fetchall()]

    check_marts(query, columns_of)
    # Models went exactly to the target schema.
    assert query(
        "select count(*) from information_schema.schemata where schema_name like '{analytics}_%'"
    ) == [(0,)]
    print(f"postgres dbt build: {time.monotonic() - started:.1f}s")
