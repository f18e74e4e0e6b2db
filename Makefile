# Two commands do all the set-up: `make run` (the main job on the local stack) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The Lambda runtime is Python 3.12: use that interpreter when pyenv or PATH has it.
PYTHON ?= $(shell PYENV_VERSION=$$(pyenv versions --bare 2>/dev/null | grep '^3\.12' | tail -n 1) pyenv which python3.12 2>/dev/null || command -v python3.12 || command -v python3)
VENV := .venv
SAM_VENV := .venv-sam
BIN := $(VENV)/bin
SAM_BIN := $(SAM_VENV)/bin
PY312_DIR := $(dir $(PYTHON))
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: help install run test lint typecheck unit template build bench clean

help:
	@echo "make run    install, start the local stack and run the main job end to end"
	@echo "make test   formatter check, linter, strict types, template checks and pytest"
	@echo "make build  sam build (no Docker needed)"
	@echo "make bench  local figures: webhook latency, worker throughput, scan cost"

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(SAM_BIN)/.installed: requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_BIN)/python -m pip install --quiet --upgrade pip
	$(SAM_BIN)/python -m pip install --quiet -r requirements-sam.txt
	touch $@

install: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/python -m local_stack run

test: lint typecheck template unit

lint: $(BIN)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

template: $(SAM_BIN)/.installed
	$(SAM_BIN)/cfn-lint template.yaml
	$(SAM_BIN)/sam validate --lint --template-file template.yaml
	PATH="$(PY312_DIR):$$PATH" $(SAM_BIN)/sam build --template-file template.yaml --build-dir .aws-sam/build

unit: $(BIN)/.installed
	$(BIN)/pytest

bench: $(BIN)/.installed
	$(BIN)/python -m local_stack bench

build: $(SAM_BIN)/.installed
	PATH="$(PY312_DIR):$$PATH" $(SAM_BIN)/sam build --template-file template.yaml --build-dir .aws-sam/build

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .mypy_cache .pytest_cache .ruff_cache
