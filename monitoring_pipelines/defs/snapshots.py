"""prediction_snapshots: a model-day's validated predictions, its quarantine and its GX results."""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)

from monitoring_pipelines.defs.checks import check_specs, record_checks
from monitoring_pipelines.defs.common import WAREHOUSE_POOL
from monitoring_pipelines.defs.partitions import model_day_partitions, split_key
from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.storage.sources import source_for
from monitoring_pipelines.validation.suite import results_markdown, validate_day, validation_checks

SNAPSHOT_CHECKS = {
    "snapshot_usable": "Blocking: the day's log exists, is readable, has rows and every required column. "
    "When it fails, nothing downstream runs for the model-day.",
    "validation": "Row-level expectations (GX): failing rows are quarantined with the reason; "
    "warning when any row is rejected, critical above 10 % of the day.",
}


@asset(
    partitions_def=model_day_partitions,
    group_name="ingest",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb", "great_expectations"},
    check_specs=check_specs("prediction_snapshots", SNAPSHOT_CHECKS, blocking=["snapshot_usable"]),
    description="Validated predictions of one model-day (contract §3). Rows failing a rule go to "
    "quarantined_predictions with the reason; valid + quarantined = rows read.",
)
def prediction_snapshots(context: AssetExecutionContext, monitoring: MonitoringResource):
    model_name, day = split_key(context.partition_key)
    config = monitoring.config
    model = config.model(model_name)
    read = source_for(config, model).read_predictions(model, day, day)
    outcome = validate_day(read.frame, model, day, read.files, read.problems)

    snapshot = outcome.valid.assign(model_name=model_name, partition_date=day)
    quarantined = outcome.quarantined.assign(model_name=model_name, partition_date=day)
    warehouse = monitoring.warehouse
    warehouse.ensure_columns(
        "prediction_snapshots",
        {**dict.fromkeys(model.features.numeric, "DOUBLE"), **dict.fromkeys(model.string_columns, "VARCHAR")},
    )
    warehouse.replace_partitions(
        {
            "prediction_snapshots": snapshot,
            "quarantined_predictions": quarantined,
            "validation_results": outcome.results,
        },
        model_name,
        day,
    )
    checks = record_checks(
        warehouse, "prediction_snapshots", validation_checks(outcome, model), model_name, day, context.run_id
    )

    by_reason = (
        quarantined["reason"].str.split("; ").explode().value_counts().to_dict() if len(quarantined) else {}
    )
    yield MaterializeResult(
        metadata={
            "dagster/row_count": len(snapshot),
            "rows_read": outcome.read_rows,
            "rows_quarantined": len(quarantined),
            "rows_outside_day_ignored": read.rows_outside_window,
            "quarantine_by_reason": MetadataValue.json({str(k): int(v) for k, v in by_reason.items()}),
            "validation": MetadataValue.md(results_markdown(outcome.results)),
            "problems": MetadataValue.text("; ".join(outcome.problems) or "none"),
            "source_files": MetadataValue.text("\n".join(read.files[:20])),
            "preview": MetadataValue.md(_preview(snapshot)),
            "dagster/column_schema": TableSchema(
                columns=[TableColumn(c, str(t)) for c, t in snapshot.dtypes.items()]
            ),
        }
    )
    yield from checks


def _preview(frame: pd.DataFrame, rows: int = 5) -> str:
    if frame.empty:
        return "no rows"
    head = frame.head(rows)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in head.itertuples(index=False)]
    return "\n".join(lines)
