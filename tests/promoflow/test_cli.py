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


def test_summary_says_how_many_users_hold_a_live_offer_and_how_many_offers_replace_one(tmp_path, monkeypatch, capsys):
    import json

    from promoflow.cli import print_summary

    run = tmp_path / "runs" / "run_date=2026-10-03"
    run.mkdir(parents=True)
    summary = {
        "run_date": "2026-10-03",
        "users": 10,
        "assignments_per_promo": {"none": 7, "promo_a": 3},
        "budget": 30.0,
        "budget_used": 12.5,
        "expected_incremental_margin": 4.0,
        "quarantined_rows": {},
        "model": {"model_version": "v1", "production_model": "pooled_response"},
        "assign": {"status": "published", "policy": "pooled_response", "live_offer_holders": 4},
        "warehouse_table": "promo_assignments",
        "export": "export/promo_assignments/run_date=2026-10-03",
        "report": "reports/run_date=2026-10-03",
    }
    (run / "summary.json").write_text(json.dumps(summary))
    monkeypatch.setenv("PROMO_DATA_DIR", str(tmp_path))
    assert print_summary(date(2026, 10, 3)) == 0
    assert "live offers:     4 users hold one; 0 of tonight's offers replace one" in capsys.readouterr().out
    summary["assign"]["live_offer_holders"] = 0
    (run / "summary.json").write_text(json.dumps(summary))
    assert print_summary(date(2026, 10, 3)) == 0
    assert "live offers:" not in capsys.readouterr().out
