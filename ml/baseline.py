"""Baseline response model for the model card: a per-arm T-learner in numpy.

Per arm, on the rows that logged it: an L2-regularised logistic regression of ``converted``
on the standardised features (numerics + one-hot ``top_category``), and the mean margin and
discount of its converted rows. Arms with too few rows fall back to pooled estimates.
Same ``predict`` interface as :class:`ml.response_model.ResponseModel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ml.feature_spec import CATEGORICAL_FEATURES, NUMERIC_FEATURES, categorical_column, numeric_matrix
from ml.predictions import NONE_ARM, ArmPredictions
from ml.training_data import per_arm_auc, prepare_training, time_ordered_split

MIN_ROWS_PER_ARM = 20
_CATEGORY_FEATURE = CATEGORICAL_FEATURES[0]


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 25) -> np.ndarray:
    """Newton/IRLS logistic regression; returns [n_features + 1] coefficients (intercept last)."""
    design = np.hstack([x, np.ones((x.shape[0], 1))])
    penalty = np.full(design.shape[1], l2)
    penalty[-1] = 0.0  # the intercept is not shrunk
    beta = np.zeros(design.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ beta, -30, 30)))
        gradient = design.T @ (p - y) + penalty * beta
        hessian = (design * (p * (1 - p))[:, None]).T @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return beta


@dataclass
class BaselineModel:
    arms: list[str]
    numeric_features: list[str]
    numeric_mean: np.ndarray
    numeric_std: np.ndarray
    category_vocabulary: list[str]
    coefficients: np.ndarray  # [n_arms, n_features + 1]
    margin_if_order: np.ndarray  # [n_arms]
    discount_if_order: np.ndarray  # [n_arms]
    training_metrics: dict

    @property
    def none_index(self) -> int:
        return self.arms.index(NONE_ARM)

    def design(self, features: pd.DataFrame) -> np.ndarray:
        numeric = (numeric_matrix(features, self.numeric_features) - self.numeric_mean) / self.numeric_std
        category = categorical_column(features, _CATEGORY_FEATURE)
        one_hot = (category[:, None] == np.asarray(self.category_vocabulary, dtype=object)[None, :]).astype(np.float64)
        return np.hstack([numeric, one_hot])

    def predict(self, features: pd.DataFrame) -> ArmPredictions:
        x = self.design(features)
        logits = x @ self.coefficients[:, :-1].T + self.coefficients[:, -1]
        n = len(features)
        return ArmPredictions(
            arms=self.arms,
            p_order=1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30))),
            margin_if_order=np.broadcast_to(self.margin_if_order, (n, len(self.arms))).copy(),
            discount_if_order=np.broadcast_to(self.discount_if_order, (n, len(self.arms))).copy(),
        )


def train_baseline(training: pd.DataFrame, arms: Sequence[str], *, l2: float = 1.0, validation_share: float = 0.2) -> BaselineModel:
    """Fit the T-learner on the time-earlier rows; AUC per arm on the latest rows."""
    prepared = prepare_training(training, arms)
    arms = prepared.arms
    train_rows, validation_rows = time_ordered_split(prepared.n_rows, validation_share)
    numeric = numeric_matrix(prepared.features, NUMERIC_FEATURES).astype(np.float64)
    mean = numeric[train_rows].mean(axis=0)
    std = np.maximum(numeric[train_rows].std(axis=0), 1e-6)
    vocabulary = sorted(set(categorical_column(prepared.features.iloc[train_rows], _CATEGORY_FEATURE).tolist()))
    model = BaselineModel(arms, list(NUMERIC_FEATURES), mean, std, vocabulary,
                          np.zeros((len(arms), len(NUMERIC_FEATURES) + len(vocabulary) + 1)),
                          np.zeros(len(arms)), np.zeros(len(arms)), {})
    x = model.design(prepared.features)

    y, arm = prepared.converted.astype(np.float64), prepared.arm_index
    train = np.zeros(prepared.n_rows, dtype=bool)
    train[train_rows] = True
    pooled_rate = float(np.clip(y[train].mean(), 1e-4, 1 - 1e-4))
    converted = train & (y > 0)
    pooled_margin = float(prepared.order_margin[converted].mean()) if converted.any() else 0.0
    pooled_discount = float(prepared.discount_amount[converted].mean()) if converted.any() else 0.0
    for k in range(len(arms)):
        rows = train & (arm == k)
        if rows.sum() >= MIN_ROWS_PER_ARM and 0 < y[rows].sum() < rows.sum():
            model.coefficients[k] = fit_logistic(x[rows], y[rows], l2=l2)
        else:
            model.coefficients[k, -1] = np.log(pooled_rate / (1 - pooled_rate))
        arm_converted = rows & (y > 0)
        enough = arm_converted.sum() >= 5
        model.margin_if_order[k] = prepared.order_margin[arm_converted].mean() if enough else pooled_margin
        model.discount_if_order[k] = prepared.discount_amount[arm_converted].mean() if enough else pooled_discount

    p_validation = model.predict(prepared.features.iloc[validation_rows]).p_order
    model.training_metrics = {
        "rows": prepared.n_rows,
        "train_rows": int(len(train_rows)),
        "validation_rows": int(len(validation_rows)),
        "validation_auc": per_arm_auc(arms, arm[validation_rows], y[validation_rows], p_validation),
    }
    return model
