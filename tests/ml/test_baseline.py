"""The numpy T-learner baseline: same predict interface, learns the planted effect."""

from __future__ import annotations

import numpy as np
import pytest

from ml.baseline import train_baseline
from ml_test_data import HIGH_SPEND, PLANTED_ARMS, planted_exposures


def test_baseline_learns_the_planted_effect_with_the_shared_interface(planted_training):
    model = train_baseline(planted_training, PLANTED_ARMS)
    users = planted_exposures(2000, seed=42)
    predictions = model.predict(users)
    assert predictions.arms == ["promo_a", "promo_b", "none"]
    assert predictions.p_order.shape == (2000, 3)
    a, none = 0, model.none_index
    spend = users["spend_30d"].to_numpy()
    lift = predictions.p_order[:, a] - predictions.p_order[:, none]
    assert lift[spend > 2 * HIGH_SPEND].mean() > lift[spend < 0.5 * HIGH_SPEND].mean() + 0.15
    assert predictions.discount_if_order[0, a] == pytest.approx(6.0)
    assert model.training_metrics["validation_auc"]["promo_a"] > 0.65
    assert np.all(predictions.expected_incremental_margin[:, none] == 0)


def test_arm_never_logged_falls_back_to_pooled_rates(planted_training):
    model = train_baseline(planted_training, PLANTED_ARMS + ["promo_new"])
    predictions = model.predict(planted_training.head(10))
    new = model.arms.index("promo_new")
    assert np.allclose(predictions.p_order[:, new], predictions.p_order[0, new])
    assert 0.05 < predictions.p_order[0, new] < 0.4
