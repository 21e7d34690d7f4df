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
from datetime import date
from pathlib import Path

import pytest
from nights import export_files, load_dag, night_env, published_rows, restored_environ, run_night

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("crash_recovery")]

PUBLISHED, NEXT = date(2026, 10, 7), date(2026, 10, 8)
NEW_DAY = "dt=2026-10-07"
RUNNER = Path(__file__).with_name("crash_runner.py")


def _env(root: Path) -> dict[str, str]:
    return night_env(root, secret="crash-secret", budget=50)


@pytest.fixture(scope="module")
def nights(tmp_path_factory, airflow_db):
    """Night D published, the landing's next day restored, and a reference uninterrupted run of D+1."""
    from demo.simulator import generate

    root = tmp_path_factory.mktemp("crash_base")
    generate(root / "raw", root / "truth", n_users=300, n_days=7, start_date=date(2026, 10, 1), seed=9)
    aside = tmp_path_factory.mktemp("crash_aside")
    for table in ("events", "orders", "exposures"):
        shutil.move(str(root / "raw" / table / NEW_DAY), str(aside / table))
    with restored_environ(_env(root)):
        dag = load_dag()
        assert run_night(dag, PUBLISHED, _env(root)) == "success"
        for table in ("events", "orders", "exposures"):
            shutil.copytree(aside / table, root / "raw" / table / NEW_DAY)
        reference = tmp_path_factory.mktemp("crash_reference") / "night"
        shutil.copytree(root, reference, symlinks=True)
        assert run_night(dag, NEXT, _env(reference)) == "success"
        yield {
            "dag": dag,
            "root": root,
            "published": published_rows(_env(root), PUBLISHED),
            "export": export_files(root, PUBLISHED),
            "reference": published_rows(_env(reference), NEXT),
        }


@pytest.mark.parametrize("point", ["publish_mid_transaction", "train_model"])
def test_killed_night_leaves_published_data_and_retry_completes(point, nights, tmp_path):
    root = tmp_path / "night"
    shutil.copytree(nights["root"], root, symlinks=True)
    env = {**os.environ, **_env(root)}
    killed = subprocess.run(
        [sys.executable, str(RUNNER), point, NEXT.isoformat()], env=env, capture_output=True, text=True
    )
    assert killed.returncode == -9, killed.stdout[-3000:] + killed.stderr[-3000:]

    assert published_rows(_env(root), PUBLISHED) == nights["published"]
    assert export_files(root, PUBLISHED) == nights["export"]
    assert published_rows(_env(root), NEXT) == []  # nothing half-written for the killed night
    assert export_files(root, NEXT) == {}

    assert run_night(nights["dag"], NEXT, _env(root)) == "success"  # the retry
    assert published_rows(_env(root), NEXT) == nights["reference"]
    assert published_rows(_env(root), PUBLISHED) == nights["published"]
