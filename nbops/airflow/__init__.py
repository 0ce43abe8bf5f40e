"""Airflow integration: the DAG factories behind the DAG files ``nbops promote`` writes."""

from nbops.airflow.dag import dag_from_lock
from nbops.airflow.monitor import monitor_dag_from_lock

__all__ = ["dag_from_lock", "monitor_dag_from_lock"]
