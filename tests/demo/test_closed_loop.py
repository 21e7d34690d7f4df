"""The demo shop run on night after night (``demo.simulator.advance``), answering the platform's own
sends, and the truth it writes for the next night when offers are still live."""

from __future__ import annotations

import pickle
from datetime import UTC, date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from demo import evaluate, simulator

START = date(2026, 10, 1)
N_USERS, N_DAYS = 300, 5
DAY = START + timedelta(days=N_DAYS)  # the first day advance() simulates


def _shop(base: Path, seed: int = 3) -> Path:
    simulator.generate(
        base / "raw", base / "truth", n_users=N_USERS, n_days=N_DAYS, start_date=START, seed=seed, keep_state=True
    )
    return base


def _sends(base: Path) -> pa.Table:
    users = pq.read_table(base / "raw" / "users" / "users.parquet")["user_id"].to_pylist()
    promos = ["p_pct20"] * 40 + ["p_freeship"] * 20 + ["p_elec_amt20"] * 20 + ["none"] * 20
    return pa.table(
        {
            "user_id": users[:100],
            "promo_id": promos,
            "channel": ["email"] * 40 + ["push"] * 40 + [None] * 20,
            "send_hour": pa.array([h % 24 for h in range(100)], pa.int32()),
            "propensity": [0.9] * 80 + [0.05] * 20,
            "policy_version": ["policy-test"] * 100,
        }
    )


def _day_table(base: Path, table: str, day: date) -> pd.DataFrame:
    return pq.read_table(base / "raw" / table / f"dt={day.isoformat()}" / "part-0.parquet").to_pandas()


@pytest.fixture(scope="module")
def advanced(tmp_path_factory):
    base = _shop(tmp_path_factory.mktemp("loop"))
    before = pq.read_table(base / "truth" / "user_arm_truth.parquet").to_pandas()
    landed = simulator.advance(base / "raw", base / "truth", _sends(base))
    return base, before, landed


def test_the_sends_land_as_the_days_exposures_and_replace_the_logging_policy(advanced):
    base, _, landed = advanced
    sent = _sends(base).to_pandas()
    exposures = _day_table(base, "exposures", DAY).sort_values("user_id").reset_index(drop=True)
    assert landed["day"] == DAY.isoformat() and landed["run_date"] == (DAY + timedelta(days=1)).isoformat()
    assert landed["sends"] == 80 and landed["controls"] == 20 and landed["exposures"] == 100
    assert exposures["user_id"].tolist() == sent["user_id"].tolist()
    assert exposures["promo_id"].tolist() == sent["promo_id"].tolist()
    assert np.allclose(exposures["propensity"], sent["propensity"])
    assert (exposures["policy_version"] == "policy-test").all()  # no random-logging rows any more
    assert exposures["channel"].tolist()[:80] == sent["channel"].tolist()[:80]
    hour = (exposures["sent_ts"] - pd.Timestamp(DAY, tz=UTC)).dt.total_seconds() // 3600
    assert hour.tolist() == sent["send_hour"].tolist()
    for table in ("events", "orders"):
        assert len(_day_table(base, table, DAY)) > 0
    manifest = (base / "truth" / "manifest.json").read_text()
    assert f'"run_date": "{DAY + timedelta(days=1)}"' in manifest and DAY.isoformat() in manifest


def test_orders_redeem_only_offers_the_user_holds(advanced):
    base, _, _ = advanced
    exposures = pd.concat(
        pq.read_table(folder / "part-0.parquet").to_pandas() for folder in (base / "raw" / "exposures").iterdir()
    )
    orders = _day_table(base, "orders", DAY)
    redeemed = orders[orders["promo_id"].notna()].merge(exposures, on=["user_id", "promo_id"])
    valid = {p.promo_id: p.valid_days for p in simulator.CATALOGUE}
    redeemed["in_window"] = (redeemed["order_ts"] >= redeemed["sent_ts"]) & (
        redeemed["order_ts"] < redeemed["sent_ts"] + pd.to_timedelta(redeemed["promo_id"].map(valid), unit="D")
    )
    assert len(orders[orders["promo_id"].notna()]) == redeemed["order_id"].nunique()
    assert redeemed.groupby("order_id")["in_window"].any().all()


def test_advance_is_deterministic_and_runs_forward_only(advanced, tmp_path):
    base, _, _ = advanced
    again = _shop(tmp_path / "again")
    simulator.advance(again / "raw", again / "truth", _sends(again))
    for table in ("events", "orders", "exposures"):
        assert _day_table(base, table, DAY).equals(_day_table(again, table, DAY)), table
    assert pq.read_table(base / "truth" / "user_arm_truth.parquet").equals(
        pq.read_table(again / "truth" / "user_arm_truth.parquet")
    )
    nxt = DAY + timedelta(days=1)
    (again / "raw" / "orders" / f"dt={nxt.isoformat()}").mkdir()
    with pytest.raises(FileExistsError, match="runs forward only"):
        simulator.advance(again / "raw", again / "truth", _sends(again).slice(0, 0))


def test_sends_to_users_or_promos_the_shop_does_not_know_are_refused(tmp_path):
    base = _shop(tmp_path)
    bad = _sends(base).set_column(0, "user_id", pa.array(["u-nobody"] + _sends(base)["user_id"].to_pylist()[1:]))
    with pytest.raises(ValueError, match="user_id"):
        simulator.advance(base / "raw", base / "truth", bad)
    bad = _sends(base).set_column(1, "promo_id", pa.array(["p_unknown"] * 100))
    with pytest.raises(ValueError, match="promo_id"):
        simulator.advance(base / "raw", base / "truth", bad)
    assert not (base / "raw" / "exposures" / f"dt={DAY.isoformat()}").exists()


def test_the_truth_counts_the_offer_a_user_still_holds(tmp_path):
    """Sending nothing lets a live offer run on; any arm replaces it. With the live offer L just
    sent (all of its valid_days left), every arm's incremental margin drops by exactly L's own
    incremental margin, and re-sending L is worth nothing."""
    base = _shop(tmp_path)
    with open(base / "truth" / simulator.SHOP_STATE_FILE, "rb") as f:
        shop = pickle.load(f)
    run_date = START + timedelta(days=N_DAYS)
    arms = ["none"] + [p.promo_id for p in simulator.CATALOGUE]

    def truth(live_promo, live_days_left):
        frame = simulator._ground_truth(
            shop.seed,
            shop.users,
            shop.items,
            simulator.CATALOGUE,
            run_date,
            live_promo=live_promo,
            live_days_left=live_days_left,
        ).to_pandas()
        return frame.pivot(index="user_id", columns="promo_id", values="expected_incremental_margin")[arms]

    nobody = np.full(N_USERS, -1)
    plain = truth(nobody, np.zeros(N_USERS, np.int64))
    live = nobody.copy()
    live[: len(simulator.CATALOGUE) * 10] = np.repeat(np.arange(len(simulator.CATALOGUE)), 10)
    days_left = np.where(live >= 0, np.array([p.valid_days for p in simulator.CATALOGUE])[np.maximum(live, 0)], 0)
    held = truth(live, days_left)
    for user in range(N_USERS):
        row_plain, row_held = plain.iloc[user].to_numpy(), held.iloc[user].to_numpy()
        if live[user] < 0:
            np.testing.assert_allclose(row_held, row_plain, atol=1e-9)
            continue
        own = row_plain[1 + live[user]]
        np.testing.assert_allclose(row_held[1:], row_plain[1:] - own, atol=1e-9)
        assert abs(row_held[1 + live[user]]) < 1e-9


def test_closed_loop_totals_and_plot(tmp_path):
    rows = [
        {
            "run_date": day,
            "true_margin": m,
            "oracle": 100.0,
            "ratio_to_oracle": m / 100.0,
            "true_cost": c,
            "budget": 50.0,
            "exploration_true_margin": -2.0,
            "exploration_true_cost": 3.0,
        }
        for day, m, c in [("2026-11-30", 10.0, 40.0), ("2026-12-01", 30.0, 60.0), ("2026-12-02", 50.0, 20.0)]
    ]
    totals = evaluate.closed_loop_totals(rows)
    assert totals["cumulative_true_margin"] == [10.0, 40.0, 90.0]
    assert totals["cumulative_regret"] == [90.0, 160.0, 210.0]
    assert totals["exploration_true_margin"] == -6.0 and totals["exploration_true_cost"] == 9.0
    assert totals["nights_over_budget_on_true_cost"] == [rows[1]["run_date"]]
    assert (totals["ratio_first_night"], totals["ratio_last_night"]) == (0.1, 0.5)
    evaluate.plot_closed_loop(rows, totals, "test", tmp_path / "loop.png")
    assert (tmp_path / "loop.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_shop_kept_by_the_command_line_runs_on(tmp_path):
    """``python -m demo.simulator --keep-state`` pickles the shop under ``demo.simulator``, not ``__main__``."""
    import subprocess
    import sys

    repo = Path(simulator.__file__).resolve().parents[1]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "demo.simulator",
            "--raw-dir",
            str(tmp_path / "raw"),
            "--truth-dir",
            str(tmp_path / "truth"),
            "--users",
            "50",
            "--days",
            "2",
            "--keep-state",
        ],
        check=True,
        cwd=repo,
        capture_output=True,
    )
    users = pq.read_table(tmp_path / "raw" / "users" / "users.parquet")["user_id"].to_pylist()[:10]
    sends = pa.table(
        {
            "user_id": users,
            "promo_id": ["p_pct10"] * 10,
            "channel": ["sms"] * 10,
            "send_hour": pa.array([8] * 10, pa.int32()),
            "propensity": [1.0] * 10,
            "policy_version": ["policy-test"] * 10,
        }
    )
    landed = simulator.advance(tmp_path / "raw", tmp_path / "truth", sends)
    assert landed["sends"] == 10 and landed["day"] == "2026-10-03"


def test_the_sender_delivers_offers_and_holdout_controls_of_the_night(tmp_path):
    import duckdb

    (tmp_path / "warehouse").mkdir()
    con = duckdb.connect(str(tmp_path / "warehouse" / "promoflow.duckdb"))
    con.execute(
        "create table promo_assignments (run_date date, user_id text, promo_id text, channel text, send_hour int, "
        "propensity double, policy_version text, is_holdout boolean)"
    )
    con.execute(
        "insert into promo_assignments values "
        "('2026-10-06', 'u1', 'p_pct10', 'email', 9, 0.9, 'v', false), "
        "('2026-10-06', 'u2', 'none', null, 10, 0.95, 'v', false), "  # decided nothing: not sent
        "('2026-10-06', 'u3', 'none', null, 11, 0.05, 'v', true), "  # holdout: a logged control
        "('2026-10-05', 'u4', 'p_pct20', 'sms', 12, 0.9, 'v', false)"  # another night
    )
    con.close()
    sends = evaluate.published_sends(tmp_path, date(2026, 10, 6))
    assert sends.column_names == ["user_id", "promo_id", "channel", "send_hour", "propensity", "policy_version"]
    assert sends["user_id"].to_pylist() == ["u1", "u3"] and sends["promo_id"].to_pylist() == ["p_pct10", "none"]


# ----------------------------------------------------------------------------- offer fatigue
def _one_offer_sends(users: list[str], promo_id: str, channel: str) -> pa.Table:
    """``promo_id`` on ``channel`` at 09:00 to each of ``users``, sent for sure."""
    n = len(users)
    return pa.table(
        {
            "user_id": users,
            "promo_id": [promo_id] * n,
            "channel": [channel] * n,
            "send_hour": pa.array([9] * n, pa.int32()),
            "propensity": [1.0] * n,
            "policy_version": ["policy-test"] * n,
        }
    )


def _load_shop(base: Path) -> simulator._Shop:
    with open(base / "truth" / simulator.SHOP_STATE_FILE, "rb") as f:
        return pickle.load(f)


def test_repeat_offers_lose_effect_and_over_sent_users_leave_the_channel(tmp_path):
    """The same 150 users get p_pct20 by email every day for 8 days: their offer load grows,
    the truth's lift above 1 of a new offer shrinks by exp(-sensitivity x load), some leave
    email, and to them an email-only arm is worth exactly what sending nothing is."""
    base = _shop(tmp_path, seed=11)
    users = pq.read_table(base / "raw" / "users" / "users.parquet")["user_id"].to_pylist()
    sends = _one_offer_sends(users[:150], "p_pct20", "email")
    for _ in range(8):
        landed = simulator.advance(base / "raw", base / "truth", sends)
    shop = _load_shop(base)
    day = shop.days_simulated
    load = shop.fatigue.load_on(day)
    email = shop.fatigue.unsubscribed[:, simulator.CHANNELS.index("email")]
    # the loop sent 8 each (those who left email saw no more), the history a few at most
    assert load[:150][~email[:150]].min() > 3.0 > load[150:].max()

    truth = pq.read_table(base / "truth" / "user_arm_truth.parquet").to_pandas()
    lift = truth.pivot(index="user_id", columns="promo_id", values="order_rate_lift")
    inc = truth.pivot(index="user_id", columns="promo_id", values="expected_incremental_margin")
    fresh = simulator._fatigued_lift(shop.users.lift, shop.fatigue.damp_on(day)[:, None])
    left = shop.fatigue.unsubscribed
    email_arm = "p_elec_amt20"
    email_index = [p.promo_id for p in simulator.CATALOGUE].index(email_arm)
    reach = ~left[:, simulator.CHANNELS.index("email")]
    np.testing.assert_allclose(lift[email_arm].to_numpy()[reach], fresh[reach, email_index])
    persuaded = np.flatnonzero(shop.users.lift[:150, 1] > 1.5)  # p_pct20
    assert len(persuaded) and (lift["p_pct20"].to_numpy()[persuaded] < shop.users.lift[persuaded, 1]).all()
    assert (lift["p_pct20"].to_numpy()[150:] > shop.users.lift[150:, 1] - 0.5).all()

    assert email[:150].sum() >= 5 and email[:150].mean() > 3 * email[150:].mean()
    assert landed["unsubscribed_users"] == left.any(axis=1).sum()
    gone = np.flatnonzero(email)
    assert (inc[email_arm].to_numpy()[gone] == 0.0).all() and (lift[email_arm].to_numpy()[gone] == 1.0).all()
    listed = pq.read_table(base / "truth" / simulator.UNSUBSCRIBED_FILE).to_pandas()
    assert len(listed) == left.sum() and set(listed["channel"]) <= set(simulator.CHANNELS)


def test_an_offer_on_a_channel_the_user_left_is_never_seen(tmp_path):
    """It lands as an exposure (the platform sent it) but the user keeps the offer they hold,
    and the evaluation values it as sending nothing."""
    base = _shop(tmp_path, seed=12)
    shop = _load_shop(base)
    shop.fatigue.unsubscribed[:50, simulator.CHANNELS.index("sms")] = True
    before = shop.offers.promo.copy()
    simulator._save_shop(shop, base / "truth" / simulator.SHOP_STATE_FILE)
    users = pq.read_table(base / "raw" / "users" / "users.parquet")["user_id"].to_pylist()
    simulator.advance(base / "raw", base / "truth", _one_offer_sends(users[:100], "p_pct10", "sms"))
    after = _load_shop(base).offers.promo
    assert (after[:50] == before[:50]).all()
    assert (after[50:100] == [p.promo_id for p in simulator.CATALOGUE].index("p_pct10")).all()
    assert len(_day_table(base, "exposures", DAY)) == 100

    assigned = pd.DataFrame(
        {"user_id": users[:3], "promo_id": ["p_pct10", "p_pct10", "none"], "channel": ["sms", "email", None]}
    )
    unseen = evaluate.sent_to_channels_left(
        assigned, pd.read_parquet(base / "truth" / simulator.UNSUBSCRIBED_FILE), np.array(sorted(users))
    )
    position = {u: i for i, u in enumerate(sorted(users))}
    assert unseen.sum() == 1 and unseen[position[users[0]]]


def test_a_shop_without_fatigue_changes_no_other_draw(tmp_path):
    kwargs = dict(n_users=400, n_days=6, start_date=START, seed=5)
    simulator.generate(tmp_path / "on" / "raw", tmp_path / "on" / "truth", **kwargs)
    simulator.generate(tmp_path / "off" / "raw", tmp_path / "off" / "truth", fatigue=False, **kwargs)
    for table in ("users/users.parquet", "items/items.parquet", f"exposures/dt={START}/part-0.parquet"):
        assert pq.read_table(tmp_path / "on" / "raw" / table).equals(pq.read_table(tmp_path / "off" / "raw" / table))
    assert '"fatigue": null' in (tmp_path / "off" / "truth" / "manifest.json").read_text()
    assert pq.read_table(tmp_path / "off" / "truth" / simulator.UNSUBSCRIBED_FILE).num_rows == 0
