"""Regression and multiclass models from the raw log to the snapshot (docs/data-contract.md, issue #15).

A regression model logs its predicted value as `score` (a logged decision is optional); a multiclass
model logs the predicted class as `prediction` and the class probabilities as `score__<class>` columns
or one `scores` map (Parquet MAP or STRUCT, JSON text in CSV or a database). The snapshot keeps
everything numeric: `prediction` the class index, `score` the predicted class's probability, labels the
observed value or the observed class's index; `predicted_class` and `score__<class>` are stored too.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from monitoring_pipelines.config import load_config
from monitoring_pipelines.storage.snapshot import Snapshot
from monitoring_pipelines.storage.sources import FileSource, SqlSource, read_labels
from monitoring_pipelines.storage.warehouse import Warehouse
from monitoring_pipelines.validation.suite import DayValidation, validate, validation_checks
from monitoring_pipelines_tests.conftest import write_parquet

DAY = dt.date(2026, 6, 10)
CLASSES = ["billing", "tech", "sales", "account"]
PROBS = [f"score__{c}" for c in CLASSES]


@pytest.fixture
def config(write_config, config_dict):
    base = config_dict["models"][0]
    reference = base["reference"]
    config_dict["models"] += [
        {
            "name": "delivery_time",
            "task": "regression",
            "features": {"numeric": ["distance_km"], "categorical": ["city"]},
            "reference": reference,
        },
        {
            "name": "ticket_router",
            "task": "multiclass_classification",
            "classes": CLASSES,
            "features": {"numeric": ["length"], "categorical": ["channel"]},
            "segments": ["channel"],
            "reference": reference,
        },
    ]
    return load_config(write_config(config_dict))


@pytest.fixture
def regression(config):
    return config.model("delivery_time")


@pytest.fixture
def multiclass(config):
    return config.model("ticket_router")


def _keys(model: str, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "prediction_id": [f"{model}-{seed}-{i}" for i in range(n)],
        "request_id": [f"r-{seed}-{i}" for i in range(n)],
        "model_name": model,
        "model_version": "v1",
        "role": "champion",
        "ts": pd.Timestamp(DAY, tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"),
        "latency_ms": rng.gamma(4, 10, n),
        "status": "ok",
    }


def regression_day(n: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            **_keys("delivery_time", n, seed),
            "score": rng.normal(30, 10, n),  # minutes, any range
            "distance_km": rng.gamma(2, 3, n),
            "city": rng.choice(["a", "b"], n),
        }
    )


def multiclass_day(n: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet([2, 1, 1, 0.5], n)
    frame = pd.DataFrame(
        {
            **_keys("ticket_router", n, seed),
            "prediction": np.asarray(CLASSES, dtype=object)[proba.argmax(axis=1)],
            "length": rng.gamma(3, 50, n),
            "channel": rng.choice(["email", "chat"], n),
        }
    )
    for j, column in enumerate(PROBS):
        frame[column] = proba[:, j]
    return frame


def _with_scores_map(frame: pd.DataFrame) -> pd.DataFrame:
    """The same rows with the probabilities as one `scores` column of dicts."""
    out = frame.drop(columns=PROBS)
    out["scores"] = [dict(zip(CLASSES, row, strict=True)) for row in frame[PROBS].to_numpy()]
    return out


def _snapshot_rows(snap: Snapshot) -> pd.DataFrame:
    return snap.frame(order="prediction_id").drop(columns=["source_file"])


def _from_source(config, model):
    snap, validation, _ = Snapshot.from_source(config, model, DAY)
    return snap, validation


# --------------------------------------------------------------------------- multiclass


def test_multiclass_day_carries_class_index_top_probability_and_probabilities(config, multiclass):
    raw = multiclass_day(60)
    write_parquet(config.data_dir, multiclass.name, DAY, raw)
    snap, validation = _from_source(config, multiclass)
    try:
        assert validation.usable and validation.quarantined_rows == 0, validation.quarantine_by_reason
        types = snap.column_types()
        assert types["prediction"] == "INTEGER" and types["predicted_class"] == "VARCHAR"
        assert all(types[c] == "DOUBLE" for c in PROBS)
        day = snap.frame().set_index("prediction_id").loc[raw["prediction_id"]]
        expected_index = np.array([CLASSES.index(c) for c in raw["prediction"]])
        assert day["prediction"].to_numpy().tolist() == expected_index.tolist()
        assert day["predicted_class"].tolist() == raw["prediction"].tolist()
        np.testing.assert_allclose(day[PROBS].to_numpy(), raw[PROBS].to_numpy())
        top = raw[PROBS].to_numpy()[np.arange(len(raw)), expected_index]
        np.testing.assert_allclose(day["score"].to_numpy(), top)

        scored = snap.scored(extra=["channel"])
        assert list(scored.columns) == ["score", "prediction", "label", *PROBS, "channel"]
        assert scored["label"].isna().all()  # no labels yet
        assert snap.scored(extra=[PROBS[0]]).columns.tolist() == ["score", "prediction", "label", *PROBS]
    finally:
        snap.close()


@pytest.mark.parametrize(
    ("edit", "reasons"),
    [
        ({"prediction": "refunds"}, {"prediction in classes"}),
        ({"prediction": None}, {"prediction not null for ok rows"}),
        (
            {"score__billing": 0.5, "score__tech": 0.2, "score__sales": 0.2, "score__account": 0.2},
            {"scores sum to 1"},
        ),
        (
            {"score__billing": 0.5, "score__tech": 0.5, "score__sales": np.nan, "score__account": 0.0},
            {"scores sum to 1"},
        ),
        (
            {"score__billing": 1.2, "score__tech": -0.2, "score__sales": 0.0, "score__account": 0.0},
            {"score__billing in [0, 1]", "score__tech in [0, 1]"},
        ),
        ({"score__sales": "high"}, {"score__sales is not a number", "scores sum to 1"}),
    ],
)
def test_multiclass_row_rules_quarantine_the_row_with_the_reason(multiclass, edit, reasons):
    raw = multiclass_day(40).astype({c: object for c in PROBS})
    for column, value in edit.items():
        raw.at[7, column] = value
    snap, validation = Snapshot.from_frame(multiclass, raw, DAY, files=["day.parquet"])
    try:
        quarantined = snap.quarantine_frame()
        assert quarantined["prediction_id"].tolist() == [raw.at[7, "prediction_id"]]
        assert set(quarantined.loc[0, "reason"].split("; ")) == reasons
        logged = raw.at[7, "prediction"]
        assert json.loads(quarantined.loc[0, "raw"])["prediction"] == (None if pd.isna(logged) else logged)
        assert validation.valid_rows == 39 == len(snap.frame())
        (_, check) = validation_checks(validation, multiclass)
        assert {f.subject for f in check.findings} == reasons
    finally:
        snap.close()


def test_a_boundary_sum_within_the_tolerance_is_valid(multiclass):
    raw = multiclass_day(10)
    raw.loc[0, PROBS] = [0.5, 0.3, 0.2, 0.009]  # sums to 1.009
    raw.loc[1, PROBS] = [0.5, 0.3, 0.2, 0.02]  # sums to 1.02
    snap, validation = Snapshot.from_frame(multiclass, raw, DAY)
    try:
        assert validation.quarantine_by_reason == {"scores sum to 1": 1}
        assert snap.quarantine_frame()["prediction_id"].tolist() == [raw.loc[1, "prediction_id"]]
    finally:
        snap.close()


def test_multiclass_without_prediction_or_probabilities_is_unusable_naming_file_and_column(
    config, multiclass
):
    write_parquet(config.data_dir, multiclass.name, DAY, multiclass_day(20).drop(columns=["prediction"]))
    snap, validation = _from_source(config, multiclass)
    snap.close()
    (problem,) = validation.problems
    assert "'prediction'" in problem and f"date={DAY}/part-0.parquet" in problem
    usable, _ = validation_checks(validation, multiclass)
    assert usable.findings and usable.findings[0].severity == "critical"

    path = write_parquet(
        config.data_dir, multiclass.name, DAY, multiclass_day(20).drop(columns=["score__sales"])
    )
    snap, validation = _from_source(config, multiclass)
    snap.close()
    (problem,) = validation.problems
    assert "score__sales" in problem and "scores" in problem and str(path) in problem
    assert "score__billing" not in problem  # the columns that are there are not named

    # the same for a frame (a table without the columns): whole_day_problems names it
    _, validation = Snapshot.from_frame(
        multiclass, multiclass_day(5).drop(columns=PROBS), DAY, files=["t.csv"]
    )
    (problem,) = validation.problems
    assert "t.csv" in problem and all(c in problem for c in PROBS)


def test_scores_map_forms_give_the_same_snapshot_as_the_columns(config, multiclass, tmp_path):
    raw = multiclass_day(40, seed=3)
    raw.loc[5, "prediction"] = "refunds"  # one quarantined row, found the same way in every form
    raw.loc[6, PROBS] = [0.9, 0.9, 0.0, 0.0]
    expected_snap, expected_validation = Snapshot.from_frame(multiclass, raw, DAY)
    expected = _snapshot_rows(expected_snap)
    expected_quarantine = expected_snap.quarantine_frame()[["prediction_id", "reason"]]
    expected_snap.close()
    assert expected_validation.quarantined_rows == 2

    folder = config.data_dir / "incoming" / multiclass.name / "predictions" / f"date={DAY}"
    mapped = _with_scores_map(raw)
    maps = pa.array([list(d.items()) for d in mapped["scores"]], type=pa.map_(pa.string(), pa.float64()))
    structs = pa.array(list(mapped["scores"]), type=pa.struct([(c, pa.float64()) for c in CLASSES]))
    base = pa.Table.from_pandas(mapped.drop(columns=["scores"]), preserve_index=False)
    forms = {
        "map.parquet": base.append_column("scores", maps),
        "struct.parquet": base.append_column("scores", structs),
    }
    text = mapped.assign(
        scores=[json.dumps(d) for d in mapped["scores"]],
        ts=mapped["ts"].map(lambda t: t.isoformat()),
    )
    for name in [*forms, "json.csv"]:
        for old in folder.glob("*"):
            old.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        if name.endswith(".csv"):
            text.to_csv(folder / name, index=False)
        else:
            pq.write_table(forms[name], folder / name)
        snap, validation = _from_source(config, multiclass)
        try:
            assert validation.usable, (name, validation.problems)
            if name == "map.parquet":
                assert str(snap.con.sql("SELECT scores FROM raw LIMIT 0").types[0]).startswith("MAP")
            got = _snapshot_rows(snap)
            pd.testing.assert_frame_equal(got, expected, check_dtype=False, obj=name)
            quarantine = snap.quarantine_frame()[["prediction_id", "reason"]]
            pd.testing.assert_frame_equal(quarantine, expected_quarantine, obj=name)
        finally:
            snap.close()


def test_a_day_whose_files_mix_the_columns_and_the_map_keeps_every_row(config, multiclass):
    """Files of one day read by name: one with score__<class> columns, one with a `scores` map. Each row
    takes its probabilities from the form it has (a row of the map file is not 'missing' its columns)."""
    raw = multiclass_day(40, seed=4)
    expected_snap, _ = Snapshot.from_frame(multiclass, raw, DAY)
    expected = _snapshot_rows(expected_snap)
    expected_snap.close()
    folder = config.data_dir / "incoming" / multiclass.name / "predictions" / f"date={DAY}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(raw.iloc[:20], preserve_index=False), folder / "part-0.parquet")
    mapped = _with_scores_map(raw.iloc[20:])
    maps = pa.array([list(d.items()) for d in mapped["scores"]], type=pa.map_(pa.string(), pa.float64()))
    table = pa.Table.from_pandas(mapped.drop(columns=["scores"]), preserve_index=False)
    pq.write_table(table.append_column("scores", maps), folder / "part-1.parquet")
    snap, validation = _from_source(config, multiclass)
    try:
        assert validation.usable and validation.quarantined_rows == 0, validation.problems
        pd.testing.assert_frame_equal(_snapshot_rows(snap), expected, check_dtype=False)
    finally:
        snap.close()


def test_a_class_missing_from_the_map_or_json_that_is_not_an_object_is_quarantined(multiclass):
    raw = _with_scores_map(multiclass_day(6))
    raw["scores"] = [json.dumps(d) for d in raw["scores"]]
    raw.loc[0, "scores"] = json.dumps({"billing": 1.0})
    raw.loc[1, "scores"] = "[0.25, 0.25, 0.25, 0.25]"
    raw.loc[2, "scores"] = "not json"
    snap, validation = Snapshot.from_frame(multiclass, raw, DAY)
    try:
        assert validation.quarantine_by_reason == {"scores sum to 1": 3}
        assert len(snap.frame()) == 3
    finally:
        snap.close()


def test_multiclass_labels_become_class_indexes_and_unknown_classes_are_quarantined(config, multiclass):
    raw = multiclass_day(30)
    write_parquet(config.data_dir, multiclass.name, DAY, raw)
    label_day = DAY + dt.timedelta(days=2)
    folder = config.data_dir / "incoming" / multiclass.name / "labels" / f"date={label_day}"
    folder.mkdir(parents=True)
    labels = pd.DataFrame(
        {
            "request_id": raw["request_id"].head(6),
            "label": ["tech", "billing", "account", "refunds", "Tech", None],
            "label_ts": f"{label_day}T08:00:00Z",
        }
    )
    labels.to_csv(folder / "labels.csv", index=False)
    source = FileSource(config.data_dir)
    snap, _ = _from_source(config, multiclass)
    try:
        assert snap.load_labels(source, DAY, label_day) == 3
        scored = snap.scored(extra=["request_id"]).set_index("request_id")
        observed = scored.loc[raw["request_id"].head(3), "label"].tolist()
        assert observed == [1.0, 0.0, 3.0]
        quarantined = snap.quarantined_labels()
        assert dict(zip(quarantined["label"].fillna("<none>"), quarantined["reason"], strict=True)) == {
            "refunds": "label in classes",
            "Tech": "label in classes",  # class names are matched exactly
            "<none>": "label not null",
        }
        assert snap.label_counts["invalid_labels"] == 3
    finally:
        snap.close()
    by_request = read_labels(source, multiclass, DAY, label_day).set_index("request_id")["label"]
    assert by_request.loc[raw["request_id"].head(3)].tolist() == [1.0, 0.0, 3.0]


# --------------------------------------------------------------------------- regression


def test_regression_day_needs_no_prediction_and_any_finite_score(config, regression):
    raw = regression_day(40)
    raw.loc[0, "score"] = -125.5  # any range
    raw.loc[1, "score"] = 1e12
    raw.loc[2, "score"] = np.inf
    raw.loc[3, "score"] = -np.inf
    raw.loc[4, "score"] = np.nan
    write_parquet(config.data_dir, regression.name, DAY, raw)
    snap, validation = _from_source(config, regression)
    try:
        assert validation.usable, validation.problems
        assert validation.quarantine_by_reason == {"score finite": 2, "score not null for ok rows": 1}
        day = snap.frame().set_index("prediction_id")
        assert day.loc[raw.loc[0, "prediction_id"], "score"] == -125.5
        assert day.loc[raw.loc[1, "prediction_id"], "score"] == 1e12
        assert day["prediction"].isna().all() and snap.column_types()["prediction"] == "INTEGER"
        assert "predicted_class" not in day.columns
        assert list(snap.scored().columns) == ["score", "prediction", "label"]
    finally:
        snap.close()


def test_regression_logged_decision_is_kept(regression):
    raw = regression_day(10).assign(prediction=[0, 1] * 5)
    snap, validation = Snapshot.from_frame(regression, raw, DAY)
    try:
        assert validation.quarantined_rows == 0
        day = snap.frame().set_index("prediction_id").loc[raw["prediction_id"]]
        assert day["prediction"].tolist() == [0, 1] * 5
    finally:
        snap.close()


def test_regression_without_score_is_unusable_naming_file_and_column(config, regression):
    path = write_parquet(config.data_dir, regression.name, DAY, regression_day(10).drop(columns=["score"]))
    snap, validation = _from_source(config, regression)
    snap.close()
    (problem,) = validation.problems
    assert "'score'" in problem and str(path) in problem and "'prediction'" not in problem


def test_regression_labels_are_finite_numbers(regression):
    raw = regression_day(10)
    snap, _ = Snapshot.from_frame(regression, raw, DAY)
    try:
        ids = raw["request_id"].tolist()
        snap.set_labels(
            pd.DataFrame({"request_id": ids[:6], "label": ["31.5", " 12 ", "abc", "inf", "NaN", "-4e1"]})
        )
        scored = snap.scored(extra=["request_id"]).set_index("request_id")["label"]
        assert scored.loc[ids[:2]].tolist() == [31.5, 12.0]
        assert scored.loc[ids[5]] == -40.0
        quarantined = snap.quarantined_labels()
        assert quarantined["label"].tolist() == ["abc", "inf", "NaN"]
        assert set(quarantined["reason"]) == {"label is a finite number"}
    finally:
        snap.close()


# --------------------------------------------------------------------------- warehouse and SQL sources


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_write_and_from_warehouse_round_trip(config, regression, multiclass, task):
    model, raw = (
        (regression, regression_day(30)) if task == "regression" else (multiclass, multiclass_day(30))
    )
    raw.loc[3, "score" if task == "regression" else "prediction"] = np.inf if task == "regression" else "x"
    warehouse = Warehouse(config.warehouse)
    snap, validation = Snapshot.from_frame(model, raw, DAY)
    try:
        snap.write(warehouse, validation)
        written = _snapshot_rows(snap)
    finally:
        snap.close()
    back = Snapshot.from_warehouse(warehouse, model, DAY)
    try:
        got = _snapshot_rows(back)
        assert sorted(got.columns) == sorted(written.columns)
        pd.testing.assert_frame_equal(got[written.columns], written, check_dtype=False)
        if task == "multiclass":
            assert back.column_types()["predicted_class"] == "VARCHAR"
            assert list(back.scored().columns) == ["score", "prediction", "label", *PROBS]
    finally:
        back.close()
    assert len(warehouse.table("quarantined_predictions", "model_name = ?", [model.name])) == 1
    # a model without stored rows gets typed empty columns (a multiclass day before any write)
    empty = Snapshot.from_warehouse(warehouse, multiclass, DAY - dt.timedelta(days=1))
    try:
        assert empty.rows == 0 and empty.column_types()["score__tech"] == "DOUBLE"
    finally:
        empty.close()


def test_sql_source_multiclass_with_a_json_scores_column(tmp_path, multiclass):
    url = f"sqlite:///{tmp_path / 'router.db'}"
    engine = sa.create_engine(url)
    raw = multiclass_day(40)
    mapped = _with_scores_map(raw)
    mapped["scores"] = [json.dumps(d) for d in mapped["scores"]]
    mapped.to_sql("predictions", engine, index=False)
    raw.drop(columns=["prediction"]).to_sql("broken", engine, index=False)
    labels = pd.DataFrame(
        {"request_id": raw["request_id"].head(4), "label": ["tech", "sales", "x", "billing"]}
    )
    labels.assign(label_ts=pd.Timestamp(DAY, tz="UTC")).to_sql("labels", engine, index=False)

    expected_snap, _ = Snapshot.from_frame(multiclass, raw, DAY)
    expected = _snapshot_rows(expected_snap)
    expected_snap.close()

    def load(table: str, labels: str | None) -> tuple[Snapshot, SqlSource, DayValidation]:
        source = SqlSource(url, table, labels, None)
        snap = Snapshot.open(multiclass, DAY, DAY)
        read = source.load_predictions(snap.con, multiclass, DAY, DAY)
        validation = validate(
            snap.con, read.relation, read.columns, multiclass, DAY, read.names, read.problems
        )
        snap._define_day(validated=validation.usable, files=read.names)  # noqa: SLF001 - as from_source
        return snap, source, validation

    snap, source, validation = load("predictions", "labels")
    try:
        assert validation.usable and validation.quarantined_rows == 0
        pd.testing.assert_frame_equal(_snapshot_rows(snap), expected, check_dtype=False)
        assert snap.load_labels(source, DAY, DAY) == 3
        assert snap.quarantined_labels()["reason"].tolist() == ["label in classes"]
    finally:
        snap.close()

    snap, _, validation = load("broken", None)
    snap.close()
    (problem,) = validation.problems
    assert "'prediction'" in problem and "router.db/broken" in problem


def test_postgres_jsonb_scores_give_the_same_snapshot(multiclass):
    """A JSONB `scores` column comes back from the driver as dicts: read as the JSON it is."""
    from monitoring_pipelines_tests.scale.servers import postgres_server

    raw = multiclass_day(30, seed=4)
    raw.loc[2, "prediction"] = "refunds"
    expected_snap, _ = Snapshot.from_frame(multiclass, raw, DAY)
    expected = _snapshot_rows(expected_snap)
    expected_snap.close()
    mapped = _with_scores_map(raw)  # dicts, stored as JSONB objects
    with postgres_server() as pg:
        url = pg.url()
        engine = sa.create_engine(url)
        mapped.to_sql("router_predictions", engine, index=False, if_exists="replace", dtype={"scores": JSONB})
        sample = pd.read_sql("SELECT scores FROM router_predictions LIMIT 1", engine)["scores"][0]
        assert isinstance(sample, dict)  # what the source gets from the driver
        snap = Snapshot.open(multiclass, DAY, DAY)
        try:
            source = SqlSource(url, "router_predictions", None, None)
            read = source.load_predictions(snap.con, multiclass, DAY, DAY)
            validation = validate(
                snap.con, read.relation, read.columns, multiclass, DAY, read.names, read.problems
            )
            snap._define_day(validated=validation.usable, files=read.names)  # noqa: SLF001 - as from_source
            assert validation.quarantine_by_reason == {"prediction in classes": 1}
            pd.testing.assert_frame_equal(_snapshot_rows(snap), expected, check_dtype=False)
        finally:
            snap.close()
