"""Assembles the Dagster definitions; no logic lives here."""

import os

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

from dagster import Definitions, in_process_executor  # noqa: E402

from monitoring_pipelines.defs.alerting import (  # noqa: E402
    ALERTING_ASSETS,
    ALERTING_SENSORS,
    alerting_resources,
)
from monitoring_pipelines.defs.dashboard import dashboard  # noqa: E402
from monitoring_pipelines.defs.drift import drift_scores  # noqa: E402
from monitoring_pipelines.defs.performance import performance_metrics  # noqa: E402
from monitoring_pipelines.defs.reference import reference_profiles  # noqa: E402
from monitoring_pipelines.defs.resources import default_resources  # noqa: E402
from monitoring_pipelines.defs.schedules import (  # noqa: E402
    dashboard_job,
    label_refresh_job,
    monitoring_job,
    nightly_dashboard,
    nightly_monitoring,
    reference_job,
)
from monitoring_pipelines.defs.sensors import label_arrivals, register_models  # noqa: E402
from monitoring_pipelines.defs.serving import serving_metrics  # noqa: E402
from monitoring_pipelines.defs.shadow import shadow_comparisons  # noqa: E402
from monitoring_pipelines.defs.snapshots import prediction_snapshots  # noqa: E402
from monitoring_pipelines.defs.subgroups import subgroup_metrics  # noqa: E402

defs = Definitions(
    assets=[
        prediction_snapshots,
        reference_profiles,
        drift_scores,
        performance_metrics,
        subgroup_metrics,
        serving_metrics,
        shadow_comparisons,
        *ALERTING_ASSETS,
        dashboard,
    ],
    jobs=[monitoring_job, reference_job, label_refresh_job, dashboard_job],
    schedules=[nightly_monitoring, nightly_dashboard],
    sensors=[register_models, label_arrivals, *ALERTING_SENSORS],
    resources={**default_resources(), **alerting_resources()},
    executor=in_process_executor,
)
