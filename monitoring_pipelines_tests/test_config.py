from __future__ import annotations

import copy

import pytest

from monitoring_pipelines.config import ConfigError, load_config


def _load(write_config, raw):
    return load_config(write_config(raw))


def test_demo_config_loads_with_documented_defaults(write_config, config_dict):
    config = _load(write_config, config_dict)
    model = config.model("credit_default")
    assert model.thresholds.drift.psi_warning == 0.1
    assert model.thresholds.drift.psi_critical == 0.25
    assert model.thresholds.drift.min_n == 500
    assert model.thresholds.subgroups.min_n == 200
    assert config.alerting.warning_persist_days == 2
    assert config.warehouse.is_absolute() and config.data_dir.is_absolute()


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r["models"][0].update(colour="blue"), "models.0.colour: unknown key"),
        (lambda r: r.update(extra_top=1), "extra_top: unknown key"),
        (lambda r: r["models"][0]["features"]["numeric"].append("income"), "'income' is listed twice"),
        (lambda r: r["models"][0]["features"]["categorical"].append("income"), "'income' is listed twice"),
        (lambda r: r["models"][0].update(name="credit default; DROP"), "not a safe identifier"),
        (lambda r: r["models"][0]["segments"].append("1bad"), "not a safe identifier"),
        (
            lambda r: r["models"][0]["reference"].update(start="2026-02-01", end="2026-01-01"),
            "ends (2026-01-01) before",
        ),
        (
            lambda r: r["models"][0]["thresholds"].update(drift={"psi_warnign": 0.2}),
            "psi_warnign: unknown key",
        ),
        (lambda r: r["models"].append(copy.deepcopy(r["models"][0])), "listed twice"),
        (lambda r: r["alerting"]["routes"].update(critical=["carrier_pigeon"]), "unknown alert channel"),
    ],
)
def test_config_errors_name_the_key(write_config, config_dict, mutate, expected):
    mutate(config_dict)
    with pytest.raises(ConfigError) as err:
        _load(write_config, config_dict)
    assert expected in str(err.value)


def test_per_feature_override_merges_with_model_thresholds(write_config, config_dict):
    config_dict["models"][0]["thresholds"] = {
        "drift": {"psi_warning": 0.15, "features": {"income": {"psi_warning": 0.3}}}
    }
    drift = _load(write_config, config_dict).model("credit_default").thresholds.drift
    assert drift.for_feature("income").psi_warning == 0.3
    assert drift.for_feature("debt_ratio").psi_warning == 0.15
    assert drift.for_feature("income").js == drift.js


def test_env_overrides_paths(write_config, config_dict, monkeypatch, tmp_path):
    monkeypatch.setenv("MONITORING_WAREHOUSE", str(tmp_path / "other.duckdb"))
    assert _load(write_config, config_dict).warehouse == tmp_path / "other.duckdb"


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_a_renamed_key_names_its_new_name(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "models:\n  - name: m\n    features: {numeric: [x]}\n    reference: {start: 2026-01-01, end: 2026-01-02}\n"
        "    thresholds: {drift: {min_rows: 100}}\n"
    )
    with pytest.raises(ConfigError, match=r"thresholds\.drift\.min_rows: renamed to 'min_n'"):
        load_config(path)


def test_task_defaults_follow_the_task(write_config, config_dict):
    """A regression model is compared on mae and a multiclass one on accuracy unless the owner says otherwise."""
    config_dict["models"][0].pop("intraday", None)
    config_dict["models"][0].update(task="regression")
    assert _load(write_config, config_dict).models[0].thresholds.shadow.primary_metric == "mae"
    config_dict["models"][0].update(
        task="multiclass_classification", classes=["billing", "technical", "account"]
    )
    model = _load(write_config, config_dict).models[0]
    assert model.thresholds.shadow.primary_metric == "accuracy"
    assert model.probability_columns == ["score__billing", "score__technical", "score__account"]
    config_dict["models"][0].update(task="regression", classes=[])
    config_dict["models"][0]["thresholds"] = {"shadow": {"primary_metric": "rmse"}}
    assert _load(write_config, config_dict).models[0].thresholds.shadow.primary_metric == "rmse"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"task": "ranking"}, "models.0.task"),
        ({"task": "multiclass_classification"}, "needs classes"),
        ({"task": "multiclass_classification", "classes": ["a"]}, "needs classes"),
        ({"task": "multiclass_classification", "classes": ["a", "a"]}, "listed twice"),
        ({"task": "multiclass_classification", "classes": ["a", "b c"]}, "not a safe identifier"),
        ({"classes": ["a", "b"]}, "classes are for task multiclass_classification"),
        (
            {"task": "regression", "thresholds": {"shadow": {"primary_metric": "auc"}}},
            "'auc' does not apply to task regression",
        ),
        ({"task": "regression", "intraday": {"every_minutes": 15}}, "intraday looks are for binary"),
    ],
)
def test_task_config_errors_name_the_problem(write_config, config_dict, changes, expected):
    config_dict["models"][0].pop("intraday", None)
    config_dict["models"][0].update(changes)
    with pytest.raises(ConfigError) as err:
        _load(write_config, config_dict)
    assert expected in str(err.value)


def test_feature_named_like_a_probability_column_is_rejected(write_config, config_dict):
    config_dict["models"][0]["features"]["numeric"].append("score__billing")
    with pytest.raises(ConfigError, match="clashes with a reserved column"):
        _load(write_config, config_dict)


def test_drift_override_names_the_task_outputs(write_config, config_dict):
    """A multiclass model's predicted classes are `__predicted_class__`; it has no `__prediction_rate__`."""
    model = config_dict["models"][0]
    model.pop("intraday", None)
    model.update(task="multiclass_classification", classes=["a", "b", "c"])
    model["thresholds"] = {"drift": {"features": {"__predicted_class__": {"psi_warning": 0.2}}}}
    assert _load(write_config, config_dict).models[0].thresholds.drift.features["__predicted_class__"]
    model["thresholds"] = {"drift": {"features": {"__prediction_rate__": {"psi_warning": 0.2}}}}
    with pytest.raises(ConfigError, match="'__prediction_rate__', which is not a feature"):
        _load(write_config, config_dict)
