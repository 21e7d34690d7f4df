"""The two-tower recommender: beats popularity where users have a category preference,
respects category limits, builds point-in-time sequences, trains reproducibly, and
round-trips through the model store."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from ml_test_data import category_preference_shop

from ml.model_card import render_model_card
from ml.model_store import latest_model_version, list_model_versions
from ml.recommender import (
    MODEL_CARD_FILE,
    Recommender,
    RecommenderConfig,
    _sequences_at_day_starts,
    choose_featured_source,
    featured_items,
    last_item_sequences,
    load_recommender_version,
    paired_recall_difference,
    save_recommender_version,
    top_k_items,
    train_recommender,
)

CONFIG = RecommenderConfig(batch_size=128)


@pytest.fixture(scope="module")
def shop() -> dict:
    return category_preference_shop(seed=0)


@pytest.fixture(scope="module")
def sequences(shop) -> pd.DataFrame:
    return last_item_sequences(shop["interactions"], shop["as_of"])


@pytest.fixture(scope="module")
def trained(shop, sequences) -> tuple[Recommender, dict]:
    return train_recommender(
        shop["interactions"],
        shop["user_features"],
        sequences,
        shop["items"],
        shop["as_of"],
        seed=3,
        epochs=5,
        deterministic=True,
        config=CONFIG,
    )


def test_beats_popularity_on_the_held_out_day(trained):
    _, metrics = trained
    assert metrics["holdout_window"] == {"start": "2026-03-10", "end_exclusive": "2026-03-11"}
    assert metrics["training_window"]["end_exclusive"] == "2026-03-10"
    assert metrics["n_users_evaluated"] > 150
    model, popularity = metrics["model"], metrics["popularity"]
    # Knowing the user's category puts most of their next items in 10 slots; the global
    # top 10 covers only the commonest categories' items.
    assert model["recall_at_10"] > popularity["recall_at_10"] + 0.15
    assert model["recall_at_50"] >= popularity["recall_at_50"]
    assert 0.0 <= metrics["factorized_top_k_at_10"] <= metrics["factorized_top_k_at_50"] <= 1.0
    assert metrics["examples_per_second"] > 0
    assert metrics["device"] == "CPU" or metrics["device"].startswith("GPU")
    assert metrics["seed"] == 3 and metrics["strategy"]


def test_recommends_the_users_preferred_category(trained, shop, sequences):
    model, _ = trained
    users = sorted(shop["preferred_category"])[:50]
    category_of = dict(zip(shop["items"]["item_id"], shop["items"]["category"]))
    top = top_k_items(model, users, shop["user_features"], sequences, k=5)
    share = np.mean(
        [category_of[item] == shop["preferred_category"][user] for user, items in zip(users, top) for item in items]
    )
    assert share > 0.8


def test_category_limit_features_only_that_category(trained, shop, sequences):
    model, _ = trained
    users = sorted(shop["preferred_category"])[:40]
    category_of = dict(zip(shop["items"]["item_id"], shop["items"]["category"]))
    limited = top_k_items(model, users, shop["user_features"], sequences, k=5, category="cat4")
    assert all(len(items) == 5 and {category_of[i] for i in items} == {"cat4"} for items in limited)

    per_user = ["cat1", None, "no-such-category"] + [None] * (len(users) - 3)
    mixed = top_k_items(model, users, shop["user_features"], sequences, k=12, category=per_user)
    assert len(mixed[0]) == 10 and {category_of[i] for i in mixed[0]} == {"cat1"}  # cat1 has 10 items: fewer than k
    assert len(mixed[1]) == 12 and len({category_of[i] for i in mixed[1]}) >= 1
    assert mixed[2] == []
    # featured_items: the assign step's comma-separated format, same ranking.
    assert featured_items(model, users[:3], shop["user_features"], sequences, ["cat1", None, None], k=3)[0] == ",".join(
        mixed[0][:3]
    )


def test_unknown_users_and_missing_features_still_score(trained, shop):
    model, _ = trained
    top = top_k_items(model, ["nobody", "u0000"], None, None, k=4)
    assert [len(items) for items in top] == [4, 4]


def test_last_item_sequences_uses_only_earlier_events_in_time_order():
    ts = pd.Timestamp("2026-05-01", tz="UTC")
    events = pd.DataFrame(
        [
            ("e1", "u1", "a", ts + pd.Timedelta(hours=1), "view"),
            ("e5", "u1", "c", ts + pd.Timedelta(hours=3), "purchase"),
            ("e2", "u1", "b", ts + pd.Timedelta(hours=2), "click"),
            ("e3", "u1", "d", ts + pd.Timedelta(hours=2), "view"),  # same time as e2: event_id order
            ("e5", "u1", "c", ts + pd.Timedelta(hours=3), "purchase"),  # redelivered duplicate
            ("e6", "u1", None, ts + pd.Timedelta(hours=4), "search"),
            ("e7", "u1", "x", pd.Timestamp("2026-05-02", tz="UTC"), "view"),  # exactly at as_of: excluded
            ("e8", "u2", "y", pd.Timestamp("2026-05-03", tz="UTC"), "view"),  # after as_of
            ("e9", "u3", "z", pd.Timestamp("2026-04-30 23:59:59", tz="UTC"), "view"),
        ],
        columns=["event_id", "user_id", "item_id", "event_ts", "event_type"],
    )
    result = last_item_sequences(events, dt.date(2026, 5, 2), length=3)
    assert result.to_dict("records") == [
        {"user_id": "u1", "last_item_ids": "b,d,c"},
        {"user_id": "u3", "last_item_ids": "z"},
    ]
    full = last_item_sequences(events, "2026-05-02")
    assert full.loc[full["user_id"] == "u1", "last_item_ids"].item() == "a,b,d,c"


def test_training_sequences_are_point_in_time_per_day():
    events = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u2"],
            "item_id": ["a", "b", "c", "a"],
            "event_ts": pd.to_datetime(
                ["2026-05-01 10:00", "2026-05-02 09:00", "2026-05-02 11:00", "2026-05-02 08:00"], utc=True
            ),
            "event_type": "view",
        }
    )
    queries = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u2", "u9"],
            "day": pd.to_datetime(["2026-05-01", "2026-05-02", "2026-05-03", "2026-05-03", "2026-05-03"], utc=True),
        }
    )
    codes = _sequences_at_day_starts(events, queries, {"a": 0, "b": 1, "c": 2}, length=3)
    # code = item index + 1, padding 0 first: nothing before 05-01; [a] before 05-02; [a, b, c] before 05-03.
    assert codes.tolist() == [[0, 0, 0], [0, 0, 1], [1, 2, 3], [0, 0, 1], [0, 0, 0]]


def test_same_seed_same_embeddings(shop, sequences, trained):
    model, _ = trained
    again, _ = train_recommender(
        shop["interactions"],
        shop["user_features"],
        sequences,
        shop["items"],
        shop["as_of"],
        seed=3,
        epochs=5,
        deterministic=True,
        config=CONFIG,
    )
    np.testing.assert_allclose(again.item_embeddings, model.item_embeddings, atol=1e-6)
    users = ["u0001", "u0002", "u0003"]
    np.testing.assert_allclose(
        again.user_embeddings(users, shop["user_features"], sequences),
        model.user_embeddings(users, shop["user_features"], sequences),
        atol=1e-6,
    )


def test_round_trip_through_the_model_store(trained, shop, sequences, tmp_path):
    model, metrics = trained
    store = tmp_path / "store"
    version = save_recommender_version(model, str(store), shop["as_of"], "abc123def456789")
    assert version == "2026-03-11-abc123def456"
    assert latest_model_version(str(store), model_name="recommender") == version
    assert list_model_versions(str(store)) == []  # the response model's versions are separate
    loaded = load_recommender_version(str(store), None, tmp_path / "cache")
    users = sorted(shop["preferred_category"])
    assert top_k_items(loaded, users, shop["user_features"], sequences, k=10) == top_k_items(
        model, users, shop["user_features"], sequences, k=10
    )
    assert top_k_items(loaded, users[:5], shop["user_features"], sequences, k=3, category="cat2") == top_k_items(
        model, users[:5], shop["user_features"], sequences, k=3, category="cat2"
    )
    card = (tmp_path / "cache" / "recommender" / version / MODEL_CARD_FILE).read_text()
    assert f"{metrics['model']['recall_at_10']:.4f}" in card and f"{metrics['popularity']['recall_at_10']:.4f}" in card
    assert (
        json.loads((tmp_path / "cache" / "recommender" / version / "recommender.json").read_text())["metrics"]["seed"]
        == 3
    )


def test_model_card_renders_both_sections():
    metrics = {
        "as_of": "2026-10-31",
        "training_window": {"start": "2026-08-01", "end_exclusive": "2026-10-30"},
        "holdout_window": {"start": "2026-10-30", "end_exclusive": "2026-10-31"},
        "n_users_train": 100,
        "n_items": 40,
        "n_training_pairs": 2000,
        "n_users_evaluated": 50,
        "model": {"recall_at_10": 0.31, "recall_at_50": 0.7},
        "popularity": {"recall_at_10": 0.12, "recall_at_50": 0.5},
        "examples_per_second": 12345.6,
        "device": "CPU",
        "strategy": "_DefaultDistributionStrategy",
        "seed": 7,
    }
    card = render_model_card(metrics, {"rows": 8000, "validation_auc": {"promo_a": 0.71}})
    assert "| recall_at_10 | 0.3100 | 0.1200 | +0.1900 |" in card
    assert "| recall_at_50 | 0.7000 | 0.5000 | +0.2000 |" in card
    assert "12,345.6" in card and "2026-10-30 .. 2026-10-31" in card
    assert "## Promo response model" in card and "| validation_auc.promo_a | 0.7100 |" in card
    assert "Not part of this card" in render_model_card(metrics)


def test_where_the_model_only_ties_the_category_rule_the_rule_stays(trained):
    """The synthetic shop has one popularity order per category: top-category popularity is
    near optimal there, so the nightly choice must keep the rule."""
    _, metrics = trained
    versus = metrics["versus_category_popularity"]
    assert versus["recall_at_10_difference"] == pytest.approx(
        metrics["model"]["recall_at_10"] - metrics["category_popularity"]["recall_at_10"]
    )
    assert versus["recall_at_10_difference_stderr"] > 0
    choice = choose_featured_source(metrics)
    assert choice["source"] == "category_rule", choice["reason"]
    assert (
        choice["recommender"] == metrics["model"]["recall_at_10"]
        and choice["category_rule"] == metrics["category_popularity"]["recall_at_10"]
    )


def _metrics_with(difference: float | None, stderr: float | None) -> dict:
    versus = (
        {} if difference is None else {"recall_at_10_difference": difference, "recall_at_10_difference_stderr": stderr}
    )
    return {
        "model": {"recall_at_10": 0.4},
        "category_popularity": {"recall_at_10": 0.4 - (difference or 0.0)},
        "popularity": {"recall_at_10": 0.2},
        "versus_category_popularity": versus,
        "n_users_evaluated": 500,
    }


def test_recommender_is_chosen_only_when_it_beats_the_rule_by_enough_standard_errors():
    assert choose_featured_source(_metrics_with(0.05, 0.01))["source"] == "recommender"
    assert choose_featured_source(_metrics_with(0.005, 0.01))["source"] == "category_rule"  # +0.5 se: noise
    assert choose_featured_source(_metrics_with(-0.05, 0.01))["source"] == "category_rule"
    assert choose_featured_source(_metrics_with(0.005, 0.01), min_z=0.4)["source"] == "recommender"
    nothing = choose_featured_source(_metrics_with(None, None))
    assert nothing["source"] == "category_rule" and "no held-out evaluation" in nothing["reason"]


def test_paired_recall_difference_by_hand():
    held = [{"a", "b"}, {"c"}, {"d", "e"}]
    model = [["a", "x"], ["c"], ["x", "y"]]  # per-user recall@1: 0.5, 1, 0
    baseline = [["x", "a"], ["x"], ["d"]]  # 0, 0, 0.5
    got = paired_recall_difference(model, baseline, held, ks=(1,))
    differences = np.array([0.5, 1.0, -0.5])
    assert got["recall_at_1_difference"] == pytest.approx(differences.mean())
    assert got["recall_at_1_difference_stderr"] == pytest.approx(differences.std(ddof=1) / np.sqrt(3))


def test_model_card_states_the_featured_items_source():
    metrics = {
        "as_of": "2026-10-31",
        "model": {"recall_at_10": 0.42},
        "popularity": {"recall_at_10": 0.24},
        "category_popularity": {"recall_at_10": 0.39},
        "n_users_evaluated": 500,
        "versus_category_popularity": {"recall_at_10_difference": 0.03, "recall_at_10_difference_stderr": 0.01},
    }
    metrics["selection"] = choose_featured_source(metrics)
    card = render_model_card(metrics)
    assert "recall@10 +0.0300 ± 0.0100" in card
    assert "**Featured items source: recommender**" in card and "by 3.0 se" in card


def test_the_gpu_path_mirrored_strategy_and_mixed_precision_trains(monkeypatch):
    """What a gpu-queue worker runs (MirroredStrategy + mixed_float16 + LossScaleOptimizer),
    forced here on the CPU: it trains, scores in float32 and records the choice."""
    import tensorflow as tf
    import tf_keras as keras

    from ml import recommender

    monkeypatch.setattr(recommender, "choose_strategy", lambda: (tf.distribute.MirroredStrategy(["/cpu:0"]), True))
    small = category_preference_shop(n_users=60, n_items=24, n_days=4, events_per_user=8, seed=2)
    model, metrics = train_recommender(
        small["interactions"],
        small["user_features"],
        None,
        small["items"],
        small["as_of"],
        seed=1,
        epochs=1,
        config=RecommenderConfig(batch_size=64),
    )
    assert metrics["mixed_precision"] is True and metrics["strategy"] == "MirroredStrategy"
    assert np.isfinite(metrics["final_train_loss"])
    assert model.item_embeddings.dtype == np.float32 and np.isfinite(model.item_embeddings).all()
    assert keras.mixed_precision.global_policy().name == "float32"  # the policy is put back after training
    assert len(top_k_items(model, ["u0000"], small["user_features"], None, k=5)[0]) == 5


def test_past_the_cap_the_most_recent_training_pairs_are_kept_in_their_order():
    from ml.recommender import most_recent_pairs, training_pairs

    rng = np.random.default_rng(0)
    n = 3000
    events = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in rng.integers(0, 200, n)],
            "item_id": [f"i{i}" for i in rng.integers(0, 50, n)],
            "event_type": "view",
            "event_ts": pd.Timestamp("2026-10-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 20 * 86400, n), unit="s"),
        }
    )
    pairs = training_pairs(events, pd.Timestamp("2026-10-01", tz="UTC"), pd.Timestamp("2026-10-21", tz="UTC"))
    assert most_recent_pairs(pairs, len(pairs)) is pairs
    kept = most_recent_pairs(pairs, 1000)
    assert len(kept) == 1000
    # every pair newer than the oldest kept day is kept; nothing older than it is
    oldest = kept["day"].min()
    assert (pairs["day"] > oldest).sum() <= 1000 and kept["day"].gt(oldest).sum() == (pairs["day"] > oldest).sum()
    assert kept.equals(kept.sort_values(["user_id", "day", "item_id"]).reset_index(drop=True))
    assert most_recent_pairs(pairs, 1000).equals(kept)  # the same pairs on a re-run
