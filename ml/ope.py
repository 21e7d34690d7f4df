"""Off-policy evaluation (OPE): the value of a target policy estimated from another policy's log.

In detail: docs/off_policy_evaluation.md, section "The estimators in detail (ml/ope.py)".
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

# Rows of a target-policy matrix must sum to 1 within this (probabilities of one decision).
POLICY_ROW_SUM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class PolicyValueEstimate:
    """One estimator's estimate of a target policy's mean reward per logged row."""

    estimator: str  # "ips", "snips" or "dr"
    estimate: float
    stderr: float  # standard error of ``estimate`` (std of per-row terms / sqrt(n))
    n: int  # logged rows used
    effective_sample_size: float  # (sum w)^2 / sum w^2 of the (clipped) importance weights
    # Per-row terms (see docs/off_policy_evaluation.md) and an id of the log they came from: the selection
    # uses them for the paired standard error of a difference between two estimates of the
    # same log. Not part of equality or repr.
    row_terms: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    log_id: str = field(default="", repr=False, compare=False)

    def lower_bound(self, z: float = 1.96) -> float:
        """estimate - z * stderr (z = 1.96: two-sided 95% normal interval's lower end)."""
        return self.estimate - z * self.stderr

    def upper_bound(self, z: float = 1.96) -> float:
        """estimate + z * stderr."""
        return self.estimate + z * self.stderr


@dataclass(frozen=True)
class PolicyEvaluation:
    """IPS, SNIPS and DR estimates of one target policy on one log (DR None without q_hat)."""

    ips: PolicyValueEstimate
    snips: PolicyValueEstimate
    dr: PolicyValueEstimate | None

    def best_available(self) -> PolicyValueEstimate:
        """DR when a reward model was given, else SNIPS: the estimate to compare policies by."""
        return self.dr if self.dr is not None else self.snips


# ---------------------------------------------------------------------------- validation
def _as_1d(name: str, values, n: int | None) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} has shape {array.shape}; expected one value per logged row [n_rows]")
    if n is not None and array.shape[0] != n:
        raise ValueError(f"{name} has {array.shape[0]} rows; expected {n} like the logged arms")
    return array


def _validated_log(arms, rewards, propensities, target_policy):
    arms = _as_1d("arms", arms, None)
    n = arms.shape[0]
    if n < 2:
        raise ValueError(f"arms: {n} logged rows; a value and its standard error need at least 2")
    if arms.dtype.kind not in "iu":
        as_float = arms.astype(np.float64)
        if (
            arms.dtype.kind not in "fb"
            or not np.all(np.isfinite(as_float))
            or not np.all(as_float == np.round(as_float))
        ):
            raise ValueError(
                f"arms: dtype {arms.dtype}; expected integer arm positions (column index of the policy matrix)"
            )
        arms = as_float.astype(np.int64)
    rewards = _as_1d("rewards", rewards, n).astype(np.float64)
    if not np.all(np.isfinite(rewards)):
        raise ValueError(
            f"rewards: {int((~np.isfinite(rewards)).sum())} NaN or infinite values; every logged row needs an observed reward"
        )
    propensities = _as_1d("propensities", propensities, n).astype(np.float64)
    bad = ~((propensities > 0) & (propensities <= 1))  # NaN fails both comparisons
    if bad.any():
        raise ValueError(
            f"propensities: {int(bad.sum())} values outside (0, 1] or NaN (e.g. {propensities[bad][:3].tolist()}); "
            "each is the probability the logging policy chose the logged arm, which is positive"
        )
    pi = np.asarray(target_policy, dtype=np.float64)
    if pi.ndim != 2 or pi.shape[0] != n:
        raise ValueError(f"target_policy has shape {pi.shape}; expected [n_rows={n}, n_arms] action probabilities")
    n_arms = pi.shape[1]
    if not np.all(np.isfinite(pi)) or (pi < 0).any():
        raise ValueError("target_policy: NaN, infinite or negative probabilities; each row is a distribution over arms")
    row_sums = pi.sum(axis=1)
    off = np.abs(row_sums - 1.0) > POLICY_ROW_SUM_TOLERANCE
    if off.any():
        raise ValueError(
            f"target_policy: {int(off.sum())} rows do not sum to 1 (e.g. row {int(np.flatnonzero(off)[0])} sums to "
            f"{row_sums[off][0]:.6g}); each row is the target policy's distribution over the {n_arms} arms"
        )
    out_of_range = (arms < 0) | (arms >= n_arms)
    if out_of_range.any():
        raise ValueError(
            f"arms: {int(out_of_range.sum())} values outside [0, {n_arms}) (e.g. {arms[out_of_range][:3].tolist()}); "
            "an arm is a column index of target_policy"
        )
    return arms, rewards, propensities, pi


def _validated_reward_model(reward_model, shape) -> np.ndarray:
    q_hat = np.asarray(reward_model, dtype=np.float64)
    if q_hat.shape != shape:
        raise ValueError(
            f"reward_model has shape {q_hat.shape}; expected {shape} like target_policy (predicted reward per row and arm)"
        )
    if not np.all(np.isfinite(q_hat)):
        raise ValueError("reward_model: NaN or infinite predictions; predict a finite reward for every row and arm")
    return q_hat


def _validated_max_weight(max_weight) -> float | None:
    if max_weight is None:
        return None
    max_weight = float(max_weight)
    if not max_weight > 0 or math.isnan(max_weight):
        raise ValueError(f"max_weight={max_weight!r}: must be a positive weight cap, or None for no clip")
    return max_weight


def _log_id(arms, rewards, propensities) -> str:
    digest = hashlib.blake2b(digest_size=12)
    for array in (arms, rewards, propensities):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _weights(arms, propensities, pi, max_weight) -> np.ndarray:
    weights = pi[np.arange(arms.shape[0]), arms] / propensities
    return weights if max_weight is None else np.minimum(weights, max_weight)


def _effective_sample_size(weights: np.ndarray) -> float:
    squares = float(np.square(weights).sum())
    return float(weights.sum()) ** 2 / squares if squares > 0 else 0.0


def _from_terms(
    estimator: str, estimate: float, terms: np.ndarray, weights: np.ndarray, log_id: str
) -> PolicyValueEstimate:
    n = terms.shape[0]
    return PolicyValueEstimate(
        estimator=estimator,
        estimate=float(estimate),
        stderr=float(terms.std(ddof=1) / math.sqrt(n)),
        n=n,
        effective_sample_size=_effective_sample_size(weights),
        row_terms=terms,
        log_id=log_id,
    )


# ---------------------------------------------------------------------------- estimators
def ips_value(arms, rewards, propensities, target_policy, max_weight: float | None = None) -> PolicyValueEstimate:
    """Inverse propensity scoring: mean of w_i r_i with w_i = pi(a_i|x_i) / p_i (clipped at max_weight).

    ``arms`` [n] int (column of ``target_policy``), ``rewards`` [n] float, ``propensities`` [n]
    in (0, 1], ``target_policy`` [n, n_arms] rows summing to 1.
    """
    arms, rewards, propensities, pi = _validated_log(arms, rewards, propensities, target_policy)
    weights = _weights(arms, propensities, pi, _validated_max_weight(max_weight))
    terms = weights * rewards
    return _from_terms("ips", terms.mean(), terms, weights, _log_id(arms, rewards, propensities))


def snips_value(arms, rewards, propensities, target_policy, max_weight: float | None = None) -> PolicyValueEstimate:
    """Self-normalised IPS: sum w_i r_i / sum w_i; delta-method standard error (module docstring).

    Raises ValueError when every weight is 0: no logged arm is one the target policy would
    choose, so the log says nothing about it.
    """
    arms, rewards, propensities, pi = _validated_log(arms, rewards, propensities, target_policy)
    weights = _weights(arms, propensities, pi, _validated_max_weight(max_weight))
    mean_weight = weights.mean()
    if mean_weight <= 0:
        raise ValueError(
            "snips: every importance weight is 0 — the target policy never chooses a logged arm, "
            "so this log cannot estimate its value; log with more exploration"
        )
    estimate = float((weights * rewards).sum() / weights.sum())
    terms = weights * (rewards - estimate) / mean_weight
    # Shift the linearised terms to mean = estimate so that paired differences of row terms
    # (the selection) compare values, not deviations; the std (standard error) is unchanged.
    return _from_terms("snips", estimate, terms + estimate, weights, _log_id(arms, rewards, propensities))


def dr_value(
    arms, rewards, propensities, target_policy, reward_model, max_weight: float | None = None
) -> PolicyValueEstimate:
    """Doubly robust: mean_i [sum_a pi(a|x_i) q(x_i,a) + w_i (r_i - q(x_i,a_i))].

    ``reward_model`` [n, n_arms] is q_hat, the predicted reward of every arm on every row
    (fitted on other rows: cross-fit). ``max_weight`` clips w_i in the correction term.
    """
    arms, rewards, propensities, pi = _validated_log(arms, rewards, propensities, target_policy)
    q_hat = _validated_reward_model(reward_model, pi.shape)
    weights = _weights(arms, propensities, pi, _validated_max_weight(max_weight))
    rows = np.arange(arms.shape[0])
    direct = np.einsum("ij,ij->i", pi, q_hat)
    terms = direct + weights * (rewards - q_hat[rows, arms])
    return _from_terms("dr", terms.mean(), terms, weights, _log_id(arms, rewards, propensities))


def evaluate_policy(
    arms, rewards, propensities, target_policy, reward_model=None, max_weight: float | None = None
) -> PolicyEvaluation:
    """IPS, SNIPS and (when ``reward_model`` is given) DR estimates of one target policy."""
    return PolicyEvaluation(
        ips=ips_value(arms, rewards, propensities, target_policy, max_weight),
        snips=snips_value(arms, rewards, propensities, target_policy, max_weight),
        dr=None
        if reward_model is None
        else dr_value(arms, rewards, propensities, target_policy, reward_model, max_weight),
    )


def one_hot_policy(chosen_arms, n_arms: int) -> np.ndarray:
    """The [n, n_arms] matrix of a deterministic policy that chooses ``chosen_arms[i]`` on row i."""
    chosen = _as_1d("chosen_arms", chosen_arms, None)
    if chosen.dtype.kind not in "iu" or ((chosen < 0) | (chosen >= n_arms)).any():
        raise ValueError(f"chosen_arms: expected integer arm positions in [0, {n_arms})")
    pi = np.zeros((chosen.shape[0], n_arms), dtype=np.float64)
    pi[np.arange(chosen.shape[0]), chosen] = 1.0
    return pi
