"""Benchmark: materialising one night of N users' behaviour features into SQLite and Redis.

Builds a synthetic night of the user_features mart (vectorised numpy, one row per
user, the columns of docs/ARCHITECTURE.md) as the Parquet file the DuckDB offline
store reads, applies the feature repository, then materialises the night with
Feast's default path and with the supported faster options, each into a fresh
online store (its own Feast project). Prints rows/s and the ratio to the default,
and checks that every option leaves the same online values (a sample of users).

    .venv/bin/python benchmarks/bench_materialize.py               # 1M users
    .venv/bin/python benchmarks/bench_materialize.py --users 100000 --stores sqlite

Redis: PROMO_REDIS_URL (default 127.0.0.1:6379); keys are deleted after each option.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promoflow import feature_store  # noqa: E402
from promoflow.settings import Settings  # noqa: E402

NIGHT = date(2026, 10, 3)
SAMPLE_USERS = 2_000

# name -> (materialization options, online store options, stores it applies to)
FEAST_DEFAULT = {"online_write_batch_size": None, "pull_latest_features": False}
OPTIONS = {
    "feast default (one batch, pull all)": (FEAST_DEFAULT, {}, {"sqlite", "redis"}),
    "online_write_batch_size=10k": (
        {"online_write_batch_size": 10_000, "pull_latest_features": False},
        {},
        {"sqlite", "redis"},
    ),
    "online_write_batch_size=50k": (
        {"online_write_batch_size": 50_000, "pull_latest_features": False},
        {},
        {"sqlite", "redis"},
    ),
    "batch 50k + pull_latest_features": (
        {"online_write_batch_size": 50_000, "pull_latest_features": True},
        {},
        {"sqlite", "redis"},
    ),
    "batch 50k + redis skip_dedup": (
        {"online_write_batch_size": 50_000, "pull_latest_features": False},
        {"skip_dedup": True},
        {"redis"},
    ),
    "write_to_online_store(DataFrame), 50k chunks": (None, {}, {"sqlite", "redis"}),
}


def synthetic_night(n_users: int, seed: int = 7) -> pa.Table:
    """One night of the user_features mart for ``n_users`` users, vectorised."""
    rng = np.random.default_rng(seed)
    orders_90d = rng.poisson(1.5, n_users)
    orders_30d = rng.binomial(orders_90d, 0.4)
    orders_7d = rng.binomial(orders_30d, 0.3)
    aov = np.round(rng.gamma(4.0, 12.0, n_users), 2)
    views = rng.poisson(12, n_users)
    carts = rng.binomial(views, 0.2)
    sessions = np.maximum(1, rng.poisson(4, n_users))
    ts = pd.Timestamp(NIGHT, tz="UTC")
    return pa.table(
        {
            "user_id": pa.array([f"u{i:08d}" for i in range(n_users)]),
            "event_timestamp": pa.array(
                np.full(n_users, ts.value // 1000, dtype="int64"), pa.timestamp("us", tz="UTC")
            ),
            "as_of": pa.array(np.full(n_users, NIGHT)),
            "tenure_days": rng.integers(0, 2000, n_users),
            "days_since_last_event": rng.integers(0, 1000, n_users),
            "days_since_last_order": rng.integers(0, 1000, n_users),
            "days_since_last_exposure": rng.integers(0, 1000, n_users),
            "orders_7d": orders_7d,
            "orders_30d": orders_30d,
            "orders_90d": orders_90d,
            "spend_7d": orders_7d * aov,
            "spend_30d": orders_30d * aov,
            "spend_90d": orders_90d * aov,
            "views_30d": views,
            "carts_30d": carts,
            "sessions_30d": sessions,
            "searches_30d": rng.poisson(3, n_users),
            "events_per_session_30d": (views + carts) / sessions,
            "view_to_cart_rate_30d": np.where(views > 0, carts / np.maximum(views, 1), 0.0),
            "cart_to_order_rate_30d": np.minimum(1.0, orders_30d / np.maximum(carts, 1)),
            "avg_order_value_90d": np.where(orders_90d > 0, aov, 0.0),
            "order_value_std_90d": rng.gamma(2.0, 5.0, n_users),
            "discount_order_share_90d": rng.random(n_users),
            "exposures_30d": rng.poisson(2, n_users),
            # deal-proneness, price sensitivity, fatigue and channel columns
            "events_90d": rng.poisson(30, n_users),
            "exposures_90d": rng.poisson(6, n_users),
            "redemptions_90d": rng.poisson(1, n_users),
            "avg_viewed_price_90d": rng.gamma(2.0, 20.0, n_users),
            **{
                name: rng.random(n_users)
                for name in (
                    "cart_abandonment_rate_30d",
                    "purchased_to_viewed_price_ratio_90d",
                    "redemption_rate_90d",
                    "redemption_rate_percent_off_90d",
                    "redemption_rate_amount_off_90d",
                    "redemption_rate_spend_threshold_90d",
                    "redemption_rate_free_shipping_90d",
                    "redemption_rate_gift_90d",
                    "channel_engagement_email_90d",
                    "channel_engagement_push_90d",
                    "channel_engagement_sms_90d",
                    "channel_engagement_in_app_90d",
                )
            },
            "preferred_hour": rng.integers(0, 24, n_users),
            "top_category": pa.array(rng.choice(["shoes", "bags", "beauty", "home", "unknown"], n_users)),
        }
    )


def _redis_client(url: str):
    import redis

    host, _, port = url.split(",")[0].partition(":")
    return redis.Redis(host=host or "127.0.0.1", port=int(port or 6379))


def _delete_project_keys(client, project: str) -> None:
    batch = []
    for key in client.scan_iter(match=f"*{project}", count=50_000):
        batch.append(key)
        if len(batch) >= 50_000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)


def _write_via_dataframe(store, export_file: Path, start: datetime, end: datetime) -> None:
    """The supported push path: read the night from the offline file, hand Feast DataFrames."""
    table = pq.read_table(export_file)
    for batch in table.to_batches(max_chunksize=50_000):
        store.write_to_online_store(feature_store.USER_VIEW, df=batch.to_pandas())


def run(n_users: int, stores: list[str], options: list[str]) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-materialize-") as tmp:
        base = Settings.from_env(
            env={"PROMO_DATA_DIR": tmp, "PROMO_REDIS_URL": os.environ.get("PROMO_REDIS_URL", "127.0.0.1:6379")}
        )
        objects = [
            o
            for o in feature_store.definitions(base)
            if getattr(o, "name", "") not in {"item_popularity", "recommender_v1", "item_features_daily"}
        ]
        from data_sources import offline_export_dir

        t0 = time.perf_counter()
        export_dir = offline_export_dir(base, "user_features")
        export_dir.mkdir(parents=True, exist_ok=True)
        export_file = export_dir / f"{NIGHT.isoformat()}.parquet"
        pq.write_table(synthetic_night(n_users), export_file)
        print(f"built {n_users:,} users in {time.perf_counter() - t0:.1f}s -> {export_file}", flush=True)
        sample = [
            f"u{i:08d}" for i in np.random.default_rng(1).choice(n_users, min(SAMPLE_USERS, n_users), replace=False)
        ]
        start, end = feature_store.night_interval(NIGHT)

        for store_kind in stores:
            settings = Settings.from_env(
                env={"PROMO_DATA_DIR": tmp, "PROMO_FEAST_ONLINE_STORE": store_kind, "PROMO_REDIS_URL": base.redis_url}
            )
            client = _redis_client(settings.redis_url) if store_kind == "redis" else None
            reference = None
            for name in options:
                materialization, online_options, kinds = OPTIONS[name]
                if store_kind not in kinds:
                    continue
                project = f"bench_{uuid.uuid4().hex[:10]}"
                store = feature_store.feature_store(
                    settings, project, materialization=materialization, online_store_options=online_options
                )
                store.apply(objects)
                t0 = time.perf_counter()
                if materialization is None:
                    _write_via_dataframe(store, export_file, start, end)
                else:
                    store.materialize(start_date=start, end_date=end, feature_views=[feature_store.USER_VIEW])
                seconds = time.perf_counter() - t0
                online = (
                    feature_store.online_features(settings, sample, store=store)
                    .sort_values("user_id")
                    .reset_index(drop=True)
                )
                if reference is None:
                    reference = online
                same = online.equals(reference)
                results.append(
                    {
                        "store": store_kind,
                        "option": name,
                        "seconds": seconds,
                        "rows_per_s": n_users / seconds,
                        "same_values": same,
                    }
                )
                print(
                    f"{store_kind:6} {name:46} {seconds:8.1f}s {n_users / seconds:10,.0f} rows/s  same={same}",
                    flush=True,
                )
                if client is not None:
                    _delete_project_keys(client, project)
                else:
                    store.teardown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--stores", default="sqlite,redis")
    parser.add_argument(
        "--options",
        default=",".join(str(i) for i in range(len(OPTIONS))),
        help="comma-separated indexes into: " + "; ".join(f"{i}={n}" for i, n in enumerate(OPTIONS)),
    )
    args = parser.parse_args()
    names = list(OPTIONS)
    options = [names[int(i)] for i in args.options.split(",")]
    load = os.getloadavg()
    print(
        f"{platform.platform()}, {os.cpu_count()} CPUs, load average {load[0]:.1f} at start, {args.users:,} users",
        flush=True,
    )
    results = run(args.users, args.stores.split(","), options)
    print(f"\nload average {os.getloadavg()[0]:.1f} at end\n")
    print("| store | option | seconds | rows/s | vs Feast default | same online values |")
    print("|---|---|---:|---:|---:|---|")
    for r in results:
        default = next((d for d in results if d["store"] == r["store"] and d["option"] == names[0]), None)
        ratio = f"{r['rows_per_s'] / default['rows_per_s']:.2f}x" if default else "n/a"
        print(
            f"| {r['store']} | {r['option']} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} | {ratio} | {'yes' if r['same_values'] else 'NO'} |"
        )
    if not all(r["same_values"] for r in results):
        sys.exit("an option left different online values than Feast's default")


if __name__ == "__main__":
    main()
