"""Reference profiles: what is kept per feature, how it is stored, and how it is versioned."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from monitoring_pipelines.config import DriftThresholds
from monitoring_pipelines.core import drift as D
from monitoring_pipelines.core import profiles as P
from monitoring_pipelines.core.estimation import Calibration, fit_calibration
from monitoring_pipelines.core.profiles import ReferenceProfile
from monitoring_pipelines.storage.snapshot import Snapshot
from monitoring_pipelines_tests.core.test_drift import as_log, make_model, make_rows


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return make_rows(20_000, np.random.default_rng(300), days=10)


@pytest.fixture(scope="module")
def profile(reference: pd.DataFrame) -> ReferenceProfile:
    return D.fit_reference_profile(reference, make_model())


def test_numeric_profile_keeps_deciles_counts_nulls_range_and_moments(
    reference: pd.DataFrame, profile: ReferenceProfile
) -> None:
    prof = profile.features["income"]
    x = reference["income"].dropna().to_numpy()
    assert prof.kind == "numeric" and prof.n_rows == len(reference) and prof.n_values == x.size
    assert prof.null_rate == pytest.approx(reference["income"].isna().mean())
    assert (prof.min, prof.max) == (x.min(), x.max())
    assert prof.mean == pytest.approx(x.mean(), rel=1e-12) and prof.std == pytest.approx(x.std(), rel=1e-12)
    assert len(prof.edges) == 9 and prof.counts.sum() == x.size
    np.testing.assert_array_less(np.abs(prof.counts - x.size / 10), 2)
    assert prof.sketch.values.size <= P.SKETCH_SIZE and prof.sketch.n == x.size


@pytest.mark.parametrize(
    "values",
    [
        np.repeat([0.0, 1.0, 2.0, 5.0], [700, 100, 150, 50]),  # atoms
        np.concatenate([np.zeros(600), np.random.default_rng(1).normal(size=400)]),  # zero-inflated
        np.full(100, 7.0),  # constant
        np.array([3.0]),  # single row
    ],
    ids=["atoms", "zero_inflated", "constant", "single_row"],
)
def test_quantile_bins_never_leave_a_reference_bin_empty(values: np.ndarray) -> None:
    prof = P.profile_numeric("f", "f", values, bins=10)
    assert (prof.counts > 0).all()
    assert prof.counts.sum() == values.size
    assert len(prof.counts) == len(prof.edges) + 1


def test_categorical_profile_keeps_top_k_an_other_bucket_and_every_seen_value() -> None:
    counts = {"a": 50, "b": 30, "c": 15, "d": 5}
    prof = P.profile_categorical("f", "f", counts, n_rows=110, top_k=2)
    assert prof.categories == ["a", "b"]
    assert prof.counts.tolist() == [50, 30, 20]  # 20 = c + d in "other"
    assert prof.seen == {"a", "b", "c", "d"} and prof.seen_complete
    assert prof.null_rate == pytest.approx(10 / 110)
    day = D.categorical_statistics(prof, {"c": 10, "e": 5, "a": 85}, 100)
    unseen = next(r for r in day if r["statistic"] == "unseen_share")
    assert unseen["value"] == pytest.approx(0.05)  # "c" was seen, only "e" is new


def test_unseen_share_is_not_computed_past_the_seen_values_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "MAX_SEEN_CATEGORIES", 3)
    prof = P.profile_categorical("f", "f", {"a": 5, "b": 4, "c": 3, "d": 2}, n_rows=14, top_k=2)
    assert not prof.seen_complete
    day = D.categorical_statistics(prof, {"zzz": 10}, 10)
    assert np.isnan(next(r for r in day if r["statistic"] == "unseen_share")["value"])


def test_prediction_rate_is_a_binary_profile_with_both_decisions(
    profile: ReferenceProfile, reference: pd.DataFrame
) -> None:
    prof = profile.features[P.PREDICTION_FEATURE]
    assert prof.kind == "categorical" and prof.binary and prof.column == "prediction"
    assert set(prof.categories) == {"0", "1"}
    assert prof.positive_rate == pytest.approx(reference["prediction"].mean())
    all_zero = P.profile_categorical("p", "prediction", {"0": 10}, 10, top_k=1, binary=True)
    assert set(all_zero.categories) == {"0", "1"} and all_zero.seen == {"0", "1"}
    assert profile.features[P.SCORE_FEATURE].column == "score"


def test_category_keys_do_not_depend_on_the_number_type() -> None:
    assert (
        P.category_key(1.0) == P.category_key(1) == P.category_key(np.int64(1)) == P.category_key(True) == "1"
    )
    assert P.category_key(2.5) == "2.5" and P.category_key("x") == "x"
    mixed = pd.Series([1, "a", None, 1.0, "a"], dtype=object)
    assert P.category_counts(mixed) == ({"1": 2, "a": 2}, 5)
    strings = pd.Series(["x", None, "y", "x"], dtype=object)
    assert P.category_counts(strings) == ({"x": 2, "y": 1}, 4)


def test_rows_round_trip_to_the_same_profile_and_the_same_drift(profile: ReferenceProfile) -> None:
    rows = P.profile_to_rows(profile)
    assert list(rows.columns) == P.PROFILE_ROW_COLUMNS
    assert set(rows["kind"]) == {"numeric", "categorical"}
    assert (rows["profile_version"] == profile.version).all() and (rows["n"] == profile.n).all()
    for doc in rows["profile"]:
        json.loads(doc, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    back = P.profile_from_rows(rows.sample(frac=1, random_state=1))
    assert back.version == profile.version and set(back.features) == set(profile.features)
    assert (back.window_start, back.window_end) == (profile.window_start, profile.window_end)
    pd.testing.assert_frame_equal(back.variability_frame(), profile.variability_frame(), check_like=True)
    day = make_rows(3000, np.random.default_rng(301), shift=0.2)
    pd.testing.assert_frame_equal(
        D.compute_drift(back, day, DriftThresholds()),
        D.compute_drift(profile, day, DriftThresholds()),
    )


def test_the_score_calibration_round_trips_through_the_rows_and_enters_the_version(
    profile: ReferenceProfile,
) -> None:
    assert profile.calibration is None and P.profile_from_rows(P.profile_to_rows(profile)).calibration is None
    rng = np.random.default_rng(5)
    score = rng.random(2000)
    calibration = fit_calibration(score, (rng.random(2000) < score**2).astype(int))
    calibrated = profile.with_calibration(calibration)
    assert calibrated.version != profile.version and calibrated.calibration is calibration
    assert profile.with_calibration(calibration).version == calibrated.version  # a function of the map
    raw = profile.with_calibration(Calibration.raw("too few labels"))
    assert raw.version not in (profile.version, calibrated.version)
    rows = P.profile_to_rows(calibrated)
    docs = {feature: json.loads(doc) for feature, doc in zip(rows["feature"], rows["profile"], strict=True)}
    assert [f for f, doc in docs.items() if "calibration" in doc] == [P.SCORE_FEATURE]
    back = P.profile_from_rows(rows.sample(frac=1, random_state=3)).calibration
    assert back is not None and back.note == calibration.note and back.n_labels == 2000
    np.testing.assert_array_equal(back.x, calibration.x)
    np.testing.assert_array_equal(back.y, calibration.y)
    grid = np.linspace(0, 1, 101)
    np.testing.assert_array_equal(back.apply(grid), calibration.apply(grid))
    assert P.PROFILE_FORMAT >= 2 and json.loads(rows["profile"].iloc[0])["format"] == P.PROFILE_FORMAT


def test_rows_of_two_versions_are_refused(profile: ReferenceProfile) -> None:
    rows = P.profile_to_rows(profile)
    other = rows.assign(profile_version="other")
    with pytest.raises(ValueError, match="profile_version"):
        P.profile_from_rows(pd.concat([rows, other]))


def test_version_is_stable_across_row_order_and_changes_with_its_inputs(
    reference: pd.DataFrame, profile: ReferenceProfile
) -> None:
    model = make_model()
    shuffled = reference.sample(frac=1, random_state=2).reset_index(drop=True)
    assert P.build_reference_profile(shuffled, model).version == profile.version
    changed = reference.copy()
    changed.loc[0, "age"] += 1e-6
    assert P.build_reference_profile(changed, model).version != profile.version
    assert P.build_reference_profile(reference, make_model(bins=5)).version != profile.version
    assert P.build_reference_profile(reference, make_model(top_k=1)).version != profile.version
    window = (dt.date(2026, 1, 1), dt.date(2026, 1, 5))
    assert P.build_reference_profile(reference, model, window).version != profile.version
    fewer = model.model_copy(
        update={"features": model.features.model_copy(update={"categorical": ["region"]})}
    )
    assert P.build_reference_profile(reference, fewer).version != profile.version


def test_reference_rows_are_champion_ok_rows_of_the_window(reference: pd.DataFrame) -> None:
    frame = reference.copy()
    frame["role"] = np.where(np.arange(len(frame)) % 4 == 0, "shadow", "champion")
    frame["status"] = np.where(np.arange(len(frame)) % 5 == 0, "error", "ok")
    window = (dt.date(2026, 1, 3), dt.date(2026, 1, 6))
    kept = P.reference_rows(frame, window)
    days = pd.to_datetime(kept["partition_date"]).dt.date
    assert (kept["role"] == "champion").all() and (kept["status"] == "ok").all()
    assert days.min() >= window[0] and days.max() <= window[1]
    profile = P.build_reference_profile(frame, make_model(), window)
    assert profile.n == len(kept)
    assert (profile.window_start, profile.window_end) == window


def test_a_snapshot_of_the_window_gives_the_same_profile_and_bands(
    reference: pd.DataFrame, profile: ReferenceProfile
) -> None:
    """The reference asset profiles the window's snapshot (SnapshotColumns) and scores each of its days
    for the bands; that is the profile of the same rows as a frame, shadow and failed rows left out."""
    raw = as_log(reference)
    raw["ts"] = pd.to_datetime(reference["partition_date"]).dt.tz_localize("UTC") + pd.to_timedelta(
        np.arange(len(raw)) % 86_400, unit="s"
    )
    noise = as_log(make_rows(3000, np.random.default_rng(303), shift=2.0))
    noise["ts"] = raw["ts"].iloc[: len(noise)].to_numpy()
    noise["role"] = np.where(np.arange(len(noise)) % 2 == 0, "shadow", "champion")
    noise["status"] = np.where(noise["role"] == "champion", "error", "ok")
    noise.loc[noise["status"] == "error", ["score", "prediction"]] = np.nan
    noise["prediction_id"] = "n" + noise["prediction_id"]
    model = make_model()
    start, end = model.reference.start, model.reference.end
    snap, validation = Snapshot.from_frame(model, pd.concat([raw, noise], ignore_index=True), start, end)
    with snap:
        assert validation.quarantined_rows == 0
        days = {day: snap.columns(day) for day in snap.days()}
        assert len(days) == 10
        fitted = D.fit_reference_profile(snap.columns(), model, days=days)
    assert fitted.n == profile.n == len(reference) and len(profile.variability_frame()) > 0
    assert fitted.version == profile.version
    pd.testing.assert_frame_equal(P.profile_to_rows(fitted), P.profile_to_rows(profile))
    pd.testing.assert_frame_equal(
        fitted.variability_frame(), profile.variability_frame(), check_like=True, rtol=1e-12
    )


def test_missing_prediction_columns_are_skipped_but_a_missing_feature_is_an_error(
    reference: pd.DataFrame,
) -> None:
    bare = reference.drop(columns=["score", "prediction"])
    profile = P.build_reference_profile(bare, make_model())
    assert P.SCORE_FEATURE not in profile.features and P.PREDICTION_FEATURE not in profile.features
    with pytest.raises(KeyError, match="region"):
        P.build_reference_profile(reference.drop(columns=["region"]), make_model())


def test_profile_stays_small_for_a_large_reference() -> None:
    rng = np.random.default_rng(302)
    big = make_rows(400_000, rng, as_category=True)
    rows = P.profile_to_rows(P.build_reference_profile(big, make_model()))
    per_numeric = rows.loc[rows["kind"] == "numeric", "profile"].str.len().max()
    assert per_numeric < 200_000  # bounded by SKETCH_SIZE points, whatever the reference size
