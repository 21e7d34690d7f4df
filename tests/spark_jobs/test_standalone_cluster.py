"""The nightly job, unchanged, on a Spark standalone cluster gives the local run's output.

Starts a master and one worker (1 core, 1 GiB) from the pyspark distribution on
127.0.0.1 with ``spark-class``, submits ``spark_jobs/nightly.py`` with ``spark-submit``
on a tiny lake, runs the same job on local[1] on a copy of that lake, and compares
every output table row for row. Both processes are killed in a finalizer.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_spark_nightly import _build_lake, _write

from spark_jobs import nightly

pytestmark = pytest.mark.spark_cluster

REPO = Path(__file__).resolve().parents[2]
RUN_DATE = date(2024, 3, 10)
OUTPUTS = ["user_features", "user_category_features", "user_sequences", "item_features"]
DAILY = ["user_daily", "user_category_daily"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_home() -> Path:
    import pyspark

    home = Path(pyspark.__file__).resolve().parent
    if not (home / "bin" / "spark-class").exists() or not (home / "jars").is_dir():
        pytest.skip(f"{home}: the pyspark installation has no bin/spark-class or jars/ to start a cluster from")
    return home


def _env(spark_home: Path, tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(spark_home),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_LOG_DIR=str(tmp / "logs"),
        SPARK_WORKER_DIR=str(tmp / "work"),
        # driver and executors run the same interpreter (and so the same pyspark)
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        TZ="UTC",
    )
    env.pop("PYSPARK_GATEWAY_PORT", None)
    env.pop("PYSPARK_GATEWAY_SECRET", None)
    return env


def _wait_for_worker(ui_port: int, procs: list[subprocess.Popen], logs: list[Path], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc, log in zip(procs, logs):
            if proc.poll() is not None:
                pytest.fail(f"a cluster process exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as response:
                state = json.load(response)
            if state.get("aliveworkers", 0) >= 1:
                return
        except (OSError, ValueError):  # not up yet, or a page that is not the master's JSON yet
            pass
        time.sleep(1)
    pytest.fail(
        "the worker did not register with the master in time:\n" + "\n".join(log.read_text()[-2000:] for log in logs)
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request):
    """spark://127.0.0.1:port of a running master with one registered worker."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java: a Spark cluster needs Java 17")
    spark_home = _spark_home()
    tmp = tmp_path_factory.mktemp("cluster")
    env = _env(spark_home, tmp)
    port, master_ui, worker_ui = _free_port(), _free_port(), _free_port()
    spark_class = str(spark_home / "bin" / "spark-class")
    procs: list[subprocess.Popen] = []

    def stop():
        for proc in reversed(procs):  # only the processes this fixture started, by handle
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    request.addfinalizer(stop)
    logs = [tmp / "master.log", tmp / "worker.log"]
    commands = [
        [
            spark_class,
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(master_ui),
        ],
        [
            spark_class,
            "org.apache.spark.deploy.worker.Worker",
            f"spark://127.0.0.1:{port}",
            "--host",
            "127.0.0.1",
            "--cores",
            "1",
            "--memory",
            "1g",
            "--webui-port",
            str(worker_ui),
            "--work-dir",
            str(tmp / "work"),
        ],
    ]
    for command, log in zip(commands, logs):
        procs.append(subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=tmp))
        if len(procs) == 1:
            time.sleep(2)  # let the master bind before the worker dials it
    _wait_for_worker(master_ui, procs, logs)
    return {"url": f"spark://127.0.0.1:{port}", "ui_port": master_ui, "env": env, "spark_home": spark_home}


def _add_promotions(lake: Path) -> None:
    _write(
        lake / "clean" / "promotions" / "promotions.parquet",
        [dict(promo_id="p1", promo_type="percent_off", value=10.0)],
        pa.schema([("promo_id", pa.string()), ("promo_type", pa.string()), ("value", pa.float64())]),
    )


def _rows(table_dir: Path) -> list[tuple]:
    """All rows of a feature table (every partition), partition folder name added, sorted."""
    rows = []
    for path in sorted(table_dir.rglob("*.parquet")):
        partition = path.parent.name
        for r in pq.read_table(path).to_pylist():
            rows.append((partition, *[(k, r[k]) for k in sorted(r)]))
    return sorted(rows, key=repr)


def test_spark_submit_on_standalone_cluster_equals_local_run(spark, cluster, tmp_path):
    local_lake, cluster_lake = tmp_path / "local", tmp_path / "cluster"
    for lake in (local_lake, cluster_lake):
        _build_lake(lake)
        _add_promotions(lake)

    nightly.run(str(local_lake), RUN_DATE, spark_master="local[1]", shuffle_partitions=2)

    py_files = tmp_path / "spark_jobs.zip"
    with zipfile.ZipFile(py_files, "w") as zf:
        for path in sorted((REPO / "spark_jobs").glob("*.py")):
            zf.write(path, f"spark_jobs/{path.name}")
    submit = [
        str(cluster["spark_home"] / "bin" / "spark-submit"),
        "--master",
        cluster["url"],
        "--deploy-mode",
        "client",
        "--driver-memory",
        "1g",
        "--executor-memory",
        "512m",
        "--total-executor-cores",
        "1",
        "--py-files",
        str(py_files),
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        f"spark.executorEnv.PYTHONPATH={REPO}",
        "--conf",
        "spark.driver.extraJavaOptions=-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        "--conf",
        "spark.executor.extraJavaOptions=-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        str(REPO / "spark_jobs" / "nightly.py"),
        "--lake-dir",
        str(cluster_lake),
        "--run-date",
        RUN_DATE.isoformat(),
        "--shuffle-partitions",
        "2",
    ]
    started = time.monotonic()
    result = subprocess.run(submit, env=cluster["env"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"spark-submit failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    # the job ran as an application of the cluster, not on a local master of its own
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster['ui_port']}/json/", timeout=5) as response:
        apps = json.load(response)["completedapps"]
    assert len(apps) == 1, apps
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["user_features_rows"] == 3 and summary["days_computed"] == ["2024-03-05", "2024-03-08", "2024-03-09"]
    assert time.monotonic() - started < 240

    for table in OUTPUTS + DAILY:
        local_rows = _rows(local_lake / "features" / table)
        assert local_rows, table
        assert _rows(cluster_lake / "features" / table) == local_rows, table
