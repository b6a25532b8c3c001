# One command per job. Each target bootstraps .venv on first use (needs only Python 3.11+).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# A DuckDB as old as the ones BI tools bundle, with SQLAlchemy and duckdb-engine (how Superset and
# other SQLAlchemy tools connect): tests/export/test_duckdb_compat.py opens the DuckDB export in it.
# EVENTLAKE_COMPAT_PYTHON points the test at another interpreter.
COMPAT       := .venv-compat
COMPAT_STAMP := $(COMPAT)/.installed
COMPAT_PKGS  := 'duckdb==1.1.3' 'duckdb-engine==0.17.0' 'sqlalchemy>=2,<3'

.PHONY: demo test lint bench fmt clean $(COMPAT)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "eventlake needs Python 3.11+, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

$(COMPAT_STAMP):
	@test -x $(COMPAT)/bin/python || $(PYTHON) -m venv $(COMPAT)
	$(COMPAT)/bin/python -m pip install -q --disable-pip-version-check $(COMPAT_PKGS)
	@touch $(COMPAT_STAMP)

$(COMPAT): $(COMPAT_STAMP)  ## the old-DuckDB venv the export's compatibility test runs (once)

demo: $(STAMP)          ## the main job on the embedded local stack (moto), no AWS account
	$(BIN)/eventlake demo

test: $(STAMP) $(COMPAT_STAMP)  ## the whole test suite (unit + moto integration + Prefect engine)
	$(BIN)/python -m pytest -q -n auto

lint: $(STAMP)          ## ruff, mypy (strict), import-linter (the layers: docs/architecture.md), vulture
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/vulture eventlake flows vulture_allow.py --min-confidence 60

bench: $(STAMP)         ## benchmarks: ratios against baselines measured in the same run
	$(BIN)/python -m benchmarks

fmt: $(STAMP)
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(COMPAT) .pytest_cache .mypy_cache .ruff_cache eventlake-data .bench-cache
