"""The SQL source against a real PostgreSQL server started on 127.0.0.1 for this test and stopped after."""

from __future__ import annotations

import datetime as dt
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator

import pandas as pd
import pytest
import sqlalchemy as sa

from monitoring_pipelines.config import load_config
from monitoring_pipelines.storage.sources import TS_COLUMN, SqlSource, new_connection, read_labels
from monitoring_pipelines_tests.conftest import synthetic_day

DAY = dt.date(2026, 6, 10)


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    pytest.importorskip("psycopg2")
    prefix: list[str] = []
    root = tempfile.mkdtemp(prefix="mp-pg-")
    if os.geteuid() == 0:  # postgres refuses to run as root: run it as the postgres system user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' system user to run the server as")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(root, "data"), _free_port()
    subprocess.run(
        [*prefix, initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *prefix,
            pg_ctl,
            "-D",
            data,
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "-l",
            os.path.join(root, "log"),
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60
        )
        shutil.rmtree(root, ignore_errors=True)


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
