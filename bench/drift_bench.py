"""Drift bench: one model-day of drift through the project's own code path, against plain scipy.

    .venv/bin/python bench/drift_bench.py                     # 1M-row reference, 1M-row day
    .venv/bin/python bench/drift_bench.py --rows 10000000     # 10M-row day (DuckDB source)

Data: 20 numeric + 5 categorical features, ``score`` and ``prediction``; the reference spans 28
days (so reference-day variability is computed too); the current day has a 0.2-sigma shift on
one feature and a 5 % new category on another. Each phase runs in its own subprocess, so its
peak RSS (``ru_maxrss``) is that phase alone and includes the data it holds:

* ``prepare``  generates reference and day, writes them to a DuckDB file (not timed);
* ``profile``  reads the reference, fits the profile (``fit_reference_profile``, timed), writes rows;
* ``drift``    reads the profile rows and the day -- as a pandas frame (``--source frame``: read
  from DuckDB before timing, like a Dagster asset that loaded its partition) or as a DuckDB
  relation (``--source duckdb``: columns fetched inside the timed region) -- then times
  ``profile_from_rows`` + ``compute_drift`` + ``drift_checks``;
* ``scipy``    reads both as arrays and times the per-column baseline: ``ks_2samp`` +
  ``wasserstein_distance`` per numeric column, ``chi2_contingency`` per categorical.

Results are merged into bench/results.json under the key "drift".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_NUMERIC = 20
N_CATEGORICAL = 5
REFERENCE_DAYS = 28
TARGETS = {"wall_s_1m": 1.5, "peak_rss_mb_1m": 600, "peak_rss_mb_10m": 2048}
DUCKDB_MEMORY_LIMIT = "256MB"  # the warehouse's buffer pool cap while streaming a large day


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def model_config():
    from monitoring_pipelines.config import ModelConfig

    return ModelConfig(
        name="bench_model",
        features={
            "numeric": [f"num_{i:02d}" for i in range(N_NUMERIC)],
            "categorical": [f"cat_{i}" for i in range(N_CATEGORICAL)],
        },
        reference={"start": "2026-01-01", "end": "2026-01-28"},
    )


# --------------------------------------------------------------------------- data

CHUNK = 250_000  # rows generated at a time: keeps generation's own memory small


def _labels() -> list[np.ndarray]:
    return [
        np.array([f"c{j}_{k}" for k in range(4 + 3 * j)] + ["brand_new"], dtype=object)
        for j in range(N_CATEGORICAL)
    ]


def generate_chunks(rows: int, seed: int, drifted: bool, days: int):
    """Synthetic prediction-log columns in chunks of CHUNK rows (numbers, and category codes)."""
    labels = _labels()
    for k, start in enumerate(range(0, rows, CHUNK)):
        rng = np.random.default_rng([seed, k])
        n = min(CHUNK, rows - start)
        cols: dict[str, np.ndarray] = {}
        for i in range(N_NUMERIC):
            kind = i % 4
            if kind == 0:
                x = rng.normal(i, 1 + i / 10, n)
            elif kind == 1:
                x = rng.lognormal(0, 0.75, n) * 1000
            elif kind == 2:
                x = rng.integers(0, 12, n).astype(np.float64)
            else:
                x = rng.beta(2, 5, n)
            if i == 0 and drifted:
                x += 0.2 * (1 + i / 10)  # a 0.2-sigma mean shift
            if i == 5:
                x[rng.random(n) < 0.02] = np.nan
            cols[f"num_{i:02d}"] = x
        for j in range(N_CATEGORICAL):
            size = len(labels[j]) - 1
            weights = np.arange(size, 0, -1, dtype=float)
            codes = rng.choice(size, n, p=weights / weights.sum()).astype(np.int8)
            if j == 1 and drifted:
                codes[rng.random(n) < 0.05] = size  # a 5 % category the reference never had
            cols[f"cat_{j}"] = codes
        logit = 0.8 * cols["num_00"] + 0.5 * cols["num_03"] - 1.5
        cols["score"] = 1 / (1 + np.exp(-logit + rng.normal(0, 0.5, n)))
        cols["prediction"] = (cols["score"] > 0.5).astype(np.int8)
        cols["partition_date"] = np.datetime64("2026-01-01", "D") + rng.integers(0, days, n).astype(
            "timedelta64[D]"
        )
        yield start, n, cols


def make_frame(rows: int, seed: int, drifted: bool, days: int):
    """The whole table as a pandas frame in the dtypes DuckDB hands back (float64, str, int8),
    filled chunk by chunk into preallocated columns so generation needs little extra memory."""
    import pandas as pd

    labels = _labels()
    out: dict[str, np.ndarray] = {}
    for start, n, cols in generate_chunks(rows, seed, drifted, days):
        for name, arr in cols.items():
            if name not in out:
                out[name] = np.empty(rows, dtype=arr.dtype)
            out[name][start : start + n] = arr
    frame = {}
    for name in list(out):
        arr = out.pop(name)
        if name.startswith("cat_"):
            frame[name] = pd.array(labels[int(name[4:])][arr], dtype="str")
        else:
            frame[name] = arr
    return pd.DataFrame(frame, copy=False)


def write_table(con, table: str, rows: int, seed: int, drifted: bool, days: int) -> None:
    import pandas as pd

    labels = _labels()
    for start, _, cols in generate_chunks(rows, seed, drifted, days):
        for j in range(N_CATEGORICAL):
            cols[f"cat_{j}"] = pd.array(labels[j][cols[f"cat_{j}"]], dtype="str")
        con.register("chunk", pd.DataFrame(cols))
        verb = f"CREATE OR REPLACE TABLE {table} AS" if start == 0 else f"INSERT INTO {table}"
        con.execute(f"{verb} SELECT * FROM chunk")
        con.unregister("chunk")


def release_free_memory() -> None:
    """Hand memory that generation freed back to the OS (glibc keeps freed heap pages), so the
    resident set measured next is the data plus what the measured code itself allocates."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0), so a later VmHWM is the compute's peak."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --------------------------------------------------------------------------- phases


def phase_prepare(args: argparse.Namespace) -> dict:
    import duckdb

    con = duckdb.connect(str(Path(args.workdir) / "bench.duckdb"))
    t = time.perf_counter()
    write_table(con, "day", args.rows, args.seed + 1, drifted=True, days=1)
    con.close()
    return {"generate_s": time.perf_counter() - t}


def phase_profile(args: argparse.Namespace) -> dict:
    from monitoring_pipelines.core.drift import fit_reference_profile
    from monitoring_pipelines.core.profiles import profile_to_rows

    reference = make_frame(args.reference_rows, args.seed, drifted=False, days=REFERENCE_DAYS)
    rss_data = current_rss_mb()
    t = time.perf_counter()
    profile = fit_reference_profile(reference, model_config())
    rows = profile_to_rows(profile)
    wall = time.perf_counter() - t
    rows.to_parquet(Path(args.workdir) / "profile.parquet")
    return {
        "reference_rows": len(reference),
        "fit_profile_s": wall,
        "profile_version": profile.version,
        "profile_json_kb": float(rows["profile"].str.len().sum() / 1024),
        "rss_after_data_mb": rss_data,
        "peak_rss_mb": peak_rss_mb(),
    }


def phase_drift(args: argparse.Namespace) -> dict:
    import pandas as pd

    from monitoring_pipelines.core.drift import compute_drift, drift_checks
    from monitoring_pipelines.core.profiles import profile_from_rows

    rows = pd.read_parquet(Path(args.workdir) / "profile.parquet")
    thresholds = model_config().thresholds.drift
    if args.source == "duckdb":
        import duckdb

        con = duckdb.connect(str(Path(args.workdir) / "bench.duckdb"), read_only=True)
        if args.duckdb_memory_limit != "none":
            con.execute(f"SET memory_limit = '{args.duckdb_memory_limit}'")
        current = con.table("day")
    else:
        current = make_frame(args.rows, args.seed + 1, drifted=True, days=1)
    generation_peak = peak_rss_mb()
    release_free_memory()
    rss_data = current_rss_mb()
    hwm_reset = reset_peak_rss()
    timings = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        profile = profile_from_rows(rows)
        t1 = time.perf_counter()
        drift = compute_drift(profile, current, thresholds)
        t2 = time.perf_counter()
        outcomes = drift_checks(drift, thresholds)
        t3 = time.perf_counter()
        timings.append(
            {"profile_from_rows_s": t1 - t0, "compute_drift_s": t2 - t1, "drift_checks_s": t3 - t2}
        )
    compute_peak = hwm_mb() if hwm_reset else peak_rss_mb()
    totals = [sum(t.values()) for t in timings]
    first = timings[0]
    return {
        "source": args.source,
        "rows": int(drift["n_current"].max()),
        **first,
        "total_s": totals[0],
        "total_s_runs": totals,
        "compute_drift_s_best": min(t["compute_drift_s"] for t in timings),
        "rss_after_data_mb": rss_data,
        "peak_rss_mb": max(generation_peak, compute_peak),  # whole process, data generation included
        "peak_rss_during_drift_mb": compute_peak,  # from the end of generation on, data resident
        "peak_rss_during_generation_mb": generation_peak,
        "flagged_features": sorted(drift.loc[drift["drifted"], "feature"].unique().tolist()),
        "failed_checks": [o.check_name for o in outcomes if not o.passed],
    }


def phase_scipy(args: argparse.Namespace) -> dict:
    from scipy import stats

    model = model_config()
    ref = make_frame(args.reference_rows, args.seed, drifted=False, days=REFERENCE_DAYS)
    cur = make_frame(args.rows, args.seed + 1, drifted=True, days=1)
    rss_data = current_rss_mb()
    t = time.perf_counter()
    for col in [*model.features.numeric, "score"]:
        x = ref[col].dropna().to_numpy()
        y = cur[col].dropna().to_numpy()
        stats.ks_2samp(x, y)
        stats.wasserstein_distance(x, y)
    for col in [*model.features.categorical, "prediction"]:
        a, b = ref[col].value_counts(), cur[col].value_counts()
        index = a.index.union(b.index)
        stats.chi2_contingency(np.vstack([a.reindex(index, fill_value=0), b.reindex(index, fill_value=0)]))
    wall = time.perf_counter() - t
    return {"scipy_s": wall, "rss_after_data_mb": rss_data, "peak_rss_mb": peak_rss_mb()}


PHASES = {"prepare": phase_prepare, "profile": phase_profile, "drift": phase_drift, "scipy": phase_scipy}


def run_phase(name: str, args: argparse.Namespace, workdir: str, **extra: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--phase",
        name,
        "--workdir",
        workdir,
        "--rows",
        str(args.rows),
        "--reference-rows",
        str(args.reference_rows),
        "--seed",
        str(args.seed),
        "--repeat",
        str(args.repeat),
        "--duckdb-memory-limit",
        args.duckdb_memory_limit,
    ]
    for key, value in extra.items():
        cmd += [f"--{key}", value]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the current day")
    parser.add_argument("--reference-rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--source",
        choices=["frame", "duckdb", "both"],
        default=None,
        help="how the day reaches compute_drift (default: both up to 2M rows, duckdb above)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed drift runs per source (first is cold)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the plain scipy baseline")
    parser.add_argument(
        "--duckdb-memory-limit",
        default=DUCKDB_MEMORY_LIMIT,
        help="DuckDB buffer pool cap for --source duckdb ('none': DuckDB's default, 80%% of RAM)",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        print(json.dumps(PHASES[args.phase](args)))
        return

    sources = {"frame": ["frame"], "duckdb": ["duckdb"], "both": ["frame", "duckdb"]}.get(
        args.source or "", ["frame", "duckdb"] if args.rows <= 2_000_000 else ["duckdb"]
    )
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="drift_bench_") as workdir:
        print(
            f"reference {args.reference_rows:,} rows, day {args.rows:,} rows, sources {sources}", flush=True
        )
        prepare = run_phase("prepare", args, workdir) if "duckdb" in sources else {"generate_s": None}
        profile = run_phase("profile", args, workdir)
        print(
            f"profile: {profile['fit_profile_s']:.2f} s, peak RSS {profile['peak_rss_mb']:.0f} MB", flush=True
        )
        drift = {}
        for source in sources:
            drift[source] = d = run_phase("drift", args, workdir, source=source)
            print(
                f"drift ({source}): first run {d['total_s']:.3f} s (compute_drift {d['compute_drift_s']:.3f} s, "
                f"best {d['compute_drift_s_best']:.3f} s); peak RSS {d['peak_rss_mb']:.0f} MB "
                f"(during drift {d['peak_rss_during_drift_mb']:.0f} MB, data resident {d['rss_after_data_mb']:.0f} MB); "
                f"flagged {d['flagged_features']}",
                flush=True,
            )
        baseline = None if args.no_baseline else run_phase("scipy", args, workdir)
    result = {
        "rows": args.rows,
        "reference_rows": args.reference_rows,
        "features": {"numeric": N_NUMERIC, "categorical": N_CATEGORICAL},
        "duckdb_memory_limit": args.duckdb_memory_limit,
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_start": load_at_start,  # other processes on the machine inflate wall times
        "load_average_1m_at_end": os.getloadavg()[0],
        "duckdb_table_write_s": prepare["generate_s"],
        "profile": profile,
        "drift": drift,
        "targets": TARGETS,
    }
    if baseline:
        result["scipy_baseline"] = baseline
        for source, d in drift.items():
            ratio = baseline["scipy_s"] / d["total_s"]
            result.setdefault("speedup_vs_scipy", {})[source] = ratio
            print(
                f"scipy per-column baseline: {baseline['scipy_s']:.2f} s -> ours ({source}) is {ratio:.1f}x faster"
            )
    out = Path(args.out)
    existing = json.loads(out.read_text()) if out.exists() else {}
    key = f"rows_{args.rows}"
    existing.setdefault("drift", {})[key] = result
    out.write_text(json.dumps(existing, indent=2, default=str) + "\n")
    print(f"wrote {out} [drift.{key}]")


if __name__ == "__main__":
    main()
