"""The scheduler's view of dags/: imports cleanly, parses fast, wires the stages in order."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
HEAVY = ("tensorflow", "pyspark", "feast", "great_expectations", "pandas", "dbt", "duckdb", "promoflow.ingest", "ml")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    # Airflow 3.3: examples are governed by AIRFLOW__CORE__LOAD_EXAMPLES (False in tests/conftest.py)
    return DagBag(dag_folder=str(DAGS))


def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "promo_nightly" in dagbag.dag_ids


def test_promo_nightly_runs_the_stages_in_order(dagbag):
    dag = dagbag.dags["promo_nightly"]  # get_dag() would ask the metadata DB
    chain = [
        "ingest_validate",
        "build_features",
        "load_warehouse",
        "dbt_staging",
        "dbt_intermediate",
        "dbt_marts",
        "feature_store",
        "train_model",
        "assign",
        "publish",
    ]
    for upstream, downstream in zip(chain, chain[1:]):
        assert downstream in dag.get_task(upstream).downstream_task_ids, f"{upstream} -> {downstream}"
    assert dag.get_task("train_model").queue == "gpu"
    # the recommender trains beside the response model, on the gpu queue, and feeds assign
    assert "train_recommender" in dag.get_task("feature_store").downstream_task_ids
    assert {"assign", "summarise"} <= dag.get_task("train_recommender").downstream_task_ids
    assert dag.get_task("train_recommender").queue == "gpu"
    assert set(dag.params.keys()) >= {"raw_uri", "warehouse_url", "export_uri", "budget"}


def test_dag_file_parses_in_under_two_seconds_without_heavy_imports():
    # A fresh interpreter: what the scheduler pays for each parse of the file.
    code = (
        "import sys, time, importlib.util\n"
        "import airflow.sdk\n"
        f"spec = importlib.util.spec_from_file_location('promo_nightly', r'{DAGS / 'promo_nightly.py'}')\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "t = time.perf_counter(); spec.loader.exec_module(module); elapsed = time.perf_counter() - t\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r})\n"
        "print(elapsed); print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    elapsed, heavy = float(out[0]), out[1]
    assert elapsed < 2.0, f"dags/promo_nightly.py took {elapsed:.2f}s to parse"
    assert heavy == "", f"heavy modules imported at DAG parse time: {heavy}"


def test_promo_feedback_attributes_after_loading(dagbag):
    dag = dagbag.dags["promo_feedback"]
    chain = ["ingest_validate", "load_warehouse", "dbt_attribution", "summarise"]
    for upstream, downstream in zip(chain, chain[1:]):
        assert downstream in dag.get_task(upstream).downstream_task_ids, f"{upstream} -> {downstream}"


@pytest.mark.parametrize("dag_id", ["promo_nightly", "promo_feedback"])
def test_every_param_has_a_title_type_and_description_for_the_trigger_form(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.owner == "data-engineering" and "promoflow" in dag.tags
    for name in dag.params:
        schema = dag.params.get_param(name).schema
        assert schema.get("title") and schema.get("type") and dag.params.get_param(name).description, name


def test_trigger_form_rejects_out_of_bounds_params_before_any_task(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    params = dagbag.dags["promo_nightly"].params
    for bad in ({"budget": -5}, {"holdout_share": 1.0}, {"exploration_rate": 2}, {"message_language": "fr"}):
        with pytest.raises(ParamValidationError):
            copy.deepcopy(params).update(bad)
    ok = copy.deepcopy(params)
    ok.update({"budget": 500, "message_language": "zh"})
    assert ok.validate()["budget"] == 500


def test_every_nightly_task_says_what_it_reads_writes_and_how_to_rerun(dagbag):
    for task in dagbag.dags["promo_nightly"].tasks:
        doc = (task.doc_md or "").lower()
        assert "reads" in doc and "writes" in doc and "re-run" in doc, task.task_id
    assert dagbag.dags["promo_nightly"].get_task("train_model").pool == "gpu"
