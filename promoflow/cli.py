"""Command-line helpers behind the Makefile: run one night or its feedback, print a night's summary.

``python -m promoflow.cli run --date D [--conf JSON]`` wraps
``airflow dags test promo_nightly D --conf JSON`` and exits non-zero when the run failed.
``python -m promoflow.cli feedback --date D [--conf JSON]`` does the same for
``promo_feedback`` (the day's landing attributed to earlier nights' sends).
``python -m promoflow.cli summary --date D`` prints the summary the run wrote.

Two runs sharing one ``AIRFLOW_HOME`` would share its SQLite metadata database, which
takes one writer at a time; ``run`` holds an exclusive lock on
``$AIRFLOW_HOME/promoflow-run.lock`` for the whole run (``feedback`` too), and a second one exits with
code 75 and a message naming the run that holds it.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

from promoflow.settings import Settings


def _airflow() -> str:
    return str(Path(sys.executable).with_name("airflow"))


EXIT_AIRFLOW_HOME_BUSY = 75  # EX_TEMPFAIL: try again later


class AirflowHomeBusyError(RuntimeError):
    """Another ``promoflow.cli run`` holds this AIRFLOW_HOME."""


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or "~/airflow").expanduser().resolve()


@contextmanager
def airflow_home_lock(run_date: date, home: Path | None = None, dag_id: str = "promo_nightly") -> Iterator[Path]:
    """Hold ``$AIRFLOW_HOME/promoflow-run.lock`` (flock, released even if the process is killed)."""
    home = home or airflow_home()
    home.mkdir(parents=True, exist_ok=True)
    path = home / "promoflow-run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 500, 0).decode(errors="replace").strip() or "a process that did not say which run"
        os.close(fd)
        raise AirflowHomeBusyError(
            f"AIRFLOW_HOME={home} is in use by another run ({holder}); its SQLite metadata database takes one run "
            f"at a time, so {dag_id} {run_date} was not started. Wait for that run to finish, or give this one "
            "its own Airflow home: AIRFLOW_HOME=/path/to/other make run DATE=... (make creates and migrates it)."
        ) from None
    try:
        os.ftruncate(fd, 0)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        os.pwrite(fd, f"pid {os.getpid()}, {dag_id} {run_date}, started {started}".encode(), 0)
        yield path
    finally:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def check_settings(conf: dict) -> str | None:
    """Why the environment's settings with ``conf`` on top cannot run (unknown param, value out of bounds), or None."""
    try:
        Settings.from_env(overrides=conf).validate()
    except (KeyError, ValueError) as error:
        return str(error).strip("'\"")
    return None


def run_night(run_date: date, conf: dict, dag_id: str = "promo_nightly") -> int:
    cmd = [_airflow(), "dags", "test", dag_id, run_date.isoformat()]
    if conf:
        cmd += ["--conf", json.dumps(conf)]
    try:
        with airflow_home_lock(run_date, dag_id=dag_id):
            print("+", " ".join(cmd), flush=True)
            return subprocess.call(cmd, env=os.environ.copy())
    except AirflowHomeBusyError as err:
        print(str(err), file=sys.stderr)
        return EXIT_AIRFLOW_HOME_BUSY


def print_summary(run_date: date) -> int:
    settings = Settings.from_env()
    path = Path(settings.data_dir) / "runs" / f"run_date={run_date.isoformat()}" / "summary.json"
    if not path.exists():
        print(f"no summary for {run_date} at {path}: did the run succeed?", file=sys.stderr)
        return 1
    s = json.loads(path.read_text())
    print(f"\npromo_nightly {s['run_date']}: {s['users']} users")
    print("assignments per promo:")
    for promo, n in s["assignments_per_promo"].items():
        print(f"  {promo:<20} {n:>8}")
    print(f"budget used:     {s['budget_used']:.2f} of {s['budget']:.2f}")
    print(f"expected incremental margin: {s['expected_incremental_margin']:.2f}")
    print(f"quarantined rows: {s['quarantined_rows'] or 'none'}")
    if s.get("late_partitions"):
        print(f"late partitions (landed after their night, ingested tonight): {s['late_partitions']}")
    if s.get("missing_partitions"):
        print(f"not landed (tonight ran without them; they count when they land): {s['missing_partitions']}")
    if s.get("dropped_users_with_live_offer"):
        print(f"users dropped by the users snapshot while holding a live offer: {s['dropped_users_with_live_offer']}")
    print(
        f"model version:   {s['model'].get('model_version')} (production model: {s['model'].get('production_model')})"
    )
    assign = s.get("assign") or {}
    print(
        f"policy:          {assign.get('status', 'none')} {assign.get('policy', 'none')}: {assign.get('policy_description', '')}"
    )
    print(f"why:             {assign.get('gate')}")
    print(
        f"exploration:     {assign.get('exploration', 0)} users (cost cap {assign.get('exploration_cost_cap', 0):.2f} each)"
    )
    if assign.get("live_offer_holders"):
        print(
            f"live offers:     {assign['live_offer_holders']} users hold one; "
            f"{assign.get('offers_replacing_a_live_offer', 0)} of tonight's offers replace one"
        )
    print(f"warehouse table: {s['warehouse_table']}")
    print(f"export:          {s['export']}")
    for flag in s.get("fairness_flags", []):
        print(f"fairness flag:   {flag}")
    print(f"campaign report: {s.get('report')}")
    print(f"run summary:     {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="promoflow")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run promo_nightly for one date (airflow dags test)")
    run.add_argument("--date", required=True, type=date.fromisoformat)
    run.add_argument("--conf", default="", help="JSON of params overriding settings for this run")
    feedback = sub.add_parser("feedback", help="run promo_feedback for one date (airflow dags test)")
    feedback.add_argument("--date", required=True, type=date.fromisoformat)
    feedback.add_argument("--conf", default="", help="JSON of params overriding settings for this run")
    summary = sub.add_parser("summary", help="print a night's run summary")
    summary.add_argument("--date", required=True, type=date.fromisoformat)
    args = parser.parse_args(argv)
    if args.command in ("run", "feedback"):
        dag_id = "promo_nightly" if args.command == "run" else "promo_feedback"
        conf = json.loads(args.conf) if args.conf else {}
        if problem := check_settings(conf):
            print(f"{dag_id} {args.date} not started: {problem}", file=sys.stderr)
            return 2
        code = run_night(args.date, conf, dag_id)
        if code not in (0, EXIT_AIRFLOW_HOME_BUSY):
            print(
                f"{dag_id} {args.date} FAILED (exit {code}); the task log above says why. "
                "Published assignments of earlier nights are untouched.",
                file=sys.stderr,
            )
        return code
    return print_summary(args.date)


if __name__ == "__main__":
    sys.exit(main())
