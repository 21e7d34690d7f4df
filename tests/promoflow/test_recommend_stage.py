"""The nightly recommender stage on demo shops: it picks the recommender where item choice is
collaborative and keeps the category rule where category x price decides; assign's scoring
keeps an offer's category limit."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from demo import simulator
from promoflow import recommend
from promoflow.settings import Settings

N_USERS, N_DAYS = 2500, 21  # measured: recommender +3.1 se on the collaborative shop, -3.3 se on the category one


def _night(base: Path, item_shape: str):
    """A demo shop whose clean lake is the landing zone itself (the stage reads only clean events and items)."""
    summary = simulator.generate(
        base / "raw", base / "truth", n_users=N_USERS, n_days=N_DAYS, seed=3, item_shape=item_shape
    )
    clean = base / "data" / "lake" / "clean"
    clean.mkdir(parents=True)
    shutil.copytree(
        base / "raw" / "events", clean / "events"
    )  # duplicates included: the model drops repeated event_ids
    shutil.copytree(base / "raw" / "items", clean / "items")
    settings = Settings.from_env(
        env={"PROMO_DATA_DIR": str(base / "data"), "PROMO_RAW_URI": str(base / "raw"), "PROMO_TRAINING_SEED": "7"}
    )
    return settings, summary.run_date


@pytest.fixture(scope="module")
def collaborative(tmp_path_factory):
    settings, run_date = _night(tmp_path_factory.mktemp("collaborative"), "collaborative")
    return settings, run_date, recommend.train(settings, run_date)


def test_collaborative_shop_chooses_the_recommender_and_stores_its_card(collaborative):
    settings, run_date, trained = collaborative
    assert trained["featured_items_source"] == "recommender", trained["reason"]
    assert (
        trained["recall"]["model"]["recall_at_10"]
        > trained["recall"]["category_popularity"]["recall_at_10"]
        > trained["recall"]["popularity"]["recall_at_10"]
    )
    assert trained["device"] == "CPU" or trained["device"].startswith("GPU")
    assert (
        trained["examples_per_second"] > 0 and trained["user_features_as_of"] is None
    )  # no Spark features in this lake
    version = trained["recommender_version"]
    assert version.startswith(run_date.isoformat())
    card = (Path(settings.model_store_uri) / "recommender" / version / "model_card.md").read_text()
    assert "**Featured items source: recommender**" in card and "paired over the same users" in card


def test_assign_scoring_features_recommended_items_within_the_offer_category(collaborative):
    settings, run_date, trained = collaborative
    items = (
        pq.read_table(Path(settings.lake_dir) / "clean" / "items" / "items.parquet")
        .to_pandas()
        .set_index("item_id")["category"]
    )
    user_ids = np.array([f"u{i:06d}" for i in range(40)], dtype=object)
    is_offer = np.arange(40) % 4 != 0
    categories = np.array([None, "beauty", None, "electronics"] * 10, dtype=object)
    featured = recommend.featured_for_offers(settings, run_date, trained, user_ids, is_offer, categories, 3)
    assert all(f is None for f in featured[~is_offer])
    for f, category in zip(featured[is_offer], categories[is_offer]):
        ids = f.split(",")
        assert len(ids) == 3 and len(set(ids)) == 3 and set(ids) <= set(items.index)
        if category is not None:
            assert set(items[ids]) == {category}
    # users differ: the ranking is personal, not one list for everyone
    assert len({f for f, c in zip(featured[is_offer], categories[is_offer]) if c is None}) > 5
    rule_night = {**trained, "featured_items_source": "category_rule"}
    assert recommend.featured_for_offers(settings, run_date, rule_night, user_ids, is_offer, categories, 3) is None


def test_category_shop_keeps_the_rule(tmp_path):
    settings, run_date = _night(tmp_path, "category")
    trained = recommend.train(settings, run_date)
    assert trained["featured_items_source"] == "category_rule", trained["reason"]
    assert trained["versus_category_popularity"]["recall_at_10_difference"] < 0
    assert trained["recommender_version"]  # stored all the same, with the reason in its card


def test_a_lake_without_item_events_keeps_the_rule(tmp_path):
    settings = Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path / "data")})
    from datetime import date

    trained = recommend.train(settings, date(2026, 10, 31))
    assert trained["recommender_version"] is None and trained["featured_items_source"] == "category_rule"
    assert (
        recommend.featured_for_offers(settings, date(2026, 10, 31), trained, ["u1"], np.array([True]), [None], 3)
        is None
    )


def test_build_features_keeps_every_user_on_the_day_the_recommender_holds_out():
    """A first night's past dates hold only the exposed users' user_features, except the day the
    recommender holds out: it reads every user's features as of that day."""
    from ml.recommender import RecommenderConfig
    from promoflow import stages

    assert RecommenderConfig().holdout_days == stages.RECOMMENDER_HOLDOUT_DAYS
