"""Allocation: budget-constrained arm choice, holdout, exploration and their exact propensities.

:func:`allocate` solves the nightly multiple-choice knapsack — each user gets at most one
offer; maximise total expected incremental margin subject to total expected cost <= budget —
by Lagrangian relaxation (bisection on the cost multiplier) followed by a greedy fill of the
budget left over. The ``none`` arm has margin 0 and cost 0 (its columns are ignored) and is
always available; an arm is only ever chosen when its incremental margin is positive.

:func:`holdout_mask` picks the measurement holdout from a salted hash of the user id (stable
across nights for a salt); :func:`chosen_arm_propensity` gives the probability with which the
whole policy (greedy choice + holdout) records the arm it recorded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

MAX_BISECTION_STEPS = 64
# Bisection stops once the multiplier is known to this relative precision; the greedy fill
# then spends what the last Lagrangian solution left unused.
LAMBDA_RELATIVE_TOLERANCE = 1e-9
MAX_FILL_PASSES = 50
# Above 4x this many users, a strided sample of this size first estimates the multiplier.
ESTIMATE_SAMPLE_USERS = 20_000
MAX_MULTIPLIER = 1e300


@dataclass
class Allocation:
    """Result of :func:`allocate`."""

    arm_index: np.ndarray  # [n] int64, position in the arm list; none_index = send nothing
    total_cost: float  # sum of cost[i, arm_index[i]] over users, none counted as 0
    total_incremental_margin: float
    lambda_: float  # Lagrange multiplier on cost (currency of margin per currency of cost)
    budget: float
    none_index: int

    @property
    def n_assigned(self) -> int:
        """Users who get an offer (not ``none``)."""
        return int((self.arm_index != self.none_index).sum())


def _validated(incremental_margin, cost, budget, eligible, none_index):
    margin = np.asarray(incremental_margin, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    if margin.ndim != 2:
        raise ValueError(f"incremental_margin has shape {margin.shape}; expected [n_users, n_arms]")
    if cost.shape != margin.shape:
        raise ValueError(f"cost has shape {cost.shape}; expected {margin.shape} like incremental_margin")
    n_arms = margin.shape[1]
    if not (isinstance(none_index, (int, np.integer)) and 0 <= none_index < n_arms):
        raise ValueError(f"none_index={none_index!r}: must be an arm position in [0, {n_arms})")
    if eligible is None:
        eligible = np.ones(margin.shape, dtype=bool)
    else:
        eligible = np.asarray(eligible, dtype=bool)
        if eligible.shape != margin.shape:
            raise ValueError(f"eligible has shape {eligible.shape}; expected {margin.shape}")
    budget = float(budget)
    if not np.isfinite(budget) or budget < 0:
        raise ValueError(f"budget={budget!r}: must be a finite amount >= 0 (currency of expected cost)")
    return margin, cost, budget, eligible


def allocate(
    incremental_margin: np.ndarray,
    cost: np.ndarray,
    budget: float,
    eligible: np.ndarray | None,
    none_index: int,
) -> Allocation:
    """Choose one arm per user maximising incremental margin with total cost <= ``budget``.

    ``incremental_margin`` and ``cost`` are [n_users, n_arms] (expected incremental margin vs
    none and expected cost); ``eligible`` [n_users, n_arms] bool or None (all eligible).
    Arms with non-finite numbers are treated as not eligible; negative costs are an error.
    """
    margin, cost, budget, eligible = _validated(incremental_margin, cost, budget, eligible, none_index)
    n_users = margin.shape[0]
    rows = np.arange(n_users)

    usable = eligible & np.isfinite(margin) & np.isfinite(cost)
    usable &= margin > 0
    usable[:, none_index] = False
    if np.any(usable & (cost < 0)):
        raise ValueError(
            "cost: negative expected cost on an eligible arm; expected_cost is P(order) x E[discount] >= 0"
        )
    # none (and everything unusable) gets margin -inf here; choose() maps "nothing positive" to none.
    usable_margin = np.where(usable, margin, -np.inf)
    usable_cost = np.where(usable, cost, 0.0)

    def total_cost(chosen: np.ndarray) -> float:
        # One summation used everywhere, so the feasibility checks see the reported total.
        return float(usable_cost[rows, chosen].sum())

    chosen = _lagrangian_choice(usable_margin, usable_cost, 0.0, none_index)
    lam = 0.0
    if total_cost(chosen) > budget:
        chosen, lam = _bisect_multiplier(usable, usable_margin, usable_cost, budget, none_index, chosen)
        chosen = _greedy_fill(chosen, usable_margin, usable_cost, budget, total_cost, none_index)

    spent = total_cost(chosen)
    if spent > budget:  # unreachable by construction; a wrong total must never reach publish
        raise RuntimeError(f"allocation spent {spent} over budget {budget}; report this as a bug in ml.allocation")
    margin_total = float(np.where(chosen == none_index, 0.0, usable_margin[rows, chosen]).sum())
    return Allocation(chosen.astype(np.int64), spent, margin_total, lam, budget, none_index)


def _lagrangian_choice(usable_margin: np.ndarray, usable_cost: np.ndarray, lam: float, none_index: int) -> np.ndarray:
    """Per user, the arm maximising margin - lam * cost if that is positive, else none."""
    with np.errstate(over="ignore"):  # lam * cost beyond float range scores -inf: never chosen
        score = usable_cost * -lam
        score += usable_margin
    best = score.argmax(axis=1)
    positive = np.take_along_axis(score, best[:, None], axis=1)[:, 0] > 0
    return np.where(positive, best, none_index)


def _bisect_multiplier(
    usable, usable_margin, usable_cost, budget, none_index, chosen_at_zero=None
) -> tuple[np.ndarray, float]:
    """Smallest multiplier (to tolerance) whose Lagrangian choice fits the budget.

    Returns (choice at that multiplier, multiplier). A user's Lagrangian choice moves
    monotonically to cheaper arms as the multiplier grows, so users choosing the same arm at
    both ends of the bracket are settled and each step re-scores only the others. On large
    inputs the first steps probe around an estimate from every k-th user, so only a couple of
    steps touch most users.
    """
    n_users = usable_margin.shape[0]
    rows = np.arange(n_users)
    positive_cost = usable & (usable_cost > 0)
    # Above the best margin/cost ratio every priced arm scores < 0: only free arms remain,
    # which cost nothing, so ``hi`` starts feasible.
    lo = 0.0
    with np.errstate(over="ignore"):
        ratio = np.divide(usable_margin, usable_cost, out=np.zeros_like(usable_cost), where=positive_cost)
    # Capped so that lam * cost stays a number (0 * inf is nan) even for subnormal costs.
    hi = min(2.0 * float(ratio.max()), MAX_MULTIPLIER)
    del ratio
    probes: list[float] = []
    if n_users > 4 * ESTIMATE_SAMPLE_USERS:
        sample = rows[:: n_users // ESTIMATE_SAMPLE_USERS]
        _, estimate = _bisect_multiplier(
            usable[sample], usable_margin[sample], usable_cost[sample], budget * sample.size / n_users, none_index
        )
        probes = [estimate * 1.02, estimate / 1.02, estimate * 1.2, estimate / 1.2]
    chosen_lo = (
        _lagrangian_choice(usable_margin, usable_cost, lo, none_index)
        if chosen_at_zero is None
        else chosen_at_zero.copy()
    )
    # At ``hi`` only free arms score > 0: the best free arm if it has positive margin.
    free_margin = np.where(usable & (usable_cost == 0), usable_margin, -np.inf)
    chosen_hi = _lagrangian_choice(free_margin, np.zeros_like(usable_cost), 0.0, none_index)
    del free_margin
    cost_hi = usable_cost[rows, chosen_hi]
    # Compare against a hair under the budget: partial sums below are added in another order
    # than the final total, and the reported total must never exceed the budget.
    threshold = budget * (1.0 - 1e-12)
    for _ in range(MAX_BISECTION_STEPS):
        if hi - lo <= LAMBDA_RELATIVE_TOLERANCE * hi:
            break
        open_users = np.flatnonzero(chosen_lo != chosen_hi)
        if open_users.size == 0:
            break
        probes = [p for p in probes if lo < p < hi]
        if probes:
            mid = probes.pop(0)
        elif lo == 0.0:
            mid = hi * 1e-3  # the multiplier may be orders of magnitude below the start
        elif hi > 2.0 * lo:
            mid = float(np.sqrt(lo) * np.sqrt(hi))  # lo * hi may overflow
        else:
            mid = 0.5 * (lo + hi)
        chosen_mid = _lagrangian_choice(usable_margin[open_users], usable_cost[open_users], mid, none_index)
        cost_mid = usable_cost[open_users, chosen_mid]
        if cost_hi.sum() - cost_hi[open_users].sum() + cost_mid.sum() <= threshold:
            hi = mid
            chosen_hi[open_users] = chosen_mid
            cost_hi[open_users] = cost_mid
        else:
            lo = mid
            chosen_lo[open_users] = chosen_mid
    return chosen_hi, hi


def _greedy_fill(chosen, usable_margin, usable_cost, budget, total_cost, none_index) -> np.ndarray:
    """Spend the budget the Lagrangian solution left: upgrades by best margin gain per cost.

    Each pass gives every user with an upgrade that fits its best one by gain/extra cost,
    takes the longest prefix (in ratio order) that fits, and repeats with what is left.
    """
    chosen = chosen.copy()
    rows = np.arange(usable_margin.shape[0])
    remaining = budget - total_cost(chosen)
    current_margin = np.where(chosen == none_index, 0.0, usable_margin[rows, chosen])
    current_cost = usable_cost[rows, chosen]
    # Users with no fitting upgrade now never get one: the remaining budget only shrinks and
    # their own choice does not change. The passes below work on the others only.
    fits = usable_margin > current_margin[:, None]
    fits &= usable_cost <= (current_cost + remaining)[:, None]
    users = np.flatnonzero(fits.any(axis=1))
    del fits
    for _ in range(MAX_FILL_PASSES):
        remaining = budget - total_cost(chosen)
        if remaining <= 0 or users.size == 0:
            break
        margin, cost, current = usable_margin[users], usable_cost[users], chosen[users]
        local = np.arange(users.size)
        current_margin = np.where(current == none_index, 0.0, margin[local, current])
        gain = margin - current_margin[:, None]
        extra_cost = cost - cost[local, current][:, None]
        candidate = (gain > 0) & (extra_cost <= remaining)
        has_candidate = candidate.any(axis=1)
        if not has_candidate.any():
            break
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = np.where(candidate, np.where(extra_cost > 0, gain / extra_cost, np.inf), -np.inf)
        users, ratio, extra_cost = users[has_candidate], ratio[has_candidate], extra_cost[has_candidate]
        best_arm = ratio.argmax(axis=1)
        local = np.arange(users.size)
        order = np.argsort(-ratio[local, best_arm], kind="stable")
        # Longest prefix that fits; the next pass tries the smaller upgrades behind it.
        take = order[np.cumsum(extra_cost[order, best_arm[order]]) <= remaining]
        if take.size == 0:
            take = order[:1]
        previous = chosen[users[take]]
        chosen[users[take]] = best_arm[take]
        if total_cost(chosen) > budget:  # float rounding of the prefix sum: never overspend
            chosen[users[take]] = previous
            break
    return chosen


# ---------------------------------------------------------------------------- holdout
def holdout_mask(user_ids: np.ndarray, share: float, salt: str) -> np.ndarray:
    """True for users held out from any offer: hash(salt, user_id) / 2^64 < share.

    Stable per user for a given salt (change the salt to redraw the holdout).
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"holdout share={share!r}: must be within [0, 1]")
    hashes = _salted_hashes(user_ids, salt)
    threshold = int(share * 2**64)
    if threshold >= 2**64:
        return np.ones(hashes.size, dtype=bool)
    return hashes < np.uint64(threshold)


def _salted_hashes(user_ids: np.ndarray, salt: str) -> np.ndarray:
    """A 64-bit hash of (salt, user_id) per user: the policy's reproducible random draws."""
    ids = np.asarray(user_ids, dtype=object).ravel()
    salted = hashlib.blake2b(f"{salt}\x1f".encode(), digest_size=8)

    def digest(user_id) -> bytes:
        h = salted.copy()
        h.update(str(user_id).encode())
        return h.digest()

    return np.frombuffer(b"".join(map(digest, ids)), dtype=">u8")


def apply_holdout(greedy_arm: np.ndarray, is_holdout: np.ndarray, none_index: int) -> np.ndarray:
    """The recorded arm: ``none`` for holdout users, the greedy choice otherwise."""
    return np.where(np.asarray(is_holdout, dtype=bool), none_index, np.asarray(greedy_arm))


def chosen_arm_propensity(
    greedy_arm: np.ndarray, holdout_share: float, none_index: int, is_holdout: np.ndarray | None = None
) -> np.ndarray:
    """Probability that the policy records the arm it recorded, per user.

    The recorded arm is ``none`` for holdout users and the greedy arm otherwise. Over the
    holdout draw: a recorded non-none arm has probability 1 - holdout_share; a recorded
    ``none`` has 1.0 when the greedy arm was none too, and holdout_share when the user was
    held out from a non-none greedy arm. ``is_holdout`` None means nobody was held out.
    """
    if not 0.0 <= holdout_share <= 1.0:
        raise ValueError(f"holdout_share={holdout_share!r}: must be within [0, 1]")
    greedy_arm = np.asarray(greedy_arm)
    is_holdout = np.zeros(greedy_arm.shape, dtype=bool) if is_holdout is None else np.asarray(is_holdout, dtype=bool)
    greedy_none = greedy_arm == none_index
    return np.select(
        [greedy_none, is_holdout],
        [1.0, holdout_share],
        default=1.0 - holdout_share,
    ).astype(np.float64)


# ---------------------------------------------------------------------------- exploration
@dataclass
class Exploration:
    """Result of :func:`explore`: the recorded arm, its exact propensity, and who explored."""

    recorded_arm: np.ndarray  # [n] int64
    propensity: np.ndarray  # [n] P(policy records recorded_arm[i] for user i)
    is_exploration: np.ndarray  # [n] bool
    probabilities: np.ndarray  # [n, n_arms] the whole policy's action probabilities
    cost_cap: float  # most expected cost an exploration draw may carry


def salted_uniform(user_ids: np.ndarray, salt: str) -> np.ndarray:
    """A uniform [0, 1) number per user from a salted hash (reproducible per salt)."""
    return _salted_hashes(user_ids, salt).astype(np.float64) / 2.0**64


_salted_uniform = salted_uniform


# An explorer's arm: this share uniform over its affordable arms, the rest by Thompson sampling on
# its segment's arm values (every affordable arm keeps at least this share / |E_i| of support).
EXPLORATION_UNIFORM_SHARE = 0.5
# A segment whose best arm the evidence is sure of still gets explorers, at this weight per user
# (1 + this for a segment where every arm is equally likely best).
EXPLORATION_FLOOR = 0.25
THOMPSON_DRAWS = 4000


def thompson_shares(mean: np.ndarray, se: np.ndarray, allowed: np.ndarray, seed: int) -> np.ndarray:
    """[arms] the share of ``THOMPSON_DRAWS`` posterior draws N(mean, se^2) in which each allowed
    arm is the best of the allowed ones (0 elsewhere). Draws come from ``seed``: a fixed function of
    its inputs, so the probabilities it states are exactly those the policy draws with."""
    allowed = np.asarray(allowed, dtype=bool)
    rng = np.random.default_rng(seed)
    scale = np.where(np.isfinite(se), se, 0.0)
    draws = mean[None, :] + scale[None, :] * rng.standard_normal((THOMPSON_DRAWS, len(mean)))
    # an arm with no evidence (infinite se) is as likely best as not: a draw so wide that it beats
    # the rest about half the time
    unknown = ~np.isfinite(se)
    if unknown.any():
        draws[:, unknown] = 1e12 * rng.standard_normal((THOMPSON_DRAWS, int(unknown.sum())))
    draws[:, ~allowed] = -np.inf
    best = np.argmax(draws, axis=1)
    return np.bincount(best, minlength=len(mean)).astype(np.float64) / THOMPSON_DRAWS


def stratum_sizes(m: int, sizes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Integers summing to ``m`` (<= sizes.sum()), each at most its stratum's size, proportional to
    ``sizes x weights`` where that allows (water-filling, then largest remainders)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    demand = sizes * np.asarray(weights, dtype=np.float64)
    out = np.zeros(len(sizes), dtype=np.int64)
    if m <= 0 or not len(sizes):
        return out
    quota = np.zeros(len(sizes))
    free = sizes > 0
    left = float(m)
    while free.any():
        weight = np.where(free, demand if demand[free].sum() > 0 else sizes, 0.0)
        share = weight / weight.sum() * left
        over = free & (share >= sizes)
        if not over.any():
            quota[free] = share[free]
            break
        quota[over] = sizes[over]
        left -= float(sizes[over].sum())
        free &= ~over
    out = np.minimum(np.floor(quota + 1e-9).astype(np.int64), sizes)
    for k in np.argsort(-(quota - out), kind="stable"):
        if out.sum() >= m:
            break
        if out[k] < sizes[k]:
            out[k] += 1
    return out


def exploring_share(sure: np.ndarray, arms_tonight: int) -> np.ndarray:
    """Per segment, the share of the exploration rate its users get: 1 where every arm tonight is
    as likely best as any other (``sure`` = 1 / arms), falling linearly in ``sure`` (the largest
    probability that one arm is the segment's best) to ``EXPLORATION_FLOOR`` / (``EXPLORATION_FLOOR``
    + 1 - 1 / arms) where the evidence is sure of its best arm."""
    full = EXPLORATION_FLOOR + 1.0 - 1.0 / max(arms_tonight, 1)
    return np.minimum((EXPLORATION_FLOOR + 1.0 - np.asarray(sure, dtype=np.float64)) / full, 1.0)


def explore(
    greedy_arm: np.ndarray,
    is_holdout: np.ndarray,
    eligible: np.ndarray,
    cost: np.ndarray,
    none_index: int,
    *,
    user_ids: np.ndarray,
    rate: float,
    reserve_budget: float,
    holdout_share: float,
    salt: str,
    policy_probabilities: np.ndarray | None = None,
    segments: np.ndarray | None = None,
    segment_mean: np.ndarray | None = None,
    segment_se: np.ndarray | None = None,
    explorable: np.ndarray | None = None,
) -> Exploration:
    """Exploration with exact propensities and a hard cost reserve.

    Among users not held out, exactly ``m`` explore, so each may carry an
    expected cost of at most ``reserve_budget / m`` — exploration never spends more than the
    reserve, and the greedy allocation (computed before, on the budget minus the reserve) is
    untouched: the whole night stays within the budget. ``E_i`` is ``none`` plus the eligible
    arms within that cap.

    Without ``segments``: epsilon-greedy. ``m = round(rate * n)``, the lowest salted hashes (a
    uniformly random subset, each with probability ``q = m / n``) and an explorer's arm is uniform
    over E_i.

    With ``segments`` [n] and the segments' per-arm values ``segment_mean`` / ``segment_se``
    [segments, arms] (``ml.exploration``): ``m = round(rate * sum_s n_s w_s)``, ``w_s`` the
    segment's :func:`exploring_share` (1 where its best arm is anyone's guess, down to ~0.2 where
    the evidence is sure of it: exploration falls as the segments settle), and segment s gets m_s
    of them, in proportion to its
    users x (``EXPLORATION_FLOOR`` + 1 - the largest probability that one arm is its best), the
    m_s lowest hashes of its users (``q_s = m_s / n_s``); an explorer's arm is drawn from
    ``pi_i(a) = u 1[a in E_i] / |E_i| + (1 - u) T_s(a | E_i)``, u = ``EXPLORATION_UNIFORM_SHARE``,
    T the Thompson share of :func:`thompson_shares` among E_i. In both cases, for every user and arm

        P(a) = h 1[a = none] + (1 - h) ((1 - q_i) 1[a = greedy] + q_i pi_i(a))

    with h the holdout share (the holdout is itself a salted hash draw). Arms outside E_i
    have probability 0 from exploration: off-policy estimates cannot see them there.
    ``policy_probabilities`` [n, arms], when the non-exploring policy is itself random (a staged
    rollout: the candidate's arm for a random share, ``none`` for the rest), replaces the one-hot
    ``1[a = greedy]`` in that formula; ``greedy_arm`` is then the arm that policy drew.
    ``explorable`` [n] bool: only these users may explore (``q_i = 0`` for the others); the
    rate and the reserve are then shared among them.
    """
    greedy_arm = np.asarray(greedy_arm, dtype=np.int64)
    is_holdout = np.asarray(is_holdout, dtype=bool)
    n, n_arms = cost.shape
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"exploration rate={rate!r}: must be within [0, 1]")
    if reserve_budget < 0:
        raise ValueError(f"exploration reserve={reserve_budget!r}: must be >= 0")
    # q_i is every explorable user's chance of exploring had the holdout not drawn them (the
    # propensities marginalise over the holdout's hash), so it holds for held-out users too.
    explorable = np.ones(n, dtype=bool) if explorable is None else np.asarray(explorable, dtype=bool)
    candidates = np.flatnonzero(~is_holdout & explorable)
    if segments is not None:
        segments = np.asarray(segments, dtype=np.int64)
        mean = np.asarray(segment_mean, dtype=np.float64)
        se = np.asarray(segment_se, dtype=np.float64)
        seed = int(_salted_hashes(np.array(["thompson"]), salt)[0] % np.uint64(2**32))
        strata = np.arange(len(mean))
        tonight = np.asarray(eligible, dtype=bool).any(axis=0)
        tonight[none_index] = True
        sure = np.array([thompson_shares(mean[s], se[s], tonight, seed).max() for s in strata])
        weight = EXPLORATION_FLOOR + 1.0 - sure
        sizes = np.bincount(segments[candidates], minlength=len(mean))
        m = int(round(rate * float((sizes * exploring_share(sure, int(tonight.sum()))).sum())))
    else:
        m = int(round(rate * len(candidates)))
    cap = reserve_budget / m if m else 0.0
    allowed = np.asarray(eligible, dtype=bool) & np.isfinite(cost) & (cost <= cap)
    allowed[:, none_index] = True
    n_allowed = allowed.sum(axis=1)
    uniform = allowed / n_allowed[:, None]

    draws = _salted_uniform(user_ids, salt + "/explore")
    explorers = np.zeros(n, dtype=bool)
    q = np.zeros(n)
    if segments is None:
        pi = uniform
        if m:
            explorers[candidates[np.argsort(draws[candidates], kind="stable")[:m]]] = True
        q[explorable] = m / len(candidates) if len(candidates) else 0.0
    else:
        pi = np.zeros((n, n_arms))
        # one Thompson table per (segment, affordable set): a handful of distinct rows per night
        keys, inverse = np.unique(np.c_[segments, allowed.astype(np.int64)], axis=0, return_inverse=True)
        inverse = np.asarray(inverse).ravel()
        for j, key in enumerate(keys):
            shares = thompson_shares(mean[key[0]], se[key[0]], key[1:].astype(bool), seed)
            rows_j = inverse == j
            pi[rows_j] = EXPLORATION_UNIFORM_SHARE * uniform[rows_j] + (1.0 - EXPLORATION_UNIFORM_SHARE) * shares
        m_s = stratum_sizes(m, sizes, weight)
        for s in strata:
            members = candidates[segments[candidates] == s]
            if m_s[s]:
                explorers[members[np.argsort(draws[members], kind="stable")[: m_s[s]]]] = True
        q = np.where(explorable & (sizes[segments] > 0), m_s[segments] / np.maximum(sizes[segments], 1), 0.0)
    # The arm draw uses a second, independent hash, against the explorer's pi (explorers only).
    drawn = np.flatnonzero(explorers)
    arm_draw = _salted_uniform(np.asarray(user_ids, dtype=object).ravel()[drawn], salt + "/arm")
    cumulative = np.cumsum(pi[drawn], axis=1)
    pick = np.argmax(cumulative > (arm_draw * cumulative[:, -1])[:, None], axis=1)
    explored_arm = greedy_arm.copy()
    explored_arm[drawn] = pick

    recorded = np.where(is_holdout, none_index, explored_arm)
    rows = np.arange(n)
    probabilities = np.zeros((n, n_arms))
    stay = (1.0 - holdout_share) * (1.0 - q)
    if policy_probabilities is None:
        probabilities[rows, greedy_arm] += stay
    else:
        probabilities += stay[:, None] * np.asarray(policy_probabilities, dtype=np.float64)
    probabilities += ((1.0 - holdout_share) * q)[:, None] * pi
    probabilities[:, none_index] += holdout_share
    return Exploration(recorded.astype(np.int64), probabilities[rows, recorded], explorers, probabilities, cap)
