from __future__ import annotations

from monitoring_pipelines.cli import build_parser, main


def test_config_is_accepted_before_or_after_the_command():
    parser = build_parser()
    assert parser.parse_args(["--config", "a.yaml", "alerts", "list"]).config == "a.yaml"
    assert parser.parse_args(["alerts", "list", "--config", "b.yaml"]).config == "b.yaml"
    assert parser.parse_args(["run", "--start", "2026-06-01", "--end", "2026-06-02"]).config is None


def test_bad_inputs_exit_with_a_clear_message(tmp_path, config_dict, write_config, capsys, monkeypatch):
    config = str(write_config(config_dict))
    # main() exports DAGSTER_HOME and MONITORING_CONFIG; monkeypatch restores both afterwards.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    monkeypatch.setenv("MONITORING_CONFIG", config)
    assert main(["--config", config, "run", "--start", "2026-06-02", "--end", "2026-06-01"]) == 2
    assert "before --start" in capsys.readouterr().err
    assert (
        main(["--config", config, "run", "--start", "2026-06-01", "--end", "2026-06-01", "--model", "nope"])
        == 2
    )
    assert "'nope' is not in the config" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.yaml"), "alerts", "list"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_time_left_is_extrapolated_from_model_days_only_once_two_are_done():
    from monitoring_pipelines.runner import time_left

    assert time_left(0, 180, 30.0) == "estimating time left"  # a reference run took 30 s: no guess
    assert time_left(1, 180, 30.0) == "estimating time left"
    assert time_left(10, 180, 10.0) == "about 2:50 left"  # 1 s a model-day, 170 to go
    assert time_left(170, 180, 170.0) == "about 10s left"
    assert time_left(180, 180, 180.0) == "finishing"


def test_missing_demo_config_says_how_to_get_it(monkeypatch):
    import pytest

    from monitoring_pipelines import config as cfg

    monkeypatch.setattr(cfg, "DEFAULT_CONFIG_PATH", cfg.PROJECT_ROOT / "data" / "no-such-demo.yaml")
    with pytest.raises(cfg.ConfigError, match="make demo"):
        cfg.load_config(cfg.DEFAULT_CONFIG_PATH)


def test_simulate_picks_models_and_refuses_live_task_models(tmp_path, capsys):
    """`simulate --model` writes only the chosen demo models (and a config with only them); the live day is
    for binary models, the intraday watch's only task; an unknown model is an error naming the known ones."""
    out = tmp_path / "data"
    args = ["simulate", "--start", "2026-06-01", "--days", "2", "--requests", "200", "--out", str(out)]
    assert main([*args, "--model", "delivery_time", "--reference-days", "1"]) == 0
    assert sorted(p.name for p in (out / "incoming").iterdir()) == ["delivery_time"]
    config = (out / "demo_config.yaml").read_text()
    assert "task: regression" in config and "credit_default" not in config
    assert "start: 2026-06-01" in config and "end: 2026-06-01" in config  # one reference day
    assert main([*args, "--model", "nope"]) == 2
    assert "unknown demo model(s) ['nope']" in capsys.readouterr().out
    assert main(["simulate", "--live", "--model", "delivery_time", "--out", str(out)]) == 2
    assert "binary_classification models only" in capsys.readouterr().out
