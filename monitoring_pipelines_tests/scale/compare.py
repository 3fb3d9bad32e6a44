"""Compare every `monitoring` table of two warehouses (a DuckDB file and a DuckLake), row for row, in DuckDB.

Rows are compared as multisets (EXCEPT ALL both ways): order does not matter, duplicates do. Columns that
record when or by which run a row was written differ between two runs of the same data by design and are
left out (RUN_TIME_COLUMNS); so is a reference's input fingerprint, which hashes the config file's text (the
two configs differ in their `warehouse` line).
"""

from __future__ import annotations

import duckdb

from monitoring_pipelines.schema import SCHEMA, TABLES
from monitoring_pipelines.storage.warehouse import LakeWarehouse, Warehouse

RUN_TIME_COLUMNS = frozenset(
    {
        "created_at",
        "updated_at",
        "evaluated_at",
        "applied_at",
        "computed_at",
        "run_id",
        "run_ids",
        "links",
        "input_fingerprint",
        "queued_at",
        "sent_at",
        "notified_at",
        "delivered_at",
        "next_attempt_at",
        "opened_at",
        "acknowledged_at",
        "resolved_at",
    }
)


def _attach(con: duckdb.DuckDBPyConnection, warehouse: Warehouse, alias: str) -> None:
    if isinstance(warehouse, LakeWarehouse):
        warehouse.prepare(con)
        con.execute(warehouse.attach_sql(alias, read_only=True))
    else:
        path = str(warehouse.path).replace("'", "''")
        con.execute(f"ATTACH '{path}' AS {alias} (READ_ONLY)")


def table_differences(left: Warehouse, right: Warehouse) -> dict[str, tuple[int, int, int]]:
    """{table: (rows left, rows only left, rows only right)} for every table that is not equal."""
    con = duckdb.connect()
    try:
        _attach(con, left, "a")
        _attach(con, right, "b")
        found: dict[str, tuple[int, int, int]] = {}
        for table in TABLES:
            cols_a = {
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'a' "
                    "AND table_schema = ? AND table_name = ?",
                    [SCHEMA, table],
                ).fetchall()
            }
            cols_b = {
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'b' "
                    "AND table_schema = ? AND table_name = ?",
                    [SCHEMA, table],
                ).fetchall()
            }
            if cols_a != cols_b:
                found[table] = (-1, len(cols_a - cols_b), len(cols_b - cols_a))
                continue
            if table == "schema_version":
                continue  # when each warehouse was created
            cols = ", ".join(f'"{c}"' for c in sorted(cols_a - RUN_TIME_COLUMNS))
            a, b = f'a.{SCHEMA}."{table}"', f'b.{SCHEMA}."{table}"'
            total = con.execute(f"SELECT count(*) FROM {a}").fetchone()[0]
            diff = "SELECT count(*) FROM (SELECT {c} FROM {x} EXCEPT ALL SELECT {c} FROM {y})"
            only_a = con.execute(diff.format(c=cols, x=a, y=b)).fetchone()[0]
            only_b = con.execute(diff.format(c=cols, x=b, y=a)).fetchone()[0]
            counts = (total, only_a, only_b)
            if counts[1] or counts[2]:
                found[table] = counts
        return found
    finally:
        con.close()


def row_counts(warehouse: Warehouse) -> dict[str, int]:
    return {table: len(warehouse.table(table)) for table in TABLES}
