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
# What a user would pick instead of eventlake, for `make bench-peers` (benchmarks/peers/): a venv
# of their own, since awswrangler 3.17 pins pyarrow below eventlake's. Not needed by `make test`.
PEERS        := .venv-peers
PEERS_STAMP  := $(PEERS)/.installed
PEERS_PKGS   := 'awswrangler==3.17.1' 'aws-lambda-powertools>=3,<4' 'polars>=1,<3' 'pandas>=2,<4' \
                'duckdb>=2,<3'
# checkov (`make lint` runs it on infra/template.yaml): a venv of its own, since checkov 3.3 pins
# boto3/botocore far below eventlake's. cfn-lint and the SAM translator live in .venv (dev extra).
CHECKOV       := .venv-checkov
CHECKOV_STAMP := $(CHECKOV)/.installed
CHECKOV_PKGS  := 'checkov==3.3.30'
ARGS ?=

.PHONY: demo test lint bench bench-peers bench-cost venv-peers fmt clean $(COMPAT)

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

$(CHECKOV_STAMP):
	@test -x $(CHECKOV)/bin/python || $(PYTHON) -m venv $(CHECKOV)
	$(CHECKOV)/bin/python -m pip install -q --disable-pip-version-check $(CHECKOV_PKGS)
	@touch $(CHECKOV_STAMP)

$(PEERS_STAMP):
	@test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install -q --disable-pip-version-check $(PEERS_PKGS)
	@touch $(PEERS_STAMP)

venv-peers: $(PEERS_STAMP)  ## the peers' venv (Powertools, pandas, Polars, awswrangler) (once)

demo: $(STAMP)          ## the main job on the embedded local stack (moto), no AWS account
	$(BIN)/eventlake demo

test: $(STAMP) $(COMPAT_STAMP)  ## the whole test suite (unit + moto integration + Prefect engine)
	$(BIN)/python -m pytest -q -n auto

lint: $(STAMP) $(CHECKOV_STAMP)  ## ruff, mypy (strict), import-linter (the layers: docs/architecture.md), vulture, cfn-lint + checkov (infra/)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/vulture eventlake flows vulture_allow.py --min-confidence 60
	$(BIN)/cfn-lint infra/template.yaml
	$(CHECKOV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
	    -f infra/template.yaml

bench: $(STAMP)         ## benchmarks: ratios against baselines measured in the same run
	$(BIN)/python -m benchmarks

bench-peers: $(STAMP) $(PEERS_STAMP)  ## eventlake vs its peers, a markdown table (ARGS="--help")
	$(BIN)/python -m benchmarks.peers $(ARGS)

bench-cost: $(STAMP)    ## cost per million events from a counted moto run (ARGS="--help")
	$(BIN)/python -m benchmarks.cost $(ARGS)

fmt: $(STAMP)
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(COMPAT) $(PEERS) $(CHECKOV) .pytest_cache .mypy_cache .ruff_cache eventlake-data demo-lake .bench-cache
