"""make airflow's launcher: the settings every Airflow process gets, and the login kept out of git."""

from __future__ import annotations

import json

from promoflow import console


def test_every_process_calls_the_served_url_with_few_workers():
    env = console.airflow_env(18080, base={"PROMO_BUDGET": "500"})
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:18080"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor" and env["AIRFLOW__CORE__PARALLELISM"] == "2"
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
    assert env["PROMO_BUDGET"] == "500"  # the same settings as make run


def test_admin_password_is_generated_once_under_airflow_home(tmp_path):
    password, generated = console.admin_password(tmp_path)
    assert generated and len(password) >= 12
    again, generated_again = console.admin_password(tmp_path)
    assert (again, generated_again) == (password, False)
    stored = tmp_path / "simple_auth_manager_passwords.json.generated"
    assert json.loads(stored.read_text()) == {"admin": password}
    assert stored.stat().st_mode & 0o077 == 0  # readable by its owner only


def test_bad_settings_stop_make_airflow_before_anything_starts(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("PROMO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PROMO_HOLDOUT_SHARE", "1.5")
    monkeypatch.setattr(console, "start", lambda *a, **k: (_ for _ in ()).throw(AssertionError("started")))
    assert console.main(["--port", "18081"]) == 2
    assert "holdout_share" in capsys.readouterr().err


def test_stop_ends_grandchildren_in_sessions_of_their_own():
    import subprocess
    import time

    # like a task process that starts its own session and a Spark JVM under it
    proc = subprocess.Popen(["bash", "-c", "setsid sleep 300 & sleep 300"], start_new_session=True)
    time.sleep(1)
    sessions = console._sessions_of({proc.pid})
    assert len(sessions) == 2
    console.stop([proc], grace_s=10)
    assert [p for p in console._process_table() if p[2] in sessions] == []
