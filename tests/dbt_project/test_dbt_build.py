"""`dbt build` of dbt_project/ on a tiny hand-made warehouse, on DuckDB and Postgres.

Each test loads the `raw` tables and the published `promo_assignments` table the
way promoflow.warehouse and promoflow.publish leave them, runs dbt through its
programmatic API with the env vars / vars the DAG's dbt_build task sets, and
checks mart values computed by hand below.

Hand-made night: run_date 2026-10-10, catalogue p10 (percent_off, 7 days) and
p5 (amount_off, 3 days); the control arm `none` uses control_window_days = 7.

| exposure | user | promo | sent             | window end       | orders in window        |
|----------|------|-------|------------------|------------------|-------------------------|
| e1       | u1   | p10   | 2026-10-01 10:00 | 2026-10-08 10:00 | o1 (redeems p10), o2    |
| e2       | u2   | none  | 2026-10-01 00:00 | 2026-10-08 00:00 | o3 (redeems p5)         |
| e3       | u3   | p5    | 2026-10-01 00:00 | 2026-10-04 00:00 | none (o4 is after end)  |
| e4       | u1   | p5    | 2026-10-08 00:00 | 2026-10-11 00:00 | none yet: not matured   |

Published promo_assignments (sent at run_date 00:00 + send_hour; none landed by
the shop's sender, so each is its own exposure `pa-<run_date>-<user_id>`):

| run_date   | u1            | u2             | u3           | budget / expected_cost |
|------------|---------------|----------------|--------------|------------------------|
| 2026-10-02 | p10 at 08:00  | holdout, 00:00 | p10 at 08:00 | 4.0 / 3.5              |
| 2026-10-09 | p10 at 10:00  | holdout, 09:00 | -            | 3.0 / 2.0              |
| 2026-10-10 | p5            | p10            | holdout      | not before run_date    |

promo_performance 2026-10-02 x p10: treated u1 (o1 redeems p10 + o2: margin 50,
discount 10) and u3 (o4 falls after 10-09 08:00: nothing) vs holdout u2 over
p10's 7 days (o3: margin 15).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
RUN_DATE = "2026-10-10"

# Contract types portable to DuckDB and Postgres.
RAW_TABLES_SQL = """
create table {raw}.users (
    user_id text, user_key text, signup_ts timestamp, region text, device text, email text
);
insert into {raw}.users values
    ('u1', 'k1', '2026-01-05 08:00:00', 'north', 'ios', 'u1@example.com'),
    ('u2', 'k2', '2026-03-01 12:00:00', 'CN-31', 'web', null),
    ('u3', 'k3', '2026-09-30 23:00:00', 'south', 'android', 'u3@example.com');

create table {raw}.items (
    item_id text, category text, brand text, price double precision, unit_cost double precision
);
insert into {raw}.items values
    ('i1', 'shoes', 'acme', 80.0, 50.0),
    ('i2', 'books', null, 20.0, 8.0);

create table {raw}.promotions (
    promo_id text, promo_type text, value double precision, min_spend double precision,
    max_discount double precision, category text, channel text, valid_days integer,
    active_from date, active_to date
);
insert into {raw}.promotions values
    ('p10', 'percent_off', 10.0, 0.0, 20.0, null, null, 7, '2026-09-01', '2026-12-31'),
    ('p5', 'amount_off', 5.0, 30.0, null, 'shoes', 'push', 3, '2026-09-01', '2026-10-05');

create table {raw}.orders (
    order_id text, user_id text, order_ts timestamp, gross_amount double precision,
    discount_amount double precision, cogs double precision, shipping_fee double precision,
    promo_id text, n_items integer, dt date
);
insert into {raw}.orders values
    ('o1', 'u1', '2026-10-02 12:00:00', 100.0, 10.0, 60.0, 5.0, 'p10', 2, '2026-10-02'),
    ('o2', 'u1', '2026-10-05 08:00:00', 40.0, 0.0, 20.0, 0.0, null, 1, '2026-10-05'),
    ('o3', 'u2', '2026-10-03 09:00:00', 50.0, 5.0, 30.0, 4.0, 'p5', 1, '2026-10-03'),
    ('o4', 'u3', '2026-10-09 18:00:00', 20.0, 0.0, 10.0, 3.0, null, 1, '2026-10-09');

create table {raw}.exposures (
    exposure_id text, user_id text, promo_id text, sent_ts timestamp, channel text,
    propensity double precision, policy_version text, dt date
);
insert into {raw}.exposures values
    ('e1', 'u1', 'p10', '2026-10-01 10:00:00', 'email', 0.5, 'v1', '2026-10-01'),
    ('e2', 'u2', 'none', '2026-10-01 00:00:00', 'email', 0.05, 'v1', '2026-10-01'),
    ('e3', 'u3', 'p5', '2026-10-01 00:00:00', 'push', null, null, '2026-10-01'),
    ('e4', 'u1', 'p5', '2026-10-08 00:00:00', 'push', 0.25, 'v1', '2026-10-08');

create table {raw}.user_features (
    user_id text, as_of date, tenure_days integer, days_since_last_event integer,
    days_since_last_order integer, days_since_last_exposure integer,
    orders_7d integer, orders_30d integer, orders_90d integer,
    spend_7d double precision, spend_30d double precision, spend_90d double precision,
    views_30d integer, carts_30d integer, sessions_30d integer, searches_30d integer,
    events_per_session_30d double precision, view_to_cart_rate_30d double precision,
    cart_to_order_rate_30d double precision, avg_order_value_90d double precision,
    order_value_std_90d double precision, discount_order_share_90d double precision,
    exposures_30d integer, preferred_hour integer, top_category text,
    events_90d integer, cart_abandonment_rate_30d double precision, avg_viewed_price_90d double precision, purchased_to_viewed_price_ratio_90d double precision, exposures_90d integer, redemptions_90d integer, redemption_rate_90d double precision, redemption_rate_percent_off_90d double precision, redemption_rate_amount_off_90d double precision, redemption_rate_spend_threshold_90d double precision, redemption_rate_free_shipping_90d double precision, redemption_rate_gift_90d double precision, channel_engagement_email_90d double precision, channel_engagement_push_90d double precision, channel_engagement_sms_90d double precision, channel_engagement_in_app_90d double precision, exposures_7d integer, days_since_last_percent_off_offer integer, days_since_last_amount_off_offer integer, days_since_last_spend_threshold_offer integer, days_since_last_free_shipping_offer integer, days_since_last_gift_offer integer
);
insert into {raw}.user_features (user_id, as_of, tenure_days, days_since_last_event, days_since_last_order, days_since_last_exposure, orders_7d, orders_30d, orders_90d, spend_7d, spend_30d, spend_90d, views_30d, carts_30d, sessions_30d, searches_30d, events_per_session_30d, view_to_cart_rate_30d, cart_to_order_rate_30d, avg_order_value_90d, order_value_std_90d, discount_order_share_90d, exposures_30d, preferred_hour, top_category) values
    ('u1', '2026-10-09', 277, 1, 4, 1, 0, 2, 2, 0.0, 140.0, 140.0, 9, 3, 4, 1, 3.25, 0.333, 0.667, 70.0, 30.0, 0.5, 2, 10, 'shoes'),
    ('u2', '2026-10-09', 222, 6, 6, 8, 0, 1, 1, 0.0, 50.0, 50.0, 2, 1, 1, 0, 3.0, 0.5, 1.0, 50.0, 0.0, 1.0, 0, 9, 'shoes'),
    ('u3', '2026-10-09', 8, 999, 999, 8, 0, 0, 0, 0.0, 0.0, 0.0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1, 10, 'unknown'),
    ('u1', '2026-10-10', 278, 2, 5, 2, 0, 2, 2, 0.0, 140.0, 140.0, 9, 3, 4, 1, 3.25, 0.333, 0.667, 70.0, 30.0, 0.5, 2, 10, 'shoes'),
    ('u2', '2026-10-10', 223, 7, 7, 9, 0, 1, 1, 0.0, 50.0, 50.0, 2, 1, 1, 0, 3.0, 0.5, 1.0, 50.0, 0.0, 1.0, 0, 9, 'shoes'),
    ('u3', '2026-10-10', 9, 1, 1, 9, 1, 1, 1, 20.0, 20.0, 20.0, 3, 1, 1, 0, 4.0, 0.333, 1.0, 20.0, 0.0, 0.0, 1, 18, 'books'),
    -- a later night's row: after run_date, so the user_features mart leaves it out
    ('u1', '2026-10-11', 279, 3, 6, 3, 0, 2, 2, 0.0, 140.0, 140.0, 9, 3, 4, 1, 3.25, 0.333, 0.667, 70.0, 30.0, 0.5, 2, 10, 'shoes');
-- the deal-proneness / price / channel columns: Spark's defaults, one user with a history
update {raw}.user_features set events_90d = 0, cart_abandonment_rate_30d = 0, avg_viewed_price_90d = 0, purchased_to_viewed_price_ratio_90d = 0, exposures_90d = 0, redemptions_90d = 0, redemption_rate_90d = 0, redemption_rate_percent_off_90d = 0, redemption_rate_amount_off_90d = 0, redemption_rate_spend_threshold_90d = 0, redemption_rate_free_shipping_90d = 0, redemption_rate_gift_90d = 0, channel_engagement_email_90d = 0, channel_engagement_push_90d = 0, channel_engagement_sms_90d = 0, channel_engagement_in_app_90d = 0, exposures_7d = 0, days_since_last_percent_off_offer = 999, days_since_last_amount_off_offer = 999, days_since_last_spend_threshold_offer = 999, days_since_last_free_shipping_offer = 999, days_since_last_gift_offer = 999;
update {raw}.user_features set exposures_7d = 1, exposures_90d = 2, redemptions_90d = 1, redemption_rate_90d = 0.5, days_since_last_gift_offer = 1 where user_id = 'u1';

-- Spark's USER_DAILY_SCHEMA without the 24 hourly columns (dbt does not read them)
create table {raw}.user_daily_activity (
    user_id text, n_events bigint, n_views bigint, n_clicks bigint, n_carts bigint,
    n_purchase_events bigint, n_searches bigint, n_sessions bigint, n_orders bigint,
    order_amount double precision, order_amount_sq double precision,
    n_discounted_orders bigint, discount_amount double precision, n_exposures bigint,
    last_event_ts timestamp, last_order_ts timestamp, last_exposure_ts timestamp, dt date
);
insert into {raw}.user_daily_activity values
    ('u1', 5, 3, 0, 1, 1, 0, 1, 1, 40.0, 1600.0, 0, 0.0, 0, '2026-10-05 08:10:00', '2026-10-05 08:00:00', null, '2026-10-05'),
    ('u3', 4, 2, 1, 1, 0, 0, 1, 1, 20.0, 400.0, 0, 0.0, 0, '2026-10-09 18:05:00', '2026-10-09 18:00:00', null, '2026-10-09'),
    -- run_date itself: not before D, so no mart shows it
    ('u2', 1, 1, 0, 0, 0, 0, 1, 0, 0.0, 0.0, 0, 0.0, 0, '2026-10-10 07:00:00', null, null, '2026-10-10');

create table {raw}.item_features (
    item_id text, category text, views_30d integer, purchases_30d integer,
    conversion_rate_30d double precision, popularity_rank_in_category integer, as_of date
);
insert into {raw}.item_features values
    ('i1', 'shoes', 12, 3, 0.25, 1, '2026-10-10'),
    ('i2', 'books', 4, 1, 0.25, 1, '2026-10-10');
"""

PROMO_ASSIGNMENTS_SQL = """
create table {published}.promo_assignments (
    run_date date, user_key text, user_id text, promo_id text, channel text,
    send_hour integer, message text, featured_item_ids text,
    expected_incremental_margin double precision, expected_cost double precision,
    propensity double precision, is_holdout boolean, is_exploration boolean,
    reason text, policy_version text, model_version text
);
insert into {published}.promo_assignments values
    ('2026-10-02', 'k1', 'u1', 'p10', 'email', 8, '10% off for you', 'i1', 4.0, 2.0, 0.5, false, false, 'top_uplift', 'v1', 'm0'),
    ('2026-10-02', 'k3', 'u3', 'p10', 'email', 8, '10% off for you', 'i2', 1.0, 1.5, 0.5, false, true, 'explore', 'v1', 'm0'),
    ('2026-10-02', 'k2', 'u2', 'none', null, 0, null, null, 0.0, 0.0, 0.05, true, false, 'holdout', 'v1', 'm0'),
    ('2026-10-09', 'k1', 'u1', 'p10', 'email', 10, '10% off for you', 'i1,i2', 3.5, 2.0, 0.9, false, false, 'top_uplift', 'v1', 'm1'),
    ('2026-10-09', 'k2', 'u2', 'none', null, 9, null, null, 0.0, 0.0, 1.0, true, false, 'holdout', 'v1', 'm1'),
    ('2026-10-10', 'k1', 'u1', 'p5', 'push', 10, '5 off shoes', 'i1', 1.5, 1.0, 0.8, false, true, 'explore', 'v1', 'm2'),
    ('2026-10-10', 'k2', 'u2', 'p10', 'email', 9, '10% off for you', 'i1', 2.5, 1.5, 0.9, false, false, 'top_uplift', 'v1', 'm2'),
    ('2026-10-10', 'k3', 'u3', 'none', null, 18, null, null, 0.0, 0.0, 1.0, true, false, 'holdout', 'v1', 'm2');

create table {published}.promo_runs (
    run_date date, budget double precision, expected_cost double precision,
    expected_incremental_margin double precision, users bigint, offers bigint,
    holdout_users bigint, holdout_share double precision, policy_version text,
    model_version text, published_at timestamp
);
insert into {published}.promo_runs values
    ('2026-10-02', 4.0, 3.5, 5.0, 3, 2, 1, 0.05, 'v1', 'm0', '2026-10-02 01:00:00'),
    ('2026-10-09', 3.0, 2.0, 3.5, 2, 1, 1, 0.05, 'v1', 'm1', '2026-10-09 01:00:00'),
    ('2026-10-10', 3.0, 2.5, 4.0, 3, 2, 1, 0.05, 'v1', 'm2', '2026-10-10 01:00:00');
"""

MARTS = {
    "dim_users",
    "dim_items",
    "dim_promotions",
    "fct_orders",
    "fct_daily_user_activity",
    "fct_promo_exposures",
    "fct_promo_outcomes",
    "promo_performance",
    "user_features",
    "assignments_latest",
    "fairness_audit",
}
# Incremental by day (delete+insert on the date key), compared across re-runs.
INCREMENTAL_FACTS = {
    "fct_orders": "order_id",
    "fct_daily_user_activity": "user_id, activity_date",
    "fct_promo_exposures": "exposure_id",
}


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def run_dbt(args: list[str], env: dict[str, str], tmp_path: Path):
    """Invoke dbt in-process with `env` set; target/ and logs/ go under tmp_path."""
    from dbt.cli.main import dbtRunner

    full_env = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **env}
    saved = {key: os.environ.get(key) for key in full_env}
    os.environ.update(full_env)
    try:
        return dbtRunner().invoke(
            [
                *args,
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--target-path",
                str(tmp_path / "dbt_target"),
                "--log-path",
                str(tmp_path / "dbt_logs"),
            ]
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def failures(result) -> list[str]:
    """Human-readable list of what went wrong in a dbtRunnerResult."""
    if result.exception is not None:
        return [f"dbt raised: {result.exception!r}"]
    return [
        f"{r.node.unique_id}: {r.status} {r.message}"
        for r in (result.result or [])
        if str(r.status) not in ("success", "pass")
    ]


def assert_build_succeeded(result) -> None:
    assert result.success, "dbt build failed:\n" + "\n".join(failures(result))
    built = {r.node.name for r in result.result if r.node.resource_type == "model"}
    assert built >= MARTS, f"marts not built: {sorted(MARTS - built)}"
    unit_tests = [r for r in result.result if r.node.resource_type == "unit_test"]
    assert len(unit_tests) >= 5, "unit tests (margin, windows, dedup, holdout arms, uplift) did not run"


def check_marts(query, columns_of) -> None:
    """Mart values of the hand-made night; `query(sql)` returns rows, `columns_of(table)` names."""
    outcomes = {
        row[0]: row[1:]
        for row in query(
            "select exposure_id, user_key, promo_type, valid_days, window_end_ts, is_matured,"
            " converted, redeemed, n_orders, order_margin, discount_amount"
            " from {analytics}.fct_promo_outcomes where exposure_source = 'landed'"
        )
    }
    assert set(outcomes) == {"e1", "e2", "e3", "e4"}
    # e1: o1 (redeems p10, margin 100-10-60=30) + o2 (margin 40-0-20=20)
    assert outcomes["e1"] == ("k1", "percent_off", 7, datetime(2026, 10, 8, 10), True, 1, 1, 2, 50.0, 10.0)
    # e2: control arm, 7-day window; o3 redeemed p5, which is not this exposure's promo
    assert outcomes["e2"] == ("k2", "none", 7, datetime(2026, 10, 8), True, 1, 0, 1, 15.0, 0.0)
    # e3: o4 falls after the 3-day window
    assert outcomes["e3"] == ("k3", "amount_off", 3, datetime(2026, 10, 4), True, 0, 0, 0, 0.0, 0.0)
    # e4: window ends after run_date: not matured yet
    assert outcomes["e4"][4] is False

    margins = dict(query("select order_id, order_margin from {analytics}.fct_orders"))
    assert margins == {"o1": 30.0, "o2": 20.0, "o3": 15.0, "o4": 10.0}

    # PII: email never reaches analytics
    assert "email" not in columns_of("dim_users")
    assert "user_key" in columns_of("dim_users")
    assert query("select count(*) from {analytics}.dim_users") == [(3,)]

    # Feast's table: as_of <= run_date only, event_timestamp = as_of 00:00
    feature_rows = query(
        "select as_of, event_timestamp, count(*) from {analytics}.user_features group by 1, 2 order by 1"
    )
    assert feature_rows == [
        (date(2026, 10, 9), datetime(2026, 10, 9), 3),
        (date(2026, 10, 10), datetime(2026, 10, 10), 3),
    ]

    # Marketing's view: newest run only, no user_id
    latest = query("select run_date, user_key, promo_id from {analytics}.assignments_latest order by user_key")
    assert latest == [
        (date(2026, 10, 10), "k1", "p5"),
        (date(2026, 10, 10), "k2", "p10"),
        (date(2026, 10, 10), "k3", "none"),
    ]
    assert "user_id" not in columns_of("assignments_latest")

    check_promo_marts(query)


def check_promo_marts(query) -> None:
    """Published sends as exposures, activity by day, and the holdout comparison."""
    published = query(
        "select exposure_id, run_date, promo_id, sent_ts, is_holdout, user_key"
        " from {analytics}.fct_promo_exposures where exposure_source = 'published' order by exposure_id"
    )
    # run 2026-10-10 is sent on run_date itself: not before D, so not an exposure yet
    assert published == [
        ("pa-2026-10-02-u1", date(2026, 10, 2), "p10", datetime(2026, 10, 2, 8), False, "k1"),
        ("pa-2026-10-02-u2", date(2026, 10, 2), "none", datetime(2026, 10, 2, 0), True, "k2"),
        ("pa-2026-10-02-u3", date(2026, 10, 2), "p10", datetime(2026, 10, 2, 8), False, "k3"),
        ("pa-2026-10-09-u1", date(2026, 10, 9), "p10", datetime(2026, 10, 9, 10), False, "k1"),
        ("pa-2026-10-09-u2", date(2026, 10, 9), "none", datetime(2026, 10, 9, 9), True, "k2"),
    ]
    assert query("select count(*) from {analytics}.fct_promo_exposures where exposure_source = 'landed'") == [(4,)]
    # the published send's own outcome: o1 (redeems p10) and o2 inside 10-02 08:00 + 7 days
    assert query(
        "select converted, redeemed, order_margin, discount_amount, is_matured"
        " from {analytics}.fct_promo_outcomes where exposure_id = 'pa-2026-10-02-u1'"
    ) == [(1, 1, 50.0, 10.0, True)]
    # Censoring at the next offer: u1's e1 (p10, 10-01 10:00) is cut by the published p10
    # at 10-02 08:00 (22 h, before o1); that send was made while e1 was live and is cut by
    # e4 at 10-08 00:00 (o1 and o2 inside); u2's controls have no later offer.
    censored = {
        row[0]: row[1:]
        for row in query(
            "select exposure_id, next_offer_ts, outcome_end_ts, outcome_days, outcome_n_orders, outcome_converted,"
            " outcome_order_margin, outcome_discount_amount, had_live_offer_at_send"
            " from {analytics}.fct_promo_outcomes where user_id in ('u1', 'u2')"
        )
    }
    assert censored["e1"][:2] == (datetime(2026, 10, 2, 8), datetime(2026, 10, 2, 8))
    assert censored["e1"][2] == pytest.approx(22 / 24)
    assert censored["e1"][3:] == (0, 0, 0.0, 0.0, False)
    assert censored["pa-2026-10-02-u1"][:2] == (datetime(2026, 10, 8), datetime(2026, 10, 8))
    assert censored["pa-2026-10-02-u1"][2] == pytest.approx(5 + 16 / 24)
    assert censored["pa-2026-10-02-u1"][3:] == (2, 1, 50.0, 10.0, True)
    assert censored["e2"] == (None, datetime(2026, 10, 8), 7.0, 1, 1, 15.0, 0.0, False)

    # before run_date only: the 2026-10-10 row of user_daily_activity is left out
    assert query(
        "select activity_date, user_key, n_events, n_orders, order_amount"
        " from {analytics}.fct_daily_user_activity order by activity_date"
    ) == [(date(2026, 10, 5), "k1", 5, 1, 40.0), (date(2026, 10, 9), "k3", 4, 1, 20.0)]

    performance = {
        row[0]: row[1:]
        for row in query(
            "select run_date, promo_id, sends, redemptions, redemption_rate, holdout_users,"
            " treated_conversion_rate, holdout_conversion_rate, conversion_uplift,"
            " conversion_uplift_ci_low, conversion_uplift_ci_high,"
            " treated_margin_per_user, holdout_margin_per_user, margin_uplift_per_user,"
            " margin_uplift_ci_low, margin_uplift_ci_high, incremental_margin, discount_cost, roi,"
            " expected_cost, is_matured"
            " from {analytics}.promo_performance"
        )
    }
    assert set(performance) == {date(2026, 10, 2), date(2026, 10, 9)}
    early = performance[date(2026, 10, 2)]
    assert early[:8] == ("p10", 2, 1, 0.5, 1, 0.5, 1.0, -0.5)
    half_width = 1.96 * (0.5 * 0.5 / 2 + 1.0 * 0.0 / 1) ** 0.5
    assert early[8] == pytest.approx(-0.5 - half_width)
    assert early[9] == pytest.approx(-0.5 + half_width)
    # margin per user 25 (treated) vs 15 (holdout); one holdout user: no variance, no interval
    assert early[10:15] == (25.0, 15.0, 10.0, None, None)
    # incremental margin = 10 x 2 sends; ROI = 20 / 10 discount
    assert early[15:] == (20.0, 10.0, 2.0, 3.5, True)
    late = performance[date(2026, 10, 9)]
    assert late[:8] == ("p10", 1, 0, 0.0, 1, 0.0, 0.0, 0.0)
    assert late[-3:] == (None, 2.0, False)  # nothing redeemed yet: no ROI; windows still open


def snapshot(query, analytics: str) -> dict[str, list[tuple]]:
    """Every row of the incremental facts, in key order."""
    return {
        table: query(f"select * from {analytics}.{table} order by {key}") for table, key in INCREMENTAL_FACTS.items()
    }


# --------------------------------------------------------------------------- DuckDB


def _make_duckdb_warehouse(path: Path, published: bool = True) -> Path:
    """A DuckDB file with schema `raw` and (optionally) main.promo_assignments / promo_runs filled by hand."""
    con = duckdb.connect(str(path))
    con.execute("create schema raw")
    for statement in _statements(RAW_TABLES_SQL.format(raw="raw")):
        con.execute(statement)
    if published:
        for statement in _statements(PROMO_ASSIGNMENTS_SQL.format(published="main")):
            con.execute(statement)
    con.close()
    return path


@pytest.fixture
def duckdb_warehouse(tmp_path: Path) -> Path:
    return _make_duckdb_warehouse(tmp_path / "warehouse.duckdb")


def _duckdb_env(path: Path) -> dict[str, str]:
    return {"PROMO_DBT_TARGET": "duckdb", "PROMO_DUCKDB_PATH": str(path)}


def _duckdb_query(path: Path):
    """`query(sql)` on the DuckDB file; same configuration as dbt-duckdb's connection, which stays open in this process."""

    def query(sql: str) -> list[tuple]:
        con = duckdb.connect(str(path))
        try:
            return con.execute(sql.format(analytics="analytics")).fetchall()
        finally:
            con.close()

    return query


@pytest.fixture(scope="module")
def duckdb_night(tmp_path_factory) -> dict:
    """One full `dbt build` of the hand-made night on DuckDB, shared by the checks and the docs test."""
    tmp_path = tmp_path_factory.mktemp("duckdb_night")
    path = _make_duckdb_warehouse(tmp_path / "warehouse.duckdb")
    started = time.monotonic()
    result = run_dbt(["build", "--vars", json.dumps({"run_date": RUN_DATE})], _duckdb_env(path), tmp_path)
    print(f"duckdb dbt build: {time.monotonic() - started:.1f}s")
    return {"path": path, "result": result, "tmp_path": tmp_path}


def test_dbt_build_on_duckdb_computes_outcomes_and_hides_pii(duckdb_night: dict):
    assert_build_succeeded(duckdb_night["result"])
    path = duckdb_night["path"]
    query = _duckdb_query(path)
    check_marts(query, lambda table: [c[0] for c in query(f"describe analytics.{table}")])
    # Every model lands in `analytics` itself, no `analytics_<custom>` schemas.
    schemas = {row[0] for row in query("select schema_name from information_schema.schemata")}
    assert not {s for s in schemas if s.startswith("analytics_")}


def test_dbt_docs_generate_on_duckdb_documents_every_mart_column(duckdb_night: dict):
    """What CI runs after the build: `dbt docs generate` writes the catalog and the manifest."""
    assert_build_succeeded(duckdb_night["result"])
    tmp_path = duckdb_night["tmp_path"]
    result = run_dbt(
        ["docs", "generate", "--vars", json.dumps({"run_date": RUN_DATE})], _duckdb_env(duckdb_night["path"]), tmp_path
    )
    assert result.success, "dbt docs generate failed:\n" + "\n".join(failures(result))
    target = tmp_path / "dbt_target"
    assert (target / "index.html").exists()
    catalog = json.loads((target / "catalog.json").read_text())
    manifest = json.loads((target / "manifest.json").read_text())

    catalogued = {node["metadata"]["name"] for node in catalog["nodes"].values()}
    assert catalogued >= MARTS, f"marts missing from the catalog: {sorted(MARTS - catalogued)}"
    marts = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model" and n["name"] in MARTS}
    for name, node in marts.items():
        assert node["config"]["contract"]["enforced"], f"{name}: contract not enforced"
        assert node["description"].strip(), f"{name}: no description"
        built_columns = {c.lower() for c in catalog["nodes"][node["unique_id"]]["columns"]}
        undocumented = sorted(c for c in built_columns if not node["columns"].get(c, {}).get("description", "").strip())
        assert not undocumented, f"{name}: columns without a description: {undocumented}"
    exposures = {e["name"]: e for e in manifest["exposures"].values()}
    assert "model.promoflow.assignments_latest" in exposures["marketing_assignment_export"]["depends_on"]["nodes"]
    assert "model.promoflow.promo_performance" in exposures["promo_performance_dashboard"]["depends_on"]["nodes"]


def test_incremental_facts_process_only_recent_days_and_rerun_identically(duckdb_warehouse: Path, tmp_path: Path):
    env = _duckdb_env(duckdb_warehouse)
    select = ["--select", *(f"+{table}" for table in INCREMENTAL_FACTS)]
    query = _duckdb_query(duckdb_warehouse)

    def run(run_date: str, *extra: str) -> None:
        result = run_dbt(["run", *select, *extra, "--vars", json.dumps({"run_date": run_date})], env, tmp_path)
        assert result.success, "dbt run failed:\n" + "\n".join(failures(result))

    run("2026-10-09")  # first night: full build of everything before 2026-10-09
    assert query("select count(*) from analytics.fct_orders") == [(3,)]  # o4 is on 2026-10-09
    assert query("select max(sent_date) from analytics.fct_promo_exposures") == [(date(2026, 10, 8),)]

    # A correction to an old partition (outside 2026-10-10's 3-day window) ...
    con = duckdb.connect(str(duckdb_warehouse))
    con.execute("update raw.orders set gross_amount = 999.0 where order_id = 'o1'")
    con.close()

    run("2026-10-10")  # next night: replaces only the days [2026-10-07, 2026-10-10)
    # ... is not re-read: o1 keeps its margin; the new day (o4, u3's activity, run 10-09's sends) arrives
    assert dict(query("select order_id, order_margin from analytics.fct_orders")) == {
        "o1": 30.0,
        "o2": 20.0,
        "o3": 15.0,
        "o4": 10.0,
    }
    assert query("select activity_date, user_id from analytics.fct_daily_user_activity order by 1") == [
        (date(2026, 10, 5), "u1"),
        (date(2026, 10, 9), "u3"),
    ]
    assert query("select exposure_id from analytics.fct_promo_exposures where run_date = '2026-10-09' order by 1") == [
        ("pa-2026-10-09-u1",),
        ("pa-2026-10-09-u2",),
    ]
    night = snapshot(query, "analytics")

    run("2026-10-10")  # re-running the date gives identical rows
    assert snapshot(query, "analytics") == night

    run("2026-10-10", "--full-refresh")  # the way to pick up corrections older than the window
    assert query("select order_margin from analytics.fct_orders where order_id = 'o1'") == [(929.0,)]


def test_dbt_build_on_duckdb_fails_on_a_run_over_its_budget(duckdb_warehouse: Path, tmp_path: Path):
    con = duckdb.connect(str(duckdb_warehouse))
    con.execute("update main.promo_runs set budget = 1.0 where run_date = '2026-10-09'")  # its rows cost 2.0
    con.close()

    result = run_dbt(
        ["build", "--select", "stg_promo_runs", "stg_promo_assignments", "--vars", json.dumps({"run_date": RUN_DATE})],
        _duckdb_env(duckdb_warehouse),
        tmp_path,
    )

    assert not result.success
    failed = {r.node.name for r in result.result if str(r.status) in ("fail", "error")}
    assert failed == {"assert_run_expected_cost_within_budget"}


def test_dbt_build_on_duckdb_fails_on_a_user_assigned_twice_in_one_run(duckdb_warehouse: Path, tmp_path: Path):
    con = duckdb.connect(str(duckdb_warehouse))
    con.execute(
        "insert into main.promo_assignments select * from main.promo_assignments"
        " where run_date = '2026-10-10' and user_id = 'u1'"
    )
    con.close()

    result = run_dbt(
        ["build", "--select", "stg_promo_assignments+", "--vars", json.dumps({"run_date": RUN_DATE})],
        _duckdb_env(duckdb_warehouse),
        tmp_path,
    )

    assert not result.success
    failed = {r.node.name for r in result.result if str(r.status) in ("fail", "error")}
    assert "assert_one_assignment_per_user_per_run_date" in failed


def test_dbt_build_on_duckdb_before_first_publish(tmp_path: Path):
    """Night one: promo_assignments and promo_runs do not exist yet; the build still succeeds."""
    path = _make_duckdb_warehouse(tmp_path / "first_night.duckdb", published=False)

    result = run_dbt(
        [
            "build",
            "--select",
            "+assignments_latest",
            "+promo_performance",
            "+fct_promo_exposures",
            "stg_promo_runs",
            "--indirect-selection",
            "buildable",  # as the DAG's per-layer builds: no tests on unbuilt marts
            "--vars",
            json.dumps({"run_date": RUN_DATE}),
        ],
        _duckdb_env(path),
        tmp_path,
    )

    assert result.success, "dbt build failed:\n" + "\n".join(failures(result))
    query = _duckdb_query(path)
    assert query("select count(*) from analytics.assignments_latest") == [(0,)]
    assert query("select count(*) from analytics.promo_performance") == [(0,)]
    assert query("select exposure_source, count(*) from analytics.fct_promo_exposures group by 1") == [("landed", 4)]


# --------------------------------------------------------------------------- Postgres


def _pg_settings() -> dict[str, str]:
    return {
        "PROMO_PG_HOST": os.environ.get("PROMO_PG_HOST", "127.0.0.1"),
        "PROMO_PG_PORT": os.environ.get("PROMO_PG_PORT", "5432"),
        "PROMO_PG_USER": os.environ.get("PROMO_PG_USER", "postgres"),
        "PROMO_PG_DBNAME": os.environ.get("PROMO_PG_DBNAME", "test"),
    }


@pytest.fixture
def postgres_warehouse():
    """Unique raw / published / analytics schemas in database `test`, dropped afterwards."""
    psycopg2 = pytest.importorskip("psycopg2")
    settings = _pg_settings()
    try:
        con = psycopg2.connect(
            host=settings["PROMO_PG_HOST"],
            port=int(settings["PROMO_PG_PORT"]),
            user=settings["PROMO_PG_USER"],
            dbname=settings["PROMO_PG_DBNAME"],
            connect_timeout=3,
        )
    except psycopg2.OperationalError as error:
        message = (
            f"PostgreSQL unreachable at {settings['PROMO_PG_HOST']}:{settings['PROMO_PG_PORT']} "
            f"(db {settings['PROMO_PG_DBNAME']}, user {settings['PROMO_PG_USER']}): {error}".strip()
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " -- CI=true requires Postgres")
        pytest.skip(message)
    con.autocommit = True
    suffix = uuid.uuid4().hex[:12]
    schemas = {"raw": f"raw_{suffix}", "published": f"pub_{suffix}", "analytics": f"analytics_{suffix}"}
    try:
        with con.cursor() as cur:
            cur.execute(f"create schema {schemas['raw']}")
            cur.execute(f"create schema {schemas['published']}")
            for statement in _statements(RAW_TABLES_SQL.format(raw=schemas["raw"])):
                cur.execute(statement)
            for statement in _statements(PROMO_ASSIGNMENTS_SQL.format(published=schemas["published"])):
                cur.execute(statement)
        yield con, settings, schemas
    finally:
        with con.cursor() as cur:
            for schema in schemas.values():
                cur.execute(f"drop schema if exists {schema} cascade")
        con.close()


@pytest.mark.postgres
def test_dbt_build_on_postgres_computes_outcomes_and_hides_pii(postgres_warehouse, tmp_path: Path):
    con, settings, schemas = postgres_warehouse
    started = time.monotonic()
    env = {**settings, "PROMO_DBT_TARGET": "postgres", "PROMO_DBT_SCHEMA": schemas["analytics"]}
    dbt_vars = {"run_date": RUN_DATE, "raw_schema": schemas["raw"], "published_schema": schemas["published"]}

    result = run_dbt(["build", "--vars", json.dumps(dbt_vars)], env, tmp_path)
    assert_build_succeeded(result)

    def query(sql: str):
        with con.cursor() as cur:
            cur.execute(sql.format(analytics=schemas["analytics"]))
            return cur.fetchall()

    def columns_of(table: str) -> list[str]:
        with con.cursor() as cur:
            cur.execute(
                "select column_name from information_schema.columns"
                " where table_schema = %s and table_name = %s order by ordinal_position",
                (schemas["analytics"], table),
            )
            return [row[0] for row in cur.fetchall()]

    check_marts(query, columns_of)
    # Models went exactly to the target schema.
    assert query("select count(*) from information_schema.schemata where schema_name like '{analytics}_%'") == [(0,)]
    print(f"postgres dbt build: {time.monotonic() - started:.1f}s")

    # Re-running the date: the incremental facts take the delete+insert path on
    # Postgres and end with identical rows.
    night = snapshot(query, schemas["analytics"])
    rerun = run_dbt(["run", "--select", *INCREMENTAL_FACTS, "--vars", json.dumps(dbt_vars)], env, tmp_path)
    assert rerun.success, "dbt run failed:\n" + "\n".join(failures(rerun))
    assert snapshot(query, schemas["analytics"]) == night
