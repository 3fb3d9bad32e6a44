"""The static dashboard: every section present, readable health verdicts, no network, same bytes twice.

`build_demo_warehouse` fills a temporary warehouse with a month of small synthetic rows that follow
the TABLES columns; the browser test renders the same data.
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
from monitoring_pipelines.dashboard import assess_health, render_dashboard
from monitoring_pipelines.dashboard.render import SCRIPTS, plain_topic
from monitoring_pipelines.storage.warehouse import Warehouse

NOW = dt.datetime(2026, 7, 1, 8, 0, tzinfo=dt.UTC)
# Values from the data that would be markup if a page pasted them in: a segment value that is an element
# with a handler, and a category that closes the <script> holding a chart's spec.
HOSTILE_SEGMENT = "<img src=x onerror=alert(1)>"
HOSTILE_CATEGORY = "</script><script>alert(2)</script>"
DAYS = [dt.date(2026, 6, 1) + dt.timedelta(days=i) for i in range(30)]  # 1..30 June
SECTIONS = ["health", "performance", "drift", "subgroups", "shadow", "serving", "backlog"]


def demo_config(tmp_path: Path) -> MonitoringConfig:
    """Three models: one in trouble (red), one quiet (green), one that never sent data (amber)."""
    raw = {
        "data_dir": str(tmp_path),
        "warehouse": str(tmp_path / "warehouse.duckdb"),
        "models": [
            {
                "name": "credit_default",
                "features": {"numeric": ["income", "debt_ratio"], "categorical": ["region"]},
                "segments": ["age_band", "sex"],
                "reference": {"start": "2026-05-01", "end": "2026-05-28"},
                "outcomes": ["repaid"],
                "owner": "risk-ml",
                "thresholds": {"performance": {"band_k": 3.0}, "outcomes": {"band_k": 3.0}},
            },
            {
                "name": "churn_propensity",
                "features": {"numeric": ["tenure_months"], "categorical": ["plan"]},
                "reference": {"start": "2026-05-01", "end": "2026-05-28"},
                "owner": "growth-ml",
            },
            {
                "name": "fraud_score",
                "features": {"numeric": ["amount"]},
                "reference": {"start": "2026-05-01", "end": "2026-05-28"},
            },
        ],
    }
    return config_from_dict(raw, tmp_path / "config.yaml")


def _rows(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame.from_records(records)


def build_demo_warehouse(tmp_path: Path) -> tuple[Warehouse, MonitoringConfig]:
    """A month of synthetic monitoring output: income drifts from 20 June, p99 latency spikes on the 25th."""
    config = demo_config(tmp_path)
    wh = Warehouse(config.warehouse)
    rng = np.random.default_rng(7)
    m = "credit_default"

    drift = []
    for day in DAYS:
        for feature in ("income", "debt_ratio", "region", "__score__"):
            psi = float(rng.uniform(0.01, 0.06))
            if feature == "income" and day >= dt.date(2026, 6, 20):
                psi = 0.3 + 0.01 * (day - dt.date(2026, 6, 20)).days
            drift.append(dict(model_name=m, partition_date=day, feature=feature, kind="numeric", statistic="psi",
                              value=psi, p_value=None, threshold=0.25, drifted=psi > 0.25,
                              severity="critical" if psi > 0.25 else None, n_reference=5000, n_current=1000))  # fmt: skip
            if feature in ("income", "debt_ratio"):
                w = float(rng.uniform(0.01, 0.05)) + (0.1 if feature == "income" and psi > 0.25 else 0.0)
                drift.append(dict(model_name=m, partition_date=day, feature=feature, kind="numeric",
                                  statistic="wasserstein_norm", value=w, threshold=0.1, drifted=w > 0.1,
                                  n_reference=5000, n_current=1000))  # fmt: skip
                # test and descriptive statistics: kept in the table, not drawn
                for statistic in ("ks", "mean"):
                    drift.append(dict(model_name=m, partition_date=day, feature=feature, kind="numeric",
                                      statistic=statistic, value=0.1, p_value=0.5, drifted=False))  # fmt: skip
    wh.replace_where("drift_scores", _rows(drift), "model_name = ?", [m])

    perf = []
    for i, day in enumerate(DAYS):
        for metric, base in (("auc", 0.82), ("log_loss", 0.41)):
            if i < 23:  # labels complete up to 23 June
                v = base + float(rng.normal(0, 0.01))
                perf.append(dict(model_name=m, partition_date=day, metric=metric, value=v, ci_low=v - 0.02,
                                 ci_high=v + 0.02, n=1000, labelled_fraction=1.0, estimated=False))  # fmt: skip
            if i >= 19:
                v = base - 0.02 + float(rng.normal(0, 0.01))
                trusted = i < 27  # the last three days' scores left the reference range: not trusted
                perf.append(dict(model_name=m, partition_date=day, metric=metric, value=v if trusted else 0.99,
                                 ci_low=v - 0.04, ci_high=v + 0.04, n=1000, labelled_fraction=0.2, estimated=True,
                                 trusted=trusted,
                                 estimate_note=None if trusted else "scores outside the reference range"))  # fmt: skip
        v = 0.91 + float(rng.normal(0, 0.01))
        perf.append(dict(model_name=m, partition_date=day, metric="outcome:repaid", value=v, ci_low=v - 0.015,
                         ci_high=v + 0.015, n=800, labelled_fraction=0.8, estimated=False))  # fmt: skip
    wh.replace_where("performance_metrics", _rows(perf), "model_name = ?", [m])
    baselines = [dict(model_name=m, profile_version="p1", domain=domain, metric=metric, estimated=False, mean=mean,
                      std=0.01, n_days=28)
                 for domain, metric, mean in (("performance", "auc", 0.82), ("performance", "log_loss", 0.41),
                                              ("outcome", "outcome:repaid", 0.91))]  # fmt: skip
    wh.replace_where("reference_baselines", _rows(baselines), "model_name = ?", [m])

    sub = []
    for day in DAYS:
        late = day >= dt.date(2026, 6, 15)
        # per-segment fairness summaries (segment_value '__all__', as core.fairness writes them)
        for segment, parity in (("age_band", 0.18 if late else 0.06), ("sex", 0.03)):
            for metric, value in (
                ("demographic_parity_difference", parity),
                ("equalized_odds_difference", 0.05),
            ):
                sub.append(dict(model_name=m, partition_date=day, segment=segment, segment_value="__all__",
                                metric=metric, value=value, ci_low=value - 0.02, ci_high=value + 0.02,
                                n=1000))  # fmt: skip
        for metric, overall in (("positive_rate", 0.3), ("recall", 0.7)):
            for segment, values in (
                ("age_band", ("18-25", "26-40", "41+")),
                ("sex", ("F", "M")),
                ("region", (HOSTILE_SEGMENT, HOSTILE_CATEGORY)),
            ):
                for j, value in enumerate(values):
                    v = overall + 0.03 * (j - 1) + float(rng.normal(0, 0.01))
                    if segment == "age_band" and value == "18-25" and late:
                        v -= 0.12
                    sub.append(dict(model_name=m, partition_date=day, segment=segment, segment_value=value,
                                    metric=metric, value=v, ci_low=v - 0.03, ci_high=v + 0.03, n=300,
                                    gap=v - overall, ratio=v / overall, labelled=250))  # fmt: skip
    wh.replace_where("subgroup_metrics", _rows(sub), "model_name = ?", [m])

    shadow = []
    for day in DAYS:
        for metric, champ, better in (("auc", 0.82, 0.012), ("log_loss", 0.41, -0.01)):
            delta = better + float(rng.normal(0, 0.004))
            for segment, value in (("__all__", "__all__"), ("age_band", "18-25")):
                shadow.append(dict(model_name=m, partition_date=day, champion_version="v1", shadow_version="v2",
                                   segment=segment, segment_value=value, metric=metric, champion_value=champ,
                                   shadow_value=champ + delta, delta=delta, ci_low=delta - 0.008,
                                   ci_high=delta + 0.008, p_value=0.01, n=1000))  # fmt: skip
        # a pair statistic (no delta) and a serving row: kept in the table, not drawn
        shadow.append(dict(model_name=m, partition_date=day, champion_version="v1", shadow_version="v2",
                           segment="__all__", segment_value="__all__", metric="agreement_rate", ci_low=0.9,
                           ci_high=0.95, n=1000))  # fmt: skip
        shadow.append(dict(model_name=m, partition_date=day, champion_version="v1", shadow_version="v2",
                           segment="__all__", segment_value="__all__", metric="requests", champion_value=1000,
                           shadow_value=990, delta=-10, n=990))  # fmt: skip
    wh.replace_where("shadow_comparisons", _rows(shadow), "model_name = ?", [m])
    recs = [dict(model_name=m, partition_date=day, champion_version="v1", shadow_version="v2",
                 verdict="promote" if day == DAYS[-1] else "keep_watching", primary_metric="auc", delta=0.012,
                 ci_low=0.004, ci_high=0.02, p_value=0.003, days_pooled=7, days_needed=None, n=7000,
                 harmed_segments=json.dumps([{"segment": "age_band", "segment_value": "18-25", "metric": "auc",
                                              "delta": -0.031}]),
                 slo_breaches="[]", reasons=json.dumps(["shadow is significantly better on auc"]))
            for day in DAYS[-3:]]  # fmt: skip
    wh.replace_where("shadow_recommendations", _rows(recs), "model_name = ?", [m])

    serving = []
    for model in (m, "churn_propensity"):
        for day in DAYS:
            for role, version in (("champion", "v1"), ("shadow", "v2")):
                if model != m and role == "shadow":
                    continue
                p99 = (
                    1400.0
                    if (model == m and day == dt.date(2026, 6, 25))
                    else 300 + float(rng.uniform(0, 60))
                )
                requests = int(rng.integers(900, 1100))
                errors = int(rng.integers(0, 8))
                serving.append(dict(model_name=model, partition_date=day, role=role, model_version=version,
                                    latency_p50_ms=40 + float(rng.uniform(0, 5)),
                                    latency_p95_ms=150 + float(rng.uniform(0, 20)), latency_p99_ms=p99,
                                    requests=requests, peak_requests_per_hour=120, error_rate=errors / requests,
                                    errors=errors))  # fmt: skip
            # the model-wide row core.serving adds: must not be drawn as a third role or double the requests
            serving.append(dict(model_name=model, partition_date=day, role="__all__", model_version="__all__",
                                latency_p99_ms=9999.0, requests=99999, error_rate=0.5, errors=49999))  # fmt: skip
    wh.replace_where("serving_metrics", _rows(serving), "true", [])

    churn_drift = [dict(model_name="churn_propensity", partition_date=day, feature=f, statistic="psi",
                        value=0.02, threshold=0.25, drifted=False, n_reference=4000, n_current=900)
                   for day in DAYS for f in ("tenure_months", "plan")]  # fmt: skip
    wh.replace_where("drift_scores", _rows(churn_drift), "model_name = ?", ["churn_propensity"])

    created = pd.Timestamp("2026-06-21 06:00", tz="UTC")
    alerts = [
        dict(alert_id="a-drift-income", model_name=m, partition_date=DAYS[-1], first_seen_date=dt.date(2026, 6, 20),
             last_seen_date=DAYS[-1], check_name="critical_drift", asset="drift_scores", metric="psi",
             subject="income", severity="critical", initial_severity="critical", value=0.4, threshold=0.25,
             message="Income distribution shifted (PSI 0.40 > 0.25)", status="open", dedup_key="m|drift|income",
             run_id="run-30", consecutive_days=11, evidence=json.dumps({"psi": 0.4, "top_bin": "income > 90k"}),
             created_at=created, incident_id="inc-income", root_cause="income mean 44 vs reference 44,384, ÷1,000"),
        dict(alert_id="a-range-income", model_name=m, partition_date=DAYS[-1], first_seen_date=dt.date(2026, 6, 21),
             last_seen_date=DAYS[-1], check_name="data_quality", asset="drift_scores", metric="out_of_range_share",
             subject="income", severity="critical", value=0.97, threshold=0.05,
             message=f"97% of income values outside the reference range, e.g. {HOSTILE_CATEGORY}", status="open",
             dedup_key="m|quality|income", run_id="run-30", consecutive_days=10,
             evidence=json.dumps({"top_category": HOSTILE_CATEGORY, "reference": {"mean": 44384.0},
                                  "current": {"mean": 44.0}}),
             created_at=created, incident_id="inc-income", root_cause="income mean 44 vs reference 44,384, ÷1,000"),
        dict(alert_id="a-latency", model_name=m, partition_date=dt.date(2026, 6, 25), check_name="serving_slo",
             metric="latency_p99_ms", subject="champion", severity="warning", value=1400.0, threshold=500.0,
             message="p99 latency 1400 ms above 500 ms", status="acknowledged", dedup_key="m|latency",
             run_id="run-25", created_at=created, incident_id="inc-latency"),
        dict(alert_id="a-shadow-info", model_name=m, partition_date=DAYS[-1], check_name="shadow_promotion",
             metric="auc", subject="v2", severity="info", value=0.012, threshold=0.0,
             message="Shadow v2 beats champion v1", status="open", dedup_key="m|shadow|v2", created_at=created),
        # a standing fairness finding (a gap the model had in its reference period): info, older than the incident
        dict(alert_id="a-fair-standing", model_name=m, partition_date=DAYS[-1], first_seen_date=DAYS[0],
             last_seen_date=DAYS[-1], check_name="fairness_gap", metric="demographic_parity_ratio",
             subject=f"region={HOSTILE_SEGMENT}", severity="info", value=0.7, threshold=0.8,
             message=f"region={HOSTILE_SEGMENT} ratio 0.70 below 0.8, as in the reference period", status="open",
             dedup_key="m|fair|region", created_at=created, incident_id="inc-fair"),
        dict(alert_id="a-old-resolved", model_name=m, partition_date=dt.date(2026, 6, 3), check_name="oldcheck_gone",
             metric="null_rate", subject="region", severity="critical", value=0.3, threshold=0.2,
             message="SHOULD NOT APPEAR", status="resolved", dedup_key="m|old", created_at=created),
    ]  # fmt: skip
    wh.replace_where("alerts", _rows(alerts), "true", [])

    backlog = [
        dict(item_id="BL-1", title="Income drift on credit_default", severity="critical", model_name=m,
             status="open", alert_ids=["a-drift-income", "a-range-income"], asset_keys=["drift_scores"],
             partitions=["2026-06-20|credit_default", "2026-06-30|credit_default"], run_ids=["run-30"],
             created_at=pd.Timestamp("2026-06-30 06:00", tz="UTC"), external_ref="JIRA-12"),
        dict(item_id="BL-0", title="Null regions in May", severity="warning", model_name=m, status="resolved",
             alert_ids=["a-old-resolved"], asset_keys=["prediction_snapshots"], partitions=["2026-06-03|credit_default"],
             run_ids=["run-3"], created_at=pd.Timestamp("2026-06-03 06:00", tz="UTC"),
             resolved_at=pd.Timestamp("2026-06-06 06:00", tz="UTC")),
    ]  # fmt: skip
    wh.replace_where("backlog_items", _rows(backlog), "true", [])

    checks = [dict(model_name=model, partition_date=DAYS[-1], asset="drift_scores", check_name="feature_drift",
                   passed=model != m, severity=None, findings="[]", run_id=f"run-{model}",
                   evaluated_at=pd.Timestamp("2026-07-01 02:30", tz="UTC"))
              for model in (m, "churn_propensity")]  # fmt: skip
    wh.replace_where("check_results", _rows(checks), "true", [])
    return wh, config


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("dashboard")
    wh, config = build_demo_warehouse(root)
    result = render_dashboard(wh, config, root / "dashboard", now=NOW)
    return result, config, root / "dashboard"


def _specs(page: str) -> list[dict]:
    return [
        json.loads(s)
        for s in re.findall(r'<script type="application/json" id="spec-\d+">(.*?)</script>', page)
    ]


def test_writes_index_and_one_page_per_model(site) -> None:
    result, config, out = site
    assert result.index_path == out / "index.html" and result.index_path.exists()
    assert set(result.model_pages) == set(config.model_names)
    for name, path in result.model_pages.items():
        assert path == out / f"{name}.html" and path.exists()
    index = result.index_path.read_text()
    for name in config.model_names:
        assert f'href="{name}.html"' in index
    assert result.charts >= 10


def test_every_page_says_the_day_freshness_counts_from(site) -> None:
    result, _, _ = site
    for path in [result.index_path, *result.model_pages.values()]:
        assert "As of 2026-07-01 (UTC): freshness" in path.read_text()


def test_model_page_has_every_section(site) -> None:
    result, _, _ = site
    page = result.model_pages["credit_default"].read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page, section
    assert page.count('class="chart"') == len(_specs(page))


def test_pages_load_nothing_from_the_network(site) -> None:
    result, _, out = site
    for path in [result.index_path, *result.model_pages.values()]:
        text = path.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text, re.I), path
        assert "@import" not in text and "url(http" not in text
        for src in re.findall(r'<script src="([^"]+)"', text):
            assert (out / src).is_file(), src
    css = (out / "assets" / "dashboard.css").read_text()
    assert "http" not in css and "@font-face" not in css
    for name in SCRIPTS:
        assert (out / "assets" / name).stat().st_size > 10_000


def test_specs_embed_their_rows_and_draw_svg(site) -> None:
    result, _, _ = site
    page = result.model_pages["credit_default"].read_text()
    assert '{renderer: "svg"' in page
    for spec in _specs(page):
        assert '"url"' not in json.dumps(spec)  # no data file to fetch
        assert spec["datasets"]["rows"], "each chart carries its rows"


def test_health_colours_follow_alerts_and_freshness(site) -> None:
    result, _, _ = site
    index = result.index_path.read_text()
    cards = dict(re.findall(r'<section class="card status-(\w+)" id="model-(\w+)">', index))
    assert {m: c for c, m in cards.items()} == {
        "credit_default": "red",
        "churn_propensity": "green",
        "fraud_score": "amber",
    }
    page = result.model_pages["credit_default"].read_text()
    assert "Action needed" in page
    assert (
        "The income input&#39;s distribution changed on 20 Jun 2026 (11 days ago); 2 alerts; backlog item BL-1 open."
        in page
    )
    assert "No monitoring data has reached the warehouse" in result.model_pages["fraud_score"].read_text()


def test_open_alerts_are_grouped_by_incident_one_line_each_with_evidence_collapsed(site) -> None:
    result, _, _ = site
    page = result.model_pages["credit_default"].read_text()
    health = _section(page, "health")
    incidents = re.findall(r'<li class="incident sev-(\w+)">(.*?)</ul>\n</li>', health, re.S)
    assert [sev for sev, _ in incidents] == ["critical", "warning"]  # worst first; info is not an incident
    income, latency = (body for _, body in incidents)
    assert "since 20 Jun 2026 (11 days ago) · 2 alerts · backlog item <strong>BL-1</strong> open" in income
    assert income.count("<li><details><summary>") == 2  # one line per alert
    assert "income mean 44 vs reference 44,384" in income  # the incident's root cause
    # the statistics are in the line's hover text and its collapsed details, not its words
    line = re.search(r"<summary>(.*?)</summary>", income, re.S).group(1)
    assert line.startswith(
        '<span class="sev sev-critical">critical</span> The income input&#39;s distribution'
    )
    assert (
        '<span class="tech" title="Income distribution shifted (PSI 0.40 &gt; 0.25)">critical_drift · psi 0.4'
        in line
    )
    evidence = income[income.index('<div class="evidence">') :]
    assert "top bin: income &gt; 90k" in evidence
    assert "mean: reference 44,384 → now 44 (×0.0009913)" in income
    assert "acknowledged" in latency and "Responses are slower than agreed" in latency
    findings = health[health.index('<details class="findings">') :]
    assert "2 findings for review" in findings and "Shadow v2 beats champion v1" in findings
    assert "SHOULD NOT APPEAR" not in page  # resolved alerts are history, not health


def test_backlog_lists_items_with_status(site) -> None:
    result, _, _ = site
    page = result.model_pages["credit_default"].read_text()
    backlog = page[page.index('<section id="backlog">') :]
    assert "BL-1" in backlog and "BL-0" in backlog and "JIRA-12" in backlog
    assert "By status: 1 open, 1 resolved." in backlog
    assert backlog.index("BL-1") < backlog.index("BL-0")  # open items first
    assert backlog.index("BL-0") > backlog.index("1 closed item")  # closed ones folded away


def test_backlog_item_opened_on_the_incidents_first_day_not_the_processing_day(site) -> None:
    result, _, _ = site
    backlog = _section(result.model_pages["credit_default"].read_text(), "backlog")
    row = backlog[backlog.index("<td>BL-1</td>") :]
    row = row[: row.index("</tr>")]
    # recorded on 30 Jun; its alerts first failed on 20 Jun
    assert '<td class="nowrap" title="recorded 2026-06-30">Opened 20 Jun</td>' in row
    assert "Opened 30 Jun" not in backlog


def test_outcomes_are_drawn_apart_from_performance(site) -> None:
    result, _, _ = site
    page = result.model_pages["credit_default"].read_text()
    specs = _specs(page)
    metrics_by_chart = [{r.get("metric") for r in s["datasets"]["rows"]} for s in specs]
    assert {"repaid"} in metrics_by_chart
    assert any({"AUC (ranking quality)", "log loss (lower is better)"} <= m for m in metrics_by_chart)
    assert not any("outcome:repaid" in m for m in metrics_by_chart)
    outcomes = page[page.index('<h3 id="outcomes">') : page.index('<section id="drift">')]
    assert 'class="chart"' in outcomes


def test_outcome_chart_is_full_width_with_its_unit_and_usual_range(site) -> None:
    result, _, _ = site
    page = result.model_pages["credit_default"].read_text()
    (spec,) = [s for s in _specs(page) if {r.get("metric") for r in s["datasets"]["rows"]} == {"repaid"}]
    assert spec["width"] >= 1000 and spec["height"] >= 180
    # mean 0.91, σ 0.01 over 28 reference days: ± 3.3615·σ, the checks' prediction interval
    assert {(round(r["band_low"], 6), round(r["band_high"], 6)) for r in spec["datasets"]["rows"]} == {
        (0.876385, 0.943615)
    }
    text = json.dumps(spec)
    assert "share of requests with the outcome (%)" in text and '"format": "%"' in text
    assert "mark" in text and "band_low" in json.dumps(
        spec["layer"][0]
    )  # the band is drawn first, under the line


def test_performance_draws_the_usual_range_and_marks_untrusted_estimates(site) -> None:
    result, _, _ = site
    page = result.model_pages["credit_default"].read_text()
    (spec,) = [
        s for s in _specs(page) if "AUC (ranking quality)" in {r.get("metric") for r in s["datasets"]["rows"]}
    ]
    rows = spec["datasets"]["rows"]
    measured = [
        r for r in rows if r["metric"] == "AUC (ranking quality)" and r["kind"].startswith("measured")
    ]
    assert {(round(r["band_low"], 6), round(r["band_high"], 6)) for r in measured} == {(0.786385, 0.853615)}
    untrusted = [r for r in rows if r["kind"] == "estimate not trusted"]
    assert {r["day"] for r in untrusted} == {"2026-06-28", "2026-06-29", "2026-06-30"}
    assert all(r["trusted"] is False and r["note"] == "scores outside the reference range" for r in untrusted)
    # estimates only while a day is mostly unlabelled: none on 20-23 June, which have measured values
    estimated = {r["day"] for r in rows if r["kind"].startswith("estimated")}
    assert estimated == {f"2026-06-{d}" for d in range(24, 28)}
    layers = json.dumps(spec["spec"]["layer"])
    assert '"filter": "datum.trusted"' in layers and '"filter": "!datum.trusted"' in layers
    perf = _section(page, "performance")
    assert "estimates that cannot be trusted</strong> (3 days, 2026-06-28 to 2026-06-30)" in perf


def test_shadow_chart_uses_whole_population_rows_only(site) -> None:
    result, _, _ = site
    page = result.model_pages["credit_default"].read_text()
    shadow = [s for s in _specs(page) if "pair" in json.dumps(s)]
    assert len(shadow) == 1
    values = shadow[0]["datasets"]["rows"]
    assert len(values) == 2 * len(DAYS)  # two metrics, the __all__ rows only
    shadow_section = _section(page, "shadow")
    assert "Promote: the shadow is better" in shadow_section
    assert "age_band=18-25: auc -0.031" in shadow_section and "significantly better on auc" in shadow_section


def test_empty_warehouse_says_no_data_yet(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    result = render_dashboard(Warehouse(config.warehouse), config, tmp_path / "site", now=NOW)
    assert result.charts == 0
    page = result.model_pages["credit_default"].read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert page.count("No data yet") >= 5
    assert "<script src=" not in page  # nothing to draw, nothing to load
    assert result.index_path.read_text().count("Needs attention") >= 3


def test_same_warehouse_gives_identical_files(tmp_path: Path) -> None:
    wh, config = build_demo_warehouse(tmp_path)
    first = render_dashboard(wh, config, tmp_path / "a", now=NOW)
    second = render_dashboard(wh, config, tmp_path / "b", now=NOW)
    assert first.index_path.read_bytes() == second.index_path.read_bytes()
    for name in config.model_names:
        assert first.model_pages[name].read_bytes() == second.model_pages[name].read_bytes()


def test_stale_data_turns_a_quiet_model_amber() -> None:
    status = {"last_data": "2026-06-25", "critical": 0, "warning": 0, "info": 2}
    no_alerts = pd.DataFrame(columns=["severity", "since"])
    health = assess_health("m", status, no_alerts, dt.date(2026, 7, 1), stale_after_days=2)
    assert health.status == "amber"
    assert health.freshness_days == 6
    assert health.since == dt.date(2026, 6, 26)
    assert "no new data for 6 days" in health.headline.lower()
    fresh = assess_health("m", {**status, "last_data": "2026-06-30"}, no_alerts, dt.date(2026, 7, 1))
    assert fresh.status == "green"  # info alerts do not change the colour


def test_warning_and_stale_data_are_amber_in_one_headline() -> None:
    alerts = pd.DataFrame(
        [{"severity": "warning", "since": "2026-06-25", "check_name": "serving_slo", "metric": "latency_p99_ms",
          "subject": "champion", "message": "p99 1400 ms", "status": "acknowledged"}]
    )  # fmt: skip
    status = {"last_data": "2026-06-26", "warning": 1}
    health = assess_health("m", status, alerts, dt.date(2026, 7, 1), stale_after_days=2)
    assert health.status == "amber" and health.since == dt.date(2026, 6, 25)
    assert health.headline == (
        "Responses are slower than agreed on 25 Jun 2026 (6 days ago); 1 alert; no backlog item yet. "
        "Someone is on it (acknowledged). No new data for 5 days."
    )
    assert health.problems == [
        "Responses are slower than agreed since 25 Jun 2026 (6 days ago).",
        "No new data for 5 days: the last day with data is 26 Jun 2026.",
    ]


def test_critical_alert_is_red_since_its_first_day() -> None:
    alerts = pd.DataFrame(
        [
            {"severity": "critical", "since": "2026-06-28", "check_name": "feature_drift", "metric": "psi",
             "subject": "income", "message": "PSI 0.4", "status": "open"},
            {"severity": "critical", "since": "2026-06-20", "check_name": "subgroup_parity", "metric": "gap",
             "subject": "age_band=18-25", "message": "gap 0.15", "status": "open"},
        ]
    )  # fmt: skip
    status = {"last_data": "2026-06-30", "critical": 2}
    health = assess_health("m", status, alerts, dt.date(2026, 7, 1))
    assert health.status == "red" and health.since == dt.date(2026, 6, 20)
    assert health.headline == (
        "The group age_band = 18-25 is treated differently from the others on 20 Jun 2026 (11 days ago); "
        "1 alert; no backlog item yet. Also 1 other open problem."
    )
    assert health.problems[1] == "The income input's distribution changed since 28 Jun 2026 (3 days ago)."


def test_plain_topic_names_what_a_check_watches() -> None:
    assert plain_topic("feature_drift", "psi") == "Input data has changed"
    assert plain_topic("serving_latency") == "Slow or failing responses"
    assert plain_topic("performance_band", "auc") == "Prediction quality dropped"
    assert plain_topic("outcome_band", "outcome:repaid") == "Business outcome changed"
    assert plain_topic("something_new") == "Something new"
    # the check names the monitoring assets write
    assert plain_topic("differential_degradation", "auc") == "A group of people is treated differently"
    assert plain_topic("fairness_gap", "positive_rate") == "A group of people is treated differently"
    assert plain_topic("serving_slo", "latency_p99_ms") == "Slow or failing responses"
    assert plain_topic("performance_critical_drop", "auc") == "Prediction quality dropped"
    assert plain_topic("shadow_harm", "auc") == "Shadow model comparison"
    assert plain_topic("data_quality", "null_rate_change") == "Data quality problem"
    assert plain_topic("critical_drift", "psi") == "Input data has changed"


def _section(page: str, section: str) -> str:
    start = page.index(f'<section id="{section}">')
    return page[start : page.index("</section>", start)]


def _rows_of(page: str, column: str) -> list[list[dict]]:
    """The embedded rows of every chart whose rows have `column`."""
    return [s["datasets"]["rows"] for s in _specs(page) if column in s["datasets"]["rows"][0]]


def test_drift_draws_effect_statistics_not_tests_or_descriptives(site) -> None:
    result, _, _ = site
    drift = _section(result.model_pages["credit_default"].read_text(), "drift")
    headings = re.findall(r"<h3>(.*?)</h3>", drift)
    assert headings == [
        "PSI (population stability index)",
        "Wasserstein distance (in reference spreads)",  # drawn because it flagged income
    ]
    assert drift.index("<details>") < drift.index("<h3>PSI")  # the per-input panels are folded away
    assert "On 30 Jun 2026, 1 input had changed: income." in drift


def test_serving_leaves_out_the_model_wide_row(site) -> None:
    result, _, _ = site
    page = result.model_pages["credit_default"].read_text()
    for rows in _rows_of(page, "role"):
        assert {r["role"] for r in rows} == {"champion", "shadow"}
        assert all(r.get("requests", 0) < 99999 and r.get("p99", 0) < 9999 for r in rows)


def test_fairness_summaries_are_drawn_against_the_configured_thresholds(site) -> None:
    result, config, _ = site
    page = result.model_pages["credit_default"].read_text()
    t = config.model("credit_default").thresholds.subgroups
    (fairness,) = [rows for rows in _rows_of(page, "threshold") if "segment" in rows[0]]
    lines = {(r["metric"], r["threshold"]) for r in fairness}
    assert lines == {
        ("positive-rate gap (demographic parity)", t.parity_gap),
        ("error-rate gap (equalized odds)", t.equalized_odds_gap),
    }
    for rows in _rows_of(page, "segment_value"):  # per-group charts hold groups, not summaries
        assert "__all__" not in {r["segment_value"] for r in rows}


def test_the_card_says_outside_exactly_when_the_check_would_fail() -> None:
    """A card reads "below its usual range" (red) only on a day `performance_degradation` fails: beyond the
    band and the day's interval, widened to ± k standard errors, clear of the middle (compare_to_band). It used to
    widen nothing, so a small day the check rightly let pass was painted red."""
    from monitoring_pipelines.core.baselines import band_limits
    from monitoring_pipelines.core.performance import compare_to_band
    from monitoring_pipelines.dashboard.render import _judged

    rng = np.random.default_rng(8)
    mean, std, n_days, k = 0.82, 0.01, 28, 3.0
    low, high = band_limits(mean, std, k, n_days)
    disagreements, painted_red = 0, 0
    for _ in range(2000):
        value = rng.uniform(0.72, 0.80)  # below the band (0.786) or just inside it
        half = rng.uniform(0.002, 0.04)  # a 95 % half-width: a full day to a small weekend day
        row = {
            "value": value,
            "ci_low": value - half,
            "ci_high": value + half,
            "band_low": low,
            "band_high": high,
            "band_k": k,
            "day": "2026-06-30",
        }
        card = _judged("AUC", row, higher_is_better=True, percent=False)
        fails, _, _ = compare_to_band(
            value, value - half, value + half, mean, std, k, "higher_is_better", n_days
        )
        painted_red += card["state"] == "bad"
        disagreements += (card["state"] == "bad") != fails
    assert disagreements == 0 and painted_red > 200
