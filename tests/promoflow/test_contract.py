"""The contract module and the feature column's four declarations agree, without running Spark or dbt.

A user feature is declared in the model's feature spec, the Feast feature view, Spark's output
schema and the dbt ``user_features`` contract; these tests catch a column added to one of them.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from demo.simulator import RAW_SCHEMAS
from ml.feature_spec import CATEGORICAL_FEATURES, ID_COLUMNS, NUMERIC_FEATURES
from promoflow import api, contract, ingest, publish, warehouse
from spark_jobs.user_features import USER_FEATURES_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
# dbt contract type -> the Feast and Spark types a column of it may have
DBT_TO_FEAST = {"integer": {"Int32", "Int64"}, "bigint": {"Int64"}, "double precision": {"Float64"}, "text": {"String"}}
DBT_TO_SPARK = {
    "integer": {"int"},
    "bigint": {"bigint"},
    "double precision": {"double"},
    "text": {"string"},
    "date": {"date"},
}


@pytest.fixture(scope="module")
def dbt_user_features() -> dict[str, str]:
    spec = yaml.safe_load((ROOT / "dbt_project/models/marts/user_features.yml").read_text())
    (model,) = [m for m in spec["models"] if m["name"] == "user_features"]
    assert model["config"]["contract"]["enforced"] is True
    return {c["name"]: c["data_type"] for c in model["columns"]}


@pytest.fixture(scope="module")
def feast_user_fields() -> dict[str, str]:
    sys.path.insert(0, str(ROOT / "feature_repo"))
    try:
        features = importlib.import_module("features")
    finally:
        sys.path.remove(str(ROOT / "feature_repo"))
    return {f.name: str(f.dtype) for f in features.USER_BEHAVIOUR_FIELDS}


def test_the_feature_spec_is_served_by_feast(feast_user_fields):
    missing = [c for c in NUMERIC_FEATURES + CATEGORICAL_FEATURES if c not in feast_user_fields]
    assert not missing, f"in ml.feature_spec but not a Feast user_behaviour field: {missing}"
    assert all(feast_user_fields[c] == "String" for c in CATEGORICAL_FEATURES)
    assert all(feast_user_fields[c] in {"Int64", "Float64"} for c in NUMERIC_FEATURES)


def test_feast_serves_exactly_the_dbt_user_features_contract(feast_user_fields, dbt_user_features):
    keys = {*ID_COLUMNS, "event_timestamp"}
    assert set(feast_user_fields) == set(dbt_user_features) - keys
    wrong = {
        c: (t, dbt_user_features[c])
        for c, t in feast_user_fields.items()
        if t not in DBT_TO_FEAST[dbt_user_features[c]]
    }
    assert not wrong, f"Feast type vs dbt contract type: {wrong}"


def test_spark_writes_every_dbt_user_features_column_with_its_type(dbt_user_features):
    spark = {f.name: f.dataType.simpleString() for f in USER_FEATURES_SCHEMA}
    derived_in_dbt = {"event_timestamp", "segment"}  # as_of at 00:00 UTC; joined from user_segments
    missing = [c for c in dbt_user_features if c not in spark and c not in derived_in_dbt]
    assert not missing, f"in the dbt contract but not in spark_jobs' USER_FEATURES_SCHEMA: {missing}"
    wrong = {c: (spark[c], t) for c, t in dbt_user_features.items() if c in spark and spark[c] not in DBT_TO_SPARK[t]}
    assert not wrong, f"Spark type vs dbt contract type: {wrong}"


def test_the_landing_schemas_ingest_and_the_demo_use_are_the_contract():
    assert RAW_SCHEMAS is contract.RAW_TABLES
    assert set(ingest.TABLES) == set(contract.RAW_TABLES) == {*contract.SNAPSHOT_TABLES, *contract.DAILY_TABLES}
    for name, spec in ingest.TABLES.items():
        assert list(spec.columns) == contract.RAW_TABLES[name].names
        assert set(spec.required_not_null) | set(spec.tolerated_nulls) == set(contract.required_columns(name))
        assert set(spec.key) <= set(spec.required_not_null), name
    assert ingest.TABLES["users"].tolerated_nulls == ("region", "device")


def test_the_published_tables_and_the_export_are_the_contract():
    assert list(warehouse.PROMO_ASSIGNMENTS_COLUMNS) == contract.PROMO_ASSIGNMENTS.names
    assert list(warehouse.PROMO_RUNS_COLUMNS) == contract.PROMO_RUNS.names
    assert "user_id" not in publish.EXPORT_COLUMNS and "user_id" not in api.ASSIGNMENT_FIELDS
    assert (
        list(publish.EXPORT_COLUMNS)
        == api.ASSIGNMENT_FIELDS
        == [c for c in contract.PROMO_ASSIGNMENTS.names if c != "user_id"]
    )
    assert warehouse.PROMO_ASSIGNMENTS_COLUMNS["send_hour"] == "integer"
    assert warehouse.PROMO_RUNS_COLUMNS["users"] == "bigint"
    with pytest.raises(TypeError, match="no warehouse type"):
        contract.warehouse_type(pa.list_(pa.string()))


def test_the_contract_module_is_a_leaf():
    source = (ROOT / "promoflow/contract.py").read_text()
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["from __future__ import annotations", "import pyarrow as pa"]


def test_the_product_never_imports_the_demo_or_the_benchmarks():
    import ast

    offenders = []
    for package in ("promoflow", "ml", "spark_jobs", "dags", "feature_repo"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                offenders += [
                    f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in {"demo", "benchmarks"}
                ]
    assert not offenders
