"""One settings module: environment first, run params on top, production values are settings."""

from __future__ import annotations

import pytest

from promoflow.settings import Settings


def test_embedded_defaults_live_under_the_data_dir(tmp_path):
    s = Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path)})
    assert s.warehouse_url == f"duckdb://{tmp_path}/warehouse/promoflow.duckdb"
    assert s.duckdb_path == f"{tmp_path}/warehouse/promoflow.duckdb"
    assert s.raw_uri == f"{tmp_path}/demo/raw" and s.export_uri == f"{tmp_path}/export"
    assert s.spark_master == "local[*]" and s.feast_online_store == "sqlite"


def test_user_key_secret_is_generated_once_outside_the_repo(tmp_path):
    first = Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path)}).user_key_secret
    assert len(first) == 64
    assert Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path)}).user_key_secret == first
    assert (tmp_path / ".user_key_secret").read_text() == first


def test_contract_variables_and_production_values(tmp_path):
    env = {
        "PROMO_DATA_DIR": str(tmp_path),
        "PROMO_RAW_URI": "s3://shop/landing",
        "PROMO_WAREHOUSE_URL": "postgresql://etl@db.internal:5432/dwh",
        "PROMO_EXPORT_URI": "s3://shop/export",
        "PROMO_BUDGET": "25000",
        "PROMO_FEAST_ONLINE_STORE": "redis",
        "PROMO_SPARK_MASTER": "spark://spark:7077",
    }
    s = Settings.from_env(env=env)
    assert (s.raw_uri, s.export_uri, s.budget) == ("s3://shop/landing", "s3://shop/export", 25000.0)
    assert s.warehouse_kind == "postgres"
    assert (s.feast_online_store, s.spark_master) == ("redis", "spark://spark:7077")


def test_run_params_override_and_are_typed(tmp_path):
    s = Settings.from_env(
        overrides={"budget": "500", "raw_uri": "/landing", "export_uri": None}, env={"PROMO_DATA_DIR": str(tmp_path)}
    )
    assert s.budget == 500.0 and s.raw_uri == "/landing" and s.export_uri == f"{tmp_path}/export"
    with pytest.raises(KeyError, match="unknown setting 'budjet'"):
        s.with_overrides({"budjet": 1})


def test_unsupported_warehouse_scheme_names_the_fix(tmp_path):
    s = Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path), "PROMO_WAREHOUSE_URL": "mysql://x"})
    with pytest.raises(ValueError, match=r"use duckdb:///path/file\.duckdb or postgresql://"):
        _ = s.warehouse_kind


@pytest.mark.parametrize(
    "overrides, rule",
    [
        ({"budget": -5}, "budget .* = -5.0: must be >= 0"),
        ({"holdout_share": 1}, "holdout_share .* must be < 1"),
        ({"exploration_budget_share": 1.5}, "exploration_budget_share .* must be <= 1"),
        ({"message_language": "fr"}, "message_language .* must be one of en, zh"),
        ({"feast_online_store": "memcached"}, "feast_online_store .* must be one of sqlite, redis"),
        ({"warehouse_url": "mysql://x"}, "warehouse_url .* must match"),
    ],
)
def test_validate_names_the_setting_its_rule_and_the_fix(tmp_path, overrides, rule):
    s = Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path)}, overrides=overrides)
    with pytest.raises(ValueError, match=rule) as error:
        s.validate()
    assert "nothing was run" in str(error.value) and "PROMO_" in str(error.value)


def test_defaults_and_environment_values_within_bounds_validate(tmp_path):
    env = {"PROMO_DATA_DIR": str(tmp_path), "PROMO_BUDGET": "0", "PROMO_SPARK_MASTER": "spark://spark:7077"}
    assert Settings.from_env(env=env).validate().budget == 0.0
    with pytest.raises(ValueError, match=r"spark_shuffle_partitions .* must be >= 1"):
        Settings.from_env(env={**env, "PROMO_SPARK_SHUFFLE_PARTITIONS": "0"}).validate()


def test_cli_run_refuses_bad_params_before_starting_airflow(tmp_path, monkeypatch, capsys):
    from promoflow import cli

    monkeypatch.setenv("PROMO_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(cli, "run_night", lambda *a: pytest.fail("airflow must not start on bad params"))
    assert cli.main(["run", "--date", "2026-10-09", "--conf", '{"budget": -5}']) == 2
    err = capsys.readouterr().err
    assert "not started" in err and "budget" in err and "must be >= 0" in err
    assert cli.main(["run", "--date", "2026-10-09", "--conf", '{"budjet": 5}']) == 2
    assert "unknown setting 'budjet'" in capsys.readouterr().err
