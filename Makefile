# The two commands: `make run` (the whole system on embedded defaults) and `make test`.
# Each creates .venv and installs what it needs; nothing else to install by hand.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run test lint typecheck pytest clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ordersync needs Python >= 3.11, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	# Coinbase's official SDK, which the paper exchange's Coinbase dialect is tested with: its
	# pin of websockets < 14 is for its WebSocket client, which the tests do not use, so it
	# goes in without its own requirements (its REST client's are installed above).
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt coinbase-advanced-py backoff
	touch $(STAMP)

run: venv
	$(BIN)/ordersync db upgrade
	$(BIN)/ordersync up

test: lint typecheck pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/pytest

clean:
	rm -rf $(VENV) var/*.db* var/redis var/embedded-redis.json var/logs var/stack.json var/bench \
		var/celerybeat-schedule* .pytest_cache .mypy_cache .ruff_cache
