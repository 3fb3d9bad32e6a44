"""DAGSTER_PG_URL chooses the instance on PostgreSQL: the CLI's DAGSTER_HOME and its dagster.yaml."""

from __future__ import annotations

import pytest
import yaml

from monitoring_pipelines import cli


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch):
    """prepare_environment sets MONITORING_CONFIG and DAGSTER_HOME for the process: put them back after."""
    for name in ("MONITORING_CONFIG", "DAGSTER_HOME"):
        if name in cli.os.environ:
            monkeypatch.setenv(name, cli.os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)


def test_pg_url_selects_the_postgres_instance_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "POSTGRES_HOME", tmp_path / "postgres")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql+psycopg2://u@127.0.0.1:1/dagster")
    cli.prepare_environment(str(tmp_path / "config.yaml"))
    home = tmp_path / "postgres"
    assert cli.os.environ["DAGSTER_HOME"] == str(home.resolve())
    instance = yaml.safe_load((home / "dagster.yaml").read_text())
    assert instance["storage"] == {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
    assert instance["telemetry"] == {"enabled": False}


def test_without_pg_url_the_sqlite_instance_stays(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    cli.prepare_environment(str(tmp_path / "config.yaml"))
    instance = yaml.safe_load((tmp_path / "home" / "dagster.yaml").read_text())
    assert instance["storage"]["custom"]["class"] == "PooledSqliteStorage"
