# Two set-up commands: `make demo` and `make test`. Both build .venv first when it is missing or stale.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ltrr-installed
CONFIG ?= configs/default.yaml

# Offline and quiet: no model hub, no telemetry, nothing written to $HOME (see STACK.md).
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export HF_HUB_DISABLE_TELEMETRY=1
export TOKENIZERS_PARALLELISM=false
export MLFLOW_DISABLE_TELEMETRY=true
export DO_NOT_TRACK=true
export GX_ANALYTICS_ENABLED=false
export LANCEDB_LOG=error
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_HOME ?= $(CURDIR)/var/prefect
export HF_HOME ?= $(CURDIR)/var/hf
export MPLCONFIGDIR ?= $(CURDIR)/var/matplotlib
export NUMBA_CACHE_DIR ?= $(CURDIR)/var/numba
export IR_DATASETS_HOME ?= $(CURDIR)/var/ir_datasets

.PHONY: venv demo test test-fast bench clean distclean

venv: $(STAMP)

# The environment is rebuilt from scratch when the lock file changes (stale), and the project
# itself is re-installed (editable, no deps) when pyproject.toml changes.
# torch goes in first: `torch==2.13.0` is the CPU build that lies on disk; anything looser pulls CUDA.
$(STAMP): requirements.lock pyproject.toml
	@if [ ! -x $(BIN)/python ] || ! cmp -s requirements.lock $(VENV)/requirements.lock.installed; then \
		echo ">> creating $(VENV) from scratch"; rm -rf $(VENV); \
		$(PYTHON) -m venv $(VENV) && \
		$(BIN)/pip install --quiet torch==2.13.0 && \
		$(BIN)/pip install --quiet -r requirements.lock && \
		cp requirements.lock $(VENV)/requirements.lock.installed; \
	fi
	$(BIN)/pip install --quiet --no-deps -e .
	@if $(BIN)/pip list 2>/dev/null | grep -qi '^nvidia'; then echo "CUDA packages crept in" >&2; exit 1; fi
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ltrr --config $(CONFIG) demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/ltrr --config $(CONFIG) bench --out bench/RESULTS.md

clean:
	rm -rf var .pytest_cache catboost_info

distclean: clean
	rm -rf $(VENV)
