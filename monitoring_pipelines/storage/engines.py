"""DuckDB extensions from registry wheels, and S3 credentials for DuckDB, without network access at run time.

The extensions DuckLake needs (`ducklake`, `postgres`, `httpfs`) come from the wheels
`duckdb-extension-<name>`, pinned to the installed DuckDB: each wheel holds the extension file under
`duckdb_extension_<name>/extensions/v<duckdb version>/<name>.duckdb_extension`. DuckDB derives an
extension's entry point from its file name, and the postgres extension's is `postgres_scanner`, so the
files are linked under their canonical names in a per-user folder and LOADed from there; nothing is
downloaded, and autoinstall stays off (a missing wheel is a clear error, not a hang on the network).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
import threading
from pathlib import Path

import duckdb

__all__ = ["enable_s3", "extension_file", "load_extensions", "s3_secret_sql"]

# wheel name -> the name DuckDB knows the extension by (the entry point is `<name>_duckdb_cpp_init`)
CANONICAL = {"postgres": "postgres_scanner"}
_links_guard = threading.Lock()


def extension_file(name: str) -> Path:
    """The extension's file from its wheel, linked under the name DuckDB expects."""
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            f"the DuckDB extension {name!r} is not installed: a DuckLake warehouse needs the `lake` extra, "
            "pip install 'monitoring_pipelines[lake]' (it pins DuckDB 1.5.5, the newest DuckDB the extension "
            f"wheels are built for; this environment has DuckDB {duckdb.__version__})"
        )
    source = Path(spec.origin).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not source.exists():
        found = sorted(p.name for p in (Path(spec.origin).parent / "extensions").glob("v*"))
        raise RuntimeError(
            f"duckdb-extension-{name} holds builds for {found}, not for the installed DuckDB "
            f"{duckdb.__version__}: install duckdb-extension-{name}=={duckdb.__version__}"
        )
    canonical = CANONICAL.get(name, name)
    if canonical == name:
        return source
    tag = hashlib.sha256(str(source).encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"monitoring-pipelines-duckdb-{os.getuid()}-{tag}"
    link = folder / f"{canonical}.duckdb_extension"
    with _links_guard:
        if not link.exists():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = folder / f".{canonical}.{os.getpid()}.{threading.get_ident()}"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(source)
            os.replace(tmp, link)  # atomic: two processes linking at once both end with the same link
    return link


_verified: set[str] = set()


def load_extensions(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """LOAD the named extensions into this connection's database from their wheels.

    DuckDB checks an extension's signature by hashing the whole file (~0.15 s for each of these, on every
    database that loads it: a model-day opens several). The check runs once per process here, in a
    database of its own with DuckDB's defaults; databases made with `allow_unsigned_extensions` (our
    private in-memory ones: `sources.new_connection`, the lake's) then load the same verified file without
    hashing it again. Nothing else is ever LOADed into them."""
    for name in names:
        if name not in _verified:
            probe = duckdb.connect()
            try:
                probe.execute(f"LOAD '{str(extension_file(name)).replace(chr(39), chr(39) * 2)}'")
            finally:
                probe.close()
            _verified.add(name)
    loaded = {
        r[0] for r in con.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()
    }
    for name in names:
        if CANONICAL.get(name, name) in loaded or name in loaded:
            continue
        path = str(extension_file(name)).replace("'", "''")
        con.execute(f"LOAD '{path}'")


def s3_secret_sql(name: str = "monitoring_s3") -> str | None:
    """A `CREATE SECRET` for DuckDB's S3 access from the standard AWS variables (AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 or
    AWS_ENDPOINT_URL for an S3-compatible endpoint); None when no key is set (DuckDB then tries anonymous
    access). The values are inlined as escaped literals: CREATE SECRET takes no bound parameters."""
    key = os.environ.get("AWS_ACCESS_KEY_ID")
    if not key:
        return None
    options = {
        "TYPE": "s3",
        "KEY_ID": key,
        "SECRET": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        "REGION": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    }
    if token := os.environ.get("AWS_SESSION_TOKEN"):
        options["SESSION_TOKEN"] = token
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        options["ENDPOINT"] = host.rstrip("/") if host else endpoint
        options["USE_SSL"] = "true" if scheme == "https" else "false"
        options["URL_STYLE"] = "path"  # S3-compatible servers (MinIO, moto) serve buckets as paths
    body = ", ".join(
        f"{k} {v}" if k in ("TYPE", "USE_SSL") else f"{k} '{v.replace(chr(39), chr(39) * 2)}'"
        for k, v in options.items()
    )
    return f"CREATE OR REPLACE SECRET {name} ({body})"


def enable_s3(con: duckdb.DuckDBPyConnection) -> None:
    """httpfs loaded and the S3 secret (if the AWS variables are set) created on this connection's database."""
    load_extensions(con, "httpfs")
    secret = s3_secret_sql()
    if secret is not None:
        con.execute(secret)
