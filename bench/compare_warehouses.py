"""Compare the tables of two warehouses built from the same inputs (before/after a change).

    .venv/bin/python bench/compare_warehouses.py OLD.duckdb NEW.duckdb

Per table: row counts, and per column the rows whose values differ (numbers beyond a relative
tolerance of 1e-9, anything else exactly), after sorting both sides on the table's key columns.
Columns that record when or in which run a row was written are skipped; known renames between the
versions (serving's all-rows marker 'all' -> '__all__') are applied to the old side first.
"""

from __future__ import annotations

import json
import sys

import duckdb
import numpy as np
import pandas as pd

VOLATILE = {
    "run_id",
    "evaluated_at",
    "created_at",
    "updated_at",
    "computed_at",
    "notified_at",
    "resolved_at",
    "acknowledged_at",
    "delivered_at",
    "next_attempt_at",
    "last_attempt_at",
    "built_at",
    "generated_at",
    "materialized_at",
    "input_fingerprint",
}


def load(path: str) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(path, read_only=True)
    names = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'monitoring' "
            "AND table_type = 'BASE TABLE'"
        ).fetchall()
    ]
    out = {n: con.execute(f"SELECT * FROM monitoring.{n}").df() for n in names}
    con.close()
    return out


def normalize_old(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    if table == "serving_metrics":
        for column in ("role", "model_version"):
            frame[column] = frame[column].replace("all", "__all__")
    return frame


def text(value: object) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return json.dumps([text(v) for v in value])
    if isinstance(value, str):
        try:  # JSON kept as text in one version and as JSON in the other
            return json.dumps(json.loads(value), sort_keys=True)
        except (ValueError, TypeError):
            return value
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return "<null>"
    return str(value)


def compare(table: str, old: pd.DataFrame, new: pd.DataFrame) -> dict:
    columns = [c for c in old.columns if c in new.columns and c not in VOLATILE]
    report: dict = {"rows_old": len(old), "rows_new": len(new)}
    only_old = sorted(set(old.columns) - set(new.columns) - VOLATILE)
    only_new = sorted(set(new.columns) - set(old.columns) - VOLATILE)
    if only_old or only_new:
        report["columns_only_old"], report["columns_only_new"] = only_old, only_new
    if len(old) != len(new):
        return report
    keys = [
        c for c in columns if old[c].dtype == object or str(old[c].dtype).startswith(("datetime", "date"))
    ]
    keys = [c for c in keys if c not in ("details", "evidence", "message", "payload")] or columns
    o = (
        old[columns]
        .assign(**{c: old[c].map(text) for c in keys})
        .sort_values(keys + [c for c in columns if c not in keys], kind="stable")
        .reset_index(drop=True)
    )
    n = (
        new[columns]
        .assign(**{c: new[c].map(text) for c in keys})
        .sort_values(keys + [c for c in columns if c not in keys], kind="stable")
        .reset_index(drop=True)
    )
    differing = {}
    for c in columns:
        a, b = o[c], n[c]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b) and a.dtype != bool:
            x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
            same = (np.isnan(x) & np.isnan(y)) | np.isclose(x, y, rtol=1e-9, atol=1e-12)
            if not same.all():
                rel = np.abs(x - y) / np.maximum(np.abs(x), 1e-12)
                differing[c] = {
                    "rows": int((~same).sum()),
                    "max_rel_diff": float(np.nanmax(np.where(same, 0, rel))),
                }
        else:
            same = a.map(text) == b.map(text)
            if not same.all():
                first = int(np.flatnonzero(~same.to_numpy())[0])
                differing[c] = {
                    "rows": int((~same).sum()),
                    "example": [text(a[first])[:120], text(b[first])[:120]],
                }
    report["differing_columns"] = differing
    return report


def main(old_path: str, new_path: str) -> None:
    old, new = load(old_path), load(new_path)
    out = {}
    for table in sorted(set(old) | set(new)):
        if table not in old or table not in new:
            out[table] = {"only_in": "old" if table in old else "new"}
            continue
        out[table] = compare(table, normalize_old(table, old[table]), new[table])
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:3])
