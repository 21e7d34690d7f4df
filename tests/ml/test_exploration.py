"""Epsilon-greedy exploration: exact propensities and the budget."""

from __future__ import annotations

import numpy as np
import pytest
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


# ------------------------------------------------------------- exploration guided by segments
def _segment_case(seed: int, n: int, n_arms: int, n_segments: int):
    rng = np.random.default_rng(seed)
    segments = rng.integers(0, n_segments, n)
    mean = rng.normal(0, 1, (n_segments, n_arms))
    se = rng.uniform(0.05, 1.0, (n_segments, n_arms))
    se[rng.random((n_segments, n_arms)) < 0.1] = np.inf  # a segment-arm with no evidence
    mean[:, 0] = se[:, 0] = 0.0
    return segments, mean, se


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(1, 300),
    st.integers(2, 6),
    st.integers(0, 5),
    st.floats(0.0, 0.5),
    st.floats(0.0, 1.0),
    st.floats(0.0, 200.0),
)
def test_exploration_never_exceeds_the_budget_and_propensities_are_the_policy(
    seed, n, n_arms, n_segments, rate, reserve_share, budget
):
    """Plain epsilon-greedy (no segments) and guided by ``n_segments`` segments' arm values."""
    margin, cost, eligible, users = _case(seed, n, n_arms)
    segments, mean, se = _segment_case(seed, n, n_arms, n_segments) if n_segments else (None, None, None)
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
        segments=segments,
        segment_mean=mean,
        segment_se=se,
    )
    rows = np.arange(n)
    recorded = result.recorded_arm
    assert cost[rows, recorded][recorded != 0].sum() <= budget + 1e-9
    assert cost[rows, recorded][result.is_exploration & (recorded != 0)].sum() <= reserve + 1e-9
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0)
    np.testing.assert_allclose(result.propensity, result.probabilities[rows, recorded])
    assert (result.propensity > 0).all()
    assert (recorded[holdout] == 0).all()
    if segments is None:
        assert result.is_exploration.sum() == round(rate * (~holdout).sum())
    else:  # guided: at most the rate, less where the segments' best arms are settled
        assert result.is_exploration.sum() <= round(rate * (~holdout).sum())
    assert not (result.is_exploration & holdout).any()
    explored = recorded[result.is_exploration]
    assert (eligible[rows[result.is_exploration], explored] | (explored == 0)).all()


def test_guided_exploration_frequencies_match_the_stated_probabilities():
    """Over many nights' salts, how often each (segment, arm) is recorded is what the stated
    probabilities say: the propensities the off-policy estimators divide by are the policy's."""
    n, n_arms = 400, 4
    _, cost, eligible, users = _case(5, n, n_arms)
    eligible[:] = True
    cost[:, 1:] = 0.1
    segments = np.arange(n) % 2
    # segment 0: arm 1 clearly best; segment 1: arms 1-3 equally uncertain
    mean = np.array([[0.0, 2.0, -1.0, -1.0], [0.0, 0.1, 0.1, 0.1]])
    se = np.array([[0.0, 0.1, 0.1, 0.1], [0.0, 1.0, 1.0, 1.0]])
    greedy = np.zeros(n, dtype=np.int64)
    observed, expected = np.zeros((2, n_arms)), np.zeros((2, n_arms))
    for k in range(200):
        result = explore(
            greedy,
            np.zeros(n, dtype=bool),
            eligible,
            cost,
            0,
            user_ids=users,
            rate=0.2,
            reserve_budget=100.0,
            holdout_share=0.0,
            salt=f"night-{k}",
            segments=segments,
            segment_mean=mean,
            segment_se=se,
        )
        for s in (0, 1):
            np.add.at(observed[s], result.recorded_arm[segments == s], 1)
            expected[s] += result.probabilities[segments == s].sum(axis=0)
    off_greedy = np.s_[:, 1:]
    assert (np.abs(observed[off_greedy] - expected[off_greedy]) < 4 * np.sqrt(expected[off_greedy]) + 1).all()
    # the uncertain segment gets more explorers, and the sure one mostly its best arm
    assert expected[1, 1:].sum() > 1.5 * expected[0, 1:].sum()
    assert expected[0, 1] > 3 * expected[0, 2]


def test_exploration_falls_as_the_segments_settle():
    """The same users explore at nearly the full rate where no arm is known to be best, and at
    about a fifth of it once the evidence is sure of every segment's best arm."""
    from ml.allocation import EXPLORATION_FLOOR, exploring_share

    n, n_arms = 2000, 4
    _, cost, eligible, users = _case(7, n, n_arms)
    eligible[:] = True
    cost[:, 1:] = 0.1
    segments = np.arange(n) % 2
    greedy = np.zeros(n, dtype=np.int64)
    unknown = (np.zeros((2, n_arms)), np.full((2, n_arms), np.inf))
    settled = (np.array([[0.0, 2.0, -1.0, -1.0], [0.0, -3.0, -2.0, -4.0]]), np.full((2, n_arms), 0.01))
    explorers = {}
    for name, (mean, se) in {"unknown": unknown, "settled": settled}.items():
        se[:, 0] = 0.0
        result = explore(
            greedy,
            np.zeros(n, dtype=bool),
            eligible,
            cost,
            0,
            user_ids=users,
            rate=0.2,
            reserve_budget=100.0,
            holdout_share=0.0,
            salt="night",
            segments=segments,
            segment_mean=mean,
            segment_se=se,
        )
        explorers[name] = int(result.is_exploration.sum())
        np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0)
    floor = EXPLORATION_FLOOR / (EXPLORATION_FLOOR + 1.0 - 1.0 / n_arms)
    assert exploring_share(np.array([1.0 / n_arms, 1.0]), n_arms) == pytest.approx([1.0, floor])
    # no evidence: none is best only when all three unknown arms draw below it (1/8), so each
    # offer is best in 7/24 of the draws and the segments explore at 0.96 of the rate
    assert 0.95 * round(0.2 * n) <= explorers["unknown"] <= round(0.2 * n)
    assert explorers["settled"] == round(0.2 * n * floor)


def test_stratum_sizes_sum_to_m_within_each_stratum():
    from ml.allocation import stratum_sizes

    sizes = np.array([10, 1000, 0, 50])
    out = stratum_sizes(100, sizes, np.array([5.0, 0.1, 1.0, 1.0]))
    assert out.sum() == 100 and (out <= sizes).all() and out[2] == 0
    assert out[0] == 10  # its demand (50) is over its size: capped, the rest shared out
    assert stratum_sizes(1060, sizes, np.ones(4)).tolist() == sizes.tolist()
    np.testing.assert_array_equal(stratum_sizes(0, sizes, np.ones(4)), 0)


def test_only_explorable_users_explore_and_the_propensities_say_so():
    n, n_arms = 2000, 3
    margin, cost, eligible, users = _case(5, n, n_arms)
    eligible[:] = True
    cost[:, 1:] = 0.1
    greedy = allocate(margin, cost, 1e9, eligible, 0).arm_index
    holdout = np.arange(n) % 20 == 0
    explorable = np.arange(n) % 2 == 0
    result = explore(
        greedy,
        holdout,
        eligible,
        cost,
        0,
        user_ids=users,
        rate=0.3,
        reserve_budget=1000.0,
        holdout_share=0.05,
        salt="night",
        explorable=explorable,
    )
    assert result.is_exploration.any() and not result.is_exploration[~explorable].any()
    assert abs(result.is_exploration[explorable & ~holdout].mean() - 0.3) < 0.01  # the rate among the explorable
    rows = np.arange(n)
    # not explorable: the policy's arm, or none when the holdout draws them; explorable: exploration's mix
    stay = ~explorable & ~holdout
    assert np.allclose(result.probabilities[stay, greedy[stay]], 0.95 + 0.05 * (greedy[stay] == 0))
    assert np.allclose(result.probabilities.sum(axis=1), 1.0)
    assert np.allclose(result.propensity, result.probabilities[rows, result.recorded_arm])
    assert (result.probabilities[explorable & (greedy != 0)][:, 0] > 0.05).all()  # held-out users included
