"""The reference build calibrates the scores (core.baselines.reference_baselines): its profile carries the
map, its estimated bands are computed with the cross-fitted maps, and a live day of an overconfident
model is estimated right and judged without a false alarm."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from monitoring_pipelines.core import profiles as P
from monitoring_pipelines.core.baselines import reference_baselines
from monitoring_pipelines.core.performance import daily_performance, estimation_inputs, performance_checks
from monitoring_pipelines.storage.snapshot import Snapshot
from monitoring_pipelines_tests.core.test_drift import as_log, make_model, make_rows

K = 2.5  # the model outputs sigmoid(K·z) for a true P(y = 1) = sigmoid(z): overconfident


def overconfident(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    rows = make_rows(n, rng)
    z = rng.normal(-0.8, 1.6, n)
    rows["score"] = expit(K * z)
    rows["prediction"] = (rows["score"] >= 0.3).astype(int)
    return rows, (rng.random(n) < expit(z)).astype(int)


def test_the_reference_build_calibrates_and_live_estimates_land_on_the_realized_metrics() -> None:
    rng = np.random.default_rng(21)
    model = make_model()
    frames, labels = [], []
    for i in range(10):
        day = model.reference.start + dt.timedelta(days=i)
        rows, y = overconfident(1500, rng)
        log = as_log(rows, day).assign(prediction_id=lambda f, i=i: f"d{i}-" + f["prediction_id"])
        log["request_id"] = f"d{i}-" + log["request_id"]
        frames.append(log)
        labels.append(
            pd.DataFrame(
                {"request_id": log["request_id"], "label": y, "label_ts": log["ts"] + pd.Timedelta(days=3)}
            )
        )
    snap, validation = Snapshot.from_frame(
        model, pd.concat(frames, ignore_index=True), model.reference.start, model.reference.end
    )
    with snap:
        assert validation.quarantined_rows == 0
        snap.set_labels(pd.concat(labels, ignore_index=True))
        profile = P.build_reference_profile(snap.columns(), model)
        profile, baselines = reference_baselines(model, profile, snap)
    assert profile.calibration is not None and profile.calibration.applied
    assert P.profile_from_rows(P.profile_to_rows(profile)).calibration.note == profile.calibration.note
    bands = baselines[baselines["domain"] == "performance"].reset_index(drop=True)

    rows, y = overconfident(5000, rng)
    calibration, support = estimation_inputs(profile)
    today = daily_performance(rows, calibration=calibration, support=support)
    auc = today.set_index("metric").loc["auc", "value"]
    assert abs(auc - roc_auc_score(y, rows["score"])) < 0.025  # raw scores would say ~0.95 for ~0.82
    assert [o.status for o in performance_checks(today, bands, model.thresholds.performance)] == [
        "passed"
    ] * 2
