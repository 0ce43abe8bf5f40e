"""Monthly batches of patient records, drawn the same way by every notebook that needs one.

`ingest` draws the batch a pipeline run trains on; `monitor` draws the newest batch to
compare with the one the champion was trained on. Both must see the same data for the same
date, so the drawing lives here, once.

The source is scikit-learn's bundled breast-cancer data (no download). Each month after
`REFERENCE_DATE` the batch drifts the way production data decays:

* prior shift: malignant cases (target 0) become more frequent;
* covariate drift: the `mean_*` measurements scale up by `drift_per_month` per month;
* every measurement carries a little multiplicative noise.

A batch depends only on its month (not on the day) and on the seed, so it is reproducible.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

REFERENCE_DATE = date(2026, 1, 1)
"""Drift starts here: batches dated in this month or earlier are not drifted."""

MALIGNANT_GROWTH_PER_MONTH = 0.05
"""Relative increase per month of a malignant record's chance of being drawn."""

NOISE_SCALE = 0.05
"""Standard deviation of the multiplicative measurement noise."""


def months_since_reference(as_of: str) -> int:
    """Calendar months from `REFERENCE_DATE` to the ISO date `as_of` (negative before it)."""
    batch_date = date.fromisoformat(as_of)
    return (batch_date.year - REFERENCE_DATE.year) * 12 + (batch_date.month - REFERENCE_DATE.month)


def drifting_features(frame: pd.DataFrame) -> list[str]:
    """The columns of `frame` whose scale drifts with time: the `mean_*` measurements."""
    return [c for c in frame.columns if c.startswith("mean_")]


def draw_batch(as_of: str, batch_size: int, drift_per_month: float, seed: int) -> pd.DataFrame:
    """The batch of records that arrived by `as_of`.

    Args:
        as_of: Batch date, ISO format.
        batch_size: Rows drawn, with replacement, from the 569 source records.
        drift_per_month: Relative shift of the drifting features per month.
        seed: Base random seed; the generator is seeded with `seed` plus the months elapsed,
            so each month gets its own draw.

    Returns:
        One row per record: the 30 measurements (spaces in names replaced by `_`), `target`
        (0 malignant, 1 benign) and `as_of`.
    """
    months = max(months_since_reference(as_of), 0)
    rng = np.random.default_rng(seed + months)

    frame = load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
    features = [c for c in frame.columns if c != "target"]

    weights = np.where(frame["target"] == 0, 1.0 + MALIGNANT_GROWTH_PER_MONTH * months, 1.0)
    rows = rng.choice(len(frame), size=batch_size, replace=True, p=weights / weights.sum())
    batch = frame.iloc[rows].reset_index(drop=True)

    drifting = drifting_features(batch)
    batch[drifting] = batch[drifting] * (1.0 + drift_per_month * months)
    noise = rng.normal(0.0, NOISE_SCALE, size=(batch_size, len(features)))
    batch[features] = batch[features] * (1.0 + noise)
    batch["as_of"] = as_of
    return batch
