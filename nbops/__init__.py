"""nbops: tagged Jupyter notebooks to production.

Inside a notebook, ``import nbops`` gives the notebook API; it is cheap to import
(MLflow is loaded only when something is logged). The API is loaded on first use, so
that importing a submodule (``nbops.airflow`` when Airflow parses a DAG file) does not
pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "input_dir", "log_metric", "log_model", "output_dir"]

if TYPE_CHECKING:
    from nbops.api import input_dir, log_metric, log_model, output_dir


def __getattr__(name: str) -> Any:
    if name in __all__:
        from nbops import api

        return getattr(api, name)
    raise AttributeError(f"module 'nbops' has no attribute {name!r}")
