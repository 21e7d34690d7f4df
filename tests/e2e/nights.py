"""Helpers for whole-night tests: a night's settings folder, running the DAG, reading what it published."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path


def night_env(root: Path, secret: str, budget: float, **extra: str) -> dict[str, str]:
    """Settings of a night whose data, lake and outputs all live under ``root``."""
    return {
        "PROMO_DATA_DIR": str(root / "data"),
        "PROMO_RAW_URI": str(root / "raw"),
        "PROMO_USER_KEY_SECRET": secret,
        "PROMO_BUDGET": str(budget),
        "PROMO_SPARK_SHUFFLE_PARTITIONS": "2",
        **extra,
    }


def load_dag(dag_id: str = "promo_nightly"):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags[dag_id]


def run_night(dag, day: date, env: dict[str, str], conf: dict | None = None) -> str:
    """Run the DAG in-process for ``day`` with ``env`` applied; returns the run's state."""
    os.environ.update(env)
    return dag.test(logical_date=datetime(day.year, day.month, day.day, tzinfo=UTC), run_conf=conf).state


def published_rows(env: dict[str, str], day: date, conf: dict | None = None) -> list[tuple]:
    from promoflow.settings import Settings
    from promoflow.warehouse import Warehouse

    with Warehouse(Settings.from_env(env=env, overrides=conf)) as wh:
        return wh.query("select * from promo_assignments where run_date = ? order by user_id", [day])


def export_files(root: Path, day: date) -> dict[str, bytes]:
    folder = root / "data" / "export" / "promo_assignments" / f"run_date={day.isoformat()}"
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


class restored_environ:
    """Put back the given environment variables as they were (module fixtures change os.environ)."""

    def __init__(self, names):
        self.saved = {k: os.environ.get(k) for k in names}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
