"""Choose tonight's policy among candidates of increasing complexity, valued on rows they never saw.

1. The logged rows are split into ``folds`` groups by user (a user's exposures stay together).
   For each fold, every candidate of :mod:`ml.candidates` is fitted on the other folds and
   decides, under the budget scaled to the fold's rows, for the fold's *evaluable* rows
   (those whose every arm's window has closed). So every evaluable row carries each
   candidate's out-of-fold choice.
2. Each candidate's value is the doubly robust mean incremental margin of its choices vs
   sending nothing (:func:`dr_scores`; the reward model is cross-fitted, so no row's outcome
   reaches its own prediction), with its standard error; ``none`` is exactly 0. IPS (no reward
   model) is reported beside it. A blanket arm, which is not fitted, is valued with its random
   order integrated out (:func:`blanket_terms`: every row's score times the share served).
3. The rule, fixed before any result is seen (:func:`select`): the **leader** is the candidate
   with the highest lower confidence bound ``value - z x stderr`` (the smaller of the DR and the
   IPS bound). A simpler candidate whose
   own bound is above 0 and whose value is within one standard error of the leader's value
   replaces it (the one-standard-error rule of CART, simplest first; among equally simple
   ones, the best bound). The winner is
   published when its bound is above 0. When no candidate's bound is, the candidate with the
   best bound among those whose DR and IPS estimates are both at least ``ROLLOUT_Z`` standard
   errors above 0 goes out as a **staged rollout** — that candidate for a random share of users, the fallback
   (`none`) for the rest, both logged with exact propensities — so that the next nights'
   matured exposures decide. Otherwise nothing is sent.
4. The winner (and the shared models) are refitted on every row; the cost model's per-arm
   calibration comes from the out-of-fold predictions against realised discounts of windows no
   later offer cut, then the winner's own held-out sends check its cost (only upwards).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml import candidates as cand
from ml.evaluation import qini_by_arm
from ml.models.dr_ridge import LoggedOutcomes, outcome_coefficients
from ml.models.pooled_response import CostModel, PooledResponse, UserDesign, fit_pooled_response
from ml.ope import PolicyValueEstimate
from ml.predictions import NONE_ARM

log = logging.getLogger(__name__)

FOLDS = 3
REWARD_FOLDS = 5
MAX_WEIGHT = 50.0
ROLLOUT_Z = 1.0
COMPLEXITY = {
    "none": 0,
    "blanket": 1,
    "ranked_rule": 2,
    "policy_tree": 3,
    "pooled_main": 4,
    "pooled_response": 5,
    "boosted_response": 5,
    "dr_ridge": 5,
    "tf_multihead": 6,
}


def complexity(name: str) -> int:
    return COMPLEXITY[name.split(":", 1)[0]]


@dataclass
class PolicyData:
    """Logged randomised exposures: features, the logged arm, its propensity and the outcome."""

    features: pd.DataFrame
    arms: list[str]
    arm_index: np.ndarray
    propensity: np.ndarray
    converted: np.ndarray
    margin: np.ndarray  # margin of the window's orders, net of discount (0 without an order)
    discount: np.ndarray  # discount redeemed in the window
    window_days: np.ndarray  # the logged (possibly censored) window of each row
    arm_window: np.ndarray  # [arms] the window an offer is valued over tonight; none 0
    send_cost: np.ndarray  # [arms] fixed cost of one send (0 for promoflow's offers)
    numeric_features: list[str]
    categorical_features: list[str]
    groups: np.ndarray  # user id per row: folds keep a user's rows together
    evaluable: np.ndarray  # rows a policy may be valued on
    catalogue: pd.DataFrame | None = None  # arm attributes (the contract's promotions), indexed by arm
    full_discount: np.ndarray | None = None  # discount over the full (uncensored) window, for cost calibration
    budget_cost: str = "discount"  # what the budget counts: expected "discount" or "sends"

    def __post_init__(self) -> None:
        self.arm_index = np.asarray(self.arm_index, dtype=np.int64)
        for name in ("propensity", "converted", "margin", "discount", "window_days", "arm_window", "send_cost"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        self.evaluable = np.asarray(self.evaluable, dtype=bool)
        if self.full_discount is None:
            self.full_discount = self.discount
        if (self.window_days <= 0).any():
            raise ValueError("window_days must be positive on every row")

    @property
    def none_index(self) -> int:
        return self.arms.index(NONE_ARM)

    @property
    def logged(self) -> LoggedOutcomes:
        return LoggedOutcomes(
            self.arms, self.arm_index, self.margin / self.window_days, self.discount, np.maximum(self.propensity, 0.02)
        )

    def take(self, rows: np.ndarray) -> PolicyData:
        rows = np.asarray(rows)
        return PolicyData(
            self.features.iloc[rows].reset_index(drop=True),
            self.arms,
            self.arm_index[rows],
            self.propensity[rows],
            self.converted[rows],
            self.margin[rows],
            self.discount[rows],
            self.window_days[rows],
            self.arm_window,
            self.send_cost,
            self.numeric_features,
            self.categorical_features,
            self.groups[rows],
            self.evaluable[rows],
            self.catalogue,
            self.full_discount[rows],
            self.budget_cost,
        )


def stable_uniform(keys: Sequence, salt: str) -> np.ndarray:
    """A reproducible uniform [0, 1) number per key (``ml.allocation.salted_uniform``)."""
    from ml.allocation import salted_uniform

    return salted_uniform(np.asarray(list(keys), dtype=object), salt)


def _tiebreak(groups: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
    """Per row, a reproducible uniform that breaks ties in serving order."""
    return stable_uniform(list(pd.Series(groups).astype(str) + "#" + pd.Series(rows).astype(str)), f"tie-{seed}")


def crossfit_reward_model(
    design: np.ndarray, logged: LoggedOutcomes, folds: int = REWARD_FOLDS, seed: int = 0, penalty: float = 100.0
) -> np.ndarray:
    """[rows, arms] reward model (outcome per day) cross-fitted in ``folds``: each row's prediction
    comes from a per-arm ridge outcome regression (``ml.models.dr_ridge.outcome_coefficients``) fitted on
    the other folds, so it never sees the row's own outcome."""
    n = len(logged.arm_index)
    q = np.zeros((n, len(logged.arms)))
    if n < 2 * folds:
        return q  # too few rows to cross-fit: the IPS contrast (q = 0) is still unbiased
    fold = np.random.default_rng(seed).permutation(n) % folds
    for k in range(folds):
        fit = fold != k
        coefficients, _ = outcome_coefficients(
            design[fit], logged.margin_per_day[fit], logged.arm_index[fit], len(logged.arms), penalty
        )
        q[~fit] = design[~fit] @ coefficients
    return q


def dr_scores(data: PolicyData, q: np.ndarray) -> np.ndarray:
    """[rows, arms] doubly robust incremental margin of sending each arm vs nothing, per row:
    ``W_a (q_a - q_none) + 1[A=a] w W_a (y - q_a) - 1[A=none] w W_a (y - q_none) - send_cost_a``
    (``y`` margin per day, ``w`` the clipped inverse propensity); 0 for ``none``. The mean of a
    policy's column per row is its value (``ml.evaluation.incremental_policy_value``)."""
    logged = data.logged
    y, a = logged.margin_per_day, logged.arm_index
    none = data.none_index
    weight = np.minimum(1.0 / logged.propensity, MAX_WEIGHT)
    control = np.where(a == none, weight * (y - q[:, none]), 0.0)
    gamma = np.zeros_like(q)
    for k in range(len(data.arms)):
        if k == none:
            continue
        treated = np.where(a == k, weight * (y - q[:, k]), 0.0)
        gamma[:, k] = data.arm_window[k] * (q[:, k] - q[:, none] + treated - control) - data.send_cost[k]
    return gamma


def value_of(gamma: np.ndarray, chosen: np.ndarray, log_id: str = "") -> PolicyValueEstimate:
    return estimate_of(gamma[np.arange(len(chosen)), chosen], log_id)


def blanket_terms(gamma: np.ndarray, chosen: np.ndarray, fold: np.ndarray, arm: int) -> np.ndarray:
    """Per-row terms of a blanket arm's value with its random order integrated out: in each fold,
    the arm's column times the share of the fold's rows it reached (``chosen == arm``). A blanket
    is not fitted, so whom a random order happened to reach carries no information; the served
    rows' terms alone (one in four under a 25% cap) estimate the same value with about twice the
    standard error. Exact for unit send costs; with unequal costs the served share stands in for
    each row's chance of being reached."""
    terms = np.zeros(len(chosen))
    for k in np.unique(fold):
        rows = fold == k
        terms[rows] = np.mean(chosen[rows] == arm) * gamma[rows, arm]
    return terms


def estimate_of(terms: np.ndarray, log_id: str = "") -> PolicyValueEstimate:
    n = len(terms)
    return PolicyValueEstimate(
        "dr",
        float(terms.mean()) if n else 0.0,
        float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else float("inf"),
        n,
        float(n),
        terms,
        log_id,
    )


# ------------------------------------------------------------------------------ shared models
@dataclass
class SharedModels:
    """What every candidate leans on: the user design, the pooled response model and the cost model."""

    design: UserDesign
    pooled: PooledResponse
    cost_model: CostModel

    def p_order(self, features: pd.DataFrame, arm_window: np.ndarray) -> np.ndarray:
        return self.pooled.p_order(features, np.where(arm_window > 0, arm_window, 1.0))

    def cost(self, features: pd.DataFrame, data_like: PolicyData) -> np.ndarray:
        """[n, arms] what the budget counts per send: expected discount, or 1 per send."""
        if data_like.budget_cost == "sends":
            cost = np.ones((len(features), len(data_like.arms)))
        else:
            cost = self.cost_model.cost(self.p_order(features, data_like.arm_window))
        cost[:, data_like.none_index] = 0.0
        return cost


def fit_shared(data: PolicyData, seed: int = 0) -> SharedModels:
    design = UserDesign.fit(data.features, data.numeric_features, data.categorical_features)
    pooled = fit_pooled_response(
        data.features,
        design,
        data.arms,
        data.arm_index,
        data.converted,
        data.margin + data.discount,
        data.window_days,
        catalogue=data.catalogue,
        seed=seed,
    )
    cost_model = CostModel.fit(data.arm_index, data.converted, data.discount, data.arms)
    return SharedModels(design, pooled, cost_model)


@dataclass
class TrainingContext:
    data: PolicyData
    shared: SharedModels
    gamma: np.ndarray  # DR scores of the training rows (reward model cross-fitted on them)
    cost: np.ndarray  # [rows, arms] budget cost of the training rows
    budget: float | None  # budget scaled to the training rows
    eligible_arms: np.ndarray  # [arms] bool
    tiebreak: np.ndarray
    seed: int
    options: dict = field(default_factory=dict)  # e.g. uncertainty_penalty for dr_ridge


# ----------------------------------------------------------------------------- the candidates
class PooledScorer:
    def __init__(self, shared: SharedModels, arm_window: np.ndarray, send_cost: np.ndarray):
        self.shared, self.arm_window, self.send_cost = shared, np.asarray(arm_window), np.asarray(send_cost)

    def __call__(self, features: pd.DataFrame):
        incremental, _ = self.shared.pooled.incremental(
            features, self.arm_window, self.shared.cost_model, self.send_cost
        )
        return incremental, incremental


class BoostedScorer:
    def __init__(self, model, shared: SharedModels, arm_window: np.ndarray, send_cost: np.ndarray):
        self.model, self.cost_model = model, shared.cost_model
        self.arm_window, self.send_cost = np.asarray(arm_window), np.asarray(send_cost)

    def __call__(self, features: pd.DataFrame):
        return self.model.scores(features, self.arm_window, self.cost_model, self.send_cost)


class RidgeScorer:
    def __init__(self, model, send_cost: np.ndarray):
        self.model, self.send_cost = model, np.asarray(send_cost)

    def __call__(self, features: pd.DataFrame):
        scores = self.model.score(features)
        none = self.model.arms.index(NONE_ARM)
        decision, estimate = (
            scores.decision_margin - self.send_cost,
            scores.expected_incremental_margin - self.send_cost,
        )
        decision[:, none] = estimate[:, none] = 0.0
        return decision, estimate


class TFScorer:
    def __init__(
        self, model, arm_window: np.ndarray, control_window: float, logged_windows: np.ndarray, send_cost: np.ndarray
    ):
        self.model, self.arm_window, self.control_window = model, np.asarray(arm_window), control_window
        self.logged_windows, self.send_cost = np.asarray(logged_windows), np.asarray(send_cost)

    def __call__(self, features: pd.DataFrame):
        from ml.training import tf_arm_scores

        scores = tf_arm_scores(self.model.predict(features), self.arm_window, self.control_window, self.logged_windows)
        estimate = scores.expected_incremental_margin - self.send_cost
        estimate[:, scores.none_index] = 0.0
        return estimate, estimate


def tree_columns(data: PolicyData) -> list[str]:
    columns = list(data.numeric_features)
    for name, levels in data_levels(data).items():
        columns += [f"{name}={level}" for level in levels]
    return columns


def data_levels(data: PolicyData) -> dict[str, list[str]]:
    from ml.models.dr_ridge import categorical_levels

    return categorical_levels(data.features, data.categorical_features)


def fit_candidate(name: str, ctx: TrainingContext):
    data, arms = ctx.data, ctx.data.arms
    if name == "none":
        return cand.FittedNone(arms)
    if name.startswith("blanket:"):
        k = arms.index(name.split(":", 1)[1])
        return cand.FittedBlanket(arms, k, float(ctx.gamma[:, k].mean()))
    if name == "ranked_rule":
        rule = cand.fit_ranked_rule(
            arms,
            data.features,
            data.numeric_features,
            ctx.gamma,
            ctx.cost,
            ctx.budget,
            ctx.eligible_arms,
            ctx.tiebreak,
            seed=ctx.seed,
            predicted=PooledScorer(ctx.shared, data.arm_window, data.send_cost)(data.features)[1],
        )
        return rule if rule is not None else cand.FittedNone(arms, name="ranked_rule")
    if name == "policy_tree":
        return cand.fit_policy_tree(arms, data.features, tree_columns(data), ctx.gamma, ctx.eligible_arms, ctx.seed)
    if name == "pooled_response":
        return cand.FittedScores(arms, name, PooledScorer(ctx.shared, data.arm_window, data.send_cost))
    if (
        name == "pooled_main"
    ):  # the same model without mechanics x feature interactions: an arm shifts everyone's odds alike
        main = fit_pooled_response(
            data.features,
            ctx.shared.design,
            arms,
            data.arm_index,
            data.converted,
            data.margin + data.discount,
            data.window_days,
            catalogue=data.catalogue,
            seed=ctx.seed,
            interactions=False,
            reuse=ctx.shared.pooled,
        )
        return cand.FittedScores(
            arms,
            name,
            PooledScorer(SharedModels(ctx.shared.design, main, ctx.shared.cost_model), data.arm_window, data.send_cost),
        )
    if name == "boosted_response":
        from ml.models.boosted_response import fit_boosted_response
        from ml.models.dr_ridge import UpliftConfig

        model = fit_boosted_response(
            data.features,
            ctx.shared.pooled,
            data.arm_index,
            data.converted,
            data.window_days,
            penalty=ctx.options.get("uncertainty_penalty", UpliftConfig.uncertainty_penalty),
            seed=ctx.seed,
        )
        return cand.FittedScores(arms, name, BoostedScorer(model, ctx.shared, data.arm_window, data.send_cost))
    if name == "dr_ridge":
        from ml.models.dr_ridge import UpliftConfig, train_uplift_model

        frame = ctx.data.features.assign(
            promo_id=np.asarray(arms, dtype=object)[data.arm_index],
            propensity=data.propensity,
            order_margin=data.margin,
            discount_amount=data.discount,
            window_days=data.window_days,
        )
        windows = {a: float(w) for a, w in zip(arms, data.arm_window) if a != NONE_ARM}
        config = UpliftConfig(
            uncertainty_penalty=ctx.options.get("uncertainty_penalty", UpliftConfig.uncertainty_penalty)
        )
        model = train_uplift_model(
            frame,
            [a for a in arms if a != NONE_ARM],
            windows,
            seed=ctx.seed,
            config=config,
            numeric_features=data.numeric_features,
            categorical_features=data.categorical_features,
        )
        return cand.FittedScores(arms, name, RidgeScorer(model, data.send_cost))
    if name == "tf_multihead":
        from ml.models.tf_multihead import train_response_model

        frame = ctx.data.features.assign(
            promo_id=np.asarray(arms, dtype=object)[data.arm_index],
            propensity=data.propensity,
            converted=data.converted,
            order_margin=data.margin,
            discount_amount=data.discount,
        )
        model = train_response_model(frame, [a for a in arms if a != NONE_ARM], seed=ctx.seed, deterministic=True)
        logged = pd.Series(data.window_days).groupby(data.arm_index).mean()
        control = float(logged.get(data.none_index, np.nan))
        windows = np.array([float(logged.get(k, w if w > 0 else control)) for k, w in enumerate(data.arm_window)])
        return cand.FittedScores(arms, name, TFScorer(model, data.arm_window, control, windows, data.send_cost))
    raise ValueError(f"unknown candidate {name!r}")


def candidate_names(
    arms: Sequence[str],
    eligible_arms: np.ndarray,
    per_user: Sequence[str] = ("pooled_main", "pooled_response", "boosted_response", "dr_ridge"),
) -> list[str]:
    blankets = [f"blanket:{a}" for a, ok in zip(arms, eligible_arms) if ok and a != NONE_ARM]
    return ["none", *blankets, "ranked_rule", "policy_tree", *per_user]


# ---------------------------------------------------------------------------------- selection
@dataclass
class CandidateResult:
    name: str
    value: PolicyValueEstimate
    ips: PolicyValueEstimate
    offer_share: float
    fit_seconds: float
    description: str = ""

    def lower_bound(self, z: float) -> float:
        """The smaller of the DR and the IPS bound: the two estimate the same value, and where the
        reward model's direct term misleads (a few thousand noisy rows per arm) they disagree."""
        return 0.0 if self.name == "none" else min(self.value.lower_bound(z), self.ips.lower_bound(z))

    def as_dict(self, z: float) -> dict:
        return {
            "value_per_row": self.value.estimate,
            "stderr": self.value.stderr,
            "lower_bound": self.lower_bound(z),
            "ips_value_per_row": self.ips.estimate,
            "ips_stderr": self.ips.stderr,
            "offer_share": self.offer_share,
            "complexity": complexity(self.name),
            "fit_seconds": round(self.fit_seconds, 2),
            "description": self.description,
        }


@dataclass
class Selection:
    status: str  # "published", "rollout" or "none"
    chosen: str  # the candidate published (or rolled out); "none" when nothing is
    leader: str
    message: str
    results: dict[str, CandidateResult]
    rollout_share: float = 0.0
    cost_calibration: dict = field(default_factory=dict)
    policy_cost_check: dict = field(default_factory=dict)


def select(results: dict[str, CandidateResult], z: float, rollout_share: float) -> Selection:
    """The written-down rule (module docstring, point 3)."""
    by_bound = sorted(results.values(), key=lambda r: (-r.lower_bound(z), complexity(r.name), r.name))
    leader = by_bound[0]
    if leader.name != "none" and leader.lower_bound(z) > 0:
        chosen = leader
        for simpler in sorted(results.values(), key=lambda r: (complexity(r.name), -r.lower_bound(z))):
            if (
                complexity(simpler.name) >= complexity(leader.name)
                or simpler.name == "none"
                or simpler.lower_bound(z) <= 0
            ):
                continue
            if simpler.value.estimate >= leader.value.estimate - leader.value.stderr:
                chosen = simpler
                break
        why = "" if chosen is leader else f" (within one standard error of {leader.name}, and simpler)"
        message = (
            f"published {chosen.name}{why}: held-out incremental margin {chosen.value.estimate:.3f} ± {chosen.value.stderr:.3f} "
            f"per user (lower bound {chosen.lower_bound(z):.3f} at z={z:g}) on {chosen.value.n} out-of-fold exposures"
        )
        return Selection("published", chosen.name, leader.name, message, results)
    # the rollout candidate: the best bound among those whose DR and IPS estimates are both at least
    # ROLLOUT_Z standard errors above 0 (a dozen candidates: one at +0.5 se is noise)
    positive = [r for r in by_bound if r.name != "none" and r.lower_bound(ROLLOUT_Z) > 0]
    if positive and rollout_share > 0:
        best = positive[0]
        message = (
            f"staged rollout of {best.name} to {rollout_share:.0%} of users, 'none' for the rest: held-out incremental margin "
            f"{best.value.estimate:.3f} ± {best.value.stderr:.3f} per user (IPS {best.ips.estimate:.3f}) is positive but its lower "
            f"bound {best.lower_bound(z):.3f} is not above 0; the next nights' matured exposures decide"
        )
        return Selection("rollout", best.name, leader.name, message, results, rollout_share)
    best = max((r for r in results.values() if r.name != "none"), key=lambda r: r.value.estimate, default=None)
    detail = f"; best was {best.name} at {best.value.estimate:.3f} ± {best.value.stderr:.3f} per user" if best else ""
    return Selection(
        "none",
        "none",
        leader.name,
        "fallback to 'none': no candidate's held-out value is above sending nothing" + detail,
        results,
    )


def _fold_of(groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    return (stable_uniform(list(pd.Series(groups).astype(str)), f"fold-{seed}") * folds).astype(np.int64)


def training_context(
    data: PolicyData, budget_per_user: float | None, eligible_arms: np.ndarray, seed: int, options: dict | None = None
) -> TrainingContext:
    shared = fit_shared(data, seed)
    logged = data.logged
    q = crossfit_reward_model(shared.design.with_intercept(data.features), logged, seed=seed)
    budget = None if budget_per_user is None else budget_per_user * len(data.arm_index)
    tiebreak = _tiebreak(data.groups, np.arange(len(data.groups)), seed)
    return TrainingContext(
        data,
        shared,
        dr_scores(data, q),
        shared.cost(data.features, data),
        budget,
        eligible_arms,
        tiebreak,
        seed,
        options or {},
    )


def evaluate_and_select(
    data: PolicyData,
    budget_per_user: float | None,
    eligible_arms: np.ndarray | None = None,
    *,
    names: Sequence[str] | None = None,
    folds: int = FOLDS,
    seed: int = 0,
    z: float = 1.645,
    rollout_share: float = 0.25,
    refit: bool = True,
    options: dict | None = None,
):
    """Cross-fitted values of every candidate, the rule's choice, and (``refit``) the chosen
    candidate and shared models refitted on all rows. Returns (Selection, fitted, shared, metrics)."""
    eligible_arms = (
        np.ones(len(data.arms), dtype=bool) if eligible_arms is None else np.asarray(eligible_arms, dtype=bool)
    )
    names = list(names) if names is not None else candidate_names(data.arms, eligible_arms)
    n = len(data.arm_index)
    fold = _fold_of(data.groups, folds, seed)
    shared_all = fit_shared(data, seed)
    q_all = crossfit_reward_model(shared_all.design.with_intercept(data.features), data.logged, seed=seed)
    gamma_all = dr_scores(data, q_all)
    gamma_ips = dr_scores(data, np.zeros_like(q_all))
    eligible_rows = np.broadcast_to(eligible_arms, (n, len(data.arms)))
    chosen = {name: np.full(n, data.none_index, dtype=np.int64) for name in names}
    seconds = {name: 0.0 for name in names}
    predicted_cost = np.zeros(n)
    evaluated = np.zeros(n, dtype=bool)
    descriptions: dict[str, str] = {}
    # Out-of-fold incremental estimates [rows, arms] of the per-user models (the report's Qini of the one chosen).
    oof_estimate: dict[str, np.ndarray] = {}
    for k in range(folds):
        train_rows = np.flatnonzero(fold != k)
        test_rows = np.flatnonzero((fold == k) & data.evaluable)
        if len(test_rows) == 0 or len(train_rows) < 10:
            continue
        ctx = training_context(data.take(train_rows), budget_per_user, eligible_arms, seed, options)
        test = data.take(test_rows)
        cost = ctx.shared.cost(test.features, test)
        budget = None if budget_per_user is None else budget_per_user * len(test_rows)
        tiebreak = _tiebreak(test.groups, test_rows, seed)
        p_order = ctx.shared.p_order(test.features, test.arm_window)
        predicted_cost[test_rows] = ctx.shared.cost_model.cost(p_order)[np.arange(len(test_rows)), test.arm_index]
        evaluated[test_rows] = True
        for name in names:
            started = time.perf_counter()
            try:
                fitted = fit_candidate(name, ctx)
                chosen[name][test_rows], estimate = cand.decide_and_estimate(
                    fitted, test.features, cost, budget, eligible_rows[test_rows], tiebreak
                )
                if isinstance(fitted, cand.FittedScores):  # the report's Qini of a per-user model
                    scores = oof_estimate.setdefault(name, np.full((n, len(data.arms)), np.nan, dtype=np.float32))
                    scores[test_rows] = estimate
                descriptions[name] = fitted.describe()
            except (ValueError, RuntimeError) as error:  # e.g. too little data for a model's own split
                log.warning("candidate %s not fitted on fold %d: %s", name, k, error)
                descriptions[name] = f"not fitted: {error}"
            seconds[name] += time.perf_counter() - started
    rows = np.flatnonzero(evaluated)
    log_id = "oof:" + hashlib.blake2b(data.margin[rows].tobytes(), digest_size=8).hexdigest()

    def estimates(name: str, gamma: np.ndarray) -> PolicyValueEstimate:
        if name.startswith("blanket:"):
            arm = data.arms.index(name.split(":", 1)[1])
            return estimate_of(blanket_terms(gamma[rows], chosen[name][rows], fold[rows], arm), log_id)
        return value_of(gamma[rows], chosen[name][rows], log_id)

    results = {
        name: CandidateResult(
            name,
            estimates(name, gamma_all),
            estimates(name, gamma_ips),
            float(np.mean(chosen[name][rows] != data.none_index)) if len(rows) else 0.0,
            seconds[name],
            descriptions.get(name, ""),
        )
        for name in names
    }
    selection = select(results, z, rollout_share)
    # Costs are checked on windows no later offer cut: a cut window's promo stops being redeemed
    # (the newer offer is), so its realised discount says less than the offer costs when it runs.
    uncut = rows[data.window_days[rows] >= data.arm_window[data.arm_index[rows]] - 1e-6]
    if data.budget_cost == "discount" and len(uncut):
        selection.cost_calibration = shared_all.cost_model.calibrate(
            predicted_cost[uncut], data.full_discount[uncut], data.arm_index[uncut]
        )
        if selection.chosen != "none":
            logged_arm = data.arm_index[uncut]
            followed = (chosen[selection.chosen][uncut] == logged_arm) & (logged_arm != data.none_index)
            selection.policy_cost_check = shared_all.cost_model.calibrate_policy(
                predicted_cost[uncut] * shared_all.cost_model.calibration[logged_arm],
                data.full_discount[uncut],
                np.where(followed, 1.0 / data.logged.propensity[uncut], 0.0),
            )
    metrics = {
        "folds": folds,
        "rows": int(n),
        "evaluated_rows": int(len(rows)),
        "z": z,
        "candidates": {name: r.as_dict(z) for name, r in results.items()},
        "status": selection.status,
        "chosen": selection.chosen,
        "leader": selection.leader,
        "message": selection.message,
        "rollout_share": selection.rollout_share,
        "cost_calibration": selection.cost_calibration,
        "policy_cost_check": selection.policy_cost_check,
    }
    scored = oof_estimate.get(selection.chosen)
    if scored is not None and len(rows) and np.isfinite(scored[rows]).all():
        # the report's Qini curves: how the chosen model's out-of-fold ranking finds each arm's responders
        metrics["models"] = {
            selection.chosen: {"qini": qini_by_arm(scored[rows].astype(np.float64), data.take(rows).logged)}
        }
    tiebreak = _tiebreak(data.groups, np.arange(n), seed)
    budget = None if budget_per_user is None else budget_per_user * n
    ctx = TrainingContext(
        data,
        shared_all,
        gamma_all,
        shared_all.cost(data.features, data),
        budget,
        eligible_arms,
        tiebreak,
        seed,
        options or {},
    )
    fitted = None
    if refit and selection.chosen != "none":
        fitted = fit_candidate(selection.chosen, ctx)
        metrics["chosen_description"] = fitted.describe()
    return selection, fitted, ctx, metrics
