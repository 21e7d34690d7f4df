"""``make evaluate``: score a night's published assignments against the demo generator's truth.

For each evaluation seed (never the training seed of ``make demo``): generate a fresh shop,
run the whole ``promo_nightly`` DAG on it (``promoflow.cli run``, its own data folder), then
value the published assignment table with the generator's ground truth (expected incremental
margin and discount cost of every user x arm for an offer sent on the run date) next to:

* ``oracle`` — knows the true responses: ``ml.allocation.allocate`` on the true incremental margin
  and true cost under the same budget;
* ``nothing`` — sends nothing (0 by definition);
* ``random`` — a random arm per user, users in random order, while the budget lasts;
* ``best_single_promo`` — the promo with the best logged average uplift (difference in means
  of margin per day vs the logged 'none' group), to random users while the budget lasts;
* ``most_active_first`` — that promo to the users with the most events in the last 30 days.

Baselines count the budget with each promo's logged average discount per send (what they
could know); the platform and the oracle with their own expected costs. Everything is scored
with the truth; so is ``best_blanket_in_truth``, every promo sent to random users while its true
cost fits the budget, the best of them. Prints a table with true vs expected cost per promo and
writes ``{data_dir}/evaluate/evaluate.json``.

    python -m demo.evaluate --seeds 101 202 [--shapes latent observable --users 20000 --days 60]

Each seed runs on both of the generator's response shapes (``demo.simulator.RESPONSE_SHAPES``):
``latent`` (who responds is a noisy draw on traits behaviour barely reveals) and ``observable``
(tenure, favourite category and order frequency decide it). Nothing in the platform knows which.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from demo.simulator import ITEM_SHAPES, RESPONSE_SHAPES
from ml.allocation import allocate
from promoflow.contract import NONE_ARM
from promoflow.settings import Settings


def truth_matrices(truth: pd.DataFrame, user_ids, arms: list[str]) -> tuple[np.ndarray, np.ndarray]:
    inc = truth.pivot(index="user_id", columns="promo_id", values="expected_incremental_margin").reindex(
        index=user_ids, columns=arms
    )
    cost = truth.pivot(index="user_id", columns="promo_id", values="expected_discount_cost").reindex(
        index=user_ids, columns=arms
    )
    return inc.fillna(0.0).to_numpy(), cost.fillna(0.0).to_numpy()


def value_of(chosen: np.ndarray, inc: np.ndarray, cost: np.ndarray) -> dict:
    rows = np.arange(len(chosen))
    return {
        "true_incremental_margin": float(inc[rows, chosen].sum()),
        "true_cost": float(cost[rows, chosen].sum()),
        "offers": int((chosen != 0).sum()),
    }


def _fill_budget(order: np.ndarray, arm_of_user: np.ndarray, cost_per_send: np.ndarray, budget: float) -> np.ndarray:
    chosen = np.zeros(len(arm_of_user), dtype=np.int64)
    spent = 0.0
    for user in order:
        arm = arm_of_user[user]
        if arm == 0:
            continue
        if spent + cost_per_send[arm] > budget:
            continue
        chosen[user] = arm
        spent += cost_per_send[arm]
    return chosen


def baselines(
    logged: pd.DataFrame, activity: pd.Series, user_ids: np.ndarray, arms: list[str], budget: float, seed: int
) -> dict[str, np.ndarray]:
    """Arm index per user (arms[0] is none) for each naive policy."""
    rng = np.random.default_rng(seed)
    rate = logged.assign(rate=logged["order_margin"] / logged["window_days"]).groupby("promo_id")
    mean_rate, windows = rate["rate"].mean(), rate["window_days"].median()
    cost_per_send = np.array(
        [0.0] + [float(logged.loc[logged.promo_id == a, "discount_amount"].mean() or 0.0) for a in arms[1:]]
    )
    cost_per_send = np.nan_to_num(cost_per_send, nan=0.0)
    uplift = {
        a: (mean_rate.get(a, np.nan) - mean_rate.get(NONE_ARM, np.nan)) * windows.get(a, np.nan) for a in arms[1:]
    }
    best = max((a for a in uplift if np.isfinite(uplift[a])), key=lambda a: uplift[a])
    best_index = arms.index(best)
    n = len(user_ids)
    out = {
        "nothing": np.zeros(n, dtype=np.int64),
        "random": _fill_budget(rng.permutation(n), rng.integers(0, len(arms), n), cost_per_send, budget),
        "best_single_promo": _fill_budget(rng.permutation(n), np.full(n, best_index), cost_per_send, budget),
        "most_active_first": _fill_budget(
            np.argsort(-activity.reindex(user_ids).fillna(0).to_numpy(), kind="stable"),
            np.full(n, best_index),
            cost_per_send,
            budget,
        ),
    }
    return out, best


def score_featured_items(preferences: pd.DataFrame, assigned: pd.DataFrame) -> dict:
    """Published featured items of the offers against the generator's true item preferences
    (truth/user_item_preference.parquet: each user's 20 likeliest items of one pick).

    ``recall_at_3``: mean over offers of |featured ∩ the user's true top 3| / 3;
    ``true_top10_share``: share of featured items among the user's true top 10;
    ``pick_probability``: mean chance that one pick is a featured item (items beyond the
    true top 20 count 0), next to ``oracle_pick_probability`` (the true top 3's).
    """
    offers = assigned.loc[assigned["promo_id"] != NONE_ARM, ["user_id", "featured_item_ids"]].dropna()
    if offers.empty:
        return {"offers": 0}
    featured = offers.assign(item_id=offers["featured_item_ids"].str.split(",")).explode("item_id")[
        ["user_id", "item_id"]
    ]
    truth = preferences.set_index(["user_id", "item_id"])
    matched = truth.reindex(pd.MultiIndex.from_frame(featured))
    rank = matched["preference_rank"].to_numpy()
    n_featured = featured.groupby("user_id").size()
    oracle = preferences.loc[preferences["preference_rank"] <= 3].groupby("user_id")["pick_probability"].sum()
    return {
        "offers": int(len(offers)),
        "recall_at_3": float((rank <= 3).sum() / (3 * len(offers))),
        "true_top10_share": float((rank <= 10).sum() / len(featured)),
        "pick_probability": float(np.nansum(matched["pick_probability"].to_numpy()) / len(offers)),
        "oracle_pick_probability": float(oracle.reindex(n_featured.index).fillna(0.0).mean()),
    }


def score_night(data_dir: Path, run_date: date, budget: float, seed: int) -> dict:
    """Value the published night of ``data_dir`` and the baselines with the truth there."""
    truth = pd.read_parquet(data_dir / "demo" / "truth" / "user_arm_truth.parquet")
    published = pd.read_parquet(
        data_dir / "export" / "promo_assignments" / f"run_date={run_date}" / "promo_assignments.parquet"
    )
    # The export has no user_id; the warehouse does.
    con = duckdb.connect(str(data_dir / "warehouse" / "promoflow.duckdb"), read_only=True)
    try:
        assigned = con.sql(
            f"select user_id, promo_id, expected_cost, is_exploration, featured_item_ids from main.promo_assignments where run_date = '{run_date}'"
        ).df()
        logged = con.sql(
            "select promo_id, order_margin, discount_amount, valid_days as window_days from analytics.fct_promo_outcomes where is_matured"
        ).df()
    finally:
        con.close()
    raw = data_dir / "demo" / "raw"
    activity = (
        duckdb.sql(
            f"select user_id, count(*) n from read_parquet('{raw}/events/*/*.parquet', hive_partitioning=false) "
            f"where event_ts >= timestamp '{run_date - timedelta(days=30)}' and event_ts < timestamp '{run_date}' group by 1"
        )
        .df()
        .set_index("user_id")["n"]
    )
    arms = [NONE_ARM] + sorted(a for a in truth["promo_id"].unique() if a != NONE_ARM)
    user_ids = np.sort(truth["user_id"].unique())
    inc, cost = truth_matrices(truth, user_ids, arms)
    arm_of = {a: i for i, a in enumerate(arms)}
    platform = (
        assigned.set_index("user_id")["promo_id"]
        .reindex(user_ids)
        .fillna(NONE_ARM)
        .map(arm_of)
        .to_numpy(dtype=np.int64)
    )
    results = {"promoflow": value_of(platform, inc, cost)}
    results["promoflow"]["expected_cost_published"] = float(assigned["expected_cost"].sum())
    explored = assigned.set_index("user_id")["is_exploration"].reindex(user_ids).fillna(False).to_numpy(dtype=bool)
    results["promoflow_without_exploration"] = value_of(np.where(explored, 0, platform), inc, cost)
    oracle = allocate(inc, cost, budget, None, 0)
    results["oracle"] = value_of(oracle.arm_index, inc, cost)
    blankets = true_blankets(inc, cost, arms, budget, seed)
    best_blanket = max(blankets, key=lambda a: blankets[a]["true_incremental_margin"])
    results["best_blanket_in_truth"] = blankets[best_blanket] | {"promo_id": best_blanket}
    naive, best = baselines(logged, activity, user_ids, arms, budget, seed)
    for name, chosen in naive.items():
        results[name] = value_of(chosen, inc, cost)
    oracle_value = results["oracle"]["true_incremental_margin"]
    for entry in results.values():
        entry["ratio_to_oracle"] = entry["true_incremental_margin"] / oracle_value if oracle_value > 0 else None
    preference_path = data_dir / "demo" / "truth" / "user_item_preference.parquet"
    featured = score_featured_items(pd.read_parquet(preference_path), assigned) if preference_path.exists() else None
    rows = np.arange(len(user_ids))
    by_arm = pd.DataFrame(
        {
            "promo_id": np.array(arms, dtype=object)[platform],
            "true_cost": cost[rows, platform],
            "true_incremental_margin": inc[rows, platform],
        }
    )
    by_arm = (
        by_arm.loc[by_arm["promo_id"] != NONE_ARM]
        .groupby("promo_id")
        .agg(
            offers=("true_cost", "size"),
            true_cost=("true_cost", "sum"),
            true_incremental_margin=("true_incremental_margin", "sum"),
        )
    )
    by_arm["expected_cost"] = assigned.loc[assigned["promo_id"] != NONE_ARM].groupby("promo_id")["expected_cost"].sum()
    return {
        "seed": seed,
        "run_date": run_date.isoformat(),
        "budget": budget,
        "users": int(len(user_ids)),
        "best_single_promo": best,
        "best_blanket_in_truth": best_blanket,
        "published_rows": int(len(published)),
        "policies": results,
        "cost_by_promo": by_arm.reset_index().to_dict(orient="records"),
        "blankets_in_truth": blankets,
        "featured_items": featured,
    }


def true_blankets(inc: np.ndarray, cost: np.ndarray, arms: list[str], budget: float, seed: int) -> dict[str, dict]:
    """Each promo sent to random users while its *true* cost stays within the budget, valued with the truth."""
    order = np.random.default_rng(seed).permutation(inc.shape[0])
    out = {}
    for k, arm in enumerate(arms):
        if arm == NONE_ARM:
            continue
        take = order[np.cumsum(cost[order, k]) <= budget]
        chosen = np.zeros(inc.shape[0], dtype=np.int64)
        chosen[take] = k
        out[arm] = value_of(chosen, inc, cost)
    return out


def run_seed(
    seed: int,
    users: int,
    days: int,
    start: date,
    root: Path,
    response_shape: str = "latent",
    budget_per_user: float = 0.3,
    item_shape: str = "category",
) -> dict:
    data_dir = (
        root / f"shape={response_shape}" / (f"items={item_shape}" if item_shape != "category" else "") / f"seed={seed}"
    )
    shutil.rmtree(data_dir, ignore_errors=True)  # a fresh shop: nothing of an earlier evaluation carries over
    run_date = start + timedelta(days=days)
    # The night's budget grows with the shop (1,500 for the 5,000-user demo shop).
    env = os.environ | {"PROMO_DATA_DIR": str(data_dir), "PROMO_BUDGET": f"{budget_per_user * users:g}"}
    for key in ("PROMO_RAW_URI", "PROMO_WAREHOUSE_URL", "PROMO_EXPORT_URI", "PROMO_LAKE_DIR", "PROMO_MODEL_STORE_URI"):
        env.pop(key, None)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "demo.simulator",
            "--raw-dir",
            str(data_dir / "demo" / "raw"),
            "--truth-dir",
            str(data_dir / "demo" / "truth"),
            "--users",
            str(users),
            "--days",
            str(days),
            "--start-date",
            start.isoformat(),
            "--seed",
            str(seed),
            "--response-shape",
            response_shape,
            "--item-shape",
            item_shape,
        ],
        check=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],  # demo/ is run from the repository, not installed
    )
    started = time.perf_counter()
    log_path = data_dir / "night.log"
    with open(log_path, "w") as log:
        done = subprocess.run(
            [sys.executable, "-m", "promoflow.cli", "run", "--date", run_date.isoformat()],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        raise SystemExit(f"seed {seed}: the night failed (exit {done.returncode}); log: {log_path}")
    report = score_night(data_dir, run_date, Settings.from_env(env=env).budget, seed)
    report["night_seconds"] = round(time.perf_counter() - started, 1)
    report["response_shape"] = response_shape
    summary = json.loads((data_dir / "runs" / f"run_date={run_date}" / "summary.json").read_text())
    assigned = summary.get("assign") if isinstance(summary.get("assign"), dict) else {}
    report["gate"] = assigned.get("gate")
    report["published_policy"] = assigned.get("policy")
    report["published_status"] = assigned.get("status")
    report["policy_description"] = assigned.get("policy_description")
    report["item_shape"] = item_shape
    if report["featured_items"] is not None:
        report["featured_items"]["source"] = (summary.get("recommender") or {}).get("featured_items_source")
        report["featured_items"]["held_out_recall"] = (summary.get("recommender") or {}).get("selection")
    return report


def print_report(reports: list[dict]) -> None:
    names = list(reports[0]["policies"])
    print(f"{'policy':32s}" + "".join(f"{r['response_shape'] + ' seed ' + str(r['seed']):>28s}" for r in reports))
    for name in names:
        cells = []
        for r in reports:
            e = r["policies"][name]
            ratio = "" if e["ratio_to_oracle"] is None else f" ({e['ratio_to_oracle']:+.2f})"
            cells.append(f"{e['true_incremental_margin']:>12.1f}{ratio:>8s} c{e['true_cost']:>6.0f}")
        print(f"{name:32s}" + "".join(f"{c:>28s}" for c in cells))
    for r in reports:
        print(
            f"{r['response_shape']} seed {r['seed']}: budget {r['budget']:.0f}, best blanket in truth {r['best_blanket_in_truth']}, "
            f"night {r['night_seconds']} s; published {r.get('published_status')} {r.get('published_policy')}: {r['gate']}"
        )
        p = r["policies"]["promoflow"]
        print(
            f"  true cost {p['true_cost']:.1f} vs expected {p['expected_cost_published']:.1f} (budget {r['budget']:.0f}); per promo:"
        )
        for row in r["cost_by_promo"]:
            print(
                f"    {row['promo_id']:12s} offers {row['offers']:6d}  true cost {row['true_cost']:9.1f}  expected {row['expected_cost'] or 0:9.1f}"
                f"  true incremental margin {row['true_incremental_margin']:9.1f}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[101, 202])
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--start-date", type=date.fromisoformat, default=date(2026, 10, 1))
    parser.add_argument("--budget-per-user", type=float, default=0.3, help="the night's budget is this x users")
    parser.add_argument(
        "--shapes",
        nargs="+",
        choices=RESPONSE_SHAPES,
        default=list(RESPONSE_SHAPES),
        help="generator response shapes to evaluate on (demo.simulator.RESPONSE_SHAPES)",
    )
    parser.add_argument(
        "--item-shape",
        choices=ITEM_SHAPES,
        default="category",
        help="the generator's item choice (demo.simulator.ITEM_SHAPES); featured items are scored on either",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    root = Path(settings.data_dir) / "evaluate"
    reports = [
        run_seed(seed, args.users, args.days, args.start_date, root, shape, args.budget_per_user, args.item_shape)
        for shape in args.shapes
        for seed in args.seeds
    ]
    print_report(reports)
    (root / "evaluate.json").write_text(json.dumps(reports, indent=2, sort_keys=True, default=float))
    print(f"report: {root / 'evaluate.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
