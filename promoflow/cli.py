"""Command-line helpers behind the Makefile: run one night, print a night's summary.

``python -m promoflow.cli run --date D [--conf JSON]`` wraps
``airflow dags test promo_nightly D --conf JSON`` and exits non-zero when the run failed.
``python -m promoflow.cli summary --date D`` prints the summary the run wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from promoflow.settings import Settings


def _airflow() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def check_settings(conf: dict) -> str | None:
    """Why the environment's settings with ``conf`` on top cannot run (unknown param, value out of bounds), or None."""
    try:
        Settings.from_env(overrides=conf).validate()
    except (KeyError, ValueError) as error:
        return str(error).strip("'\"")
    return None


def run_night(run_date: date, conf: dict) -> int:
    cmd = [_airflow(), "dags", "test", "promo_nightly", run_date.isoformat()]
    if conf:
        cmd += ["--conf", json.dumps(conf)]
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd, env=os.environ.copy())


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
    print(f"model version:   {s['model'].get('model_version')} (production model: {s['model'].get('production_model')})")
    assign = s.get("assign") or {}
    print(f"policy:          {assign.get('status', 'none')} {assign.get('policy', 'none')}: {assign.get('policy_description', '')}")
    print(f"why:             {assign.get('gate')}")
    print(f"exploration:     {assign.get('exploration', 0)} users (cost cap {assign.get('exploration_cost_cap', 0):.2f} each)")
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
    summary = sub.add_parser("summary", help="print a night's run summary")
    summary.add_argument("--date", required=True, type=date.fromisoformat)
    args = parser.parse_args(argv)
    if args.command == "run":
        conf = json.loads(args.conf) if args.conf else {}
        if problem := check_settings(conf):
            print(f"promo_nightly {args.date} not started: {problem}", file=sys.stderr)
            return 2
        code = run_night(args.date, conf)
        if code != 0:
            print(f"promo_nightly {args.date} FAILED (exit {code}); the task log above says why. "
                  "Published assignments of earlier nights are untouched.", file=sys.stderr)
        return code
    return print_summary(args.date)


if __name__ == "__main__":
    sys.exit(main())
