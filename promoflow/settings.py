"""The one settings module: every configurable value of the platform lives here.

Values come from environment variables (the ``PROMO_*`` names below, the first
four fixed by the data contract) with embedded defaults so one machine runs
everything. Production points the same settings at Postgres, S3, Redis and a
Spark cluster; no code changes. An Airflow run overrides any of them through
DAG params of the same name in lower case without the ``PROMO_`` prefix
(``--conf '{"budget": 500}'``).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

# Settings a DAG run may override (Airflow params; empty = the environment's value):
# name -> (JSON-schema types, description). Plain data, so DAG files stay light to parse.
RUN_PARAMS: dict[str, tuple[list[str], str]] = {
    "raw_uri": (["null", "string"], "Landing zone: folder or s3://bucket/prefix"),
    "warehouse_url": (["null", "string"], "duckdb:///path/file.duckdb or postgresql://user@host:port/db"),
    "export_uri": (["null", "string"], "Marketing export: folder or s3://bucket/prefix"),
    "budget": (["null", "number"], "Budget on expected discount cost (currency)"),
    "lake_dir": (["null", "string"], "Working lake folder for validated data and features"),
    "model_store_uri": (["null", "string"], "Model store: folder or s3://bucket/prefix"),
    "spark_master": (["null", "string"], "local[*] or spark://host:7077"),
    "feast_online_store": (["null", "string"], "sqlite or redis"),
}

PROJECT_ROOT = Path(os.environ.get("PROMO_HOME", Path(__file__).resolve().parents[1]))
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one run. Build with :meth:`from_env`."""

    # --- the data contract's four settings
    raw_uri: str
    warehouse_url: str
    export_uri: str
    budget: float

    # --- engines and stores
    data_dir: str
    lake_dir: str  # validated raw copies and Spark outputs (local or shared filesystem)
    model_store_uri: str  # folder or s3://bucket/prefix
    feast_repo: str
    feast_online_store: str  # "sqlite" (embedded) or "redis"
    redis_url: str  # host:port[,db=N], used when feast_online_store == "redis"
    spark_master: str
    spark_shuffle_partitions: int
    s3_endpoint_url: str  # empty = AWS default; set for MinIO / moto

    # --- privacy
    user_key_secret: str

    # --- decision policy
    holdout_share: float
    policy_version: str
    training_seed: int  # deterministic model training: same data + seed => same model
    feature_lookback_days: int
    exploration_rate: float  # epsilon: share of (non-holdout) users whose arm is drawn at random
    exploration_budget_share: float  # share of the budget reserved for exploration draws
    uncertainty_penalty: float  # standard errors subtracted from estimated uplift before choosing
    gate_z: float  # the candidate policy must beat 'none' by this many standard errors (off-policy gate)
    gate_tolerance: float  # and may fall short of the last published policy by this share at most
    message_language: str  # "en" or "zh"; users whose region starts with "CN" get "zh" either way

    # --- data quality
    max_bad_row_share: float

    # --- demo generator defaults (make demo)
    demo_users: int
    demo_days: int
    demo_seed: int

    # ------------------------------------------------------------------ helpers
    @property
    def warehouse_kind(self) -> str:
        """``duckdb`` or ``postgres``, from the URL scheme."""
        scheme = self.warehouse_url.split(":", 1)[0]
        if scheme == "duckdb":
            return "duckdb"
        if scheme.startswith("postgres"):
            return "postgres"
        raise ValueError(
            f"PROMO_WAREHOUSE_URL={self.warehouse_url!r}: unsupported scheme {scheme!r}; "
            "use duckdb:///path/file.duckdb or postgresql://user@host:port/db"
        )

    @property
    def duckdb_path(self) -> str:
        if self.warehouse_kind != "duckdb":
            raise ValueError("duckdb_path asked for a non-DuckDB warehouse")
        # duckdb:///abs/path/file.duckdb -> /abs/path/file.duckdb
        return self.warehouse_url[len("duckdb://") :]

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> "Settings":
        """Apply per-run overrides (Airflow params); unknown keys are an error."""
        if not overrides:
            return self
        names = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if value is None or value == "":
                continue
            if key not in names:
                raise KeyError(f"unknown setting {key!r}; known: {sorted(names)}")
            changes[key] = _coerce(names[key].type, value)
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        data_dir = Path(env.get("PROMO_DATA_DIR", str(DEFAULT_DATA_DIR))).resolve()

        def get(name: str, default: str) -> str:
            return env.get(f"PROMO_{name.upper()}", default)

        settings = cls(
            raw_uri=get("raw_uri", str(data_dir / "demo" / "raw")),
            warehouse_url=get("warehouse_url", f"duckdb://{data_dir / 'warehouse' / 'promoflow.duckdb'}"),
            export_uri=get("export_uri", str(data_dir / "export")),
            budget=float(get("budget", "1500")),
            data_dir=str(data_dir),
            lake_dir=get("lake_dir", str(data_dir / "lake")),
            model_store_uri=get("model_store_uri", str(data_dir / "models")),
            feast_repo=get("feast_repo", str(PROJECT_ROOT / "feature_repo")),
            feast_online_store=get("feast_online_store", "sqlite"),
            redis_url=get("redis_url", "127.0.0.1:6379"),
            spark_master=get("spark_master", "local[*]"),
            spark_shuffle_partitions=int(get("spark_shuffle_partitions", "8")),
            s3_endpoint_url=get("s3_endpoint_url", ""),
            user_key_secret=get("user_key_secret", "") or _local_user_key_secret(data_dir),
            holdout_share=float(get("holdout_share", "0.05")),
            policy_version=get("policy_version", "lagrangian-egreedy-v2"),
            training_seed=int(get("training_seed", "7")),
            feature_lookback_days=int(get("feature_lookback_days", "90")),
            exploration_rate=float(get("exploration_rate", "0.05")),
            exploration_budget_share=float(get("exploration_budget_share", "0.1")),
            uncertainty_penalty=float(get("uncertainty_penalty", "1.5")),
            gate_z=float(get("gate_z", "1.645")),
            gate_tolerance=float(get("gate_tolerance", "0.02")),
            message_language=get("message_language", "en"),
            max_bad_row_share=float(get("max_bad_row_share", "0.05")),
            demo_users=int(get("demo_users", "5000")),
            demo_days=int(get("demo_days", "30")),
            demo_seed=int(get("demo_seed", "7")),
        )
        return settings.with_overrides(overrides)


def _coerce(type_name: Any, value: Any) -> Any:
    type_name = type_name if isinstance(type_name, str) else type_name.__name__
    if type_name == "float":
        return float(value)
    if type_name == "int":
        return int(value)
    return str(value)


def _local_user_key_secret(data_dir: Path) -> str:
    """A per-installation secret for the embedded default, created on first use.

    It lives in the data folder (git-ignored), never in the repository.
    Production sets PROMO_USER_KEY_SECRET from a secret manager.
    """
    path = data_dir / ".user_key_secret"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(secret)
    os.replace(tmp, path)
    return path.read_text().strip()
