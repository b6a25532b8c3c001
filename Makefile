# One command per job. Each target bootstraps .venv on first use (needs only Python 3.11+).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench fmt clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "eventlake needs Python 3.11+, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)          ## the main job on the embedded local stack (moto), no AWS account
	$(BIN)/eventlake demo

test: $(STAMP)          ## the whole test suite (unit + moto integration + Prefect engine)
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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache eventlake-data .bench-cache
