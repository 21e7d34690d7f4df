"""Ingest: typed clean copies, quarantine rows with reasons, stops on table-level problems."""

from __future__ import annotations

import landing_factory as lf
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from promoflow.ingest import DataQualityError, ingest, user_key


def _quarantine(settings, table, day):
    path = f"{settings.lake_dir}/quarantine/{table}/dt={day.isoformat()}/part-0.parquet"
    return pq.read_table(path).to_pylist()


def test_clean_landing_ingests_every_partition_and_keys_users(tmp_path, settings_for):
    settings = settings_for(lf.write_landing(tmp_path / "raw"))
    summary = ingest(settings, lf.RUN_DATE)
    assert summary["events"] == {
        "partitions": 2,
        "partitions_ingested": 2,
        "rows_in": 8,
        "rows_clean": 8,
        "rows_quarantined": 0,
        "reasons": {},
        "ingested": ["dt=2026-10-01", "dt=2026-10-02"],
        "redelivered": [],
        "late": [],
    }
    users = pq.read_table(f"{settings.lake_dir}/clean/users/users.parquet")
    assert users.column("user_key").to_pylist()[0] == user_key("u1", "test-secret")
    exposures = pq.read_table(f"{settings.lake_dir}/clean/exposures/dt=2026-10-01/part-0.parquet")
    assert exposures.schema.field("sent_ts").type == pa.timestamp("us", tz="UTC")
    assert len(set(exposures.column("exposure_id").to_pylist())) == 2


def test_rerun_skips_unchanged_partitions_and_reingests_a_changed_one(tmp_path, settings_for):
    raw = lf.write_landing(tmp_path / "raw")
    settings = settings_for(raw)
    ingest(settings, lf.RUN_DATE)
    assert ingest(settings, lf.RUN_DATE)["events"]["partitions_ingested"] == 0
    lf.replace_file(raw / "events" / "dt=2026-10-02" / "part-0.parquet", lf.events(lf.DAYS[1], prefix="x"))
    again = ingest(settings, lf.RUN_DATE)
    assert again["events"]["partitions_ingested"] == 1


def test_duplicate_event_ids_across_files_are_dropped_and_recorded(tmp_path, settings_for):
    raw = lf.write_landing(tmp_path / "raw")
    pq.write_table(lf.events(lf.DAYS[1]).slice(0, 2), raw / "events" / "dt=2026-10-02" / "part-1.parquet")
    settings = settings_for(raw)
    summary = ingest(settings, lf.RUN_DATE)
    assert summary["events"]["rows_clean"] == 8
    assert summary["events"]["reasons"] == {"duplicate_event_id": 2}
    rows = _quarantine(settings, "events", lf.DAYS[1])
    assert {r["source_file"].rsplit("/", 1)[1] for r in rows} == {"part-1.parquet"}


def test_unknown_user_and_future_timestamp_rows_are_quarantined_with_reasons(tmp_path, settings_for):
    raw = lf.write_landing(tmp_path / "raw")
    orders = lf.orders(lf.DAYS[1]).to_pylist()
    ghost = dict(orders[0], order_id="o_ghost", user_id="u_missing")
    late = dict(orders[0], order_id="o_late", order_ts=lf.ts(lf.RUN_DATE, 1))
    table = pa.Table.from_pylist(
        orders + [ghost, late] + [dict(orders[0], order_id=f"o_ok{i}") for i in range(40)],
        schema=lf.orders(lf.DAYS[1]).schema,
    )
    lf.replace_file(raw / "orders" / "dt=2026-10-02" / "part-0.parquet", table)
    settings = settings_for(raw)
    summary = ingest(settings, lf.RUN_DATE)
    assert summary["orders"]["reasons"] == {"unknown_user_id": 1, "future_timestamp": 1}
    reasons = {r["quarantine_reason"]: r["record"] for r in _quarantine(settings, "orders", lf.DAYS[1])}
    assert "u_missing" in reasons["unknown_user_id"]


def test_negative_price_item_is_quarantined_and_its_events_follow(tmp_path, settings_for):
    raw = lf.write_landing(tmp_path / "raw")
    items = lf.items().to_pylist()
    items[2]["price"] = -1.0
    lf.replace_file(raw / "items" / "items.parquet", pa.Table.from_pylist(items, schema=lf.items().schema))
    settings = settings_for(raw, max_bad_row_share=0.5)
    summary = ingest(settings, lf.RUN_DATE)
    assert summary["items"]["reasons"] == {"non_positive_price": 1}
    assert summary["events"]["reasons"] == {"unknown_item_id": 2}


def test_too_many_bad_rows_stop_the_run_with_the_reason(tmp_path, settings_for):
    raw = lf.write_landing(tmp_path / "raw")
    bad = lf.exposures(lf.DAYS[0]).set_column(4, "propensity", pa.array([1.5, 0.0]))
    lf.replace_file(raw / "exposures" / "dt=2026-10-01" / "part-0.parquet", bad)
    with pytest.raises(DataQualityError, match=r"2 of 2 rows .*propensity_outside_0_1"):
        ingest(settings_for(raw), lf.RUN_DATE)


def test_missing_column_stops_naming_file_and_column(tmp_path, settings_for):
    raw = lf.write_landing(tmp_path / "raw")
    lf.replace_file(raw / "orders" / "dt=2026-10-01" / "part-0.parquet", lf.orders(lf.DAYS[0]).drop_columns(["cogs"]))
    with pytest.raises(
        DataQualityError, match=r"orders/dt=2026-10-01/part-0.parquet: table 'orders' is missing column\(s\) \['cogs'\]"
    ):
        ingest(settings_for(raw), lf.RUN_DATE)


def test_truncated_parquet_file_stops_with_its_path(tmp_path, settings_for):
    raw = lf.write_landing(tmp_path / "raw")
    path = raw / "events" / "dt=2026-10-01" / "part-0.parquet"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataQualityError, match=r"events/dt=2026-10-01/part-0.parquet: not a readable Parquet file"):
        ingest(settings_for(raw), lf.RUN_DATE)


def test_missing_latest_events_partition_stops(tmp_path, settings_for):
    raw = lf.write_landing(tmp_path / "raw")
    with pytest.raises(DataQualityError, match=r"no events partition for 2026-10-03"):
        ingest(settings_for(raw), lf.day_after(lf.RUN_DATE))


def test_data_at_or_after_run_date_is_never_read(tmp_path, settings_for):
    raw = lf.write_landing(tmp_path / "raw")
    future = raw / "events" / f"dt={lf.RUN_DATE.isoformat()}"
    future.mkdir()
    (future / "part-0.parquet").write_bytes(b"not parquet at all")
    summary = ingest(settings_for(raw), lf.RUN_DATE)
    assert summary["events"]["partitions"] == 2


def test_rotating_the_user_key_secret_rekeys_every_user_on_the_next_run(tmp_path, settings_for):
    import dataclasses

    from promoflow.load import load_lake
    from promoflow.warehouse import Warehouse

    settings = settings_for(lf.write_landing(tmp_path / "raw"))
    ingest(settings, lf.RUN_DATE)
    load_lake(settings, lf.RUN_DATE)
    rotated = dataclasses.replace(settings, user_key_secret="rotated-secret")
    summary = ingest(rotated, lf.RUN_DATE)  # the landing did not change; the key did
    assert summary["users"]["partitions_ingested"] == 1 and summary["events"]["partitions_ingested"] == 0
    load_lake(rotated, lf.RUN_DATE)
    with Warehouse(rotated) as wh:
        keys = dict(wh.query("select user_id, user_key from raw.users"))
    assert keys == {u: user_key(u, "rotated-secret") for u in ("u1", "u2", "u3")}
    assert ingest(rotated, lf.RUN_DATE)["users"]["partitions_ingested"] == 0  # and only once


def test_the_user_key_secret_is_never_logged_or_written(tmp_path, settings_for, caplog):
    import logging

    from promoflow.load import load_lake

    secret = "s3cr3t-" + "x" * 20
    settings = settings_for(lf.write_landing(tmp_path / "raw"), user_key_secret=secret)
    with caplog.at_level(logging.DEBUG):
        summary = ingest(settings, lf.RUN_DATE)
        load_lake(settings, lf.RUN_DATE)
        logging.getLogger("promoflow").info("settings: %r", settings)
    assert secret not in caplog.text and secret not in repr(settings) and secret not in str(summary)
    written = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert written and not [p for p in written if secret.encode() in p.read_bytes()]


def test_a_night_whose_orders_have_not_landed_runs_and_names_the_missing_day(tmp_path, settings_for):
    import shutil

    raw = lf.write_landing(tmp_path / "raw")
    shutil.rmtree(raw / "orders" / f"dt={lf.DAYS[1].isoformat()}")
    summary = ingest(settings_for(raw), lf.RUN_DATE)
    assert summary["orders"]["missing"] == [f"dt={lf.DAYS[1].isoformat()}"]
    assert summary["orders"]["ingested"] == [f"dt={lf.DAYS[0].isoformat()}"]
    assert summary["exposures"]["missing"] == []
    assert "missing" not in summary["events"]  # a missing events day stops the night instead
