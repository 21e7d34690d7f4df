"""Held-out evaluation of response models and the policies they imply (numpy only).

All values are in *incremental margin vs sending nothing*, the quantity the nightly policy
maximises. Outcomes are margin per window day (``ml.models.dr_ridge.LoggedOutcomes``); the value of
sending arm ``a`` is ``window_days[a] * (mu_a(x) - mu_none(x))``.

* :func:`incremental_policy_value` — doubly robust estimate (``ml.ope``'s DR, written
  for a contrast against ``none``) of a deterministic policy's mean incremental margin per
  logged row, with per-row terms, so two policies on the same log compare paired and the
  ``none`` policy is exactly 0.
* :func:`qini_by_arm` — per arm vs ``none``: Qini coefficient and AUUC of the model's
  uplift ranking on held-out randomised rows (inverse-propensity weighted).
* :func:`expected_calibration_error` — for probabilities (P(order)).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from ml.models.dr_ridge import LoggedOutcomes
from ml.ope import PolicyValueEstimate

MAX_WEIGHT = 50.0  # importance-weight clip of the DR correction terms
QINI_CURVE_POINTS = 21


def incremental_policy_value(
    chosen: np.ndarray, logged: LoggedOutcomes, window_days: np.ndarray, q_per_day: np.ndarray
) -> PolicyValueEstimate:
    """DR estimate of E[window[a] (mu_a - mu_none)] for the policy choosing ``chosen[i]`` on row i.

    Per row: direct term ``W_i (q_chosen - q_none)`` plus the corrections
    ``1[A=chosen]/p * W_i (y - q_chosen)`` (chosen != none) and ``- 1[A=none]/p * W_i (y - q_none)``,
    with ``W_i = window[chosen]`` (0 for none). Unbiased if the propensities or ``q`` are right.
    """
    chosen = np.asarray(chosen, dtype=np.int64)
    n = len(chosen)
    rows = np.arange(n)
    none = logged.arms.index("none")
    window = np.asarray(window_days, dtype=np.float64)[chosen]
    window = np.where(chosen == none, 0.0, window)
    q_chosen, q_none = q_per_day[rows, chosen], q_per_day[:, none]
    weight = np.minimum(1.0 / logged.propensity, MAX_WEIGHT)
    y, a = logged.margin_per_day, logged.arm_index
    terms = window * (q_chosen - q_none)
    terms += np.where((a == chosen) & (chosen != none), weight * window * (y - q_chosen), 0.0)
    terms -= np.where(a == none, weight * window * (y - q_none), 0.0)
    matched = ((a == chosen) | (a == none)) * weight
    squares = float(np.square(matched).sum())
    return PolicyValueEstimate(
        estimator="dr",
        estimate=float(terms.mean()) if n else 0.0,
        stderr=float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else float("inf"),
        n=n,
        effective_sample_size=float(matched.sum() ** 2 / squares) if squares > 0 else 0.0,
        row_terms=terms,
        log_id="incremental:"
        + hashlib.blake2b(logged.margin_per_day.tobytes() + logged.arm_index.tobytes(), digest_size=12).hexdigest(),
    )


def greedy_policy(incremental: np.ndarray, none_index: int, eligible: np.ndarray | None = None) -> np.ndarray:
    """Per row, the arm with the largest positive incremental score, else none (no budget)."""
    score = np.where(eligible, incremental, -np.inf) if eligible is not None else incremental.copy()
    score[:, none_index] = 0.0
    return score.argmax(axis=1)


def qini_by_arm(uplift_score: np.ndarray, logged: LoggedOutcomes) -> dict[str, dict[str, float | int | None]]:
    """Qini coefficient and AUUC per arm on rows logged with that arm or none.

    Rows are ranked by the predicted uplift of the arm; the uplift curve at the top-k rows is
    ``k * (weighted mean outcome of treated - of control among them)`` (IPS weights), the Qini
    coefficient is the area between it and the random-targeting line, normalised by the
    number of rows; AUUC is the area under the curve / rows. Positive = the ranking finds
    responders better than chance. None when an arm has too few rows.
    """
    none = logged.arms.index("none")
    out: dict[str, dict[str, float | int | None]] = {}
    weight = 1.0 / logged.propensity
    for k, arm in enumerate(logged.arms):
        if k == none:
            continue
        rows = np.flatnonzero((logged.arm_index == k) | (logged.arm_index == none))
        treated = logged.arm_index[rows] == k
        if treated.sum() < 10 or (~treated).sum() < 10:
            out[arm] = {"rows": int(len(rows)), "qini": None, "auuc": None}
            continue
        order = np.argsort(-uplift_score[rows, k], kind="stable")
        y = logged.margin_per_day[rows][order]
        w = weight[rows][order]
        t = treated[order]
        cum_t_w, cum_c_w = np.cumsum(w * t), np.cumsum(w * ~t)
        cum_t_y, cum_c_y = np.cumsum(w * t * y), np.cumsum(w * ~t * y)
        k_rows = np.arange(1, len(rows) + 1)
        mean_t = np.divide(cum_t_y, cum_t_w, out=np.zeros_like(cum_t_y), where=cum_t_w > 0)
        mean_c = np.divide(cum_c_y, cum_c_w, out=np.zeros_like(cum_c_y), where=cum_c_w > 0)
        curve = k_rows * (mean_t - mean_c)
        random_line = k_rows / len(rows) * curve[-1]
        points = np.unique(np.linspace(0, len(rows) - 1, QINI_CURVE_POINTS).round().astype(np.int64))
        out[arm] = {
            "rows": int(len(rows)),
            "qini": float((curve - random_line).mean() / len(rows)),
            "auuc": float(curve.mean() / len(rows)),
            # the curve at QINI_CURVE_POINTS shares of rows targeted (per row, like the coefficients), for plots
            "curve_share": [float((k + 1) / len(rows)) for k in points],
            "curve": [float(curve[k] / len(rows)) for k in points],
        }
    return out


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> dict[str, float]:
    """Expected calibration error over equal-count bins, plus mean predicted vs observed."""
    p, y = np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(p) == 0:
        return {"ece": float("nan"), "mean_predicted": float("nan"), "mean_observed": float("nan")}
    order = np.argsort(p, kind="stable")
    ece = 0.0
    for chunk in np.array_split(order, min(bins, len(p))):
        ece += len(chunk) / len(p) * abs(p[chunk].mean() - y[chunk].mean())
    return {"ece": float(ece), "mean_predicted": float(p.mean()), "mean_observed": float(y.mean())}
