# One target per job. `make demo` and `make test` create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/synergy/v1/*.proto)


.PHONY: system-deps venv demo test test-slow images e2e e2e-compose e2e-netns lint typecheck proto bench clean help firmware firmware-host

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# The planner's water-filling is a C extension and its busiest modules are compiled with mypyc
# (setup.py; without a compiler the install skips them and the planner runs the same steps in
# Python and numpy, slower; a planner source edited since is run as Python until this rule
# compiles it again): as root we install Debian's gcc and Python headers when they are missing.
$(STAMP): pyproject.toml setup.py synergy/planning/_fill.c $(wildcard synergy/planning/*.py)
	@if ! command -v cc >/dev/null 2>&1 || [ ! -f "$$($(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing gcc and python3-dev (to build the planner's C extension)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc python3-dev) >/dev/null; \
	  else echo "note: install a C compiler and the Python headers (apt-get install gcc python3-dev) for the planner's C extension"; fi; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@echo "compiling the planner modules with mypyc (about two minutes; setup.py)"
	@SYNERGY_COMPILE_PLANNER=1 $(BIN)/pip install --quiet --no-build-isolation --no-deps -e . \
	  || echo "note: mypyc could not compile the planner modules (above): the planner runs them as Python"
	touch $(STAMP)

# The MQTT integration test needs a real broker, the dashboard test a headless browser; as root
# we install Debian's mosquitto, chromium and chromium-driver when they are missing.
system-deps:
	@if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing mosquitto (for the MQTT integration test)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients) >/dev/null; \
	  else echo "note: install mosquitto for the MQTT test (apt-get install mosquitto)"; fi; fi
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium and chromium-driver (for the dashboard test)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null; \
	  else echo "note: install chromium for the dashboard test (apt-get install chromium chromium-driver)"; fi; fi

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

# The firmware core (firmware/): Debian's Cortex-M toolchain is installed as root when missing,
# as system-deps does for mosquitto. The cross link fails if the core's static RAM or code
# outgrows the chip; the size of each ELF is printed.
firmware: firmware-host  ## cross-compile the firmware core for the Cortex-M4 (MAX78000/MAX78002 memory maps), and the host builds
	@if ! command -v arm-none-eabi-gcc >/dev/null 2>&1 || [ ! -f "$$(arm-none-eabi-gcc -print-file-name=nano.specs)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing gcc-arm-none-eabi and newlib (for the firmware's cross build)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-arm-none-eabi libnewlib-arm-none-eabi) >/dev/null; \
	  else echo "install gcc-arm-none-eabi and libnewlib-arm-none-eabi for the firmware's cross build" >&2; exit 1; fi; fi
	$(MAKE) -C firmware cross

firmware-host:  ## the firmware core's host builds (gcc): synergy-board on a pty, its selftest and fuzz programs
	$(MAKE) -C firmware host

clean:  ## remove generated run artefacts (keeps .venv)
	rm -rf bench-out .pytest_cache .mypy_cache .ruff_cache
