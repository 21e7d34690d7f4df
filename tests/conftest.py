"""Suite-wide environment: an isolated Airflow home per test process, quiet TF/GX, no retries."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Before anything imports airflow: each xdist worker gets its own metadata DB.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="promoflow-airflow-")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ["PROMO_TASK_RETRIES"] = "0"
os.environ["PROMO_HOME"] = str(ROOT)


import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def airflow_db():
    """This test process's Airflow metadata DB (SQLite), migrated once."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    done = subprocess.run([airflow, "db", "migrate"], capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return Path(os.environ["AIRFLOW_HOME"])
