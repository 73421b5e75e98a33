# One target per job. `make demo` and `make test` create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/synergy/v1/*.proto)


.PHONY: system-deps venv demo test test-slow lint typecheck proto bench clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The MQTT integration test needs a real broker; as root we install Debian's mosquitto.
system-deps:
	@if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing mosquitto (for the MQTT integration test)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients) >/dev/null; \
	  else echo "note: install mosquitto for the MQTT test (apt-get install mosquitto)"; fi; fi

venv: $(STAMP)  ## create the virtual environment and install everything

demo: $(STAMP)  ## run the embedded demo: coordinator + 4 emulated agents + 3 apps, no Docker, no broker
	$(BIN)/synergy demo $(DEMO_ARGS)

test: $(STAMP) system-deps  ## the whole regular suite (unit + integration), then lint and type checks
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)
	$(BIN)/ruff check .
	$(BIN)/mypy

test-slow: $(STAMP)  ## the slow suite (bench smoke run, recovery figures, idle streams; minutes), not in `make test`
	$(BIN)/pytest -q -s -p no:cacheprovider tests/slow

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
