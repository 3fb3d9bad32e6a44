"""Routing: severity and owner -> channel names, decided in core without any channel code."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from monitoring_pipelines.config import CHANNEL_NAMES, AlertingConfig
from monitoring_pipelines.core.routing import route_channels


def test_owner_routes_replace_the_default_route_for_their_severities() -> None:
    alerting = AlertingConfig(
        routes={"critical": ["pagerduty", "slack"], "warning": ["slack"], "info": []},
        owner_routes={"risk-ml": {"critical": ["email", "pagerduty", "email"], "info": ["webhook"]}},
    )
    assert route_channels(alerting, "critical", "risk-ml") == ["email", "pagerduty"]
    assert route_channels(alerting, "warning", "risk-ml") == ["slack"]
    assert route_channels(alerting, "info", "risk-ml") == ["webhook"]
    assert route_channels(alerting, "critical", "growth-ml") == ["pagerduty", "slack"]
    assert route_channels(alerting, "info", None) == []


def test_routes_accept_exactly_the_declared_channel_names() -> None:
    AlertingConfig(routes={"critical": list(CHANNEL_NAMES)}, owner_routes={"risk-ml": {"info": ["email"]}})
    with pytest.raises(ValidationError, match="unknown alert channel 'carrier_pigeon'"):
        AlertingConfig(routes={"critical": ["carrier_pigeon"]})
    with pytest.raises(ValidationError, match="unknown alert channel 'sms'"):
        AlertingConfig(owner_routes={"risk-ml": {"warning": ["sms"]}})


@pytest.mark.parametrize(
    "module",
    ["monitoring_pipelines.core.alerts", "monitoring_pipelines.core.routing", "monitoring_pipelines.config"],
)
def test_core_and_config_do_not_import_the_http_client(module: str) -> None:
    # A fresh interpreter: this test process has long imported requests through the channels.
    code = f"import sys, {module}; sys.exit('requests' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"importing {module} imports requests\n{result.stderr}"
