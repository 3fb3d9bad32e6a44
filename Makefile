# Two commands on a fresh machine with Python 3.11+ and make: `make demo` and `make test`.
# Each creates .venv and installs what it needs by itself.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The scale-out tests and bench need the `distributed` extra, which pins DuckDB 1.5.5 (the newest DuckDB the
# DuckLake extension wheels are built for); the default install keeps the faster DuckDB 2. Each gets its venv.
DIST_VENV := .venv-distributed
DIST_STAMP := $(DIST_VENV)/.installed-stamp

# DAGSTER_PG_URL set: the instance on PostgreSQL (deploy/dagster.postgres.yaml, copied there by the CLI).
export DAGSTER_HOME := $(if $(DAGSTER_PG_URL),$(CURDIR)/dagster_home/postgres,$(CURDIR)/dagster_home)
export DAGSTER_DISABLE_TELEMETRY := 1
export GX_ANALYTICS_ENABLED := False
export MONITORING_CONFIG ?= $(CURDIR)/data/demo_config.yaml

.PHONY: install demo simulate test test-fast lint ui bench clean-demo

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required, found " + sys.version)'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

$(DIST_STAMP): pyproject.toml
	test -x $(DIST_VENV)/bin/python || $(PYTHON) -m venv $(DIST_VENV)
	$(DIST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DIST_VENV)/bin/python -m pip install --quiet -e '.[test,distributed]'
	touch $(DIST_STAMP)

simulate: install
	$(PY) -m monitoring_pipelines simulate

# 90 days of traffic ending yesterday (UTC) unless data/ already holds a simulation, then that whole range.
demo: install
	$(PY) -m monitoring_pipelines demo

# Everything but the `distributed` tests in .venv (DuckDB 2), then those in .venv-distributed (DuckDB 1.5.5 + DuckLake).
# On a fresh clone .venv-distributed is installed while the first tests run (a minute saved on 2 cores); its
# install log is shown if it fails.
test: install
	@if [ -f $(DIST_STAMP) ] && [ $(DIST_STAMP) -nt pyproject.toml ]; then dist=0; else \
		$(MAKE) --no-print-directory $(DIST_STAMP) > $(DIST_VENV).install.log 2>&1 & dist=$$!; fi; \
	$(PY) -m pytest -q -p no:cacheprovider -m "not distributed"; tests=$$?; \
	if [ "$$dist" != 0 ] && ! wait $$dist; then cat $(DIST_VENV).install.log; exit 1; fi; \
	[ $$tests -eq 0 ] || exit $$tests; \
	$(DIST_VENV)/bin/python -m pytest -q -p no:cacheprovider -m distributed

test-fast: install
	$(PY) -m pytest -q -m "not e2e and not distributed"

lint: install
	$(VENV)/bin/ruff check monitoring_pipelines monitoring_pipelines_tests bench
	$(VENV)/bin/ruff format --check monitoring_pipelines monitoring_pipelines_tests bench

ui: install
	-@$(PY) -m monitoring_pipelines status
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

# Whole CLI processes timed end to end against the issue's targets; writes bench/results.json and exits 1
# when a target is missed (about 30 minutes on 2 cores; BENCH_ONLY=day_1m,backfill runs a subset).
bench: install $(DIST_STAMP)
	$(PY) bench/run_bench.py $(if $(BENCH_ONLY),--only $(BENCH_ONLY))

clean-demo:
	rm -rf data/incoming data/warehouse*.duckdb* data/dashboard data/backlog.md data/kpis.json \
		data/demo_config.yaml data/simulation.json
