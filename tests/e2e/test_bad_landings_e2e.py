"""Corrupted landings fed through promo_nightly: quarantine or stop, never damage the last good night.

A module fixture publishes night D (2026-10-07) from a clean landing. Each case then
copies that state, corrupts the next day's partition (dt=2026-10-07) or a snapshot,
and runs night D+1 through the DAG. Row-level problems are quarantined with a reason
and the night completes; table-level problems stop the run with a one-paragraph
message. Either way, night D's published rows and export files stay byte-identical.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from nights import export_files, load_dag, night_env, published_rows, restored_environ, run_night

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("bad_landings")]

PUBLISHED, NEXT = date(2026, 10, 7), date(2026, 10, 8)
NEW_DAY = "dt=2026-10-07"
DAY_TABLES = ("events", "orders", "exposures")


def _env(root: Path) -> dict[str, str]:
    # 500 users send ~40 offers a day: one quarantined promo's cascade can pass 5%.
    return night_env(root, secret="bad-landing-secret", budget=60, PROMO_MAX_BAD_ROW_SHARE="0.25")


@pytest.fixture(scope="module")
def published_night(tmp_path_factory, airflow_db):
    """Night D published from a clean landing; the landing's next day is kept aside for the cases."""
    from demo.simulator import generate

    root = tmp_path_factory.mktemp("published")
    generate(root / "raw", root / "truth", n_users=500, n_days=7, start_date=date(2026, 10, 1), seed=5)
    aside = tmp_path_factory.mktemp("next_day")
    for table in DAY_TABLES:
        shutil.move(str(root / "raw" / table / NEW_DAY), str(aside / table))
    with restored_environ(_env(root)):
        dag = load_dag()
        assert run_night(dag, PUBLISHED, _env(root)) == "success"
        yield {
            "dag": dag,
            "root": root,
            "aside": aside,
            "rows": published_rows(_env(root), PUBLISHED),
            "export": export_files(root, PUBLISHED),
        }


@dataclass
class Case:
    name: str
    corrupt: Callable[[Path], dict]  # corrupts raw/ under the case root; returns facts for the expectation
    stop_message: str | None = None  # regex of the stop paragraph, or None when the night must complete
    quarantined: Callable[[dict], dict] | None = None  # facts -> {table: {reason: count}}


def _read(path: Path) -> pa.Table:
    return pq.read_table(path)


def _day_files(raw: Path, table: str) -> list[Path]:
    return sorted((raw / table / NEW_DAY).glob("*.parquet"))


def missing_column(raw):
    path = _day_files(raw, "events")[0]
    pq.write_table(_read(path).drop_columns(["session_id"]), path)
    return {}


def wrong_type(raw):
    path = _day_files(raw, "orders")[0]
    orders = _read(path)
    as_text = pa.array(["twelve euros"] * orders.num_rows, pa.string())
    pq.write_table(orders.set_column(orders.schema.get_field_index("gross_amount"), "gross_amount", as_text), path)
    return {"rows": orders.num_rows}


def negative_price(raw):
    items = _read(raw / "items" / "items.parquet")
    events = pa.concat_tables([_read(p) for p in _day_files(raw, "events")])
    counts = events.group_by("item_id").aggregate([("event_id", "count")])
    # the item with the fewest events tonight (but some), so its cascade stays a few rows
    seen = counts.filter(pc.is_valid(counts["item_id"])).sort_by(
        [("event_id_count", "ascending"), ("item_id", "ascending")]
    )
    victim = seen["item_id"][0].as_py()
    prices = pc.if_else(pc.equal(items["item_id"], victim), -5.0, items["price"])
    pq.write_table(
        items.set_column(items.schema.get_field_index("price"), "price", prices), raw / "items" / "items.parquet"
    )
    victim_ids = pc.unique(events.filter(pc.equal(events["item_id"], victim))["event_id"])
    return {"victim_events": len(victim_ids)}  # a duplicated copy is quarantined as a duplicate (rule order)


def duplicate_event_ids(raw):
    files = _day_files(raw, "events")
    before = pa.concat_tables([_read(p) for p in files])
    already = before.num_rows - len(pc.unique(before["event_id"]))
    pq.write_table(_read(files[0]).slice(0, 10), raw / "events" / NEW_DAY / "part-9.parquet")
    return {"duplicates": already + 10}


def future_timestamps(raw):
    path = _day_files(raw, "events")[0]
    events = _read(path)
    later = pa.array([datetime(2026, 10, 9, 12, tzinfo=UTC)] * 5, pa.timestamp("us", tz="UTC"))
    ts = pa.concat_arrays([later, events["event_ts"].combine_chunks().slice(5)])
    pq.write_table(events.set_column(events.schema.get_field_index("event_ts"), "event_ts", ts), path)
    return {}


def unknown_user_in_orders(raw):
    path = _day_files(raw, "orders")[0]
    orders = _read(path)
    users = pa.concat_arrays([pa.array(["ghost-1", "ghost-2"]), orders["user_id"].combine_chunks().slice(2)])
    pq.write_table(orders.set_column(orders.schema.get_field_index("user_id"), "user_id", users), path)
    return {}


def empty_partition(raw):
    files = _day_files(raw, "events")
    schema = _read(files[0]).schema
    for p in files:
        p.unlink()
    pq.write_table(schema.empty_table(), raw / "events" / NEW_DAY / "part-0.parquet")
    return {}


def truncated_file(raw):
    path = _day_files(raw, "orders")[0]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return {}


def invalid_promo_type(raw):
    path = raw / "promotions" / "promotions.parquet"
    promos = _read(path)
    victim = promos["promo_id"][0].as_py()
    types = pc.if_else(pc.equal(promos["promo_id"], victim), "buy_one_get_one", promos["promo_type"])
    pq.write_table(promos.set_column(promos.schema.get_field_index("promo_type"), "promo_type", types), path)
    orders = pa.concat_tables([_read(p) for p in _day_files(raw, "orders")])
    exposures = pa.concat_tables([_read(p) for p in _day_files(raw, "exposures")])
    return {
        "orders": pc.sum(pc.equal(orders["promo_id"], victim).cast(pa.int64())).as_py() or 0,
        "exposures": pc.sum(pc.equal(exposures["promo_id"], victim).cast(pa.int64())).as_py() or 0,
    }


def propensity_outside(raw):
    path = _day_files(raw, "exposures")[0]
    exposures = _read(path)
    propensity = pa.concat_arrays([pa.array([1.7]), exposures["propensity"].combine_chunks().slice(1)])
    pq.write_table(exposures.set_column(exposures.schema.get_field_index("propensity"), "propensity", propensity), path)
    return {}


def _nonzero(d: dict) -> dict:
    return {t: {r: n for r, n in reasons.items() if n} for t, reasons in d.items() if any(reasons.values())}


CASES = [
    Case("missing_column", missing_column, stop_message=r"table 'events' is missing column\(s\) \['session_id'\]"),
    Case(
        "wrong_type",
        wrong_type,
        stop_message=r"rows of table 'orders' dt=2026-10-07 break the contract .*invalid_gross_amount",
    ),
    Case(
        "negative_price",
        negative_price,
        quarantined=lambda f: {"items": {"non_positive_price": 1}, "events": {"unknown_item_id": f["victim_events"]}},
    ),
    Case(
        "duplicate_event_ids",
        duplicate_event_ids,
        quarantined=lambda f: {"events": {"duplicate_event_id": f["duplicates"] - f["base_duplicates"]}},
    ),
    Case("future_timestamps", future_timestamps, quarantined=lambda f: {"events": {"future_timestamp": 5}}),
    Case("unknown_user_in_orders", unknown_user_in_orders, quarantined=lambda f: {"orders": {"unknown_user_id": 2}}),
    Case("empty_partition", empty_partition, stop_message=r"table 'events' dt=2026-10-07 has files but zero rows"),
    Case(
        "truncated_file",
        truncated_file,
        stop_message=r"orders/dt=2026-10-07/part-0.parquet: not a readable Parquet file",
    ),
    Case(
        "invalid_promo_type",
        invalid_promo_type,
        quarantined=lambda f: _nonzero(
            {
                "promotions": {"invalid_promo_type": 1},
                "orders": {"unknown_promo_id": f["orders"]},
                "exposures": {"unknown_promo_id": f["exposures"]},
            }
        ),
    ),
    Case(
        "propensity_outside_0_1", propensity_outside, quarantined=lambda f: {"exposures": {"propensity_outside_0_1": 1}}
    ),
]


def _quarantined_tonight(root: Path) -> dict:
    """Reasons and counts of rows quarantined by night D+1 (the warehouse's quarantine table)."""
    from promoflow.settings import Settings
    from promoflow.warehouse import Warehouse

    with Warehouse(Settings.from_env(env=_env(root))) as wh:
        rows = wh.query(
            "select table_name, quarantine_reason, count(*) from raw.quarantine where run_date = ? group by 1, 2",
            [NEXT],
        )
    out: dict = {}
    for table, reason, n in rows:
        out.setdefault(table, {})[reason] = n
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_landing(case: Case, published_night, tmp_path):
    from promoflow.ingest import DataQualityError
    from promoflow.stages import ingest_validate

    root = tmp_path / "night"
    shutil.copytree(published_night["root"], root, symlinks=True)
    for table in DAY_TABLES:
        shutil.copytree(published_night["aside"] / table, root / "raw" / table / NEW_DAY)
    events = pa.concat_tables([_read(p) for p in _day_files(root / "raw", "events")])
    base_duplicates = events.num_rows - len(pc.unique(events["event_id"]))  # the generator's own duplicates
    facts = {"base_duplicates": base_duplicates, **case.corrupt(root / "raw")}

    state = run_night(published_night["dag"], NEXT, _env(root))

    if case.stop_message:
        assert state == "failed"
        with pytest.raises(DataQualityError, match=case.stop_message) as stopped:
            ingest_validate(NEXT.isoformat())  # the same paragraph the task logged
        assert "previously published assignments and exports were not touched" in str(stopped.value)
    else:
        assert state == "success"
        expected = case.quarantined(facts)
        events_expected = expected.setdefault("events", {})
        events_expected["duplicate_event_id"] = events_expected.get("duplicate_event_id", 0) + base_duplicates
        assert _quarantined_tonight(root) == _nonzero(expected)
    assert published_rows(_env(root), PUBLISHED) == published_night["rows"]
    assert export_files(root, PUBLISHED) == published_night["export"]


def test_redis_down_with_skip_still_publishes_from_the_offline_store(published_night, tmp_path):
    """Redis unreachable during materialisation with PROMO_ONLINE_STORE_ON_FAILURE=skip: the night publishes."""
    import json
    import socket

    root = tmp_path / "night"
    shutil.copytree(published_night["root"], root, symlinks=True)
    for table in DAY_TABLES:
        shutil.copytree(published_night["aside"] / table, root / "raw" / table / NEW_DAY)
    with socket.socket() as s:  # a port nobody listens on: Redis is down
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    env = {
        **_env(root),
        "PROMO_FEAST_ONLINE_STORE": "redis",
        "PROMO_REDIS_URL": f"127.0.0.1:{closed}",
        "PROMO_ONLINE_STORE_ON_FAILURE": "skip",
    }
    with restored_environ(env):
        assert run_night(published_night["dag"], NEXT, env) == "success"
    rows = published_rows(env, NEXT)
    assert len(rows) == len(published_night["rows"])  # every user has tonight's row
    summary = json.loads((root / "data" / "runs" / f"run_date={NEXT.isoformat()}" / "summary.json").read_text())
    assert summary["users"] == len(rows)
    assert published_rows(_env(root), PUBLISHED) == published_night["rows"]
    assert export_files(root, PUBLISHED) == published_night["export"]


def test_a_night_whose_orders_have_not_landed_runs_on_what_it_has_and_says_so(published_night, tmp_path):
    """Yesterday's orders late (feedback not landed): the night publishes and its summary names the day."""
    import json

    root = tmp_path / "night"
    shutil.copytree(published_night["root"], root, symlinks=True)
    for table in DAY_TABLES:
        if table != "orders":
            shutil.copytree(published_night["aside"] / table, root / "raw" / table / NEW_DAY)
    assert run_night(published_night["dag"], NEXT, _env(root)) == "success"
    assert len(published_rows(_env(root), NEXT)) == len(published_night["rows"])
    summary = json.loads((root / "data" / "runs" / f"run_date={NEXT.isoformat()}" / "summary.json").read_text())
    assert summary["missing_partitions"] == {"orders": [NEW_DAY]}
    assert published_rows(_env(root), PUBLISHED) == published_night["rows"]
