"""Great Expectations 1.x checkpoints at the platform's hand-offs.

Every hand-off (clean raw tables, Spark features, staged assignments) is a GX
checkpoint over a dataframe asset in one file-backed GX project under
``{data_dir}/gx``; Data Docs are built to
``{data_dir}/gx/gx/uncommitted/data_docs/local_site/index.html``.

Row-level problems are handled before this point (see ``promoflow.ingest``:
bad rows are quarantined with a reason). A failed checkpoint here is a
table-level problem: the caller stops the run before anything is published.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


class DataQualityError(RuntimeError):
    """A table-level problem: the run stops before publishing; nothing published changes."""


@dataclass
class CheckResult:
    name: str
    success: bool
    failures: list[str] = field(default_factory=list)

    def raise_if_failed(self, what_to_do: str) -> None:
        if not self.success:
            raise DataQualityError(
                f"Great Expectations checkpoint {self.name!r} failed: "
                + "; ".join(self.failures)
                + f". {what_to_do} The previously published assignments and exports were not touched."
            )


def gx_project_dir(data_dir: str) -> Path:
    return Path(data_dir) / "gx"


def data_docs_index(data_dir: str) -> Path:
    return gx_project_dir(data_dir) / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def _context(data_dir: str):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(gx_project_dir(data_dir)))
    bars = context.variables.progress_bars
    if not bars or (bars.get("globally") if isinstance(bars, dict) else bars.globally) is not False:
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        context.variables.save()
    return context


def run_checkpoint(data_dir: str, name: str, dataframe, expectations: list[Any], engine: str = "pandas") -> CheckResult:
    """Validate ``dataframe`` against ``expectations`` with a named checkpoint.

    ``engine="spark"`` validates a Spark DataFrame with GX's Spark execution
    engine (large tables never go through pandas); ``"pandas"`` a pandas one.
    The suite, validation definition and checkpoint are stored (add_or_update)
    so Data Docs show every night's result per hand-off.
    """
    import great_expectations as gx

    context = _context(data_dir)
    source_name = {"pandas": "promoflow_frames", "spark": "promoflow_spark_frames"}[engine]
    try:
        datasource = context.data_sources.get(source_name)
    except (KeyError, ValueError):
        if engine == "spark":
            datasource = context.data_sources.add_spark(source_name, persist=False)
        else:
            datasource = context.data_sources.add_pandas(source_name)
    try:
        asset = datasource.get_asset(name)
    except LookupError:
        asset = datasource.add_dataframe_asset(name)
    try:
        batch_definition = asset.get_batch_definition("whole_frame")
    except KeyError:
        batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
    suite = context.suites.add_or_update(gx.ExpectationSuite(name=f"{name}_suite", expectations=expectations))
    validation = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{name}_validation", data=batch_definition, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{name}_checkpoint",
            validation_definitions=[validation],
            actions=[],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": dataframe})
    failures: list[str] = []
    for validation_result in result.run_results.values():
        for r in validation_result.results:
            if not r.success:
                cfg = r.expectation_config
                kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id",)}
                detail = r.result.get("partial_unexpected_list") or r.result.get("observed_value")
                failures.append(f"{cfg.type}({kwargs}) observed {detail!r}")
    log.info("GX checkpoint %s: %s", name, "passed" if result.success else f"failed ({len(failures)})")
    return CheckResult(name=name, success=bool(result.success), failures=failures)


def build_data_docs(data_dir: str) -> Path:
    context = _context(data_dir)
    context.build_data_docs()
    return data_docs_index(data_dir)
