"""Logged exposures -> training examples for the response models (numpy / pandas only).

A training frame has the feature columns of ``ml.feature_spec`` plus, per logged exposure:

| column | meaning |
|---|---|
| promo_id | the arm the logging policy chose (a catalogue promo_id or ``none``) |
| propensity | probability the logging policy chose it; null = unknown => uniform 1/n_arms |
| converted | 1 if the user ordered within the outcome window, else 0 |
| order_margin | margin of the window's orders (0 without an order) |
| discount_amount | discount of the window's orders (0 without an order) |

Optionally ``sent_ts`` (or else ``as_of``) orders rows in time for the validation split;
without either the frame's row order is taken as time order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.feature_spec import CATEGORICAL_FEATURES, NUMERIC_FEATURES, check_feature_columns
from ml.predictions import NONE_ARM

log = logging.getLogger(__name__)

OUTCOME_COLUMNS: list[str] = ["promo_id", "propensity", "converted", "order_margin", "discount_amount"]
TIME_COLUMNS: list[str] = ["sent_ts", "as_of"]  # the first one present orders the rows

# Inverse-propensity weights above this are clipped: a few rare logged choices must not
# dominate the loss (bias traded for variance, the usual clipped-IPS compromise).
MAX_IPS_WEIGHT = 20.0


def normalise_arms(arms: Sequence[str]) -> list[str]:
    """Validated arm list; ``none`` is appended when the catalogue list lacks it."""
    arms = [str(a) for a in arms]
    duplicated = sorted({a for a in arms if arms.count(a) > 1})
    if duplicated:
        raise ValueError(f"arms: duplicated ids {duplicated}; each promo_id must appear once")
    if NONE_ARM not in arms:
        arms.append(NONE_ARM)
    if len(arms) < 2:
        raise ValueError("arms: need at least one catalogue promo_id besides 'none'")
    return arms


def ips_weights(propensity: np.ndarray | pd.Series, n_arms: int, max_weight: float = MAX_IPS_WEIGHT) -> np.ndarray:
    """Inverse-propensity weights, clipped at ``max_weight`` and normalised to mean 1.

    A null propensity means the logging policy is unknown and is read as uniform 1/n_arms.
    """
    p = pd.to_numeric(pd.Series(propensity, dtype="object"), errors="coerce").to_numpy(dtype=np.float64)
    p = np.where(np.isnan(p), 1.0 / n_arms, p)
    bad = (p <= 0) | (p > 1)
    if bad.any():
        raise ValueError(
            f"propensity: {int(bad.sum())} values outside (0, 1] (e.g. {p[bad][:3].tolist()}); "
            "a logged choice has positive probability; use null when it is unknown"
        )
    weights = np.minimum(1.0 / p, max_weight)
    if weights.size == 0:
        return weights
    return weights / weights.mean()


@dataclass
class PreparedTraining:
    """Training examples in time order; all arrays share the row order of ``features``."""

    arms: list[str]
    features: pd.DataFrame
    arm_index: np.ndarray  # int32 [n]
    converted: np.ndarray  # float32 [n]
    order_margin: np.ndarray  # float32 [n]
    discount_amount: np.ndarray  # float32 [n]
    weight: np.ndarray  # float32 [n], IPS, mean 1
    rows_dropped_unknown_arm: int

    @property
    def n_rows(self) -> int:
        return len(self.arm_index)


def prepare_training(
    training: pd.DataFrame, arms: Sequence[str], max_ips_weight: float = MAX_IPS_WEIGHT
) -> PreparedTraining:
    """Validate a training frame, encode logged arms, compute IPS weights, sort by time."""
    arms = normalise_arms(arms)
    check_feature_columns(training, NUMERIC_FEATURES, CATEGORICAL_FEATURES, what="training frame")
    missing = [c for c in OUTCOME_COLUMNS if c not in training.columns]
    if missing:
        raise ValueError(f"training frame: missing outcome columns {missing}; see ml.training_data")

    frame = training
    time_column = next((c for c in TIME_COLUMNS if c in frame.columns), None)
    if time_column is not None:
        frame = frame.sort_values(time_column, kind="stable")

    arm_of = {a: i for i, a in enumerate(arms)}
    logged = frame["promo_id"].astype("object").where(frame["promo_id"].notna(), NONE_ARM).astype(str)
    arm_index = logged.map(arm_of)
    unknown = arm_index.isna().to_numpy()
    if unknown.any():
        # Exposures of promos that left the catalogue cannot train a head that is never scored.
        log.warning(
            "training frame: dropping %d rows whose promo_id is not among the arms (e.g. %s)",
            int(unknown.sum()),
            sorted(set(logged[unknown]))[:5],
        )
        frame = frame.loc[~unknown]
        arm_index = arm_index.loc[~unknown]
    if len(frame) == 0:
        raise ValueError("training frame: no rows with a promo_id among the arms; nothing to train on")

    converted = pd.to_numeric(frame["converted"], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(converted).any() or not np.isin(converted, (0.0, 1.0)).all():
        raise ValueError("training frame: converted must be 0 or 1 on every row")
    money = {}
    for column in ("order_margin", "discount_amount"):
        values = pd.to_numeric(frame[column], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
        money[column] = np.where(converted > 0, values, 0.0)
    if (money["discount_amount"] < 0).any():
        raise ValueError("training frame: discount_amount must be >= 0 (contract: orders.discount_amount)")

    return PreparedTraining(
        arms=arms,
        features=frame.reset_index(drop=True),
        arm_index=arm_index.to_numpy(dtype=np.int32),
        converted=converted.astype(np.float32),
        order_margin=money["order_margin"].astype(np.float32),
        discount_amount=money["discount_amount"].astype(np.float32),
        weight=ips_weights(frame["propensity"].to_numpy(), len(arms), max_ips_weight).astype(np.float32),
        rows_dropped_unknown_arm=int(unknown.sum()),
    )


def time_ordered_split(n_rows: int, validation_share: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) row indices: the last ``validation_share`` of time-ordered rows validate."""
    n_validation = int(round(n_rows * validation_share))
    if n_rows - n_validation < 1:
        n_validation = n_rows - 1
    cut = n_rows - n_validation
    return np.arange(cut), np.arange(cut, n_rows)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (ties averaged); None when only one class is present."""
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = pd.Series(np.asarray(scores, dtype=np.float64)).rank(method="average").to_numpy()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def per_arm_auc(
    arms: Sequence[str], arm_index: np.ndarray, converted: np.ndarray, p_order: np.ndarray
) -> dict[str, float | None]:
    """AUC of P(order | logged arm) on the rows that logged each arm."""
    result: dict[str, float | None] = {}
    for k, arm in enumerate(arms):
        rows = arm_index == k
        result[arm] = roc_auc(converted[rows], p_order[rows, k]) if rows.any() else None
    return result
