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

.PHONY: help install lint test fuzz demo gas deploy-local lock clean

help:
	@echo "make demo   - start a local chain, deploy PowerHive and run the community demo"
	@echo "make test   - lint and run the whole test suite (two workers, ~10 min on 2 cores)"
	@echo "make fuzz   - the stateful property tests only, 10x deeper than in make test"
	@echo "make gas    - measure gas per operation into docs/gas.md and docs/gas-orderbook.md"
	@echo "make clean  - remove build output (keeps .venv and node_modules)"

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

install: $(STAMP_PY) $(ANVIL)

lint: install
	ruff check .
	ruff format --check .
	ape compile

# Two workers (pytest-xdist), each with its own Anvil; a file's tests stay on one worker
# (module-scoped deployments and the PoA node's fixed port). docs/testing.md has the times.
# --no-loadscope-reorder: xdist otherwise hands out the files with the most tests first, which
# put the one-test stateful files (the longest) at the end of the run, as its tail; the order
# of tests/conftest.py (longest first) is kept instead.
WORKERS ?= 2
XDIST := -n $(WORKERS) --dist loadfile --no-loadscope-reorder

# The whole suite, then one file again under `ape test --gas` (users run it: it must pass).
GAS_CHECKED := tests/unit/test_ledger_hardening.py

test: lint
	@start=$$(date +%s); status=0; \
	  ape test tests $(XDIST) || status=$$?; \
	  if [ $$status -eq 0 ]; then ape test $(GAS_CHECKED) --gas -q || status=$$?; fi; \
	  echo "make test: the suite took $$(( $$(date +%s) - start )) s (exit $$status)"; \
	  exit $$status

# 10x the depth of `make test`: 5,000 examples x 50 steps per machine.
FUZZ_EXAMPLES ?= 5000
fuzz: install
	@start=$$(date +%s); status=0; \
	  POWERHIVE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) ape test tests/fuzz $(XDIST) --timeout 0 \
	    || status=$$?; \
	  echo "make fuzz: took $$(( $$(date +%s) - start )) s (exit $$status)"; \
	  exit $$status

demo: install
	ape run demo

gas: install
	ape run gas_report
	ape run orderbook_gas

lock: $(STAMP_PY)
	{ echo "# Full, exact lock of the Python environment (pip freeze of a working .venv)."; \
	  echo "# Direct dependencies and their reasons are in pyproject.toml; regenerate with \`make lock\`."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e'; } > requirements.lock

clean:
	rm -rf .build .pytest_cache .ruff_cache
