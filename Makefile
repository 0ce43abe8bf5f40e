# The two set-up commands of the README. Both bootstrap everything they need:
# a tools venv with a pinned uv, then the project venv from the committed uv.lock.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.9
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin

.PHONY: example test lint bootstrap dist clean airflow-ui

example: bootstrap ## Run the example pipeline end to end on the embedded defaults.
	$(BIN)/nbops run pipeline.yaml

# pytest runs two workers (pytest-xdist), each test file on one worker so that a file's module
# fixtures (a pipeline run, a server) are built once: the tests mostly wait on kernels, servers
# and subprocesses. The 25 slowest tests are listed at the end.
test: bootstrap lint ## Run the whole test suite: the example's notebooks first (nbops test), then pytest.
	$(BIN)/nbops test pipeline.yaml
	$(BIN)/pytest -n 2 --dist loadfile --durations=25

# Airflow's UI over the example's promoted DAGs (deploy/airflow-standalone.sh): the graph, runs,
# logs and the approval form on http://127.0.0.1:$(AIRFLOW_PORT). Ctrl-C stops it.
AIRFLOW_PORT ?= 8080
airflow-ui: bootstrap ## Promote the example and bring up a local Airflow with its DAGs.
	$(BIN)/nbops promote pipeline.yaml
	PATH="$(CURDIR)/$(BIN):$$PATH" deploy/airflow-standalone.sh $(AIRFLOW_PORT)

lint: bootstrap
	$(BIN)/ruff check nbops tests benchmarks
	$(BIN)/ruff format --check nbops tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bootstrap: $(VENV)/.synced

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-extras --compile-bytecode --python $(PYTHON)
	touch $@

# For another repository (README, "In your own repository"): the wheel, and uv.lock's pins of
# its runner and airflow extras as pip constraints. Needs only the pinned uv, not the dev venv.
dist: $(UV) ## Build dist/nbops-<version>-py3-none-any.whl and dist/constraints.txt.
	rm -rf dist
	$(UV) build --wheel --out-dir dist --python $(PYTHON) --quiet
	$(UV) export --frozen --no-hashes --no-emit-project --extra runner --extra airflow --quiet -o dist/constraints.txt

clean:
	rm -rf $(VENV) $(TOOLS) .nbops dist
