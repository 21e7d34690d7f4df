"""A task process killed mid-night leaves published data intact; the retry completes identically.

Night D is published; night D+1 is then run in a subprocess that SIGKILLs itself at a
chosen point after the features stage. Afterwards night D is byte-identical, D+1 has
no half-written rows, and re-running D+1 gives the same rows as an uninterrupted run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("crash_recovery")]

PUBLISHED, NEXT = date(2026, 10, 7), date(2026, 10, 8)
NEW_DAY = "dt=2026-10-07"
RUNNER = Path(__file__).with_name("crash_runner.py")


def _env(root: Path) -> dict[str, str]:
    return {
        "PROMO_DATA_DIR": str(root / "data"),
        "PROMO_RAW_URI": str(root / "raw"),
        "PROMO_USER_KEY_SECRET": "crash-secret",
        "PROMO_BUDGET": "50",
        "PROMO_SPARK_SHUFFLE_PARTITIONS": "2",
    }


def _run(dag, day: date, root: Path) -> str:
    os.environ.update(_env(root))
    return dag.test(logical_date=datetime(day.year, day.month, day.day, tzinfo=timezone.utc)).state


def _rows(root: Path, day: date):
    from promoflow.settings import Settings
    from promoflow.warehouse import Warehouse

    with Warehouse(Settings.from_env(env=_env(root))) as wh:
        return wh.query("select * from promo_assignments where run_date = ? order by user_id", [day])


def _export(root: Path, day: date) -> dict[str, bytes]:
    folder = root / "data" / "export" / "promo_assignments" / f"run_date={day.isoformat()}"
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


@pytest.fixture(scope="module")
def nights(tmp_path_factory, airflow_db):
    """Night D published, the landing's next day restored, and a reference uninterrupted run of D+1."""
    from airflow.dag_processing.dagbag import DagBag

    from promoflow.demo_data import generate

    root = tmp_path_factory.mktemp("crash_base")
    generate(root / "raw", root / "truth", n_users=300, n_days=7, start_date=date(2026, 10, 1), seed=9)
    aside = tmp_path_factory.mktemp("crash_aside")
    for table in ("events", "orders", "exposures"):
        shutil.move(str(root / "raw" / table / NEW_DAY), str(aside / table))
    saved = {k: os.environ.get(k) for k in _env(root)}
    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["promo_nightly"]
    assert _run(dag, PUBLISHED, root) == "success"
    for table in ("events", "orders", "exposures"):
        shutil.copytree(aside / table, root / "raw" / table / NEW_DAY)
    reference = tmp_path_factory.mktemp("crash_reference") / "night"
    shutil.copytree(root, reference, symlinks=True)
    assert _run(dag, NEXT, reference) == "success"
    yield {"dag": dag, "root": root, "published": _rows(root, PUBLISHED), "export": _export(root, PUBLISHED), "reference": _rows(reference, NEXT)}
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.mark.parametrize("point", ["publish_mid_transaction", "train_model"])
def test_killed_night_leaves_published_data_and_retry_completes(point, nights, tmp_path):
    root = tmp_path / "night"
    shutil.copytree(nights["root"], root, symlinks=True)
    env = {**os.environ, **_env(root)}
    killed = subprocess.run([sys.executable, str(RUNNER), point, NEXT.isoformat()], env=env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stdout[-3000:] + killed.stderr[-3000:]

    assert _rows(root, PUBLISHED) == nights["published"]
    assert _export(root, PUBLISHED) == nights["export"]
    assert _rows(root, NEXT) == []  # nothing half-written for the killed night
    assert _export(root, NEXT) == {}

    assert _run(nights["dag"], NEXT, root) == "success"  # the retry
    assert _rows(root, NEXT) == nights["reference"]
    assert _rows(root, PUBLISHED) == nights["published"]
