#!/usr/bin/env sh
# A local Airflow with this project's promoted DAGs, to click through in a browser: all of
# Airflow's components (`airflow standalone`: api-server, scheduler, dag-processor, triggerer,
# LocalExecutor) on SQLite in .nbops/airflow, the stages run on this machine (NBOPS_BACKEND=local)
# and record in the project's own MLflow store, as `nbops run` does. No login: every visitor is
# an admin, so the UI listens on 127.0.0.1 only (Airflow's log servers on 8793 and 8794 bind
# every interface, with no setting to change it, and answer only requests signed with this
# installation's secret). Pick a PORT other than those two.
#
#   deploy/airflow-standalone.sh [PORT]      # from the project's root, after `nbops promote`
#
# Stop it with Ctrl-C; everything it made is under .nbops/airflow.
set -eu
PORT="${1:-8080}"
case "$PORT" in 8793|8794) echo "port $PORT is one of Airflow's log servers' ports; pick another" >&2; exit 2;; esac
ROOT="$(pwd)"
if ! ls "$ROOT"/dags/*.lock.json >/dev/null 2>&1; then
    echo "no promoted DAG in $ROOT/dags: run 'nbops promote pipeline.yaml' first" >&2
    exit 2
fi
export AIRFLOW_HOME="$ROOT/.nbops/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$PORT"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$PORT"
# Tasks reach the API server through this address (Airflow's default assumes port 8080).
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$PORT/execution/"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=10
export NBOPS_BACKEND=local
mkdir -p "$AIRFLOW_HOME"
echo "Airflow on http://127.0.0.1:$PORT with the DAGs of $ROOT/dags (Ctrl-C stops it)"
exec airflow standalone
