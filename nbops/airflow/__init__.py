"""Airflow integration: the DAG factory behind every DAG file ``nbops promote`` writes."""

from nbops.airflow.dag import dag_from_lock

__all__ = ["dag_from_lock"]
