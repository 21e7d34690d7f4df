"""Hostile landings nobody here wrote: each case is quarantined with a reason or stops the night with a paragraph.

A module fixture publishes night D (2026-10-03) of the tiny landing through the real
ingest, load and publish stages (DuckDB warehouse, local export). Each case copies
that state, lands a hostile next day (dt=2026-10-03) or snapshot, and runs night
D+1's ``ingest`` and ``load_lake``. Row-level problems are quarantined with a
reason and the stages complete; table-level problems raise one
``DataQualityError`` paragraph before anything is loaded. Either way, night D's
published rows and export files stay byte-identical.

The ten corrupted landings that run the whole DAG are in
``tests/e2e/test_bad_landings_e2e.py``.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import landing_factory as lf
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from promoflow.decisions import staged_assignments_path
from promoflow.ingest import DataQualityError, ingest, user_key
from promoflow.load import load_lake
from promoflow.publish import export_uri, publish
from promoflow.settings import Settings
from promoflow.warehouse import Warehouse

PUBLISHED = lf.RUN_DATE  # 2026-10-03
NEXT = PUBLISHED + timedelta(days=1)
NEW_DAY = PUBLISHED  # the partition that is new on night NEXT
DT = f"dt={NEW_DAY.isoformat()}"
ROWS = 100  # rows per table of the new day: a couple of bad rows stay under the 5% share
SECRET = "hostile-secret"


def _settings(root: Path, **env: str) -> Settings:
    return Settings.from_env(
        env={
            "PROMO_DATA_DIR": str(root / "data"),
            "PROMO_RAW_URI": str(root / "raw"),
            "PROMO_USER_KEY_SECRET": SECRET,
            "PROMO_HOLDOUT_SHARE": "0",
            "PROMO_BUDGET": "10",
            **env,
        }
    )


# ----------------------------------------------------------------- the new day's rows
def events(day: date, n: int = ROWS, users: tuple[str, ...] = ("u2", "u3")) -> pa.Table:
    return pa.table(
        {
            "event_id": [f"h{day.day}_{i}" for i in range(n)],
            "user_id": [users[i % len(users)] for i in range(n)],
            "item_id": pa.array(["i1" if i % 3 else None for i in range(n)], pa.string()),
            "event_type": ["view" if i % 3 else "search" for i in range(n)],
            "event_ts": pa.array([lf.ts(day, 1 + i % 22, i % 60) for i in range(n)], pa.timestamp("us", tz="UTC")),
            "session_id": [f"s{i // 5}" for i in range(n)],
            "query": pa.array([None if i % 3 else "shoes" for i in range(n)], pa.string()),
        }
    )


def orders(day: date, n: int = ROWS) -> pa.Table:
    return pa.table(
        {
            "order_id": [f"ho{day.day}_{i}" for i in range(n)],
            "user_id": [("u2", "u3")[i % 2] for i in range(n)],
            "order_ts": pa.array([lf.ts(day, 1 + i % 22, i % 60) for i in range(n)], pa.timestamp("us", tz="UTC")),
            "gross_amount": [40.0 + i for i in range(n)],
            "discount_amount": [4.0] * n,
            "cogs": [15.0] * n,
            "shipping_fee": [4.0] * n,
            "promo_id": pa.array(["p_pct10" if i % 4 == 0 else None for i in range(n)], pa.string()),
            "n_items": pa.array([1 + i % 3 for i in range(n)], pa.int32()),
        }
    )


def exposures(day: date, n: int = ROWS) -> pa.Table:
    return pa.table(
        {
            "user_id": [("u2", "u3")[i % 2] for i in range(n)],
            "promo_id": [("p_pct10", "p_ship", "none")[i % 3] for i in range(n)],
            "sent_ts": pa.array([lf.ts(day, i % 24, i % 60) for i in range(n)], pa.timestamp("us", tz="UTC")),
            "channel": ["email"] * n,
            "propensity": [0.3] * n,
            "policy_version": ["other-system-v9"] * n,
        }
    )


def catalogue(extra: list[dict] | None = None) -> pa.Table:
    """The 2 promos of the tiny landing plus 6 more: an 8-row catalogue, as in the issue."""
    base = lf.promotions().to_pylist()
    more = [dict(base[0], promo_id=f"p_more{i}", value=5.0 + i) for i in range(6)]
    return pa.Table.from_pylist(base + more + (extra or []), schema=lf.promotions().schema)


def _day_folder(raw: Path, table: str) -> Path:
    return raw / table / DT


def _write_day(raw: Path, table: str, data: pa.Table, name: str = "part-0.parquet") -> Path:
    folder = _day_folder(raw, table)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, folder / name)
    return folder / name


def land_next_day(raw: Path) -> None:
    for table, data in (("events", events(NEW_DAY)), ("orders", orders(NEW_DAY)), ("exposures", exposures(NEW_DAY))):
        shutil.rmtree(_day_folder(raw, table), ignore_errors=True)
        _write_day(raw, table, data)
    pq.write_table(catalogue(), raw / "promotions" / "promotions.parquet")


def _with(table: pa.Table, row: int, **values) -> pa.Table:
    rows = table.to_pylist()
    rows[row] = {**rows[row], **values}
    return pa.Table.from_pylist(rows, schema=table.schema)


# ------------------------------------------------------------------ the published night
def _stage(settings: Settings, run_date: date) -> None:
    with Warehouse(settings) as wh:
        users = wh.query("select user_id, user_key from raw.users order by user_id")
    n = len(users)
    table = pa.table(
        {
            "run_date": pa.array([run_date] * n, pa.date32()),
            "user_key": [k for _, k in users],
            "user_id": [u for u, _ in users],
            "promo_id": ["p_pct10"] * n,
            "channel": ["email"] * n,
            "send_hour": pa.array([9] * n, pa.int32()),
            "message": ["10% off"] * n,
            "featured_item_ids": ["i1"] * n,
            "expected_incremental_margin": [1.5] * n,
            "expected_cost": [0.5] * n,
            "propensity": [0.9] * n,
            "is_holdout": [False] * n,
            "is_exploration": [False] * n,
            "reason": ["uplift"] * n,
            "policy_version": ["v"] * n,
            "model_version": ["m"] * n,
        }
    )
    path = staged_assignments_path(settings, run_date)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def published_state(settings: Settings) -> tuple[list[tuple], dict[str, bytes]]:
    with Warehouse(settings) as wh:
        rows = wh.query("select * from promo_assignments where run_date = ? order by user_id", [PUBLISHED])
        runs = wh.query("select * from promo_runs where run_date = ?", [PUBLISHED])
    folder = Path(export_uri(settings, PUBLISHED))
    return rows + runs, {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_published")
    lf.write_landing(root / "raw")
    settings = _settings(root)
    ingest(settings, PUBLISHED)
    load_lake(settings, PUBLISHED)
    _stage(settings, PUBLISHED)
    publish(settings, PUBLISHED)
    rows, export = published_state(settings)
    assert len(rows) == 4 and set(export) == {"promo_assignments.parquet", "promo_assignments.csv", "_SUCCESS"}
    return root, rows, export


# ------------------------------------------------------------------------- the cases
@dataclass
class Case:
    name: str
    land: Callable[[Path], None]  # writes the hostile input into raw/ (after the clean next day is landed)
    quarantined: dict | None = None  # {table: {reason: count}} tonight, when the night goes on
    stop: str | None = None  # regex of the stop paragraph
    check: Callable[[Settings, dict], None] | None = None  # further assertions on the summary / lake
    env: dict | None = None


def event_type_outside_enum(raw):
    data = _with(_with(events(NEW_DAY), 1, event_type="VIEW"), 2, event_type="wishlist")
    _write_day(raw, "events", data)


def discount_three_times_gross(raw):
    _write_day(raw, "orders", _with(orders(NEW_DAY), 0, gross_amount=20.0, discount_amount=60.0))


def nan_and_inf_amounts(raw):
    _write_day(raw, "orders", _with(_with(orders(NEW_DAY), 0, gross_amount=float("nan")), 1, gross_amount=float("inf")))


def nan_cogs_and_negative_inf_fee(raw):
    _write_day(raw, "orders", _with(_with(orders(NEW_DAY), 0, cogs=float("nan")), 1, shipping_fee=float("-inf")))


def _bad_promo(**values):
    def land(raw):
        pq.write_table(
            catalogue([dict(lf.promotions().to_pylist()[0], promo_id="p_bad", **values)]),
            raw / "promotions" / "promotions.parquet",
        )

    return land


def duplicate_promo_ids(raw):
    pq.write_table(
        catalogue([dict(lf.promotions().to_pylist()[0], value=99.0)]), raw / "promotions" / "promotions.parquet"
    )


def unknown_promo_in_exposures(raw):
    _write_day(raw, "exposures", _with(exposures(NEW_DAY), 0, promo_id="p_from_elsewhere"))


def sent_ts_outside_partition(raw):
    _write_day(raw, "exposures", _with(exposures(NEW_DAY), 0, sent_ts=lf.ts(NEW_DAY - timedelta(days=2), 12)))


def extra_columns(raw):
    data = events(NEW_DAY)
    data = data.append_column("tracking_pixel", pa.array(["x"] * data.num_rows)).append_column(
        "score", pa.array([1.0] * data.num_rows)
    )
    _write_day(raw, "events", data)


def naive_timestamps(raw):
    data = events(NEW_DAY)
    naive = data.column("event_ts").cast(pa.timestamp("us"))
    _write_day(raw, "events", data.set_column(data.schema.get_field_index("event_ts"), "event_ts", naive))


def check_naive_read_as_utc(settings, summary):
    clean = pq.read_table(Path(settings.lake_dir) / "clean" / "events" / DT / "part-0.parquet").sort_by("event_id")
    expected = events(NEW_DAY).sort_by("event_id")
    assert clean.column("event_ts").to_pylist() == expected.column("event_ts").to_pylist()


def non_utc_offsets(raw):
    # Berlin local times (UTC+2 in October): 01:30+02:00 is the previous UTC day.
    lines = ["event_id,user_id,item_id,event_type,event_ts,session_id,query"]
    for i in range(ROWS):
        stamp = f"{NEW_DAY.isoformat()}T{2 + i % 20:02d}:15:00+02:00"
        lines.append(f"z{i},u2,i1,view,{stamp},s{i},")
    lines.append(f"z_prev,u3,i1,view,{NEW_DAY.isoformat()}T01:30:00+02:00,s_prev,")
    shutil.rmtree(_day_folder(raw, "events"))
    _day_folder(raw, "events").mkdir()
    (_day_folder(raw, "events") / "berlin.csv").write_text("\n".join(lines) + "\n")


def check_offsets_in_utc(settings, summary):
    clean = pq.read_table(Path(settings.lake_dir) / "clean" / "events" / DT / "part-0.parquet")
    first = clean.filter(pa.compute.equal(clean["event_id"], "z0"))
    assert first.column("event_ts").to_pylist() == [datetime(2026, 10, 3, 0, 15, tzinfo=UTC)]


def csv_with_crlf(raw):
    buffer = pa.BufferOutputStream()
    pacsv.write_csv(orders(NEW_DAY), buffer)
    text = buffer.getvalue().to_pybytes().decode().replace("\n", "\r\n")
    shutil.rmtree(_day_folder(raw, "orders"))
    _day_folder(raw, "orders").mkdir()
    (_day_folder(raw, "orders") / "orders.csv").write_bytes(text.encode())


def check_crlf_values(settings, summary):
    clean = pq.read_table(Path(settings.lake_dir) / "clean" / "orders" / DT / "part-0.parquet").sort_by("order_id")
    assert (
        clean.num_rows == ROWS
        and clean.column("n_items").to_pylist() == orders(NEW_DAY).sort_by("order_id").column("n_items").to_pylist()
    )
    assert not any("\r" in (v or "") for v in clean.column("promo_id").to_pylist())


def users_csv_with_bom(raw):
    buffer = pa.BufferOutputStream()
    pacsv.write_csv(lf.users(), buffer)
    (raw / "users" / "users.parquet").unlink()
    (raw / "users" / "users.csv").write_bytes(b"\xef\xbb\xbf" + buffer.getvalue().to_pybytes())


def check_users_keyed(settings, summary):
    users = pq.read_table(Path(settings.lake_dir) / "clean" / "users" / "users.parquet")
    assert users.column("user_id").to_pylist() == ["u1", "u2", "u3"]
    assert users.column("user_key").to_pylist()[0] == user_key("u1", SECRET)


def unicode_user_ids(raw):
    users = lf.users().to_pylist() + [dict(lf.users().to_pylist()[0], user_id="李-ü_😀")]
    pq.write_table(pa.Table.from_pylist(users, schema=lf.users().schema), raw / "users" / "users.parquet")
    _write_day(raw, "events", events(NEW_DAY, users=("u2", "李-ü_😀")))


def check_unicode_user(settings, summary):
    users = pq.read_table(Path(settings.lake_dir) / "clean" / "users" / "users.parquet").to_pylist()
    assert {u["user_id"]: u["user_key"] for u in users}["李-ü_😀"] == user_key("李-ü_😀", SECRET)


def csv_user_ids_with_leading_zeros(raw):
    users = lf.users().to_pylist() + [dict(lf.users().to_pylist()[0], user_id="007")]
    buffer = pa.BufferOutputStream()
    pacsv.write_csv(pa.Table.from_pylist(users, schema=lf.users().schema), buffer)
    (raw / "users" / "users.parquet").unlink()
    (raw / "users" / "users.csv").write_bytes(buffer.getvalue().to_pybytes())
    _write_day(raw, "events", events(NEW_DAY, users=("u2", "007")))


def two_hundred_files(raw):
    data = events(NEW_DAY, n=400)
    shutil.rmtree(_day_folder(raw, "events"))
    for i in range(200):
        _write_day(raw, "events", data.slice(2 * i, 2), name=f"part-{i:05d}.parquet")


def ten_thousand_tiny_files(raw):
    data = events(NEW_DAY, n=10_000)
    shutil.rmtree(_day_folder(raw, "events"))
    folder = _day_folder(raw, "events")
    folder.mkdir()
    for i in range(10_000):
        pq.write_table(data.slice(i, 1), folder / f"part-{i:05d}.parquet")


def check_rows(table: str, n: int):
    def check(settings, summary):
        assert DT in summary[table]["ingested"]
        assert pq.read_metadata(Path(settings.lake_dir) / "clean" / table / DT / "part-0.parquet").num_rows == n

    return check


def file_name_with_a_quote(raw):
    (_day_folder(raw, "orders") / "part-0.parquet").rename(_day_folder(raw, "orders") / "o'brien; drop table x.parquet")


def null_propensities_from_another_system(raw):
    data = exposures(NEW_DAY)
    n = data.num_rows
    data = data.set_column(data.schema.get_field_index("propensity"), "propensity", pa.nulls(n, pa.float64()))
    data = data.set_column(data.schema.get_field_index("policy_version"), "policy_version", pa.nulls(n, pa.string()))
    _write_day(raw, "exposures", data)


def check_null_propensities_kept(settings, summary):
    clean = pq.read_table(Path(settings.lake_dir) / "clean" / "exposures" / DT / "part-0.parquet")
    assert clean.num_rows == ROWS and clean.column("propensity").null_count == ROWS


def late_partition(raw):
    # a day before every night that ran: it was never delivered until now
    late = NEW_DAY - timedelta(days=3)
    folder = raw / "orders" / f"dt={late.isoformat()}"
    folder.mkdir()
    pq.write_table(orders(late, n=10), folder / "part-0.parquet")


def check_late_named(settings, summary):
    assert summary["orders"]["late"] == ["dt=2026-09-30"]
    assert summary["orders"]["redelivered"] == [] and summary["events"]["late"] == []
    assert (Path(settings.lake_dir) / "clean" / "orders" / "dt=2026-09-30" / "part-0.parquet").exists()


def users_snapshot_drops_live_offer_holder(raw):
    # u1 got p_pct10 (valid 7 days) on 2026-10-02: still redeemable on 2026-10-04
    users = [u for u in lf.users().to_pylist() if u["user_id"] != "u1"]
    pq.write_table(pa.Table.from_pylist(users, schema=lf.users().schema), raw / "users" / "users.parquet")
    _write_day(raw, "events", _with(events(NEW_DAY), 0, user_id="u1"))


def check_dropped_counted(settings, summary):
    assert summary["users"]["dropped_users_with_live_offer"] == 1
    with Warehouse(settings) as wh:
        assert wh.query("select count(*) from raw.users where user_id = 'u1'") == [(0,)]


def unexpected_file_type(raw):
    (_day_folder(raw, "orders") / "orders.json").write_text("{}")


def partition_folder_not_a_date(raw):
    (raw / "events" / "dt=yesterday").mkdir()


def item_price_nan(raw):
    items = lf.items().to_pylist()
    items[1]["price"] = float("nan")
    pq.write_table(pa.Table.from_pylist(items, schema=lf.items().schema), raw / "items" / "items.parquet")


def _stop(table: str, key: str, reason: str) -> str:
    return rf"rows of table '{table}' snapshot break the contract.*Offending rows: {key} \({reason}\).*the {table} snapshot .* is what to fix"


CASES = [
    Case("event_type_outside_enum", event_type_outside_enum, quarantined={"events": {"invalid_event_type": 2}}),
    Case("discount_three_times_gross", discount_three_times_gross, quarantined={"orders": {"discount_over_gross": 1}}),
    Case("nan_and_inf_gross_amount", nan_and_inf_amounts, quarantined={"orders": {"non_finite_gross_amount": 2}}),
    Case(
        "nan_cogs_and_negative_inf_fee",
        nan_cogs_and_negative_inf_fee,
        quarantined={"orders": {"non_finite_cogs": 1, "non_finite_shipping_fee": 1}},
    ),
    Case(
        "promo_valid_days_zero",
        _bad_promo(valid_days=0),
        stop=_stop("promotions", "promo_id='p_bad'", "non_positive_valid_days"),
    ),
    Case(
        "promo_percent_off_150",
        _bad_promo(value=150.0),
        stop=_stop("promotions", "promo_id='p_bad'", "percent_over_100"),
    ),
    Case(
        "promo_named_none",
        lambda raw: _bad_promo()(raw) or _rename_bad_promo(raw, "none"),
        stop=_stop("promotions", "promo_id='none'", "reserved_promo_id_none"),
    ),
    Case(
        "promo_channel_outside_enum",
        _bad_promo(channel="fax"),
        stop=_stop("promotions", "promo_id='p_bad'", "invalid_channel"),
    ),
    Case(
        "promo_negative_max_discount",
        _bad_promo(max_discount=-5.0),
        stop=_stop("promotions", "promo_id='p_bad'", "negative_value"),
    ),
    Case(
        "promo_value_nan",
        _bad_promo(value=float("nan")),
        stop=_stop("promotions", "promo_id='p_bad'", "non_finite_value"),
    ),
    Case("item_price_nan", item_price_nan, stop=_stop("items", "item_id='i2'", "non_finite_price")),
    Case("duplicate_promo_ids", duplicate_promo_ids, quarantined={"promotions": {"duplicate_promo_id": 1}}),
    Case("unknown_promo_in_exposures", unknown_promo_in_exposures, quarantined={"exposures": {"unknown_promo_id": 1}}),
    Case(
        "sent_ts_outside_partition",
        sent_ts_outside_partition,
        quarantined={"exposures": {"sent_ts_outside_partition_day": 1}},
    ),
    Case("extra_columns", extra_columns, quarantined={}, check=check_rows("events", ROWS)),
    Case("naive_timestamps_are_utc", naive_timestamps, quarantined={}, check=check_naive_read_as_utc),
    Case(
        "non_utc_offsets",
        non_utc_offsets,
        quarantined={"events": {"event_ts_outside_partition_day": 1}},
        check=check_offsets_in_utc,
    ),
    Case("csv_with_crlf", csv_with_crlf, quarantined={}, check=check_crlf_values),
    Case("users_csv_with_bom", users_csv_with_bom, quarantined={}, check=check_users_keyed),
    Case("unicode_user_ids", unicode_user_ids, quarantined={}, check=check_unicode_user),
    Case(
        "csv_user_ids_with_leading_zeros",
        csv_user_ids_with_leading_zeros,
        quarantined={},
        check=check_rows("events", ROWS),
    ),
    Case("two_hundred_files", two_hundred_files, quarantined={}, check=check_rows("events", 400)),
    Case("ten_thousand_tiny_files", ten_thousand_tiny_files, quarantined={}, check=check_rows("events", 10_000)),
    Case("file_name_with_a_quote", file_name_with_a_quote, quarantined={}, check=check_rows("orders", ROWS)),
    Case(
        "null_propensities_from_another_system",
        null_propensities_from_another_system,
        quarantined={},
        check=check_null_propensities_kept,
    ),
    Case("late_partition", late_partition, quarantined={}, check=check_late_named),
    Case(
        "users_snapshot_drops_live_offer_holder",
        users_snapshot_drops_live_offer_holder,
        quarantined={"events": {"unknown_user_id": 1}},
        check=check_dropped_counted,
    ),
    Case(
        "unexpected_file_type",
        unexpected_file_type,
        stop=r"orders/dt=2026-10-03/orders.json: unexpected file in the landing zone",
    ),
    Case(
        "partition_folder_not_a_date",
        partition_folder_not_a_date,
        stop=r"events/dt=yesterday: partition folder name is not dt=YYYY-MM-DD",
    ),
]


def _rename_bad_promo(raw: Path, new_id: str) -> None:
    path = raw / "promotions" / "promotions.parquet"
    promos = pq.read_table(path)
    ids = pa.compute.if_else(pa.compute.equal(promos["promo_id"], "p_bad"), new_id, promos["promo_id"])
    pq.write_table(promos.set_column(0, "promo_id", ids), path)


def _quarantined_tonight(settings: Settings) -> dict:
    with Warehouse(settings) as wh:
        if not wh.table_exists("raw", "quarantine"):
            return {}
        rows = wh.query(
            "select table_name, quarantine_reason, count(*) from raw.quarantine where run_date = ? group by 1, 2",
            [NEXT],
        )
    out: dict = {}
    for table, reason, n in rows:
        out.setdefault(table, {})[reason] = n
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case: Case, published, tmp_path, caplog):
    template, rows_before, export_before = published
    root = tmp_path / "night"
    shutil.copytree(template, root)
    land_next_day(root / "raw")
    case.land(root / "raw")
    settings = _settings(root, **(case.env or {}))

    if case.stop:
        with pytest.raises(DataQualityError, match=case.stop) as stopped:
            ingest(settings, NEXT)
        assert "previously published assignments and exports were not touched" in str(stopped.value)
        assert "Traceback" not in str(stopped.value)
    else:
        with caplog.at_level(logging.WARNING, logger="promoflow.ingest"):
            summary = ingest(settings, NEXT)
        load_lake(settings, NEXT)
        assert _quarantined_tonight(settings) == case.quarantined
        if case.check:
            case.check(settings, summary)
        if case.name == "late_partition":
            assert "orders dt=2026-09-30 landed late" in caplog.text
        if case.name == "users_snapshot_drops_live_offer_holder":
            assert "1 of them hold an offer that is still redeemable" in caplog.text
    assert published_state(settings) == (rows_before, export_before)
