"""The SQL source against a real PostgreSQL server started on 127.0.0.1 for this test and stopped after."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pandas as pd
import pytest
import sqlalchemy as sa

from monitoring_pipelines.config import load_config
from monitoring_pipelines.storage.sources import TS_COLUMN, SqlSource, new_connection, read_labels
from monitoring_pipelines_tests.conftest import synthetic_day
from monitoring_pipelines_tests.scale.servers import postgres_server

DAY = dt.date(2026, 6, 10)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """The scale-out tests' server (installed with apt-get when missing, never skipped)."""
    with postgres_server() as pg:
        yield pg.url()


def test_postgres_source_reads_one_utc_day_with_bound_parameters(postgres_url, write_config, config_dict):
    model = load_config(write_config(config_dict)).model("credit_default")
    engine = sa.create_engine(postgres_url)
    frames = [synthetic_day(DAY + dt.timedelta(days=k), 150, seed=k + 1) for k in (-1, 0, 1)]
    other = synthetic_day(DAY, 30, seed=9, model_name="churn_propensity")
    pd.concat([*frames, other]).to_sql("predictions", engine, index=False, if_exists="replace")
    labels = pd.DataFrame(
        {
            "request_id": frames[1]["request_id"],
            "label": 0,
            "label_ts": pd.Timestamp(DAY + dt.timedelta(days=4), tz="UTC"),
        }
    )
    labels.to_sql("labels", engine, index=False, if_exists="replace")
    source = SqlSource(postgres_url, "predictions", "labels", None, chunk_rows=1000)
    con = new_connection()
    try:
        read = source.load_predictions(con, model, DAY, DAY)
        assert not read.problems
        frame = read.frame(con)
        assert set(frame["prediction_id"]) == set(frames[1]["prediction_id"])
        assert len(frame) == 150
        assert (frame["ts"].dt.tz_convert("UTC").dt.date == DAY).all()
        parsed = con.sql(f"SELECT {TS_COLUMN} FROM {read.relation}").df()[TS_COLUMN]
        assert (parsed.dt.date == DAY).all()
        assert read.rows_outside_window == 0  # the neighbouring days fetched by the widened bounds are theirs
    finally:
        con.close()
    assert len(read_labels(source, model, DAY, DAY + dt.timedelta(days=7))) == 150
    port = sa.engine.make_url(postgres_url).port
    assert read.files == [f"postgresql+psycopg2://127.0.0.1:{port}/postgres/predictions"]  # no user


def test_postgres_refusal_names_no_credential(postgres_url, write_config, config_dict, monkeypatch):
    """The server's refusal quotes the user; the user and password came from `${NAME}` and are scrubbed."""
    model = load_config(write_config(config_dict)).model("credit_default")
    monkeypatch.setenv("MP_TEST_PG_USER", "scott-user-7f3a")
    monkeypatch.setenv("MP_TEST_PG_PASSWORD", "pw-9c1e-4d2b")
    credentials = "${MP_TEST_PG_USER}:${MP_TEST_PG_PASSWORD}@"
    source = SqlSource(postgres_url.replace("postgres@", credentials), "predictions", "labels", None)
    con = new_connection()
    try:
        read = source.load_predictions(con, model, DAY, DAY)
    finally:
        con.close()
    assert read.relation == "" and "OperationalError" in read.problems[0], read.problems
    assert "***" in read.problems[0]  # the server named the (scrubbed) user
    text = " ".join([*read.files, *read.problems])
    assert "scott-user-7f3a" not in text and "pw-9c1e-4d2b" not in text
