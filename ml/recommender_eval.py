"""Offline evaluation of the recommender on a landing zone (the demo shop or real raw data).

    python -m ml.recommender_eval --raw-dir /tmp/rec_demo/raw --as-of 2026-10-31 [--epochs 5] [--seeds 7 8 9]

Reads the contract's raw ``events``, ``orders``, ``users`` and ``items`` with DuckDB (no
Spark, Feast or warehouse), holds out the last day before ``--as-of``, and prints the
metrics of :func:`ml.recommender.train_recommender` (model vs popularity, recall@10/@50)
as JSON; ``--card`` writes the model card of the first seed. User and item features are
computed here *as of the held-out day* (events before it), with the definitions of a
subset of ``user_features`` / ``item_features`` (docs/ARCHITECTURE.md), so the held-out
day leaks into nothing. This is an evaluation tool; the nightly pipeline passes Spark's
features instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import pandas as pd


def load_raw(raw_dir: str | Path, as_of: dt.date) -> dict[str, pd.DataFrame]:
    """Events (with an item or not), orders, users and items before ``as_of`` 00:00 UTC."""
    import duckdb

    raw = Path(raw_dir)
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    cutoff = f"timestamptz '{as_of.isoformat()} 00:00:00+00'"
    events = con.sql(
        f"select distinct on (event_id) event_id, user_id, item_id, event_type, event_ts, session_id "
        f"from read_parquet('{raw}/events/*/*.parquet', hive_partitioning = false) where event_ts < {cutoff}"
    ).df()
    orders = con.sql(
        f"select distinct on (order_id) order_id, user_id, order_ts, gross_amount "
        f"from read_parquet('{raw}/orders/*/*.parquet', hive_partitioning = false) where order_ts < {cutoff}"
    ).df()
    users = con.sql(f"select user_id, signup_ts from read_parquet('{raw}/users/users.parquet')").df()
    items = con.sql(f"select item_id, category, price from read_parquet('{raw}/items/items.parquet')").df()
    return {"events": events, "orders": orders, "users": users, "items": items}


def features_as_of(raw: dict[str, pd.DataFrame], day: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(user_features, item_features) from events/orders strictly before ``day``, 30-day windows."""
    import duckdb

    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    for name, frame in raw.items():
        con.register(name, frame)
    d = f"timestamptz '{day.isoformat()} 00:00:00+00'"
    user_features = con.sql(
        f"""
        with e as (select * from events where event_ts < {d} and event_ts >= {d} - interval 30 day),
             o as (select * from orders where order_ts < {d} and order_ts >= {d} - interval 30 day),
             ev as (select user_id,
                           count(*) filter (where event_type = 'view') as views_30d,
                           count(*) filter (where event_type = 'add_to_cart') as carts_30d,
                           count(distinct session_id) as sessions_30d,
                           count(*) filter (where event_type = 'search') as searches_30d,
                           max(event_ts) as last_event_ts
                    from e group by user_id),
             od as (select user_id, count(*) as orders_30d, sum(gross_amount) as spend_30d, max(order_ts) as last_order_ts
                    from o group by user_id)
        select u.user_id,
               greatest(date_diff('day', u.signup_ts, {d}), 0) as tenure_days,
               coalesce(date_diff('day', ev.last_event_ts, {d}), 999) as days_since_last_event,
               coalesce(date_diff('day', od.last_order_ts, {d}), 999) as days_since_last_order,
               coalesce(od.orders_30d, 0) as orders_30d,
               coalesce(od.spend_30d, 0.0) as spend_30d,
               coalesce(ev.views_30d, 0) as views_30d,
               coalesce(ev.carts_30d, 0) as carts_30d,
               coalesce(ev.sessions_30d, 0) as sessions_30d,
               coalesce(ev.searches_30d, 0) as searches_30d,
               coalesce(od.spend_30d / nullif(od.orders_30d, 0), 0.0) as avg_order_value_30d
        from users u left join ev using (user_id) left join od using (user_id)
        order by u.user_id
        """
    ).df()
    item_features = con.sql(
        f"""
        with e as (select * from events where item_id is not null and event_ts < {d} and event_ts >= {d} - interval 30 day)
        select i.item_id, i.category, i.price,
               count(e.item_id) filter (where e.event_type = 'view') as views_30d,
               count(e.item_id) filter (where e.event_type = 'purchase') as purchases_30d
        from items i left join e using (item_id)
        group by all order by i.item_id
        """
    ).df()
    return user_features, item_features


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.recommender_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw-dir", required=True, type=Path)
    parser.add_argument(
        "--as-of",
        required=True,
        type=dt.date.fromisoformat,
        help="run date D: data before D 00:00 UTC; D-1 is held out",
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7])
    parser.add_argument("--card", type=Path, help="write the first seed's model card here")
    args = parser.parse_args(argv)

    import ml  # noqa: F401
    from ml.model_card import write_model_card
    from ml.recommender import choose_featured_source, last_item_sequences, train_recommender

    raw = load_raw(args.raw_dir, args.as_of)
    holdout_day = args.as_of - dt.timedelta(days=1)
    user_features, item_features = features_as_of(raw, holdout_day)
    interactions = raw["events"].loc[
        raw["events"]["item_id"].notna(), ["event_id", "user_id", "item_id", "event_ts", "event_type"]
    ]
    sequences = last_item_sequences(interactions, args.as_of)
    results = []
    for i, seed in enumerate(args.seeds):
        _, metrics = train_recommender(
            interactions, user_features, sequences, item_features, args.as_of, seed=seed, epochs=args.epochs
        )
        results.append(metrics)
        metrics["selection"] = choose_featured_source(metrics)
        if i == 0 and args.card:
            write_model_card(args.card, metrics)
        print(
            json.dumps(
                {
                    "seed": seed,
                    "model": metrics.get("model"),
                    "popularity": metrics.get("popularity"),
                    "category_popularity": metrics.get("category_popularity"),
                    "versus_category_popularity": metrics.get("versus_category_popularity"),
                    "featured_items_source": metrics["selection"]["source"],
                    "examples_per_second": metrics["examples_per_second"],
                    "n_users_evaluated": metrics.get("n_users_evaluated"),
                    "n_training_pairs": metrics["n_training_pairs"],
                    "factorized": {k: v for k, v in metrics.items() if k.startswith("factorized")},
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
