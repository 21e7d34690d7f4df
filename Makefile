# promoflow: two commands on a fresh machine: `make demo`, `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOTSTRAP ?= python3.11
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export PROMO_HOME := $(CURDIR)
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT := 120
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export GX_ANALYTICS_ENABLED := false
export PYTHONUNBUFFERED := 1
# A run started by hand should fail at once, not wait out the scheduler's retry delays.
export PROMO_TASK_RETRIES ?= 0

# The demo shop: large and telling enough that a night can learn who responds (docs/decisions.md).
DEMO_USERS ?= 20000
DEMO_DAYS ?= 60
DEMO_SHAPE ?= observable
DEMO_BUDGET ?= 6000
DEMO_START ?= 2026-10-01
DEMO_SEED ?= 7
DEMO_ITEM_SHAPE ?= category
DEMO_RUN_DATE := $(shell $(PYTHON_BOOTSTRAP) -c "import datetime as d; print(d.date.fromisoformat('$(DEMO_START)') + d.timedelta(days=$(DEMO_DAYS)))" 2>/dev/null)
DATE ?= $(DEMO_RUN_DATE)
CONF ?=
DATA_DIR := $(if $(PROMO_DATA_DIR),$(PROMO_DATA_DIR),$(CURDIR)/data)

.PHONY: help install demo demo-data run summary test test-unit test-all airflow-db airflow docs browser clean bench-materialize evaluate validate-ope bench-features bench-night bench-item-features bench-assign validate-uplift validate-recommender test-cluster test-browser lint fmt

help:
	@echo "make demo            set up (first time), generate demo data, run one night, print the summary"
	@echo "make test            set up (first time) and run the unit, dbt, Feast and dag.test suites (~26 min)"
	@echo "make test-all        make test, then test-browser, then test-cluster (what CI runs after make lint: 32 min for all of .ci/run on a clean clone here)"
	@echo "make test-browser    the Airflow UI in a real browser: login, a two-night backfill, task log, report (4-7 min; 16-20 min under load)"
	@echo "make test-cluster    the production topology on loopback: Celery + gpu worker, Postgres, Redis, Spark, S3 (3-4.5 min; 15-16 min under load)"
	@echo "make lint / make fmt ruff (lint + format) and sqlfluff (dbt templater) check / rewrite"
	@echo "make evaluate        run nights on fresh demo shops and score them against the ground truth"
	@echo "make evaluate NIGHTS=10 EVAL_SEEDS=101   a closed loop: each shop answers the platform's sends for 10 nights"
	@echo "make validate-uplift the candidate ladder and selection on Hillstrom's e-mail experiment"
	@echo "make bench-night USERS=\"100000 1000000\"   a first night on 60 days of history, then the next night: per-task time and peak RSS"
	@echo "make bench-item-features AS_OF=YYYY-MM-DD [BENCH_LAKE=...]   item features from 30 days of events vs the daily partials"
	@echo "make run DATE=YYYY-MM-DD [CONF='{\"budget\": 500}']   run promo_nightly for one date"
	@echo "make airflow [AIRFLOW_PORT=8080]   the Airflow UI (api-server, scheduler, dag-processor); Ctrl-C stops it"
	@echo "make docs            dbt docs (catalog + manifest) into data/dbt_docs/"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --python $(PY) -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

$(AIRFLOW_HOME)/airflow.db: $(STAMP)
	@mkdir -p $(AIRFLOW_HOME)
	$(VENV)/bin/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (cat $(AIRFLOW_HOME)/db-migrate.log; exit 1)

airflow-db: $(AIRFLOW_HOME)/airflow.db

demo-data: install
	$(PY) -m demo.simulator --raw-dir $(DATA_DIR)/demo/raw --truth-dir $(DATA_DIR)/demo/truth \
		--users $(DEMO_USERS) --days $(DEMO_DAYS) --start-date $(DEMO_START) --seed $(DEMO_SEED) --item-shape $(DEMO_ITEM_SHAPE) \
		--response-shape $(DEMO_SHAPE)

demo: demo-data
	@start=$$(date +%s); \
	PROMO_BUDGET=$${PROMO_BUDGET:-$(DEMO_BUDGET)} $(MAKE) --no-print-directory run DATE=$(DEMO_RUN_DATE) > $(DATA_DIR)/demo-run.log 2>&1 \
		|| { tail -60 $(DATA_DIR)/demo-run.log; echo "demo run failed: full log in $(DATA_DIR)/demo-run.log"; exit 1; }; \
	echo "night ran in $$(( $$(date +%s) - start )) s (log: $(DATA_DIR)/demo-run.log)"
	@$(PY) -m promoflow.cli summary --date $(DEMO_RUN_DATE)

run: install airflow-db
	$(PY) -m promoflow.cli run --date $(DATE) $(if $(CONF),--conf '$(CONF)',)

summary: install
	$(PY) -m promoflow.cli summary --date $(DATE)

# The Airflow UI with the DAGs and the same settings as `make run`; tasks retry as under any scheduler.
AIRFLOW_PORT ?= 8080
AIRFLOW_TASK_RETRIES ?= 2
airflow: install airflow-db
	PROMO_TASK_RETRIES=$(AIRFLOW_TASK_RETRIES) $(PY) -m promoflow.console --port $(AIRFLOW_PORT)

docs: install
	$(PY) -m promoflow.dbt_runner docs

# Debian's chromium for the Playwright browser test (no browser download: Playwright drives it via executable_path).
# Without root it says so and goes on: the browser test then skips with the reason (fails under CI=true).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
		else echo "make browser: /usr/bin/chromium is missing; installing it needs root (apt-get install chromium)"; fi; \
	fi

# Everything but the browser and cluster suites, on 2 xdist workers: ~26 min here (.ci/run runs it
# after make lint, then test-browser and test-cluster). test-unit is the same suite under its own name.
test test-unit: install
	$(PY) -m pytest -n 2 --dist loadgroup -q -m "not cluster" --ignore=tests/ui

# Every suite one after the other (each is CPU-bound on a 2-core machine): ~30 min here.
test-all: install browser
	@$(MAKE) --no-print-directory test-unit
	@$(MAKE) --no-print-directory test-browser
	@$(MAKE) --no-print-directory test-cluster

# Lint and format: ruff for Python, sqlfluff with the dbt templater for the models (compiles the project, ~30 s).
LINT_DUCKDB := $(CURDIR)/.lint/lint.duckdb
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@mkdir -p $(dir $(LINT_DUCKDB))
	cd dbt_project && PROMO_DUCKDB_PATH=$(LINT_DUCKDB) $(VENV)/bin/sqlfluff lint models

fmt: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	@mkdir -p $(dir $(LINT_DUCKDB))
	cd dbt_project && PROMO_DUCKDB_PATH=$(LINT_DUCKDB) $(VENV)/bin/sqlfluff fix models

# The production topology on loopback (Celery + gpu worker, Postgres, Redis, Spark standalone, moto S3),
# one topology per session (no xdist): 3-4.5 min here (15-16 under load). -rP prints the timings of a passing run.
test-cluster: install
	$(PY) -m pytest -q -rfEsP -m cluster tests/cluster

# The Playwright browser session on the Airflow UI (make airflow on a free port), Debian's chromium: 4-7 min here (16-20 under load).
test-browser: install browser
	$(PY) -m pytest -q -rfEsP tests/ui

# Decision quality on the demo generator's ground truth, on seeds make demo never uses.
EVAL_SEEDS ?= 101 202
EVAL_SHAPES ?= latent observable
EVAL_USERS ?= 20000
EVAL_DAYS ?= 60
EVAL_ITEM_SHAPE ?= category
# NIGHTS > 1: a closed loop, each shop answering the platform's own sends night after night.
NIGHTS ?= 1
evaluate: install airflow-db
	$(PY) -m demo.evaluate --seeds $(EVAL_SEEDS) --shapes $(EVAL_SHAPES) --users $(EVAL_USERS) --days $(EVAL_DAYS) --item-shape $(EVAL_ITEM_SHAPE) --nights $(NIGHTS)

# The nightly candidate-and-selection code on Hillstrom's randomised e-mail experiment (docs/decisions.md).
VALIDATE_SPLITS ?= 20
validate-uplift: install
	$(PY) -m benchmarks.validate_uplift_hillstrom --splits $(VALIDATE_SPLITS)

# Benchmarks: figures as ratios against a reference measured in the same run (never timed tests).
bench-materialize: install
	$(PY) -m benchmarks.bench_materialize

# Off-policy estimators against the Open Bandit Dataset sample (docs/off_policy_evaluation.md).
validate-ope: install
	$(PY) -m benchmarks.validate_ope_obd

# The two-tower recommender trained on the OBD sample's BTS clicks, its top item valued by IPS on the random log (docs/recommender.md).
validate-recommender: install
	$(PY) -m benchmarks.recommender_obd

# Spark feature job vs the same aggregations in DuckDB SQL, 100k and 1M users (docs/spark_features.md).
bench-features: install
	$(PY) -m benchmarks.bench_features

# assign's delivery columns: the former per-user loop vs ml.delivery.delivery_columns, 100k and 1M users;
# ml.allocation holdout / allocate / explore at 1M users x 9 arms.
# A first night on USERS x BENCH_DAYS days of history, then the next night (one new landed day); per task
# wall time and peak RSS (docs/scale.md).
USERS ?= 100000
BENCH_DAYS ?= 60
bench-night: install
	$(PY) -m benchmarks.bench_night $(foreach n,$(USERS),--users $(n)) --days $(BENCH_DAYS)

bench-assign: install
	$(PY) -m benchmarks.bench_assign

# A night's item features from 30 days of events vs the daily partials, on a lake a night ran on (docs/scale.md).
BENCH_LAKE ?= $(DATA_DIR)/lake
bench-item-features: install
	$(if $(AS_OF),,$(error bench-item-features needs AS_OF=YYYY-MM-DD, the night whose item features to rebuild))
	$(PY) -m benchmarks.bench_item_features --lake-dir $(BENCH_LAKE) --as-of $(AS_OF)

clean:
	rm -rf $(DATA_DIR) $(AIRFLOW_HOME)
