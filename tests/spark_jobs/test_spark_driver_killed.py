"""The Spark driver killed mid-job: the retry produces the same features as an uninterrupted run.

A tiny clean lake is made by the real ingest stage. ``python -m spark_jobs.nightly`` runs
on two copies of it: one to completion (the reference), one whose driver and JVM are
SIGKILLed as soon as the job starts writing under ``features/``. The killed copy is then
re-run; every feature table must hold exactly the reference's rows.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "promoflow"))

import landing_factory as lf  # noqa: E402

FEATURE_TABLES = (
    "user_daily",
    "user_category_daily",
    "user_features",
    "user_category_features",
    "user_sequences",
    "item_features",
)


def _job(lake: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "spark_jobs.nightly",
        "--lake-dir",
        str(lake),
        "--run-date",
        lf.RUN_DATE.isoformat(),
        "--master",
        "local[1]",
        "--shuffle-partitions",
        "2",
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _rows(lake: Path, table: str) -> list[dict]:
    folder = lake / "features" / table
    files = sorted(
        p
        for p in folder.rglob("*.parquet")
        if not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
    )
    rows = []
    for f in files:
        partition = f.parent.name  # dt=... / as_of=...
        rows += [{**r, "_partition": partition} for r in pq.read_table(f).to_pylist()]
    return sorted(rows, key=repr)


@pytest.fixture(scope="module")
def clean_lake(tmp_path_factory):
    from promoflow.ingest import ingest
    from promoflow.settings import Settings

    root = tmp_path_factory.mktemp("spark_kill")
    lf.write_landing(root / "raw")
    settings = Settings.from_env(
        env={
            "PROMO_DATA_DIR": str(root / "data"),
            "PROMO_RAW_URI": str(root / "raw"),
            "PROMO_USER_KEY_SECRET": "test-secret",
        }
    )
    ingest(settings, lf.RUN_DATE)
    return Path(settings.lake_dir)


def test_killed_spark_driver_then_retry_gives_identical_features(clean_lake, tmp_path):
    reference = tmp_path / "reference"
    shutil.copytree(clean_lake, reference)
    done = subprocess.run(_job(reference), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    shutil.copytree(clean_lake, killed)
    job = subprocess.Popen(
        _job(killed), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 600
    while not (killed / "features").exists() or not any((killed / "features").iterdir()):
        assert job.poll() is None, "the job ended before it wrote anything"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGKILL)  # the driver and its JVM, mid-job
    assert job.wait() == -signal.SIGKILL
    assert not (killed / "features" / "user_features" / f"as_of={lf.RUN_DATE.isoformat()}").exists()  # really mid-job

    retry = subprocess.run(_job(killed), env=_env(), capture_output=True, text=True, timeout=600)
    assert retry.returncode == 0, retry.stderr[-3000:]
    for table in FEATURE_TABLES:
        expected = _rows(reference, table)
        assert _rows(killed, table) == expected, table
    assert _rows(reference, "user_features")  # the comparison compared something
