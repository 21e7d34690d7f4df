"""The two-tower recommender on real logged data: the Open Bandit Dataset (OBD) sample.

ZOZOTOWN fashion e-commerce (Saito et al. 2020): per campaign (all, men, women) a log of
Bernoulli Thompson Sampling (BTS) and a log of a uniform-random policy, each showing one
of n_items items at one of 3 positions, with the click and the logging propensity; the
``obp==0.4.1`` wheel ships a 10,000-row sample of each (read as in
``validate_ope_obd.py``: the wheel file only, obp is neither installed nor imported).

1. Train ``ml.recommender.train_recommender`` on the BTS log's clicks: one "user" per
   impression (the log has no user id), its context = one-hot user features
   (``user_feature_0..3``) + one-hot position + the ``user-item_affinity_*`` columns as
   the user tower's numeric features, no item history; items = ``item_context.csv``
   (``item_feature_1`` as category, ``item_feature_0`` shifted positive in the price
   slot, the other item features one-hot). Each click is weighted by the ratio of the
   uniform policy's propensity to BTS's (clipped at ``MAX_TRAINING_WEIGHT``), so the
   towers learn what is clicked rather than what BTS happened to show.
2. Evaluate on the uniform-random log by IPS (propensity 1 / n_items, exact) the
   deterministic policies "show the model's top item for this user and position",
   "show the item with the most BTS clicks at this position" (popularity) and "show a
   random item" (the uniform policy: IPS = the random log's mean click), with standard
   errors and the paired difference model - popularity.

    .venv/bin/python benchmarks/recommender_obd.py [--seeds 7 8 9] [--no-docs]

Writes the table between the markers of docs/recommender.md unless ``--no-docs``.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from validate_ope_obd import CAMPAIGNS, default_cache_dir, obd_wheel, read_log, write_doc_table  # noqa: E402

import ml  # noqa: E402,F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from ml.ope import PolicyValueEstimate, ips_value, one_hot_policy, snips_value  # noqa: E402

DOC_PATH = ROOT / "docs" / "recommender.md"
TABLE_START = "<!-- obd-recommender-table:start -->"
TABLE_END = "<!-- obd-recommender-table:end -->"
MAX_TRAINING_WEIGHT = 20.0
EPOCHS = 20


def item_table(wheel: Path, campaign: str) -> pd.DataFrame:
    """item_context.csv as the recommender's items: item_id, category, price + one-hot item features."""
    with zipfile.ZipFile(wheel) as archive:
        context = pd.read_csv(io.BytesIO(archive.read(f"obp/dataset/obd/bts/{campaign}/item_context.csv")), index_col=0)
    items = pd.DataFrame(
        {
            "item_id": context["item_id"].astype(str),
            "category": context["item_feature_1"].astype(str),
            "price": context["item_feature_0"] - context["item_feature_0"].min() + 1.0,
        }
    )
    one_hot = pd.get_dummies(context[["item_feature_2", "item_feature_3"]].astype(str), dtype=float)
    return pd.concat([items, one_hot.reset_index(drop=True)], axis=1)


def user_context(log: pd.DataFrame, categories: dict[str, list[str]], prefix: str) -> pd.DataFrame:
    """One row per impression: user_id, one-hot user features and position, affinities."""
    columns = {"user_id": [f"{prefix}{i}" for i in range(len(log))]}
    for name, values in categories.items():
        for value in values:
            columns[f"{name}={value}"] = (log[name].astype(str).to_numpy() == value).astype(np.float64)
    frame = pd.DataFrame(columns)
    affinity = (
        log[[c for c in log.columns if c.startswith("user-item_affinity_")]].reset_index(drop=True).astype(np.float64)
    )
    return pd.concat([frame, affinity], axis=1)


def train_on_clicks(bts: pd.DataFrame, items: pd.DataFrame, categories: dict[str, list[str]], n_items: int, seed: int):
    from ml.recommender import RecommenderConfig, train_recommender

    clicked = bts.loc[bts["click"] == 1]
    users = user_context(bts, categories, "bts")
    weight = np.minimum((1.0 / n_items) / bts["propensity_score"].to_numpy(), MAX_TRAINING_WEIGHT)
    interactions = pd.DataFrame(
        {
            "user_id": users["user_id"].to_numpy()[clicked.index.to_numpy()],
            "item_id": clicked["item_id"].astype(str).to_numpy(),
            "event_ts": pd.to_datetime(clicked["timestamp"], utc=True).to_numpy(),
            "event_type": "click",
            "weight": weight[clicked.index.to_numpy()],
        }
    )
    as_of = (pd.to_datetime(bts["timestamp"], utc=True).max() + pd.Timedelta(days=1)).date()
    config = RecommenderConfig(holdout_days=0, batch_size=64)
    return train_recommender(
        interactions, users, None, items, as_of, seed=seed, epochs=EPOCHS, deterministic=True, config=config
    )


def estimates(
    random_log: pd.DataFrame, chosen: np.ndarray, n_items: int
) -> tuple[PolicyValueEstimate, PolicyValueEstimate]:
    arms = random_log["item_id"].to_numpy()
    rewards = random_log["click"].to_numpy(dtype=np.float64)
    propensities = random_log["propensity_score"].to_numpy(dtype=np.float64)
    pi = one_hot_policy(chosen, n_items)
    return ips_value(arms, rewards, propensities, pi), snips_value(arms, rewards, propensities, pi)


def evaluate_campaign(wheel: Path, campaign: str, seeds: list[int]) -> list[dict]:
    from ml.recommender import top_k_items

    bts = read_log(wheel, "bts", campaign).reset_index(drop=True)
    random_log = read_log(wheel, "random", campaign).reset_index(drop=True)
    n_items = bts.attrs["n_items"]
    items = item_table(wheel, campaign)
    names = [f"user_feature_{i}" for i in range(4)] + ["position"]
    categories = {name: sorted(bts[name].astype(str).unique()) for name in names}
    rows = []
    clicks = random_log["click"].to_numpy(dtype=np.float64)
    uniform = {"estimate": clicks.mean(), "stderr": clicks.std(ddof=1) / math.sqrt(len(clicks))}
    by_position = bts.groupby(["position", "item_id"])["click"].sum().reset_index()
    best = by_position.sort_values(["position", "click", "item_id"], ascending=[True, False, True]).drop_duplicates(
        "position"
    )
    popular_item = random_log["position"].map(dict(zip(best["position"], best["item_id"]))).to_numpy(dtype=np.int64)
    popularity_ips, popularity_snips = estimates(random_log, popular_item, n_items)
    for seed in seeds:
        started = time.perf_counter()
        model, metrics = train_on_clicks(bts, items, categories, n_items, seed)
        context = user_context(random_log, categories, "random")
        top = top_k_items(model, context["user_id"].tolist(), context, None, k=1)
        chosen = np.array([int(t[0]) for t in top], dtype=np.int64)
        model_ips, model_snips = estimates(random_log, chosen, n_items)
        difference = model_ips.row_terms - popularity_ips.row_terms
        rows.append(
            {
                "campaign": campaign,
                "n_items": n_items,
                "seed": seed,
                "bts_clicks": int(bts["click"].sum()),
                "random_rows": len(random_log),
                "random_clicks": int(clicks.sum()),
                "model_ips": model_ips,
                "model_snips": model_snips,
                "popularity_ips": popularity_ips,
                "popularity_snips": popularity_snips,
                "uniform": uniform,
                "difference": difference.mean(),
                "difference_stderr": difference.std(ddof=1) / math.sqrt(len(difference)),
                "distinct_items_shown": int(len(np.unique(chosen))),
                "model_matches": int((chosen == random_log["item_id"].to_numpy()).sum()),
                "seconds": time.perf_counter() - started,
                "examples_per_second": metrics["examples_per_second"],
            }
        )
        print(
            f"{campaign} seed {seed}: model IPS {model_ips.estimate:.5f} ± {model_ips.stderr:.5f}, popularity "
            f"{popularity_ips.estimate:.5f} ± {popularity_ips.stderr:.5f}, random {uniform['estimate']:.5f} ± {uniform['stderr']:.5f}",
            flush=True,
        )
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| campaign | items | BTS clicks (training) | seed | model's top item: IPS ± se | SNIPS ± se | popularity: IPS ± se | random item (on-policy) ± se | model - popularity ± se (paired) | distinct items shown | random-log rows matching the model |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['campaign']} | {r['n_items']} | {r['bts_clicks']} | {r['seed']} | {r['model_ips'].estimate:.5f} ± {r['model_ips'].stderr:.5f} | "
            f"{r['model_snips'].estimate:.5f} ± {r['model_snips'].stderr:.5f} | {r['popularity_ips'].estimate:.5f} ± {r['popularity_ips'].stderr:.5f} | "
            f"{r['uniform']['estimate']:.5f} ± {r['uniform']['stderr']:.5f} | {r['difference']:+.5f} ± {r['difference_stderr']:.5f} | "
            f"{r['distinct_items_shown']} | {r['model_matches']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    parser.add_argument("--no-download", action="store_true", help="fail if the wheel is not cached")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument("--campaigns", nargs="+", choices=CAMPAIGNS, default=list(CAMPAIGNS))
    parser.add_argument(
        "--no-docs", action="store_true", help=f"do not rewrite the table in {DOC_PATH.relative_to(ROOT)}"
    )
    args = parser.parse_args(argv)
    wheel = obd_wheel(args.cache_dir, download=not args.no_download)
    rows = [row for campaign in args.campaigns for row in evaluate_campaign(wheel, campaign, args.seeds)]
    table = markdown_table(rows)
    print(table)
    if not args.no_docs:
        write_doc_table(table, DOC_PATH, TABLE_START, TABLE_END)
        print(f"\ntable written to {DOC_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
