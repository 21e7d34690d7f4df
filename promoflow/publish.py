"""Publish a night's staged assignments: GX gate, warehouse table, marketing export.

Nothing reaches marketing unless the staged rows pass the assignment
checkpoint. The warehouse's ``promo_assignments`` rows of the run date are
replaced in one transaction (older dates untouched) and the export folder
``{export_uri}/promo_assignments/run_date=YYYY-MM-DD/`` is swapped as a whole
(Parquet + CSV, without user_id).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from promoflow import quality, storage
from promoflow.contract import EXPORT_COLUMNS, NONE_ARM
from promoflow.decisions import staged_assignments_path
from promoflow.settings import Settings
from promoflow.warehouse import PROMO_ASSIGNMENTS_COLUMNS, RAW_SCHEMA, Warehouse, WarehouseUnavailableError

HOLDOUT_TOLERANCE = 0.03


def export_uri(settings: Settings, run_date: date) -> str:
    return storage.join(settings.export_uri, "promo_assignments", f"run_date={run_date.isoformat()}")


def assignment_expectations(settings: Settings, catalogue: list[str], n_users: int) -> list:
    import great_expectations as gx

    share = settings.holdout_share
    return [
        # holdout_flag: is_holdout as 0/1, added for the mean check
        gx.expectations.ExpectTableColumnsToMatchOrderedList(column_list=[*PROMO_ASSIGNMENTS_COLUMNS, "holdout_flag"]),
        gx.expectations.ExpectTableRowCountToEqual(value=n_users),
        gx.expectations.ExpectColumnValuesToBeUnique(column="user_id"),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="user_key"),
        gx.expectations.ExpectColumnValuesToBeInSet(column="promo_id", value_set=[*catalogue, NONE_ARM]),
        gx.expectations.ExpectColumnValuesToBeBetween(column="propensity", min_value=0, max_value=1, strict_min=True),
        gx.expectations.ExpectColumnValuesToBeBetween(column="send_hour", min_value=0, max_value=23),
        gx.expectations.ExpectColumnValuesToBeBetween(column="expected_cost", min_value=0),
        gx.expectations.ExpectColumnSumToBeBetween(column="expected_cost", min_value=0, max_value=settings.budget),
        gx.expectations.ExpectColumnMeanToBeBetween(
            column="holdout_flag",
            min_value=max(0.0, share - HOLDOUT_TOLERANCE),
            max_value=min(1.0, share + HOLDOUT_TOLERANCE),
        ),
    ]


def validate_assignments(settings: Settings, run_date: date, staged: pa.Table) -> None:
    with Warehouse(settings) as wh:
        catalogue = [r[0] for r in wh.query(f"select promo_id from {RAW_SCHEMA}.promotions")]
        n_users = wh.query(f"select count(*) from {RAW_SCHEMA}.users")[0][0]
    frame = staged.to_pandas()
    checks = frame.assign(holdout_flag=frame["is_holdout"].astype(float))
    result = quality.run_checkpoint(
        settings.data_dir, "assignments", checks, assignment_expectations(settings, catalogue, n_users)
    )
    bad_holdout_rows = frame[frame["is_holdout"] & (frame["promo_id"] != NONE_ARM)]
    if len(bad_holdout_rows):
        result.success = False
        result.failures.append(f"{len(bad_holdout_rows)} holdout rows carry an offer")
    result.raise_if_failed(f"The assignments staged for {run_date} are not publishable; nothing was published.")


def run_record(settings: Settings, run_date: date, staged: pa.Table) -> dict:
    """The night's ``promo_runs`` row: the budget and totals the assignments were produced under."""
    import pyarrow.compute as pc

    is_offer = pc.not_equal(staged.column("promo_id"), NONE_ARM)
    return {
        "run_date": run_date,
        "budget": settings.budget,
        "expected_cost": float(pc.sum(staged.column("expected_cost")).as_py() or 0.0),
        "expected_incremental_margin": float(pc.sum(staged.column("expected_incremental_margin")).as_py() or 0.0),
        "users": staged.num_rows,
        "offers": int(pc.sum(is_offer.cast(pa.int64())).as_py() or 0),
        "holdout_users": int(pc.sum(staged.column("is_holdout").cast(pa.int64())).as_py() or 0),
        "holdout_share": settings.holdout_share,
        "policy_version": settings.policy_version,
        "model_version": staged.column("model_version")[0].as_py() if staged.num_rows else None,
        "published_at": datetime.now(UTC).replace(tzinfo=None, microsecond=0),
    }


def publish(settings: Settings, run_date: date) -> dict:
    """GX gate, then the warehouse (one transaction), then the export (``_SUCCESS`` last).

    A failure before the warehouse commit publishes nothing; a failure of the export after
    it leaves the export folder without ``_SUCCESS``; either way the task fails with one
    paragraph and its retry (or a re-run of the date) completes both.
    """
    staged = pq.read_table(staged_assignments_path(settings, run_date))
    try:
        validate_assignments(settings, run_date, staged)
        with Warehouse(settings) as wh:
            wh.replace_assignments(run_date, staged, run_record(settings, run_date, staged))
    except WarehouseUnavailableError as err:
        raise WarehouseUnavailableError(
            f"publish {run_date} failed: {err} Nothing was published for {run_date}: promo_assignments and promo_runs "
            "keep their previous rows and the export was not written."
        ) from err
    target = export_uri(settings, run_date)
    export = staged.select(list(EXPORT_COLUMNS))
    with tempfile.TemporaryDirectory(prefix="promoflow-export-") as tmp:
        folder = Path(tmp) / "export"
        folder.mkdir()
        pq.write_table(export, folder / "promo_assignments.parquet")
        pacsv.write_csv(export, folder / "promo_assignments.csv")
        (folder / "_SUCCESS").write_bytes(b"")
        try:
            storage.storage_for(target, settings.s3_endpoint_url, settings).publish_dir(folder, target)
        except storage.StorageUnavailableError as err:
            raise storage.StorageUnavailableError(
                f"publish {run_date}: the warehouse holds the night's rows, but the marketing export failed: {err} "
                f"{target} has no _SUCCESS marker, so readers must not use it; re-run the publish task "
                "(it replaces the warehouse rows and the export of this date as a whole)."
            ) from err
    promo_ids = staged.column("promo_id").to_pylist()
    per_promo: dict[str, int] = {}
    for p in promo_ids:
        per_promo[p] = per_promo.get(p, 0) + 1
    spent = float(pa.compute.sum(staged.column("expected_cost")).as_py() or 0.0)
    return {
        "run_date": run_date.isoformat(),
        "users": staged.num_rows,
        "assignments_per_promo": dict(sorted(per_promo.items())),
        "budget": settings.budget,
        "budget_used": spent,
        "expected_incremental_margin": float(
            pa.compute.sum(staged.column("expected_incremental_margin")).as_py() or 0.0
        ),
        "warehouse_table": f"{settings.warehouse_url} :: promo_assignments",
        "export": target,
    }
