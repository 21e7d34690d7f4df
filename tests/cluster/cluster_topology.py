"""The production topology on 127.0.0.1, for one test session (fixtures registered in conftest.py).

``production`` starts, on free loopback ports: a moto S3 server holding the landing
zone, the export and the model store; a Spark standalone master and worker
(``spark-class`` from the pyspark package); Airflow with the CeleryExecutor
(``airflow db migrate``, api-server, scheduler, dag-processor, one Celery worker on
the ``default`` queue and one on ``gpu`` only), all with the environment of
:func:`promoflow.deployment.production_environment`. Postgres and Redis are the
machine's servers: the fixture creates two fresh databases (Airflow metadata,
warehouse) and claims an empty Redis database (Celery broker and Feast online
store), and drops / flushes them afterwards. Every process starts in its own
process group; teardown ends each group and any descendant that left it, also
when a test fails.

Outside CI the tests skip (with the reason) when Java, Postgres or Redis is
missing; under ``CI=true`` they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from promoflow.deployment import GPU_POOL_COMMAND, SERVICE_COMMANDS, Endpoints, production_environment

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_HOST, PG_PORT, PG_USER = (
    "127.0.0.1",
    int(os.environ.get("PROMO_PG_PORT", "5432")),
    os.environ.get("PROMO_PG_USER", "postgres"),
)
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_CLAIM_KEY = "promoflow:cluster-test:claim"


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " -- CI=true requires it")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ processes
@dataclass
class Processes:
    """Every process the fixture started (each the leader of its own group), with its log."""

    root: Path
    started: dict[str, subprocess.Popen] = field(default_factory=dict)
    peak_rss_bytes: int = 0
    _sampling: bool = True

    def start(self, name: str, command: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
        log = (self.root / "logs" / f"{name}.log").open("w")
        proc = subprocess.Popen(
            command, env=env, cwd=cwd or self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started[name] = proc
        return proc

    def log(self, name: str, tail: int = 4000) -> str:
        path = self.root / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def check_alive(self) -> None:
        for name, proc in self.started.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}:\n{self.log(name)}")

    def _tree(self):
        import psutil

        procs = []
        for proc in self.started.values():
            try:
                leader = psutil.Process(proc.pid)
                procs += [leader, *leader.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return procs

    def sample_memory(self, every_s: float = 1.0) -> None:
        """Peak RSS of all started processes and their descendants together (a background thread)."""
        import psutil

        def loop():
            while self._sampling:
                total = 0
                for p in self._tree():
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak_rss_bytes = max(self.peak_rss_bytes, total)
                time.sleep(every_s)

        threading.Thread(target=loop, daemon=True).start()

    def stop_all(self) -> None:
        """SIGTERM each group (newest first), SIGKILL what is left, then any descendant that escaped its group."""
        import psutil

        self._sampling = False
        descendants = self._tree()
        for proc in reversed(list(self.started.values())):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        for proc in reversed(list(self.started.values())):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group: task runners and JVMs the leader forked
            except ProcessLookupError:
                pass
            proc.wait()
        for p in descendants:  # only processes this fixture's processes started
            try:
                p.kill()
            except psutil.Error:
                pass


def _processes_with(environment_entry: str) -> list[int]:
    """PIDs of live processes whose environment holds ``environment_entry``."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if environment_entry.encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def _no_leftovers(marker: str) -> None:
    """After teardown no process of this topology may be alive (a daemon that left every group): kill and fail."""
    leftovers = [pid for pid in _processes_with(marker) if pid != os.getpid()]
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not leftovers, f"processes of the topology outlived its teardown (now killed): {leftovers}"


# ------------------------------------------------------------------ the machine's servers
def _postgres_databases(names: list[str]):
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        con = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="test", connect_timeout=3)
    except psycopg2.OperationalError as error:
        _unavailable(f"PostgreSQL unreachable at {PG_HOST}:{PG_PORT} (db test, user {PG_USER}): {error}".strip())
    con.autocommit = True
    with con.cursor() as cur:
        for name in names:
            cur.execute(f"create database {name}")
    return con


def _drop_databases(con, names: list[str]) -> None:
    with con.cursor() as cur:
        for name in names:
            cur.execute(f"drop database if exists {name} with (force)")
    con.close()


def _claim_redis_db():
    """An empty Redis database (1-15), claimed with a key so parallel sessions pick others."""
    import redis

    token = uuid.uuid4().hex
    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=3).ping()
    except redis.exceptions.ConnectionError as error:
        _unavailable(f"Redis unreachable at {REDIS_HOST}:{REDIS_PORT}: {error}")
    for db in range(1, 16):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)
        if client.set(REDIS_CLAIM_KEY, token, nx=True, ex=6 * 3600):
            if client.dbsize() == 1:
                return client, db
            client.delete(REDIS_CLAIM_KEY)
    pytest.fail(f"no empty Redis database among 1-15 at {REDIS_HOST}:{REDIS_PORT} to claim for the cluster test")


# ------------------------------------------------------------------ HTTP
def http_json(url: str, method: str = "GET", body: dict | None = None, token: str | None = None, timeout: float = 30):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def wait_until(what: str, probe, procs: Processes, timeout_s: float, every_s: float = 1.0):
    """Call ``probe`` until it returns a truthy value; fail naming ``what`` (and any dead process) at the deadline."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        procs.check_alive()
        try:
            value = probe()
            if value:
                return value
        except (OSError, ValueError, KeyError) as error:  # not up yet
            last_error = error
        time.sleep(every_s)
    logs = "\n".join(f"--- {name}\n{procs.log(name, 1500)}" for name in procs.started)
    pytest.fail(f"{what}: not within {timeout_s:.0f} s (last error: {last_error!r})\n{logs}")


# ------------------------------------------------------------------ the topology
@dataclass
class Production:
    env: dict[str, str]
    api: str
    token: str
    spark_ui: str
    s3_endpoint: str
    bucket: str
    warehouse_url: str
    redis: object  # redis.Redis client on the claimed database
    procs: Processes
    root: Path
    bring_up_s: float


def _spark_home() -> Path:
    import pyspark

    home = Path(pyspark.__file__).resolve().parent
    if not (home / "bin" / "spark-class").exists():
        pytest.skip(f"{home}: the pyspark installation has no bin/spark-class to start a cluster from")
    return home


def _upload_tree(s3, bucket: str, local: Path, prefix: str) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(local).as_posix()}")


@pytest.fixture(scope="session")
def production(tmp_path_factory, request):
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        _unavailable("no Java: the Spark cluster needs Java 17")
    started = time.monotonic()
    root = tmp_path_factory.mktemp("production")
    (root / "logs").mkdir()
    suffix = uuid.uuid4().hex[:10]
    airflow_db, warehouse_db = f"promoflow_airflow_{suffix}", f"promoflow_warehouse_{suffix}"
    pg = _postgres_databases([airflow_db, warehouse_db])
    request.addfinalizer(lambda: _drop_databases(pg, [airflow_db, warehouse_db]))
    redis_client, redis_db = _claim_redis_db()
    request.addfinalizer(redis_client.flushdb)
    procs = Processes(root)
    marker = f"PROMO_CLUSTER_SESSION={suffix}"  # in every started process's environment, inherited by descendants
    request.addfinalizer(lambda: _no_leftovers(marker))  # runs after stop_all (finalizers run last-in, first-out)
    request.addfinalizer(procs.stop_all)
    procs.sample_memory()

    spark_home = _spark_home()
    ports = {
        name: free_port() for name in ("moto", "spark", "spark_ui", "spark_worker_ui", "api", "log_cpu", "log_gpu")
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PROMO_", "PYSPARK_", "AWS_"))}
    base.update(
        PROMO_CLUSTER_SESSION=suffix,
        PATH=f"{BIN}{os.pathsep}{base.get('PATH', '')}",
        TZ="UTC",
        SPARK_HOME=str(spark_home),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_LOG_DIR=str(root / "spark-logs"),
        SPARK_WORKER_DIR=str(root / "spark-work"),
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(root / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(root / "no-aws-credentials"),
    )

    # --- S3 (moto server): landing zone, export, model store
    procs.start("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(ports["moto"])], base)
    s3_endpoint = f"http://127.0.0.1:{ports['moto']}"

    # --- Spark standalone master + worker
    spark_class = str(spark_home / "bin" / "spark-class")
    procs.start(
        "spark-master",
        [
            spark_class,
            *SERVICE_COMMANDS["spark-master"][1:],
            "--host",
            "127.0.0.1",
            "--port",
            str(ports["spark"]),
            "--webui-port",
            str(ports["spark_ui"]),
        ],
        base,
    )
    spark_ui = f"http://127.0.0.1:{ports['spark_ui']}"
    wait_until("Spark master UI", lambda: http_json(f"{spark_ui}/json/", timeout=2), procs, 60)
    procs.start(
        "spark-worker",
        [
            spark_class,
            *SERVICE_COMMANDS["spark-worker"][1:],
            f"spark://127.0.0.1:{ports['spark']}",
            "--host",
            "127.0.0.1",
            "--cores",
            "1",
            "--memory",
            "1g",
            "--webui-port",
            str(ports["spark_worker_ui"]),
            "--work-dir",
            str(root / "spark-work"),
        ],
        base,
    )

    # --- Airflow with the production environment on loopback endpoints
    api = f"http://127.0.0.1:{ports['api']}"
    bucket = f"promoflow-{suffix}"
    endpoints = Endpoints(
        airflow_db_url=f"{PG_USER}@{PG_HOST}:{PG_PORT}/{airflow_db}",
        warehouse_db_url=f"{PG_USER}@{PG_HOST}:{PG_PORT}/{warehouse_db}",
        redis=f"{REDIS_HOST}:{REDIS_PORT}",
        celery_redis_db=redis_db,
        feast_redis_db=redis_db,
        spark_master=f"127.0.0.1:{ports['spark']}",
        s3_endpoint_url=s3_endpoint,
        bucket=bucket,
        lake_dir=str(root / "lake"),
        api_base_url=api,
    )
    secrets = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PROMO_USER_KEY_SECRET": f"cluster-{suffix}",
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
    }
    env = {
        **base,
        **production_environment(endpoints, secrets),
        # what differs from docker/ on one machine: local folders, ports, and no cron runs
        # (the test triggers its dates through the REST API)
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "PROMO_HOME": str(REPO),
        "PROMO_DATA_DIR": str(root / "data"),
        "PROMO_TASK_RETRIES": "0",
        "PROMO_SPARK_SHUFFLE_PARTITIONS": "2",
        "TF_USE_LEGACY_KERAS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "GX_ANALYTICS_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
    }
    airflow = str(BIN / "airflow")
    migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    pool = subprocess.run([airflow, *GPU_POOL_COMMAND[1:]], env=env, capture_output=True, text=True, timeout=300)
    assert pool.returncode == 0, pool.stdout[-3000:] + pool.stderr[-3000:]

    procs.start(
        "airflow-apiserver",
        [
            airflow,
            *SERVICE_COMMANDS["airflow-apiserver"][1:],
            "--host",
            "127.0.0.1",
            "--port",
            str(ports["api"]),
            "--workers",
            "1",
        ],
        env,
    )
    procs.start("airflow-scheduler", [airflow, *SERVICE_COMMANDS["airflow-scheduler"][1:]], env)
    procs.start("airflow-dag-processor", [airflow, *SERVICE_COMMANDS["airflow-dag-processor"][1:]], env)
    for name, port in (("worker-cpu", ports["log_cpu"]), ("worker-gpu", ports["log_gpu"])):
        procs.start(
            name,
            [airflow, *SERVICE_COMMANDS[name][1:], "--celery-hostname", f"{name}@{suffix}"],
            {**env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(port)},
        )

    wait_until(
        "Spark worker registered",
        lambda: http_json(f"{spark_ui}/json/", timeout=2).get("aliveworkers", 0) >= 1,
        procs,
        90,
    )
    wait_until("api-server health", lambda: http_json(f"{api}/api/v2/monitor/health", timeout=5), procs, 120)
    passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    password = json.loads(passwords.read_text())["promoflow"]
    token = http_json(f"{api}/auth/token", "POST", {"username": "promoflow", "password": password})["access_token"]
    # the execution API's first request is slow (3-6 s): take it before a task's heartbeat does
    wait_until(
        "execution API", lambda: urllib.request.urlopen(f"{api}/execution/health", timeout=30).status == 200, procs, 60
    )

    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    wait_until("moto S3", lambda: s3.list_buckets() is not None, procs, 30)
    s3.create_bucket(Bucket=bucket)

    return Production(
        env=env,
        api=api,
        token=token,
        spark_ui=spark_ui,
        s3_endpoint=s3_endpoint,
        bucket=bucket,
        warehouse_url=env["PROMO_WAREHOUSE_URL"],
        redis=redis_client,
        procs=procs,
        root=root,
        bring_up_s=time.monotonic() - started,
    )


@pytest.fixture(scope="session")
def s3(production):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=production.s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture(scope="session")
def upload_landing(production, s3):
    def upload(local: Path) -> None:
        _upload_tree(s3, production.bucket, local, "landing")

    return upload
