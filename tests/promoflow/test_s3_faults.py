"""S3 failing or timing out mid-ingest and mid-export, on loopback.

boto3 talks to the moto server through ``fault_proxy.FaultProxy``, which answers chosen
requests with 503, drops their connection or never answers. Transient faults are
retried with backoff and the stage completes with the same result; faults that outlast
the retries stop the stage with one paragraph, never leaving a partial lake partition
or an export folder with ``_SUCCESS`` that is not complete.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import boto3
import landing_factory as lf
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fault_proxy import FaultProxy, Rule

from promoflow.decisions import staged_assignments_path
from promoflow.ingest import ingest
from promoflow.publish import publish
from promoflow.settings import Settings
from promoflow.storage import StorageUnavailableError
from promoflow.warehouse import RAW_SCHEMA, Warehouse


@pytest.fixture
def proxy(moto_endpoint):
    p = FaultProxy(moto_endpoint, hang_s=5)
    yield p
    p.stop()


def _upload_tree(client, local: Path, bucket: str, prefix: str) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(local).as_posix()}")


def _settings(tmp_path: Path, proxy: FaultProxy, **env: str) -> Settings:
    return Settings.from_env(
        env={
            "PROMO_DATA_DIR": str(tmp_path / "data"),
            "PROMO_USER_KEY_SECRET": "test-secret",
            "PROMO_S3_ENDPOINT_URL": proxy.url,
            "PROMO_S3_TIMEOUT_S": "1",
            "PROMO_S3_MAX_ATTEMPTS": "4",
            **env,
        }
    )


@pytest.fixture
def s3_landing(s3_bucket, moto_endpoint, tmp_path):
    local = lf.write_landing(tmp_path / "landing")
    # a second file in the newest events partition, so a fault can strike mid-partition
    pq.write_table(lf.events(lf.DAYS[1], prefix="b"), local / "events" / "dt=2026-10-02" / "part-1.parquet")
    _upload_tree(boto3.client("s3", endpoint_url=moto_endpoint), local, s3_bucket, "raw")
    return f"s3://{s3_bucket}/raw"


def test_ingest_retries_503s_and_dropped_connections_and_completes(s3_landing, proxy, tmp_path):
    proxy.add(
        Rule("GET", r"/raw/events/dt=2026-10-02/part-1\.parquet$", "status", times=2),
        Rule("GET", r"/raw/orders/dt=2026-10-01/part-0\.parquet$", "reset", times=1),
        Rule("GET", r"^/b-[^/]+$", "status", times=1),  # a bucket listing
    )
    settings = _settings(tmp_path, proxy, PROMO_RAW_URI=s3_landing)
    summary = ingest(settings, lf.RUN_DATE)
    assert [r.hits for r in proxy.rules] == [2, 1, 1]  # the faults really happened
    assert summary["events"]["rows_clean"] == 12 and summary["orders"]["rows_clean"] == 2
    clean = pq.read_table(Path(settings.lake_dir) / "clean" / "events" / "dt=2026-10-02" / "part-0.parquet")
    assert sorted(clean.column("event_id").to_pylist()) == sorted(
        lf.events(lf.DAYS[1]).column("event_id").to_pylist()
        + lf.events(lf.DAYS[1], prefix="b").column("event_id").to_pylist()
    )


def test_ingest_timing_out_mid_partition_writes_none_of_it_and_the_rerun_completes(s3_landing, proxy, tmp_path):
    proxy.add(Rule("GET", r"/raw/events/dt=2026-10-02/part-1\.parquet$", "hang"))
    settings = _settings(tmp_path, proxy, PROMO_RAW_URI=s3_landing, PROMO_S3_MAX_ATTEMPTS="2")
    with pytest.raises(
        StorageUnavailableError,
        match=r"S3 download of s3://.*/raw/events/dt=2026-10-02/part-1\.parquet failed after 2 attempt",
    ) as err:
        ingest(settings, lf.RUN_DATE)
    assert "re-run the date" in str(err.value) and "Timeout" in str(err.value)
    assert proxy.rules[0].hits >= 2  # retried before giving up
    lake = Path(settings.lake_dir) / "clean"
    assert not (lake / "events" / "dt=2026-10-02").exists()
    assert not (lake / "_manifest" / "events" / "dt=2026-10-02.json").exists()
    assert not (lake / "events" / "dt=2026-10-01").exists()  # one table's partitions are written together

    proxy.clear()
    summary = ingest(settings, lf.RUN_DATE)
    assert summary["events"]["ingested"] == ["dt=2026-10-01", "dt=2026-10-02"] and summary["events"]["rows_clean"] == 12


# ------------------------------------------------------------------------------ export
RUN_DATE = date(2026, 10, 31)
USERS = [f"u{i:03d}" for i in range(40)]


def _stage(settings: Settings, run_date: date, promo: str) -> None:
    n = len(USERS)
    table = pa.table(
        {
            "run_date": pa.array([run_date] * n, pa.date32()),
            "user_key": [f"k{u}" for u in USERS],
            "user_id": USERS,
            "promo_id": [promo] * n,
            "channel": ["email"] * n,
            "send_hour": pa.array([9] * n, pa.int32()),
            "message": ["m"] * n,
            "featured_item_ids": ["i1"] * n,
            "expected_incremental_margin": [1.0] * n,
            "expected_cost": [0.5] * n,
            "propensity": [0.9] * n,
            "is_holdout": [False] * n,
            "is_exploration": [False] * n,
            "reason": ["r"] * n,
            "policy_version": ["v"] * n,
            "model_version": ["m"] * n,
        }
    )
    path = staged_assignments_path(settings, run_date)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _export_objects(client, bucket: str, run_date: date) -> dict[str, bytes]:
    prefix = f"export/promo_assignments/run_date={run_date.isoformat()}/"
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"][len(prefix) :]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


@pytest.fixture
def export_settings(s3_bucket, proxy, tmp_path):
    settings = _settings(
        tmp_path, proxy, PROMO_EXPORT_URI=f"s3://{s3_bucket}/export", PROMO_HOLDOUT_SHARE="0", PROMO_BUDGET="100"
    )
    with Warehouse(settings) as wh:
        wh.replace_rows(RAW_SCHEMA, "users", pa.table({"user_id": USERS}), where=None)
        wh.replace_rows(RAW_SCHEMA, "promotions", pa.table({"promo_id": ["p1", "p2"]}), where=None)
    return settings


def test_export_failing_mid_way_leaves_no_success_marker_and_the_retry_completes(
    export_settings, s3_bucket, proxy, moto_endpoint
):
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    earlier = date(2026, 10, 30)
    _stage(export_settings, earlier, "p1")
    publish(export_settings, earlier)
    earlier_export = _export_objects(client, s3_bucket, earlier)
    _stage(export_settings, RUN_DATE, "p1")
    publish(export_settings, RUN_DATE)

    _stage(export_settings, RUN_DATE, "p2")  # a re-run of the date with other rows; the CSV upload keeps failing
    proxy.add(Rule("PUT", r"run_date=2026-10-31/promo_assignments\.csv$", "status", status=503))
    with pytest.raises(
        StorageUnavailableError, match=r"the marketing export failed: S3 publish_dir .* failed after 4 attempt"
    ) as err:
        publish(export_settings, RUN_DATE)
    assert "has no _SUCCESS marker" in str(err.value)
    assert proxy.rules[0].hits >= 4  # max_attempts (botocore), with backoff in between
    assert "_SUCCESS" not in _export_objects(client, s3_bucket, RUN_DATE)
    assert _export_objects(client, s3_bucket, earlier) == earlier_export  # other nights untouched

    proxy.clear()
    publish(export_settings, RUN_DATE)  # the retry
    objects = _export_objects(client, s3_bucket, RUN_DATE)
    assert set(objects) == {"promo_assignments.parquet", "promo_assignments.csv", "_SUCCESS"}
    assert set(pq.read_table(pa.BufferReader(objects["promo_assignments.parquet"])).column("promo_id").to_pylist()) == {
        "p2"
    }
    mutations = [(m, p.rsplit("/", 1)[1]) for m, p, _ in proxy.log if m in ("PUT", "DELETE", "POST")]
    assert mutations[0] == ("DELETE", "_SUCCESS") and mutations[-1] == ("PUT", "_SUCCESS")


def test_export_retries_transient_failures_and_completes(export_settings, s3_bucket, proxy, moto_endpoint):
    proxy.add(
        Rule("PUT", r"promo_assignments\.parquet$", "status", times=2),
        Rule("PUT", r"/_SUCCESS$", "reset", times=1),
    )
    _stage(export_settings, RUN_DATE, "p1")
    summary = publish(export_settings, RUN_DATE)
    assert [r.hits for r in proxy.rules] == [2, 1]
    objects = _export_objects(boto3.client("s3", endpoint_url=moto_endpoint), s3_bucket, RUN_DATE)
    assert set(objects) == {"promo_assignments.parquet", "promo_assignments.csv", "_SUCCESS"} and summary["users"] == 40


def test_s3_endpoint_down_is_one_paragraph(tmp_path, monkeypatch):
    import socket

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    settings = Settings.from_env(
        env={
            "PROMO_DATA_DIR": str(tmp_path),
            "PROMO_RAW_URI": "s3://nowhere/raw",
            "PROMO_S3_ENDPOINT_URL": f"http://127.0.0.1:{closed}",
            "PROMO_S3_MAX_ATTEMPTS": "2",
            "PROMO_S3_TIMEOUT_S": "1",
        }
    )
    with pytest.raises(
        StorageUnavailableError,
        match=rf"S3 list_dirs of s3://nowhere/raw/events failed after 2 attempt.*EndpointConnectionError.*127.0.0.1:{closed}",
    ):
        ingest(settings, lf.RUN_DATE)
