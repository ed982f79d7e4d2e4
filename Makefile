# Two commands matter: `make run` and `make test`. Each builds .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test demo bench lint format migrate seed clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## serve on 127.0.0.1:8000 (embedded PostgreSQL and offline model unless configured)
	$(PY) -m server

test: $(STAMP)  ## the whole suite (uses DATABASE_URL if set, else an embedded PostgreSQL)
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)  ## scripted call against a running server
	$(PY) -m demo

bench: $(STAMP)  ## benchmarks; never part of `make test`
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench $(BENCH_ARGS)

lint: $(STAMP)  ## ruff (style, bugs), mypy (types) and lint-imports (the layering contracts)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy && $(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

migrate: $(STAMP)
	$(PY) -m server migrate

seed: $(STAMP)
	$(PY) -m server seed

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache tests/artifacts
