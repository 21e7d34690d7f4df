"""``make run`` (promoflow.cli run, and feedback): two runs sharing one AIRFLOW_HOME get a clear refusal, not a SQLite error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import date

from promoflow.cli import EXIT_AIRFLOW_HOME_BUSY, airflow_home_lock

HOLD = """
import sys, time
from datetime import date
from promoflow.cli import airflow_home_lock
with airflow_home_lock(date(2026, 10, 1)):
    print("held", flush=True)
    time.sleep(120)
"""


def _cli(command: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "promoflow.cli", command, "--date", "2026-10-03"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_second_run_on_the_same_airflow_home_is_refused_with_the_holder_named(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "PROMO_DATA_DIR": str(tmp_path / "data")}
    holder = subprocess.Popen([sys.executable, "-c", HOLD], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = _cli("run", env)
        assert second.returncode == EXIT_AIRFLOW_HOME_BUSY
        assert (
            f"AIRFLOW_HOME={tmp_path / 'airflow'} is in use by another run (pid {holder.pid}, promo_nightly 2026-10-01"
            in second.stderr
        )
        assert "promo_nightly 2026-10-03 was not started" in second.stderr
        assert "Traceback" not in second.stderr and "sqlite3" not in second.stderr.lower()
        assert "airflow dags test" not in second.stdout  # nothing was started
        feedback = _cli("feedback", env)
        assert feedback.returncode == EXIT_AIRFLOW_HOME_BUSY
        assert "promo_feedback 2026-10-03 was not started" in feedback.stderr
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed run releases the lock (flock dies with the process)
        holder.wait()
    with airflow_home_lock(date(2026, 10, 3), home=tmp_path / "airflow") as path:
        assert path.read_text().startswith(f"pid {os.getpid()}, promo_nightly 2026-10-03")
