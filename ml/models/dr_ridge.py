"""Doubly-robust ridge uplift model (numpy): per-arm incremental margin with its uncertainty.

In detail: docs/decisions.md, section "dr_ridge in detail (ml/models/dr_ridge.py)".
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ml.feature_spec import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    categorical_column,
    check_feature_columns,
    feature_spec_dict,
    numeric_matrix,
)
from ml.predictions import NONE_ARM
from ml.training_data import normalise_arms

MODEL_FILE = "uplift_model.npz"
METADATA_FILE = "uplift_model.json"
FORMAT_VERSION = 1
# Propensities below this are floored: one rare logged choice must not dominate a fit.
MIN_PROPENSITY = 0.02


@dataclass(frozen=True)
class UpliftConfig:
    """Regularisation and uncertainty settings (stored with the model)."""

    ridge_per_row: float = 2.0  # ridge penalty = this x training rows (uplift heads)
    outcome_ridge: float = 100.0  # penalty of the pooled outcome and per-arm cost regressions
    n_bootstrap: int = 20
    uncertainty_penalty: float = 1.5  # standard errors subtracted from the uplift estimate
    cost_prior_rows: float = 50.0  # weight of the pooled mean discount per send in each arm's cost
    cost_floor_share: float = 0.25  # expected cost >= this x the arm's (shrunk) mean discount per send


@dataclass
class ArmScores:
    """What the allocation needs, each [n_users, n_arms] in ``arms`` order."""

    arms: list[str]
    expected_incremental_margin: np.ndarray  # the estimate (reported)
    expected_cost: np.ndarray
    decision_margin: np.ndarray = field(default=None)  # type: ignore[assignment]  # what the allocation maximises
    uplift_per_day: np.ndarray = field(default=None)  # type: ignore[assignment]
    uplift_stderr_per_day: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.decision_margin is None:
            self.decision_margin = self.expected_incremental_margin

    @property
    def none_index(self) -> int:
        return self.arms.index(NONE_ARM)


# A categorical level becomes an indicator column only when this many training rows carry it.
MIN_LEVEL_ROWS = 30


def categorical_levels(
    frame: pd.DataFrame, categorical_features: Sequence[str] = CATEGORICAL_FEATURES
) -> dict[str, list[str]]:
    """Per categorical feature, the levels frequent enough in ``frame`` to get an indicator."""
    levels = {}
    for name in categorical_features:
        counts = pd.Series(categorical_column(frame, name)).value_counts()
        levels[name] = sorted(str(level) for level, count in counts.items() if count >= MIN_LEVEL_ROWS)
    return levels


def feature_names(numeric_features: Sequence[str], levels: dict[str, list[str]] | None) -> list[str]:
    return list(numeric_features) + [f"{name}={level}" for name, values in (levels or {}).items() for level in values]


def design_matrix(
    frame: pd.DataFrame,
    numeric_features: Sequence[str],
    mean: np.ndarray | None = None,
    scale: np.ndarray | None = None,
    levels: dict[str, list[str]] | None = None,
):
    """Standardised ``numeric_matrix`` (signed log1p) and indicators of the categorical
    ``levels`` (e.g. ``top_category=beauty``), plus an intercept column."""
    x = numeric_matrix(frame, numeric_features).astype(np.float64)
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    for name, values in (levels or {}).items():
        column = categorical_column(frame, name)
        x = np.c_[x, np.stack([column == level for level in values], axis=1).astype(np.float64)] if values else x
    if mean is None:
        mean = x.mean(axis=0) if len(x) else np.zeros(x.shape[1])
        scale = x.std(axis=0) + 1e-6 if len(x) else np.ones(x.shape[1])
    return np.c_[np.ones(len(x)), (x - mean) / scale], mean, scale


def ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> np.ndarray:
    """Ridge coefficients (the intercept, column 0, is not penalised)."""
    regulariser = penalty * np.eye(x.shape[1])
    regulariser[0, 0] = 0.0
    return np.linalg.solve(x.T @ x + regulariser, x.T @ y)


def outcome_coefficients(x: np.ndarray, y: np.ndarray, arm_index: np.ndarray, n_arms: int, penalty: float):
    """Per-arm outcome regression mu_a(x) = x @ coef[:, a]: a pooled ridge fit of all rows plus,
    per arm with at least 2 rows, a ridge fit of that arm's residuals from it (shrunk towards
    the pooled fit). Returns ([features, arms] coefficients, pooled coefficients)."""
    pooled = ridge(x, y, penalty)
    residual = y - x @ pooled
    coefficients = np.repeat(pooled[:, None], n_arms, axis=1)
    for k in range(n_arms):
        rows = arm_index == k
        if rows.sum() >= 2:
            coefficients[:, k] += ridge(x[rows], residual[rows], penalty)
    return coefficients, pooled


def propensity_or_uniform(propensity, n_arms: int) -> np.ndarray:
    p = pd.to_numeric(pd.Series(propensity, dtype="object"), errors="coerce").to_numpy(dtype=np.float64)
    p = np.where(np.isnan(p), 1.0 / n_arms, p)
    if ((p <= 0) | (p > 1)).any():
        raise ValueError("propensity: values outside (0, 1]; use null when the logging probability is unknown")
    return np.maximum(p, MIN_PROPENSITY)


@dataclass
class LoggedOutcomes:
    """Training rows as arrays: arm index, outcome per window day, redeemed discount, propensity."""

    arms: list[str]
    arm_index: np.ndarray
    margin_per_day: np.ndarray
    discount: np.ndarray
    propensity: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, arms: Sequence[str]) -> LoggedOutcomes:
        arms = normalise_arms(arms)
        missing = [
            c
            for c in ("promo_id", "propensity", "order_margin", "discount_amount", "window_days")
            if c not in frame.columns
        ]
        if missing:
            raise ValueError(f"training frame: missing columns {missing} (see ml.models.dr_ridge)")
        arm_of = {a: i for i, a in enumerate(arms)}
        arm_index = frame["promo_id"].map(arm_of)
        if arm_index.isna().any():
            raise ValueError(
                f"training frame: promo_ids {sorted(set(frame.loc[arm_index.isna(), 'promo_id']))[:5]} are not among the arms"
            )
        window = pd.to_numeric(frame["window_days"], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(window).any() or (window <= 0).any():
            raise ValueError("training frame: window_days must be a positive number of days on every row")
        margin = pd.to_numeric(frame["order_margin"], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
        discount = pd.to_numeric(frame["discount_amount"], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
        return cls(
            arms,
            arm_index.to_numpy(dtype=np.int64),
            margin / window,
            discount,
            propensity_or_uniform(frame["propensity"], len(arms)),
        )


class UpliftModel:
    """A fitted :func:`train_uplift_model` result: coefficients plus what scoring needs."""

    kind = "dr_ridge"

    def __init__(self, coefficients: dict[str, np.ndarray], metadata: dict):
        self.coefficients = coefficients
        self.metadata = metadata

    @property
    def arms(self) -> list[str]:
        return list(self.metadata["arms"])

    @property
    def window_days(self) -> np.ndarray:
        return np.array(self.metadata["window_days"], dtype=np.float64)

    @property
    def training_metrics(self) -> dict:
        return self.metadata.get("training_metrics", {})

    def design(self, features: pd.DataFrame) -> np.ndarray:
        """The model's design matrix of ``features`` (intercept first, training standardisation)."""
        x, _, _ = design_matrix(
            features,
            self.metadata["feature_spec"]["numeric_features"],
            np.array(self.metadata["mean"]),
            np.array(self.metadata["scale"]),
            self.metadata.get("categorical_levels"),
        )
        return x

    def score(self, features: pd.DataFrame, uncertainty_penalty: float | None = None) -> ArmScores:
        penalty = self.metadata["config"]["uncertainty_penalty"] if uncertainty_penalty is None else uncertainty_penalty
        x = self.design(features)
        draws = np.einsum("nf,bfa->bna", x, self.coefficients["uplift"])  # [B, n, arms] per day
        mean, sd = draws.mean(axis=0), draws.std(axis=0)
        estimate = mean * self.window_days
        conservative = (mean - penalty * sd) * self.window_days
        floor = self.coefficients.get("cost_floor", np.zeros(len(self.arms)))
        cost = np.maximum(x @ self.coefficients["cost"], floor[None, :])
        none = self.arms.index(NONE_ARM)
        for values in (estimate, conservative, cost):
            values[:, none] = 0.0
        return ArmScores(self.arms, estimate, cost, conservative, mean, sd)

    def top_drivers(self, features: pd.DataFrame, chosen: np.ndarray, k: int = 2) -> np.ndarray:
        """Per row, the ``k`` features contributing most to the chosen arm's estimated uplift
        (standardised value x mean coefficient), e.g. ``"discount_order_share_90d+, orders_30d-"``."""
        x = self.design(features)[:, 1:]
        coefficients = self.coefficients["uplift"].mean(axis=0)[1:, :]  # [features, arms]
        contribution = x * coefficients[:, np.asarray(chosen, dtype=np.int64)].T
        names = np.array(
            feature_names(self.metadata["feature_spec"]["numeric_features"], self.metadata.get("categorical_levels")),
            dtype=object,
        )
        top = np.argsort(-np.abs(contribution), axis=1)[:, :k]
        rows = np.arange(len(x))[:, None]
        signs = np.where(contribution[rows, top] >= 0, "+", "-")
        labelled = names[top] + signs
        columns = [pd.Series(labelled[:, j], dtype=object) for j in range(labelled.shape[1])]
        if not columns:
            return np.full(len(x), "", dtype=object)
        return (
            columns[0].str.cat(columns[1:], sep=", ").to_numpy(dtype=object)
            if len(columns) > 1
            else columns[0].to_numpy(dtype=object)
        )

    def save(self, local_dir: str | Path) -> Path:
        local_dir = Path(local_dir)
        local_dir.mkdir(parents=True, exist_ok=True)
        np.savez(local_dir / MODEL_FILE, **self.coefficients)
        (local_dir / METADATA_FILE).write_text(json.dumps(self.metadata, indent=2, sort_keys=True))
        return local_dir

    @classmethod
    def load(cls, local_dir: str | Path) -> UpliftModel:
        local_dir = Path(local_dir)
        for name in (MODEL_FILE, METADATA_FILE):
            if not (local_dir / name).exists():
                raise FileNotFoundError(
                    f"{local_dir / name}: missing; an uplift model folder holds {MODEL_FILE} and {METADATA_FILE}"
                )
        metadata = json.loads((local_dir / METADATA_FILE).read_text())
        if metadata.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{local_dir / METADATA_FILE}: format_version {metadata.get('format_version')!r}; this code reads {FORMAT_VERSION}"
            )
        with np.load(local_dir / MODEL_FILE) as stored:
            coefficients = {name: stored[name] for name in stored.files}
        return cls(coefficients, metadata)


def train_uplift_model(
    training: pd.DataFrame,
    arms: Sequence[str],
    window_days: dict[str, float],
    *,
    seed: int = 0,
    config: UpliftConfig = UpliftConfig(),
    numeric_features: Sequence[str] = NUMERIC_FEATURES,
    categorical_features: Sequence[str] = CATEGORICAL_FEATURES,
) -> UpliftModel:
    """Fit on logged exposures (feature columns + promo_id, propensity, order_margin,
    discount_amount, window_days); ``window_days`` maps each catalogue arm to its valid_days."""
    check_feature_columns(training, numeric_features, categorical_features, what="training frame")
    logged = LoggedOutcomes.from_frame(training, arms)
    arms = logged.arms
    none = arms.index(NONE_ARM)
    levels = categorical_levels(training, categorical_features)
    x, mean, scale = design_matrix(training, numeric_features, levels=levels)
    n, n_features = x.shape
    y, a, p = logged.margin_per_day, logged.arm_index, logged.propensity

    residual = y - x @ ridge(x, y, config.outcome_ridge)
    cost = np.zeros((n_features, len(arms)))
    cost_floor = np.zeros(len(arms))
    offer_rows = a != none
    pooled_discount = float(logged.discount[offer_rows].mean()) if offer_rows.any() else 0.0
    for k in range(len(arms)):
        rows = a == k
        if rows.sum() >= 2 and k != none:
            cost[:, k] = ridge(x[rows], logged.discount[rows], config.outcome_ridge)
        if k != none:
            n_k = float(rows.sum())
            shrunk = (
                n_k * (float(logged.discount[rows].mean()) if n_k else 0.0) + config.cost_prior_rows * pooled_discount
            ) / (n_k + config.cost_prior_rows)
            cost[0, k] = shrunk  # x is centred on the training rows (randomised arms): the intercept is the arm's mean
            cost_floor[k] = config.cost_floor_share * shrunk

    rng = np.random.default_rng(seed)
    uplift = np.zeros((config.n_bootstrap, n_features, len(arms)))
    penalty = config.ridge_per_row * n
    for b in range(config.n_bootstrap):
        sample = rng.integers(0, n, n) if config.n_bootstrap > 1 else np.arange(n)
        xs, rs, as_, ps = x[sample], residual[sample], a[sample], p[sample]
        control = (as_ == none) / ps
        for k in range(len(arms)):
            if k == none or not (as_ == k).any():
                continue
            uplift[b, :, k] = ridge(xs, rs * ((as_ == k) / ps - control), penalty)

    metadata = {
        "format_version": FORMAT_VERSION,
        "model_type": "promo_response",
        "kind": UpliftModel.kind,
        "arms": arms,
        "window_days": [0.0 if arm == NONE_ARM else float(window_days[arm]) for arm in arms],
        "feature_spec": feature_spec_dict(numeric_features, categorical_features),
        "categorical_levels": levels,
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "config": asdict(config),
        "training": {"seed": seed, "rows": int(n)},
    }
    model = UpliftModel({"uplift": uplift, "cost": cost, "cost_floor": cost_floor}, metadata)
    metadata["training_metrics"] = {
        "rows": int(n),
        "rows_per_arm": {arm: int((a == k).sum()) for k, arm in enumerate(arms)},
    }
    return model
