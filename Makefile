# PowerHive: every command bootstraps what it needs (.venv from requirements.lock, Anvil from
# package-lock.json) on first use and reuses it afterwards. No compiler is downloaded at run time.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
# Quiet, non-interactive Ape.
export APE_TRACE_DISABLED := 1

STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed
ANVIL := $(BIN)/anvil

.PHONY: help install lint test fuzz demo deploy-local stop-local dashboard browser gas lock clean

# `make help` lists every target that has a `## description` on its rule line
# (tests/test_repository.py checks that each .PHONY target has one).
help: ## this list
	@echo "PowerHive make targets (each bootstraps .venv and Anvil on first use):"
	@awk 'BEGIN { FS = ":[^#]*## " } /^[a-z][a-z-]*:[^#]*## / { printf "  make %-13s %s\n", $$1, $$2 }' \
	  $(MAKEFILE_LIST)
	@echo "Variables: WORKERS=2 (test workers), FUZZ_EXAMPLES=5000 (make fuzz depth)."

$(STAMP_PY): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# ape-foundry runs `anvil` from PATH: link the native binary from the npm package into the venv
# (the npm wrapper is a node script that would outlive a killed parent).
$(ANVIL): $(STAMP_NODE) $(STAMP_PY)
	@bin=$$(ls node_modules/@foundry-rs/anvil-*/bin/anvil 2>/dev/null | head -n 1); \
	  test -n "$$bin" || { echo "anvil: no native binary for this platform in node_modules"; exit 1; }; \
	  ln -sf "$(CURDIR)/$$bin" $@
	@$@ --version | head -n 1

install: $(STAMP_PY) $(ANVIL) ## create .venv from requirements.lock and install Anvil from npm

# The dashboard's browser tests drive Debian's Chromium with playwright (PyPI); playwright never
# downloads a browser here. Installed once from apt (as root; 17 s with apt-get update on this machine, measured).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
	@$@ --version

browser: $(CHROMIUM) ## install Debian's chromium for the dashboard's browser tests (apt, as root)

lint: install ## ruff check, ruff format --check and ape compile
	ruff check .
	ruff format --check .
	ape compile

# Two workers (pytest-xdist), each with its own Anvil; a file's tests stay on one worker
# (module-scoped deployments and the PoA node's fixed port). docs/testing.md has the times.
# Note: xdist's loadscope reorder (on by default) hands out the files with the most tests
# first, so the one-test stateful files run last; `--no-loadscope-reorder` would keep the
# conftest order, but then tests/unit/test_eeuro_banker.py failed after the oracle and e2e
# files on the same worker (ContractNotFoundError, issue 8 notes): not used until that is found.
WORKERS ?= 2
XDIST := -n $(WORKERS) --dist loadfile

# The whole suite, then one file again under `ape test --gas` (users run it: it must pass).
GAS_CHECKED := tests/unit/test_ledger_hardening.py

test: lint $(CHROMIUM) ## lint and run the whole test suite (two workers; ~8 min installed on 2 idle cores, see docs/testing.md)
	@start=$$(date +%s); status=0; \
	  ape test tests $(XDIST) || status=$$?; \
	  if [ $$status -eq 0 ]; then ape test $(GAS_CHECKED) --gas -q || status=$$?; fi; \
	  echo "make test: the suite took $$(( $$(date +%s) - start )) s (exit $$status)"; \
	  exit $$status

# 10x the depth of `make test`: 5,000 examples x 50 steps per machine.
FUZZ_EXAMPLES ?= 5000
fuzz: install ## the stateful property tests only, 10x deeper than in make test
	@start=$$(date +%s); status=0; \
	  POWERHIVE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) ape test tests/fuzz $(XDIST) --timeout 0 \
	    || status=$$?; \
	  echo "make fuzz: took $$(( $$(date +%s) - start )) s (exit $$status)"; \
	  exit $$status

demo: install ## start a local chain, deploy PowerHive and run the community demo
	ape run demo

# A persistent local chain for trying the operator's path: Anvil in the background, its state
# in $(LOCAL_DIR)/anvil-state.json (dumped every 5 s and on exit, loaded at the next start),
# its pid in $(LOCAL_DIR)/anvil.pid, its log in $(LOCAL_DIR)/anvil.log.
# (tests/e2e/test_deploy_local.py runs both targets with its own LOCAL_DIR, port and
# LOCAL_DEPLOYMENTS.)
LOCAL_DIR ?= .local
LOCAL_PORT ?= 8545
LOCAL_DEPLOYMENTS ?= deployments
LOCAL_PID := $(LOCAL_DIR)/anvil.pid

deploy-local: install ## persistent local chain (Anvil, state in .local/), deploy, register a unit, write .local/oracle/oracle.toml
	@mkdir -p $(LOCAL_DIR)
	@if [ -f $(LOCAL_PID) ] && kill -0 "$$(cat $(LOCAL_PID))" 2>/dev/null; then \
	  echo "local chain running (pid $$(cat $(LOCAL_PID)), port $(LOCAL_PORT))"; \
	else \
	  if (exec 3<>/dev/tcp/127.0.0.1/$(LOCAL_PORT)) 2>/dev/null; then \
	    echo "port $(LOCAL_PORT) is taken by another program: make deploy-local LOCAL_PORT=..."; \
	    exit 1; \
	  fi; \
	  setsid $(ANVIL) --port $(LOCAL_PORT) --chain-id 31337 --hardfork cancun \
	    --state $(LOCAL_DIR)/anvil-state.json --state-interval 5 \
	    </dev/null >$(LOCAL_DIR)/anvil.log 2>&1 & echo $$! > $(LOCAL_PID); \
	  for i in $$(seq 100); do \
	    (exec 3<>/dev/tcp/127.0.0.1/$(LOCAL_PORT)) 2>/dev/null && break; \
	    kill -0 "$$(cat $(LOCAL_PID))" 2>/dev/null || { tail -n 5 $(LOCAL_DIR)/anvil.log; rm -f $(LOCAL_PID); exit 1; }; \
	    sleep 0.1; \
	  done; \
	  echo "local chain started (pid $$(cat $(LOCAL_PID)), port $(LOCAL_PORT), state $(LOCAL_DIR)/anvil-state.json)"; \
	fi
	ape run deploy_local --network ethereum:powerhive-local:http://127.0.0.1:$(LOCAL_PORT) \
	  --local-dir $(LOCAL_DIR) --out-dir $(LOCAL_DEPLOYMENTS)

stop-local: ## stop the chain of make deploy-local (its state stays in .local/ for the next start)
	@if [ -f $(LOCAL_PID) ] && kill -0 "$$(cat $(LOCAL_PID))" 2>/dev/null; then \
	  pid=$$(cat $(LOCAL_PID)); kill "$$pid"; \
	  for i in $$(seq 100); do kill -0 "$$pid" 2>/dev/null || break; sleep 0.1; done; \
	  rm -f $(LOCAL_PID); echo "local chain stopped (pid $$pid; state kept in $(LOCAL_DIR)/)"; \
	else \
	  rm -f $(LOCAL_PID); echo "no local chain running"; \
	fi

# The dashboard in the browser, reading the chain of `make deploy-local` (started, deployed and
# reused by that target first). Stop it with Ctrl-C; the chain keeps running (make stop-local).
DASHBOARD_PORT ?= 8050
dashboard: deploy-local ## the dashboard at http://127.0.0.1:8050/ on the chain of make deploy-local
	powerhive --rpc http://127.0.0.1:$(LOCAL_PORT) --chain-id 31337 --deployments $(LOCAL_DEPLOYMENTS) \
	  dashboard --port $(DASHBOARD_PORT)

gas: install ## measure gas per operation into docs/gas.md and docs/gas-orderbook.md
	ape run gas_report
	ape run orderbook_gas

lock: $(STAMP_PY) ## re-freeze the Python environment into requirements.lock
	{ echo "# Full, exact lock of the Python environment (pip freeze of a working .venv)."; \
	  echo "# Direct dependencies and their reasons are in pyproject.toml; regenerate with \`make lock\`."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e'; } > requirements.lock

clean: ## remove build output (keeps .venv, node_modules and deployments)
	rm -rf .build .pytest_cache .ruff_cache
