"""Benchmark: the Spark behaviour-feature job against the same aggregations in DuckDB SQL.

For each user count (default 100k and 1M, ~50 events per user over 30 days) it writes
a synthetic clean lake (events / orders / exposures as ``dt=`` partitions, users, items
and promotions snapshots; DuckDB SQL, seconds to write), then measures, each in its own
subprocess so that peak memory is that process tree's (psutil, sampled every 0.2 s):

* **spark**: ``spark_jobs`` on ``local[*]``: the daily partial aggregates of every day
  (``user_daily_aggregates``, ``user_category_daily``, written as Parquet like the
  nightly job) and the roll-ups as of the day after the last one (``user_features``,
  ``user_category_features``, ``item_features`` popularity and conversion);
* **duckdb**: the same aggregations as DuckDB SQL over the same Parquet files, writing
  the same tables (daily per user and per user x category, then the 7/30/90-day
  per-user windows with days-since and the top category, the user x category roll-up
  and item popularity with its rank in category).

Item neighbours and user_sequences are Spark-only and not in the comparison. Prints a
table, the Spark/DuckDB wall-time ratio and the growth from the smallest to the largest
user count, and writes ``data/bench/bench_features.json``.

    .venv/bin/python benchmarks/bench_features.py                 # 100k and 1M users
    .venv/bin/python benchmarks/bench_features.py --users 100000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DAYS = 30
FIRST_DAY = date(2026, 9, 1)
AS_OF = FIRST_DAY + timedelta(days=DAYS)
N_ITEMS = 20_000
N_CATEGORIES = 50


# ------------------------------------------------------------------ synthetic lake
def generate_lake(lake: Path, n_users: int, events_per_user: int) -> dict:
    """Write the clean lake for ``n_users`` with DuckDB; return row counts."""
    import duckdb

    clean = lake / "clean"
    if clean.exists():
        shutil.rmtree(clean)
    for table in ("users", "items", "promotions"):
        (clean / table).mkdir(parents=True)
    n_events = n_users * events_per_user
    con = duckdb.connect()
    con.execute("set timezone = 'UTC'")
    start = f"TIMESTAMPTZ '{FIRST_DAY.isoformat()} 00:00:00+00'"
    seconds = DAYS * 86400
    con.execute(f"""
        copy (
            select 'u' || i as user_id, {start} - to_seconds(hash(i, 11) % (400 * 86400)) as signup_ts,
                   'north' as region, 'web' as device, 'k' || i as user_key
            from range({n_users}) t(i)
        ) to '{clean}/users/users.parquet' (format parquet)""")
    con.execute(f"""
        copy (
            select 'i' || i as item_id, 'c' || (i % {N_CATEGORIES}) as category, null::varchar as brand,
                   round(5 + (hash(i, 12) % 20000) / 100.0, 2) as price, 2.0 as unit_cost
            from range({N_ITEMS}) t(i)
        ) to '{clean}/items/items.parquet' (format parquet)""")
    con.execute(f"""
        copy (
            select 'p' || i as promo_id,
                   ['percent_off', 'amount_off', 'spend_threshold', 'free_shipping', 'gift'][1 + (i % 5)::bigint] as promo_type,
                   10.0 as value, 0.0 as min_spend, 7 as valid_days
            from range(10) t(i)
        ) to '{clean}/promotions/promotions.parquet' (format parquet)""")
    # Events: user, item, type and time from hashes of the row number (deterministic).
    con.execute(f"""
        copy (
            with base as (
                select i, 'u' || (hash(i, 1) % {n_users}) as user_id, hash(i, 4) % 100 as kind,
                       {start} + to_seconds(hash(i, 5) % {seconds}) as event_ts
                from range({n_events}) t(i)
            )
            select 'e' || i as event_id, user_id,
                   case when kind < 85 then 'i' || (hash(i, 2) % {N_ITEMS}) end as item_id,
                   case when kind < 60 then 'view' when kind < 70 then 'click' when kind < 80 then 'add_to_cart'
                        when kind < 85 then 'purchase' when kind < 95 then 'search' else 'app_open' end as event_type,
                   event_ts,
                   user_id || '-' || strftime(event_ts, '%Y%m%d') || '-' || (hash(i, 3) % 3) as session_id,
                   case when kind between 85 and 94 then 'q' || (hash(i, 6) % 500) end as query,
                   strftime(event_ts, '%Y-%m-%d') as dt
            from base
        ) to '{clean}/events' (format parquet, partition_by (dt))""")
    n_orders = n_users * 2
    con.execute(f"""
        copy (
            select 'o' || i as order_id, 'u' || (hash(i, 21) % {n_users}) as user_id,
                   {start} + to_seconds(hash(i, 22) % {seconds}) as order_ts,
                   round(10 + (hash(i, 23) % 20000) / 100.0, 2) as gross_amount,
                   case when hash(i, 24) % 10 < 3 then 5.0 else 0.0 end as discount_amount,
                   5.0 as cogs, 0.0 as shipping_fee,
                   case when hash(i, 24) % 10 < 3 then 'p' || (hash(i, 25) % 10) end as promo_id,
                   1 as n_items,
                   strftime({start} + to_seconds(hash(i, 22) % {seconds}), '%Y-%m-%d') as dt
            from range({n_orders}) t(i)
        ) to '{clean}/orders' (format parquet, partition_by (dt))""")
    n_exposures = n_users
    con.execute(f"""
        copy (
            select 'x' || i as exposure_id, 'u' || (hash(i, 31) % {n_users}) as user_id,
                   case when hash(i, 32) % 10 = 0 then 'none' else 'p' || (hash(i, 33) % 10) end as promo_id,
                   {start} + to_seconds(hash(i, 34) % {seconds}) as sent_ts,
                   ['email', 'push', 'sms', 'in_app'][1 + (hash(i, 35) % 4)::bigint] as channel,
                   0.5 as propensity, 'bench' as policy_version,
                   strftime({start} + to_seconds(hash(i, 34) % {seconds}), '%Y-%m-%d') as dt
            from range({n_exposures}) t(i)
        ) to '{clean}/exposures' (format parquet, partition_by (dt))""")
    con.close()
    return {"users": n_users, "events": n_events, "orders": n_orders, "exposures": n_exposures}


# ------------------------------------------------------------------ the two engines (run in subprocesses)
def spark_worker(lake: Path, out: Path, shuffle_partitions: int, driver_memory: str) -> None:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from spark_jobs import nightly
    from spark_jobs.category_features import user_category_features
    from spark_jobs.session import build_spark
    from spark_jobs.user_features import (
        USER_CATEGORY_DAILY_SCHEMA,
        USER_DAILY_SCHEMA,
        dedupe_events,
        item_features,
        roll_up_user_features,
        user_category_daily,
        user_daily_aggregates,
    )

    spark = build_spark(
        master="local[*]", app_name="bench-features", shuffle_partitions=shuffle_partitions, driver_memory=driver_memory
    )
    clean = lake / "clean"
    parts = {t: nightly._partition_dirs(clean / t) for t in nightly.DAILY_SOURCES}
    events, orders, exposures = (
        nightly._read_partitions(spark, sorted(parts[t].values()), t) for t in nightly.DAILY_SOURCES
    )
    items = nightly._read_snapshot(spark, clean, "items")
    users = nightly._read_snapshot(spark, clean, "users")
    promotions = nightly._read_snapshot(spark, clean, "promotions")
    steps: dict[str, float] = {}
    clock = time.perf_counter()

    def step(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        steps[name] = round(now - clock, 1)
        clock = now

    step("start")
    # As the nightly job does (and the DuckDB side's temp table): events deduplicated once for both tables.
    unique_events = dedupe_events(events).persist(StorageLevel.MEMORY_AND_DISK)
    daily_rows = user_daily_aggregates(unique_events, orders, exposures, items, promotions, deduplicated=True)
    nightly._write_daily(daily_rows, out / "user_daily")
    step("user_daily")
    nightly._write_daily(user_category_daily(unique_events, items, deduplicated=True), out / "user_category_daily")
    step("user_category_daily")
    unique_events.unpersist()

    days = sorted(parts["events"])
    daily = nightly._read_features(spark, out / "user_daily", days, USER_DAILY_SCHEMA)
    category_daily = nightly._read_features(spark, out / "user_category_daily", days, USER_CATEGORY_DAILY_SCHEMA)
    roll_up_user_features(daily, category_daily, users, AS_OF).write.mode("overwrite").parquet(
        str(out / "user_features")
    )
    step("user_features")
    user_category_features(category_daily, AS_OF).write.mode("overwrite").parquet(str(out / "user_category_features"))
    step("user_category_features")
    item_events = events.filter(F.to_date("event_ts") >= F.lit(AS_OF - timedelta(days=30)))
    item_features(item_events, items, AS_OF).write.mode("overwrite").parquet(str(out / "item_features"))
    step("item_features")
    (out / "steps.json").write_text(json.dumps(steps))
    spark.stop()


DUCKDB_SQL = """
create temp table ev as
    select * from read_parquet('{clean}/events/*/*.parquet')
    qualify row_number() over (partition by event_id order by event_ts) = 1;
create temp table it as select item_id, min(category) as category, min(price) as price
    from read_parquet('{clean}/items/items.parquet') group by item_id;
create temp table pr as select promo_id, min(promo_type) as promo_type
    from read_parquet('{clean}/promotions/promotions.parquet') group by promo_id;

copy (
    with e as (
        select ev.*, cast(event_ts as date) as dt, hour(event_ts) as h, it.price
        from ev left join it using (item_id)
    ),
    by_events as (
        select user_id, dt, count(*) as n_events,
               count(*) filter (event_type = 'view') as n_views,
               count(*) filter (event_type = 'click') as n_clicks,
               count(*) filter (event_type = 'add_to_cart') as n_carts,
               count(*) filter (event_type = 'purchase') as n_purchase_events,
               count(*) filter (event_type = 'search') as n_searches,
               count(distinct session_id) as n_sessions, max(event_ts) as last_event_ts,
               {hour_columns},
               count(price) filter (event_type = 'view') as n_priced_views,
               coalesce(sum(price) filter (event_type = 'view'), 0) as viewed_price_sum,
               count(price) filter (event_type = 'purchase') as n_priced_purchases,
               coalesce(sum(price) filter (event_type = 'purchase'), 0) as purchased_price_sum
        from e group by user_id, dt
    ),
    carts as (
        select user_id, dt, count(*) as n_cart_sessions, count(*) filter (not bought) as n_abandoned_cart_sessions
        from (select user_id, dt, session_id, bool_or(event_type = 'add_to_cart') as carted,
                     bool_or(event_type = 'purchase') as bought
              from e where session_id is not null group by all)
        where carted group by all
    ),
    seq as (
        select user_id, dt, string_agg(item_id, ',' order by event_ts, event_id) as last_item_ids
        from (select user_id, dt, item_id, event_ts, event_id,
                     row_number() over (partition by user_id, dt order by event_ts desc, event_id desc) as k
              from e where item_id is not null)
        where k <= 20 group by all
    ),
    o as (
        select o.*, cast(order_ts as date) as dt, pr.promo_type
        from read_parquet('{clean}/orders/*/*.parquet') o left join pr using (promo_id)
    ),
    by_orders as (
        select user_id, dt, count(*) as n_orders, sum(gross_amount) as order_amount,
               sum(gross_amount * gross_amount) as order_amount_sq,
               count(*) filter (discount_amount > 0) as n_discounted_orders,
               sum(discount_amount) as discount_amount, max(order_ts) as last_order_ts,
               count(*) filter (coalesce(promo_id, 'none') != 'none') as n_redemptions,
               {type_redemptions}
        from o group by user_id, dt
    ),
    x as (
        select x.*, cast(sent_ts as date) as dt, pr.promo_type
        from read_parquet('{clean}/exposures/*/*.parquet') x left join pr using (promo_id)
        where coalesce(promo_id, 'none') != 'none'
    ),
    by_exposures as (
        select user_id, dt, count(*) as n_exposures, max(sent_ts) as last_exposure_ts,
               {channel_exposures}, {type_exposures}
        from x group by user_id, dt
    )
    select * from by_events
        left join carts using (user_id, dt)
        left join seq using (user_id, dt)
        full join by_orders using (user_id, dt)
        full join by_exposures using (user_id, dt)
) to '{out}/user_daily' (format parquet, partition_by (dt), overwrite_or_ignore);

copy (
    select user_id, cast(event_ts as date) as dt, category,
           count(*) filter (event_type = 'view') as views,
           count(*) filter (event_type = 'add_to_cart') as carts,
           count(*) filter (event_type = 'purchase') as purchases,
           coalesce(sum(price) filter (event_type = 'purchase'), 0) as spend,
           max(event_ts) as last_event_ts
    from ev join it using (item_id)
    where event_type in ('view', 'add_to_cart', 'purchase') and category is not null
    group by all
) to '{out}/user_category_daily' (format parquet, partition_by (dt), overwrite_or_ignore);

create temp table d as
    select * from read_parquet('{out}/user_daily/*/*.parquet', hive_partitioning = true)
    where dt >= date '{as_of}' - 90 and dt < date '{as_of}';
create temp table cd as
    select * from read_parquet('{out}/user_category_daily/*/*.parquet', hive_partitioning = true)
    where dt >= date '{as_of}' - 90 and dt < date '{as_of}';

copy (
    with w as (
        select user_id,
               max(last_event_ts) as last_event_ts, max(last_order_ts) as last_order_ts,
               max(last_exposure_ts) as last_exposure_ts,
               {window_sums},
               {hour_sums}
        from d group by user_id
    ),
    cat as (
        select user_id, category, row_number() over (partition by user_id order by s desc, category) as k
        from (select user_id, category, sum(views + carts + purchases) as s from cd group by all)
        where s > 0
    ),
    top as (
        select user_id, max(category) filter (k = 1) as top_category_1, max(category) filter (k = 2) as top_category_2,
               max(category) filter (k = 3) as top_category_3
        from cat where k <= 3 group by user_id
    )
    select u.user_id, date '{as_of}' as as_of,
           greatest(coalesce(date '{as_of}' - cast(u.signup_ts as date), 0), 0) as tenure_days,
           coalesce(date '{as_of}' - cast(w.last_event_ts as date), 999) as days_since_last_event,
           coalesce(date '{as_of}' - cast(w.last_order_ts as date), 999) as days_since_last_order,
           coalesce(date '{as_of}' - cast(w.last_exposure_ts as date), 999) as days_since_last_exposure,
           {window_outputs},
           coalesce(top.top_category_1, 'unknown') as top_category,
           coalesce(top.top_category_1, '') as top_category_1,
           coalesce(top.top_category_2, '') as top_category_2,
           coalesce(top.top_category_3, '') as top_category_3
    from read_parquet('{clean}/users/users.parquet') u
        left join w using (user_id) left join top using (user_id)
) to '{out}/user_features.parquet' (format parquet);

copy (
    select user_id, date '{as_of}' as as_of, category, views_90d, carts_90d, purchases_90d, spend_90d,
           date '{as_of}' - cast(last_ts as date) as days_since_last, affinity_score,
           row_number() over (partition by user_id order by affinity_score desc, category) as rank
    from (select user_id, category, sum(views) as views_90d, sum(carts) as carts_90d,
                 sum(purchases) as purchases_90d, sum(spend) as spend_90d, max(last_event_ts) as last_ts,
                 cast(sum(views + carts + purchases) as double) as affinity_score
          from cd group by all)
    where affinity_score > 0
) to '{out}/user_category_features.parquet' (format parquet);

copy (
    with c as (
        select item_id, count(*) filter (event_type = 'view') as views_30d,
               count(*) filter (event_type = 'purchase') as purchases_30d
        from ev where cast(event_ts as date) >= date '{as_of}' - 30 and cast(event_ts as date) < date '{as_of}'
          and item_id is not null
        group by item_id
    )
    select item_id, coalesce(it.category, 'unknown') as category,
           coalesce(views_30d, 0) as views_30d, coalesce(purchases_30d, 0) as purchases_30d,
           case when coalesce(views_30d, 0) > 0 then purchases_30d / views_30d else 0 end as conversion_rate_30d,
           row_number() over (partition by coalesce(it.category, 'unknown')
                              order by coalesce(purchases_30d, 0) desc, coalesce(views_30d, 0) desc, item_id)
               as popularity_rank_in_category
    from it left join c using (item_id)
) to '{out}/item_features.parquet' (format parquet);
"""


def _duckdb_sql(clean: Path, out: Path) -> str:
    from spark_jobs.user_features import CHANNELS, PROMO_TYPES

    hour_columns = ",\n".join(f"count(*) filter (h = {h}) as events_h{h:02d}" for h in range(24))
    sums = {  # output name -> (daily column, window days)
        "orders_7d": ("n_orders", 7),
        "orders_30d": ("n_orders", 30),
        "orders_90d": ("n_orders", 90),
        "spend_7d": ("order_amount", 7),
        "spend_30d": ("order_amount", 30),
        "spend_90d": ("order_amount", 90),
        "spend_sq_90d": ("order_amount_sq", 90),
        "discounted_90d": ("n_discounted_orders", 90),
        "events_7d": ("n_events", 7),
        "events_30d": ("n_events", 30),
        "events_90d": ("n_events", 90),
        "views_30d": ("n_views", 30),
        "carts_30d": ("n_carts", 30),
        "sessions_30d": ("n_sessions", 30),
        "sessions_90d": ("n_sessions", 90),
        "searches_30d": ("n_searches", 30),
        "searches_90d": ("n_searches", 90),
        "cart_sessions_30d": ("n_cart_sessions", 30),
        "abandoned_30d": ("n_abandoned_cart_sessions", 30),
        "exposures_7d": ("n_exposures", 7),
        "exposures_30d": ("n_exposures", 30),
        "exposures_90d": ("n_exposures", 90),
        "redemptions_90d": ("n_redemptions", 90),
        "priced_views_90d": ("n_priced_views", 90),
        "viewed_price_90d": ("viewed_price_sum", 90),
        "priced_purchases_90d": ("n_priced_purchases", 90),
        "purchased_price_90d": ("purchased_price_sum", 90),
        **{f"x_{t}_90d": (f"n_exposures_{t}", 90) for t in PROMO_TYPES},
        **{f"r_{t}_90d": (f"n_redemptions_{t}", 90) for t in PROMO_TYPES},
    }
    window_sums = ",\n".join(
        [
            *(
                f"coalesce(sum({col}) filter (dt >= date '{AS_OF}' - {days}), 0) as {name}"
                for name, (col, days) in sums.items()
            ),
            *(f"max(dt) filter (n_exposures_{t} > 0) as last_{t}_dt" for t in PROMO_TYPES),
        ]
    )
    hour_sums = ",\n".join(f"coalesce(sum(events_h{h:02d}), 0) as h{h:02d}" for h in range(24))

    def ratio(num: str, den: str) -> str:
        return f"case when coalesce({den}, 0) > 0 then {num} / {den} else 0 end"

    outputs = [
        f"coalesce({n}, 0) as {n}"
        for n in (
            "orders_7d",
            "orders_30d",
            "orders_90d",
            "spend_7d",
            "spend_30d",
            "spend_90d",
            "views_30d",
            "carts_30d",
            "sessions_30d",
            "searches_30d",
            "events_7d",
            "events_30d",
            "events_90d",
            "sessions_90d",
            "searches_90d",
            "exposures_7d",
            "exposures_30d",
            "exposures_90d",
            "redemptions_90d",
        )
    ]
    outputs += [
        f"{ratio('events_30d', 'sessions_30d')} as events_per_session_30d",
        f"{ratio('carts_30d', 'views_30d')} as view_to_cart_rate_30d",
        f"least({ratio('orders_30d', 'carts_30d')}, 1) as cart_to_order_rate_30d",
        f"{ratio('spend_90d', 'orders_90d')} as avg_order_value_90d",
        f"sqrt(greatest({ratio('spend_sq_90d', 'orders_90d')} - pow({ratio('spend_90d', 'orders_90d')}, 2), 0))"
        " as order_value_std_90d",
        f"{ratio('discounted_90d', 'orders_90d')} as discount_order_share_90d",
        f"{ratio('abandoned_30d', 'cart_sessions_30d')} as cart_abandonment_rate_30d",
        f"{ratio('viewed_price_90d', 'priced_views_90d')} as avg_viewed_price_90d",
        f"{ratio('purchased_price_90d', 'priced_purchases_90d')} as avg_purchased_price_90d",
        f"least({ratio('redemptions_90d', 'exposures_90d')}, 1) as redemption_rate_90d",
        *[f"least({ratio(f'r_{t}_90d', f'x_{t}_90d')}, 1) as redemption_rate_{t}_90d" for t in PROMO_TYPES],
        *[f"{ratio(f'h{h:02d}', 'events_90d')} as hour_share_{h:02d}" for h in range(24)],
        *[f"coalesce(date '{AS_OF}' - last_{t}_dt, 999) as days_since_last_{t}_offer" for t in PROMO_TYPES],
        # the first hour with the most events; 10 without events (the Spark default)
        "case when coalesce(events_90d, 0) > 0 then list_position(["
        + ", ".join(f"h{h:02d}" for h in range(24))
        + "], greatest("
        + ", ".join(f"h{h:02d}" for h in range(24))
        + ")) - 1 else 10 end as preferred_hour",
    ]
    return DUCKDB_SQL.format(
        clean=clean,
        out=out,
        as_of=AS_OF.isoformat(),
        hour_columns=hour_columns,
        type_redemptions=", ".join(f"count(*) filter (promo_type = '{t}') as n_redemptions_{t}" for t in PROMO_TYPES),
        channel_exposures=", ".join(f"count(*) filter (channel = '{c}') as n_exposures_{c}" for c in CHANNELS),
        type_exposures=", ".join(f"count(*) filter (promo_type = '{t}') as n_exposures_{t}" for t in PROMO_TYPES),
        window_sums=window_sums,
        hour_sums=hour_sums,
        window_outputs=",\n".join(outputs),
    )


def duckdb_worker(lake: Path, out: Path) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("set timezone = 'UTC'")
    con.execute(f"set temp_directory = '{out}/.duckdb_tmp'")
    con.execute("set preserve_insertion_order = false")
    con.execute(_duckdb_sql(lake / "clean", out))
    con.close()


# ------------------------------------------------------------------ measuring
def measure(command: list[str]) -> dict:
    """Run ``command``; wall seconds and peak RSS (MB) of its process tree, sampled every 0.2 s."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "TZ": "UTC"})
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [parent, *parent.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(0.2)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{command} exited with {proc.returncode}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(peak / 2**20, 1)}


def bench(n_users: int, events_per_user: int, work: Path, shuffle_partitions: int, driver_memory: str) -> dict:
    lake = work / f"lake_{n_users}"
    t0 = time.perf_counter()
    counts = generate_lake(lake, n_users, events_per_user)
    generated_s = time.perf_counter() - t0
    print(f"[{n_users} users] lake written in {generated_s:.0f} s: {counts}", flush=True)
    result = {"users": n_users, **counts, "generate_s": round(generated_s, 1)}
    for engine in ("duckdb", "spark"):
        out = work / f"out_{engine}_{n_users}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        command = [
            sys.executable,
            __file__,
            f"--{engine}-worker",
            "--lake",
            str(lake),
            "--out",
            str(out),
            "--shuffle-partitions",
            str(shuffle_partitions),
            "--driver-memory",
            driver_memory,
        ]
        figures = measure(command)
        if (out / "steps.json").exists():
            figures["steps_s"] = json.loads((out / "steps.json").read_text())
        figures["events_per_s"] = round(counts["events"] / figures["wall_s"])
        result[engine] = figures
        print(f"[{n_users} users] {engine}: {figures}", flush=True)
    result["spark_over_duckdb"] = round(result["spark"]["wall_s"] / result["duckdb"]["wall_s"], 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--events-per-user", type=int, default=50)
    parser.add_argument("--work-dir", type=Path, default=ROOT / "data" / "bench" / "features")
    parser.add_argument("--json", type=Path, default=ROOT / "data" / "bench" / "bench_features.json")
    parser.add_argument("--shuffle-partitions", type=int, default=16)
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--keep", action="store_true", help="keep the generated lakes and outputs")
    parser.add_argument("--spark-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--duckdb-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lake", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.spark_worker:
        spark_worker(args.lake, args.out, args.shuffle_partitions, args.driver_memory)
        return 0
    if args.duckdb_worker:
        duckdb_worker(args.lake, args.out)
        return 0

    results = []
    for n in sorted(args.users):
        results.append(bench(n, args.events_per_user, args.work_dir, args.shuffle_partitions, args.driver_memory))
        if not args.keep:
            for path in args.work_dir.glob(f"*_{n}"):
                shutil.rmtree(path, ignore_errors=True)
        _report(results, args)
    return 0


def _report(results: list[dict], args) -> None:
    print()
    print(
        f"{'users':>9} {'events':>11} | {'spark s':>8} {'ev/s':>10} {'peak MB':>8} | "
        f"{'duckdb s':>8} {'ev/s':>10} {'peak MB':>8} | spark/duckdb"
    )
    for r in results:
        s, d = r["spark"], r["duckdb"]
        print(
            f"{r['users']:>9} {r['events']:>11} | {s['wall_s']:>8} {s['events_per_s']:>10} {s['peak_rss_mb']:>8} | "
            f"{d['wall_s']:>8} {d['events_per_s']:>10} {d['peak_rss_mb']:>8} | {r['spark_over_duckdb']:>6}"
        )
    growth = {}
    if len(results) > 1:
        small, large = results[0], results[-1]
        scale = large["users"] / small["users"]
        growth = {
            "users_factor": scale,
            "spark_time_factor": round(large["spark"]["wall_s"] / small["spark"]["wall_s"], 2),
            "duckdb_time_factor": round(large["duckdb"]["wall_s"] / small["duckdb"]["wall_s"], 2),
        }
        print(
            f"growth {small['users']} -> {large['users']} users (x{scale:g}): "
            f"spark x{growth['spark_time_factor']}, duckdb x{growth['duckdb_time_factor']}"
        )
    import duckdb
    import pyspark

    payload = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "pyspark": pyspark.__version__,
            "duckdb": duckdb.__version__,
        },
        "settings": {
            "events_per_user": args.events_per_user,
            "days": DAYS,
            "as_of": AS_OF.isoformat(),
            "shuffle_partitions": args.shuffle_partitions,
            "driver_memory": args.driver_memory,
        },
        "results": results,
        "growth": growth,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
