"""promo_nightly and promo_feedback on the production topology, on 127.0.0.1.

The ``production`` fixture (conftest.py) runs Airflow on the CeleryExecutor (a worker
for the ``default`` queue, one for ``gpu`` only), Postgres (metadata DB and
warehouse), Redis (broker and Feast online store), a Spark standalone cluster and a
moto S3 server, with the environment docker/ is checked against. A tiny demo shop
is landed in S3; the nights are triggered through the REST API (v2, SimpleAuthManager
token) and run by the scheduler on the Celery workers, not by ``dag.test()``.
"""

from __future__ import annotations

import io
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from cluster_topology import Production, http_json

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster")]

N_USERS, N_DAYS, START = 300, 8, date(2026, 10, 1)
NIGHT = START + timedelta(days=N_DAYS)  # 2026-10-09: the first night the landing supports
FEEDBACK_DAY = NIGHT + timedelta(days=1)  # ingests dt=NIGHT, the day the night's offers went out
BUDGET = 400.0
RUN_TIMEOUT_S = 1800  # a guard against hangs: a loaded 2-core machine took 771 s for the night


def _trigger(production: Production, dag_id: str, day: date, conf: dict) -> str:
    api, token = production.api, production.token
    http_json(f"{api}/api/v2/dags/{dag_id}", "PATCH", {"is_paused": False}, token)
    run = http_json(
        f"{api}/api/v2/dags/{dag_id}/dagRuns",
        "POST",
        {"dag_run_id": f"cluster__{day.isoformat()}", "logical_date": f"{day.isoformat()}T00:00:00Z", "conf": conf},
        token,
    )
    return run["dag_run_id"]


def _task_instances(production: Production, dag_id: str, run_id: str) -> dict[str, dict]:
    tis = http_json(f"{production.api}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", token=production.token)
    return {ti["task_id"]: ti for ti in tis["task_instances"]}


def _task_log(production: Production, dag_id: str, run_id: str, ti: dict) -> str:
    url = (
        f"{production.api}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/"
        f"{max(ti['try_number'], 1)}?full_content=true"
    )
    try:
        content = http_json(url, token=production.token)["content"]
    except (OSError, ValueError, KeyError) as error:
        return f"(log unavailable: {error!r})"
    lines = [c.get("event", "") if isinstance(c, dict) else str(c) for c in content]
    return "\n".join(lines)[-3000:]


def _wait_for_run(production: Production, dag_id: str, run_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    state = None
    while time.monotonic() < deadline:
        production.procs.check_alive()
        state = http_json(f"{production.api}/api/v2/dags/{dag_id}/dagRuns/{run_id}", token=production.token)["state"]
        if state in ("success", "failed"):
            break
        time.sleep(3)
    tis = _task_instances(production, dag_id, run_id)
    if state != "success":
        failed = [ti for ti in tis.values() if ti["state"] != "success"]
        details = "\n".join(
            f"--- {ti['task_id']}: {ti['state']}\n{_task_log(production, dag_id, run_id, ti)}"
            for ti in failed
            if ti["state"] in ("failed", "upstream_failed", "running", "queued")
        )
        workers = "\n".join(
            f"--- {w}\n{production.procs.log(w, 2000)}" for w in ("worker-cpu", "worker-gpu", "airflow-scheduler")
        )
        pytest.fail(f"{dag_id} {run_id} ended {state!r} (timeout {RUN_TIMEOUT_S} s):\n{details}\n{workers}")
    return tis


@pytest.fixture(scope="module")
def nights(production: Production, upload_landing, tmp_path_factory):
    """The demo shop landed in S3, night NIGHT and then promo_feedback for FEEDBACK_DAY, both through the REST API."""
    from demo.simulator import generate

    local = tmp_path_factory.mktemp("landing")
    # one day more than the night reads: dt=NIGHT is what promo_feedback ingests the morning after
    generate(local / "raw", local / "truth", n_users=N_USERS, n_days=N_DAYS + 1, start_date=START, seed=11)
    upload_landing(local / "raw")
    started = time.monotonic()
    nightly_run = _trigger(production, "promo_nightly", NIGHT, {"budget": BUDGET})
    nightly = _wait_for_run(production, "promo_nightly", nightly_run)
    nightly_s = time.monotonic() - started
    started = time.monotonic()
    feedback_run = _trigger(production, "promo_feedback", FEEDBACK_DAY, {})
    feedback = _wait_for_run(production, "promo_feedback", feedback_run)
    feedback_s = time.monotonic() - started
    print(
        f"\ncluster: bring-up {production.bring_up_s:.0f} s, promo_nightly {nightly_s:.0f} s, "
        f"promo_feedback {feedback_s:.0f} s, peak RSS of all its processes {production.procs.peak_rss_bytes / 2**30:.2f} GiB"
    )
    for dag_id, tis in (("promo_nightly", nightly), ("promo_feedback", feedback)):
        print(f"{dag_id} task seconds: " + ", ".join(f"{t} {ti['duration'] or 0:.0f}" for t, ti in tis.items()))
    return {"nightly": nightly, "feedback": feedback, "landing": local / "raw"}


def _settings(production: Production):
    from promoflow.settings import Settings

    return Settings.from_env(env=production.env, overrides={"budget": BUDGET})


def _published(production: Production) -> list[dict]:
    from promoflow.warehouse import PROMO_ASSIGNMENTS_COLUMNS, Warehouse

    with Warehouse(_settings(production)) as wh:
        rows = wh.query("select * from promo_assignments where run_date = ? order by user_id", [NIGHT])
    return [dict(zip(PROMO_ASSIGNMENTS_COLUMNS, r)) for r in rows]


def _workloads(production: Production, worker: str) -> set[str]:
    """Task ids of the workloads a Celery worker's log says it executed."""
    found = set()
    for line in production.procs.log(worker, tail=10**8).splitlines():
        if "Executing workload in Celery" in line:
            found |= {t for t in TASK_IDS if f"task_id='{t}'" in line}
    return found


GPU_TASKS = {"train_model", "train_recommender"}  # queue="gpu" in dags/promo_nightly.py
TASK_IDS = (
    "ingest_validate",
    "build_features",
    "load_warehouse",
    "dbt_staging",
    "dbt_intermediate",
    "dbt_marts",
    "feature_store",
    "train_model",
    "train_recommender",
    "assign",
    "publish",
    "summarise",
    "dbt_attribution",
)


def test_every_task_ran_on_celery_and_train_model_on_the_gpu_worker(production, nights):
    tis = nights["nightly"]
    assert {t: ti["state"] for t, ti in tis.items()} == {t: "success" for t in tis}
    assert set(tis) <= set(TASK_IDS), set(tis) - set(TASK_IDS)
    assert {t: tis[t]["queue"] for t in GPU_TASKS} == {t: "gpu" for t in GPU_TASKS}
    assert {ti["queue"] for t, ti in tis.items() if t not in GPU_TASKS} == {"default"}
    assert all(ti["executor"] in (None, "CeleryExecutor") for ti in tis.values())
    assert _workloads(production, "worker-gpu") == GPU_TASKS
    cpu = _workloads(production, "worker-cpu")
    assert not cpu & GPU_TASKS and set(tis) - GPU_TASKS <= cpu


def test_the_spark_job_ran_on_the_standalone_master(production, nights):
    state = http_json(f"{production.spark_ui}/json/")
    apps = state["completedapps"] + state["activeapps"]
    assert [a["name"] for a in apps].count("promoflow") >= 1, apps
    assert all(a["state"] != "FAILED" for a in apps)
    lake = _settings(production).lake_dir
    assert list((Path(lake) / "features" / "user_features" / f"as_of={NIGHT.isoformat()}").glob("*.parquet"))


def test_assignments_are_in_postgres_within_budget(production, nights):
    rows = _published(production)
    assert _settings(production).warehouse_kind == "postgres"
    assert len(rows) == N_USERS and len({r["user_id"] for r in rows}) == N_USERS
    assert sum(r["expected_cost"] for r in rows) <= BUDGET + 1e-9
    assert any(r["promo_id"] != "none" for r in rows)


def test_export_and_model_are_in_s3(production, nights, s3):
    prefix = f"export/promo_assignments/run_date={NIGHT.isoformat()}/"
    listed = s3.list_objects_v2(Bucket=production.bucket, Prefix=prefix).get("Contents", [])
    names = {o["Key"][len(prefix) :] for o in listed}
    assert {"promo_assignments.parquet", "promo_assignments.csv", "_SUCCESS"} <= names, names
    body = s3.get_object(Bucket=production.bucket, Key=prefix + "promo_assignments.parquet")["Body"].read()
    exported = pq.read_table(io.BytesIO(body))
    assert exported.num_rows == N_USERS and "user_id" not in exported.column_names
    models = s3.list_objects_v2(Bucket=production.bucket, Prefix="models/").get("Contents", [])
    assert models, "the model store in S3 is empty"
    published_versions = {r["model_version"] for r in _published(production)}
    assert any(v and v in o["Key"] for v in published_versions for o in models), (published_versions, models[:5])


def test_online_features_are_in_redis(production, nights):
    from promoflow.feature_store import online_features

    settings = _settings(production)
    assert settings.feast_online_store == "redis"
    users = [r["user_id"] for r in _published(production)][:20]
    frame = online_features(settings, users)
    feature_columns = [c for c in frame.columns if c != "user_id"]
    assert len(frame) == len(users) and feature_columns
    assert frame[feature_columns].notna().all(axis=None), frame.head()
    assert production.redis.dbsize() > 1, "the claimed Redis database holds no feature rows"


def test_feedback_of_the_next_day_attributes_the_published_sends(production, nights):
    from promoflow.warehouse import Warehouse

    tis = nights["feedback"]
    assert {t: ti["state"] for t, ti in tis.items()} == {t: "success" for t in tis}
    assert _workloads(production, "worker-gpu") == GPU_TASKS  # promo_feedback has no gpu task
    with Warehouse(_settings(production)) as wh:
        outcomes = wh.query("select user_id, is_matured from analytics.fct_promo_outcomes where run_date = ?", [NIGHT])
    # every published row of the night is an exposure with an outcome window, none matured a day later
    assert sorted(u for u, _ in outcomes) == sorted(r["user_id"] for r in _published(production))
    assert not any(matured for _, matured in outcomes)
