# Two entry points: `make run` (gateway + scheduler on embedded Postgres/Redis) and `make test`;
# `make run-demo` is `make run` against the bundled fake OpenRouter (no upstream key needed).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run run-demo psql psql-demo test test-fast lint bench screenshots

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	$(PY) -m devtools.devserver

run-demo: $(VENV)/.installed
	$(PY) -m devtools.devserver --demo

# psql on the database of a running `make run` (`make run-demo`), or on DATABASE_URL when set.
psql: $(VENV)/.installed
	$(PY) -m devtools.psql

psql-demo: $(VENV)/.installed
	$(PY) -m devtools.psql --demo

# Browser tests drive Debian's headless Chromium; apt-get runs only when the driver is missing
# (chromium-driver depends on chromium, so one file stands for both).
CHROMEDRIVER := /usr/bin/chromedriver

$(CHROMEDRIVER):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver

# The pooler tests (tests/e2e/test_pgbouncer.py) run Debian's PgBouncer in transaction mode;
# apt-get runs only when it is missing.
PGBOUNCER := /usr/sbin/pgbouncer

$(PGBOUNCER):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer

# The Redis Cluster and Redis restart tests (tests/e2e/test_redis_*.py) run Debian's redis-server;
# redis-tools brings redis-cli, which creates the cluster. apt-get runs only when it is missing.
REDIS_SERVER := /usr/bin/redis-server

$(REDIS_SERVER):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools

# Everything, as CI runs it, on two pytest-xdist workers: each worker is a session with its own
# embedded Postgres and Redis; --dist loadfile keeps a module's tests (and its module-scoped servers)
# on one worker.
test: $(VENV)/.installed $(CHROMEDRIVER) $(PGBOUNCER) $(REDIS_SERVER)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n 2 --dist loadfile

# The quick loop while working: ruff, then the unit and api tests except those marked slow or
# needs_servers (Debian's redis-server); no apt-get step. Markers: pyproject.toml.
test-fast: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n 2 -m "not slow and not needs_servers" tests/unit tests/api

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# 1280x800 PNGs of every dashboard page into docs/screenshots/ (demo data on scratch servers).
screenshots: $(VENV)/.installed $(CHROMEDRIVER)
	$(PY) -m tests.browser.screenshots docs/screenshots

# Benchmarks into bench/results/ (method and latest results: docs/performance.md). wrk drives the load;
# apt-get runs only when it is missing.
WRK := /usr/bin/wrk

$(WRK):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk

bench: $(VENV)/.installed $(WRK)
	$(PY) -m bench
