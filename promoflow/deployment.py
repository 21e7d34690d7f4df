"""The scaled-out deployment's environment and process commands, in one place.

``docker/docker-compose.yml`` and the loopback cluster test (``tests/cluster/``) both
come from here: :func:`production_environment` gives every Airflow and promoflow
variable of the topology (CeleryExecutor with a ``gpu`` queue, Postgres as metadata
DB and warehouse, Redis as Celery broker and Feast online store, a Spark standalone
cluster, S3 behind the landing zone, export and model store) for given endpoints,
and :data:`SERVICE_COMMANDS` the command each process runs. The compose file names
container hosts and ``${...}`` secrets; the test names 127.0.0.1 ports and fresh
databases; ``tests/cluster/test_docker_compose.py`` checks the compose file against
this module and the settings module.
"""

from __future__ import annotations

from dataclasses import dataclass

# The queue train_model runs on (dags/promo_nightly.py); every other task uses the default.
DEFAULT_QUEUE = "default"
GPU_QUEUE = "gpu"

# train_model and train_recommender also run in this pool (one training at a time); it must exist.
GPU_POOL_COMMAND = ["airflow", "pools", "set", "gpu", "1", "gpu trainings, one at a time"]

# What each long-running process of the topology runs (the compose service names).
SERVICE_COMMANDS: dict[str, list[str]] = {
    "airflow-apiserver": ["airflow", "api-server"],
    "airflow-scheduler": ["airflow", "scheduler"],
    "airflow-dag-processor": ["airflow", "dag-processor"],
    "worker-cpu": ["airflow", "celery", "worker", "--queues", DEFAULT_QUEUE, "--concurrency", "1"],
    # one training at a time per GPU
    "worker-gpu": ["airflow", "celery", "worker", "--queues", GPU_QUEUE, "--concurrency", "1"],
    "spark-master": ["spark-class", "org.apache.spark.deploy.master.Master"],
    "spark-worker": ["spark-class", "org.apache.spark.deploy.worker.Worker"],
}


@dataclass(frozen=True)
class Endpoints:
    """Where the topology's services listen and what they are called."""

    airflow_db_url: str  # user:password@host:port/db of the Airflow metadata DB (no scheme)
    warehouse_db_url: str  # user:password@host:port/db of the warehouse (no scheme)
    redis: str  # host:port
    celery_redis_db: int  # Redis database of the Celery broker
    feast_redis_db: int  # Redis database of the Feast online store
    spark_master: str  # host:port of the Spark standalone master
    s3_endpoint_url: str  # http://host:port of MinIO / moto; empty = AWS
    bucket: str  # holds landing/, export/ and models/
    lake_dir: str  # a filesystem every Spark executor and Airflow worker sees
    api_base_url: str  # the URL the Airflow api-server is served at (workers call its /execution/)


def production_environment(endpoints: Endpoints, secrets: dict[str, str]) -> dict[str, str]:
    """Every environment variable of every Airflow and promoflow process of the topology.

    ``secrets`` holds ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``PROMO_USER_KEY_SECRET`` and ``AIRFLOW__API_AUTH__JWT_SECRET`` (values, or
    ``${...}`` references in the compose file); it must not add other names.
    """
    expected = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PROMO_USER_KEY_SECRET", "AIRFLOW__API_AUTH__JWT_SECRET"}
    if set(secrets) != expected:
        raise ValueError(f"secrets must name exactly {sorted(expected)}; got {sorted(secrets)}")
    e = endpoints
    return {
        # --- Airflow: CeleryExecutor, metadata DB on Postgres, Redis broker
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{e.airflow_db_url}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{e.redis}/{e.celery_redis_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{e.airflow_db_url}",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": DEFAULT_QUEUE,
        # task runners call the api-server's execution API at this URL (else localhost:8080)
        "AIRFLOW__API__BASE_URL": e.api_base_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{e.api_base_url.rstrip('/')}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "promoflow:admin",
        # --- promoflow settings (promoflow/settings.py)
        "PROMO_RAW_URI": f"s3://{e.bucket}/landing",
        "PROMO_EXPORT_URI": f"s3://{e.bucket}/export",
        "PROMO_MODEL_STORE_URI": f"s3://{e.bucket}/models",
        "PROMO_S3_ENDPOINT_URL": e.s3_endpoint_url,
        "PROMO_WAREHOUSE_URL": f"postgresql://{e.warehouse_db_url}",
        "PROMO_FEAST_ONLINE_STORE": "redis",
        "PROMO_REDIS_URL": f"{e.redis},db={e.feast_redis_db}",
        "PROMO_SPARK_MASTER": f"spark://{e.spark_master}",
        "PROMO_LAKE_DIR": e.lake_dir,
        **secrets,
    }


# docker/docker-compose.yml: service names as hosts, secrets from docker/.env (never committed).
COMPOSE_ENDPOINTS = Endpoints(
    airflow_db_url="airflow:airflow@postgres:5432/airflow",
    warehouse_db_url="promoflow:promoflow@postgres:5432/warehouse",
    redis="redis:6379",
    celery_redis_db=1,
    feast_redis_db=0,
    spark_master="spark-master:7077",
    s3_endpoint_url="http://minio:9000",
    bucket="promoflow",
    lake_dir="/lake",
    api_base_url="http://airflow-apiserver:8080",
)
COMPOSE_SECRETS = {
    "AWS_ACCESS_KEY_ID": "${MINIO_ROOT_USER:?set in .env}",
    "AWS_SECRET_ACCESS_KEY": "${MINIO_ROOT_PASSWORD:?set in .env}",
    "PROMO_USER_KEY_SECRET": "${PROMO_USER_KEY_SECRET:?set in .env}",
    "AIRFLOW__API_AUTH__JWT_SECRET": "${AIRFLOW_JWT_SECRET:?set in .env}",
}
