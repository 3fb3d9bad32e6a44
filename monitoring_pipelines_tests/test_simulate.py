"""The demo traffic generator: contract §1 layout, determinism, and every documented incident."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitoring_pipelines import simulate as sim
from monitoring_pipelines.config import load_config

START = sim.DEFAULT_START
FULL_DAYS = 90
SMALL = 200  # requests per weekday in the file-level tests: fast, still enough rows per day


def read_kind(out: Path, model: str, kind: str) -> pd.DataFrame:
    """All partitions of one input kind, with the folder's date as `folder`."""
    frames = []
    for path in sorted((out / "incoming" / model / kind).glob("date=*/part-0.parquet")):
        frame = pq.read_table(path).to_pandas()
        frame["folder"] = dt.date.fromisoformat(path.parent.name.removeprefix("date="))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def day_index(ts: pd.Series) -> pd.Series:
    return (ts.dt.tz_convert("UTC").dt.normalize() - pd.Timestamp(START, tz="UTC")).dt.days


def auc(label: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties."""
    ranks = pd.Series(score).rank().to_numpy()
    positives = int(label.sum())
    negatives = len(label) - positives
    return float((ranks[label == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def digests(out: Path) -> dict[str, str]:
    return {
        str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*.parquet"))
    }


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, sim.SimulationSummary]:
    out = tmp_path_factory.mktemp("demo")
    return out, sim.simulate(out, days=FULL_DAYS, requests=SMALL)


@pytest.fixture(scope="module")
def credit(full_run: tuple[Path, sim.SimulationSummary]) -> pd.DataFrame:
    frame = read_kind(full_run[0], "credit_default", "predictions")
    frame["day"] = day_index(frame["ts"])
    return frame


def labelled_day(
    model: str, day: int, requests: int = 5000, inject: tuple[str, ...] | None = None
) -> pd.DataFrame:
    """One model-day in memory, ok rows joined to every label that will ever arrive."""
    traffic = sim.simulate_day(model, day, requests, inject=inject)
    rows = traffic.predictions.to_pandas()
    rows = rows[rows["status"] == "ok"]
    return rows.merge(traffic.labels.to_pandas(), on="request_id")


def all_but(kind: str) -> tuple[str, ...]:
    """Every planned incident kind except one: a counterfactual day for paired comparisons."""
    return tuple(i.kind for i in sim.INCIDENTS if i.kind != kind)


def champion_auc(frame: pd.DataFrame, version: str = "v3") -> float:
    rows = frame[frame["model_version"] == version]
    return auc(rows["label"].to_numpy(), rows["score"].to_numpy())


# --------------------------------------------------------------------------- determinism


def test_same_arguments_rewrite_identical_files(tmp_path: Path) -> None:
    first = sim.simulate(tmp_path / "a", days=4, requests=SMALL, seed=3)
    sim.simulate(tmp_path / "b", days=4, requests=SMALL, seed=3)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    again = sim.simulate(tmp_path / "a", days=4, requests=SMALL, seed=3)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert first.rows == again.rows


def test_empty_runs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="days"):
        sim.simulate(tmp_path, days=0)
    with pytest.raises(ValueError, match="requests"):
        sim.simulate(tmp_path, requests=0)


def test_other_seed_gives_other_traffic(tmp_path: Path) -> None:
    sim.simulate(tmp_path / "a", days=2, requests=SMALL, seed=1)
    sim.simulate(tmp_path / "b", days=2, requests=SMALL, seed=2)
    assert digests(tmp_path / "a") != digests(tmp_path / "b")


def test_rerun_deletes_the_old_incoming_dir(tmp_path: Path) -> None:
    sim.simulate(tmp_path, days=5, requests=SMALL)
    summary = sim.simulate(tmp_path, days=2, requests=SMALL)
    written = {str(p) for p in tmp_path.rglob("*.parquet")}
    assert written == {str(p) for p in summary.files}
    assert len(list((tmp_path / "incoming" / "credit_default" / "predictions").iterdir())) == 2


def test_shorter_run_is_a_prefix_of_a_longer_one(tmp_path: Path) -> None:
    sim.simulate(tmp_path / "short", days=3, requests=SMALL)
    sim.simulate(tmp_path / "long", days=6, requests=SMALL)
    short, long = digests(tmp_path / "short"), digests(tmp_path / "long")
    # The last day of the short run keeps its late rows, so only the days before it match.
    for day in ("2026-06-01", "2026-06-02"):
        key = f"incoming/credit_default/predictions/date={day}/part-0.parquet"
        assert short[key] == long[key]


# --------------------------------------------------------------------------- layout and schema


def test_layout_and_columns_follow_the_contract(full_run: tuple[Path, sim.SimulationSummary]) -> None:
    out, summary = full_run
    config = load_config(sim.DEMO_CONFIG_TEMPLATE)
    for model in config.models:
        table = pq.read_table(sim.partition_path(out, model.name, "predictions", START))
        expected = [
            "prediction_id",
            "request_id",
            "model_name",
            "model_version",
            "role",
            "ts",
            *model.input_columns,
            "score",
            "prediction",
            "latency_ms",
            "status",
        ]
        assert table.column_names == expected
        schema = table.schema
        assert schema.field("ts").type == pa.timestamp("us", tz="UTC")
        for name in ("prediction_id", "request_id", "model_name", "model_version", "role", "status"):
            assert schema.field(name).type == pa.string()
        for name in model.string_columns:
            assert schema.field(name).type == pa.string()
        for name in model.features.numeric:
            assert pa.types.is_integer(schema.field(name).type) or pa.types.is_floating(
                schema.field(name).type
            )
        assert schema.field("score").type == pa.float64()
        assert schema.field("prediction").type == pa.int64()
        assert schema.field("latency_ms").type == pa.float64()

        labels = pq.read_table(sim.partition_path(out, model.name, "labels", START + dt.timedelta(days=5)))
        assert labels.schema == sim.LABEL_SCHEMA
        outcomes = pq.read_table(
            sim.partition_path(out, model.name, "outcomes", START + dt.timedelta(days=5))
        )
        assert outcomes.schema == sim.OUTCOME_SCHEMA
        assert set(outcomes.column("outcome").to_pylist()) == set(model.outcomes)
        assert summary.rows[model.name]["predictions"] > 0
    written = load_config(summary.config_path)
    for path in summary.files:
        rel = path.relative_to(out / "incoming").parts
        assert rel[0] in written.model_names and rel[1] in {"predictions", "labels", "outcomes"}
        assert rel[2].startswith("date=") and rel[3] == "part-0.parquet"


def test_demo_config_matches_the_simulated_window(tmp_path: Path) -> None:
    config = load_config(sim.DEMO_CONFIG_TEMPLATE)
    assert set(config.model_names) == set(sim.MODELS)  # the packaged template: the binary models
    path = tmp_path / "demo_config.yaml"
    path.write_text(sim.demo_config_text(START))
    written = load_config(path)
    assert written.model_names == list(sim.MODEL_NAMES)
    for model in written.models:
        assert model.reference.start == START
        assert (model.reference.end - model.reference.start).days + 1 == sim.REFERENCE_DAYS


def test_rows_are_well_formed(credit: pd.DataFrame) -> None:
    clean = credit[credit["day"] != 30]
    assert clean["prediction_id"].is_unique
    assert set(clean["role"]) == {"champion", "shadow"}
    assert set(clean["model_version"]) == {"v3", "v4"}
    ok = clean[clean["status"] == "ok"]
    assert ok["score"].between(0, 1).all()
    assert (ok["prediction"] == (ok["score"] >= sim.MODELS["credit_default"].threshold).astype(int)).all()
    errors = credit[credit["status"] == "error"]
    assert errors["score"].isna().all() and errors["prediction"].isna().all()
    assert set(credit["status"]) == {"ok", "error"}
    assert (credit["latency_ms"] >= 0).all()


def test_champion_and_shadow_share_every_request(credit: pd.DataFrame) -> None:
    clean = credit[credit["day"] != 30]
    per_request = clean.groupby("request_id")["role"].agg(lambda roles: tuple(sorted(roles)))
    assert (per_request == ("champion", "shadow")).all()


def test_churn_has_a_champion_only(full_run: tuple[Path, sim.SimulationSummary]) -> None:
    churn = read_kind(full_run[0], "churn_propensity", "predictions")
    assert set(churn["role"]) == {"champion"} and set(churn["model_version"]) == {"v1"}
    assert churn["request_id"].is_unique
    credit_rows = full_run[1].rows["credit_default"]["predictions"]
    assert 0.3 < len(churn) / (credit_rows / 2) < 0.5


def test_weekends_are_about_thirty_percent_quieter(credit: pd.DataFrame) -> None:
    champion = credit[credit["role"] == "champion"]
    per_day = champion.groupby("day").size()
    weekend = np.array([(START + dt.timedelta(days=int(d))).weekday() >= 5 for d in per_day.index])
    ratio = per_day[weekend].mean() / per_day[~weekend].mean()
    assert 0.62 < ratio < 0.78


def test_traffic_peaks_in_the_afternoon(credit: pd.DataFrame) -> None:
    hours = credit["ts"].dt.hour.value_counts()
    assert hours.idxmax() in range(11, 18)
    assert hours[2] < hours[14] / 3


# --------------------------------------------------------------------------- labels, outcomes, late rows


def test_labels_arrive_two_to_seven_days_after_the_request(
    full_run: tuple[Path, sim.SimulationSummary], credit: pd.DataFrame
) -> None:
    labels = read_kind(full_run[0], "credit_default", "labels")
    champion = credit[credit["role"] == "champion"].drop_duplicates("request_id")
    joined = labels.merge(champion[["request_id", "ts", "day"]], on="request_id")
    assert len(joined) == len(labels)  # every label belongs to a logged request
    delay = (joined["label_ts"] - joined["ts"]).dt.total_seconds() / 86_400
    assert delay.min() >= 2.0 and delay.max() <= 7.0
    assert (joined["label_ts"].dt.date == joined["folder"]).all()  # partitioned by arrival day
    assert labels["folder"].max() <= START + dt.timedelta(days=FULL_DAYS - 1)
    assert labels["request_id"].is_unique
    settled = champion[champion["day"] < FULL_DAYS - 7]
    share = settled["request_id"].isin(labels["request_id"]).mean()
    assert 0.92 < share < 0.98
    recent = champion[champion["day"] == FULL_DAYS - 1]
    assert not recent["request_id"].isin(labels["request_id"]).any()  # not arrived yet


def test_outcomes_follow_the_labels(full_run: tuple[Path, sim.SimulationSummary]) -> None:
    for model, name in (("credit_default", "repaid"), ("churn_propensity", "renewed")):
        labels = read_kind(full_run[0], model, "labels")
        outcomes = read_kind(full_run[0], model, "outcomes")
        assert set(outcomes["outcome"]) == {name}
        assert set(outcomes["value"]) == {0.0, 1.0}
        assert (outcomes["ts"].dt.date == outcomes["folder"]).all()
        joined = outcomes.merge(labels, on="request_id", suffixes=("", "_label"))
        assert ((joined["ts"] - joined["label_ts"]).dt.total_seconds() >= 0).all()
        assert (joined["value"] == 1 - joined["label"]).mean() > 0.95


def test_late_rows_land_in_the_next_days_folder_with_their_own_ts(credit: pd.DataFrame) -> None:
    folder_day = (pd.to_datetime(credit["folder"]) - pd.Timestamp(START)).dt.days
    late = credit[folder_day != credit["day"]]
    assert len(late) > 0
    assert (folder_day[late.index] == late["day"] + 1).all()
    assert 0.002 < len(late) / len(credit) < 0.01
    last = credit[credit["day"] == FULL_DAYS - 1]
    assert (last["folder"] == START + dt.timedelta(days=FULL_DAYS - 1)).all()  # no folder after the run


# --------------------------------------------------------------------------- incidents


def test_incidents_sit_at_documented_days_and_scale_with_the_run() -> None:
    documented = {i.kind: i.dates(START) for i in sim.INCIDENTS if i.model_name == "credit_default"}
    assert documented == {
        "dirty_rows": (dt.date(2026, 7, 1), dt.date(2026, 7, 1)),
        "unit_bug": (dt.date(2026, 7, 6), dt.date(2026, 7, 6)),
        "mean_shift": (dt.date(2026, 7, 13), dt.date(2026, 7, 19)),
        "new_category": (dt.date(2026, 7, 21), dt.date(2026, 8, 29)),
        "null_spike": (dt.date(2026, 7, 27), dt.date(2026, 7, 28)),
        "concept_drift": (dt.date(2026, 8, 2), dt.date(2026, 8, 8)),
        "subgroup_degradation": (dt.date(2026, 8, 10), dt.date(2026, 8, 29)),
        "latency_regression": (dt.date(2026, 8, 16), dt.date(2026, 8, 18)),
    }
    assert all(i.start_day >= sim.REFERENCE_DAYS for i in sim.INCIDENTS)
    assert {i.model_name for i in sim.INCIDENTS} == {"credit_default", "delivery_time", "ticket_routing"}
    assert sim.incidents(10) == ()
    short = {i.kind: (i.start_day, i.end_day) for i in sim.incidents(60, models=["credit_default"])}
    assert short == {
        "dirty_rows": (30, 30),
        "unit_bug": (35, 35),
        "mean_shift": (42, 48),
        "new_category": (50, 59),
        "null_spike": (56, 57),
    }


def test_churn_is_never_touched() -> None:
    assert all(sim._active("churn_propensity", day) == frozenset() for day in range(200))


def test_reference_window_is_clean(credit: pd.DataFrame) -> None:
    ref = credit[credit["day"] < sim.REFERENCE_DAYS]
    assert ref["prediction_id"].is_unique
    assert set(ref["role"]) == {"champion", "shadow"}
    assert set(ref["product"]) == {"card", "loan", "mortgage"}
    assert ref["utilization"].notna().all()
    assert ref["income"].groupby(ref["day"]).median().min() > 20_000
    ok = ref[ref["status"] == "ok"]
    assert ok["score"].between(0, 1).all()
    champion = ref[ref["role"] == "champion"]
    assert (champion["status"] == "error").mean() < 0.02
    assert champion["latency_ms"].quantile(0.99) < 500


def test_age_band_65_plus_is_about_seven_percent(credit: pd.DataFrame) -> None:
    champion = credit[credit["role"] == "champion"]
    assert 0.06 < (champion["age_band"] == "65+").mean() < 0.08
    bands = champion.groupby("age_band")["age"].agg(["min", "max"])
    assert bands.loc["65+", "min"] >= 65 and bands.loc["65+", "max"] <= 90
    assert bands.loc["18-25", "min"] >= 18 and bands.loc["18-25", "max"] <= 25


def test_dirty_rows_appear_on_day_30_only(credit: pd.DataFrame) -> None:
    out_of_range = credit[(credit["score"] < 0) | (credit["score"] > 1)]
    duplicated = credit[credit["prediction_id"].duplicated()]
    unknown_role = credit[~credit["role"].isin(["champion", "shadow"])]
    assert len(out_of_range) == sim.DIRTY_OUT_OF_RANGE and set(out_of_range["day"]) == {30}
    assert len(duplicated) == sim.DIRTY_DUPLICATES and set(duplicated["day"]) == {30}
    assert len(unknown_role) == sim.DIRTY_UNKNOWN_ROLE and set(unknown_role["role"]) == {"canary"}
    assert set(unknown_role["day"]) == {30}
    dirty = pd.concat([out_of_range, duplicated, unknown_role])
    assert (dirty["folder"] == START + dt.timedelta(days=30)).all()


def test_unit_bug_logs_income_in_thousands_for_one_day(credit: pd.DataFrame) -> None:
    median = credit.groupby("day")["income"].median()
    assert median[35] == pytest.approx(median.drop(35).median() / 1000, rel=0.2)
    assert (median.drop(35) > 20_000).all()


def test_debt_ratio_shifts_by_half_a_sigma_for_seven_days(credit: pd.DataFrame) -> None:
    ref = credit[credit["day"] < sim.REFERENCE_DAYS]["debt_ratio"]
    shifted = credit[credit["day"].between(42, 48)]["debt_ratio"]
    after = credit[credit["day"].between(49, 55)]["debt_ratio"]
    assert (shifted.mean() - ref.mean()) / ref.std() == pytest.approx(0.5, abs=0.12)
    assert abs(after.mean() - ref.mean()) / ref.std() < 0.12


def test_bnpl_appears_from_day_50_at_fifteen_percent(credit: pd.DataFrame) -> None:
    bnpl = (credit["product"] == "bnpl").groupby(credit["day"] >= 50).mean()
    assert bnpl[False] == 0
    assert bnpl[True] == pytest.approx(0.15, abs=0.02)


def test_utilization_is_null_on_thirty_percent_for_two_days(credit: pd.DataFrame) -> None:
    null_share = credit["utilization"].isna().groupby(credit["day"]).mean()
    assert null_share[[56, 57]].between(0.25, 0.35).all()
    assert (null_share.drop([56, 57]) == 0).all()


def test_latency_regression_triples_champion_p99_and_errors(credit: pd.DataFrame) -> None:
    champion = credit[credit["role"] == "champion"]
    incident = champion[champion["day"].between(76, 78)]
    ref = champion[champion["day"] < sim.REFERENCE_DAYS]
    assert incident["latency_ms"].quantile(0.99) / ref["latency_ms"].quantile(0.99) > 2.3
    assert 0.035 < (incident["status"] == "error").mean() < 0.09
    shadow = credit[(credit["role"] == "shadow") & credit["day"].between(76, 78)]
    assert (shadow["status"] == "error").mean() < 0.02


# --------------------------------------------------------------------------- model quality (in memory)


@pytest.fixture(scope="module")
def reference_days() -> pd.DataFrame:
    return pd.concat([labelled_day("credit_default", d) for d in (14, 15, 16)])


def test_champion_is_calibrated_and_shadow_is_slightly_better(reference_days: pd.DataFrame) -> None:
    champion, shadow = champion_auc(reference_days, "v3"), champion_auc(reference_days, "v4")
    assert 0.74 < champion < 0.81
    assert 0.01 < shadow - champion < 0.035
    rows = reference_days[reference_days["model_version"] == "v3"]
    assert rows["score"].mean() == pytest.approx(rows["label"].mean(), abs=0.01)


def test_concept_drift_drops_auc_while_scores_stay_put(reference_days: pd.DataFrame) -> None:
    days = (63, 64, 65)
    drifted = pd.concat([labelled_day("credit_default", d) for d in days])
    counterfactual = pd.concat(
        [labelled_day("credit_default", d, inject=all_but(sim.CONCEPT_DRIFT)) for d in days]
    )
    assert champion_auc(counterfactual) - champion_auc(drifted) >= 0.05
    assert champion_auc(counterfactual, "v4") - champion_auc(drifted, "v4") >= 0.05
    ref_scores = reference_days[reference_days["model_version"] == "v3"]["score"]
    new_scores = drifted[drifted["model_version"] == "v3"]["score"]
    assert abs(new_scores.mean() - ref_scores.mean()) < 0.01
    assert abs(new_scores.quantile(0.9) - ref_scores.quantile(0.9)) < 0.02


def test_subgroup_degradation_hits_65_plus_only() -> None:
    days = (71, 72, 73, 74)
    degraded = pd.concat([labelled_day("credit_default", d) for d in days])
    counterfactual = pd.concat(
        [labelled_day("credit_default", d, inject=all_but(sim.SUBGROUP_DEGRADATION)) for d in days]
    )
    old = degraded["age_band"] == "65+"
    old_before = counterfactual["age_band"] == "65+"
    assert champion_auc(counterfactual[old_before]) - champion_auc(degraded[old]) > 0.15
    assert abs(champion_auc(counterfactual) - champion_auc(degraded)) < 0.02
    assert champion_auc(counterfactual[~old_before]) == champion_auc(degraded[~old])


def test_turning_an_incident_off_changes_nothing_else() -> None:
    with_bug = sim.simulate_day("credit_default", 35, 500).predictions
    without = sim.simulate_day("credit_default", 35, 500, inject=()).predictions
    assert with_bug.drop_columns(["income"]).equals(without.drop_columns(["income"]))
    ratio = np.array(without.column("income")) / np.array(with_bug.column("income"))
    assert ratio == pytest.approx(1000, rel=1e-3)
    dirty = sim.simulate_day("credit_default", 30, 500)
    clean = sim.simulate_day("credit_default", 30, 500, inject=())
    assert dirty.labels.equals(clean.labels)
    assert dirty.predictions.num_rows == clean.predictions.num_rows + 20


def test_full_size_run_is_fast(tmp_path: Path) -> None:
    # A tenth of the default run; the default (90 days x 5000) takes a few seconds.
    import time

    began = time.perf_counter()
    sim.simulate(tmp_path, days=9, requests=5000)
    assert time.perf_counter() - began < 5


def test_simulate_writes_the_config_and_manifest_of_its_own_dates(tmp_path: Path) -> None:
    start = dt.date(2026, 9, 2)
    summary = sim.simulate(tmp_path, days=31, requests=SMALL, start=start)
    config = load_config(summary.config_path)
    assert config.data_dir == tmp_path.resolve()
    for model in config.models:
        assert model.reference.start == start
        assert model.reference.end == start + dt.timedelta(days=sim.REFERENCE_DAYS - 1)
    manifest = sim.read_manifest(tmp_path)
    assert (manifest["start"], manifest["end"]) == (start, dt.date(2026, 10, 2))
    dirty = next(i for i in manifest["incidents"] if i["kind"] == sim.DIRTY_ROWS)
    assert dirty["first"] == dirty["last"] == "2026-10-02"  # day 30 of the plan
    # Only the reference dates (and the header's model count) differ from the packaged config plus the
    # task models' blocks.
    template = (
        sim.DEMO_CONFIG_TEMPLATE.read_text().replace(
            "\nalerting:", "\n" + sim.TASK_MODELS_CONFIG.rstrip() + "\nalerting:"
        )
    ).splitlines()
    written = summary.config_path.read_text().splitlines()
    changed = [(a, b) for a, b in zip(template, written, strict=True) if a != b]
    assert {a.split(":")[0].strip() for a, _ in changed[1:]} == {"start", "end"}
    assert changed[0][1].startswith("# Demo config: 4 model(s)")
    assert len(changed) == 1 + 2 * len(config.models)


def test_a_short_run_has_a_reference_inside_it(tmp_path: Path) -> None:
    summary = sim.simulate(tmp_path, days=3, requests=SMALL, start=dt.date(2026, 11, 28))
    for model in load_config(summary.config_path).models:
        assert model.reference.end == dt.date(2026, 11, 30)


def test_cli_simulates_up_to_yesterday_by_default(tmp_path: Path, capsys) -> None:
    from monitoring_pipelines.cli import main

    assert main(["simulate", "--days", "2", "--requests", "50", "--out", str(tmp_path)]) == 0
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    manifest = sim.read_manifest(tmp_path)
    assert (manifest["start"], manifest["end"]) == (yesterday - dt.timedelta(days=1), yesterday)
    assert f"{yesterday - dt.timedelta(days=1)} .. {yesterday}" in capsys.readouterr().out
    assert (
        main(["simulate", "--days", "2", "--requests", "50", "--out", str(tmp_path), "--start", "2026-06-01"])
        == 0
    )
    assert sim.read_manifest(tmp_path)["end"] == dt.date(2026, 6, 2)


class FakeClock:
    """A wall clock that `sleep` moves forward: the live simulation runs at full speed in a test."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start
        self.slept = 0.0

    def wall(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += dt.timedelta(seconds=seconds)


def test_live_day_lands_in_small_files_on_the_accelerated_clock(tmp_path: Path) -> None:
    day = START + dt.timedelta(days=40)
    fake = FakeClock(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))
    seen_clock = []

    def sleep(seconds: float) -> None:  # the sensors' clock file exists while the day plays
        seen_clock.append(json_clock(tmp_path))
        fake.sleep(seconds)

    live = sim.simulate_live(
        tmp_path,
        day,
        START,
        speed=60,
        step_minutes=5,
        from_time=dt.time(9, 0),
        requests=SMALL,
        sleep=sleep,
        wall=fake.wall,
    )
    folder = tmp_path / "incoming" / "credit_default" / "predictions" / f"date={day.isoformat()}"
    files = sorted(folder.glob("part-live-*.parquet"))
    assert len(files) == len(live.files) > 24  # small files, a few every hour
    # 00:00-09:00 is written at once, then 15 h of simulated time take 15 min of real time at 60x
    assert fake.slept == pytest.approx((24 - 9) * 3600 / 60, rel=1e-6)
    assert (
        seen_clock and seen_clock[0]["speed"] == 60 and seen_clock[0]["sim_start"].startswith(f"{day}T09:00")
    )
    assert not (tmp_path / sim.LIVE_CLOCK_NAME).exists()  # the clock is gone when the day is over
    frames = []
    for path in files:  # each file holds the rows of its own 5-minute slice
        frame = pq.read_table(path).to_pandas()
        start = pd.Timestamp(f"{day} {path.stem[-4:-2]}:{path.stem[-2:]}", tz="UTC")
        assert frame["ts"].between(start, start + pd.Timedelta(minutes=5), inclusive="left").all()
        frames.append(frame)
    got = pd.concat(frames, ignore_index=True)
    table, _ = sim.live_table("credit_default", day, START, SMALL)
    assert len(got) == live.rows == table.num_rows
    # the live incidents: champion requests fail 10:00-10:30, income is null 14:00-14:15
    ts = got["ts"]
    spike = ts.between(
        pd.Timestamp(f"{day} 10:00", tz="UTC"), pd.Timestamp(f"{day} 10:30", tz="UTC"), inclusive="left"
    )
    champion = got["role"] == "champion"
    assert (got.loc[spike & champion, "status"] == "error").all() and got.loc[
        spike & champion, "score"
    ].isna().all()
    assert (got.loc[~spike & champion, "status"] == "error").mean() < 0.05
    nulls = ts.between(
        pd.Timestamp(f"{day} 14:00", tz="UTC"), pd.Timestamp(f"{day} 14:15", tz="UTC"), inclusive="left"
    )
    assert got.loc[nulls, "income"].isna().all() and got.loc[~nulls, "income"].notna().mean() > 0.95
    # a re-run rewrites the same files
    again = sim.simulate_live(tmp_path, day, START, speed=1e9, requests=SMALL, sleep=lambda s: None)
    assert sorted(again.files) == files


def json_clock(out: Path) -> dict:
    return json.loads((out / sim.LIVE_CLOCK_NAME).read_text())


def test_live_clock_file_drives_the_sensors_clock(tmp_path: Path, config_dict, write_config) -> None:
    from monitoring_pipelines.intraday_service import clock_now

    config = load_config(write_config(config_dict))
    config.data_dir.mkdir(parents=True, exist_ok=True)
    wall = pd.Timestamp("2026-12-01 09:00", tz="UTC")
    assert clock_now(config, wall) == wall  # no live day playing: the wall clock
    (config.data_dir / sim.LIVE_CLOCK_NAME).write_text(
        '{"real_start": "2026-12-01T09:00:00+00:00", "sim_start": "2026-12-02T00:00:00+00:00", "speed": 60}'
    )
    assert clock_now(config, wall + pd.Timedelta(minutes=10)) == pd.Timestamp("2026-12-02 10:00", tz="UTC")


def test_a_clock_left_behind_stops_once_its_day_is_over(tmp_path: Path, config_dict, write_config) -> None:
    from monitoring_pipelines.intraday_service import clock_now

    config = load_config(write_config(config_dict))
    config.data_dir.mkdir(parents=True, exist_ok=True)
    (config.data_dir / sim.LIVE_CLOCK_NAME).write_text(
        '{"real_start": "2026-12-01T09:00:00+00:00", "sim_start": "2026-12-02T00:00:00+00:00", '
        '"sim_end": "2026-12-03T00:00:00+00:00", "speed": 60}'
    )
    wall = pd.Timestamp("2026-12-01 09:00", tz="UTC")
    assert clock_now(config, wall + pd.Timedelta(minutes=10)) == pd.Timestamp("2026-12-02 10:00", tz="UTC")
    late = wall + pd.Timedelta(minutes=30)  # simulated 2026-12-03 06:00: its day ended hours ago
    assert clock_now(config, late) == late


def test_simulate_live_stopped_by_a_signal_removes_its_clock(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "data"
    sim.simulate(out, days=3, requests=SMALL, start=START)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitoring_pipelines",
            "--config",
            str(out / "demo_config.yaml"),
            "simulate",
            "--live",
            "--speed",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    clock = out / sim.LIVE_CLOCK_NAME
    deadline = time.monotonic() + 60
    while not clock.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert clock.exists(), proc.communicate()[0]
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, output
    assert not clock.exists()
    assert sorted(
        (out / "incoming" / "credit_default" / "predictions" / f"date={START + dt.timedelta(days=3)}").glob(
            "part-live-*"
        )
    )


# --------------------------------------------------------------------------- regression and multiclass models

TASKS = ("delivery_time", "ticket_routing")
SHORT_REF = 7  # reference days of the task-model runs below: their incidents follow it


@pytest.fixture(scope="module")
def task_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, sim.SimulationSummary]:
    out = tmp_path_factory.mktemp("tasks")
    return out, sim.simulate(out, days=24, requests=1000, models=TASKS, reference_days=SHORT_REF)


def task_day(
    model: str, day: int, requests: int = 5000, inject: tuple[str, ...] | None = None
) -> pd.DataFrame:
    """One task-model day in memory (demo reference), ok rows joined to every label and outcome."""
    traffic = sim.simulate_day(model, day, requests, inject=inject)
    rows = traffic.predictions.to_pandas()
    rows = rows[rows["status"] == "ok"]
    outcomes = traffic.outcomes.to_pandas()[["request_id", "value"]]
    return rows.merge(traffic.labels.to_pandas(), on="request_id").merge(outcomes, on="request_id")


def test_task_models_are_picked_and_their_config_declares_them(
    task_run: tuple[Path, sim.SimulationSummary],
) -> None:
    out, summary = task_run
    assert sorted(p.name for p in (out / "incoming").iterdir()) == sorted(TASKS)
    config = load_config(summary.config_path)
    assert config.model_names == list(TASKS)
    delivery, tickets = config.model("delivery_time"), config.model("ticket_routing")
    assert (
        delivery.is_regression and delivery.outcomes == ["late_delivery"] and delivery.segments == ["region"]
    )
    assert tickets.is_multiclass and tickets.classes == list(sim.TICKET_CLASSES)
    assert tickets.outcomes == ["reassigned"] and tickets.segments == ["language", "channel"]
    for model in config.models:
        assert (model.reference.start, model.reference.end) == (
            START,
            START + dt.timedelta(days=SHORT_REF - 1),
        )
    manifest = sim.read_manifest(out)
    assert manifest["models"] == list(TASKS) and manifest["reference_days"] == SHORT_REF
    kinds = {(i["model_name"], i["kind"]): i["first"] for i in manifest["incidents"]}
    assert kinds == {
        ("delivery_time", "dirty_rows"): "2026-06-11",
        ("delivery_time", "feature_shift"): "2026-06-15",
        ("ticket_routing", "dirty_rows"): "2026-06-11",
        ("ticket_routing", "class_degradation"): "2026-06-17",
    }
    with pytest.raises(ValueError, match="models"):
        sim.simulate(out / "x", days=2, models=["fraud"])


def test_adding_the_task_models_leaves_the_binary_traffic_untouched(tmp_path: Path) -> None:
    sim.simulate(tmp_path / "binary", days=4, requests=SMALL, models=["credit_default", "churn_propensity"])
    sim.simulate(tmp_path / "all", days=4, requests=SMALL)
    binary, everything = digests(tmp_path / "binary"), digests(tmp_path / "all")
    assert binary and all(everything[key] == value for key, value in binary.items())
    assert {key.split("/")[1] for key in everything} == set(sim.MODEL_NAMES)


def test_task_logs_follow_the_contract(task_run: tuple[Path, sim.SimulationSummary]) -> None:
    out, summary = task_run
    config = load_config(summary.config_path)
    delivery = read_kind(out, "delivery_time", "predictions")
    assert "prediction" not in delivery.columns  # regression: the decision column may be absent
    assert list(delivery.columns[:-1]) == [
        *sim.task_prediction_schema("delivery_time").names[:6],
        *config.model("delivery_time").input_columns,
        "score",
        "latency_ms",
        "status",
    ]
    ok = delivery[(delivery["status"] == "ok")]
    finite = ok[np.isfinite(ok["score"])]
    assert len(ok) - len(finite) == sim.TASK_DIRTY_PREDICTIONS  # the dirty day's, nothing else
    assert finite["score"].between(5, 200).mean() > 0.999
    assert delivery.loc[delivery["status"] == "error", "score"].isna().all()
    assert set(delivery["hour"]) <= set(range(24))
    assert (delivery["hour"] == delivery["ts"].dt.hour).all()
    tickets = read_kind(out, "ticket_routing", "predictions")
    columns = [f"score__{c}" for c in sim.TICKET_CLASSES]
    assert "score" not in tickets.columns
    assert set(tickets["role"]) == {"champion", "shadow"} and set(tickets["model_version"]) == {"v7", "v8"}
    ok = tickets[(tickets["status"] == "ok") & tickets[columns].notna().all(axis=1)]
    assert np.abs(ok[columns].sum(axis=1) - 1).max() < 1e-4
    assert (
        ok["prediction"] == np.asarray(sim.TICKET_CLASSES)[ok[columns].to_numpy().argmax(axis=1)]
    ).mean() > 0.99


def test_one_ticket_day_logs_the_scores_map_instead(task_run: tuple[Path, sim.SimulationSummary]) -> None:
    out, _ = task_run
    map_day = START + dt.timedelta(days=SHORT_REF + sim.SCORES_MAP_OFFSET)
    for day in range(24):
        date = START + dt.timedelta(days=day)
        schema = pq.read_schema(sim.partition_path(out, "ticket_routing", "predictions", date))
        assert ("scores" in schema.names) == (date == map_day)
        assert ("score__shipping" in schema.names) == (date != map_day)
    table = pq.read_table(sim.partition_path(out, "ticket_routing", "predictions", map_day))
    assert table.schema.field("scores").type == pa.map_(pa.string(), pa.float64())
    frame = table.to_pandas()
    ok = frame[frame["status"] == "ok"]
    maps = [dict(m) for m in ok["scores"]]
    assert all(list(m) == list(sim.TICKET_CLASSES) for m in maps)
    assert max(abs(sum(m.values()) - 1) for m in maps) < 1e-4
    assert frame.loc[frame["status"] == "error", "scores"].isna().all()
    # the same numbers as the column form of that day
    day = sim.simulate_day(
        "ticket_routing", SHORT_REF + 1, 1000, reference_days=SHORT_REF
    ).predictions.to_pandas()
    first = day.set_index("prediction_id").loc[ok["prediction_id"].iloc[0]]
    assert [first[f"score__{c}"] for c in sim.TICKET_CLASSES] == list(maps[0].values())


def test_task_labels_and_outcomes_arrive_after_their_delay(
    task_run: tuple[Path, sim.SimulationSummary],
) -> None:
    out, _ = task_run
    for model, delay, kind in (
        ("delivery_time", (1, 2), pa.float64()),
        ("ticket_routing", (1, 3), pa.string()),
    ):
        predictions = read_kind(out, model, "predictions").drop_duplicates("request_id")
        labels = read_kind(out, model, "labels")
        assert (
            pq.read_schema(next((out / "incoming" / model / "labels").rglob("*.parquet"))).field("label").type
            == kind
        )
        joined = labels.merge(predictions[["request_id", "ts"]], on="request_id")
        assert len(joined) == len(labels)
        lag = (joined["label_ts"] - joined["ts"]).dt.total_seconds() / 86_400
        assert delay[0] <= lag.min() and lag.max() <= delay[1]
        assert (joined["label_ts"].dt.date == joined["folder"]).all()
        outcomes = read_kind(out, model, "outcomes")
        assert set(outcomes["outcome"]) == set(load_config(out / "demo_config.yaml").model(model).outcomes)
        assert set(outcomes["value"]) == {0.0, 1.0}
        assert set(outcomes["request_id"]) <= set(labels["request_id"])


def test_task_dirty_rows_sit_on_their_day_only(task_run: tuple[Path, sim.SimulationSummary]) -> None:
    out, _ = task_run
    dirty_day = SHORT_REF + 3
    delivery = read_kind(out, "delivery_time", "predictions")
    delivery["day"] = day_index(delivery["ts"])
    infinite = delivery[np.isinf(delivery["score"])]
    assert len(infinite) == sim.TASK_DIRTY_PREDICTIONS and set(infinite["day"]) == {dirty_day}
    assert set(infinite["role"]) == {"champion"} and set(infinite["status"]) == {"ok"}
    tickets = read_kind(out, "ticket_routing", "predictions")
    tickets["day"] = day_index(tickets["ts"])
    unknown = tickets[~tickets["prediction"].isin([*sim.TICKET_CLASSES, None])]
    assert set(unknown["prediction"]) == {sim.UNKNOWN_CLASS} and set(unknown["day"]) == {dirty_day}
    assert len(unknown) == sim.TASK_DIRTY_PREDICTIONS
    for frame in (delivery, tickets):
        duplicated = frame[frame["prediction_id"].duplicated()]
        assert len(duplicated) == sim.TASK_DIRTY_DUPLICATES and set(duplicated["day"]) == {dirty_day}
    labels = read_kind(out, "delivery_time", "labels")
    assert labels["label"].isna().sum() == sim.TASK_DIRTY_LABELS
    assert (read_kind(out, "ticket_routing", "labels")["label"] == sim.UNKNOWN_LABEL_CLASS).sum() == (
        sim.TASK_DIRTY_LABELS
    )


def test_delivery_model_is_accurate_until_couriers_run_short() -> None:
    quiet = pd.concat([task_day("delivery_time", d) for d in (10, 11, 12)])
    shifted = pd.concat([task_day("delivery_time", d) for d in (36, 37, 38)])
    counterfactual = pd.concat([task_day("delivery_time", d, inject=(sim.DIRTY_ROWS,)) for d in (36, 37, 38)])
    from sklearn.metrics import mean_absolute_error, root_mean_squared_error

    def errors(frame: pd.DataFrame) -> tuple[float, float, float]:
        return (
            mean_absolute_error(frame["label"], frame["score"]),
            root_mean_squared_error(frame["label"], frame["score"]),
            float((frame["score"] - frame["label"]).mean()),
        )

    mae, rmse, bias = errors(quiet)
    assert 4.0 < mae < 5.3 and 5.3 < rmse < 7.0 and abs(bias) < 0.3
    assert 0.03 < quiet["value"].mean() < 0.08  # late_delivery
    shifted_mae, shifted_rmse, shifted_bias = errors(shifted)
    assert shifted_mae > 1.3 * mae and shifted_rmse > 1.6 * rmse and shifted_bias < -1.5
    assert shifted["value"].mean() > 2 * quiet["value"].mean()
    assert shifted["courier_load"].mean() == pytest.approx(
        sim.LOAD_SHIFT_FACTOR * quiet["courier_load"].mean(), rel=0.05
    )
    assert errors(counterfactual)[0] == pytest.approx(mae, rel=0.08)  # the same days without the shift
    assert (counterfactual["distance_km"].to_numpy() == shifted["distance_km"].to_numpy()).all()
    after = pd.concat([task_day("delivery_time", d) for d in (50, 51)])
    assert errors(after)[0] == pytest.approx(mae, rel=0.08)  # the incident ends on day 48


def test_ticket_router_is_calibrated_shadow_better_until_shipping_changes() -> None:
    from sklearn.metrics import accuracy_score, recall_score

    classes = list(sim.TICKET_CLASSES)
    columns = [f"score__{c}" for c in classes]
    quiet = pd.concat([task_day("ticket_routing", d) for d in (10, 11, 12)])
    changed = pd.concat([task_day("ticket_routing", d) for d in (40, 41, 42)])

    def scores(frame: pd.DataFrame, version: str) -> tuple[float, np.ndarray, float]:
        rows = frame[frame["model_version"] == version]
        recall = recall_score(rows["label"], rows["prediction"], labels=classes, average=None)
        return (
            accuracy_score(rows["label"], rows["prediction"]),
            recall,
            float(rows[columns].max(axis=1).mean()),
        )

    accuracy, recall, confidence = scores(quiet, "v7")
    shadow_accuracy, shadow_recall, _ = scores(quiet, "v8")
    assert 0.75 < accuracy < 0.83 and confidence == pytest.approx(accuracy, abs=0.02)  # calibrated
    assert 0.02 < shadow_accuracy - accuracy < 0.07 and (shadow_recall >= recall - 0.02).all()
    shares = quiet[quiet["model_version"] == "v7"]["label"].value_counts(normalize=True)
    assert shares.min() > 0.15 and shares.max() < 0.4
    changed_accuracy, changed_recall, changed_confidence = scores(changed, "v7")
    shipping = classes.index("shipping")
    assert recall[shipping] - changed_recall[shipping] > 0.2
    others = [i for i in range(len(classes)) if i != shipping]
    before = pd.concat([task_day("ticket_routing", d, inject=()) for d in (40, 41, 42)])
    _, before_recall, _ = scores(before, "v7")  # the same days without the change
    assert (changed_recall[others] == before_recall[others]).all()  # other classes' tickets are untouched
    assert before_recall[shipping] - changed_recall[shipping] > 0.2
    assert accuracy - changed_accuracy > 0.04
    assert abs(changed_confidence - confidence) < 0.03  # CBPE cannot see a concept change
    assert scores(changed, "v8")[1][shipping] < shadow_recall[shipping] - 0.2  # the shadow suffers too
    new_shares = changed[changed["model_version"] == "v7"]["label"].value_counts(normalize=True)
    assert (new_shares - shares).abs().max() < 0.03  # the true class mix does not move
    reassigned = quiet[quiet["model_version"] == "v7"]["value"].mean()
    assert reassigned == pytest.approx(1 - accuracy, abs=0.03)
    assert changed[changed["model_version"] == "v7"]["value"].mean() > reassigned + 0.03


def test_live_days_are_for_the_binary_models(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="binary"):
        sim.simulate_live(tmp_path, START, START, models=["delivery_time"], sleep=lambda s: None)
    assert not (tmp_path / sim.LIVE_CLOCK_NAME).exists()
