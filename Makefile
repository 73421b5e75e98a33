# One target per job. `make demo` and `make test` create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/synergy/v1/*.proto)

.PHONY: demo test lint typecheck proto check-proto bench clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)  ## create the virtual environment and install everything

demo: $(STAMP)  ## run the embedded demo: coordinator + 4 emulated agents + 3 apps, no Docker, no broker
	$(BIN)/synergy demo $(DEMO_ARGS)

test: $(STAMP)  ## the whole regular suite (unit + integration), then lint and type checks
	$(BIN)/pytest -q $(PYTEST_ARGS)
	$(BIN)/ruff check .
	$(BIN)/mypy

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check .

typecheck: $(STAMP)  ## mypy --strict on our packages
	$(BIN)/mypy

proto: $(STAMP)  ## regenerate the committed protobuf / gRPC code from protos/
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)

bench: $(STAMP)  ## the planner benchmark (prints figures, writes bench-out/)
	$(BIN)/synergy bench $(BENCH_ARGS)

clean:  ## remove generated run artefacts (keeps .venv)
	rm -rf bench-out .pytest_cache .mypy_cache .ruff_cache
