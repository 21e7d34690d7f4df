"""Benchmark: a shop's first night on a long history, then its next night (one new landed day).

For each user count it writes a demo landing of ``--days + 1`` days (``demo.simulator``),
runs promo_nightly for ``start + days`` (the first night: it ingests and builds features
for the whole history) and then for the day after (the next night: one new landed day
to ingest), each through ``promoflow.cli run`` (``airflow dags test``) with an Airflow
home of its own under the work folder. Per night it reads every task's wall time from
that Airflow metadata database and samples the night's process tree's RSS every 0.5 s
(psutil), a task's peak being the largest sample while it ran (tasks run one at a time
in ``dags test``). Prints a table per user count (task, first night, next night), the
growth of each night's total from the smallest to the largest user count as an exponent
(log time ratio / log users ratio), and writes ``data/bench/bench_night.json``.

    .venv/bin/python -m benchmarks.bench_night --users 100000 --users 1000000
    make bench-night USERS="100000 1000000"
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START = date(2026, 10, 1)


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        parent = psutil.Process(pid)
        procs = [parent, *parent.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_sampled(command: list[str], env: dict, log_path: Path) -> tuple[float, list[tuple[float, int]]]:
    """Run ``command`` (output to ``log_path``); its wall seconds and (epoch s, tree RSS bytes) samples."""
    samples: list[tuple[float, int]] = []
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append((time.time(), _tree_rss(proc.pid)))
                done.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        proc.wait()
        done.set()
        sampler.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        tail = log_path.read_text().splitlines()[-40:]
        raise SystemExit(f"{' '.join(command)} exited with {proc.returncode}; log {log_path}:\n" + "\n".join(tail))
    return wall, samples


def task_times(airflow_db: Path) -> list[dict]:
    """The tasks of promo_nightly's latest run, in start order: wall seconds, start and end (epoch)."""
    con = sqlite3.connect(airflow_db)
    try:
        rows = con.execute(
            """select task_id, start_date, end_date, state from task_instance
               where dag_id = 'promo_nightly' and run_id = (
                   select run_id from dag_run where dag_id = 'promo_nightly' order by id desc limit 1)
               order by start_date"""
        ).fetchall()
    finally:
        con.close()

    def epoch(value: str | None) -> float | None:
        if value is None:
            return None
        moment = datetime.fromisoformat(value)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()

    out = []
    for task_id, start, end, state in rows:
        began, ended = epoch(start), epoch(end)
        wall = (ended - began) if began is not None and ended is not None else None
        out.append({"task": task_id, "state": state, "wall_s": wall, "start": began, "end": ended})
    return out


def with_peaks(tasks: list[dict], samples: list[tuple[float, int]]) -> list[dict]:
    for task in tasks:
        inside = [rss for t, rss in samples if task["start"] is not None and task["start"] <= t <= (task["end"] or t)]
        task["peak_rss_mb"] = round(max(inside) / 2**20, 1) if inside else None
        task["wall_s"] = round(task["wall_s"], 1) if task["wall_s"] is not None else None
    return tasks


def night(env: dict, work: Path, run_date: date, name: str) -> dict:
    wall, samples = run_sampled(
        [sys.executable, "-m", "promoflow.cli", "run", "--date", run_date.isoformat()], env, work / f"{name}.log"
    )
    tasks = with_peaks(task_times(Path(env["AIRFLOW_HOME"]) / "airflow.db"), samples)
    return {
        "run_date": run_date.isoformat(),
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(max((r for _, r in samples), default=0) / 2**20, 1),
        "tasks": [{k: t[k] for k in ("task", "state", "wall_s", "peak_rss_mb")} for t in tasks],
    }


def bench(n_users: int, days: int, seed: int, work_root: Path) -> dict:
    work = work_root / f"users={n_users}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("PROMO_RAW_URI", "PROMO_WAREHOUSE_URL", "PROMO_EXPORT_URI", "PROMO_LAKE_DIR", "PROMO_MODEL_STORE_URI")
    }
    env |= {
        "PROMO_DATA_DIR": str(work / "data"),
        "AIRFLOW_HOME": str(work / "airflow"),
        "PROMO_BUDGET": f"{0.3 * n_users:g}",
    }
    began = time.perf_counter()
    generate_wall, generate_samples = run_sampled(
        [
            sys.executable,
            "-m",
            "demo.simulator",
            "--raw-dir",
            str(work / "data" / "demo" / "raw"),
            "--truth-dir",
            str(work / "data" / "demo" / "truth"),
            "--users",
            str(n_users),
            "--days",
            str(days + 1),  # the last day lands for the next night
            "--start-date",
            START.isoformat(),
            "--seed",
            str(seed),
        ],
        env,
        work / "generate.log",
    )
    generated = (work / "generate.log").read_text().strip().splitlines()[-1]
    print(f"[{n_users:,} users] landing written in {generate_wall:.0f} s: {generated}", flush=True)
    migrate = subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if migrate.returncode != 0:
        raise SystemExit(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}\n{migrate.stderr[-2000:]}")
    first_date = START + timedelta(days=days)
    first = night(env, work, first_date, "first_night")
    print(f"[{n_users:,} users] first night {first_date}: {first['wall_s']:.0f} s", flush=True)
    second = night(env, work, first_date + timedelta(days=1), "next_night")
    print(f"[{n_users:,} users] next night {first_date + timedelta(days=1)}: {second['wall_s']:.0f} s", flush=True)
    return {
        "users": n_users,
        "days": days,
        "landing": generated,
        "generate_s": round(generate_wall, 1),
        "generate_peak_rss_mb": round(max((r for _, r in generate_samples), default=0) / 2**20, 1),
        "first_night": first,
        "next_night": second,
        "total_s": round(time.perf_counter() - began, 1),
    }


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def print_tables(results: list[dict]) -> None:
    for result in results:
        print(
            f"\n{result['users']:,} users x {result['days']} days (generated in {result['generate_s']:.0f} s, "
            f"peak {result['generate_peak_rss_mb']:,.0f} MB)"
        )
        first = {t["task"]: t for t in result["first_night"]["tasks"]}
        second = {t["task"]: t for t in result["next_night"]["tasks"]}
        names = list(dict.fromkeys([*first, *second]))
        print("| task | first night s | peak RSS MB | next night s | peak RSS MB |\n|---|---|---|---|---|")
        for name in names:
            a, b = first.get(name, {}), second.get(name, {})
            print(
                f"| {name} | {_fmt(a.get('wall_s'), '.1f')} | {_fmt(a.get('peak_rss_mb'), ',.0f')} "
                f"| {_fmt(b.get('wall_s'), '.1f')} | {_fmt(b.get('peak_rss_mb'), ',.0f')} |"
            )
        print(
            f"| **night** | **{result['first_night']['wall_s']:.0f}** | {result['first_night']['peak_rss_mb']:,.0f} "
            f"| **{result['next_night']['wall_s']:.0f}** | {result['next_night']['peak_rss_mb']:,.0f} |"
        )
    growth = growth_exponents(results)
    if growth:
        print(
            f"\ngrowth {results[0]['users']:,} -> {results[-1]['users']:,} users (exponent of wall time): "
            f"first night {growth['first_night']:.2f}, next night {growth['next_night']:.2f}"
        )


def growth_exponents(results: list[dict]) -> dict | None:
    if len(results) < 2:
        return None
    small, large = results[0], results[-1]
    ratio = math.log(large["users"] / small["users"])
    return {
        key: round(math.log(large[key]["wall_s"] / small[key]["wall_s"]) / ratio, 3)
        for key in ("first_night", "next_night")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.bench_night", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, action="append", help="user count (repeatable); default 100000")
    parser.add_argument("--days", type=int, default=60, help="days of history before the first night")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--work", type=Path, default=ROOT / "data" / "bench" / "night")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "bench" / "bench_night.json")
    args = parser.parse_args(argv)
    sizes = sorted(set(args.users or [100_000]))
    results = [bench(n, args.days, args.seed, args.work) for n in sizes]
    print_tables(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "results": results,
        "growth_exponent": growth_exponents(results),
    }
    args.out.write_text(json.dumps(payload, indent=1))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
