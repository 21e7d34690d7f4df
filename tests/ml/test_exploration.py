"""Epsilon-greedy exploration: exact propensities and the budget."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.allocation import allocate, explore


def _case(seed: int, n: int, n_arms: int):
    rng = np.random.default_rng(seed)
    margin = rng.normal(0, 2, (n, n_arms))
    cost = rng.uniform(0, 3, (n, n_arms))
    margin[:, 0] = cost[:, 0] = 0.0
    eligible = rng.random((n, n_arms)) < 0.8
    return margin, cost, eligible, np.array([f"u{i}" for i in range(n)])


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(1, 300),
    st.integers(2, 6),
    st.floats(0.0, 0.5),
    st.floats(0.0, 1.0),
    st.floats(0.0, 200.0),
)
def test_exploration_never_exceeds_the_budget_and_propensities_are_the_policy(
    seed, n, n_arms, rate, reserve_share, budget
):
    margin, cost, eligible, users = _case(seed, n, n_arms)
    reserve = budget * reserve_share
    greedy = allocate(margin, cost, budget - reserve, eligible, 0).arm_index
    holdout = np.random.default_rng(seed + 1).random(n) < 0.05
    result = explore(
        greedy,
        holdout,
        eligible,
        cost,
        0,
        user_ids=users,
        rate=rate,
        reserve_budget=reserve,
        holdout_share=0.05,
        salt=f"s{seed}",
    )
    rows = np.arange(n)
    spent = cost[rows, result.recorded_arm][result.recorded_arm != 0].sum()
    assert spent <= budget + 1e-9
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0)
    np.testing.assert_allclose(result.propensity, result.probabilities[rows, result.recorded_arm])
    assert (result.propensity > 0).all()
    assert (result.recorded_arm[holdout] == 0).all()
    assert result.is_exploration.sum() == round(rate * (~holdout).sum())
    assert not (result.is_exploration & holdout).any()
    explored = result.recorded_arm[result.is_exploration]
    assert eligible[rows[result.is_exploration], explored].all() | (explored == 0).all() or (
        (eligible[rows[result.is_exploration], explored] | (explored == 0)).all()
    )


def test_exploration_frequencies_match_the_stated_probabilities():
    n, n_arms = 400, 4
    margin, cost, eligible, users = _case(3, n, n_arms)
    eligible[:] = True
    cost[:, 1:] = 0.1
    greedy = allocate(margin, cost, 1e9, eligible, 0).arm_index
    holdout = np.zeros(n, dtype=bool)
    counts = np.zeros((n, n_arms))
    draws = 300
    for k in range(draws):
        result = explore(
            greedy,
            holdout,
            eligible,
            cost,
            0,
            user_ids=users,
            rate=0.2,
            reserve_budget=100.0,
            holdout_share=0.0,
            salt=f"night-{k}",
        )
        counts[np.arange(n), result.recorded_arm] += 1
    expected = result.probabilities * draws
    # Pooled over users: observed vs expected counts per (greedy?, arm) cell within 4 sd.
    observed_off_greedy = counts.sum() - counts[np.arange(n), greedy].sum()
    expected_off_greedy = expected.sum() - expected[np.arange(n), greedy].sum()
    assert abs(observed_off_greedy - expected_off_greedy) < 4 * np.sqrt(expected_off_greedy)
