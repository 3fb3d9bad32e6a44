"""The Jinja2 templates: values from the data stay text (HTML and chart specs), the index answers "what is
wrong, since when, what is being done" per model with the business outcome beside model quality, and a
standing finding never becomes the incident's "since".
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pandas as pd
import pytest

from monitoring_pipelines.dashboard import assess_health, render_dashboard
from monitoring_pipelines.dashboard.render import group_incidents, script_json, template_environment
from monitoring_pipelines_tests.dashboard.test_dashboard_render import (
    HOSTILE_CATEGORY,
    HOSTILE_SEGMENT,
    NOW,
    build_demo_warehouse,
)

SPEC_SCRIPT = re.compile(r'<script type="application/json" id="spec-\d+">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("dashboard-templates")
    warehouse, config = build_demo_warehouse(root)
    return render_dashboard(warehouse, config, root / "site", now=NOW)


def _pages(site) -> dict[str, str]:
    return {"index": site.index_path.read_text(), **{m: p.read_text() for m, p in site.model_pages.items()}}


def test_hostile_values_are_text_in_the_html_and_data_in_the_specs(site) -> None:
    page = site.model_pages["credit_default"].read_text()
    # they reach the page (the standing finding's subject and message, an alert's evidence) ...
    assert "region = &lt;img src=x onerror=alert(1)&gt;" in page
    assert "top category: &lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in page
    # ... and never as markup, in any page
    for name, text in _pages(site).items():
        assert "<img" not in text, name
        scripts_opened = len(re.findall(r"<script\b", text))
        assert scripts_opened == text.count("</script>"), name  # no element closed early or opened by data
        assert "<script>alert(2)" not in text, name
    # inside the chart specs (JSON in <script>), where HTML escaping does not apply, they stay data
    bodies = SPEC_SCRIPT.findall(page)
    assert bodies and len(bodies) == page.count('class="chart"')
    for body in bodies:
        assert "</" not in body and "<" not in body and "&" not in body
    groups = {r.get("segment_value") for spec in map(json.loads, bodies) for r in spec["datasets"]["rows"]}
    assert {HOSTILE_SEGMENT, HOSTILE_CATEGORY} <= groups  # the exact values survive the escaping


def test_script_json_escapes_what_could_end_the_script_element() -> None:
    value = {"v": "</script><!-- & \u2028"}
    text = str(script_json(value))
    assert text == '{"v":"\\u003c/script\\u003e\\u003c!-- \\u0026 \\u2028"}'
    assert json.loads(text) == value


def test_templates_autoescape_every_value() -> None:
    env = template_environment()
    rendered = env.from_string("<p title='{{ v }}'>{{ v }}</p>").render(v="'><img src=x onerror=alert(1)>")
    assert (
        rendered
        == "<p title='&#39;&gt;&lt;img src=x onerror=alert(1)&gt;'>&#39;&gt;&lt;img src=x onerror=alert(1)&gt;</p>"
    )
    for name in ("base.html", "index.html", "model.html", "_macros.html"):
        assert env.loader.get_source(env, name)  # the package ships its templates
        assert "|safe" not in env.loader.get_source(env, name)[0].replace(" ", "")


def test_index_says_per_model_what_is_wrong_since_when_and_what_is_done(site) -> None:
    index = site.index_path.read_text()
    card = index[index.index('id="model-credit_default"') : index.index('id="model-churn_propensity"')]
    sentence = re.search(r'<p class="sentence">(.*?)</p>', card).group(1)
    assert sentence == (
        "Action needed: The income input&#39;s distribution changed on 20 Jun 2026 (11 days ago); 2 alerts; "
        "backlog item BL-1 open. Also 1 other open problem. 2 findings for review (not an incident)."
    )
    assert "Warning: responses are slower than agreed since 25 Jun 2026" in card
    quiet = index[index.index('id="model-churn_propensity"') :]
    assert "Healthy: No open problems; data up to 30 Jun 2026." in quiet


def test_index_shows_the_business_outcome_beside_model_quality(site) -> None:
    index = site.index_path.read_text()
    card = index[index.index('id="model-credit_default"') : index.index('id="model-churn_propensity"')]
    side = card[card.index('<div class="side-by-side">') :]
    quality, outcome = side.index("Model quality"), side.index("Business outcome")
    assert quality < outcome
    # the band of 28 reference days: mean ± 3.36·σ (the checks' prediction interval)
    assert re.search(r"AUC \(ranking quality\): 0\.8\d+</div><div class=\"kpi-note\">within its usual range "
                     r"\(0\.7864 to 0\.8536\), on 23 Jun 2026", side)  # fmt: skip
    assert re.search(r"repaid rate: 9\d\.\d%</div><div class=\"kpi-note\">within its usual range \(87\.6% to "
                     r"94\.4%\), on 30 Jun 2026", side)  # fmt: skip
    assert side.count('class="chart"') == 2  # a small trend of each, with the usual range
    specs = [json.loads(b) for b in SPEC_SCRIPT.findall(index)]
    assert len(specs) == index.count('class="chart"') == 2
    assert all(r["band_low"] is not None for s in specs for r in s["datasets"]["rows"])


def test_a_standing_finding_is_not_the_incident_nor_its_start() -> None:
    """A fairness gap the model had since its reference period (info) is older than the incident; the
    headline must date the incident, and a model with only the finding stays green."""
    alerts = pd.DataFrame(
        [
            {"alert_id": "f", "severity": "info", "since": "2026-01-29", "check_name": "fairness_gap",
             "metric": "demographic_parity_ratio", "subject": "age_band=65+", "status": "open", "incident_id": "i1"},
            {"alert_id": "d", "severity": "critical", "since": "2026-03-02", "check_name": "critical_drift",
             "metric": "psi", "subject": "income", "status": "open", "incident_id": "i2"},
            {"alert_id": "q", "severity": "critical", "since": "2026-03-03", "check_name": "data_quality",
             "metric": "out_of_range_share", "subject": "income", "status": "open", "incident_id": "i2"},
        ]
    )  # fmt: skip
    items = pd.DataFrame([{"item_id": "12", "status": "open", "title": "t", "alert_ids": ["q", "d"]}])
    status = {"last_data": "2026-03-09", "critical": 2, "info": 1}
    health = assess_health("m", status, alerts, dt.date(2026, 3, 10), items=items)
    assert health.status == "red" and health.since == dt.date(2026, 3, 2)
    assert health.sentence == (
        "Action needed: The income input's distribution changed on 2 Mar 2026 (8 days ago); 2 alerts; "
        "backlog item 12 open. 1 finding for review (not an incident)."
    )
    assert "29 Jan" not in health.headline and "psi" not in health.headline
    only_finding = assess_health(
        "m", {"last_data": "2026-03-09", "info": 1}, alerts.iloc[:1], dt.date(2026, 3, 10)
    )
    assert only_finding.status == "green" and only_finding.since is None
    assert (
        only_finding.headline
        == "No open problems; data up to 9 Mar 2026. 1 finding for review (not an incident)."
    )


def test_alerts_are_grouped_by_incident_worst_first_with_their_first_day() -> None:
    alerts = pd.DataFrame(
        [
            {"alert_id": "w", "severity": "warning", "since": "2026-03-01", "last_seen": "2026-03-04",
             "check_name": "serving_slo", "metric": "error_rate", "subject": "champion", "incident_id": "i0"},
            {"alert_id": "b", "severity": "warning", "since": "2026-03-05", "last_seen": "2026-03-09",
             "check_name": "feature_drift", "metric": "psi", "subject": "__score__", "incident_id": "i2",
             "root_cause": "income mean 44 vs reference 44,384, ÷1,000"},
            {"alert_id": "a", "severity": "critical", "since": "2026-03-02", "last_seen": "2026-03-08",
             "check_name": "critical_drift", "metric": "psi", "subject": "income", "incident_id": "i2",
             "root_cause": "income mean 44 vs reference 44,384, ÷1,000"},
            {"alert_id": "solo", "severity": "critical", "since": "2026-03-06", "check_name": "data_quality",
             "metric": "null_rate_change", "subject": "utilization"},
        ]
    )  # fmt: skip
    incidents = group_incidents(alerts)
    assert [(i.incident_id, i.severity, str(i.since)) for i in incidents] == [
        ("i2", "critical", "2026-03-02"),
        ("solo", "critical", "2026-03-06"),
        ("i0", "warning", "2026-03-01"),
    ]
    first = incidents[0]
    assert [a.alert_id for a in first.alerts] == ["a", "b"] and str(first.last_seen) == "2026-03-09"
    assert first.summary == "the income input's distribution changed"
    assert first.alerts[1].words == "The model's scores shifted away from the reference period"
    assert first.root_cause == "income mean 44 vs reference 44,384, ÷1,000"
    assert incidents[1].summary == "the utilization input is missing more often than usual"
    assert incidents[2].summary == "requests are failing more often"
    assert first.alerts[0].technical == "critical_drift · psi –"  # the statistic, for the hover text


def test_health_words_hide_statistic_names() -> None:
    """Plain words first: `psi`, `chi2 p_adj`, `__all__`, `__score__` go to hover text and details."""
    rows = [
        ("critical_drift", "psi", "income"),
        ("feature_drift", "chi2", "region"),
        ("feature_drift", "psi", "__score__"),
        ("feature_drift", "psi", "__prediction_rate__"),
        ("fairness_gap", "demographic_parity_ratio", "age_band=65+"),
        ("differential_degradation", "auc", "age_band=65+"),
        ("performance_critical_drop", "auc", "model"),
        ("business_outcome", "outcome:repaid", "outcome:repaid"),
        ("data_quality", "unseen_share", "product"),
    ]
    alerts = pd.DataFrame(
        [{"alert_id": str(i), "severity": "critical", "since": "2026-03-02", "check_name": c, "metric": m,
          "subject": s, "incident_id": str(i)} for i, (c, m, s) in enumerate(rows)]
    )  # fmt: skip
    health = assess_health("m", {"last_data": "2026-03-09"}, alerts, dt.date(2026, 3, 10))
    text = " ".join(health.problems) + health.headline
    for jargon in ("psi", "chi2", "p_adj", "__all__", "__score__", "__prediction_rate__", "outcome:", "auc"):
        assert jargon not in text, jargon
    assert "The business outcome 'repaid' left its usual range" in text
    assert "The product input has values never seen in the reference period" in text
