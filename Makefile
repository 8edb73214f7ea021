# Two commands on a fresh machine: `make run` and `make test`. Each creates .venv
# and installs what it needs first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8080
# The MCP server over HTTP, beside gunicorn (`make run`); 0 leaves it off.
MCP_PORT ?= 8090

.PHONY: run test test-fast check lint format manifest samples bench clean sandbox sandbox-reset

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

## run: start the connector with gunicorn on $(PORT), in sandbox mode unless INSTAMSG_SANDBOX=0,
## with the consumer of queued hook deliveries (HOOKS_WORKER=0: not), the event watcher
## (EVENTS_WATCH=0: not) and the MCP server over HTTP on $(MCP_PORT) (MCP_PORT=0: not) beside it
run: $(VENV)/.runtime
	@$(with_mcp) $(with_events) INSTAMSG_SANDBOX=$${INSTAMSG_SANDBOX-1} HOST=$${HOST-127.0.0.1} PORT=$(PORT) HOOKS_WORKER=$${HOOKS_WORKER-1} $(BIN)/gunicorn -c gunicorn.conf.py 'app:serve()'

# make run's MCP server over HTTP (blocks mcp --http) on the same HOST, in the background; it
# stops when gunicorn does (SIGTERM, or Ctrl-C). gunicorn's command stays the line's last one:
# the image runs that very command (tests/test_packaging.py).
with_mcp = if [ "$(MCP_PORT)" != 0 ]; then \
	  INSTAMSG_SANDBOX=$${INSTAMSG_SANDBOX-1} $(BIN)/flask --app app blocks mcp \
	    --http "$${HOST-127.0.0.1}:$(MCP_PORT)" & mcp=$$!; \
	  trap 'kill $$mcp 2>/dev/null; wait $$mcp' EXIT; trap 'exit 143' TERM INT; \
	fi;

# make run's event watcher (flask --app app events watch: instant triggers' polls and
# deliveries) in the background, unless EVENTS_WATCH=0; it stops when gunicorn does. Its EXIT
# trap stops the MCP server too (a second trap replaces the first).
with_events = if [ "$${EVENTS_WATCH-1}" != 0 ]; then \
	  INSTAMSG_SANDBOX=$${INSTAMSG_SANDBOX-1} $(BIN)/flask --app app events watch & watch=$$!; \
	  trap 'kill $$watch $$mcp 2>/dev/null; wait $$watch $$mcp' EXIT; trap 'exit 143' TERM INT; \
	fi;

## sandbox: the InstaMsg sandbox alone, on port 8081 (point INSTAMSG_API_URL at it)
sandbox: $(VENV)/.runtime
	$(BIN)/python -m sandbox --port $${SANDBOX_PORT-8081}

## sandbox-reset: delete all sandbox data (tenants, clients, messages, files, tokens)
sandbox-reset: $(VENV)/.runtime
	$(BIN)/python -m sandbox --reset

## test: the whole suite (installs the Debian packages it drives for real when missing, and
## the tools later tests drive, such as n8n, in the background while the first tests run)
test: $(VENV)/.dev
	bash .ci/system-packages
	@mkdir -p $(TOOL_CACHE)
	bash .ci/prefetch >$(TOOL_CACHE)/prefetch.log 2>&1 &
	$(BIN)/python -m pytest

# Where the .ci scripts keep the tools they install once per machine (and .ci/prefetch its log).
TOOL_CACHE = $${XDG_CACHE_HOME:-$$HOME/.cache}/instamsg-connector

## test-fast: the unit tests only (no real server, browser or third-party tool), under a minute
test-fast: $(VENV)/.dev
	$(BIN)/python -m pytest -m "not slow" -q

## check: fast lint, generated-file freshness, and openapi.json through redocly's and spectral's linters
check: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m connector.generate --check
	bash .ci/openapi-lint/run

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: the benchmark (S1-S8), on loopback; writes bench/results.json and prints a table
bench: $(VENV)/.dev
	bench/install-tools.sh
	$(BIN)/python -m bench.run

## samples: run every block against the sandbox and record its result (blocks/samples.json)
samples: $(VENV)/.runtime
	$(BIN)/python -m connector.generate --record-samples

## manifest: regenerate manifest.json, openapi.json, docs/blocks.md and integrations/ from the schemas
manifest: $(VENV)/.runtime
	$(BIN)/python -m connector.generate

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

.PHONY: integrations test-integrations n8n

## integrations: regenerate the n8n node and the Zapier app (integrations/) from manifest.json
integrations: $(VENV)/.runtime
	$(BIN)/python -m connector.generate.n8n
	$(BIN)/python -m connector.generate.zapier

## test-integrations: the n8n node in the real n8n, the Zapier app in Zapier's CLI and runtime
test-integrations: $(VENV)/.dev
	$(BIN)/python -m pytest tests/generate/test_n8n_package.py tests/faces/test_n8n.py tests/faces/test_zapier.py

## n8n: install the real n8n the slow tests drive (once per machine, ~8 min and 2.9 GB; cached
## outside the repository, in ~/.cache/instamsg-connector/n8n-<version>)
n8n:
	bash .ci/n8n >/dev/null

# Issue 15's proofs: one test per observed fault, and the seeded fault-injection run with its
# figures (FAULT_SEED, FAULT_KEYS, FAULT_SECONDS change the run).
.PHONY: faults
faults: $(VENV)/.dev
	bash .ci/system-packages
	$(BIN)/python -m pytest tests/engine/test_keys.py tests/e2e/test_faults.py tests/e2e/test_fault_injection.py -q -s

# The image as CI builds it (.ci/build-image): podman on a local stand-in for python:3.11-slim,
# made once per machine by .ci/base-image. `make test` builds and starts it (tests/e2e/test_image.py).
.PHONY: image
## image: build the image with podman into ~/.cache/instamsg-connector's store, as instamsg-connector:local
image:
	bash .ci/system-packages
	bash .ci/build-image instamsg-connector:local >/dev/null
