"""Tests of the demo shop generator: contract layout, determinism, and that the
shop is hard (naive targeting loses money under the ground truth)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from demo import simulator

START = date(2026, 10, 1)
N_USERS = 300
N_DAYS = 5
UTC_TS = pa.timestamp("us", tz="UTC")

# Written out from docs (shared/contracts/DATA_CONTRACT.md), not imported from the module,
# so a drift between the generator and the contract fails here.
CONTRACT = {
    "users": [
        ("user_id", pa.string()),
        ("signup_ts", UTC_TS),
        ("region", pa.string()),
        ("device", pa.string()),
        ("email", pa.string()),
    ],
    "items": [
        ("item_id", pa.string()),
        ("category", pa.string()),
        ("brand", pa.string()),
        ("price", pa.float64()),
        ("unit_cost", pa.float64()),
    ],
    "promotions": [
        ("promo_id", pa.string()),
        ("promo_type", pa.string()),
        ("value", pa.float64()),
        ("min_spend", pa.float64()),
        ("max_discount", pa.float64()),
        ("category", pa.string()),
        ("channel", pa.string()),
        ("valid_days", pa.int32()),
        ("active_from", pa.date32()),
        ("active_to", pa.date32()),
    ],
    "events": [
        ("event_id", pa.string()),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("event_type", pa.string()),
        ("event_ts", UTC_TS),
        ("session_id", pa.string()),
        ("query", pa.string()),
    ],
    "orders": [
        ("order_id", pa.string()),
        ("user_id", pa.string()),
        ("order_ts", UTC_TS),
        ("gross_amount", pa.float64()),
        ("discount_amount", pa.float64()),
        ("cogs", pa.float64()),
        ("shipping_fee", pa.float64()),
        ("promo_id", pa.string()),
        ("n_items", pa.int32()),
    ],
    "exposures": [
        ("user_id", pa.string()),
        ("promo_id", pa.string()),
        ("sent_ts", UTC_TS),
        ("channel", pa.string()),
        ("propensity", pa.float64()),
        ("policy_version", pa.string()),
    ],
}
NULLABLE = {
    "users": {"email"},
    "items": {"brand"},
    "promotions": {"max_discount", "category", "channel"},
    "events": {"item_id", "session_id", "query"},
    "orders": {"promo_id"},
    "exposures": {"propensity", "policy_version"},
}
DAILY = ("events", "orders", "exposures")


def _generate(base: Path, seed: int = 7, **kwargs):
    return simulator.generate(
        base / "raw", base / "truth", n_users=N_USERS, n_days=N_DAYS, start_date=START, seed=seed, **kwargs
    )


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    base = tmp_path_factory.mktemp("shop")
    summary = _generate(base)
    return base, summary


def _read_daily(raw: Path, table: str, part: str = "part-0.parquet") -> dict[date, pa.Table]:
    return {
        date.fromisoformat(folder.name[3:]): pq.read_table(folder / part)
        for folder in sorted((raw / table).iterdir())
        if (folder / part).exists()
    }


def _concat(tables: dict[date, pa.Table]) -> pa.Table:
    return pa.concat_tables(tables.values())


def _all_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- layout and schema
def test_layout_is_exactly_the_contract(shop):
    base, summary = shop
    raw = base / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(CONTRACT)
    for table in ("users", "items", "promotions"):
        assert [p.name for p in (raw / table).iterdir()] == [f"{table}.parquet"]
    expected_partitions = [f"dt={(START + timedelta(days=k)).isoformat()}" for k in range(N_DAYS)]
    for table in DAILY:
        assert sorted(p.name for p in (raw / table).iterdir()) == expected_partitions
        for folder in (raw / table).iterdir():
            files = sorted(p.name for p in folder.iterdir())
            allowed = (
                [["part-0.parquet"], ["part-0.parquet", "part-1.parquet"]]
                if table == "events"
                else [["part-0.parquet"]]
            )
            assert files in allowed, (table, folder.name, files)
    assert summary.run_date == START + timedelta(days=N_DAYS)


def test_every_file_has_the_contract_columns_types_and_nullability(shop):
    base, _ = shop
    raw = base / "raw"
    for path in raw.rglob("*.parquet"):
        table = path.relative_to(raw).parts[0]
        schema = pq.read_schema(path)
        assert [(f.name, f.type) for f in schema] == CONTRACT[table], path
        data = pq.read_table(path)
        for name in data.column_names:
            if name not in NULLABLE[table]:
                assert data.column(name).null_count == 0, (path, name)


def test_nullable_columns_do_carry_nulls_somewhere(shop):
    base, _ = shop
    raw = base / "raw"
    events = _concat(_read_daily(raw, "events"))
    kinds = events.column("event_type").to_numpy(zero_copy_only=False)
    item_null = events.column("item_id").is_null().to_numpy(zero_copy_only=False)
    assert (item_null == np.isin(kinds, ["search", "app_open"])).all()
    query_present = events.column("query").is_valid().to_numpy(zero_copy_only=False)
    assert (query_present == (kinds == "search")).all()
    assert set(kinds) == {"view", "click", "add_to_cart", "purchase", "search", "app_open"}
    assert pq.read_table(raw / "promotions" / "promotions.parquet").column("category").null_count > 0


def test_timestamps_lie_inside_their_partition_day(shop):
    base, _ = shop
    for table, column in (("events", "event_ts"), ("orders", "order_ts"), ("exposures", "sent_ts")):
        for part in ("part-0.parquet", "part-1.parquet"):
            for day, data in _read_daily(base / "raw", table, part).items():
                lo = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
                hi = lo + timedelta(days=1)
                ts = data.column(column)
                assert pc.min(ts).as_py() >= lo and pc.max(ts).as_py() < hi, (table, day)
    signup = pq.read_table(base / "raw" / "users" / "users.parquet").column("signup_ts")
    assert pc.max(signup).as_py() < datetime.combine(START, datetime.min.time(), tzinfo=UTC)


# ----------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_tables_and_different_seed_does_not(shop, tmp_path):
    base, _ = shop
    _generate(tmp_path / "again")
    assert _all_files(base / "raw") == _all_files(tmp_path / "again" / "raw")
    for rel in _all_files(base / "raw"):
        assert pq.read_table(base / "raw" / rel).equals(pq.read_table(tmp_path / "again" / "raw" / rel)), rel
    for name in ("user_arm_truth.parquet", "user_latent.parquet", "manifest.json"):
        a, b = base / "truth" / name, tmp_path / "again" / "truth" / name
        assert a.read_bytes() == b.read_bytes() if name.endswith(".json") else pq.read_table(a).equals(pq.read_table(b))

    _generate(tmp_path / "other", seed=8)
    other = tmp_path / "other" / "raw"
    assert not pq.read_table(base / "raw" / "users" / "users.parquet").equals(
        pq.read_table(other / "users" / "users.parquet")
    )
    assert not _concat(_read_daily(base / "raw", "orders")).equals(_concat(_read_daily(other, "orders")))


def test_cli_replaces_existing_output_and_refuses_foreign_folders(tmp_path, capsys):
    raw, truth = tmp_path / "raw", tmp_path / "truth"
    args = [
        "--raw-dir",
        str(raw),
        "--truth-dir",
        str(truth),
        "--users",
        "50",
        "--days",
        "2",
        "--start-date",
        "2026-10-01",
        "--seed",
        "3",
    ]
    assert simulator.main(args) == 0
    first = pq.read_table(raw / "orders" / "dt=2026-10-02" / "part-0.parquet")
    (raw / "events" / "dt=2026-09-01").mkdir()  # stale partition from an earlier, longer run
    (truth / "stale.txt").write_text("old")
    assert simulator.main(args) == 0
    assert not (raw / "events" / "dt=2026-09-01").exists() and not (truth / "stale.txt").exists()
    assert pq.read_table(raw / "orders" / "dt=2026-10-02" / "part-0.parquet").equals(first)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and "run_date 2026-10-03" in out[-1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind

    foreign = tmp_path / "important"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="refusing to replace"):
        simulator.main(["--raw-dir", str(foreign), "--truth-dir", str(truth), "--users", "10", "--days", "1"])
    assert (foreign / "thesis.txt").read_text() == "keep me"


# ----------------------------------------------------------------------------- keys and references
def test_ids_are_unique_and_well_formed_except_deliberate_event_duplicates(shop):
    base, summary = shop
    raw = base / "raw"
    users = pq.read_table(raw / "users" / "users.parquet")
    items = pq.read_table(raw / "items" / "items.parquet")
    promos = pq.read_table(raw / "promotions" / "promotions.parquet")
    for table, key, pattern in (
        (users, "user_id", r"u\d{6}"),
        (items, "item_id", r"i\d{4}"),
        (promos, "promo_id", r"p_[a-z0-9_]+"),
    ):
        values = table.column(key).to_pylist()
        assert len(set(values)) == len(values)
        assert all(re.fullmatch(pattern, v) for v in values), key
    emails = [e for e in users.column("email").to_pylist() if e is not None]
    assert all(re.fullmatch(r"u\d{6}@example\.com", e) for e in emails)
    assert "none" not in promos.column("promo_id").to_pylist()

    events = _read_daily(raw, "events")
    all_ids = pc.unique(_concat(events).column("event_id"))
    assert len(all_ids) == sum(t.num_rows for t in events.values()) == summary.n_events
    duplicates = _read_daily(raw, "events", "part-1.parquet")
    n_duplicates = sum(t.num_rows for t in duplicates.values())
    assert n_duplicates == summary.n_duplicate_events > 0
    for day, copies in duplicates.items():
        originals = events[day]
        mask = pc.is_in(originals.column("event_id"), copies.column("event_id"))
        assert originals.filter(mask).sort_by("event_id").equals(copies.sort_by("event_id"))

    orders = _concat(_read_daily(raw, "orders"))
    assert len(pc.unique(orders.column("order_id"))) == orders.num_rows == summary.n_orders


def test_rows_reference_existing_users_items_and_promos(shop):
    base, _ = shop
    raw = base / "raw"
    user_ids = pq.read_table(raw / "users" / "users.parquet").column("user_id")
    item_ids = pq.read_table(raw / "items" / "items.parquet").column("item_id")
    promo_ids = pq.read_table(raw / "promotions" / "promotions.parquet").column("promo_id")
    orders = _concat(_read_daily(raw, "orders"))
    events = _concat(_read_daily(raw, "events"))
    exposures = _concat(_read_daily(raw, "exposures"))
    for table in (orders, events, exposures):
        assert pc.all(pc.is_in(table.column("user_id"), user_ids)).as_py()
    assert pc.all(pc.is_in(events.column("item_id").drop_null(), item_ids)).as_py()
    assert pc.all(pc.is_in(orders.column("promo_id").drop_null(), promo_ids)).as_py()
    arms = pa.concat_arrays([promo_ids.combine_chunks(), pa.array(["none"])])
    assert pc.all(pc.is_in(exposures.column("promo_id"), arms)).as_py()


def test_order_money_is_consistent(shop):
    base, _ = shop
    raw = base / "raw"
    orders = _concat(_read_daily(raw, "orders")).to_pandas()
    promos = pq.read_table(raw / "promotions" / "promotions.parquet").to_pandas().set_index("promo_id")
    assert (orders.gross_amount > 0).all() and (orders.cogs > 0).all() and (orders.cogs < orders.gross_amount).all()
    assert (orders.discount_amount >= 0).all() and (orders.n_items >= 1).all()
    assert ((orders.discount_amount > 0) == orders.promo_id.notna()).all()
    redeemed = orders[orders.promo_id.notna()].join(promos, on="promo_id", rsuffix="_promo")
    assert len(redeemed) > 0
    capped = redeemed.max_discount.fillna(np.inf)
    assert (redeemed.discount_amount <= capped + 1e-9).all()
    assert (redeemed.gross_amount >= redeemed.min_spend).all()
    free_ship = redeemed[redeemed.promo_type == "free_shipping"]
    assert np.allclose(free_ship.discount_amount, free_ship.shipping_fee)
    # Each order's items appear as purchase events with the order's timestamp.
    events = _concat(_read_daily(raw, "events")).to_pandas()
    purchases = events[events.event_type == "purchase"].groupby(["user_id", "event_ts"]).size()
    per_order = orders.groupby(["user_id", "order_ts"]).n_items.sum()
    per_order.index.names = purchases.index.names
    purchases, per_order = purchases.sort_index(), per_order.sort_index()
    assert purchases.index.equals(per_order.index)
    assert (purchases.to_numpy() == per_order.to_numpy()).all()


def test_redeemed_orders_fall_inside_an_exposure_window(shop):
    base, _ = shop
    raw = base / "raw"
    orders = _concat(_read_daily(raw, "orders")).to_pandas()
    exposures = _concat(_read_daily(raw, "exposures")).to_pandas()
    valid_days = pq.read_table(raw / "promotions" / "promotions.parquet").to_pandas().set_index("promo_id").valid_days
    redeemed = orders[orders.promo_id.notna()].merge(exposures, on=["user_id", "promo_id"])
    redeemed["in_window"] = (redeemed.order_ts >= redeemed.sent_ts) & (
        redeemed.order_ts < redeemed.sent_ts + pd.to_timedelta(redeemed.promo_id.map(valid_days), unit="D")
    )
    assert redeemed.groupby("order_id").in_window.any().all()


# ----------------------------------------------------------------------------- catalogue and logging policy
def test_catalogue_covers_all_offer_types_and_the_whole_period(shop):
    base, summary = shop
    promos = pq.read_table(base / "raw" / "promotions" / "promotions.parquet").to_pandas()
    assert set(promos.promo_type) == {"percent_off", "amount_off", "spend_threshold", "free_shipping", "gift"}
    assert 6 <= len(promos) <= 10
    assert promos.valid_days.between(3, 14).all()
    assert promos.category.notna().sum() in (1, 2) and promos.channel.notna().any()
    assert (promos.active_from <= START).all()
    assert (promos.active_to >= summary.run_date + timedelta(days=60)).all()
    assert (promos[promos.promo_type == "percent_off"].value.between(0, 100)).all()
    assert (promos.min_spend >= 0).all()
    assert set(promos.channel.dropna()) <= {"email", "push", "sms", "in_app"}


def test_exposure_propensities_are_the_logging_policy(shop):
    base, _ = shop
    raw = base / "raw"
    promo_ids = pq.read_table(raw / "promotions" / "promotions.parquet").column("promo_id").to_pylist()
    policy = simulator.logging_policy(promo_ids)
    assert set(policy) == set(promo_ids) | {"none"}
    assert sum(policy.values()) == pytest.approx(1.0)
    assert policy["none"] == pytest.approx(2 * policy["p_pct10"])
    assert min(policy.values()) < policy["p_pct10"]  # one arm deliberately rarer
    for day, exposures in _read_daily(raw, "exposures").items():
        frame = exposures.to_pandas()
        assert frame.propensity.gt(0).all() and frame.propensity.le(1).all()
        assert np.allclose(frame.propensity, frame.promo_id.map(policy)), day
        # Within one day each arm has one propensity, and the arms' propensities sum to 1.
        per_arm = frame.groupby("promo_id").propensity.nunique()
        assert (per_arm == 1).all()
        assert (frame.policy_version == "random-logging-v0").all()
        share = len(frame) / N_USERS
        assert 0.02 < share < 0.16, day
    fixed = pq.read_table(raw / "promotions" / "promotions.parquet").to_pandas().dropna(subset=["channel"])
    all_exposures = _concat(_read_daily(raw, "exposures")).to_pandas()
    for promo_id, channel in zip(fixed.promo_id, fixed.channel):
        assert (all_exposures[all_exposures.promo_id == promo_id].channel == channel).all()


# ----------------------------------------------------------------------------- ground truth and hardness
@pytest.fixture(scope="module")
def truth(shop):
    base, _ = shop
    arms = pq.read_table(base / "truth" / "user_arm_truth.parquet").to_pandas()
    latent = pq.read_table(base / "truth" / "user_latent.parquet").to_pandas()
    return arms, latent


def test_ground_truth_has_one_row_per_user_and_arm(shop, truth):
    base, summary = shop
    arms, latent = truth
    promo_ids = pq.read_table(base / "raw" / "promotions" / "promotions.parquet").column("promo_id").to_pylist()
    assert len(arms) == N_USERS * (len(promo_ids) + 1) == summary.n_truth_rows
    assert not arms.duplicated(["user_id", "promo_id"]).any()
    assert set(arms.promo_id) == set(promo_ids) | {"none"}
    assert set(arms.user_id) == set(latent.user_id) and len(latent) == N_USERS
    assert arms.p_order.between(0, 1).all() and (arms.expected_discount_cost >= 0).all()
    none = arms[arms.promo_id == "none"]
    assert (none.expected_incremental_margin == 0).all() and (none.expected_discount_cost == 0).all()
    manifest = (base / "truth" / "manifest.json").read_text()
    assert f'"run_date": "{summary.run_date.isoformat()}"' in manifest and '"seed": 7' in manifest


def test_most_offers_lose_money_but_some_pay(truth):
    arms, latent = truth
    offers = arms[arms.promo_id != "none"]
    assert offers.expected_incremental_margin.mean() < 0
    positive_share = (offers.expected_incremental_margin > 0).mean()
    assert 0.05 <= positive_share <= 0.40
    assert (offers.order_rate_lift < 0.95).any()  # sleeping dogs
    assert (offers.order_rate_lift > 1.5).any()  # persuadables
    assert set(latent.segment) == {"sure_thing", "persuadable", "sleeping_dog", "indifferent"}


def test_richest_offer_to_most_active_users_loses_money(shop, truth):
    base, _ = shop
    arms, _ = truth
    offers = arms[arms.promo_id != "none"]
    richest = offers.groupby("promo_id").expected_discount_cost.mean().idxmax()
    orders = _concat(_read_daily(base / "raw", "orders")).to_pandas()
    order_counts = orders.groupby("user_id").size().reindex(arms.user_id.unique(), fill_value=0)
    most_active = order_counts.sort_values(ascending=False, kind="stable").index[: N_USERS // 5]
    naive = offers[(offers.promo_id == richest) & offers.user_id.isin(most_active)]
    assert len(naive) == N_USERS // 5
    assert naive.expected_incremental_margin.sum() < 0
    # ...while an oracle that only sends profitable offers would make money.
    assert offers.groupby("user_id").expected_incremental_margin.max().clip(lower=0).sum() > 0


def test_responders_are_visible_in_observable_behaviour(tmp_path):
    """The platform must be able to learn who responds: persuadables differ from the
    rest in what the raw data shows (deal searches, carts that do not become orders)."""
    summary = simulator.generate(tmp_path / "raw", tmp_path / "truth", n_users=3000, n_days=14, seed=11)
    events = pq.ParquetDataset(tmp_path / "raw" / "events").read().to_pandas()
    events = events.drop_duplicates("event_id")
    latent = pq.read_table(tmp_path / "truth" / "user_latent.parquet").to_pandas().set_index("user_id")
    searches = events[events.event_type == "search"]
    deal_search_share = (
        searches["query"].str.contains("sale|discount|coupon|cheap|deal").groupby(searches.user_id).mean()
    )
    carts = events[events.event_type == "add_to_cart"].groupby("user_id").size()
    purchases = events[events.event_type == "purchase"].groupby("user_id").size()
    cart_conversion = (purchases.reindex(carts.index, fill_value=0) / carts).clip(upper=1)
    persuadable = latent.segment == "persuadable"

    def persuadable_vs_rest(per_user):
        is_persuadable = persuadable.reindex(per_user.index).to_numpy()
        return per_user[is_persuadable].mean(), per_user[~is_persuadable].mean()

    persuadable_deal_share, rest_deal_share = persuadable_vs_rest(deal_search_share)
    assert persuadable_deal_share > rest_deal_share + 0.03
    persuadable_conversion, rest_conversion = persuadable_vs_rest(cart_conversion)
    assert persuadable_conversion < rest_conversion - 0.05
    assert summary.n_orders > 0


def test_observable_shape_ties_response_to_what_the_platform_sees(tmp_path):
    """The second response shape: tenure and favourite category decide who responds; the
    latent shape's tables are unchanged by its existence (its random stream is its own)."""
    summary = simulator.generate(
        tmp_path / "raw", tmp_path / "truth", n_users=3000, n_days=14, seed=11, response_shape="observable"
    )
    users = pq.read_table(tmp_path / "raw" / "users" / "users.parquet").to_pandas().set_index("user_id")
    latent = pq.read_table(tmp_path / "truth" / "user_latent.parquet").to_pandas().set_index("user_id")
    tenure_at_start = (pd.Timestamp(summary.start_date, tz="UTC") - users["signup_ts"]).dt.days
    new_customer = (tenure_at_start < 45).reindex(latent.index)
    persuadable = latent.segment == "persuadable"
    assert persuadable[new_customer & (latent.segment != "sure_thing")].mean() > 0.8
    assert persuadable[~new_customer].mean() < 0.2
    manifest = (tmp_path / "truth" / "manifest.json").read_text()
    assert '"response_shape": "observable"' in manifest
    with pytest.raises(ValueError, match="response_shape"):
        simulator.generate(tmp_path / "raw2", tmp_path / "truth2", n_users=10, n_days=2, response_shape="linear")


def _purchases(raw: Path) -> pd.DataFrame:
    events = pd.concat([t.to_pandas() for t in _read_daily(raw, "events").values()], ignore_index=True)
    return events.loc[events["event_type"] == "purchase"].sort_values("event_ts", kind="stable")


def test_collaborative_item_shape_keeps_the_other_streams_and_writes_true_preferences(tmp_path):
    """--item-shape collaborative: its own random stream (users, items, promotions and the first
    day's exposures are those of the category shape); true item preferences in the truth folder."""
    kwargs = dict(n_users=600, n_days=8, start_date=START, seed=5)
    simulator.generate(tmp_path / "cat" / "raw", tmp_path / "cat" / "truth", **kwargs)
    simulator.generate(tmp_path / "col" / "raw", tmp_path / "col" / "truth", item_shape="collaborative", **kwargs)
    for table in (
        "users/users.parquet",
        "items/items.parquet",
        "promotions/promotions.parquet",
        f"exposures/dt={START}/part-0.parquet",
    ):
        assert pq.read_table(tmp_path / "cat" / "raw" / table).equals(
            pq.read_table(tmp_path / "col" / "raw" / table)
        ), table
    category_preference = pd.read_parquet(tmp_path / "cat" / "truth" / "user_item_preference.parquet")
    assert '"item_shape": "collaborative"' in (tmp_path / "col" / "truth" / "manifest.json").read_text()

    preference = pd.read_parquet(tmp_path / "col" / "truth" / "user_item_preference.parquet")
    assert (
        preference.groupby("user_id").size().eq(simulator.TRUTH_PREFERENCE_ITEMS).all()
        and preference["user_id"].nunique() == 600
    )
    assert (preference.groupby("user_id")["pick_probability"].diff().dropna() <= 1e-12).all()  # most likely first
    assert preference.groupby("user_id")["item_id"].nunique().eq(simulator.TRUTH_PREFERENCE_ITEMS).all()

    # The category shape's preferences are its pick rule's exact probabilities: the favourite
    # category first, cheap items first for the price-sensitive.
    items = pq.read_table(tmp_path / "cat" / "raw" / "items" / "items.parquet").to_pandas().set_index("item_id")
    latent = pd.read_parquet(tmp_path / "cat" / "truth" / "user_latent.parquet").set_index("user_id")
    first = category_preference.loc[category_preference["preference_rank"] == 1].set_index("user_id")
    assert (
        items.loc[first["item_id"], "category"].to_numpy() == latent.loc[first.index, "preferred_category"].to_numpy()
    ).all()
    assert category_preference.groupby("user_id")["pick_probability"].sum().between(0.1, 1.0).all()

    # Behaviour follows the tastes: views land on the user's true top-20 far more often than
    # the 20 of 400 items chance gives, and more often than in the category shape.
    def share_in_preferences(root: Path) -> float:
        events = pd.concat([t.to_pandas() for t in _read_daily(root / "raw", "events").values()], ignore_index=True)
        views = events.loc[events["event_type"] == "view", ["user_id", "item_id"]]
        hits = views.merge(preference[["user_id", "item_id"]], on=["user_id", "item_id"], how="left", indicator=True)
        return float((hits["_merge"] == "both").mean())

    assert (
        share_in_preferences(tmp_path / "col") > 0.6 > 0.3 > share_in_preferences(tmp_path / "cat")
    )  # measured 0.76 vs 0.24

    # Repeat purchases and items bought together.
    def repeat_share(root: Path) -> float:
        purchases = _purchases(root / "raw")
        return float(purchases.duplicated(["user_id", "item_id"]).mean())

    def repeated_pair_share(root: Path) -> float:
        """Share of (item, item) pairs viewed in one session that other sessions view too."""
        events = pd.concat([t.to_pandas() for t in _read_daily(root / "raw", "events").values()], ignore_index=True)
        views = events.loc[events["event_type"] == "view", ["session_id", "item_id"]].drop_duplicates()
        pairs = views.merge(views, on="session_id").query("item_id_x < item_id_y")
        counts = pairs.groupby(["item_id_x", "item_id_y"]).size()
        return float(counts[counts > 1].sum() / counts.sum())

    assert repeat_share(tmp_path / "col") > 3 * repeat_share(tmp_path / "cat")  # measured 0.14 vs 0.03
    assert repeated_pair_share(tmp_path / "col") > 3 * repeated_pair_share(tmp_path / "cat")  # measured 0.39 vs 0.07
    with pytest.raises(ValueError, match="item_shape"):
        simulator.generate(tmp_path / "raw2", tmp_path / "truth2", n_users=10, n_days=2, item_shape="brand")


def test_cli_item_shape_flag(tmp_path, capsys):
    assert (
        simulator.main(
            [
                "--raw-dir",
                str(tmp_path / "raw"),
                "--truth-dir",
                str(tmp_path / "truth"),
                "--users",
                "50",
                "--days",
                "2",
                "--seed",
                "3",
                "--item-shape",
                "collaborative",
            ]
        )
        == 0
    )
    assert (tmp_path / "truth" / "user_item_preference.parquet").exists()
