"""``make airflow``: the Airflow UI on this machine, the data engineers' console for promo_nightly / promo_feedback.

Starts ``airflow api-server``, ``scheduler`` and ``dag-processor`` (LocalExecutor, metadata DB
under ``AIRFLOW_HOME``) with the same ``PROMO_*`` settings as ``make run``, after checking them.
Login through SimpleAuthManager: user ``admin``, a generated password kept in
``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated`` (git-ignored, printed once when it
is created). Creates the ``gpu`` pool ``train_model`` runs in. Ctrl-C stops every process it started.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from promoflow.settings import Settings

ADMIN = "admin"
GPU_POOL_SLOTS = 1  # one training at a time on the GPU worker
COMPONENTS = ("api-server", "scheduler", "dag-processor")


def airflow_env(port: int, host: str = "127.0.0.1", parallelism: int = 2, base: dict | None = None) -> dict[str, str]:
    """The environment every Airflow process of the console gets."""
    env = dict(os.environ if base is None else base)
    url = f"http://{host}:{port}"
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # The LocalExecutor forks this many workers up front; a laptop has few cores.
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__API__HOST": host,
            "AIRFLOW__API__PORT": str(port),
            # Without it the task workers call the Execution API on localhost:8080.
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        }
    )
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    return env


def admin_password(airflow_home: Path) -> tuple[str, bool]:
    """The admin password (generated on first use) and whether it was generated now."""
    path = airflow_home / "simple_auth_manager_passwords.json.generated"
    passwords = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}
    if ADMIN in passwords:
        return passwords[ADMIN], False
    passwords[ADMIN] = secrets.token_urlsafe(12)
    airflow_home.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(passwords))
    path.chmod(0o600)
    return passwords[ADMIN], True


def _airflow() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def _wait_for(url: str, timeout_s: float, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{' '.join(proc.args[1:2])} exited with {proc.returncode} before {url} answered; see its log"
                )
        try:
            with urllib.request.urlopen(url, timeout=10):
                return
        except urllib.error.HTTPError:
            return  # the server answers (e.g. 404 / 405 on a bare API root): up
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


def _process_table() -> list[tuple[int, int, int]]:
    """(pid, parent pid, session id) of every live process (Linux /proc)."""
    table = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        table.append((int(stat.parent.name), int(fields[1]), int(fields[3])))
    return table


def _sessions_of(roots: set[int]) -> set[int]:
    """The session ids of ``roots`` and all their descendants: task processes start sessions of their own."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, ppid, _ in table:
        children.setdefault(ppid, []).append(pid)
    tree, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo += children.get(pid, [])
    return {sid for pid, _, sid in table if pid in tree}


def _signal_sessions(sessions: set[int], signum: int) -> int:
    """Send ``signum`` to every process of ``sessions`` (never this one); return how many were alive."""
    alive = 0
    for pid, _, sid in _process_table():
        if sid in sessions and pid != os.getpid():
            alive += 1
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
    return alive


def stop(procs: list[subprocess.Popen], grace_s: float = 30) -> None:
    """SIGTERM every process the console started, their task processes and Spark JVMs; SIGKILL what outlives ``grace_s``."""
    sessions = _sessions_of({p.pid for p in procs if p.poll() is None})
    _signal_sessions(sessions, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        for proc in procs:
            proc.poll()  # reap
        if not _signal_sessions(sessions, 0):
            break
        time.sleep(1)
    _signal_sessions(sessions, signal.SIGKILL)
    for proc in procs:
        proc.wait()


def start(
    port: int, log_dir: Path, parallelism: int = 2, env: dict | None = None
) -> tuple[list[subprocess.Popen], str]:
    """Migrate the metadata DB, create the gpu pool, start the three processes; return them and the URL once it answers."""
    env = airflow_env(port, parallelism=parallelism, base=env)
    log_dir.mkdir(parents=True, exist_ok=True)
    airflow = _airflow()
    for cmd in (["db", "migrate"], ["pools", "set", "gpu", str(GPU_POOL_SLOTS), "train_model: one training at a time"]):
        done = subprocess.run([airflow, *cmd], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    procs = []
    for component in COMPONENTS:
        log = open(log_dir / f"{component}.log", "ab")
        args = [airflow, component] + (
            ["--port", str(port), "--host", env["AIRFLOW__API__HOST"]] if component == "api-server" else []
        )
        procs.append(subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    url = env["AIRFLOW__API__BASE_URL"]
    try:
        _wait_for(f"{url}/api/v2/monitor/health", 180, procs)
        # The first request to the Execution API takes seconds (lazy app start); task workers give up at 5 s.
        _wait_for(f"{url}/execution/health", 60, procs)
    except BaseException:
        stop(procs)
        raise
    return procs, url


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make airflow", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", "8080")))
    parser.add_argument("--parallelism", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env().validate()
    except (KeyError, ValueError) as error:
        print(f"Airflow not started: {error}", file=sys.stderr)
        return 2
    home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
    password, generated = admin_password(home)
    procs, url = start(args.port, home / "logs" / "console", args.parallelism)
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or `kill PID` (also when started in the background)
        signal.signal(signum, _interrupt)
    print(f"\nAirflow is up: {url}  (DAGs promo_nightly, promo_feedback; data {settings.data_dir})")
    print(
        f"login: {ADMIN} / {password}"
        if generated
        else f"login: {ADMIN}, password in {home / 'simple_auth_manager_passwords.json.generated'}"
    )
    print(f"process logs: {home / 'logs' / 'console'}/   Ctrl-C stops Airflow.", flush=True)
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        dead = [c for c, p in zip(COMPONENTS, procs) if p.poll() is not None]
        print(
            f"airflow {', '.join(dead)} exited; stopping the rest (logs in {home / 'logs' / 'console'})",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("\nstopping Airflow ...", flush=True)
        return 0
    finally:
        stop(procs)


if __name__ == "__main__":
    sys.exit(main())
