"""``boosted_response``: P(order in the window | user, arm) by bagged gradient-boosted trees.

The pooled logistic model (:mod:`ml.models.pooled_response`) lets an arm's effect vary with the
user only linearly, through its mechanic x feature interactions. Here one LightGBM classifier
sees the user's features, the log window and the arm's mechanics together (a single model for
every arm, an S-learner: arms still share strength through what they are) and finds thresholds
and interactions itself. Its basket and control-rate terms are the pooled model's, so the two
value an offer the same way.

Uplift is the difference of two predictions of one noisy classifier, and an allocation over many
users x arms picks its largest errors. So the classifier is refitted on ``bags`` bootstrap
resamples of the rows: the mean of the members' incremental margins is the estimate, their
spread its standard error, and the decision score is ``mean - penalty x sd`` (the setting
``PROMO_UNCERTAINTY_PENALTY``, as for ``dr_ridge``): an offer goes where its gain stands out of
the model's own noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.models.pooled_response import CostModel, PooledResponse, _lightgbm_classifier

BAGS = 10


class BoostedResponse(PooledResponse):
    """A :class:`PooledResponse` whose P(order) is a tree ensemble on (log window, user, mechanics)."""

    kind = "boosted_response"

    def _baseline_logit(self, u: np.ndarray, log_window: np.ndarray) -> np.ndarray:
        return np.zeros(len(u))  # the trees model the untreated odds themselves

    def _logistic_design(self, u, base_logit, log_window, mechanics):
        return np.hstack([log_window[:, None], u, mechanics])


def _member(pooled: PooledResponse, classifier) -> BoostedResponse:
    model = BoostedResponse(
        arms=pooled.arms,
        design=pooled.design,
        baseline=None,
        logistic=classifier,
        basket=pooled.basket,
        basket_cap=pooled.basket_cap,
        catalogue=pooled.catalogue,
        basket_fallback=pooled.basket_fallback,
        interactions=False,
    )
    model.control_window = pooled.control_window
    return model


@dataclass
class BaggedBoostedResponse:
    members: list[BoostedResponse]
    penalty: float

    @property
    def arms(self) -> list[str]:
        return self.members[0].arms

    def scores(
        self, features: pd.DataFrame, arm_window: np.ndarray, cost_model: CostModel, send_cost: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """([n, arms] decision score ``mean - penalty x sd``, [n, arms] mean incremental margin); 0 for none."""
        draws = np.stack([m.incremental(features, arm_window, cost_model, send_cost)[0] for m in self.members])
        mean = draws.mean(axis=0)
        sd = draws.std(axis=0, ddof=1) if len(draws) > 1 else np.zeros_like(mean)
        return mean - self.penalty * sd, mean


def fit_boosted_response(
    features: pd.DataFrame,
    pooled: PooledResponse,
    arm_index: np.ndarray,
    converted: np.ndarray,
    window_days: np.ndarray,
    *,
    penalty: float,
    bags: int = BAGS,
    seed: int = 0,
) -> BaggedBoostedResponse:
    """Fit on the logged rows ``pooled`` was fitted on (its design, catalogue, basket and control window)."""
    arm_index = np.asarray(arm_index, dtype=np.int64)
    u = pooled.design(features)
    log_window = np.log(np.maximum(np.asarray(window_days, dtype=np.float64), 1e-3))
    x = _member(pooled, None).logged_design(features, u, arm_index, log_window)
    y = (np.asarray(converted) > 0).astype(int)
    rng = np.random.default_rng(seed)
    members = []
    for b in range(bags):
        rows = rng.integers(0, len(y), len(y)) if bags > 1 else np.arange(len(y))
        if y[rows].min(initial=1) == y[rows].max(initial=0):
            raise ValueError("boosted_response: a bootstrap resample holds one outcome class only")
        members.append(_member(pooled, _lightgbm_classifier(seed + b).fit(x[rows], y[rows])))
    return BaggedBoostedResponse(members, float(penalty))
