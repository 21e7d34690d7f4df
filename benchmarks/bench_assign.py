"""Benchmark: the delivery columns of assign (channel, message, featured items, reason, send
hour) and the policy steps before them, on synthetic nights.

* **reference**: the former per-user loop of ``promoflow.decisions.assign``
  (``reference_delivery_columns`` in tests/ml/test_delivery_columns.py), at the smallest
  user count only (it is slow): seconds and microseconds per user;
* **delivery_columns**: ``ml.delivery.delivery_columns`` at every user count: seconds, per
  user, and the reference's per-user time over its own (both measured in this run). At the
  reference's size the two outputs are also checked equal, column by column;
* **policy** at 1M users x 9 arms (8 offers + none): ``ml.allocation.holdout_mask``,
  ``allocate`` (a budget that binds) and ``explore``, plus the salted hash both draws use.

Inputs come from ``synthetic_night`` of that test (every promo type, fixed-channel and
category promos, zh and en, missing features, holdout and exploration). Prints a table and
writes ``data/bench/bench_assign.json``.

    .venv/bin/python benchmarks/bench_assign.py                  # 100k and 1M users
    .venv/bin/python benchmarks/bench_assign.py --users 100000 --policy-users 0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "ml"))

from test_delivery_columns import reference_delivery_columns, synthetic_night  # noqa: E402

from ml import allocation as alloc  # noqa: E402
from ml.delivery import delivery_columns  # noqa: E402

POLICY_ARMS = 9


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def bench_delivery(n_users: int, with_reference: bool, offer_share: float, seed: int) -> dict:
    night, generate_s = timed(synthetic_night, n_users, seed, offer_share=offer_share)
    offers = int(night["is_offer"].sum())
    print(f"[{n_users} users] synthetic night in {generate_s:.1f} s ({offers} offers)", flush=True)
    result = {"users": n_users, "offers": offers, "generate_s": round(generate_s, 2)}
    got, seconds = timed(delivery_columns, **night)
    result["delivery_columns"] = {"s": round(seconds, 3), "us_per_user": round(1e6 * seconds / n_users, 2)}
    result["messages_rendered"] = int(got["message"].nunique())
    print(f"[{n_users} users] delivery_columns: {result['delivery_columns']}", flush=True)
    if with_reference:
        expected, seconds = timed(reference_delivery_columns, **night)
        result["reference"] = {"s": round(seconds, 3), "us_per_user": round(1e6 * seconds / n_users, 2)}
        result["identical"] = all(got[c].tolist() == v for c, v in expected.items())
        print(f"[{n_users} users] reference loop: {result['reference']}, identical: {result['identical']}", flush=True)
        if not result["identical"]:
            raise SystemExit("delivery_columns differs from the reference loop: run tests/ml/test_delivery_columns.py")
    return result


def bench_policy(n_users: int, seed: int) -> dict:
    """holdout_mask, allocate and explore as assign calls them, n_users x POLICY_ARMS."""
    rng = np.random.default_rng(seed)
    none_index = POLICY_ARMS - 1
    margin = rng.normal(0.5, 1.0, (n_users, POLICY_ARMS))
    cost = rng.exponential(1.0, (n_users, POLICY_ARMS))
    margin[:, none_index] = cost[:, none_index] = 0.0
    eligible = rng.random((n_users, POLICY_ARMS)) < 0.9
    user_ids = np.array([f"u{i:08d}" for i in range(n_users)], dtype=object)
    budget = 0.05 * n_users  # binds: unconstrained, the chosen offers would cost ~0.4 per user
    reserve = 0.1 * budget
    result = {"users": n_users, "arms": POLICY_ARMS, "budget": budget}
    _, seconds = timed(alloc._salted_hashes, user_ids, "bench")
    result["salted_hashes_s"] = round(seconds, 3)
    is_holdout, seconds = timed(alloc.holdout_mask, user_ids, 0.05, "holdout-bench")
    result["holdout_mask_s"] = round(seconds, 3)
    allocation, seconds = timed(alloc.allocate, margin, cost, budget - reserve, eligible, none_index)
    result["allocate_s"] = round(seconds, 3)
    result["allocate"] = {
        "offers": allocation.n_assigned,
        "spent": round(allocation.total_cost, 2),
        "lambda": allocation.lambda_,
    }
    exploration_cost = cost.copy()
    exploration_cost[:, none_index] = 0.0
    exploration, seconds = timed(
        alloc.explore,
        allocation.arm_index,
        is_holdout,
        eligible,
        exploration_cost,
        none_index,
        user_ids=user_ids,
        rate=0.05,
        reserve_budget=reserve,
        holdout_share=0.05,
        salt="explore-bench",
    )
    result["explore_s"] = round(seconds, 3)
    result["explore"] = {"explorers": int(exploration.is_exploration.sum())}
    for step in ("salted_hashes", "holdout_mask", "allocate", "explore"):
        result[f"{step}_us_per_user"] = round(1e6 * result[f"{step}_s"] / n_users, 3)
    print(f"[policy {n_users} x {POLICY_ARMS}] {result}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--policy-users", type=int, default=1_000_000, help="0: skip the policy steps")
    parser.add_argument("--offer-share", type=float, default=0.5, help="share of users drawn an offer (before holdout)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=ROOT / "data" / "bench" / "bench_assign.json")
    args = parser.parse_args(argv)

    sizes = sorted(args.users)
    delivery = [bench_delivery(n, n == sizes[0], args.offer_share, args.seed) for n in sizes]
    policy_result = bench_policy(args.policy_users, args.seed) if args.policy_users else None

    reference = delivery[0]["reference"]
    print()
    print(
        f"{'users':>9} {'offers':>8} | {'reference s':>11} {'us/user':>8} | {'vectorised s':>12} {'us/user':>8} | per-user speed-up"
    )
    for r in delivery:
        new = r["delivery_columns"]
        r["reference_over_vectorised_per_user"] = round(reference["us_per_user"] / new["us_per_user"], 1)
        ref = r.get("reference", {"s": "-", "us_per_user": "-"})
        print(
            f"{r['users']:>9} {r['offers']:>8} | {ref['s']:>11} {ref['us_per_user']:>8} | {new['s']:>12} {new['us_per_user']:>8} | "
            f"x{r['reference_over_vectorised_per_user']}"
        )
    if len(delivery) > 1:
        small, large = delivery[0], delivery[-1]
        growth = round(large["delivery_columns"]["s"] / small["delivery_columns"]["s"], 2)
        print(
            f"vectorised growth {small['users']} -> {large['users']} users (x{large['users'] / small['users']:g}): x{growth}"
        )
    if policy_result:
        p = policy_result
        print(
            f"policy at {p['users']} users x {p['arms']} arms: holdout_mask {p['holdout_mask_s']} s, allocate {p['allocate_s']} s, "
            f"explore {p['explore_s']} s (one salted hash of every user id: {p['salted_hashes_s']} s; explore draws it for every user, and again for the explorers)"
        )
    payload = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "settings": {"offer_share": args.offer_share, "seed": args.seed},
        "delivery": delivery,
        "policy": policy_result,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
