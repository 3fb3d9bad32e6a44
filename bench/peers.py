"""Peer run: NannyML and Evidently drift on the same bench files, measured beside our product.

    python3.11 bench/peers.py --data /tmp/w1m [--json bench/peers.json]

What it measures. For each peer, one whole child process, timed from its start to its exit (interpreter
start and imports count, as they do when our CLI is timed), that reads the reference window's and the
analysis day's champion rows from the workload's Parquet files (bench/workload.py layout) and runs the
tool's stock univariate drift over the 20 numeric + 5 categorical features and the score:

* NannyML: ``UnivariateDriftCalculator`` with its default methods (Jensen-Shannon distance for
  continuous and for categorical columns) and default thresholds (mean + 3 std of the metric over the
  reference chunks). Chunks are days (``chunk_period="D"``): the analysis day is one chunk, the 7
  reference days give the 7 reference chunks that the default threshold needs (``chunk_number=1``
  would leave one reference chunk, a zero std, and every column would alert).
* Evidently: ``Report([DataDriftPreset()])`` with default stat tests (for >1000 rows: normed Wasserstein
  distance for numeric and Jensen-Shannon distance for categorical columns, threshold 0.1), column types
  declared in a ``DataDefinition``; the snapshot is turned into a dict so the work is really done.

Per peer it reports wall seconds, the child's peak RSS (``os.wait4`` on that child alone), rows read,
the tool's version, and the columns the tool flagged (the workload drifts num_03 by 0.1 sigma and puts
2 % of a new category in cat_2).

Why it is fair: the same files our bench reads, whole processes on both sides, the same machine and the
same run, so the ratio is measured, not remembered. The peers live in their own venv,
``bench/.peers-venv`` (made once with ``python3.11 -m venv``, reused while its pins match), because
their pins clash with ours (Evidently needs pandas < 3). This script imports nothing outside the
standard library in the parent, and never our package. A peer whose install or run fails gets an
``"error"`` entry; the other still reports.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".peers-venv"
PEERS = ("nannyml", "evidently")
# Exact pins, found to install together and work on Python 3.11. Evidently 0.7.23 does not import under
# pandas 3 (it uses pandas.core.dtypes.common.infer_dtype_from_object), hence pandas 2.3.3.
PEERS_REQUIREMENTS = [
    "nannyml==0.13.1",
    "evidently==0.7.23",
    "pandas==2.3.3",
    "numpy==2.4.6",
    "pyarrow==26.0.1",
    "scipy==1.17.1",
    "scikit-learn==1.9.1",
]
# No usage telemetry from the peers (there is no network here; a blocked call would be timed too).
CHILD_ENV = {"NML_DISABLE_USAGE_LOGGING": "1", "DO_NOT_TRACK": "1", "PYTHONWARNINGS": "ignore"}
RESULT_MARK = "PEER_RESULT "
NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
MONITORED = NUMERIC + CATEGORICAL + ["score"]


# --- the parent: venv, child processes, report ------------------------------------------------------


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> None:
    """Make bench/.peers-venv with the pinned peers, unless it already has exactly these pins."""
    stamp = VENV / "peers-requirements.txt"
    wanted = "\n".join(PEERS_REQUIREMENTS) + "\n"
    if venv_python().exists() and stamp.exists() and stamp.read_text() == wanted:
        return
    if not venv_python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    log = VENV / "install.log"
    with log.open("w") as out:
        done = subprocess.run(
            [str(venv_python()), "-m", "pip", "install", "--no-input", *PEERS_REQUIREMENTS],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        tail = [line for line in log.read_text().splitlines() if "is ignored" not in line][-15:]
        raise RuntimeError(f"pip install failed (exit {done.returncode}, log {log}):\n" + "\n".join(tail))
    stamp.write_text(wanted)


def run_child(peer: str, data: Path, reference: list[str], day: str, model: str, timeout: float) -> dict:
    """Run one peer as a whole child process; wall time and peak RSS are that process's own."""
    cmd = [str(venv_python()), str(Path(__file__).resolve()), "--worker", peer, "--data", str(data)]
    cmd += ["--reference", ",".join(reference), "--day", day, "--model", model]
    env = {**os.environ, **CHILD_ENV}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        while True:  # os.wait4 gives this child's own rusage (RUSAGE_CHILDREN would mix in pip and peers)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                return {"error": f"timed out after {timeout:.0f} s", "wall_s": round(timeout, 1)}
            time.sleep(0.01)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    measured = {
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "load_after": [round(x, 2) for x in os.getloadavg()],  # the machine may be busy with other work
    }
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(stderr.strip().splitlines()[-12:])
        return {"error": f"exit {proc.returncode}: {tail or stdout[-2000:]}", **measured}
    return {**measured, **json.loads(lines[-1][len(RESULT_MARK) :])}


def date_folders(data: Path, model: str) -> list[str]:
    root = data / "incoming" / model / "predictions"
    return sorted(
        p.name.removeprefix("date=") for p in root.glob("date=*") if (p / "part-0.parquet").exists()
    )


def reference_window(data: Path, days: list[str]) -> list[str]:
    """The reference days from the workload's config.yaml (`reference: {start: .., end: ..}`)."""
    config = data / "config.yaml"
    found = re.search(r"reference:\s*\{\s*start:\s*([\d-]+),\s*end:\s*([\d-]+)\s*\}", config.read_text())
    if not found:
        raise SystemExit(f"no reference window in {config}")
    start, end = found.groups()
    return [d for d in days if start <= d <= end]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a bench/workload.py output folder")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--model", default="wide_model")
    parser.add_argument("--day", help="analysis day (default: the first day after the reference window)")
    parser.add_argument(
        "--peers", default=",".join(PEERS), help="comma-separated subset of " + ",".join(PEERS)
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per peer run")
    parser.add_argument("--worker", choices=PEERS, help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.reference.split(","), args.day, args.model)
        return

    peers = args.peers.split(",")
    if unknown := set(peers) - set(PEERS):
        parser.error(f"unknown peers {sorted(unknown)}; choose from {', '.join(PEERS)}")
    data = args.data.resolve()
    days = date_folders(data, args.model)
    reference = reference_window(data, days)
    day = args.day or next((d for d in days if d > reference[-1]), None)
    if not reference or day not in days:
        raise SystemExit(f"need reference days and an analysis day in {data}; found {days}")
    report: dict = {
        "data": str(data),
        "model": args.model,
        "reference_days": reference,
        "analysis_day": day,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load": [round(x, 2) for x in os.getloadavg()],
        },
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "venv": str(VENV),
        "requirements": PEERS_REQUIREMENTS,
        "peers": {},
    }
    try:
        ensure_venv()
        install_error = None
    except Exception as exc:  # every peer needs the venv: report the failure for each
        install_error = f"install: {exc}"
    for peer in peers:
        if install_error:
            report["peers"][peer] = {"error": install_error}
            continue
        report["peers"][peer] = run_child(peer, data, reference, day, args.model, args.timeout)
        print(f"{peer}: {json.dumps(report['peers'][peer])[:300]}", file=sys.stderr)
    ok = [p for p in report["peers"].values() if "error" not in p]
    report["rows"] = (
        {"reference": ok[0]["rows_reference"], "analysis": ok[0]["rows_analysis"]} if ok else None
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


# --- the child: runs inside the peers' venv ---------------------------------------------------------


def worker(peer: str, data: Path, reference: list[str], day: str, model: str) -> None:
    """Read the champion rows, run one peer's drift, print one RESULT_MARK line of JSON."""
    start = time.perf_counter()
    if peer == "nannyml":
        import nannyml as tool
    else:
        import evidently as tool
    import pyarrow.parquet as pq

    imported = time.perf_counter()
    columns = MONITORED + (["ts"] if peer == "nannyml" else [])
    root = data / "incoming" / model / "predictions"

    def champion_rows(days: list[str]):
        files = [str(root / f"date={d}" / "part-0.parquet") for d in days]
        return pq.read_table(files, columns=columns, filters=[("role", "==", "champion")]).to_pandas()

    ref, cur = champion_rows(reference), champion_rows([day])
    read = time.perf_counter()
    result = (run_nannyml if peer == "nannyml" else run_evidently)(ref, cur)
    done = time.perf_counter()
    result |= {
        "version": tool.__version__,
        "rows_reference": len(ref),
        "rows_analysis": len(cur),
        "columns_monitored": len(MONITORED),
        "phases_s": {
            "import": round(imported - start, 2),
            "read": round(read - imported, 2),
            "drift": round(done - read, 2),
        },
        "libs": {name: __import__(name).__version__ for name in ("pandas", "numpy", "pyarrow", "scipy")},
    }
    print(RESULT_MARK + json.dumps(result), flush=True)


def run_nannyml(ref, cur) -> dict:
    import nannyml as nml

    calc = nml.UnivariateDriftCalculator(
        column_names=MONITORED,
        treat_as_categorical=CATEGORICAL,
        timestamp_column_name="ts",
        chunk_period="D",  # the analysis day is one chunk; the 7 reference days give the thresholds
    )
    calc.fit(ref)
    frame = calc.calculate(cur).filter(period="analysis").to_df()
    if len(frame) != 1:
        raise RuntimeError(f"expected one analysis chunk, got {len(frame)}")
    methods = {"continuous": calc.continuous_method_names, "categorical": calc.categorical_method_names}
    drifted, scores = [], {}
    for column in MONITORED:
        for method in methods["categorical" if column in CATEGORICAL else "continuous"]:
            scores[column] = round(float(frame[(column, method, "value")].iloc[0]), 5)
            if bool(frame[(column, method, "alert")].iloc[0]):
                drifted.append(column)
    return {
        "config": {
            "methods": methods,
            "thresholds": "library defaults (StandardDeviationThreshold: reference chunks' mean + 3 std)",
            "chunking": "chunk_period='D': 7 reference chunks, 1 analysis chunk",
        },
        "drifted_columns": sorted(set(drifted)),
        "n_drifted": len(set(drifted)),
        "scores": scores,
    }


def run_evidently(ref, cur) -> dict:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=NUMERIC + ["score"], categorical_columns=CATEGORICAL)
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    result = snapshot.dict()
    count, methods, drifted, scores = None, {}, [], {}
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":DriftedColumnsCount"):
            count = int(metric["value"]["count"])
        elif config["type"].endswith(":ValueDrift"):
            column, value = config["column"], float(metric["value"])
            methods[column] = f"{config['method']} >= {config['threshold']}"  # the stat tests' drift rule
            scores[column] = round(value, 5)
            if value >= config["threshold"]:
                drifted.append(column)
    return {
        "config": {
            "preset": "DataDriftPreset() defaults (drift_share 0.5)",
            "methods": sorted(set(methods.values())),
        },
        "drifted_columns": sorted(drifted),
        "n_drifted": count,
        "scores": scores,
    }


if __name__ == "__main__":
    main()
