"""The dashboard for regression and multiclass models: the quality panel, the index sentence and the alert
words follow the task (mean absolute error rose, recall on a class fell, the labels moved), the
multiclass page shows its latest labelled day's confusion matrix and per-class recall, and the model's
own outputs are named for what they are in each task.

`build_task_warehouse` writes a month of rows for one model of each task with the warehouse's own API;
the browser test renders the same data.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring_pipelines.config import MonitoringConfig, config_from_dict
from monitoring_pipelines.dashboard import render_dashboard
from monitoring_pipelines.dashboard.render import plain_problem
from monitoring_pipelines.storage.warehouse import Warehouse
from monitoring_pipelines_tests.defs import test_dashboard_browser as browser

NOW = dt.datetime(2026, 7, 1, 8, 0, tzinfo=dt.UTC)
DAYS = [dt.date(2026, 6, 1) + dt.timedelta(days=i) for i in range(30)]  # 1..30 June
CLASSES = ["billing", "technical", "account", "other"]
REG, MC = "delivery_time", "ticket_router"
LABELLED_UNTIL = 23  # days 1..23 June fully labelled; later days only estimated
CRITICAL_FROM = dt.date(2026, 6, 18)  # the regression model's error grows from here


def task_config(tmp_path: Path) -> MonitoringConfig:
    reference = {"start": "2026-05-01", "end": "2026-05-28"}
    raw = {
        "data_dir": str(tmp_path),
        "warehouse": str(tmp_path / "warehouse.duckdb"),
        "models": [
            {"name": REG, "task": "regression", "features": {"numeric": ["distance_km"]},
             "reference": reference, "owner": "logistics-ml"},
            {"name": MC, "task": "multiclass_classification", "classes": CLASSES,
             "features": {"categorical": ["channel"]}, "reference": reference, "owner": "support-ml"},
        ],
    }  # fmt: skip
    return config_from_dict(raw, tmp_path / "config.yaml")


def _row(model: str, day: dt.date, metric: str, value: float, *, half: float, estimated: bool = False,
         trusted: bool | None = None, fraction: float = 1.0) -> dict:  # fmt: skip
    return dict(model_name=model, partition_date=day, metric=metric, value=value, ci_low=value - half,
                ci_high=value + half, n=1000, labelled_fraction=fraction, estimated=estimated, trusted=trusted,
                estimate_note=None if trusted is not False else "predictions outside the reference range")  # fmt: skip


def _baselines(model: str, means: dict[str, tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame([dict(model_name=model, profile_version="p1", domain="performance", metric=metric,
                              estimated=False, mean=mean, std=std, n_days=28)
                         for metric, (mean, std) in means.items()])  # fmt: skip


def _regression_rows(rng: np.random.Generator) -> list[dict]:
    """MAE ~4 minutes until 17 June, then 6.5; bias moves from 0 to +2; DLE estimates for the unlabelled days,
    the last two untrusted."""
    rows = []
    for i, day in enumerate(DAYS):
        worse = day >= CRITICAL_FROM
        if i < LABELLED_UNTIL:
            for metric, value in (("mae", 6.5 if worse else 4.0), ("rmse", 8.5 if worse else 5.2),
                                  ("bias", 2.0 if worse else 0.0), ("r2", 0.55 if worse else 0.8),
                                  ("median_ae", 3.1), ("smape", 0.18), ("label_mean", 35.0 if worse else 31.0)):  # fmt: skip
                rows.append(_row(REG, day, metric, value + float(rng.normal(0, 0.05)), half=0.2))
        else:
            for metric, value in (("mae", 4.3), ("rmse", 5.5)):
                rows.append(
                    _row(REG, day, metric, value, half=0.4, estimated=True, trusted=i < 28, fraction=0.1)
                )
    return rows


def _multiclass_rows(rng: np.random.Generator) -> list[dict]:
    """Accuracy ~0.85; the billing class's recall falls from 0.9 to 0.6 from 15 June."""
    rows = []
    for i, day in enumerate(DAYS):
        late = day >= dt.date(2026, 6, 15)
        if i < LABELLED_UNTIL:
            metrics = {"accuracy": 0.8 if late else 0.85, "macro_f1": 0.7 if late else 0.82, "weighted_f1": 0.83,
                       "log_loss": 0.45}  # fmt: skip
            for c in CLASSES:
                metrics[f"recall:{c}"] = 0.6 if (c == "billing" and late) else 0.9
                metrics[f"precision:{c}"] = 0.85
                metrics[f"label_share:{c}"] = 0.25
            for metric, value in metrics.items():
                rows.append(_row(MC, day, metric, value + float(rng.normal(0, 0.005)), half=0.02))
        else:
            for metric in ("accuracy", "macro_f1", "recall:billing"):
                rows.append(_row(MC, day, metric, 0.8, half=0.04, estimated=True, trusted=True, fraction=0.3))
            # the first labels of the day: a measured row over 30% of its predictions
            rows.append(_row(MC, day, "accuracy", 0.7, half=0.1, fraction=0.3))
    return rows


def _confusion(day: dt.date, billing_right: int) -> list[dict]:
    """A 4-class confusion matrix: 200 rows per observed class, billing mostly mistaken for account."""
    out = []
    for observed in CLASSES:
        right = billing_right if observed == "billing" else 180
        for predicted in CLASSES:
            if predicted == observed:
                n = right
            elif observed == "billing" and predicted == "account":
                n = 200 - right - 10
            else:
                n = (
                    5
                    if observed == "billing" and predicted != "account"
                    else (20 if predicted == "other" else 0)
                )
                if observed == "other" and predicted != "other":
                    n = 10 if predicted != "account" else 0
            out.append(dict(model_name=MC, partition_date=day, observed_class=observed, predicted_class=predicted,
                            n=n))  # fmt: skip
    return out


def build_task_warehouse(tmp_path: Path) -> tuple[Warehouse, MonitoringConfig]:
    config = task_config(tmp_path)
    wh = Warehouse(config.warehouse)
    rng = np.random.default_rng(11)
    wh.replace_where(
        "performance_metrics", pd.DataFrame(_regression_rows(rng) + _multiclass_rows(rng)), "true", []
    )
    wh.replace_where(
        "reference_baselines",
        pd.concat([
            _baselines(REG, {"mae": (4.0, 0.1), "rmse": (5.2, 0.1), "bias": (0.0, 0.1), "r2": (0.8, 0.01),
                             "label_mean": (31.0, 0.3)}),
            _baselines(MC, {"accuracy": (0.85, 0.005), "macro_f1": (0.82, 0.005),
                            **{f"recall:{c}": (0.9, 0.01) for c in CLASSES}}),
        ]),
        "true", [],
    )  # fmt: skip
    # the latest labelled day (23 June) and a later day with few labels yet: the page draws 23 June
    confusion = _confusion(DAYS[LABELLED_UNTIL - 1], 120) + _confusion(DAYS[-2], 30)
    wh.replace_where("confusion_matrix", pd.DataFrame(confusion), "true", [])

    drift = []
    for day in DAYS:
        for model, feature in ((REG, "__score__"), (REG, "distance_km"), (MC, "__score__"),
                               (MC, "__predicted_class__"), (MC, "channel")):  # fmt: skip
            psi = 0.3 if (feature == "__predicted_class__" and day >= dt.date(2026, 6, 15)) else 0.02
            drift.append(dict(model_name=model, partition_date=day, feature=feature, kind="numeric", statistic="psi",
                              value=psi, threshold=0.25, drifted=psi > 0.25, n_reference=5000, n_current=1000))  # fmt: skip
    wh.replace_where("drift_scores", pd.DataFrame(drift), "true", [])

    sub = []
    for day in DAYS[:LABELLED_UNTIL]:
        for model, metric, values in ((REG, "mae_ratio", {"north": 1.4, "south": 0.8}),
                                      (MC, "accuracy_shortfall", {"email": 0.02, "chat": -0.02})):  # fmt: skip
            for value, v in values.items():
                sub.append(dict(model_name=model, partition_date=day, segment="region", segment_value=value,
                                metric=metric, value=v, ci_low=v - 0.05, ci_high=v + 0.05, n=400))  # fmt: skip
    wh.replace_where("subgroup_metrics", pd.DataFrame(sub), "true", [])

    shadow = []
    for day in DAYS[:LABELLED_UNTIL]:
        for metric, delta in (("accuracy", 0.02), ("recall:billing", 0.2), ("recall:other", 0.0)):
            shadow.append(dict(model_name=MC, partition_date=day, champion_version="v1", shadow_version="v2",
                               segment="__all__", segment_value="__all__", metric=metric, champion_value=0.8,
                               shadow_value=0.8 + delta, delta=delta, ci_low=delta - 0.02, ci_high=delta + 0.02,
                               p_value=0.01, n=1000))  # fmt: skip
    wh.replace_where("shadow_comparisons", pd.DataFrame(shadow), "true", [])

    created = pd.Timestamp("2026-06-19 06:00", tz="UTC")
    alerts = [
        dict(alert_id="r-mae", model_name=REG, partition_date=DAYS[LABELLED_UNTIL - 1], first_seen_date=CRITICAL_FROM,
             last_seen_date=DAYS[LABELLED_UNTIL - 1], check_name="performance_critical_drop", metric="mae",
             subject="mae", severity="critical", value=6.5, threshold=5.0, status="open", dedup_key="r|mae",
             message="mae 6.5 above the critical line 5.0", created_at=created, incident_id="inc-r"),
        dict(alert_id="r-target", model_name=REG, partition_date=DAYS[LABELLED_UNTIL - 1],
             first_seen_date=CRITICAL_FROM, last_seen_date=DAYS[LABELLED_UNTIL - 1], check_name="target_drift",
             metric="label_mean", subject="label_mean", severity="warning", value=35.0, threshold=31.9,
             status="open", dedup_key="r|target", message="label mean 35 outside 30.1 to 31.9", created_at=created,
             incident_id="inc-r"),
        dict(alert_id="m-recall", model_name=MC, partition_date=DAYS[LABELLED_UNTIL - 1],
             first_seen_date=dt.date(2026, 6, 15), last_seen_date=DAYS[LABELLED_UNTIL - 1],
             check_name="performance_degradation", metric="recall:billing", subject="model", severity="warning",
             value=0.6, threshold=0.87, status="open", dedup_key="m|recall", message="recall:billing 0.6 below 0.87",
             created_at=created, incident_id="inc-m"),
        dict(alert_id="m-classes", model_name=MC, partition_date=DAYS[-1], first_seen_date=dt.date(2026, 6, 16),
             last_seen_date=DAYS[-1], check_name="feature_drift", metric="psi", subject="__predicted_class__",
             severity="warning", value=0.3, threshold=0.25, status="open", dedup_key="m|pc", created_at=created,
             incident_id="inc-m-drift", message="predicted class mix PSI 0.30"),
    ]  # fmt: skip
    wh.replace_where("alerts", pd.DataFrame(alerts), "true", [])
    return wh, config


chromium = browser.chromium  # the browser test's fixture: Chromium, installed when missing


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("dashboard_tasks")
    wh, config = build_task_warehouse(root)
    result = render_dashboard(wh, config, root / "dashboard", now=NOW)
    return result


def _specs(page: str) -> list[dict]:
    return [
        json.loads(s)
        for s in re.findall(r'<script type="application/json" id="spec-\d+">(.*?)</script>', page)
    ]


def _card(index: str, model: str) -> str:
    start = index.index(f'id="model-{model}"')
    return index[start : index.index("</section>", start)]


def _section(page: str, name: str) -> str:
    start = page.index(f'<section id="{name}">')
    return page[start : page.index("</section>", start)]


def _metrics_by_chart(page: str) -> list[set]:
    return [{r.get("metric") for r in s["datasets"]["rows"]} for s in _specs(page)]


def test_index_sentences_read_right_for_each_task(site) -> None:
    index = site.index_path.read_text()
    reg = _card(index, REG)
    assert 'class="card status-red"' in index[index.index(f'id="model-{REG}"') - 60 :]
    assert (
        "Action needed: The mean absolute error rose above its usual range (worse predictions) "
        "on 18 Jun 2026 (13 days ago); 2 alerts; no backlog item yet." in reg
    )
    mc = _card(index, MC)
    assert (
        "Needs attention: Prediction quality (recall on class billing) fell below its usual range "
        "on 15 Jun 2026 (16 days ago); 1 alert; no backlog item yet. Also 1 other open problem." in mc
    )
    for card in (reg, mc):
        assert "AUC" not in card and "positive" not in card


def test_quality_card_shows_the_tasks_headline_metric_against_its_band(site) -> None:
    index = site.index_path.read_text()
    reg = _card(index, REG)
    # MAE is lower-is-better: above its band is bad (red), in the label's unit
    assert '<div class="kpi kpi-bad"><div class="kpi-label">Model quality</div>' in reg
    assert re.search(r"mean absolute error \(label&#39;s unit; lower is better\): 6\.\d+</div>", reg)
    assert "above its usual range (3.664 to 4.336), on 23 Jun 2026" in reg  # 4.0 ± 3.3615·0.1 (28 days)
    mc = _card(index, MC)
    assert re.search(r'<div class="kpi-value">accuracy: 0\.80\d+</div>', mc)
    assert "below its usual range (0.8332 to 0.8668)" in mc
    assert re.search(r"macro F1 \(every class counts the same\): 0\.(69|70)\d*, below its usual range", mc)
    assert "kpi-also-bad" in mc


def test_regression_page_draws_mae_with_its_estimate_and_bias(site) -> None:
    page = site.model_pages[REG].read_text()
    perf = _section(page, "performance")
    specs = _specs(page)
    headline = next(s for s in specs if "mean absolute error (label's unit; lower is better)" in
                    {r.get("metric") for r in s["datasets"]["rows"]})  # fmt: skip
    rows = headline["datasets"]["rows"]
    assert {r["metric"] for r in rows} == {
        "mean absolute error (label's unit; lower is better)",
        "root mean squared error (label's unit; lower is better)",
        "bias: mean of predicted − observed (0 is unbiased)",
        "R² (share of the variance explained)",
    }
    mae = [r for r in rows if r["metric"].startswith("mean absolute")]
    kinds = {(r["kind"], r["trusted"]) for r in mae}
    # the untrusted estimates are drawn apart (hollow, never joined into the line)
    assert kinds == {("measured (from labels)", True), ("estimated (labels not in yet)", True),
                     ("estimate not trusted", False)}  # fmt: skip
    assert [r["band_low"] for r in mae if r["kind"].startswith("measured")] == [
        pytest.approx(4.0 - 3.3615 * 0.1, abs=1e-4)  # 28 reference days: the checks' prediction interval
    ] * LABELLED_UNTIL
    assert "the day's predicted values fell outside the range" in perf
    assert "2 days, 2026-06-29 to 2026-06-30" in perf
    assert "not a change in how the inputs relate to the outcome" in perf
    assert "More quality metrics (mean observed value (labels), median absolute error" in perf
    assert "AUC" not in page and "positive-decision" not in page
    # prediction drift is the predicted value
    overview = [s for s in specs if "feature_label" in json.dumps(s)]
    labels = {r["feature_label"] for s in overview for r in s["datasets"]["rows"]}
    assert "predicted value (prediction drift)" in labels and "__score__" not in labels
    assert "The mean observed value (observed outcomes) moved out of its usual range" in page


def test_multiclass_page_has_confusion_matrix_of_latest_labelled_day_and_per_class_recall(site) -> None:
    page = site.model_pages[MC].read_text()
    perf = _section(page, "performance")
    assert "<h3>Confusion matrix, 23 Jun 2026</h3>" in perf  # not 29 June, still mostly unlabelled
    table = perf[
        perf.index('<table class="confusion">') : perf.index(
            "</table>", perf.index('<table class="confusion">')
        )
    ]
    header = re.findall(r"<th>(\w+)</th>", table.split("</thead>")[0])
    assert header == [*CLASSES, "rows"]
    billing = table[table.index("<tr><th>billing</th>") :].split("</tr>")[0]
    cells = re.findall(
        r'<td class="num shade-(\d)( diagonal)?">([\d,]+) <small>([\d.]+%)</small></td>', billing
    )
    assert [(n, share, bool(diag)) for _, diag, n, share in cells] == [
        ("120", "60.0%", True),
        ("5", "2.5%", False),
        ("70", "35.0%", False),
        ("5", "2.5%", False),
    ]
    specs = _specs(page)
    (heat,) = [s for s in specs if {"observed_class", "predicted_class"} <= set(s["datasets"]["rows"][0])]
    assert len(heat["datasets"]["rows"]) == 16
    recall = next(s for s in specs if {r.get("metric") for r in s["datasets"]["rows"]} == set(CLASSES))
    billing_rows = [r for r in recall["datasets"]["rows"] if r["metric"] == "billing"]
    assert min(r["value"] for r in billing_rows) < 0.65 and "band_low" in billing_rows[0]
    headline = _metrics_by_chart(page)
    assert {"accuracy", "macro F1 (every class counts the same)", "weighted F1 (classes weighted by size)",
            "log loss (lower is better)"} in headline  # fmt: skip
    assert "precision of billing" in perf and "share of billing in labels" in perf
    labels = {r["feature_label"] for s in specs for r in s["datasets"]["rows"] if "feature_label" in r}
    assert {
        "predicted classes (prediction drift)",
        "class confidence (prediction drift)",
    } <= labels
    assert "The mix of predicted classes shifted away from the reference period" in page
    shadow = [m for m in headline if "recall:billing" in m]
    assert shadow and shadow[0] >= {"accuracy", "recall:billing", "recall:other"}


def test_a_binary_model_keeps_its_words() -> None:
    row = {"check_name": "performance_degradation", "metric": "log_loss", "subject": "model"}
    assert plain_problem(row) == "prediction quality (log loss) fell below its usual range"
    assert plain_problem({**row, "metric": "auc"}) == "prediction quality (AUC) fell below its usual range"
    drift = {"check_name": "feature_drift", "metric": "psi", "subject": "__score__"}
    assert plain_problem(drift) == "the model's scores shifted away from the reference period"
    assert (
        plain_problem(drift, "regression")
        == "the model's predicted values shifted away from the reference period"
    )
    assert (
        plain_problem({**row, "metric": "log_loss"}, "multiclass_classification")
        == "the log loss rose above its usual range (worse predictions)"
    )
    assert (
        plain_problem(
            {"check_name": "target_drift", "metric": "label_share:billing"}, "multiclass_classification"
        )
        == "the share of class billing among the labels (observed outcomes) moved out of its usual range"
    )
    assert (
        plain_problem({"check_name": "performance_degradation", "metric": "bias"}, "regression")
        == "the bias (mean of predicted − observed) moved out of its usual range"
    )


@pytest.mark.e2e
@pytest.mark.parametrize("model", [REG, MC])
def test_task_pages_draw_every_chart_in_chromium(chromium: Path, site, tmp_path: Path, model: str) -> None:
    """The confusion heat map, the per-class recall panels and the regression panels draw as SVG, no error."""
    page = site.model_pages[model]
    dom, console_errors = browser._rendered_dom(chromium, tmp_path / "profile", page)
    browser._assert_every_chart_drawn(dom, page, console_errors)
    svg_texts = set(re.findall(r"<text\b[^>]*>([^<]*)</text>", dom))
    if model == MC:
        assert "share of the observed class" in svg_texts  # the heat map's legend, drawn
        assert set(CLASSES) <= svg_texts  # the per-class recall panels' titles and the heat map's axes
    else:
        assert "mean absolute error (label's unit; lower is better)" in svg_texts


def test_fairness_panel_draws_the_worst_group_against_its_line(site) -> None:
    for model, name, worst, line in (
        (REG, "highest error ratio of a group to the rest (MAE)", 1.4, 1.25),
        (MC, "largest accuracy shortfall of a group to the rest", 0.02, 0.1),
    ):
        page = site.model_pages[model].read_text()
        (spec,) = [s for s in _specs(page) if {r.get("metric") for r in s["datasets"]["rows"]} == {name}]
        rows = spec["datasets"]["rows"]
        assert len(rows) == LABELLED_UNTIL  # one per segment-day: the worst group
        assert {r["value"] for r in rows} == {worst} and {r["threshold"] for r in rows} == {line}
