# One target per job. `make demo` and `make test` create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/synergy/v1/*.proto)


.PHONY: system-deps venv demo test test-slow images e2e e2e-compose e2e-netns lint typecheck proto bench clean help

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

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

# The images need no registry: deploy/images/build.sh makes Debian bases with debootstrap when
# none answers (root once), and installs the project from a wheelhouse built here. The empty
# build/compose-tls is created as the caller, so the certificates compose copies into it are theirs.
images: $(STAMP)  ## build the synergy and broker images for docker-compose.yml (Docker started if needed)
	@mkdir -p build/compose-tls
	SYNERGY_WHEEL_PYTHON=$(BIN)/python deploy/images/build.sh

e2e: e2e-netns e2e-compose  ## both end-to-end runs (root; minutes): network namespaces, then docker compose

e2e-netns: $(STAMP) system-deps  ## end to end: `synergy emulate`, a device per network namespace (root)
	$(BIN)/pytest -q -s -p no:cacheprovider tests/e2e/test_netns_e2e.py

e2e-compose: $(STAMP)  ## end to end: images, docker compose up, 3 apps, fidelity, a killed device, down
	$(BIN)/pytest -q -s -p no:cacheprovider tests/e2e/test_compose_e2e.py

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
