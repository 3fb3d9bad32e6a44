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
