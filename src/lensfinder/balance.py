"""Covariate balance between two samples: the standardised mean difference (SMD), the
statistic phase 4a reports for catalogue-matched controls and phase 4d for controls matched
after injection (|SMD| < 0.1 is the usual "balanced" threshold: Austin 2009, Stat. Med. 28,
3083).
"""

from __future__ import annotations

import numpy as np


def standardised_mean_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column of (N, F) arrays, (mean_a - mean_b) / sqrt((var_a + var_b) / 2), NaNs
    ignored; 0 where that spread is 0 or either side is empty."""
    if not len(a) or not len(b):
        return np.zeros(a.shape[1])
    pooled = np.sqrt((np.nanvar(a, axis=0) + np.nanvar(b, axis=0)) / 2)
    diff = np.nanmean(a, axis=0) - np.nanmean(b, axis=0)
    return np.where(pooled > 0, diff / np.where(pooled > 0, pooled, 1), 0.0)
