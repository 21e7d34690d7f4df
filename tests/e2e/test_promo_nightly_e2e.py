"""The whole promo_nightly DAG on tiny generated data, through Airflow's dag.test().

One module-scoped night (generate -> ingest -> Spark -> dbt -> Feast -> TF -> assign
-> publish), then the checks the data contract promises, a re-run of the same date,
and a failing later night that must leave the published night untouched.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from nights import load_dag, night_env, published_rows, restored_environ, run_night

from promoflow.warehouse import PROMO_ASSIGNMENTS_COLUMNS

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

N_USERS, N_DAYS, START = 300, 8, date(2026, 10, 1)
RUN_DATE = date(2026, 10, 9)
BUDGET = 400.0  # its 10% exploration reserve must afford the cheapest offer's expected cost per explorer


def _published_rows(settings, run_date):
    return [
        dict(zip(PROMO_ASSIGNMENTS_COLUMNS, row))
        for row in published_rows({"PROMO_DATA_DIR": settings.data_dir}, run_date)
    ]


@pytest.fixture(scope="module")
def night(tmp_path_factory, airflow_db):
    from demo.simulator import generate
    from promoflow.settings import Settings

    base = tmp_path_factory.mktemp("e2e")
    generate(base / "raw", base / "truth", n_users=N_USERS, n_days=N_DAYS, start_date=START, seed=11)
    env = night_env(base, secret="e2e-secret", budget=99999)  # the run's budget param below must win
    conf = {"budget": BUDGET}
    with restored_environ(env):
        dag = load_dag()
        first_state = run_night(dag, RUN_DATE, env, conf)
        yield {
            "dag": dag,
            "env": env,
            "conf": conf,
            "settings": Settings.from_env(env=env, overrides=conf),
            "first_state": first_state,
            "base": base,
        }


def test_night_succeeds_and_writes_one_row_per_user(night):
    assert night["first_state"] == "success"
    rows = _published_rows(night["settings"], RUN_DATE)
    assert len(rows) == N_USERS
    assert len({r["user_id"] for r in rows}) == N_USERS


def test_assignments_respect_budget_catalogue_and_contract(night):
    import pyarrow.parquet as pq

    rows = _published_rows(night["settings"], RUN_DATE)
    catalogue = set(
        pq.read_table(night["base"] / "raw" / "promotions" / "promotions.parquet").column("promo_id").to_pylist()
    )
    assert sum(r["expected_cost"] for r in rows) <= BUDGET + 1e-9
    assert {r["promo_id"] for r in rows} <= catalogue | {"none"}
    explorers = [r for r in rows if r["is_exploration"]]
    assert explorers, "epsilon-greedy exploration (default 5%) drew nobody"
    assert all(not r["is_holdout"] for r in explorers)
    assert all(r["propensity"] < 1 for r in explorers), "an exploration draw always has probability < 1"
    for r in rows:
        assert 0 < r["propensity"] <= 1
        assert r["user_key"] and r["user_key"] != r["user_id"]
        if r["promo_id"] == "none":
            assert r["channel"] is None and r["message"] is None and r["expected_cost"] == 0
        else:
            assert r["channel"] in {"email", "push", "sms", "in_app"} and r["message"]
            assert 0 <= r["send_hour"] <= 23
        if r["is_holdout"]:
            assert r["promo_id"] == "none"


def test_nobody_is_sent_the_offer_they_still_hold(night):
    """The landing's own exposures say who holds which live offer at the run date (latest offer,
    window still open); none of them is sent that offer again, by the policy or exploration."""
    import json

    import pandas as pd

    base = night["base"] / "raw"
    exposures = pd.read_parquet(base / "exposures")
    valid_days = pd.read_parquet(base / "promotions" / "promotions.parquet").set_index("promo_id")["valid_days"]
    offers = exposures[exposures["promo_id"] != "none"].sort_values("sent_ts")
    latest = offers.groupby("user_id").tail(1).set_index("user_id")
    ends = latest["sent_ts"] + pd.to_timedelta(latest["promo_id"].map(valid_days).astype(float), unit="D")
    held = latest["promo_id"][ends > pd.Timestamp(RUN_DATE.isoformat(), tz="UTC")]
    assert len(held) > 20, "the history should leave users holding live offers"
    rows = _published_rows(night["settings"], RUN_DATE)
    assert not [r["user_id"] for r in rows if r["promo_id"] != "none" and held.get(r["user_id"]) == r["promo_id"]]
    # a policy offer to a holder of another offer replaces it, and says so; the summary counts both
    replacing = [r for r in rows if r["promo_id"] != "none" and r["user_id"] in held.index and not r["is_exploration"]]
    assert all(f"replaces {held[r['user_id']]}, live until" in r["reason"] for r in replacing)
    summary = json.loads(
        (Path(night["settings"].data_dir) / "runs" / f"run_date={RUN_DATE.isoformat()}" / "summary.json").read_text()
    )["assign"]
    assert summary["live_offer_holders"] == int(held.index.isin([r["user_id"] for r in rows]).sum())
    offered = {r["user_id"] for r in rows if r["promo_id"] != "none"}
    assert summary["offers_replacing_a_live_offer"] == len(offered & set(held.index))


def test_offers_feature_items_from_the_source_the_night_chose(night):
    """train_recommender stored a version with its card; the summary says which source the
    featured items came from, and every offer features items (of its category when limited)."""
    import json

    from ml.model_store import list_model_versions

    rows = _published_rows(night["settings"], RUN_DATE)
    offers = [r for r in rows if r["promo_id"] != "none"]
    assert offers, "the night sent no offer"
    items = (
        pq.read_table(night["base"] / "raw" / "items" / "items.parquet").to_pandas().set_index("item_id")["category"]
    )
    promos = (
        pq.read_table(night["base"] / "raw" / "promotions" / "promotions.parquet")
        .to_pandas()
        .set_index("promo_id")["category"]
    )
    for r in offers:
        featured = r["featured_item_ids"].split(",")
        assert 1 <= len(featured) <= 3 and set(featured) <= set(items.index)
        if promos[r["promo_id"]] is not None:
            assert set(items[featured]) == {promos[r["promo_id"]]}
    for r in rows:
        if r["promo_id"] == "none":
            assert r["featured_item_ids"] is None

    summary = json.loads(
        (Path(night["settings"].data_dir) / "runs" / f"run_date={RUN_DATE.isoformat()}" / "summary.json").read_text()
    )
    recommender = summary["recommender"]
    version = recommender["recommender_version"]
    assert version in list_model_versions(night["settings"].model_store_uri, model_name="recommender")
    assert recommender["featured_items_source"] in {"recommender", "category_rule"}
    assert recommender["selection"]["recommender"] == recommender["recall"]["model"]["recall_at_10"]
    assert summary["assign"]["featured_items"]["source"] == recommender["featured_items_source"]
    card = (Path(night["settings"].model_store_uri) / "recommender" / version / "model_card.md").read_text()
    assert f"**Featured items source: {recommender['featured_items_source']}**" in card
    assert "training examples/s" in card and ("| device | CPU |" in card or "| device | GPU" in card)


def test_marketing_export_has_parquet_and_csv_without_raw_ids(night):
    folder = Path(night["settings"].export_uri) / "promo_assignments" / f"run_date={RUN_DATE.isoformat()}"
    exported = pq.read_table(folder / "promo_assignments.parquet")
    assert "user_id" not in exported.column_names
    assert exported.num_rows == N_USERS
    header = (folder / "promo_assignments.csv").read_text().splitlines()[0]
    assert "user_id" not in header.replace("user_key", "")
    assert (folder / "_SUCCESS").exists()


def test_rerunning_the_date_gives_identical_rows(night):
    before = _published_rows(night["settings"], RUN_DATE)
    assert run_night(night["dag"], RUN_DATE, night["env"], night["conf"]) == "success"
    assert _published_rows(night["settings"], RUN_DATE) == before


def test_failed_later_night_leaves_published_night_untouched(night):
    before = _published_rows(night["settings"], RUN_DATE)
    export = (
        Path(night["settings"].export_uri)
        / "promo_assignments"
        / f"run_date={RUN_DATE.isoformat()}"
        / "promo_assignments.parquet"
    )
    export_bytes = export.read_bytes()
    # no events landed for 2026-10-09
    assert run_night(night["dag"], date(2026, 10, 10), night["env"], night["conf"]) == "failed"
    assert _published_rows(night["settings"], RUN_DATE) == before
    assert export.read_bytes() == export_bytes
    from promoflow.warehouse import Warehouse

    with Warehouse(night["settings"]) as wh:
        assert wh.query("select count(*) from promo_assignments where run_date = ?", [date(2026, 10, 10)])[0][0] == 0
