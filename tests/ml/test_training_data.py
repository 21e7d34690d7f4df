"""Training-frame preparation: IPS weights, arm encoding, time-ordered split, AUC."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ml_test_data import planted_exposures

from ml.feature_spec import NUMERIC_FEATURES, numeric_matrix
from ml.training_data import ips_weights, normalise_arms, prepare_training, roc_auc, time_ordered_split


def test_ips_weights_are_inverse_propensity_normalised_to_mean_one():
    weights = ips_weights(np.array([0.5, 0.25, 0.5, 0.25]), n_arms=3)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[1] / weights[0] == pytest.approx(2.0)


def test_unknown_propensity_is_uniform_over_arms():
    weights = ips_weights(pd.Series([None, 0.25, np.nan]), n_arms=4)
    np.testing.assert_allclose(weights, [1.0, 1.0, 1.0])


def test_ips_weights_are_clipped_before_normalising():
    weights = ips_weights(np.array([0.001, 0.5, 0.5, 0.5]), n_arms=3, max_weight=20.0)
    assert weights[0] / weights[1] == pytest.approx(10.0)  # 1000 clipped to 20, vs 2
    assert weights.mean() == pytest.approx(1.0)


def test_propensity_outside_unit_interval_is_an_error():
    with pytest.raises(ValueError, match="propensity"):
        ips_weights(np.array([0.5, 0.0]), n_arms=2)
    with pytest.raises(ValueError, match="propensity"):
        ips_weights(np.array([1.5]), n_arms=2)


def test_arms_get_none_appended_and_duplicates_rejected():
    assert normalise_arms(["a", "b"]) == ["a", "b", "none"]
    assert normalise_arms(["none", "a"]) == ["none", "a"]
    with pytest.raises(ValueError, match="duplicated"):
        normalise_arms(["a", "a"])


def test_prepare_sorts_by_send_time_and_encodes_the_logged_arm():
    frame = planted_exposures(50, seed=3).sample(frac=1.0, random_state=0)
    prepared = prepare_training(frame, ["promo_a", "promo_b"])
    assert prepared.features["sent_ts"].is_monotonic_increasing
    arms = np.array(prepared.arms)
    assert (arms[prepared.arm_index] == prepared.features["promo_id"].to_numpy()).all()
    assert prepared.weight.mean() == pytest.approx(1.0, rel=1e-6)
    # money only on converted rows
    assert (prepared.order_margin[prepared.converted == 0] == 0).all()


def test_prepare_names_missing_columns():
    frame = planted_exposures(20, seed=3).drop(columns=["propensity", "tenure_days"])
    with pytest.raises(ValueError, match="tenure_days"):
        prepare_training(frame, ["promo_a"])
    with pytest.raises(ValueError, match="propensity"):
        prepare_training(planted_exposures(20, seed=3).drop(columns=["propensity"]), ["promo_a"])


def test_null_numeric_features_are_reported_by_column():
    frame = planted_exposures(20, seed=3)
    frame.loc[3, "orders_7d"] = None
    with pytest.raises(ValueError, match="orders_7d"):
        numeric_matrix(frame, NUMERIC_FEATURES)


def test_time_split_keeps_the_latest_rows_for_validation():
    train, validation = time_ordered_split(10, 0.2)
    assert train.tolist() == list(range(8)) and validation.tolist() == [8, 9]
    train, validation = time_ordered_split(1, 0.2)
    assert train.tolist() == [0] and validation.size == 0


def test_auc():
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert roc_auc(np.array([1, 1]), np.array([0.1, 0.2])) is None
