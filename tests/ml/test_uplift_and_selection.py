"""DR-ridge uplift model, held-out policy value, Qini, selection and the off-policy gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.evaluation import expected_calibration_error, greedy_policy, incremental_policy_value, qini_by_arm
from ml.models.dr_ridge import LoggedOutcomes, UpliftConfig, UpliftModel, train_uplift_model
from ml.training import train_and_select
from tests.ml.ml_test_data import HIGH_SPEND, planted_exposures

WINDOWS = {"promo_a": 7.0, "promo_b": 7.0}


def _frame(n: int, seed: int, effect: bool = True) -> pd.DataFrame:
    frame = planted_exposures(n, seed)
    frame["window_days"] = 7
    if not effect:  # outcomes independent of the arm: nothing to learn
        rng = np.random.default_rng(seed + 1)
        converted = rng.random(n) < 0.12
        frame["converted"] = converted.astype(int)
        frame["order_margin"] = np.where(converted, rng.normal(25.0, 5.0, n), 0.0)
        frame["discount_amount"] = 0.0
    return frame


def test_uplift_model_finds_the_planted_segment_and_its_sign():
    train = _frame(6000, 0)
    model = train_uplift_model(train, ["promo_a", "promo_b"], WINDOWS, seed=1)
    score_rows = _frame(2000, 5)
    scores = model.score(score_rows)
    a, none = model.arms.index("promo_a"), model.arms.index("none")
    high = score_rows["spend_30d"].to_numpy() > HIGH_SPEND
    # Planted: promo_a lifts P(order) 0.10 -> 0.40 only above HIGH_SPEND (margin ~19 per order).
    assert scores.expected_incremental_margin[high, a].mean() > 1.0  # truth 5.7: heavily shrunk by design
    assert (
        scores.expected_incremental_margin[high, a].mean() > scores.expected_incremental_margin[~high, a].mean() + 0.5
    )
    assert (scores.decision_margin <= scores.expected_incremental_margin + 1e-12).all(), (
        "conservative score above the estimate"
    )
    assert (scores.expected_cost[:, a] >= 0).all() and (scores.expected_cost[:, none] == 0).all()


def test_uplift_model_save_load_round_trip(tmp_path):
    frame = _frame(1500, 2)
    model = train_uplift_model(frame, ["promo_a", "promo_b"], WINDOWS, seed=3, config=UpliftConfig(n_bootstrap=5))
    model.save(tmp_path / "m")
    loaded = UpliftModel.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.score(frame).decision_margin, model.score(frame).decision_margin)
    with pytest.raises(FileNotFoundError):
        UpliftModel.load(tmp_path / "missing")


def test_policy_value_is_zero_for_none_and_recovers_a_known_effect():
    frame = _frame(20000, 4)
    logged = LoggedOutcomes.from_frame(frame, ["promo_a", "promo_b"])
    arms = logged.arms
    none, a = arms.index("none"), arms.index("promo_a")
    windows = np.array([WINDOWS.get(arm, 0.0) for arm in arms])
    q = np.zeros((len(frame), len(arms)))  # no reward model: pure IPS contrast
    assert incremental_policy_value(np.full(len(frame), none), logged, windows, q).estimate == 0.0
    high = frame["spend_30d"].to_numpy() > HIGH_SPEND
    target = np.where(high, a, none)
    value = incremental_policy_value(target, logged, windows, q)
    # Truth per row: share high x (0.40 - 0.10) x E[margin | order, promo_a] (25 - 6 = 19).
    truth = high.mean() * 0.30 * 19.0
    assert abs(value.estimate - truth) < 3 * value.stderr + 0.05
    qini = qini_by_arm(np.where(high, 1.0, 0.0)[:, None] * np.eye(len(arms))[a][None, :], logged)
    assert qini["promo_a"]["qini"] > 0
    reversed_qini = qini_by_arm(np.where(high, -1.0, 0.0)[:, None] * np.eye(len(arms))[a][None, :], logged)
    assert reversed_qini["promo_a"]["qini"] < 0
    # the report's curve: 21 points up to every row, above its random line where the ranking is good
    curve, share = np.array(qini["promo_a"]["curve"]), np.array(qini["promo_a"]["curve_share"])
    assert len(curve) == 21 and share[-1] == 1.0 and (curve - share * curve[-1]).mean() > 0


def test_greedy_policy_needs_a_positive_score():
    chosen = greedy_policy(np.array([[0.0, -1.0, 0.5], [0.0, -1.0, -0.2]]), 0)
    assert chosen.tolist() == [2, 0]


def test_calibration_error_of_perfect_and_biased_probabilities():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 50000)
    y = (rng.random(50000) < p).astype(float)
    assert expected_calibration_error(p, y)["ece"] < 0.02
    assert expected_calibration_error(np.clip(p + 0.2, 0, 1), y)["ece"] > 0.1


def test_selection_publishes_a_real_effect_and_falls_back_on_noise():
    found = train_and_select(_frame(8000, 6), ["promo_a", "promo_b"], WINDOWS, seed=1, train_tf=False)
    assert found.status == "published", found.gate["message"]
    assert found.gate["passed"] and found.production != "none"
    # promo_a pays only above HIGH_SPEND: a policy that targets is chosen over promo_a for everyone
    assert found.production != "blanket:promo_b", found.gate["message"]
    # No effect at all: a one-sided 1.645-sd bound lets a lucky policy through a few nights in a hundred.
    published = []
    for seed in range(6):
        noise = train_and_select(
            _frame(6000, 100 + seed, effect=False), ["promo_a", "promo_b"], WINDOWS, seed=1, train_tf=False
        )
        published.append(noise.status == "published")
        if noise.status == "none":
            assert noise.gate["message"].startswith("fallback to 'none'")
    assert sum(published) <= 1, f"{sum(published)} of 6 pure-noise nights published a policy"


def test_an_arm_without_redemptions_in_its_rows_does_not_look_free():
    frame = _frame(3000, 6)
    b_rows = frame["promo_id"] == "promo_b"
    frame.loc[b_rows, "discount_amount"] = 0.0  # promo_b: no redemption logged (a small or unlucky arm)
    pooled = frame.loc[frame["promo_id"] != "none", "discount_amount"].mean()
    assert pooled > 0
    config = UpliftConfig(n_bootstrap=3)
    model = train_uplift_model(frame, ["promo_a", "promo_b"], WINDOWS, seed=0, config=config)
    cost = model.score(frame).expected_cost[:, model.arms.index("promo_b")]
    n_b = int(b_rows.sum())
    shrunk = config.cost_prior_rows * pooled / (n_b + config.cost_prior_rows)
    assert (cost >= config.cost_floor_share * shrunk - 1e-9).all() and cost.min() > 0
    # promo_a's own rows dominate its cost: close to its logged mean discount per send
    a_cost = model.score(frame).expected_cost[:, model.arms.index("promo_a")].mean()
    a_mean = frame.loc[frame["promo_id"] == "promo_a", "discount_amount"].mean()
    assert abs(a_cost - a_mean) < 0.1 * a_mean + 0.05


def test_uplift_model_learns_a_segment_told_by_a_categorical_feature():
    # The effect lives in one top_category level only; no numeric feature carries it.
    rng = np.random.default_rng(9)
    frame = _frame(8000, 9)
    books = frame["top_category"].to_numpy() == "books"
    arm = frame["promo_id"].to_numpy()
    converted = rng.random(len(frame)) < 0.10 + 0.30 * ((arm == "promo_b") & books)
    frame["converted"] = converted.astype(int)
    frame["order_margin"] = np.where(converted, rng.normal(25.0, 5.0, len(frame)), 0.0)
    model = train_uplift_model(frame, ["promo_a", "promo_b"], WINDOWS, seed=0, config=UpliftConfig(n_bootstrap=5))
    assert "books" in model.metadata["categorical_levels"]["top_category"]
    score_rows = _frame(2000, 10)
    b = model.arms.index("promo_b")
    estimate = model.score(score_rows).expected_incremental_margin[:, b]
    in_books = score_rows["top_category"].to_numpy() == "books"
    assert estimate[in_books].mean() > estimate[~in_books].mean() + 1.0
    drivers = model.top_drivers(score_rows, np.full(len(score_rows), b))
    assert all("top_category=books" in d for d in drivers[in_books][:20])


def test_crossfit_reward_model_never_uses_a_rows_own_outcome():
    from ml.models.dr_ridge import design_matrix
    from ml.selection import crossfit_reward_model

    frame = _frame(1000, 12)
    logged = LoggedOutcomes.from_frame(frame, ["promo_a", "promo_b"])
    x, _, _ = design_matrix(frame, ["spend_30d", "orders_30d"])
    q = crossfit_reward_model(x, logged, seed=3)
    assert q.shape == (1000, 3) and np.isfinite(q).all() and np.abs(q).sum() > 0
    changed = LoggedOutcomes(
        logged.arms, logged.arm_index, logged.margin_per_day.copy(), logged.discount, logged.propensity
    )
    changed.margin_per_day[7] += 1e4  # a huge outlier on row 7 moves every other fold's fit, not row 7's own prediction
    q_changed = crossfit_reward_model(x, changed, seed=3)
    np.testing.assert_allclose(q_changed[7], q[7])
    assert not np.allclose(q_changed, q)


def test_tf_scores_rescale_each_arms_logged_window_to_its_catalogue_window():
    """The TF model's margins are over the (censored, shorter) logged windows: per day over
    each arm's mean logged window, times the arm's catalogue window, minus the control's."""
    from types import SimpleNamespace

    from ml.training import tf_arm_scores

    # arms: promo_a (catalogue 7 days, logged 3.5 on average), promo_b (3 days, logged 2), none (logged 5)
    predictions = SimpleNamespace(
        none_index=2,
        arms=["promo_a", "promo_b", "none"],
        expected_margin=np.array([[7.0, 3.0, 5.0]]),
        expected_cost=np.array([[1.0, 0.5, 0.0]]),
    )
    windows = np.array([7.0, 3.0, 0.0])
    scores = tf_arm_scores(predictions, windows, 5.0, np.array([3.5, 2.0, 5.0]))
    # promo_a: 7 x (7/3.5 - 5/5) = 7; promo_b: 3 x (3/2 - 5/5) = 1.5
    np.testing.assert_allclose(scores.expected_incremental_margin, [[7.0, 1.5, 0.0]])
    np.testing.assert_allclose(scores.expected_cost, [[1.0, 0.5, 0.0]])
    # a model stored before censoring: arms' margins are over their catalogue windows
    old = tf_arm_scores(predictions, windows, 5.0)
    np.testing.assert_allclose(old.expected_incremental_margin, [[7.0 - 7.0, 3.0 - 3.0, 0.0]])
