"""Run the dbt project (``dbt_project/``) in-process with dbt's programmatic runner."""

from __future__ import annotations

import json
import logging
import os
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

from promoflow.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


class DbtBuildError(RuntimeError):
    pass


def dbt_env(settings: Settings) -> dict[str, str]:
    """Environment the dbt profile reads, derived from PROMO_WAREHOUSE_URL."""
    if settings.warehouse_kind == "duckdb":
        return {"PROMO_DBT_TARGET": "duckdb", "PROMO_DUCKDB_PATH": settings.duckdb_path}
    url = urlparse(settings.warehouse_url)
    env = {
        "PROMO_DBT_TARGET": "postgres",
        "PROMO_PG_HOST": url.hostname or "127.0.0.1",
        "PROMO_PG_PORT": str(url.port or 5432),
        "PROMO_PG_USER": url.username or "postgres",
        "PROMO_PG_DBNAME": (url.path or "/postgres").lstrip("/"),
    }
    if url.password:
        env["PROMO_PG_PASSWORD"] = url.password
    return env


# The project's layers, in build order: `dbt build --select <layer>` selects the
# models of models/<layer>/ (dbt's path-like fqn selector).
LAYERS = ("staging", "intermediate", "marts")


def dbt_build(
    settings: Settings,
    run_date: date,
    select: str | None = None,
    full_refresh: bool = False,
    selector: str | None = None,
) -> dict:
    """``dbt build`` (models + tests) for one run date; raises with the failing nodes.

    ``select`` narrows the build, e.g. to one layer of ``LAYERS``; ``selector`` names one of
    ``dbt_project/selectors.yml`` instead (``feedback``, ``report``). Tests then run
    with ``--indirect-selection buildable``: a test runs once every model it reads
    is selected or upstream of the selection, so a test spanning staging and a
    mart runs with the marts, never against last night's mart. ``full_refresh``
    rebuilds the incremental facts from all history (corrections older than
    var incremental_lookback_days).
    """
    from dbt.cli.main import dbtRunner

    os.environ.update(dbt_env(settings))
    target_dir = Path(settings.data_dir) / "dbt"
    args = [
        "build",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(target_dir / "target"),
        "--log-path",
        str(target_dir / "logs"),
        "--vars",
        json.dumps({"run_date": run_date.isoformat()}),
    ]
    if select and selector:
        raise ValueError("dbt_build: pass select or selector, not both")
    if select:
        args += ["--select", *select.split(), "--indirect-selection", "buildable"]
    if selector:
        args += ["--selector", selector]
    if full_refresh:
        args.append("--full-refresh")
    result = dbtRunner().invoke(args)
    nodes = list(result.result or []) if result.result is not None else []
    failed = [
        f"{r.node.name}: {r.status} {r.message or ''}".strip() for r in nodes if str(r.status) in ("error", "fail")
    ]
    if not result.success:
        detail = "; ".join(failed) if failed else str(result.exception)
        scope = f" --select {select}" if select else f" --selector {selector}" if selector else ""
        raise DbtBuildError(
            f"dbt build{scope} failed for run date {run_date}: {detail}. See {target_dir / 'logs' / 'dbt.log'}; "
            "fix the model or the data and re-run the date. Nothing was published."
        )
    return {
        "select": select or (f"selector:{selector}" if selector else "all"),
        "nodes": len(nodes),
        "passed": sum(1 for r in nodes if str(r.status) in ("success", "pass")),
        "warned": sum(1 for r in nodes if str(r.status) == "warn"),
    }


def dbt_docs(settings: Settings) -> Path:
    """``dbt docs generate --static`` (manifest + catalog of the warehouse) into ``{data_dir}/dbt_docs/``.

    ``static_index.html`` embeds both and opens from disk; the campaign report links it.
    """
    from dbt.cli.main import dbtRunner

    os.environ.update(dbt_env(settings))
    target_dir = Path(settings.data_dir) / "dbt_docs"
    result = dbtRunner().invoke(
        [
            "docs",
            "generate",
            "--static",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(target_dir),
            "--log-path",
            str(Path(settings.data_dir) / "dbt" / "logs"),
        ]
    )
    if not result.success:
        raise DbtBuildError(
            f"dbt docs generate failed: {result.exception}; run a night first (the catalog reads the warehouse)"
        )
    return target_dir / "static_index.html"


if __name__ == "__main__":  # make docs
    import sys

    if sys.argv[1:] != ["docs"]:
        sys.exit("usage: python -m promoflow.dbt_runner docs")
    print(f"dbt docs: {dbt_docs(Settings.from_env().validate())}")
