"""Inputs in a bucket (`data_dir: s3://bucket/prefix`) read like the same files on disk, against moto's
standalone server on 127.0.0.1 (an emulator of the S3 API, not AWS): the same rows, late-row rule, names
and problems, and a label watch that sees a new label file without downloading anything."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pandas as pd
import pytest
from pyarrow import fs

from monitoring_pipelines.config import load_config
from monitoring_pipelines.storage.sources import (
    FILE_COLUMN,
    FileSource,
    ObjectStoreSource,
    new_connection,
    read_labels,
    source_for,
)
from monitoring_pipelines_tests.conftest import synthetic_day, write_parquet
from monitoring_pipelines_tests.scale.servers import moto_server

DAY = dt.date(2026, 6, 10)
NEXT = DAY + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def s3() -> Iterator[fs.S3FileSystem]:
    with moto_server() as endpoint, pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_REGION", "us-east-1")
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        host = endpoint.removeprefix("http://")
        bucket = fs.S3FileSystem(
            endpoint_override=host,
            scheme="http",
            access_key="testing",
            secret_key="testing",
            region="us-east-1",
            allow_bucket_creation=True,
        )
        bucket.create_dir("logs")
        yield bucket


def _upload(s3: fs.S3FileSystem, local, prefix: str) -> None:
    fs.copy_files(
        str(local), f"logs/{prefix}", source_filesystem=fs.LocalFileSystem(), destination_filesystem=s3
    )


def _frame(con, read) -> pd.DataFrame:
    """The rows read, without the bookkeeping columns (the file column holds the local path it was read
    from: the mirror's for the bucket; the names the tables get are compared through `read.names`)."""
    frame = con.sql(f"SELECT * EXCLUDE (__order, {FILE_COLUMN}) FROM {read.relation}").df()
    return frame.sort_values("prediction_id").reset_index(drop=True)


def test_a_bucket_reads_like_the_same_files_on_disk(s3, write_config, config_dict, tmp_path):
    config = load_config(write_config(config_dict))
    model = config.model("credit_default")
    today, tomorrow = synthetic_day(DAY, 60, seed=1), synthetic_day(NEXT, 40, seed=2)
    late = synthetic_day(DAY, 5, seed=9)  # rows of DAY logged late, in the next day's folder
    write_parquet(config.data_dir, model.name, DAY, today)
    write_parquet(config.data_dir, model.name, NEXT, pd.concat([tomorrow, late]))
    (config.data_dir / "incoming" / model.name / "predictions" / "date=latest").mkdir()  # stray: ignored
    labels = pd.DataFrame(
        {"request_id": today["request_id"][:20], "label": 1, "label_ts": f"{NEXT}T08:00:00Z"}
    )
    label_folder = config.data_dir / "incoming" / model.name / "labels" / f"date={NEXT}"
    label_folder.mkdir(parents=True)
    labels.to_csv(label_folder / "labels.csv", index=False)
    _upload(s3, config.data_dir / "incoming", "team-a/incoming")

    disk, bucket = FileSource(config.data_dir), ObjectStoreSource("s3://logs/team-a")
    con = new_connection()
    try:
        on_disk, in_bucket = (
            disk.load_predictions(con, model, DAY, DAY),
            bucket.load_predictions(con, model, DAY, DAY),
        )
        assert not on_disk.problems and not in_bucket.problems
        assert in_bucket.names == on_disk.names  # `source_file`: relative to data_dir / the prefix
        pd.testing.assert_frame_equal(_frame(con, in_bucket), _frame(con, on_disk))
        assert len(_frame(con, in_bucket)) == 65
        missing = bucket.load_predictions(con, model, DAY - dt.timedelta(days=5), DAY - dt.timedelta(days=5))
        assert (
            missing.problems and "s3://logs/team-a/incoming/credit_default/predictions" in missing.problems[0]
        )
    finally:
        con.close()
    pd.testing.assert_frame_equal(
        read_labels(bucket, model, NEXT, NEXT).sort_values("request_id").reset_index(drop=True),
        read_labels(disk, model, NEXT, NEXT).sort_values("request_id").reset_index(drop=True),
    )

    # the label watch: a new label file in the bucket changes that day's fingerprint, and only that
    before = bucket.label_arrivals(model, DAY)
    assert set(before) == {NEXT.isoformat()}
    assert bucket.label_arrivals(model, DAY) == before  # stable while nothing changes
    time.sleep(1.1)  # S3 modification times have a resolution of a second
    more = tmp_path / "more"
    more.mkdir()
    pd.DataFrame(
        {"request_id": today["request_id"][20:30], "label": 0, "label_ts": f"{NEXT}T09:00:00Z"}
    ).to_csv(more / "labels-2.csv", index=False)
    with (
        open(more / "labels-2.csv", "rb") as src,
        s3.open_output_stream(f"logs/team-a/incoming/{model.name}/labels/date={NEXT}/labels-2.csv") as dst,
    ):
        dst.write(src.read())
    after = bucket.label_arrivals(model, DAY)
    assert set(after) == set(before) and after != before
    assert len(read_labels(bucket, model, NEXT, NEXT)) == 30


def test_config_with_a_bucket_reads_there_and_writes_outputs_beside_the_config(write_config, config_dict):
    config_dict = {**config_dict, "data_dir": "s3://logs/team-a"}
    config_dict.pop("warehouse")
    path = write_config(config_dict)
    config = load_config(path)
    assert config.input_url == "s3://logs/team-a"
    assert config.data_dir == path.parent and config.warehouse == path.parent / "warehouse.duckdb"
    assert isinstance(source_for(config, config.model("credit_default")), ObjectStoreSource)
