"""spark_jobs.nightly end to end on a tiny lake written with pyarrow.

One module-scoped sequence of nights (Spark runs are the slow part):
night 2024-03-10, the same night again, night 2024-03-11 with one new day of
events, then night 2024-03-11 again after a clean partition was rewritten.
"""

from __future__ import annotations

import os
import shutil
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from spark_jobs import nightly
from spark_jobs.user_features import USER_FEATURES_SCHEMA

UTC_NS = pa.timestamp("ns", tz="UTC")  # what pandas-based writers produce
UTC_US = pa.timestamp("us", tz="UTC")
NAIVE_US = pa.timestamp("us")  # UTC wall time without a zone


def _write(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


EVENTS = pa.schema(
    [
        ("event_id", pa.string()),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("event_type", pa.string()),
        ("event_ts", UTC_NS),
        ("session_id", pa.string()),
        ("query", pa.string()),
    ]
)
ORDERS = pa.schema(
    [
        ("order_id", pa.string()),
        ("user_id", pa.string()),
        ("order_ts", NAIVE_US),
        ("gross_amount", pa.float64()),
        ("discount_amount", pa.float64()),
        ("cogs", pa.float64()),
        ("shipping_fee", pa.float64()),
        ("promo_id", pa.string()),
        ("n_items", pa.int32()),
    ]
)
EXPOSURES = pa.schema(
    [
        ("exposure_id", pa.string()),
        ("user_id", pa.string()),
        ("promo_id", pa.string()),
        ("sent_ts", UTC_US),
        ("channel", pa.string()),
        ("propensity", pa.float64()),
        ("policy_version", pa.string()),
    ]
)


def _event(event_id, user_id, item_id, event_type, ts, session_id=None):
    return dict(
        event_id=event_id,
        user_id=user_id,
        item_id=item_id,
        event_type=event_type,
        event_ts=ts,
        session_id=session_id,
        query=None,
    )


def _order(order_id, user_id, ts, gross, discount):
    return dict(
        order_id=order_id,
        user_id=user_id,
        order_ts=ts,
        gross_amount=gross,
        discount_amount=discount,
        cogs=gross / 2,
        shipping_fee=0.0,
        promo_id=None,
        n_items=1,
    )


def _exposure(exposure_id, user_id, promo_id, ts):
    return dict(
        exposure_id=exposure_id,
        user_id=user_id,
        promo_id=promo_id,
        sent_ts=ts,
        channel="email",
        propensity=None,
        policy_version=None,
    )


def _build_lake(lake: Path) -> None:
    clean = lake / "clean"
    _write(
        clean / "users" / "users.parquet",
        [
            dict(user_id="u1", signup_ts=datetime(2024, 1, 1), region="north", device="ios", user_key="k1"),
            dict(user_id="u2", signup_ts=datetime(2024, 3, 9, 23, 59), region="south", device="web", user_key="k2"),
            dict(user_id="u3", signup_ts=datetime(2024, 4, 1), region="CN-31", device="android", user_key="k3"),
        ],
        pa.schema(
            [
                ("user_id", pa.string()),
                ("signup_ts", UTC_NS),
                ("region", pa.string()),
                ("device", pa.string()),
                ("user_key", pa.string()),
            ]
        ),
    )
    _write(
        clean / "items" / "items.parquet",
        [
            dict(item_id=i, category=c, brand=None, price=10.0, unit_cost=4.0)
            for i, c in [("i1", "shoes"), ("i2", "bags"), ("i3", "shoes"), ("i4", None)]
        ],
        pa.schema(
            [
                ("item_id", pa.string()),
                ("category", pa.string()),
                ("brand", pa.string()),
                ("price", pa.float64()),
                ("unit_cost", pa.float64()),
            ]
        ),
    )
    _write(
        clean / "events" / "dt=2024-03-05" / "part-0.parquet",
        [
            _event("e10", "u4", "i3", "view", datetime(2024, 3, 5, 10, 0), "s4"),
            _event("e11", "u4", "i3", "view", datetime(2024, 3, 5, 10, 1), "s4"),
            _event("e12", "u4", "i3", "purchase", datetime(2024, 3, 5, 10, 2), "s4"),
        ],
        # no searches that day: pandas-based writers store the all-null column with pyarrow's null type
        pa.schema([f if f.name != "query" else pa.field("query", pa.null()) for f in EVENTS]),
    )
    day = clean / "events" / "dt=2024-03-09"
    _write(
        day / "part-0.parquet",
        [
            _event("e1", "u1", "i1", "view", datetime(2024, 3, 9, 8, 15), "s1"),
            _event("e2", "u1", "i2", "view", datetime(2024, 3, 9, 8, 40), "s1"),
            _event("e3", "u1", "i1", "add_to_cart", datetime(2024, 3, 9, 9, 5), "s1"),
        ],
        EVENTS,
    )
    _write(  # e2 again in a second file
        day / "part-1.parquet",
        [
            _event("e2", "u1", "i2", "view", datetime(2024, 3, 9, 8, 40), "s1"),
            _event("e4", "u1", "i1", "purchase", datetime(2024, 3, 9, 9, 10), "s1"),
            _event("e5", "u1", None, "search", datetime(2024, 3, 9, 21, 0), "s2"),
            _event("e6", "u1", "i2", "click", datetime(2024, 3, 9, 21, 5), "s2"),
        ],
        EVENTS,
    )
    _write(
        clean / "orders" / "dt=2024-03-05" / "part-0.parquet",
        [_order("o4", "u2", datetime(2024, 3, 5, 18, 0), 40.0, 0.0)],
        ORDERS,
    )
    _write(
        clean / "orders" / "dt=2024-03-09" / "part-0.parquet",
        [_order("o1", "u1", datetime(2024, 3, 9, 9, 10), 100.0, 10.0)],
        ORDERS,
    )
    _write(
        clean / "exposures" / "dt=2024-03-08" / "part-0.parquet",
        [_exposure("x1", "u1", "p1", datetime(2024, 3, 8, 7, 0))],
        EXPOSURES,
    )
    _write(
        clean / "exposures" / "dt=2024-03-09" / "part-0.parquet",
        [_exposure("x2", "u1", "none", datetime(2024, 3, 9, 7, 0))],
        EXPOSURES,
    )


def _add_day_2024_03_10(lake: Path) -> None:
    # session_id all null: pyarrow's null type, unlike the other days' files
    _write(
        lake / "clean" / "events" / "dt=2024-03-10" / "part-0.parquet",
        [_event("n1", "u2", "i1", "view", datetime(2024, 3, 10, 12, 0), None)],
        pa.schema([f if f.name != "session_id" else pa.field("session_id", pa.null()) for f in EVENTS]),
    )


def _restate_orders_2024_03_09(lake: Path) -> None:
    # ingest re-delivers 2024-03-09's orders with one more order
    orders_file = lake / "clean" / "orders" / "dt=2024-03-09" / "part-0.parquet"
    _write(
        orders_file,
        [
            _order("o1", "u1", datetime(2024, 3, 9, 9, 10), 100.0, 10.0),
            _order("o5", "u1", datetime(2024, 3, 9, 20, 0), 20.0, 0.0),
        ],
        ORDERS,
    )
    stat = orders_file.stat()
    os.utime(orders_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # coarse-mtime filesystems


def _read(folder: Path) -> pa.Table:
    files = sorted(p for p in folder.rglob("*.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in files])


def _read_daily(table_dir: Path) -> list[dict]:
    """Rows of a dt-partitioned feature table, with dt from the folder names."""
    rows = []
    for partition in sorted(table_dir.glob("dt=*")):
        dt = date.fromisoformat(partition.name[len("dt=") :])
        rows += [{**r, "dt": dt} for r in _read(partition).to_pylist()]
    return rows


def _by_user(folder: Path) -> dict[str, dict]:
    return {r["user_id"]: r for r in _read(folder).to_pylist()}


@pytest.fixture(scope="module")
def nights(spark, tmp_path_factory):
    lake = tmp_path_factory.mktemp("lake")
    _build_lake(lake)
    features = lake / "features"
    out: dict = {"lake": lake}

    def run(run_date: date) -> dict:
        return nightly.run(str(lake), run_date, spark_master="local[1]", shuffle_partitions=2)

    out["first"] = run(date(2024, 3, 10))
    out["first_user_features"] = _read(features / "user_features" / "as_of=2024-03-10")
    out["first_item_features"] = _read(features / "item_features" / "as_of=2024-03-10")
    out["first_user_daily"] = _read(features / "user_daily")

    out["rerun"] = run(date(2024, 3, 10))
    out["rerun_user_features"] = _read(features / "user_features" / "as_of=2024-03-10")
    out["rerun_item_features"] = _read(features / "item_features" / "as_of=2024-03-10")
    out["rerun_user_daily"] = _read(features / "user_daily")

    _add_day_2024_03_10(lake)
    out["second"] = run(date(2024, 3, 11))
    out["second_item_features"] = _read(features / "item_features" / "as_of=2024-03-11").to_pylist()
    out["second_user_features"] = _by_user(features / "user_features" / "as_of=2024-03-11")

    _restate_orders_2024_03_09(lake)
    out["restated"] = run(date(2024, 3, 11))
    out["restated_user_features"] = _by_user(features / "user_features" / "as_of=2024-03-11")
    out["restated_user_daily"] = _read_daily(features / "user_daily")
    return out


def test_first_night_computes_every_clean_day(nights):
    assert nights["first"]["days_computed"] == ["2024-03-05", "2024-03-08", "2024-03-09"]
    assert nights["first"]["user_daily_rows"] == 4  # u1 x {03-08, 03-09}, u2 03-05, u4 03-05
    assert nights["first"]["user_category_daily_rows"] == 3
    assert nights["first"]["user_features_rows"] == 3
    assert nights["first"]["item_features_rows"] == 4


def test_first_night_user_features(nights):
    rows = {r["user_id"]: r for r in nights["first_user_features"].to_pylist()}
    assert list(rows) == ["u1", "u2", "u3"]  # sorted by user_id, u4 is not in the users snapshot
    u1 = rows["u1"]
    assert u1["as_of"] == date(2024, 3, 10)
    assert u1["tenure_days"] == 69
    assert (u1["days_since_last_event"], u1["days_since_last_order"], u1["days_since_last_exposure"]) == (1, 1, 2)
    assert (u1["orders_7d"], u1["spend_7d"], u1["spend_90d"]) == (1, 100.0, 100.0)
    assert u1["views_30d"] == 2  # e2 is in two files, counted once
    assert (u1["carts_30d"], u1["sessions_30d"], u1["searches_30d"]) == (1, 2, 1)
    assert u1["events_per_session_30d"] == 3.0  # 6 events / 2 sessions
    assert (u1["view_to_cart_rate_30d"], u1["cart_to_order_rate_30d"]) == (0.5, 1.0)
    assert (u1["discount_order_share_90d"], u1["exposures_30d"]) == (1.0, 1)
    assert u1["preferred_hour"] == 8  # 08, 09 and 21 have 2 events each: the earliest wins
    assert u1["top_category"] == "shoes"
    u3 = rows["u3"]
    assert (u3["tenure_days"], u3["days_since_last_event"], u3["preferred_hour"], u3["top_category"]) == (
        0,
        999,
        10,
        "unknown",
    )
    assert all(v is not None for row in rows.values() for v in row.values())


def test_output_types_are_stable(nights):
    schema = nights["first_user_features"].schema
    assert schema.field("as_of").type == pa.date32()
    assert schema.field("tenure_days").type == pa.int32()
    assert schema.field("orders_30d").type == pa.int32()
    assert schema.field("spend_30d").type == pa.float64()
    assert schema.field("top_category").type == pa.string()
    # the behaviour columns come after the original 25, which keep their names and order
    assert schema.names == USER_FEATURES_SCHEMA.names
    assert schema.names[:3] == ["user_id", "as_of", "tenure_days"] and schema.names[24] == "top_category"
    item_schema = nights["first_item_features"].schema
    assert item_schema.names == [
        "item_id",
        "category",
        "views_30d",
        "purchases_30d",
        "conversion_rate_30d",
        "popularity_rank_in_category",
        "co_viewed_item_ids",
        "co_bought_item_ids",
    ]
    assert item_schema.field("popularity_rank_in_category").type == pa.int32()
    daily_schema = nights["first_user_daily"].schema
    assert daily_schema.field("n_events").type == pa.int64()
    assert daily_schema.field("last_event_ts").type == pa.timestamp("us", tz="UTC")


def test_first_night_item_features(nights):
    got = [tuple(r.values()) for r in nights["first_item_features"].to_pylist()]
    # i1 and i2 viewed in session s1: each other's co-viewed neighbour
    assert got == [
        ("i1", "shoes", 1, 1, 1.0, 2, "i2", ""),
        ("i2", "bags", 1, 0, 0.0, 1, "i1", ""),
        ("i3", "shoes", 2, 1, 0.5, 1, "", ""),
        ("i4", "unknown", 0, 0, 0.0, 1, "", ""),
    ]


def test_rerun_recomputes_nothing_and_gives_identical_output(nights):
    assert nights["rerun"]["days_computed"] == []
    assert nights["rerun_user_features"].equals(nights["first_user_features"])
    assert nights["rerun_item_features"].equals(nights["first_item_features"])
    assert nights["rerun_user_daily"].equals(nights["first_user_daily"])
    as_of_dirs = sorted(p.name for p in (nights["lake"] / "features" / "user_features").iterdir())
    assert as_of_dirs == ["as_of=2024-03-10", "as_of=2024-03-11"]  # no temp folders left behind


def test_second_night_computes_only_the_new_day(nights):
    assert nights["second"]["days_computed"] == ["2024-03-10"]
    assert nights["second"]["user_daily_rows"] == 1
    u2 = nights["second_user_features"]["u2"]
    assert (u2["as_of"], u2["days_since_last_event"], u2["views_30d"]) == (date(2024, 3, 11), 1, 1)
    assert (u2["preferred_hour"], u2["top_category"], u2["tenure_days"]) == (12, "shoes", 2)
    assert nights["second_user_features"]["u1"]["days_since_last_event"] == 2
    assert u2["sessions_30d"] == 0 and u2["events_per_session_30d"] == 0.0  # the view has no session
    i1 = next(r for r in nights["second_item_features"] if r["item_id"] == "i1")
    assert (i1["views_30d"], i1["purchases_30d"], i1["conversion_rate_30d"]) == (2, 1, 0.5)


def test_rewritten_clean_partition_is_recomputed_without_duplicates(nights):
    assert nights["restated"]["days_computed"] == ["2024-03-09"]
    u1 = nights["restated_user_features"]["u1"]
    assert (u1["orders_7d"], u1["spend_7d"]) == (2, 120.0)
    assert u1["order_value_std_90d"] == pytest.approx(40.0)  # 100 and 20 around 60
    u1_0309 = [r for r in nights["restated_user_daily"] if r["user_id"] == "u1" and r["dt"] == date(2024, 3, 9)]
    assert len(u1_0309) == 1 and u1_0309[0]["n_orders"] == 2
    assert len(nights["restated_user_daily"]) == 5  # the first night's 4 + u2 on 03-10


def test_item_features_add_up_the_daily_partials_without_rereading_events(nights, tmp_path):
    """The next night's item features come from the item partials of the earlier days: with an
    already-computed day's clean partitions gone (retention), they are the same as with them."""
    lake = tmp_path / "lake"
    _build_lake(lake)
    nightly.run(str(lake), date(2024, 3, 10), spark_master="local[1]", shuffle_partitions=2)
    for table in ("events", "orders"):  # the day's clean partitions (it has no exposures)
        shutil.rmtree(lake / "clean" / table / "dt=2024-03-05")
    _add_day_2024_03_10(lake)
    second = nightly.run(str(lake), date(2024, 3, 11), spark_master="local[1]", shuffle_partitions=2)
    assert second["days_computed"] == ["2024-03-10"]
    features = lake / "features"
    assert _read(features / "item_features" / "as_of=2024-03-11").to_pylist() == nights["second_item_features"]
    daily = {(r["item_id"], r["dt"]): (r["views"], r["purchases"]) for r in _read_daily(features / "item_daily")}
    assert daily == {
        ("i3", date(2024, 3, 5)): (2, 1),
        ("i1", date(2024, 3, 9)): (1, 1),
        ("i2", date(2024, 3, 9)): (1, 0),  # e2 delivered twice, counted once
        ("i1", date(2024, 3, 10)): (1, 0),
    }
    pairs = sorted(tuple(r.values()) for r in _read_daily(features / "item_pairs_daily"))
    assert pairs == [("co_viewed", "i1", "i2", 1, date(2024, 3, 9)), ("co_viewed", "i2", "i1", 1, date(2024, 3, 9))]


# ------------------------------------------------------------------ run_many: a backfill in one go
# Unsorted, with a duplicate; 03-06 sees u2's order and u4's events only, 03-11 everything.
BATCH_AS_OF = [date(2024, 3, 11), date(2024, 3, 6), date(2024, 3, 11)]


@pytest.fixture(scope="module")
def batch(nights, tmp_path_factory):
    """run_many on a fresh lake holding the clean data of the nights lake after its last night.

    The references are single-date ``run`` outputs on the nights lake: its last night
    (2024-03-11) and one more run for 2024-03-06.
    """
    ref_features = nights["lake"] / "features"
    nightly.run(str(nights["lake"]), date(2024, 3, 6), spark_master="local[1]", shuffle_partitions=2)

    lake = tmp_path_factory.mktemp("batch_lake")
    _build_lake(lake)
    _add_day_2024_03_10(lake)
    _restate_orders_2024_03_09(lake)
    features = lake / "features"
    # a stale folder of a requested date is replaced, a folder of another date is left alone
    stale = features / "user_features" / "as_of=2024-03-11" / "part-0.parquet"
    _write(stale, [dict(user_id="stale")], pa.schema([("user_id", pa.string())]))
    other = features / "user_features" / "as_of=2024-02-01" / "part-0.parquet"
    _write(other, [dict(user_id="other")], pa.schema([("user_id", pa.string())]))

    def run_many() -> dict:
        return nightly.run_many(str(lake), BATCH_AS_OF, spark_master="local[1]", shuffle_partitions=2)

    def snapshot() -> dict:
        return {
            (table, d): _read(features / table / f"as_of={d}")
            for table in ("user_features", "item_features")
            for d in ("2024-03-06", "2024-03-11")
        }

    out = {"lake": lake, "ref_features": ref_features}
    out["first"] = run_many()
    out["first_tables"] = snapshot()
    out["first_files"] = {
        t: sorted(p.relative_to(features / t).as_posix() for p in (features / t).rglob("*"))
        for t in ("user_features", "item_features")
    }
    out["first_user_daily"] = _read_daily(features / "user_daily")
    out["rerun"] = run_many()
    out["rerun_tables"] = snapshot()
    out["rerun_files"] = {
        t: sorted(p.relative_to(features / t).as_posix() for p in (features / t).rglob("*"))
        for t in ("user_features", "item_features")
    }
    return out


def test_run_many_computes_the_daily_partitions_once(batch):
    first = batch["first"]
    assert first["as_of_dates"] == ["2024-03-06", "2024-03-11"]
    assert first["days_computed"] == ["2024-03-05", "2024-03-08", "2024-03-09", "2024-03-10"]
    assert (first["user_daily_rows"], first["user_category_daily_rows"]) == (5, 4)
    assert {d: (s["user_features_rows"], s["item_features_rows"]) for d, s in first["as_of"].items()} == {
        "2024-03-06": (3, 4),
        "2024-03-11": (3, 4),
    }
    assert batch["first_user_daily"] == _read_daily(batch["ref_features"] / "user_daily")


def test_run_many_writes_what_single_date_runs_write(batch):
    for (table, d), got in batch["first_tables"].items():
        expected = _read(batch["ref_features"] / table / f"as_of={d}")
        assert got.schema == expected.schema, (table, d)  # as_of in the user_features files only
        assert got.equals(expected), (table, d)  # same rows in the same (sorted) order
    u2 = batch["first_tables"][("user_features", "2024-03-06")].to_pylist()[1]
    assert (u2["user_id"], u2["as_of"], u2["days_since_last_order"]) == ("u2", date(2024, 3, 6), 1)


def test_run_many_publishes_one_file_per_folder_and_leaves_other_dates(batch):
    for table, files in batch["first_files"].items():
        folders = sorted({f.split("/")[0] for f in files})
        expected = ["as_of=2024-03-06", "as_of=2024-03-11"]
        assert folders == (["as_of=2024-02-01", *expected] if table == "user_features" else expected)
        for folder in expected:
            parts = [f for f in files if f.startswith(folder + "/") and f.endswith(".parquet") and "/." not in f]
            assert len(parts) == 1, (table, folder)
    kept = _read(batch["lake"] / "features" / "user_features" / "as_of=2024-02-01")
    assert kept.to_pylist() == [{"user_id": "other"}]


def test_run_many_rerun_is_idempotent(batch):
    assert batch["rerun"]["days_computed"] == []
    assert batch["rerun"]["as_of"] == batch["first"]["as_of"]
    for key, table in batch["rerun_tables"].items():
        assert table.equals(batch["first_tables"][key]), key
    assert [f.split("/")[0] for f in batch["rerun_files"]["user_features"]] == [
        f.split("/")[0] for f in batch["first_files"]["user_features"]
    ]  # no temp folders left behind


def test_run_many_builds_only_the_exposed_users_user_features_for_training_dates(batch, tmp_path):
    """A first night's past dates (only training reads them) get user_features alone, and only
    the rows of that day's exposed users: each the row the full roll-up of the date holds."""
    lake = tmp_path / "lake"
    _build_lake(lake)
    _add_day_2024_03_10(lake)
    _restate_orders_2024_03_09(lake)
    dates = [date(2024, 3, 6), date(2024, 3, 9), date(2024, 3, 11)]
    full = lake / "full"
    shutil.copytree(lake / "clean", full / "clean")
    nightly.run_many(str(full), dates, spark_master="local[1]", shuffle_partitions=2)
    summary = nightly.run_many(
        str(lake),
        dates,
        spark_master="local[1]",
        shuffle_partitions=2,
        training_dates=[date(2024, 3, 6), date(2024, 3, 9)],
    )
    features, ref = lake / "features", batch["ref_features"]
    # 03-09: u1 was sent x2 that day; u2 and u3, in the snapshot too, were not
    reference = _read(full / "features" / "user_features" / "as_of=2024-03-09")
    assert reference.column("user_id").to_pylist() == ["u1", "u2", "u3"]
    got = _read(features / "user_features" / "as_of=2024-03-09")
    assert got.equals(reference.filter(pc.equal(reference.column("user_id"), "u1")))
    assert got.to_pylist()[0]["exposures_30d"] == 1  # x1 on 03-08; x2 is on the as_of day itself
    # 03-06: no exposure that day, an empty file with the schema
    empty = _read(features / "user_features" / "as_of=2024-03-06")
    assert empty.num_rows == 0 and empty.schema == reference.schema
    assert _read(features / "user_features" / "as_of=2024-03-11").equals(
        _read(ref / "user_features" / "as_of=2024-03-11")
    )
    for table in ("item_features", "user_category_features", "user_sequences"):
        assert _read(features / table / "as_of=2024-03-11").equals(_read(ref / table / "as_of=2024-03-11")), table
        assert sorted(p.name for p in (features / table).iterdir()) == ["as_of=2024-03-11"], table
    assert set(summary["as_of"]["2024-03-09"]) == {"user_features_rows", "user_features_path"}
    assert summary["as_of"]["2024-03-09"]["user_features_rows"] == 1
    assert summary["as_of"]["2024-03-11"]["item_features_rows"] == 4
    with pytest.raises(ValueError, match="proper subset"):
        nightly.run_many(str(lake), [date(2024, 3, 6)], spark_master="local[1]", training_dates=[date(2024, 3, 6)])


def test_publish_as_of_dates_writes_an_empty_folder_for_a_date_without_rows(spark, tmp_path):
    d1, d2 = date(2024, 3, 6), date(2024, 3, 7)
    df = spark.createDataFrame([("u2", d1), ("u1", d1)], "user_id string, as_of date")
    paths = nightly._publish_as_of_dates(df, tmp_path / "t", [d1, d2], "user_id")
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["as_of=2024-03-06", "as_of=2024-03-07"]
    first, second = _read(paths[d1]), _read(paths[d2])
    assert first.to_pylist() == [{"user_id": "u1", "as_of": d1}, {"user_id": "u2", "as_of": d1}]
    assert second.num_rows == 0 and second.schema == first.schema
