from __future__ import annotations

import datetime as dt
import multiprocessing as mp

import pandas as pd
import pytest

from monitoring_pipelines.storage.warehouse import Warehouse, quote_ident

DAY = dt.date(2026, 6, 10)


def _rows(model: str, day: dt.date, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_name": model,
            "partition_date": day,
            "metric": [f"m{i}" for i in range(n)],
            "value": range(n),
            "estimated": False,
        }
    )


def test_replace_partition_is_idempotent_and_scoped(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace_partition("performance_metrics", _rows("a", DAY, 3), "a", DAY)
    wh.replace_partition("performance_metrics", _rows("b", DAY, 2), "b", DAY)
    wh.replace_partition("performance_metrics", _rows("a", DAY, 3), "a", DAY)
    wh.replace_partition("performance_metrics", _rows("a", DAY, 1), "a", DAY)
    counts = wh.query(
        "SELECT model_name, count(*) n FROM monitoring.performance_metrics GROUP BY 1 ORDER BY 1"
    )
    assert counts.to_dict("list") == {"model_name": ["a", "b"], "n": [1, 2]}


def test_failed_write_rolls_back(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace_partition("performance_metrics", _rows("a", DAY, 3), "a", DAY)
    bad = _rows("a", DAY, 2).assign(not_a_column=1)
    with pytest.raises(ValueError, match="not_a_column"):
        wh.replace_partitions({"performance_metrics": _rows("a", DAY, 5), "drift_scores": bad}, "a", DAY)
    assert len(wh.partition("performance_metrics", "a", DAY)) == 3


def test_identifiers_are_validated():
    assert quote_ident("income") == '"income"'
    with pytest.raises(ValueError):
        quote_ident('x"; DROP TABLE y; --')


def _writer(path: str, model: str) -> None:
    wh = Warehouse(path)
    for k in range(15):
        wh.replace_partition(
            "performance_metrics",
            _rows(model, DAY + dt.timedelta(days=k), 50),
            model,
            DAY + dt.timedelta(days=k),
        )


def test_concurrent_writer_processes_never_hit_a_lock_error(tmp_path):
    path = str(tmp_path / "w.duckdb")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, f"m{i}")) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert (
        Warehouse(path).query("SELECT count(*) n FROM monitoring.performance_metrics")["n"][0] == 3 * 15 * 50
    )


def test_publish_copy_is_readable(tmp_path):
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.replace_partition("performance_metrics", _rows("a", DAY, 3), "a", DAY)
    copy = wh.publish_copy()
    import duckdb

    with duckdb.connect(str(copy), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM monitoring.performance_metrics").fetchone()[0] == 3
