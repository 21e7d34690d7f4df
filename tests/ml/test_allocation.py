"""Budget-constrained allocation, holdout selection and propensities."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ml.allocation import allocate, apply_holdout, chosen_arm_propensity, holdout_mask


# ---------------------------------------------------------------------------- helpers
def spent(cost, arm_index, none_index):
    per_user = cost[np.arange(len(arm_index)), arm_index]
    return float(np.where(arm_index == none_index, 0.0, per_user).sum())


def brute_force_best(margin, cost, budget, eligible, none_index):
    """Best total margin over every assignment (tiny instances only)."""
    n, k = margin.shape
    best = 0.0
    for combo in itertools.product(range(k), repeat=n):
        combo = np.array(combo)
        if not eligible[np.arange(n), combo][combo != none_index].all():
            continue
        gain = np.where(combo == none_index, 0.0, margin[np.arange(n), combo])
        if (gain < 0).any():
            continue
        if spent(cost, combo, none_index) <= budget:
            best = max(best, float(gain.sum()))
    return best


finite = dict(allow_nan=False, allow_infinity=False)


@st.composite
def instances(draw, max_users=30, max_arms=5):
    n = draw(st.integers(1, max_users))
    k = draw(st.integers(2, max_arms))
    margin = draw(arrays(np.float64, (n, k), elements=st.floats(-5, 10, **finite)))
    cost = draw(arrays(np.float64, (n, k), elements=st.floats(0, 10, **finite)))
    eligible = draw(arrays(np.bool_, (n, k)))
    none_index = draw(st.integers(0, k - 1))
    budget = draw(st.one_of(st.just(0.0), st.floats(0, 60, **finite)))
    return margin, cost, budget, eligible, none_index


# ---------------------------------------------------------------------------- allocation
@settings(max_examples=300, deadline=None)
@given(instances())
def test_budget_is_never_exceeded_and_only_positive_eligible_arms_are_chosen(instance):
    margin, cost, budget, eligible, none_index = instance
    allocation = allocate(margin, cost, budget, eligible, none_index)
    arm = allocation.arm_index
    assert arm.shape == (margin.shape[0],)
    assert spent(cost, arm, none_index) <= budget
    assert allocation.total_cost == spent(cost, arm, none_index)
    offered = arm != none_index
    assert eligible[np.arange(len(arm)), arm][offered].all()
    assert (margin[np.arange(len(arm)), arm][offered] > 0).all()
    assert allocation.lambda_ >= 0


@settings(max_examples=150, deadline=None)
@given(instances(max_users=6, max_arms=3))
def test_close_to_the_brute_force_optimum(instance):
    margin, cost, budget, eligible, none_index = instance
    allocation = allocate(margin, cost, budget, eligible, none_index)
    best = brute_force_best(margin, cost, budget, eligible, none_index)
    usable = eligible.copy()
    usable[:, none_index] = False
    largest_single_margin = float(np.max(np.where(usable, margin, 0.0), initial=0.0))
    # Lagrangian + greedy fill is within one user's margin of the optimum (LP rounding bound).
    assert allocation.total_incremental_margin >= best - largest_single_margin - 1e-9
    assert allocation.total_incremental_margin <= best + 1e-9


def test_near_optimal_on_random_small_instances():
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(150):
        n, k = 7, 3
        margin = rng.normal(1.0, 1.5, (n, k))
        cost = rng.exponential(1.0, (n, k))
        eligible = rng.random((n, k)) < 0.9
        budget = float(rng.uniform(0.5, 4.0))
        best = brute_force_best(margin, cost, budget, eligible, 0)
        if best > 0:
            ratios.append(allocate(margin, cost, budget, eligible, 0).total_incremental_margin / best)
    assert np.mean(ratios) > 0.97
    assert np.min(ratios) > 0.6


def test_zero_budget_assigns_nobody():
    rng = np.random.default_rng(1)
    margin = rng.uniform(1, 5, (100, 4))
    cost = rng.uniform(0.1, 2, (100, 4))
    allocation = allocate(margin, cost, 0.0, None, 3)
    assert (allocation.arm_index == 3).all()
    assert allocation.total_cost == 0.0


def test_negative_uplift_arms_are_never_chosen_even_with_unlimited_budget():
    margin = np.array([[0.0, -1.0, 2.0], [0.0, -0.5, -0.1], [0.0, 3.0, -2.0]])
    cost = np.array([[0.0, 0.1, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.1]])
    allocation = allocate(margin, cost, 1e9, None, 0)
    assert allocation.arm_index.tolist() == [2, 0, 1]
    assert allocation.lambda_ == 0.0


def test_ineligible_arms_and_the_none_columns_values_are_ignored():
    margin = np.array([[5.0, 4.0, 100.0]])
    cost = np.array([[1.0, 1.0, 100.0]])  # none is column 2: its numbers mean nothing
    eligible = np.array([[False, True, False]])
    allocation = allocate(margin, cost, 10.0, eligible, 2)
    assert allocation.arm_index.tolist() == [1]
    assert allocation.total_cost == 1.0


def test_tight_budget_prefers_the_best_margin_per_cost():
    margin = np.array([[0.0, 10.0], [0.0, 4.0], [0.0, 3.0]])
    cost = np.array([[0.0, 5.0], [0.0, 1.0], [0.0, 1.0]])
    allocation = allocate(margin, cost, 2.0, None, 0)
    assert allocation.arm_index.tolist() == [0, 1, 1]
    assert allocation.total_cost == 2.0
    assert allocation.total_incremental_margin == 7.0


def test_greedy_fill_spends_leftover_budget_on_a_cheaper_arm():
    # The Lagrangian solution stops at promo 2 for user 0 (too expensive to add both); the fill
    # then upgrades user 1 to the cheap arm that still fits.
    margin = np.array([[0.0, 6.0, 0.0], [0.0, 0.0, 1.0]])
    cost = np.array([[0.0, 3.0, 0.0], [0.0, 0.0, 1.0]])
    allocation = allocate(margin, cost, 3.5, None, 0)
    assert allocation.arm_index.tolist() == [1, 0]
    allocation = allocate(margin, cost, 4.0, None, 0)
    assert allocation.arm_index.tolist() == [1, 2]


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="budget"):
        allocate(np.ones((2, 2)), np.ones((2, 2)), -1.0, None, 0)
    with pytest.raises(ValueError, match="none_index"):
        allocate(np.ones((2, 2)), np.ones((2, 2)), 1.0, None, 2)
    with pytest.raises(ValueError, match="cost has shape"):
        allocate(np.ones((2, 2)), np.ones((2, 3)), 1.0, None, 0)
    with pytest.raises(ValueError, match="negative expected cost"):
        allocate(np.ones((2, 2)), -np.ones((2, 2)), 1.0, None, 0)


def test_a_million_users_by_ten_arms_in_seconds():
    rng = np.random.default_rng(2)
    n, k = 1_000_000, 10
    margin = rng.normal(0.5, 1.0, (n, k))
    cost = rng.exponential(1.0, (n, k))
    started = time.perf_counter()
    allocation = allocate(margin, cost, 50_000.0, None, 0)
    elapsed = time.perf_counter() - started
    assert allocation.total_cost <= 50_000.0
    assert allocation.total_cost > 0.999 * 50_000.0  # the budget binds and is (nearly) spent
    assert elapsed < 20.0  # a couple of seconds on an idle 2-core machine; generous for shared CI


# ---------------------------------------------------------------------------- holdout and propensity
def test_holdout_share_is_close_to_target_and_stable():
    ids = np.array([f"user-{i}" for i in range(100_000)], dtype=object)
    mask = holdout_mask(ids, 0.1, "promo-2026")
    assert mask.mean() == pytest.approx(0.1, abs=0.006)
    assert np.array_equal(mask, holdout_mask(ids, 0.1, "promo-2026"))
    # a user's membership does not depend on who else is scored that night
    subset = ids[::7][::-1]
    assert np.array_equal(holdout_mask(subset, 0.1, "promo-2026"), mask[::7][::-1])
    # a larger share only adds users; another salt draws another holdout
    assert (mask <= holdout_mask(ids, 0.2, "promo-2026")).all()
    other = holdout_mask(ids, 0.1, "promo-2027")
    assert (mask & other).mean() == pytest.approx(0.01, abs=0.003)
    assert not holdout_mask(ids[:100], 0.0, "s").any()
    assert holdout_mask(ids[:100], 1.0, "s").all()


def test_holdout_rejects_shares_outside_unit_interval():
    with pytest.raises(ValueError, match="share"):
        holdout_mask(np.array(["a"]), 1.5, "s")


def test_propensity_of_the_recorded_arm():
    none = 0
    greedy = np.array([2, 2, 0, 0, 1])
    is_holdout = np.array([False, True, False, True, False])
    recorded = apply_holdout(greedy, is_holdout, none)
    assert recorded.tolist() == [2, 0, 0, 0, 1]
    propensity = chosen_arm_propensity(greedy, 0.05, none, is_holdout)
    np.testing.assert_allclose(propensity, [0.95, 0.05, 1.0, 1.0, 0.95])
    np.testing.assert_allclose(chosen_arm_propensity(greedy, 0.05, none), [0.95, 0.95, 1.0, 1.0, 0.95])


def test_propensities_match_how_often_the_policy_records_each_arm():
    ids = np.array([f"u{i}" for i in range(60_000)], dtype=object)
    greedy = np.where(np.arange(ids.size) % 3 == 0, 0, 1)  # 1/3 greedy none
    share = 0.2
    is_holdout = holdout_mask(ids, share, "night")
    recorded = apply_holdout(greedy, is_holdout, 0)
    propensity = chosen_arm_propensity(greedy, share, 0, is_holdout)
    offered = greedy == 1
    # empirical P(record arm 1 | greedy 1) and P(record none | greedy 1) vs the stated propensities
    assert (recorded[offered] == 1).mean() == pytest.approx(propensity[offered & ~is_holdout][0], abs=0.01)
    assert (recorded[offered] == 0).mean() == pytest.approx(propensity[offered & is_holdout][0], abs=0.01)
    assert ((propensity > 0) & (propensity <= 1)).all()
