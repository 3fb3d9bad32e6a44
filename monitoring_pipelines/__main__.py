import atexit
import os
import sys

from monitoring_pipelines.cli import main

code = main()
# Every cleanup registered with atexit still runs (pool joins, logging, DuckDB and Dagster handles);
# only the interpreter's teardown of Dagster's, GX's and pandas's module graph is skipped: half a
# second of freeing memory the kernel takes back at once anyway.
atexit._run_exitfuncs()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
