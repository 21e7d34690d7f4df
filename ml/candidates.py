"""The candidate policies a night chooses among, from the simplest to per-user uplift.

Each candidate ``fit``s on logged training rows (with the shared models and the rows'
doubly robust scores, :class:`ml.selection.TrainingContext`) and returns a fitted policy
whose ``decide`` turns users' features into one arm each under a budget:

| candidate | complexity | the policy |
|---|---|---|
| ``none`` | 0 | nobody gets an offer |
| ``blanket:<arm>`` | 1 | that arm to eligible users in random order while the budget lasts |
| ``ranked_rule`` | 2 | one arm to the top share of users ranked by one feature ("p_pct20 to the top 25% by spend_90d"), the rule the pooled response model predicts pays most |
| ``policy_tree`` | 3 | a depth-2 policy tree on doubly robust scores (econml ``PolicyTree``): an arm per segment |
| ``pooled_response`` | 4 | per-user incremental margin of :mod:`ml.models.pooled_response`, allocated by ``ml.allocation.allocate`` |
| ``boosted_response`` | 5 | per-user incremental margin of :mod:`ml.models.boosted_response` (bagged trees), less its bootstrap spread |
| ``dr_ridge`` | 5 | per-user DR-ridge uplift (:mod:`ml.models.dr_ridge`), conservative scores |
| ``tf_multihead`` | 5 | per-user TensorFlow multi-head response model (:mod:`ml.models.tf_multihead`) |

Rules and segments are fitted on the doubly robust scores of the training rows only; their
value is judged on other rows (:mod:`ml.selection`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.allocation import allocate
from ml.predictions import NONE_ARM

RULE_SHARES = (0.1, 0.25, 0.5, 1.0)
RULE_RESAMPLES = 50
TREE_DEPTH = 2
TREE_MIN_LEAF_SHARE = 0.05


def fill_in_order(
    order: np.ndarray, arm: np.ndarray, cost: np.ndarray, budget: float | None, limit: int | None = None
) -> np.ndarray:
    """Users in ``order`` get ``arm[user]`` (none where ``arm`` is -1) while the cumulative cost
    stays within ``budget`` and at most ``limit`` users are served; everyone else -1."""
    chosen = np.full(len(arm), -1, dtype=np.int64)
    order = np.asarray(order)[np.asarray(arm)[order] >= 0]
    if limit is not None:
        order = order[:limit]
    if budget is not None and len(order):
        spent = np.cumsum(cost[order, arm[order]])
        order = order[spent <= budget + 1e-9]
    chosen[order] = arm[order]
    return chosen


def _with_none(chosen: np.ndarray, none: int) -> np.ndarray:
    return np.where(chosen < 0, none, chosen)


@dataclass
class FittedNone:
    arms: list[str]
    name: str = "none"

    def decide(self, features, cost, budget, eligible, tiebreak) -> np.ndarray:
        return np.full(len(features), self.arms.index(NONE_ARM), dtype=np.int64)

    def estimate(self, features) -> np.ndarray:
        return np.zeros((len(features), len(self.arms)))

    def describe(self) -> str:
        return "send nothing"


@dataclass
class FittedBlanket:
    arms: list[str]
    arm: int
    value_per_send: float  # mean doubly robust incremental margin per send on the training rows

    @property
    def name(self) -> str:
        return f"blanket:{self.arms[self.arm]}"

    def decide(self, features, cost, budget, eligible, tiebreak) -> np.ndarray:
        arm = np.where(eligible[:, self.arm], self.arm, -1)
        return _with_none(
            fill_in_order(np.argsort(tiebreak, kind="stable"), arm, cost, budget), self.arms.index(NONE_ARM)
        )

    def estimate(self, features) -> np.ndarray:
        out = np.zeros((len(features), len(self.arms)))
        out[:, self.arm] = self.value_per_send
        return out

    def describe(self) -> str:
        return f"{self.arms[self.arm]} to every eligible user the budget allows, in random order"


@dataclass
class FittedRankedRule:
    arms: list[str]
    arm: int
    feature: str
    descending: bool
    share: float
    value_per_send: float

    name: str = "ranked_rule"

    def _order(self, features, tiebreak) -> np.ndarray:
        values = pd.to_numeric(features[self.feature], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
        key = -values if self.descending else values
        return np.lexsort((tiebreak, key))

    def decide(self, features, cost, budget, eligible, tiebreak) -> np.ndarray:
        arm = np.where(eligible[:, self.arm], self.arm, -1)
        limit = int(np.floor(self.share * len(features) + 1e-9))
        return _with_none(
            fill_in_order(self._order(features, tiebreak), arm, cost, budget, limit), self.arms.index(NONE_ARM)
        )

    def estimate(self, features) -> np.ndarray:
        out = np.zeros((len(features), len(self.arms)))
        out[:, self.arm] = self.value_per_send
        return out

    def describe(self) -> str:
        side = "highest" if self.descending else "lowest"
        return f"{self.arms[self.arm]} to the {self.share:.0%} of users with the {side} {self.feature}"


def fit_ranked_rule(
    arms,
    features: pd.DataFrame,
    feature_names,
    gamma: np.ndarray,
    cost: np.ndarray,
    budget: float | None,
    eligible_arms: np.ndarray,
    tiebreak: np.ndarray,
    seed: int = 0,
    resamples: int = RULE_RESAMPLES,
    predicted: np.ndarray | None = None,
) -> FittedRankedRule | None:
    """The (arm, feature, direction, share) rule under ``budget`` chosen on these rows.

    With ``predicted`` ([n, arms] a pooled response model's incremental margin per row, fitted on
    these rows): the rule whose users carry the most *predicted* incremental margin (the readable
    rule that best reproduces the model; the model's P(order) borrows strength across arms and
    rows, where a rule's doubly robust total on a few hundred converters is mostly noise), kept only
    when its doubly robust total on these rows is positive too. Without: the rule that most often
    carries the most doubly robust value on Poisson-bootstrap reweightings of these rows
    (stability selection: one argmax over dozens of noisy rule values picks noise). None when the
    chosen rule has no positive value."""
    n = len(features)
    none = arms.index(NONE_ARM)
    weights = np.random.default_rng(seed).poisson(1.0, size=(resamples, n)).astype(np.float64)
    if predicted is not None:  # one exact pass: the model's totals, with the DR total beside them
        weights = np.ones((1, n))
        gamma = np.stack([np.asarray(predicted, dtype=np.float64), gamma])  # [2, n, arms]
    rules, totals = [], []  # per rule: (k, name, descending, share, m) and [resamples] weighted totals
    for name in feature_names:
        values = pd.to_numeric(features[name], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
        if np.all(values == values[0]):
            continue
        for descending in (True, False):
            order = np.lexsort((tiebreak, -values if descending else values))
            w = weights[:, order]
            for k in np.flatnonzero(eligible_arms):
                if k == none:
                    continue
                cum_cost = np.cumsum(cost[order, k])
                affordable = n if budget is None else int(np.searchsorted(cum_cost, budget + 1e-9, side="right"))
                if predicted is not None:  # [2, n]: predicted, doubly robust
                    cum = np.cumsum(gamma[:, order, k], axis=1)
                else:
                    cum = np.cumsum(w * gamma[order, k][None, :], axis=1)
                for share in RULE_SHARES:
                    m = min(int(np.floor(share * n + 1e-9)), affordable)
                    if m <= 0 or any(r[:3] == (int(k), name, descending) and r[4] == m for r in rules):
                        continue
                    rules.append((int(k), name, descending, share, m))
                    totals.append(cum[:, m - 1])
    if not rules:
        return None
    totals = np.array(totals)  # [rules, resamples] (with predicted: [rules, (predicted, doubly robust)])
    if predicted is not None:
        best = int(np.argmax(totals[:, 0]))
        if totals[best, 0] <= 0 or totals[best, 1] <= 0:
            return None
        k, name, descending, share, m = rules[best]
        return FittedRankedRule(list(arms), k, name, descending, share, float(totals[best, 1] / m))
    wins = np.bincount(totals.argmax(axis=0), minlength=len(rules))
    mean = totals.mean(axis=1)
    best = int(np.lexsort((-mean, -wins))[0])
    if mean[best] <= 0:
        return None
    k, name, descending, share, m = rules[best]
    return FittedRankedRule(list(arms), k, name, descending, share, float(mean[best] / m))


@dataclass
class FittedPolicyTree:
    arms: list[str]
    tree: object  # econml.policy.PolicyTree
    columns: list[str]  # tree input columns (feature names, category indicators)
    treatments: list[int]  # tree output index -> arm index
    rules: list[str]

    name: str = "policy_tree"

    def _inputs(self, features: pd.DataFrame) -> np.ndarray:
        return tree_inputs(features, self.columns)

    def decide(self, features, cost, budget, eligible, tiebreak) -> np.ndarray:
        x = self._inputs(features)
        leaf_value = self.tree.predict_value(x)  # [n, treatments]: the leaf's mean DR score per treatment
        pick = np.asarray(self.treatments)[self.tree.predict(x)]
        value = leaf_value[np.arange(len(x)), self.tree.predict(x)]
        none = self.arms.index(NONE_ARM)
        ok = (pick != none) & (value > 0) & eligible[np.arange(len(x)), pick]
        arm = np.where(ok, pick, -1)
        order = np.lexsort((tiebreak, -value))
        return _with_none(fill_in_order(order, arm, cost, budget), none)

    def estimate(self, features) -> np.ndarray:
        x = self._inputs(features)
        out = np.zeros((len(x), len(self.arms)))
        out[:, self.treatments] = self.tree.predict_value(x)
        out[:, self.arms.index(NONE_ARM)] = 0.0
        return out

    def describe(self) -> str:
        return "; ".join(self.rules)


def tree_inputs(features: pd.DataFrame, columns: list[str]) -> np.ndarray:
    out = np.zeros((len(features), len(columns)))
    for j, column in enumerate(columns):
        if "=" in column:
            name, level = column.split("=", 1)
            out[:, j] = (features[name].astype("object").fillna("unknown").astype(str) == level).to_numpy(
                dtype=np.float64
            )
        else:
            out[:, j] = pd.to_numeric(features[column], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
    return out


def fit_policy_tree(
    arms, features: pd.DataFrame, columns: list[str], gamma: np.ndarray, eligible_arms: np.ndarray, seed: int
) -> FittedPolicyTree:
    from econml.policy import PolicyTree

    treatments = [k for k in range(len(arms)) if eligible_arms[k]]
    x = tree_inputs(features, columns)
    tree = PolicyTree(
        max_depth=TREE_DEPTH,
        min_samples_leaf=max(20, int(TREE_MIN_LEAF_SHARE * len(x))),
        honest=True,
        random_state=seed,
    ).fit(x, gamma[:, treatments])
    return FittedPolicyTree(
        list(arms), tree, list(columns), treatments, _tree_rules(tree, columns, [arms[t] for t in treatments])
    )


def tree_leaves(tree, columns: list[str]) -> list[tuple[int, str]]:
    """(leaf node id, its path: "spend_30d > 40 & ...", "" for the root) per leaf, depth first."""
    inner = tree.tree_
    leaves: list[tuple[int, str]] = []

    def walk(node: int, path: list[str]) -> None:
        left, right = inner.children_left[node], inner.children_right[node]
        if left < 0:
            leaves.append((node, " & ".join(path)))
            return
        column, threshold = columns[inner.feature[node]], inner.threshold[node]
        walk(left, [*path, f"{column} <= {threshold:.3g}"])
        walk(right, [*path, f"{column} > {threshold:.3g}"])

    walk(0, [])
    return leaves


def _tree_rules(tree, columns: list[str], names: list[str]) -> list[str]:
    rules = []
    for node, path in tree_leaves(tree, columns):
        value = np.asarray(tree.tree_.value[node]).ravel()
        rules.append(f"{path or 'everyone'}: {names[int(np.argmax(value[: len(names)]))]}")
    return rules


@dataclass
class FittedScores:
    """A per-user model: its [n, arms] decision scores allocated under the budget."""

    arms: list[str]
    name: str
    scorer: object  # callable features -> (decision [n, arms], estimate [n, arms])

    def decide(self, features, cost, budget, eligible, tiebreak) -> np.ndarray:
        decision, _ = self.scorer(features)
        return self.decide_scored(decision, cost, budget, eligible, tiebreak)

    def decide_scored(self, decision, cost, budget, eligible, tiebreak) -> np.ndarray:
        """``decide`` on decision scores the scorer already gave (it is scored once for decision and estimate)."""
        none = self.arms.index(NONE_ARM)
        if budget is None:
            score = np.where(eligible, decision, -np.inf)
            score[:, none] = 0.0
            return score.argmax(axis=1).astype(np.int64)
        # a hair of the tiebreak keeps equal scores from being served in row order
        jitter = 1e-9 * np.asarray(tiebreak)[:, None]
        return allocate(np.where(decision > 0, decision + jitter, decision), cost, budget, eligible, none).arm_index

    def estimate(self, features) -> np.ndarray:
        return self.scorer(features)[1]

    def describe(self) -> str:
        return f"per-user uplift ({self.name}), allocated under the budget"


def displaced_value(values: np.ndarray, live: np.ndarray, expected_at_send: np.ndarray | None = None) -> np.ndarray:
    """[n] what each user's live offer is still worth: the share of its window still to run (``live``,
    [n, arms]) times the larger of its value by ``values`` ([n, arms] incremental margin per send)
    and the value the platform expected of it when it sent it (``expected_at_send``, [n]; 0 for an
    offer it did not send), neither counted below 0."""
    live = np.asarray(live, dtype=np.float64)
    value = ((live > 0) * np.maximum(values, 0.0)).sum(axis=1)
    if expected_at_send is not None:
        value = np.maximum(value, np.maximum(np.nan_to_num(np.asarray(expected_at_send, dtype=np.float64)), 0.0))
    return live.sum(axis=1) * value


def net_of_live_offer(
    values: np.ndarray, live: np.ndarray, none: int, expected_at_send: np.ndarray | None = None
) -> np.ndarray:
    """``values`` [n, arms] less, on every offer, what it displaces (:func:`displaced_value`): a new
    offer replaces the one a user holds (int_exposure_outcomes cuts a window at the next offer), so
    it pays only by what it adds beyond the rest of that offer's window. ``none`` keeps the live
    offer, and is unchanged."""
    values = np.asarray(values, dtype=np.float64)
    out = values - displaced_value(values, live, expected_at_send)[:, None]
    out[:, none] = values[:, none]
    return out


def decide_and_estimate(
    fitted,
    features,
    cost,
    budget,
    eligible,
    tiebreak,
    held: np.ndarray | None = None,
    held_expected: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(arm [n], estimate [n, arms]) of a fitted policy; a per-user model is scored once for both.

    ``held`` [n, arms]: the offer each user holds tonight, as the share of its window still to run
    (0: not held; a bool array counts a held offer's whole window). It is never sent again (a re-send
    only restarts a window already running, and no held-out row valued one: training drops the
    exposures sent under a live offer). Any other offer would replace it, so a policy that values
    the held offer itself (the per-user models, the policy tree) counts a new one only by what it
    adds beyond the rest of the held one's window, valued at the larger of the policy's value of it
    and what the platform expected of it when it sent it (``held_expected`` [n]; tonight's policy
    may be another candidate than the one that chose it) (:func:`net_of_live_offer`), in its
    decision and in the estimate it returns. A ranked rule keeps its reach: its users are the first of
    its ranking that the budget reaches, as it was valued, and a holder's place is left unsent
    rather than given to a user past the reach; the other policies give the budget to the next
    eligible user in their own order (their value is per send or per user)."""
    eligible = np.asarray(eligible, dtype=bool)
    live = np.zeros(eligible.shape) if held is None else np.array(held, dtype=np.float64)
    none = fitted.arms.index(NONE_ARM)
    live[:, none] = 0.0
    blocked = live > 0
    allowed = eligible & ~blocked
    rows = np.arange(len(eligible))
    if isinstance(fitted, FittedScores):
        decision, estimate = fitted.scorer(features)
        if blocked.any():
            decision = net_of_live_offer(decision, live, none, held_expected)
            estimate = net_of_live_offer(estimate, live, none, held_expected)
        return fitted.decide_scored(decision, cost, budget, allowed, tiebreak), estimate
    if isinstance(fitted, FittedRankedRule):
        arm = fitted.decide(features, cost, budget, eligible, tiebreak)
        arm = np.where(blocked[rows, arm], none, arm)
    else:
        arm = fitted.decide(features, cost, budget, allowed, tiebreak)
    estimate = fitted.estimate(features)
    if blocked.any():
        estimate = net_of_live_offer(estimate, live, none, held_expected)
        # a holder's offer that adds nothing beyond the one it would replace is not sent
        arm = np.where(blocked.any(axis=1) & (estimate[rows, arm] <= 0), none, arm)
    return arm, estimate
