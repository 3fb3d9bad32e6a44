"""prediction_snapshots: a model-day's validated predictions, its quarantine and its GX results."""

import contextlib
from dataclasses import replace

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)

from monitoring_pipelines.core.formatting import markdown_table
from monitoring_pipelines.defs.checks import check_specs, checks_write, outcome, to_check_result
from monitoring_pipelines.defs.common import WAREHOUSE_POOL
from monitoring_pipelines.defs.partitions import Partitions, split_key
from monitoring_pipelines.defs.resources import MonitoringResource, later_step_waits
from monitoring_pipelines.storage.reference import MissingReferenceError
from monitoring_pipelines.storage.snapshot import Snapshot
from monitoring_pipelines.validation import suite

PREVIEW_ROWS = 5
FILES_SHOWN = 20


def build(parts: Partitions) -> AssetsDefinition:
    @asset(
        name="prediction_snapshots",
        partitions_def=parts.model_day,
        group_name="ingest",
        pool=WAREHOUSE_POOL,
        kinds={"duckdb", "great_expectations"},
        check_specs=check_specs("prediction_snapshots", suite.CHECKS, parts.model_day),
        description="Validated predictions of one model-day (contract §3). Rows failing a rule go to "
        "quarantined_predictions with the reason; valid + quarantined = rows read.",
    )
    def prediction_snapshots(context: AssetExecutionContext, monitoring: MonitoringResource):
        model_name, day = split_key(context.partition_key)
        model = monitoring.config.model(model_name)
        suite.preload_gx(helper_process=True)  # GX loads on the other core while DuckDB reads the day
        snap, validation, read = Snapshot.from_source(monitoring.config, model, day)
        monitoring.keep(snap)
        for note in validation.warnings:  # a neighbouring day's file left out: its own day is blocked by it
            context.log.warning(note)
        table = _validation_md(validation.results)
        # the check shows the same table, its names escaped
        results = [
            replace(r, metadata={**r.metadata, "validation_md": table})
            if "validation_md" in r.metadata
            else r
            for r in suite.validation_checks(validation, model)
        ]
        warehouse = monitoring.warehouse
        with contextlib.suppress(MissingReferenceError):  # read now: the day's write holds the lock a while
            monitoring.reference(model_name)
        # The day's rows go to the warehouse on a thread while the run's metrics are computed from `snap`;
        # the run's next warehouse access waits for it (and fails, naming it, if it failed).
        write = snap.write(
            warehouse,
            validation,
            also=[checks_write("prediction_snapshots", results, model_name, day, context.run_id)],
            background=validation.usable and later_step_waits(context, DOWNSTREAM),
        )
        monitoring.defer(f"prediction_snapshots of {model_name} {day}", write)
        checks = [to_check_result("prediction_snapshots", r, model_name, day) for r in results]
        checked, tags = outcome(results)
        yield MaterializeResult(
            tags=tags,
            metadata={
                **checked,
                "dagster/row_count": validation.valid_rows,
                "rows_read": validation.read_rows,
                "rows_quarantined": validation.quarantined_rows,
                # rows of the day's folder whose ts is outside its lateness window (quarantined here)
                "rows_outside_day_ignored": read.rows_outside_window,
                "skipped_files": MetadataValue.text("\n".join(validation.warnings) or "none"),
                "quarantine_by_reason": MetadataValue.json(validation.quarantine_by_reason),
                "validation": MetadataValue.md(table),
                "problems": MetadataValue.text("; ".join(validation.problems) or "none"),
                "source_files": MetadataValue.text("\n".join(read.files[:FILES_SHOWN])),
                "preview": MetadataValue.md(_preview(snap)),
                "dagster/column_schema": TableSchema(
                    columns=[TableColumn(name, kind) for name, kind in snap.column_types().items()]
                ),
            },
        )
        yield from checks

    return prediction_snapshots


# Steps that read the day from `snap` and go through `monitoring.warehouse` (which waits for the write).
DOWNSTREAM = (
    "drift_scores",
    "performance_metrics",
    "subgroup_metrics",
    "serving_metrics",
    "shadow_comparisons",
    "alerts",
)


def _preview(snap: Snapshot) -> str:
    head = snap.head(PREVIEW_ROWS)
    if head.empty:
        return "no rows"
    return markdown_table(head.to_dict("records"), list(head.columns), formatters=str)


def _validation_md(results: pd.DataFrame) -> str:
    """The day's expectations: name, column, success and unexpected count, every cell escaped."""
    if results.empty:
        return "no expectations evaluated"
    rows = [
        (
            r.expectation,
            "" if pd.isna(r.column_name) else str(r.column_name),
            "✅" if r.success else "❌",
            "" if pd.isna(r.unexpected_count) else str(int(r.unexpected_count)),
        )
        for r in results.itertuples()
    ]
    return markdown_table(rows, ["expectation", "column", "success", "unexpected"], formatters=str)
