# The two commands a new machine needs: `make demo` (the main job on a local PostgreSQL) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
ENV_FILE ?= migrate.env
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help setup tools venv bytecode demo test bench db-migrate-status pg-start pg-stop clean

help:
	@echo "make demo               set up, start a local PostgreSQL, then status, dry-run, apply, status, rollback"
	@echo "make test               set up, then run the whole test suite (it starts its own PostgreSQL)"
	@echo "make bench              benchmarks against raw golang-migrate; writes bench/results.md (BENCH_ARGS=--smoke)"
	@echo "make setup              .venv with the project and its test extras, and the pinned golang-migrate"
	@echo "make db-migrate-status  status of both components from $(ENV_FILE) (ENV_FILE=... for another)"
	@echo "make pg-start|pg-stop   the local throwaway PostgreSQL (writes migrate.env)"

setup: venv tools bytecode

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

tools:
	scripts/dev/install-tools.sh

# Where PYTHONDONTWRITEBYTECODE is set, an editable install compiles the package again on every start (~30 ms a
# run on the 2-core machine): compile it once here (a stale file is recompiled in memory, never used as is).
bytecode: venv
	$(VENV)/bin/python -m compileall -q migrate_wrapper

pg-start:
	scripts/dev/local-postgres.sh start

pg-stop:
	scripts/dev/local-postgres.sh stop

demo: setup pg-start
	scripts/dev/demo.sh

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

db-migrate-status:
	scripts/db/status.sh --component all --env $(ENV_FILE)

clean:
	-scripts/dev/local-postgres.sh stop
	rm -rf .local $(VENV) .tools .pytest_cache
