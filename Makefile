# One command per chore. `make run` and `make test` set everything up themselves.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format bench bench-reads chaos seed venv clean-var system-deps

$(PY):
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3-venv is missing; installing it with apt-get"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	@$(PY) -m pip install -q --upgrade pip

$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

seed: venv
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py seed_demo

run: venv system-deps
	@mkdir -p var
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py collectstatic --noinput -v0
	@bash scripts/run.sh

# In parallel processes (pytest-xdist): most tests wait on subprocesses, servers and
# emulators rather than on the CPU. `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= 2
test: venv system-deps
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# Debian packages: Chromium for the browser tests, a CJK font so the Gemini emulator can
# draw CJK headlines. Installed when missing (needs root, as on CI).
SYSTEM_PACKAGES := chromium fonts-wqy-microhei
system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy config core audit accounts tenants billing webhooks generation series batches ops

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Whole-stack benchmark (docs/performance.md). The default run (SQLite, 2,000 jobs)
# takes about 2 minutes; e.g. BENCH_ARGS="--broker sqlite,postgres,redis --jobs 5000".
# The scheduler's figures: BENCH_ARGS="--scenario fairness" (bench/fairness.py, ~15 min).
BENCH_ARGS ?=
bench: venv
	$(PY) -m bench $(BENCH_ARGS)

# Reads at scale (docs/performance.md, "Reads at scale"): seeds 1,000,000 jobs, images
# and usage events into its own PostgreSQL database with set-based SQL (about 2 minutes
# and 1.8 GB), then times every list, total and admin changelist. E.g.
# READS_DATABASE_URL=postgres://postgres@127.0.0.1:5432/bunch_bench_reads BENCH_ARGS="--rows 10000"
READS_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/bunch_bench_reads
bench-reads: venv
	@psql "$(READS_DATABASE_URL)" -c "SELECT 1" >/dev/null 2>&1 || \
	  psql "$(dir $(READS_DATABASE_URL))postgres" -c "CREATE DATABASE $(notdir $(READS_DATABASE_URL))"
	DATABASE_URL=$(READS_DATABASE_URL) $(PY) -m bench.reads $(BENCH_ARGS)

# Faults over the whole stack (docs/reliability.md): six scenarios of 1,000 jobs each on
# PostgreSQL + Redis + S3 (moto), about 15 minutes; prints the invariants and writes JSON
# under var/chaos/. The test suite runs CHAOS_ARGS=--quick (tests/bench/test_chaos_quick.py).
CHAOS_ARGS ?=
chaos: venv
	$(PY) -m bench.chaos $(CHAOS_ARGS)

clean-var:
	rm -rf var
