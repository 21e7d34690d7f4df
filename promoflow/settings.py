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
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from promoflow import atomic


# Settings a DAG run may override: name -> the JSON schema of its Airflow param (the trigger
# form shows title, type, bounds, description; empty = the PROMO_* environment value). The same
# bounds validate every resolved setting (Settings.validate), so a bad value stops the run before
# any task: in the UI, `make run` and the CLI alike. Plain data, so DAG files stay light to parse.
def _param(title: str, kind: str, description: str, **bounds: Any) -> dict[str, Any]:
    if "enum" in bounds:
        bounds["enum"] = [None, *bounds["enum"]]
    return {"title": title, "type": ["null", kind], "description": description, **bounds}


RUN_PARAMS: dict[str, dict[str, Any]] = {
    "budget": _param(
        "Budget", "number", "Budget on expected discount cost, currency (PROMO_BUDGET, default 1500)", minimum=0
    ),
    "holdout_share": _param(
        "Holdout share",
        "number",
        "Share of users held out (sent nothing) to measure uplift (default 0.05)",
        minimum=0,
        exclusiveMaximum=1,
    ),
    "exploration_rate": _param(
        "Exploration rate",
        "number",
        "Epsilon: the most share of non-holdout users whose arm is drawn at random; less where the evidence is sure of a segment's best arm (default 0.05)",
        minimum=0,
        maximum=1,
    ),
    "exploration_budget_share": _param(
        "Exploration budget share",
        "number",
        "Share of the budget reserved for exploration draws (default 0.1)",
        minimum=0,
        maximum=1,
    ),
    "uncertainty_penalty": _param(
        "Uncertainty penalty",
        "number",
        "Standard errors dr_ridge and boosted_response subtract from their estimated uplift (default 1.5)",
        minimum=0,
        maximum=10,
    ),
    "gate_z": _param(
        "Gate z",
        "number",
        "A candidate is published when its held-out value minus this many standard errors is above 0 (default 1.645)",
        minimum=0,
        maximum=10,
    ),
    "rollout_share": _param(
        "Rollout share",
        "number",
        "Share of users a positive but inconclusive candidate is rolled out to (default 0.25)",
        minimum=0,
        maximum=1,
    ),
    "min_offer_gap_days": _param(
        "Minimum days between offers",
        "integer",
        "A user whose last offer was sent fewer than this many days ago gets none tonight (default 0: no gap)",
        minimum=0,
        maximum=90,
    ),
    "message_language": _param(
        "Message language",
        "string",
        "Message templates; regions starting CN always get zh (default en)",
        enum=["en", "zh"],
    ),
    "max_bad_row_share": _param(
        "Max bad-row share",
        "number",
        "Bad-row share of a partition above which the run stops (default 0.05)",
        minimum=0,
        maximum=1,
    ),
    "feature_lookback_days": _param(
        "Feature lookback (days)",
        "integer",
        "History the behaviour features look at (default 90)",
        minimum=1,
        maximum=3650,
    ),
    "training_seed": _param(
        "Training seed", "integer", "Seed of the deterministic response-model training (default 7)", minimum=0
    ),
    "fairness_max_ratio": _param(
        "Fairness max ratio",
        "number",
        "Flag a group whose offer rate is more than this many times (or under 1/this of) the overall rate (default 2)",
        minimum=1,
    ),
    "raw_uri": _param("Landing zone", "string", "Folder or s3://bucket/prefix (PROMO_RAW_URI)", minLength=1),
    "warehouse_url": _param(
        "Warehouse",
        "string",
        "duckdb:///path/file.duckdb or postgresql://user@host:port/db",
        pattern="^(duckdb://|postgres(ql)?://)",
    ),
    "export_uri": _param("Marketing export", "string", "Folder or s3://bucket/prefix (PROMO_EXPORT_URI)", minLength=1),
    "lake_dir": _param(
        "Lake folder", "string", "Working lake folder for validated data and features (PROMO_LAKE_DIR)", minLength=1
    ),
    "model_store_uri": _param(
        "Model store", "string", "Folder or s3://bucket/prefix (PROMO_MODEL_STORE_URI)", minLength=1
    ),
    "spark_master": _param("Spark master", "string", "local[*] or spark://host:7077", pattern="^(local|spark://)"),
    "feast_online_store": _param("Feast online store", "string", "sqlite or redis", enum=["sqlite", "redis"]),
}
# Bounds of settings that are not run params (environment only).
SETTING_BOUNDS: dict[str, dict[str, Any]] = {
    "spark_shuffle_partitions": {"minimum": 1},
    "training_max_rows": {"minimum": 1000},
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

    # --- privacy (never in repr, so never in a log line that prints the settings)
    user_key_secret: str = field(repr=False)

    # --- decision policy
    holdout_share: float
    policy_version: str
    training_seed: int  # deterministic model training: same data + seed => same model
    training_max_rows: int  # matured exposures train_model fits on at most: a random sample of users beyond
    feature_lookback_days: int
    exploration_rate: float  # epsilon: share of (non-holdout) users whose arm is drawn at random
    exploration_budget_share: float  # share of the budget reserved for exploration draws
    uncertainty_penalty: float  # standard errors subtracted from estimated uplift before choosing
    gate_z: float  # the candidate policy must beat 'none' by this many standard errors (off-policy gate)
    rollout_share: float  # share of users a positive but inconclusive policy is rolled out to (the rest: 'none')
    min_offer_gap_days: int  # no offer to a user whose last offer is more recent than this (0: no gap)
    message_language: str  # "en" or "zh"; users whose region starts with "CN" get "zh" either way

    # --- data quality
    max_bad_row_share: float
    fairness_max_ratio: float  # a group's offer rate beyond this ratio of the overall rate is flagged (report, summary)

    # --- demo generator defaults (make demo)

    # --- reliability and security
    api_token: str = field(default="", repr=False)  # bearer token of the read API; empty = the API refuses to start
    s3_max_attempts: int = 5  # attempts per S3 request (standard retry mode: exponential backoff with jitter)
    s3_timeout_s: float = 30.0  # connect and read timeout per S3 request
    online_store_on_failure: str = "fail"  # "fail" or "skip": what feature_store does when the online store is down

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

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> Settings:
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

    def validate(self) -> Settings:
        """Check every setting against its bounds (RUN_PARAMS, SETTING_BOUNDS); raise one ValueError naming them all."""
        problems = []
        for name, schema in {**RUN_PARAMS, **SETTING_BOUNDS}.items():
            problem = _out_of_bounds(getattr(self, name), schema)
            if problem:
                problems.append(
                    f"{name} (PROMO_{name.upper()} or run param {name!r}) = {getattr(self, name)!r}: {problem}"
                )
        if problems:
            raise ValueError(
                "Invalid settings, nothing was run: "
                + "; ".join(problems)
                + ". Fix the run's params (--conf / the trigger form) or the PROMO_* environment variable."
            )
        return self

    @classmethod
    def from_env(cls, overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
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
            training_max_rows=int(get("training_max_rows", "100000")),
            feature_lookback_days=int(get("feature_lookback_days", "90")),
            exploration_rate=float(get("exploration_rate", "0.05")),
            exploration_budget_share=float(get("exploration_budget_share", "0.1")),
            uncertainty_penalty=float(get("uncertainty_penalty", "1.5")),
            gate_z=float(get("gate_z", "1.645")),
            rollout_share=float(get("rollout_share", "0.25")),
            min_offer_gap_days=int(get("min_offer_gap_days", "0")),
            message_language=get("message_language", "en"),
            max_bad_row_share=float(get("max_bad_row_share", "0.05")),
            fairness_max_ratio=float(get("fairness_max_ratio", "2")),
            api_token=get("api_token", ""),
            s3_max_attempts=int(get("s3_max_attempts", "5")),
            s3_timeout_s=float(get("s3_timeout_s", "30")),
            online_store_on_failure=get("online_store_on_failure", "fail"),
        )
        return settings.with_overrides(overrides)


def _out_of_bounds(value: Any, schema: Mapping[str, Any]) -> str | None:
    """The rule ``value`` breaks in ``schema`` (the JSON-schema keywords RUN_PARAMS uses), or None."""
    import re

    if "enum" in schema and value not in schema["enum"]:
        return "must be one of " + ", ".join(str(v) for v in schema["enum"] if v is not None)
    if "minimum" in schema and value < schema["minimum"]:
        return f"must be >= {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        return f"must be <= {schema['maximum']}"
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        return f"must be < {schema['exclusiveMaximum']}"
    if "minLength" in schema and len(value) < schema["minLength"]:
        return "must not be empty"
    if "pattern" in schema and not re.search(schema["pattern"], value):
        return f"must match {schema['pattern']} ({schema.get('description', '')})"
    return None


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
    atomic.write_text(path, secrets.token_hex(32))
    return path.read_text().strip()
