"""nbops: tagged Jupyter notebooks to production.

Inside a notebook, ``import nbops`` gives the notebook API; it is cheap to import
(MLflow is loaded only when something is logged).
"""

from __future__ import annotations

__version__ = "0.1.0"

from nbops.api import input_dir, log_metric, log_model, output_dir

__all__ = ["__version__", "input_dir", "log_metric", "log_model", "output_dir"]
