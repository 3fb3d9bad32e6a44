"""Database credentials in a SQL source's URL stay out of every message, metadata value and table.

The URL's user, password and query string (tokens, ODBC strings) are never shown, and every value
expanded from a `${NAME}` reference is scrubbed from whatever the driver says about the URL."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, MultiPartitionKey, materialize

from monitoring_pipelines.config import load_config
from monitoring_pipelines.defs.resources import MonitoringResource
from monitoring_pipelines.storage.sources import (
    SourceError,
    SqlSource,
    new_connection,
    read_labels,
    redact_database_url,
)
from monitoring_pipelines.storage.warehouse import Warehouse
from monitoring_pipelines_tests.conftest import synthetic_day
from monitoring_pipelines_tests.defs.assets import assets_for

PROJECT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore:Query string argument")  # sqlite ignores the fake credentials
DAY = dt.date(2026, 6, 10)
SECRETS = {
    "MP_TEST_DB_USER": "scott-user-7f3a",
    "MP_TEST_DB_PASSWORD": "pw-9c1e-4d2b",
    "MP_TEST_DB_TOKEN": "tok-5b2d-8e61",
}
CREDENTIALS = "user=${MP_TEST_DB_USER}&password=${MP_TEST_DB_PASSWORD}&token=${MP_TEST_DB_TOKEN}"


@pytest.fixture
def secrets(monkeypatch) -> list[str]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return list(SECRETS.values())


def _leaked(text: str) -> list[str]:
    return [s for s in SECRETS.values() if s in text]


def _error_text(exc: BaseException) -> str:
    """What a log or the Dagster event log shows of an error: message, traceback and its causes."""
    return "".join(traceback.format_exception(exc))


@pytest.fixture
def model(write_config, config_dict):
    return load_config(write_config(config_dict)).model("credit_default")


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "preds.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    synthetic_day(DAY, 50, seed=1).to_sql("predictions", engine, index=False)
    labels = pd.DataFrame({"request_id": ["a"], "label_ts": [pd.Timestamp(DAY)]})
    labels.to_sql("labels_without_label", engine, index=False)
    engine.dispose()
    return path


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg2://monitor:pw-9c1e-4d2b@db.internal:5432/ml?sslmode=require&token=tok-5b2d-8e61",
            "postgresql+psycopg2://db.internal:5432/ml",
        ),
        ("duckdb:///md:analytics?motherduck_token=tok-5b2d-8e61", "duckdb:///md:analytics"),
        (
            "mssql+pyodbc:///?odbc_connect=DRIVER%3D%7BODBC+Driver+18%7D%3BSERVER%3Ddb%3BUID%3Dscott-user-7f3a"
            "%3BPWD%3Dpw-9c1e-4d2b",
            "mssql+pyodbc:///",
        ),
        ("sqlite:////srv/monitoring/preds.db", "sqlite:///preds.db"),
        ("postgresql://scott-user-7f3a:pw-9c1e-4d2b@db:tok-5b2d-8e61/ml", "postgresql://<unparsable url>"),
    ],
    ids=["postgres", "motherduck", "odbc", "sqlite-file", "malformed"],
)
def test_database_url_is_shown_as_driver_host_and_database_only(url, shown):
    assert redact_database_url(url) == shown


def test_values_of_env_references_are_scrubbed_from_the_shown_url(monkeypatch):
    monkeypatch.setenv("MP_TEST_DB_HOST", "db-7f3a.internal")
    source = SqlSource("postgresql://${MP_TEST_DB_HOST}:5432/ml", "predictions", None, None)
    assert source.shown == "postgresql://***:5432/ml"


def test_sql_source_messages_name_no_credential(secrets, database, model):
    url = f"sqlite:///{database}?{CREDENTIALS}"
    source = SqlSource(url, "predictions", "labels_without_label", None)
    assert secrets[2] in source.url  # the reference was expanded: the test would prove nothing otherwise
    con = new_connection()
    try:
        read = source.load_predictions(con, model, DAY, DAY)
        assert not read.problems and len(read.frame(con)) == 50
        assert read.files == read.names == ["sqlite:///preds.db/predictions"]
        missing_table = SqlSource(url, "nope", "nope", None).load_predictions(con, model, DAY, DAY)
        assert "no such table: nope" in missing_table.problems[0]
        with pytest.raises(SourceError) as missing_column:
            read_labels(source, model, DAY, DAY)
        assert "lack columns ['label']" in str(missing_column.value)
        with pytest.raises(SourceError) as missing_labels:
            SqlSource(url, "predictions", "nope", None).label_arrivals(model, DAY)
        assert "no such table: nope" in str(missing_labels.value)
    finally:
        con.close()
    texts = [
        *read.files,
        *read.names,
        *missing_table.problems,
        _error_text(missing_column.value),
        _error_text(missing_labels.value),
    ]
    assert not [(t, _leaked(t)) for t in texts if _leaked(t)]


@pytest.mark.parametrize(
    "url",
    [
        # SQLite takes no user: its dialect's error quotes the URL, user and query string included
        "sqlite://${MP_TEST_DB_USER}:${MP_TEST_DB_PASSWORD}@//{path}?token=${MP_TEST_DB_TOKEN}",
        # not a port: the error quotes it
        "postgresql://${MP_TEST_DB_USER}:${MP_TEST_DB_PASSWORD}@db.internal:${MP_TEST_DB_TOKEN}/ml",
        # no such dialect
        "nosuchdb://${MP_TEST_DB_USER}:${MP_TEST_DB_PASSWORD}@db.internal/ml?token=${MP_TEST_DB_TOKEN}",
    ],
    ids=["sqlite-with-user", "bad-port", "unknown-dialect"],
)
def test_a_url_that_cannot_be_used_is_reported_without_its_credentials(secrets, database, model, url):
    url = url.replace("{path}", str(database))
    source = SqlSource(url, "predictions", "labels", None)
    con = new_connection()
    try:
        read = source.load_predictions(con, model, DAY, DAY)
        with pytest.raises((SourceError, sa.exc.SQLAlchemyError)) as labels:
            source.label_arrivals(model, DAY)
    finally:
        con.close()
    assert read.problems and read.relation == ""
    texts = [*read.files, *read.problems, _error_text(labels.value)]
    assert not [(t, _leaked(t)) for t in texts if _leaked(t)]


def test_pipeline_stores_and_logs_no_credential(secrets, database, tmp_path, config_dict, write_config):
    """A Dagster run over a SQL source: one usable day (with a quarantined row) and one without rows.
    Neither the event log (metadata, check descriptions) nor any table of the warehouse holds a secret."""
    rows = synthetic_day(DAY + dt.timedelta(days=1), 20, seed=2)
    rows.loc[0, "score"] = 4.0
    rows.to_sql("predictions", sa.create_engine(f"sqlite:///{database}"), index=False, if_exists="append")
    config_dict["models"][0].update(
        source="sql",
        sql={"url": f"sqlite:///{database}?{CREDENTIALS}", "predictions_table": "predictions"},
    )
    path = write_config(config_dict)
    config = load_config(path)
    assets = assets_for(config)
    resources = {"monitoring": MonitoringResource(config_path=str(path))}
    logs = []
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("models", ["credit_default"])
        for day in (DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)):
            result = materialize(
                [assets.prediction_snapshots],
                partition_key=MultiPartitionKey({"date": day.isoformat(), "model": "credit_default"}),
                resources=resources,
                instance=instance,
                raise_on_error=False,
            )
            logs.append("\n".join(repr(e) for e in instance.all_logs(result.run_id)))
    log = "\n".join(logs)
    assert not _leaked(log)
    assert "sqlite:///preds.db/predictions" in log  # the event log names the source, redacted
    warehouse = Warehouse(config.warehouse)
    assert not _string_rows_with_secrets(warehouse)
    stored = warehouse.query(
        "SELECT DISTINCT source_file FROM monitoring.prediction_snapshots "
        "UNION SELECT DISTINCT source_file FROM monitoring.quarantined_predictions"
    )
    assert list(stored["source_file"]) == ["sqlite:///preds.db/predictions"]
    problems = warehouse.query("SELECT * FROM monitoring.validation_results WHERE blocking")
    assert problems.astype(str).apply(lambda c: c.str.contains("preds.db/predictions")).any().any()


def _string_rows_with_secrets(warehouse: Warehouse) -> dict[str, list[str]]:
    """Table -> the secrets found in any column of any of its rows (every row cast to text)."""
    tables = warehouse.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'monitoring' "
        "AND table_type = 'BASE TABLE'"
    )["table_name"]
    found = {}
    for table in tables:
        rows = warehouse.query(f'SELECT CAST(t AS VARCHAR) AS row FROM monitoring."{table}" t')["row"]
        found[table] = [s for s in SECRETS.values() if rows.str.contains(s, regex=False).any()]
    return {t: s for t, s in found.items() if s}


def test_cli_run_prints_and_records_no_credential(secrets, database, tmp_path, config_dict, write_config):
    """`monitoring-pipelines run` over a SQL source whose labels table is missing: the failure is printed
    and recorded (stdout, stderr, the instance's event log, the warehouse) naming the redacted table."""
    config_dict["models"] = config_dict["models"][:1]
    config_dict["models"][0].update(
        source="sql",
        sql={
            "url": f"sqlite:///{database}?{CREDENTIALS}",
            "predictions_table": "predictions",
            "labels_table": "labels",  # missing: the reference fails, naming it
        },
        reference={"start": DAY.isoformat(), "end": DAY.isoformat()},
    )
    path = write_config(config_dict)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "MONITORING_CONFIG": str(path)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitoring_pipelines",
            "run",
            "--start",
            f"{DAY}",
            "--end",
            f"{DAY}",
            "--quiet",
        ],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert not _leaked(done.stdout) and not _leaked(done.stderr)
    assert "sqlite:///preds.db/labels" in done.stdout, done.stdout + done.stderr  # the failure is shown
    recorded = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert not [s for s in SECRETS.values() if s.encode() in recorded]
    assert b"sqlite:///preds.db/labels" in recorded  # the event log holds the error
    assert not _string_rows_with_secrets(Warehouse(load_config(path).warehouse))
