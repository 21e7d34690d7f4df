"""docker/docker-compose.yml against promoflow/deployment.py and promoflow/settings.py.

No Docker engine here, so the compose file is parsed, not run: every promoflow
service must carry exactly the environment ``production_environment`` gives for the
compose endpoints (the same function configures the loopback cluster test), every
variable must be a real setting (``PROMO_*`` of the settings module, ``AIRFLOW__*``
of Airflow's configuration), and the commands, hosts, volumes and database names
must agree with each other.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from promoflow.deployment import (
    COMPOSE_ENDPOINTS,
    COMPOSE_SECRETS,
    GPU_QUEUE,
    SERVICE_COMMANDS,
    production_environment,
)
from promoflow.settings import Settings

DOCKER = Path(__file__).resolve().parents[2] / "docker"
EXPECTED = production_environment(COMPOSE_ENDPOINTS, COMPOSE_SECRETS)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def _promoflow_services(compose: dict) -> dict[str, dict]:
    """Services built from the promoflow image (the x-promoflow anchor)."""
    return {name: s for name, s in compose["services"].items() if "build" in s}


def _command(service: dict) -> list[str]:
    command = service["command"]
    tokens = shlex.split(command) if isinstance(command, str) else list(command)
    if tokens[:2] == ["bash", "-c"]:
        tokens = shlex.split(tokens[2])
    # the Spark services find spark-class in the pyspark package: keep its name
    return [Path(t).name if t.endswith("/bin/spark-class") else t for t in tokens]


def _contains(tokens: list[str], expected: list[str]) -> bool:
    return any(tokens[i : i + len(expected)] == expected for i in range(len(tokens) - len(expected) + 1))


def _resolved(env: dict[str, str]) -> dict[str, str]:
    """The environment with ``${NAME:?...}`` references given placeholder values, as docker compose would."""
    return {k: re.sub(r"\$\{([A-Z_]+)[^}]*\}", lambda m: f"<{m.group(1)}>", str(v)) for k, v in env.items()}


def test_every_promoflow_service_has_the_production_environment(compose):
    services = _promoflow_services(compose)
    assert set(SERVICE_COMMANDS) <= set(services), sorted(set(SERVICE_COMMANDS) - set(services))
    for name, service in services.items():
        env = {k: str(v) for k, v in service["environment"].items()}
        assert env == EXPECTED, (
            name,
            {
                k: (env.get(k), EXPECTED.get(k))
                for k in set(env) ^ set(EXPECTED) | {k for k in set(env) & set(EXPECTED) if env[k] != EXPECTED[k]}
            },
        )


def test_every_variable_is_a_setting_or_an_airflow_option():
    from airflow.configuration import conf

    options = {section: set(spec.get("options", {})) for section, spec in conf.configuration_description.items()}
    settings_names = {f"PROMO_{name.upper()}" for name in Settings.__dataclass_fields__}
    for key in EXPECTED:
        if key.startswith("PROMO_"):
            assert key in settings_names, f"{key} is not a setting of promoflow/settings.py"
        elif key.startswith("AIRFLOW__"):
            section, option = key[len("AIRFLOW__") :].lower().split("__", 1)
            assert option in options.get(section, ()), (
                f"{key}: Airflow (with its providers) has no option [{section}] {option}"
            )
        else:
            assert key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), key


def test_the_settings_module_reads_the_production_topology(tmp_path):
    settings = Settings.from_env(env={**_resolved(EXPECTED), "PROMO_DATA_DIR": str(tmp_path)})
    assert settings.warehouse_kind == "postgres"
    assert settings.feast_online_store == "redis"
    assert settings.spark_master == "spark://spark-master:7077"
    for uri in (settings.raw_uri, settings.export_uri, settings.model_store_uri):
        assert uri.startswith("s3://promoflow/"), uri
    assert settings.s3_endpoint_url == "http://minio:9000"
    assert settings.user_key_secret == "<PROMO_USER_KEY_SECRET>"  # from the secret, not a generated local file
    from promoflow.feature_store import repo_config

    online = repo_config(settings).online_store
    assert (online.type, online.connection_string) == ("redis", "redis:6379,db=0")


def test_commands_hosts_and_databases_agree(compose):
    services = compose["services"]
    for name, expected in SERVICE_COMMANDS.items():
        assert _contains(_command(services[name]), expected), (name, _command(services[name]), expected)
    assert _contains(_command(services["worker-gpu"]), ["--queues", GPU_QUEUE])
    assert services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    master = urlparse(EXPECTED["PROMO_SPARK_MASTER"])
    assert _contains(_command(services["spark-master"]), ["--host", master.hostname, "--port", str(master.port)])
    assert _contains(_command(services["spark-worker"]), [EXPECTED["PROMO_SPARK_MASTER"]])

    # every host a URL names is a service; the api-server publishes the port its base URL names
    for key in (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "PROMO_WAREHOUSE_URL",
        "AIRFLOW__CELERY__BROKER_URL",
        "PROMO_S3_ENDPOINT_URL",
        "AIRFLOW__API__BASE_URL",
        "PROMO_SPARK_MASTER",
    ):
        assert urlparse(EXPECTED[key]).hostname in services, key
    assert EXPECTED["PROMO_REDIS_URL"].split(":")[0] in services
    api = urlparse(EXPECTED["AIRFLOW__API__BASE_URL"])
    assert f"{api.port}:{api.port}" in services["airflow-apiserver"]["ports"]

    # the metadata DB is the postgres image's own database; the warehouse is created by postgres-init.sql
    airflow_db = urlparse(EXPECTED["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    pg_env = services["postgres"]["environment"]
    assert (pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"]) == (
        airflow_db.username,
        airflow_db.password,
        airflow_db.path.lstrip("/"),
    )
    warehouse = urlparse(EXPECTED["PROMO_WAREHOUSE_URL"])
    init_sql = (DOCKER / "postgres-init.sql").read_text().lower()
    assert f"create user {warehouse.username} with password '{warehouse.password}'" in init_sql
    assert f"create database {warehouse.path.lstrip('/')} owner {warehouse.username}" in init_sql

    # the lake is one volume every promoflow service mounts at PROMO_LAKE_DIR
    for name, service in _promoflow_services(compose).items():
        assert f"lake:{EXPECTED['PROMO_LAKE_DIR']}" in service["volumes"], name


def test_the_init_service_creates_the_gpu_pool_the_trainings_run_in(compose):
    from promoflow.deployment import GPU_POOL_COMMAND

    command = " ".join(_command(compose["services"]["airflow-init"]))
    assert "airflow db migrate" in command and " ".join(GPU_POOL_COMMAND[:5]) in command
