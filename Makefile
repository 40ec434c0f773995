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
export LANCE_LOG=error
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_HOME ?= $(CURDIR)/var/prefect
export HF_HOME ?= $(CURDIR)/var/hf
export MPLCONFIGDIR ?= $(CURDIR)/var/matplotlib
export NUMBA_CACHE_DIR ?= $(CURDIR)/var/numba
export IR_DATASETS_HOME ?= $(CURDIR)/var/ir_datasets
export XDG_CACHE_HOME ?= $(CURDIR)/var/cache-home

.PHONY: venv chromium postgres demo results lint test test-fast bench soak deploy ui ui-stop clean distclean

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

# The whole loop on the demo profile (a slice of the real catalog, so a fresh clone finishes
# in ~15 minutes on 2 cores): cold start, then nights of serve -> log -> nightly -> promote.
DEMO_CONFIG ?= configs/demo.yaml
PREFECT_PORT ?= 4200
MLFLOW_PORT ?= 5000
demo: $(STAMP)
	@if [ -f var/run/prefect.pid ] && kill -0 $$(cat var/run/prefect.pid) 2>/dev/null; then \
		export PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api; echo "flow runs go to the Prefect UI started by make ui"; fi; \
	$(BIN)/ltrr --config $(DEMO_CONFIG) demo

# docs/results.md from the platform `make demo` built: the retrieval policy's nights on a fresh
# copy of it (bench/bandit-evaluate.sh), then `ltrr report` (held-out CPCD, the demo's nights, QU,
# content understanding, OBD, the train-part sweeps), and the semantic strategy's document vectors on the
# train part (where the blend was chosen) and the held-out part (docs/semantic*.md). About 25 minutes on 2 cores.
RESULTS_NIGHTS ?= 5
RESULTS_QUERIES ?= 300
results: $(STAMP)
	NIGHTS=$(RESULTS_NIGHTS) Q=$(RESULTS_QUERIES) bench/bandit-evaluate.sh
	$(BIN)/ltrr --config $(DEMO_CONFIG) report --sweeps --bandit var/reports/bandit-evaluate.json \
		--bandit-command "NIGHTS=$(RESULTS_NIGHTS) Q=$(RESULTS_QUERIES) bench/bandit-evaluate.sh" --via "make demo && make results"
	$(BIN)/ltrr --config $(DEMO_CONFIG) eval-semantic --split train --markdown docs/semantic-train.md
	$(BIN)/ltrr --config $(DEMO_CONFIG) eval-semantic --split heldout --markdown docs/semantic.md

# Prefect server + MLflow UI on 127.0.0.1 in the background (pids under var/run, logs under var/log).
# PROFILE=prod: both on PostgreSQL (a local cluster in var/postgres on PG_PORT, started here and
# stopped by `make ui-stop`); point the flows at it with `--config configs/prod.yaml`.
UI_DATA ?= var
UI_WAIT_SECONDS ?= 180      # `make ui` returns once both answer (MLflow takes ~45 s to start on 2 cores)
PROFILE ?= default
PG_PORT ?= 5433
ifeq ($(PROFILE),prod)
PREFECT_DATABASE := postgresql+asyncpg://ltrr@127.0.0.1:$(PG_PORT)/prefect
MLFLOW_STORE := postgresql+psycopg://ltrr@127.0.0.1:$(PG_PORT)/mlflow
else
PREFECT_DATABASE :=
MLFLOW_STORE := sqlite:///$(abspath $(UI_DATA))/mlflow/mlflow.db
endif
ui: $(STAMP)
	@mkdir -p var/run var/log $(UI_DATA)/mlflow
	@if [ "$(PROFILE)" = prod ]; then \
		if [ -f var/run/postgres.pid ] && kill -0 $$(cat var/run/postgres.pid) 2>/dev/null; then echo "PostgreSQL already running"; \
		else .ci/postgres start var/postgres $(PG_PORT) > var/run/postgres.pid || exit 1; fi; fi
	@if [ -f var/run/prefect.pid ] && kill -0 $$(cat var/run/prefect.pid) 2>/dev/null; then echo "Prefect already running"; else \
		$(if $(PREFECT_DATABASE),PREFECT_API_DATABASE_CONNECTION_URL=$(PREFECT_DATABASE)) setsid nohup $(BIN)/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT) > var/log/prefect.log 2>&1 & echo $$! > var/run/prefect.pid; fi
	@if [ -f var/run/mlflow.pid ] && kill -0 $$(cat var/run/mlflow.pid) 2>/dev/null; then echo "MLflow already running"; else \
		setsid nohup $(BIN)/mlflow ui --host 127.0.0.1 --port $(MLFLOW_PORT) \
		--backend-store-uri $(MLFLOW_STORE) > var/log/mlflow.log 2>&1 & echo $$! > var/run/mlflow.pid; fi
	@for url in http://127.0.0.1:$(PREFECT_PORT)/api/health http://127.0.0.1:$(MLFLOW_PORT)/health; do \
		for i in $$(seq 1 $(UI_WAIT_SECONDS)); do curl -sf -o /dev/null $$url && break; sleep 1; done; \
		curl -sf -o /dev/null $$url || { echo "$$url did not answer within $(UI_WAIT_SECONDS) s (logs in var/log)" >&2; exit 1; }; \
	done
	@echo "Prefect UI: http://127.0.0.1:$(PREFECT_PORT)   (export PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api for flows to report there)"
	@echo "MLflow UI:  http://127.0.0.1:$(MLFLOW_PORT)   (store $(MLFLOW_STORE); in an experiment, the Model training toggle shows its runs); stop both with: make ui-stop"

ui-stop:
	@# Each service was started as its own process group (setsid): stop the group (MLflow runs worker children).
	@for name in prefect mlflow; do if [ -f var/run/$$name.pid ]; then kill -TERM -- -$$(cat var/run/$$name.pid) 2>/dev/null || true; \
		rm -f var/run/$$name.pid; echo "stopped $$name"; fi; done
	@if [ -f var/run/postgres.pid ]; then .ci/postgres stop var/postgres && rm -f var/run/postgres.pid && echo "stopped postgres"; fi

# Registers the nightly (cron from orchestration.nightly_cron) and backfill deployments with the
# Prefect API and serves them (Ctrl-C stops). Run `make ui` first.
deploy: $(STAMP)
	PREFECT_API_URL=$${PREFECT_API_URL:-http://127.0.0.1:$(PREFECT_PORT)/api} $(BIN)/ltrr --config $(CONFIG) deploy

# The browser tests drive Debian's Chromium through Playwright (no browser download): installed
# here when missing (root, or sudo without a password, as on CI machines of this kind).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo -n); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium > /dev/null; \
	fi

# Lint and types: ruff (lint + format), the architecture contracts (.importlinter: layers, no package
# cycles, a runtime that imports no learner) and mypy on ltrr_core. Part of `make test`.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy ltrr_core

# The production profile's test runs PostgreSQL (Debian's package), installed here when missing.
postgres:
	@if ! ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo -n); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql > /dev/null; \
	fi

# Two pytest-xdist workers (one per core), a test module's tests on one worker: one worker builds the
# shared test platform while the other runs the modules that need none (tests/conftest.py orders
# them so). TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder
test: $(STAMP) chromium postgres lint
	$(BIN)/python -m pytest -q $(XDIST) --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow"

# The performance table, then the soak beside it (needs a promoted bundle in the config's data_dir).
bench: $(STAMP)
	$(BIN)/ltrr --config $(CONFIG) bench --out bench/RESULTS.md
	$(BIN)/ltrr bench-install --out bench/INSTALL.md
	$(BIN)/ltrr --config $(CONFIG) bench-soak --out bench/SOAK.md

SOAK_CONFIG ?= $(CONFIG)
soak: $(STAMP)
	$(BIN)/ltrr --config $(SOAK_CONFIG) bench-soak --out bench/SOAK.md

clean:
	rm -rf var .pytest_cache catboost_info

distclean: clean
	rm -rf $(VENV)
