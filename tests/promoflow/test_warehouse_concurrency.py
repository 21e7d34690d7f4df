"""One Postgres warehouse, several writers, and a database that goes away mid-publish.

Each test gets a fresh database on the machine's PostgreSQL. Lock waits are made
deterministic with a real row lock held by a third connection, and the test waits
until the writers are really blocked (``pg_stat_activity``) before letting go.
Outside CI the tests skip when PostgreSQL is down; under CI=true they fail instead.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from promoflow.decisions import staged_assignments_path
from promoflow.publish import export_uri, publish
from promoflow.settings import Settings
from promoflow.warehouse import RAW_SCHEMA, Warehouse, WarehouseUnavailableError

ADMIN_URL = os.environ.get("PROMO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
RUN_DATE = date(2026, 10, 31)
USERS = [f"u{i:03d}" for i in range(50)]


def _admin():
    import psycopg2

    try:
        con = psycopg2.connect(ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {ADMIN_URL} unreachable ({err}); CI=true requires it")
        pytest.skip(f"PostgreSQL at {ADMIN_URL} unreachable ({err}); under CI=true this fails")
    con.autocommit = True
    return con


@pytest.fixture
def pg_settings(tmp_path):
    admin = _admin()
    name = f"pf_conc_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f"create database {name}")
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield Settings.from_env(
        env={
            "PROMO_DATA_DIR": str(tmp_path / "data"),
            "PROMO_WAREHOUSE_URL": url,
            "PROMO_HOLDOUT_SHARE": "0",
            "PROMO_BUDGET": "100",
        }
    )
    with admin.cursor() as cur:
        cur.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s and pid <> pg_backend_pid()",
            [name],
        )
        cur.execute(f"drop database if exists {name}")
    admin.close()


def _rows(run_date: date, promo: str) -> pa.Table:
    n = len(USERS)
    return pa.table(
        {
            "run_date": pa.array([run_date] * n, pa.date32()),
            "user_key": [f"k{u}" for u in USERS],
            "user_id": USERS,
            "promo_id": [promo] * n,
            "channel": ["email"] * n,
            "send_hour": pa.array([9] * n, pa.int32()),
            "message": ["m"] * n,
            "featured_item_ids": ["i1"] * n,
            "expected_incremental_margin": [1.0] * n,
            "expected_cost": [0.5] * n,
            "propensity": [0.9] * n,
            "is_holdout": [False] * n,
            "is_exploration": [False] * n,
            "reason": ["r"] * n,
            "policy_version": ["v"] * n,
            "model_version": [f"m-{promo}"] * n,
        }
    )


def _run(run_date: date, promo: str) -> dict:
    return {"run_date": run_date, "budget": 100.0, "users": len(USERS), "model_version": f"m-{promo}"}


def _connect(settings: Settings):
    import psycopg2

    return psycopg2.connect(settings.warehouse_url, connect_timeout=5)


def _wait_for_lock_waiters(settings: Settings, n: int, timeout_s: float = 60) -> list[int]:
    """pids of the promoflow connections blocked on a lock, once there are ``n`` of them."""
    con = _connect(settings)
    con.autocommit = True
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            with con.cursor() as cur:
                cur.execute(
                    "select pid from pg_stat_activity where datname = current_database() and application_name = 'promoflow' "
                    "and wait_event_type = 'Lock' order by backend_start"
                )
                pids = [r[0] for r in cur.fetchall()]
            if len(pids) >= n:
                return pids
            time.sleep(0.05)
    finally:
        con.close()
    raise AssertionError(f"expected {n} writers waiting on a lock, saw {len(pids)}")


def _row_lock_on_run(settings: Settings, run_date: date):
    """A third connection holding the row lock of run_date's promo_runs row: a publish of that date blocks on it."""
    blocker = _connect(settings)
    with blocker.cursor() as cur:
        cur.execute("select * from promo_runs where run_date = %s for update", [run_date])
        assert cur.rowcount == 1
    return blocker


def _published(settings: Settings, run_date: date) -> tuple[list, list]:
    with Warehouse(settings) as wh:
        rows = wh.query(
            "select user_id, promo_id, model_version from promo_assignments where run_date = ? order by user_id",
            [run_date],
        )
        runs = wh.query("select model_version from promo_runs where run_date = ?", [run_date])
    return rows, runs


def _in_thread(fn, *args) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def target():
        try:
            outcome["result"] = fn(*args)
        except BaseException as err:
            outcome["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def _replace(settings: Settings, run_date: date, promo: str) -> None:
    with Warehouse(settings) as wh:
        wh.replace_assignments(run_date, _rows(run_date, promo), _run(run_date, promo))


def test_two_runs_of_the_same_date_queue_and_never_duplicate_rows(pg_settings):
    _replace(pg_settings, RUN_DATE, "p_old")
    blocker = _row_lock_on_run(pg_settings, RUN_DATE)
    first, first_outcome = _in_thread(_replace, pg_settings, RUN_DATE, "p_first")
    _wait_for_lock_waiters(pg_settings, 1)  # inside its transaction, its rows inserted, waiting for promo_runs
    second, second_outcome = _in_thread(_replace, pg_settings, RUN_DATE, "p_second")
    _wait_for_lock_waiters(pg_settings, 2)  # the second run of the date is waiting too
    blocker.rollback()
    blocker.close()
    for thread in (first, second):
        thread.join(60)
    assert "error" not in first_outcome and "error" not in second_outcome, (first_outcome, second_outcome)
    rows, runs = _published(pg_settings, RUN_DATE)
    assert len(rows) == len(USERS)  # not 2x: the second run replaced the first instead of adding to it
    assert {promo for _, promo, _ in rows} == {"p_second"} and runs == [("m-p_second",)]


def test_two_nights_of_different_dates_publish_at_once_on_a_fresh_warehouse(pg_settings):
    dates = [date(2026, 10, 30), RUN_DATE]
    start = threading.Barrier(len(dates))

    def night(run_date: date) -> None:
        start.wait()
        for attempt in range(3):  # the first round races on creating the tables
            _replace(pg_settings, run_date, f"p_{run_date.day}_{attempt}")

    threads = [_in_thread(night, d) for d in dates]
    for thread, _ in threads:
        thread.join(120)
    assert [o for _, o in threads if "error" in o] == []
    for d in dates:
        rows, runs = _published(pg_settings, d)
        assert len(rows) == len(USERS) and {p for _, p, _ in rows} == {f"p_{d.day}_2"} and runs == [(f"m-p_{d.day}_2",)]


# --------------------------------------------------------------------- faults in publish
def _stage(settings: Settings, promo: str) -> None:
    path = staged_assignments_path(settings, RUN_DATE)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(_rows(RUN_DATE, promo), path)


def _raw_tables(settings: Settings) -> None:
    with Warehouse(settings) as wh:
        wh.replace_rows(RAW_SCHEMA, "users", pa.table({"user_id": USERS}), where=None)
        wh.replace_rows(RAW_SCHEMA, "promotions", pa.table({"promo_id": ["p_old", "p_new"]}), where=None)


def test_connection_lost_inside_the_publish_transaction_publishes_nothing_and_the_retry_does(pg_settings):
    _raw_tables(pg_settings)
    _stage(pg_settings, "p_old")
    publish(pg_settings, RUN_DATE)
    before = _published(pg_settings, RUN_DATE)
    export_before = {p.name: p.read_bytes() for p in Path(export_uri(pg_settings, RUN_DATE)).iterdir()}

    _stage(pg_settings, "p_new")
    blocker = _row_lock_on_run(pg_settings, RUN_DATE)
    thread, outcome = _in_thread(publish, pg_settings, RUN_DATE)
    [pid] = _wait_for_lock_waiters(pg_settings, 1)  # new rows inserted, transaction open
    killer = _connect(pg_settings)
    killer.autocommit = True
    with killer.cursor() as cur:
        cur.execute("select pg_terminate_backend(%s)", [pid])  # the database drops the connection
    killer.close()
    thread.join(60)
    blocker.rollback()
    blocker.close()

    err = outcome.get("error")
    assert isinstance(err, WarehouseUnavailableError), outcome
    message = str(err)
    assert (
        message.startswith(f"publish {RUN_DATE} failed: warehouse postgresql://")
        and "connection was lost inside a transaction" in message
    )
    assert "Nothing was published for 2026-10-31" in message and "\n" not in message
    assert _published(pg_settings, RUN_DATE) == before  # not half-written
    assert {p.name: p.read_bytes() for p in Path(export_uri(pg_settings, RUN_DATE)).iterdir()} == export_before

    publish(pg_settings, RUN_DATE)  # the retry
    rows, _runs = _published(pg_settings, RUN_DATE)
    assert len(rows) == len(USERS) and {p for _, p, _ in rows} == {"p_new"}


def test_postgres_unreachable_at_publish_is_one_paragraph_and_nothing_is_exported(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    settings = Settings.from_env(
        env={
            "PROMO_DATA_DIR": str(tmp_path / "data"),
            "PROMO_WAREHOUSE_URL": f"postgresql://promo:hunter2pw@127.0.0.1:{closed}/wh",
        }
    )
    _stage(settings, "p_new")
    with pytest.raises(WarehouseUnavailableError) as stopped:
        publish(settings, RUN_DATE)
    message = str(stopped.value)
    assert message.startswith(
        f"publish {RUN_DATE} failed: warehouse postgresql://promo:***@127.0.0.1:{closed}/wh: cannot connect"
    )
    assert "Nothing was published for 2026-10-31" in message and "hunter2pw" not in message and "\n" not in message
    assert not Path(export_uri(settings, RUN_DATE)).exists()
