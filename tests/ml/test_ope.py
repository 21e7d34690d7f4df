"""Off-policy estimators and the publish gate on logged bandit data whose truth is known."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from ml.ope import (
    dr_value,
    evaluate_policy,
    ips_value,
    one_hot_policy,
    snips_value,
)

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------- synthetic world
# A context x in {0, 1, 2} with known frequencies; 4 arms whose click probability depends on x.
CONTEXT_SHARE = np.array([0.5, 0.3, 0.2])
REWARD_MEAN = np.array(  # [context, arm]
    [
        [0.10, 0.30, 0.20, 0.05],
        [0.40, 0.10, 0.25, 0.05],
        [0.15, 0.20, 0.60, 0.05],
    ]
)
# Non-uniform logging policy: arm 3 (the worst) is logged most, arm 2 rarely in context 2.
LOGGING = np.array(
    [
        [0.20, 0.20, 0.20, 0.40],
        [0.10, 0.30, 0.30, 0.30],
        [0.30, 0.30, 0.10, 0.30],
    ]
)
BEST_ARM = REWARD_MEAN.argmax(axis=1)  # per context
WORST_ARM = REWARD_MEAN.argmin(axis=1)


def true_value(policy_by_context: np.ndarray) -> float:
    """Exact value of a policy given as [context, arm] probabilities."""
    return float(CONTEXT_SHARE @ (policy_by_context * REWARD_MEAN).sum(axis=1))


def logged_bandit(n: int, seed: int):
    """(context, arms, rewards, propensities) logged by LOGGING."""
    rng = np.random.default_rng(seed)
    context = rng.choice(3, size=n, p=CONTEXT_SHARE)
    cumulative = LOGGING[context].cumsum(axis=1)
    arms = (rng.random(n)[:, None] > cumulative).sum(axis=1)
    rewards = (rng.random(n) < REWARD_MEAN[context, arms]).astype(np.float64)
    return context, arms, rewards, LOGGING[context, arms]


BEST_POLICY = np.eye(4)[BEST_ARM]  # [context, arm], deterministic
WORST_POLICY = np.eye(4)[WORST_ARM]
SOFT_POLICY = 0.6 * BEST_POLICY + 0.1  # stochastic: 0.7 on the best arm, 0.1 on each other arm


@pytest.fixture(scope="module")
def log():
    return logged_bandit(40_000, seed=11)


# ---------------------------------------------------------------------------- estimators
@pytest.mark.parametrize("policy", [BEST_POLICY, SOFT_POLICY, WORST_POLICY], ids=["best", "soft", "worst"])
def test_estimators_recover_the_true_value_within_a_few_standard_errors(log, policy):
    context, arms, rewards, propensities = log
    truth = true_value(policy)
    # A deliberately wrong reward model (one constant): DR must still be unbiased.
    wrong_q_hat = np.full((arms.size, 4), 0.3)
    evaluation = evaluate_policy(arms, rewards, propensities, policy[context], reward_model=wrong_q_hat)
    for estimate in (evaluation.ips, evaluation.snips, evaluation.dr):
        assert estimate.n == arms.size
        assert 0 < estimate.stderr < 0.01
        assert abs(estimate.estimate - truth) < 3.5 * estimate.stderr, (estimate, truth)


def test_estimators_differ_from_the_logging_policys_value(log):
    # Guards the test above: the target's truth is far from the naive on-policy mean of the log.
    context, arms, rewards, propensities = log
    assert (
        abs(rewards.mean() - true_value(BEST_POLICY))
        > 20 * ips_value(arms, rewards, propensities, BEST_POLICY[context]).stderr
    )


def test_dr_with_a_perfect_reward_model_has_lower_variance_than_ips(log):
    context, arms, rewards, propensities = log
    target = SOFT_POLICY[context]
    ips = ips_value(arms, rewards, propensities, target)
    dr = dr_value(arms, rewards, propensities, target, reward_model=REWARD_MEAN[context])
    assert dr.stderr < 0.85 * ips.stderr  # measured 0.77: the clicks' own noise remains
    assert abs(dr.estimate - true_value(SOFT_POLICY)) < 3.5 * dr.stderr


def test_snips_equals_the_on_policy_mean_when_target_is_the_logging_policy(log):
    context, arms, rewards, propensities = log
    snips = snips_value(arms, rewards, propensities, LOGGING[context])
    assert snips.estimate == pytest.approx(rewards.mean(), rel=1e-12)
    assert snips.stderr == pytest.approx(rewards.std(ddof=1) / math.sqrt(rewards.size), rel=1e-9)
    assert snips.effective_sample_size == pytest.approx(rewards.size)


def test_reported_standard_errors_match_the_spread_over_repeated_logs():
    # 300 independent logs of 400 rows: the mean reported stderr is the spread of the estimates.
    target = SOFT_POLICY
    estimates = {"ips": [], "snips": [], "dr": []}
    stderrs = {"ips": [], "snips": [], "dr": []}
    q_hat = np.full(4, 0.2)
    for seed in range(300):
        context, arms, rewards, propensities = logged_bandit(400, seed=1000 + seed)
        evaluation = evaluate_policy(arms, rewards, propensities, target[context], np.tile(q_hat, (arms.size, 1)))
        for name in estimates:
            estimates[name].append(getattr(evaluation, name).estimate)
            stderrs[name].append(getattr(evaluation, name).stderr)
    for name in estimates:
        spread = np.std(estimates[name], ddof=1)
        assert np.mean(stderrs[name]) == pytest.approx(spread, rel=0.15), name


def test_weight_clip_caps_each_weight_and_raises_the_effective_sample_size(log):
    context, arms, rewards, propensities = log
    target = BEST_POLICY[context]
    clipped = ips_value(arms, rewards, propensities, target, max_weight=4.0)
    weights = np.minimum(target[np.arange(arms.size), arms] / propensities, 4.0)
    assert clipped.estimate == pytest.approx(float(np.mean(weights * rewards)))
    unclipped = ips_value(arms, rewards, propensities, target)
    assert clipped.effective_sample_size > unclipped.effective_sample_size
    assert clipped.estimate < unclipped.estimate  # clipping the 1/0.1 weights of arm 2 in context 2


def test_one_hot_policy_is_a_deterministic_policy_matrix():
    np.testing.assert_array_equal(one_hot_policy(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="chosen_arms"):
        one_hot_policy(np.array([3]), 3)


# ---------------------------------------------------------------------------- gate
# ---------------------------------------------------------------------------- validation
def _valid():
    arms = np.array([0, 1, 2, 1])
    rewards = np.array([1.0, 0.0, 0.5, 2.0])
    propensities = np.array([0.5, 0.25, 1.0, 0.25])
    target = np.full((4, 3), 1 / 3)
    return dict(arms=arms, rewards=rewards, propensities=propensities, target_policy=target)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(propensities=np.array([0.5, 0.0, 1.0, 0.25])), r"propensities: 1 values outside \(0, 1\]"),
        (dict(propensities=np.array([0.5, 1.2, 1.0, 0.25])), r"propensities: 1 values outside \(0, 1\]"),
        (dict(propensities=np.array([0.5, np.nan, 1.0, 0.25])), "propensities: .*NaN"),
        (dict(rewards=np.array([1.0, np.nan, 0.5, 2.0])), "rewards: 1 NaN"),
        (dict(rewards=np.array([1.0, 0.0, 0.5])), "rewards has 3 rows; expected 4"),
        (dict(arms=np.array([0, 1, 3, 1])), r"arms: 1 values outside \[0, 3\)"),
        (dict(arms=np.array([0.0, 1.5, 2.0, 1.0])), "arms: dtype float64; expected integer"),
        (dict(arms=np.array([[0, 1, 2, 1]])), "arms has shape"),
        (dict(target_policy=np.full((4, 3), 0.5)), "target_policy: 4 rows do not sum to 1"),
        (dict(target_policy=np.full((3, 3), 1 / 3)), r"target_policy has shape \(3, 3\)"),
        (dict(target_policy=np.array([[1.0, 0, 0], [np.nan, 1, 0], [0, 0, 1], [0, 1, 0]])), "target_policy: NaN"),
        (
            dict(
                arms=np.array([0]),
                rewards=np.array([1.0]),
                propensities=np.array([0.5]),
                target_policy=np.array([[1.0, 0, 0]]),
            ),
            "at least 2",
        ),
    ],
)
def test_invalid_inputs_are_refused_with_the_rule_they_break(change, message):
    inputs = {**_valid(), **change}
    for estimator in (ips_value, snips_value):
        with pytest.raises(ValueError, match=message):
            estimator(**inputs)
    with pytest.raises(ValueError, match=message):
        dr_value(**inputs, reward_model=np.zeros(np.shape(inputs["target_policy"])))


def test_reward_model_and_clip_validation():
    inputs = _valid()
    with pytest.raises(ValueError, match=r"reward_model has shape \(4, 2\)"):
        dr_value(**inputs, reward_model=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="reward_model: NaN"):
        dr_value(**inputs, reward_model=np.full((4, 3), np.nan))
    with pytest.raises(ValueError, match="max_weight"):
        ips_value(**inputs, max_weight=0)


def test_snips_refuses_a_log_that_never_logged_the_target_policys_arms():
    inputs = _valid()
    inputs["target_policy"] = one_hot_policy(np.array([1, 0, 0, 0]), 3)  # never the logged arm
    assert ips_value(**inputs).estimate == 0.0
    with pytest.raises(ValueError, match="never chooses a logged arm"):
        snips_value(**inputs)


# ---------------------------------------------------------------------------- Open Bandit Dataset
def _obd_script():
    return importlib.import_module("benchmarks.validate_ope_obd")


def test_estimators_on_the_open_bandit_dataset_sample():
    """Uniform-random policy's click rate from the BTS log vs the random log (campaign 'all').

    The truth's own relative standard error is ~16% (38 clicks in 10,000 rows), so the
    bound is loose; a broken weight (e.g. pi / p inverted, or the propensity ignored) is
    off by far more. Measured: relative errors 0.35-0.39, z -1.2 to -1.4 (docs/off_policy_evaluation.md).
    """
    obd = _obd_script()
    try:
        wheel = obd.obd_wheel(obd.default_cache_dir(), timeout_s=120)
    except Exception as error:  # no registry or no cache: the synthetic tests above still run
        pytest.skip(f"obp {obd.OBP_VERSION} wheel (OBD sample) not cached and not downloadable: {error}")
    result = obd.validate_campaign(wheel, "all")
    assert result.truth == pytest.approx(0.0038)  # 38 clicks / 10,000 rows in the random log
    for name in ("IPS", "SNIPS", "DR", "DR clip 50"):
        assert result.relative_error(name) < 0.5, (name, result.estimates()[name], result.truth)
        assert abs(result.z_score(name)) < 2.5, name
