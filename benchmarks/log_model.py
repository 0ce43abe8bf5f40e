"""Registering a model: MLflow inferring its pip requirements against nbops reading them from the model.

    .venv/bin/python benchmarks/log_model.py [--repeats 3]

The example's model (a HistGradientBoostingClassifier saved with skops, its tree type trusted) is
saved with ``mlflow.sklearn.save_model`` twice per repeat, interleaved: once as MLflow does by
default (it saves the model, loads it again in a subprocess and lists what that imported), once
with the requirements ``nbops.log_model`` gives it (``nbops.requirements.pinned_requirements``,
the time to compute them included). Prints each median, the ratio, and both requirement lists.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

TRUSTED = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import mlflow.sklearn
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    from nbops.requirements import pinned_requirements

    features, labels = make_classification(2000, 10, random_state=0)
    model = HistGradientBoostingClassifier(max_iter=50).fit(features, labels)
    inferred, given = [], []
    lists: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as work:
        for i in range(args.repeats):
            start = time.perf_counter()
            mlflow.sklearn.save_model(model, f"{work}/inferred-{i}", skops_trusted_types=TRUSTED)
            inferred.append(time.perf_counter() - start)
            start = time.perf_counter()
            pins = pinned_requirements(model, also=["scikit-learn", "skops"])
            mlflow.sklearn.save_model(model, f"{work}/given-{i}", skops_trusted_types=TRUSTED, pip_requirements=pins)
            given.append(time.perf_counter() - start)
        for kind in ("inferred", "given"):
            lists[kind] = Path(f"{work}/{kind}-0/requirements.txt").read_text().split()
    a, b = statistics.median(inferred), statistics.median(given)
    runs = {kind: ", ".join(f"{t:.2f}" for t in times) for kind, times in (("inferred", inferred), ("given", given))}
    print(f"save_model, MLflow inferring requirements: median {a:.2f} s  (runs: {runs['inferred']})")
    print(f"save_model, requirements from the model:   median {b:.2f} s  (runs: {runs['given']})")
    print(f"ratio {b / a:.3f}")
    for kind, names in lists.items():
        print(f"{kind} requirements.txt: {' '.join(names)}")


if __name__ == "__main__":
    main()
