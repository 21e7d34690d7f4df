"""promo_feedback end to end: the platform's own sends come back as exposures and are attributed.

A module fixture runs promo_nightly for night D on a tiny generated shop, so the
platform publishes assignments. It then lands what the shop's sender and till would
report for D..F-1: the exposures the platform sent (its published offers: user,
promo, sent_ts on D, channel, propensity, policy_version) and a few hand-written
orders, one per case below. promo_feedback then runs through Airflow's dag.test()
mid-window (D+2) and once every window has closed (F), and again for F.

| user | published row         | orders (times relative to the landed sent_ts)                       |
|------|-----------------------|---------------------------------------------------------------------|
| A    | offer                 | redeems its promo after 1 day; a plain order after 2 days           |
| B    | offer, another promo  | redeems its promo after 3 hours                                     |
| C    | offer                 | redeems its promo at sent_ts + valid_days: window closed, not counted |
| E    | offer                 | an order redeeming a different catalogue promo after 1 hour          |
| H    | holdout (`none`)      | a plain order 1 day after its published send time                    |

Money per order: margin = gross - discount - cogs (shipping nets out); an exposure's
discount_amount counts only orders that redeem its own promo.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from nights import load_dag, night_env, published_rows, restored_environ, run_night

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("promo_feedback")]

N_USERS, N_DAYS, START = 300, 8, date(2026, 10, 1)
NIGHT = date(2026, 10, 9)  # D: the first night the generated landing supports
MID = NIGHT + timedelta(days=2)  # every platform window (>= 3 days) still open
CONTROL_WINDOW_DAYS = 7  # dbt var control_window_days: the window of a `none` send
UTC = UTC

# Hand-computed outcomes over each exposure's window, as of F (all windows closed) and MID.
EXPECTED_FINAL = {
    "A": {
        "n_orders": 2,
        "converted": 1,
        "redeemed": 1,
        "order_margin": 39.25,
        "gross_amount": 110.0,
        "discount_amount": 12.0,
    },
    "B": {
        "n_orders": 1,
        "converted": 1,
        "redeemed": 1,
        "order_margin": 19.5,
        "gross_amount": 55.0,
        "discount_amount": 5.5,
    },
    "C": {
        "n_orders": 0,
        "converted": 0,
        "redeemed": 0,
        "order_margin": 0.0,
        "gross_amount": 0.0,
        "discount_amount": 0.0,
    },
    "E": {
        "n_orders": 1,
        "converted": 1,
        "redeemed": 0,
        "order_margin": 19.0,
        "gross_amount": 45.0,
        "discount_amount": 0.0,
    },
    "H": {
        "n_orders": 1,
        "converted": 1,
        "redeemed": 0,
        "order_margin": 18.0,
        "gross_amount": 40.0,
        "discount_amount": 0.0,
    },
}
# At MID A's second order (sent + 2 days) and C's late redemption have not happened yet.
EXPECTED_MID = {
    **EXPECTED_FINAL,
    "A": {
        "n_orders": 1,
        "converted": 1,
        "redeemed": 1,
        "order_margin": 26.5,
        "gross_amount": 80.0,
        "discount_amount": 12.0,
    },
}
NOTHING = {
    "n_orders": 0,
    "converted": 0,
    "redeemed": 0,
    "order_margin": 0.0,
    "gross_amount": 0.0,
    "discount_amount": 0.0,
}

OUTCOME_COLUMNS = (
    "exposure_id",
    "exposure_source",
    "user_id",
    "promo_id",
    "is_holdout",
    "propensity",
    "policy_version",
    "sent_ts",
    "valid_days",
    "window_end_ts",
    "is_matured",
    "n_orders",
    "converted",
    "redeemed",
    "order_margin",
    "gross_amount",
    "discount_amount",
    "next_offer_ts",
    "outcome_days",
    "outcome_converted",
    "outcome_order_margin",
    "outcome_discount_amount",
    "had_live_offer_at_send",
)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _write_partition(raw: Path, table: str, day: date, rows: list[dict]) -> None:
    from demo.simulator import RAW_SCHEMAS

    folder = raw / table / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=RAW_SCHEMAS[table]), folder / "part-0.parquet")


def _land_feedback(raw: Path, published: list[dict], valid_days: dict[str, int]) -> dict:
    """The sender's exposures of night D and the cases' orders; returns who is who and the dates."""
    offers = [r for r in published if r["promo_id"] != "none"]
    holdouts = [r for r in published if r["is_holdout"]]
    assert len(offers) >= 4 and holdouts, (
        f"night {NIGHT} must send a few offers and hold users out: {len(offers)} offers"
    )
    a = offers[0]
    b = next(r for r in offers if r["promo_id"] != a["promo_id"])
    c, e = [r for r in offers if r is not a and r is not b][:2]
    h = holdouts[0]
    # The sender sends each offer 5 minutes after the published send_hour; a holdout gets
    # nothing, so nothing lands for it and its (control) window starts at the published time.
    sent = {r["user_id"]: _midnight(NIGHT) + timedelta(hours=r["send_hour"], minutes=5) for r in offers}
    _write_partition(
        raw,
        "exposures",
        NIGHT,
        [
            {
                "user_id": r["user_id"],
                "promo_id": r["promo_id"],
                "sent_ts": sent[r["user_id"]],
                "channel": r["channel"],
                "propensity": r["propensity"],
                "policy_version": r["policy_version"],
            }
            for r in offers
        ],
    )
    other_promo = next(p for p in sorted(valid_days) if p != e["promo_id"])
    h_sent = _midnight(NIGHT) + timedelta(hours=h["send_hour"])
    orders = [
        # order_id, user, order_ts, gross, discount, cogs, shipping_fee, promo_id
        ("fb-a1", a, sent[a["user_id"]] + timedelta(days=1), 80.0, 12.0, 41.5, 0.0, a["promo_id"]),
        ("fb-a2", a, sent[a["user_id"]] + timedelta(days=2), 30.0, 0.0, 17.25, 4.99, None),
        ("fb-b1", b, sent[b["user_id"]] + timedelta(hours=3), 55.0, 5.5, 30.0, 0.0, b["promo_id"]),
        (
            "fb-c1",
            c,
            sent[c["user_id"]] + timedelta(days=valid_days[c["promo_id"]]),
            60.0,
            9.0,
            33.0,
            0.0,
            c["promo_id"],
        ),
        ("fb-e1", e, sent[e["user_id"]] + timedelta(hours=1), 45.0, 6.0, 20.0, 4.99, other_promo),
        ("fb-h1", h, h_sent + timedelta(days=1), 40.0, 0.0, 22.0, 0.0, None),
    ]
    final = NIGHT + timedelta(days=max([CONTROL_WINDOW_DAYS, *(valid_days[r["promo_id"]] for r in offers)]) + 1)
    by_day: dict[date, list[dict]] = {}
    for order_id, user, ts, gross, discount, cogs, shipping, promo in orders:
        assert ts < _midnight(final)
        by_day.setdefault(ts.date(), []).append(
            {
                "order_id": order_id,
                "user_id": user["user_id"],
                "order_ts": ts,
                "gross_amount": gross,
                "discount_amount": discount,
                "cogs": cogs,
                "shipping_fee": shipping,
                "promo_id": promo,
                "n_items": 1,
            }
        )
    for day, rows in by_day.items():
        _write_partition(raw, "orders", day, rows)
    # Each night needs the previous day's events: one app_open a day.
    day = NIGHT
    while day < final:
        _write_partition(
            raw,
            "events",
            day,
            [
                {
                    "event_id": f"fb-{day.isoformat()}",
                    "user_id": a["user_id"],
                    "item_id": None,
                    "event_type": "app_open",
                    "event_ts": _midnight(day) + timedelta(hours=12),
                    "session_id": f"fb-{day.isoformat()}",
                    "query": None,
                }
            ],
        )
        day += timedelta(days=1)
    return {"users": {"A": a, "B": b, "C": c, "E": e, "H": h}, "sent": sent, "final": final}


def _run_feedback(dag, day: date, env: dict[str, str]) -> tuple[str, dict | None]:
    """Run promo_feedback for ``day``; returns the run's state and the summarise task's return value."""
    os.environ.update(env)
    dag_run = dag.test(logical_date=_midnight(day))
    summary = (
        dag_run.get_task_instance("summarise").xcom_pull(task_ids="summarise") if dag_run.state == "success" else None
    )
    return dag_run.state, summary


def _query(settings, sql: str, params: list | None = None) -> list[tuple]:
    from promoflow.warehouse import Warehouse

    with Warehouse(settings) as wh:
        return wh.query(sql.format(published=wh.default_schema), params or [])


def _platform_outcomes(settings) -> dict[str, dict]:
    """fct_promo_outcomes rows of night D's assignments, by user_id."""
    rows = _query(
        settings,
        f"select {', '.join(OUTCOME_COLUMNS)} from analytics.fct_promo_outcomes where run_date = ? order by user_id",
        [NIGHT],
    )
    out = {}
    for row in rows:
        record = dict(zip(OUTCOME_COLUMNS, row))
        assert record["user_id"] not in out, f"two outcome rows for one published assignment: {record}"
        out[record["user_id"]] = record
    return out


def _snapshot(settings) -> dict[str, list[tuple]]:
    return {
        "fct_promo_outcomes": _query(settings, "select * from analytics.fct_promo_outcomes order by exposure_id"),
        "promo_performance": _query(settings, "select * from analytics.promo_performance order by run_date, promo_id"),
    }


@pytest.fixture(scope="module")
def shop(tmp_path_factory, airflow_db):
    from demo.simulator import generate
    from promoflow.settings import Settings
    from promoflow.warehouse import PROMO_ASSIGNMENTS_COLUMNS

    base = tmp_path_factory.mktemp("feedback")
    generate(base / "raw", base / "truth", n_users=N_USERS, n_days=N_DAYS, start_date=START, seed=11)
    env = night_env(
        base, secret="feedback-e2e-secret", budget=400
    )  # exploration needs reserve/explorers above the cheapest offer's expected cost
    settings = Settings.from_env(env=env)
    with restored_environ(env):
        assert run_night(load_dag(), NIGHT, env) == "success"
        published = [dict(zip(PROMO_ASSIGNMENTS_COLUMNS, row)) for row in published_rows(env, NIGHT)]
        catalogue = pq.read_table(base / "raw" / "promotions" / "promotions.parquet").to_pylist()
        valid_days = {p["promo_id"]: p["valid_days"] for p in catalogue}
        landed = _land_feedback(base / "raw", published, valid_days)
        dag = load_dag("promo_feedback")
        mid_state, mid_summary = _run_feedback(dag, MID, env)
        mid = {
            "state": mid_state,
            "summary": mid_summary,
            "outcomes": _platform_outcomes(settings) if mid_state == "success" else {},
        }
        final_state, final_summary = _run_feedback(dag, landed["final"], env)
        yield {
            **landed,
            "dag": dag,
            "env": env,
            "settings": settings,
            "published": {r["user_id"]: r for r in published},
            "valid_days": valid_days,
            "mid": mid,
            "final_state": final_state,
            "final_summary": final_summary,
        }


def _expected(shop, cases: dict[str, dict]) -> dict[str, dict]:
    """Outcome columns every published user must have: the cases' hand-computed values, nothing elsewhere."""
    by_user = {shop["users"][name]["user_id"]: values for name, values in cases.items()}
    return {user_id: by_user.get(user_id, NOTHING) for user_id in shop["published"]}


def _assert_outcomes(outcomes: dict[str, dict], expected: dict[str, dict]) -> None:
    assert outcomes.keys() == expected.keys()
    for user_id, want in expected.items():
        got = {k: outcomes[user_id][k] for k in want}
        assert got == pytest.approx(want), user_id


def test_feedback_runs_succeed(shop):
    assert shop["mid"]["state"] == "success"
    assert shop["final_state"] == "success"


def test_platform_sends_are_exposures_with_their_policy_and_propensity(shop):
    outcomes = _platform_outcomes(shop["settings"])
    assert outcomes.keys() == shop["published"].keys(), "one exposure per published assignment, landed or not"
    for user_id, row in outcomes.items():
        pub = shop["published"][user_id]
        assert row["promo_id"] == pub["promo_id"]
        assert row["is_holdout"] == pub["is_holdout"]
        assert row["policy_version"] == pub["policy_version"]
        assert row["propensity"] == pytest.approx(pub["propensity"])
        if pub["promo_id"] == "none":  # nobody sent anything: the published row stands in
            assert row["exposure_source"] == "published"
            assert row["sent_ts"] == datetime(NIGHT.year, NIGHT.month, NIGHT.day, pub["send_hour"])
            assert row["valid_days"] == CONTROL_WINDOW_DAYS
        else:  # the sender's landed row wins, with its own send time
            assert row["exposure_source"] == "landed"
            assert row["sent_ts"] == shop["sent"][user_id].replace(tzinfo=None)
            assert row["valid_days"] == shop["valid_days"][pub["promo_id"]]
        assert row["window_end_ts"] == row["sent_ts"] + timedelta(days=row["valid_days"])


def test_orders_in_the_window_are_attributed_with_hand_computed_money(shop):
    _assert_outcomes(_platform_outcomes(shop["settings"]), _expected(shop, EXPECTED_FINAL))


def test_redemption_after_valid_days_is_not_attributed(shop):
    c = shop["users"]["C"]
    # the late order did reach the warehouse, at the very end of C's window
    (late,) = _query(shop["settings"], "select user_id, promo_id, order_ts from raw.orders where order_id = 'fb-c1'")
    window_end = shop["sent"][c["user_id"]].replace(tzinfo=None) + timedelta(days=shop["valid_days"][c["promo_id"]])
    assert late == (c["user_id"], c["promo_id"], window_end)
    row = _platform_outcomes(shop["settings"])[c["user_id"]]
    assert (row["n_orders"], row["converted"], row["redeemed"], row["discount_amount"]) == (0, 0, 0, 0.0)


def test_exposures_mature_when_their_window_closes(shop):
    mid = shop["mid"]["outcomes"]
    assert mid, "the mid-window run did not succeed"
    assert not any(r["is_matured"] for r in mid.values()), f"no window of night {NIGHT} had closed by {MID}"
    # only orders before the run date count: A's second order and C's late one came later
    _assert_outcomes(mid, _expected(shop, EXPECTED_MID))
    final = _platform_outcomes(shop["settings"])
    assert all(r["is_matured"] for r in final.values())
    # the generated shop's own exposures mature by the same rule (some long windows are still open at F)
    flags = _query(
        shop["settings"],
        "select is_matured, window_end_ts <= ? as closed, count(*) from analytics.fct_promo_outcomes group by 1, 2 order by 1, 2",
        [datetime(shop["final"].year, shop["final"].month, shop["final"].day)],
    )
    assert [(m, closed) for m, closed, _ in flags] == [(False, False), (True, True)]


def test_summary_reports_the_published_run(shop):
    assert shop["mid"]["summary"]["runs"] == [
        {
            "run_date": NIGHT.isoformat(),
            "sends": N_USERS,
            "matured": 0,
            "holdout": _holdouts(shop),
            "converted": 4,
            "redeemed": 2,
            "discount": pytest.approx(17.5),
            "margin": pytest.approx(26.5 + 19.5 + 19.0 + 18.0),
        }
    ]
    summary = shop["final_summary"]
    assert summary["published_runs"] == 1
    assert summary["matured_platform_sends"] == N_USERS
    assert summary["redemptions"] == 2
    assert summary["runs"] == [
        {
            "run_date": NIGHT.isoformat(),
            "sends": N_USERS,
            "matured": N_USERS,
            "holdout": _holdouts(shop),
            "converted": 4,
            "redeemed": 2,
            "discount": pytest.approx(12.0 + 5.5),
            "margin": pytest.approx(sum(v["order_margin"] for v in EXPECTED_FINAL.values())),
        }
    ]


def _holdouts(shop) -> int:
    return sum(1 for r in shop["published"].values() if r["is_holdout"])


def test_promo_performance_compares_each_sent_promo_with_the_holdout(shop):
    cols = (
        "run_date",
        "promo_id",
        "sends",
        "redemptions",
        "holdout_users",
        "treated_conversion_rate",
        "holdout_conversion_rate",
        "treated_margin_per_user",
        "holdout_margin_per_user",
        "discount_cost",
        "is_matured",
        "policy_version",
    )
    rows = _query(
        shop["settings"],
        f"""select {", ".join("p." + c for c in cols[:-1])}, r.policy_version
            from analytics.promo_performance p left join {{published}}.promo_runs r on r.run_date = p.run_date
            order by p.run_date, p.promo_id""",
    )
    got = {r[1]: dict(zip(cols, r)) for r in rows}
    expected = _expected(shop, EXPECTED_FINAL)
    offers = [r for r in shop["published"].values() if r["promo_id"] != "none" and not r["is_holdout"]]
    n_holdout = _holdouts(shop)
    (policy_version,) = {r["policy_version"] for r in shop["published"].values()}
    assert got.keys() == {r["promo_id"] for r in offers}
    for promo_id, row in got.items():
        treated = [expected[r["user_id"]] for r in offers if r["promo_id"] == promo_id]
        want = {
            "run_date": NIGHT,
            "promo_id": promo_id,
            "sends": len(treated),
            "redemptions": sum(t["redeemed"] for t in treated),
            "holdout_users": n_holdout,
            "treated_conversion_rate": sum(t["converted"] for t in treated) / len(treated),
            "holdout_conversion_rate": 1 / n_holdout,  # H's order is inside every promo's window
            "treated_margin_per_user": sum(t["order_margin"] for t in treated) / len(treated),
            "holdout_margin_per_user": EXPECTED_FINAL["H"]["order_margin"] / n_holdout,
            "discount_cost": sum(t["discount_amount"] for t in treated),
            "is_matured": True,
            "policy_version": policy_version,
        }
        assert row == pytest.approx(want), promo_id


def test_rerunning_the_date_gives_identical_rows(shop):
    before = _snapshot(shop["settings"])
    state, summary = _run_feedback(shop["dag"], shop["final"], shop["env"])
    assert state == "success"
    assert summary == shop["final_summary"]
    assert _snapshot(shop["settings"]) == before
    (counts,) = _query(
        shop["settings"], "select count(*), count(distinct exposure_id) from analytics.fct_promo_outcomes"
    )
    assert counts[0] == counts[1]


def test_matured_platform_exposures_feed_the_next_training_set(shop):
    from ml.feature_spec import NUMERIC_FEATURES
    from promoflow.decisions import training_frame

    outcomes = _platform_outcomes(shop["settings"])
    assert len(outcomes) == N_USERS
    # Users to whom the generated shop had sent an offer still live on night D are left out:
    # their outcome (a holdout's above all) would carry that offer's effect.
    kept = {user_id: row for user_id, row in outcomes.items() if not row["had_live_offer_at_send"]}
    assert 0 < len(kept) < len(outcomes)
    frame = training_frame(shop["settings"], shop["final"])
    # most rows were sent with no offer live, so those that were are dropped, not kept
    assert frame.attrs["dropped_rows_sent_under_live_offer"] and frame.attrs["rows_sent_under_live_offer"] > 0
    frame = frame.set_index("exposure_id")
    platform = frame.loc[frame.index.isin([r["exposure_id"] for r in outcomes.values()])]
    assert sorted(platform.index) == sorted(r["exposure_id"] for r in kept.values())
    for row in kept.values():
        got = platform.loc[row["exposure_id"]]
        assert (got["user_id"], got["promo_id"], got["valid_days"]) == (
            row["user_id"],
            row["promo_id"],
            row["valid_days"],
        )
        # nothing was sent after night D: no window is cut, the censored outcome is the full one
        assert row["next_offer_ts"] is None
        assert (row["outcome_days"], row["outcome_order_margin"]) == pytest.approx(
            (row["valid_days"], row["order_margin"])
        )
        assert (
            got["converted"],
            got["order_margin"],
            got["discount_amount"],
            got["window_days"],
            got["propensity"],
        ) == pytest.approx(
            (
                row["outcome_converted"],
                row["outcome_order_margin"],
                row["outcome_discount_amount"],
                row["outcome_days"],
                row["propensity"],
            )
        )
    # point-in-time features found for every one of them: train() drops rows without features
    assert not platform[NUMERIC_FEATURES].isna().to_numpy().any()
    # the exposures the shop's sender landed for the platform, promo offers included
    assert set(platform["promo_id"]) == {r["promo_id"] for r in kept.values()}
    assert (platform["promo_id"] != "none").any()
