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
import pyarrow as pa

from demo.simulator import ITEM_SHAPES, RESPONSE_SHAPES, UNSUBSCRIBED_FILE
from ml.allocation import allocate
from promoflow.contract import NONE_ARM
from promoflow.settings import Settings

REPO = Path(__file__).resolve().parents[1]


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
            f"select user_id, promo_id, channel, expected_cost, is_exploration, featured_item_ids from main.promo_assignments where run_date = '{run_date}'"
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
    unsubscribed_path = data_dir / "demo" / "truth" / UNSUBSCRIBED_FILE
    left = pd.read_parquet(unsubscribed_path) if unsubscribed_path.exists() else None  # shops without fatigue data
    unseen = sent_to_channels_left(assigned, left, user_ids)
    platform = np.where(unseen, 0, platform)  # never seen: the user's night is the 'none' one
    results = {"promoflow": value_of(platform, inc, cost)}
    results["promoflow"]["expected_cost_published"] = float(assigned["expected_cost"].sum())
    results["promoflow"]["sent_to_channel_left"] = int(unseen.sum())
    explored = assigned.set_index("user_id")["is_exploration"].reindex(user_ids).fillna(False).to_numpy(dtype=bool)
    results["promoflow_without_exploration"] = value_of(np.where(explored, 0, platform), inc, cost)
    results["exploration"] = value_of(np.where(explored, platform, 0), inc, cost)
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
        "unsubscribed_users": None if left is None else int(left["user_id"].nunique()),
        "policies": results,
        "cost_by_promo": by_arm.reset_index().to_dict(orient="records"),
        "blankets_in_truth": blankets,
        "featured_items": featured,
    }


def sent_to_channels_left(assigned: pd.DataFrame, left: pd.DataFrame | None, user_ids: np.ndarray) -> np.ndarray:
    """Per user of ``user_ids``: was their offer sent on a channel they have left (``left``: the
    truth's (user_id, channel) pairs; None for a shop without offer fatigue)?"""
    if left is None or assigned.empty:
        return np.zeros(len(user_ids), bool)
    sent = assigned.loc[assigned["promo_id"] != NONE_ARM, ["user_id", "channel"]]
    marked = sent.merge(left.assign(left=True), on=["user_id", "channel"], how="left")
    return marked.set_index("user_id")["left"].reindex(user_ids).eq(True).to_numpy(dtype=bool)


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


def _shop_dir(root: Path, seed: int, response_shape: str, item_shape: str) -> Path:
    return (
        root / f"shape={response_shape}" / (f"items={item_shape}" if item_shape != "category" else "") / f"seed={seed}"
    )


def _shop_env(data_dir: Path, users: int, budget_per_user: float) -> dict:
    # The night's budget grows with the shop (1,500 for the 5,000-user demo shop).
    env = os.environ | {"PROMO_DATA_DIR": str(data_dir), "PROMO_BUDGET": f"{budget_per_user * users:g}"}
    for key in ("PROMO_RAW_URI", "PROMO_WAREHOUSE_URL", "PROMO_EXPORT_URI", "PROMO_LAKE_DIR", "PROMO_MODEL_STORE_URI"):
        env.pop(key, None)
    return env


def _generate_shop(
    data_dir: Path, env: dict, seed: int, users: int, days: int, start: date, shape: str, items: str, keep: bool
) -> None:
    shutil.rmtree(data_dir, ignore_errors=True)  # a fresh shop: nothing of an earlier evaluation carries over
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
            shape,
            "--item-shape",
            items,
            *(["--keep-state"] if keep else []),
        ],
        check=True,
        env=env,
        cwd=REPO,  # demo/ is run from the repository, not installed
    )


def _run_dag(command: str, run_date: date, env: dict, log_path: Path, seed: int) -> None:
    with open(log_path, "a") as log:
        done = subprocess.run(
            [sys.executable, "-m", "promoflow.cli", command, "--date", run_date.isoformat()],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    if done.returncode != 0:
        raise SystemExit(f"seed {seed}: {command} {run_date} failed (exit {done.returncode}); log: {log_path}")


def _night(data_dir: Path, env: dict, run_date: date, seed: int, response_shape: str, item_shape: str) -> dict:
    """Run promo_nightly for ``run_date`` on the shop of ``data_dir`` and score what it published."""
    started = time.perf_counter()
    _run_dag("run", run_date, env, data_dir / "night.log", seed)
    report = score_night(data_dir, run_date, Settings.from_env(env=env).budget, seed)
    report["night_seconds"] = round(time.perf_counter() - started, 1)
    report["response_shape"] = response_shape
    summary = json.loads((data_dir / "runs" / f"run_date={run_date}" / "summary.json").read_text())
    assigned = summary.get("assign") if isinstance(summary.get("assign"), dict) else {}
    report["gate"] = assigned.get("gate")
    report["published_policy"] = assigned.get("policy")
    report["published_status"] = assigned.get("status")
    report["policy_description"] = assigned.get("policy_description")
    report["late_partitions"] = summary.get("late_partitions") or []
    report["item_shape"] = item_shape
    if report["featured_items"] is not None:
        report["featured_items"]["source"] = (summary.get("recommender") or {}).get("featured_items_source")
        report["featured_items"]["held_out_recall"] = (summary.get("recommender") or {}).get("selection")
    return report


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
    data_dir = _shop_dir(root, seed, response_shape, item_shape)
    env = _shop_env(data_dir, users, budget_per_user)
    _generate_shop(data_dir, env, seed, users, days, start, response_shape, item_shape, keep=False)
    return _night(data_dir, env, start + timedelta(days=days), seed, response_shape, item_shape)


def published_sends(data_dir: Path, run_date: date) -> pa.Table:
    """What the shop's sender delivers of a night: every published offer and every holdout control."""
    con = duckdb.connect(str(data_dir / "warehouse" / "promoflow.duckdb"), read_only=True)
    try:
        return con.sql(
            "select user_id, promo_id, channel, send_hour, propensity, policy_version "
            f"from main.promo_assignments where run_date = '{run_date}' and (promo_id <> '{NONE_ARM}' or is_holdout) "
            "order by user_id"
        ).to_arrow_table()
    finally:
        con.close()


def realised_against_holdout(data_dir: Path) -> dict[str, dict]:
    """Per platform run date: the sends' incremental margin measured against that night's holdout
    (``analytics.promo_performance``, windows closed or not), beside what the night expected."""
    con = duckdb.connect(str(data_dir / "warehouse" / "promoflow.duckdb"), read_only=True)
    try:
        frame = con.sql(
            "select cast(run_date as varchar) run_date, sum(sends) sends, sum(incremental_margin) realised, "
            "sum(expected_incremental_margin) expected, bool_and(is_matured) matured "
            "from analytics.promo_performance group by 1"
        ).df()
    finally:
        con.close()
    return {
        r.run_date: {k: _plain(getattr(r, k)) for k in ("sends", "realised", "expected", "matured")}
        for r in frame.itertuples()
    }


def _plain(value):
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def night_row(report: dict) -> dict:
    """The closed loop's per-night line: what went out and what it was worth in truth."""
    p = report["policies"]
    return {
        "run_date": report["run_date"],
        "published": f"{report.get('published_status')} {report.get('published_policy')}",
        "true_margin": p["promoflow"]["true_incremental_margin"],
        "oracle": p["oracle"]["true_incremental_margin"],
        "ratio_to_oracle": p["promoflow"]["ratio_to_oracle"],
        "offers": p["promoflow"]["offers"],
        "true_cost": p["promoflow"]["true_cost"],
        "expected_cost": p["promoflow"]["expected_cost_published"],
        "budget": report["budget"],
        "exploration_offers": p["exploration"]["offers"],
        "exploration_true_margin": p["exploration"]["true_incremental_margin"],
        "exploration_true_cost": p["exploration"]["true_cost"],
        "best_blanket_true_margin": p["best_blanket_in_truth"]["true_incremental_margin"],
        "sent_to_channel_left": p["promoflow"].get("sent_to_channel_left", 0),
        "unsubscribed_users": report.get("unsubscribed_users"),
        "late_partitions": report.get("late_partitions", []),
        "night_seconds": report["night_seconds"],
    }


def closed_loop_totals(rows: list[dict]) -> dict:
    margin = np.cumsum([r["true_margin"] for r in rows])
    oracle = np.cumsum([r["oracle"] for r in rows])
    explore = float(sum(r["exploration_true_margin"] for r in rows))
    return {
        "cumulative_true_margin": margin.tolist(),
        "cumulative_oracle": oracle.tolist(),
        "cumulative_regret": (oracle - margin).tolist(),
        "exploration_true_margin": explore,
        "exploration_true_cost": float(sum(r["exploration_true_cost"] for r in rows)),
        "nights_over_budget_on_true_cost": [r["run_date"] for r in rows if r["true_cost"] > r["budget"]],
        "ratio_first_night": rows[0]["ratio_to_oracle"],
        "ratio_last_night": rows[-1]["ratio_to_oracle"],
    }


def plot_closed_loop(rows: list[dict], totals: dict, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nights = [r["run_date"][5:] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(nights, totals["cumulative_oracle"], "k--", label="oracle (true responses)")
    left.plot(nights, totals["cumulative_true_margin"], "o-", label="promoflow (published, in truth)")
    left.plot(
        nights, np.cumsum([r["exploration_true_margin"] for r in rows]), "s:", label="of which exploration's sends"
    )
    left.axhline(0, color="grey", lw=0.5)
    left.set_title("cumulative true incremental margin")
    left.legend(fontsize=8)
    right.bar(nights, [r["ratio_to_oracle"] or 0 for r in rows])
    right.axhline(0, color="grey", lw=0.5)
    right.set_title("each night's ratio to the oracle")
    for axis in (left, right):
        axis.tick_params(axis="x", rotation=45, labelsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_closed_loop(
    seed: int,
    users: int,
    days: int,
    start: date,
    root: Path,
    response_shape: str,
    budget_per_user: float,
    item_shape: str,
    nights: int,
) -> dict:
    """``nights`` nights on one shop: after each, the shop answers what the platform published.

    Night 1 is the single-night evaluation's night. Before each later night the simulator runs
    the day the previous night's sends went out (``demo.simulator.advance``: they land as
    exposures with the platform's propensities and policy version, orders and events follow
    from the hidden responses), ``promo_feedback`` attributes that day and ``promo_nightly``
    decides the next, each through its DAG as production would.
    """
    from demo.simulator import advance

    data_dir = _shop_dir(root, seed, response_shape, item_shape)
    env = _shop_env(data_dir, users, budget_per_user)
    _generate_shop(data_dir, env, seed, users, days, start, response_shape, item_shape, keep=True)
    reports, rows = [], []
    for k in range(nights):
        run_date = start + timedelta(days=days + k)
        landed = None
        if k:
            began = time.perf_counter()
            landed = advance(
                data_dir / "demo" / "raw",
                data_dir / "demo" / "truth",
                published_sends(data_dir, run_date - timedelta(days=1)),
            )
            _run_dag("feedback", run_date - timedelta(days=1), env, data_dir / "night.log", seed)
            landed["seconds"] = round(time.perf_counter() - began, 1)
        report = _night(data_dir, env, run_date, seed, response_shape, item_shape)
        report["landed_before"] = landed
        reports.append(report)
        rows.append(night_row(report))
        print(_night_line(response_shape, seed, rows[-1]), flush=True)
    realised = realised_against_holdout(data_dir)
    for row in rows:
        row["holdout_measured"] = realised.get(row["run_date"])
    totals = closed_loop_totals(rows)
    plot_path = data_dir / "closed_loop.png"
    plot_closed_loop(rows, totals, f"{response_shape} shop, seed {seed}: {nights} nights, {users:,} users", plot_path)
    return {
        "seed": seed,
        "response_shape": response_shape,
        "users": users,
        "nights": rows,
        "totals": totals,
        "plot": str(plot_path),
        "night_reports": reports,
    }


def _night_line(shape: str, seed: int, r: dict) -> str:
    ratio = "" if r["ratio_to_oracle"] is None else f"{r['ratio_to_oracle']:+.2f}"
    return (
        f"{shape} {seed} {r['run_date']}: {r['published']:<28s} true {r['true_margin']:>9.1f} ({ratio:>5s} of "
        f"{r['oracle']:.0f}); cost {r['true_cost']:.0f} (expected {r['expected_cost']:.0f}, budget {r['budget']:.0f}); "
        f"exploration {r['exploration_offers']} sends, true {r['exploration_true_margin']:.1f}, cost "
        f"{r['exploration_true_cost']:.0f}; unsubscribed users {r.get('unsubscribed_users')}, "
        f"{r.get('sent_to_channel_left', 0)} sent to a channel left; {r['night_seconds']:.0f} s"
    )


def print_closed_loop(loops: list[dict]) -> None:
    for loop in loops:
        print(
            f"\n{loop['response_shape']} shop, seed {loop['seed']}, {len(loop['nights'])} nights ({loop['users']:,} users)"
        )
        print(
            "| night | published | true margin | ratio | oracle | cumulative | regret | true cost / expected | "
            "exploration sends, true margin, cost | holdout-measured vs expected | unsubscribed users, "
            "sends to a channel left |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        t = loop["totals"]
        for i, r in enumerate(loop["nights"]):
            ratio = "" if r["ratio_to_oracle"] is None else f"{r['ratio_to_oracle']:+.2f}"
            h = r.get("holdout_measured") or {}
            measured = (
                f"{h['realised']:+.1f} vs {h['expected']:+.1f}" + ("" if h.get("matured") else " (open)")
                if h.get("realised") is not None and h.get("expected") is not None
                else "-"
            )
            print(
                f"| {r['run_date']} | {r['published']} | {r['true_margin']:+.1f} | {ratio} | {r['oracle']:.0f} | "
                f"{t['cumulative_true_margin'][i]:+.1f} | {t['cumulative_regret'][i]:.0f} | "
                f"{r['true_cost']:.0f} / {r['expected_cost']:.0f} | {r['exploration_offers']}, "
                f"{r['exploration_true_margin']:+.1f}, {r['exploration_true_cost']:.0f} | {measured} | "
                f"{r.get('unsubscribed_users')}, {r.get('sent_to_channel_left', 0)} |"
            )
        print(
            f"cumulative true margin {t['cumulative_true_margin'][-1]:+.1f} (oracle {t['cumulative_oracle'][-1]:.0f}); "
            f"exploration {t['exploration_true_margin']:+.1f} at true cost {t['exploration_true_cost']:.0f}; "
            f"nights over budget on true cost: {t['nights_over_budget_on_true_cost'] or 'none'}; plot: {loop['plot']}"
        )


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
        "--nights",
        type=int,
        default=1,
        help="nights per shop; above 1 the shop answers each night's published offers (closed loop)",
    )
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
    if args.nights < 1:
        parser.error("--nights must be at least 1")
    settings = Settings.from_env()
    root = Path(settings.data_dir) / "evaluate"
    if args.nights > 1:
        loops = [
            run_closed_loop(
                seed,
                args.users,
                args.days,
                args.start_date,
                root,
                shape,
                args.budget_per_user,
                args.item_shape,
                args.nights,
            )
            for shape in args.shapes
            for seed in args.seeds
        ]
        print_closed_loop(loops)
        (root / "closed_loop.json").write_text(json.dumps(loops, indent=2, sort_keys=True, default=float))
        print(f"report: {root / 'closed_loop.json'}")
        return 0
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
