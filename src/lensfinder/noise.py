"""Pixel-noise correlation of resampled coadds, shared by the mock sky and the arcs' noise.

Legacy Surveys coadds are sums of exposures Lanczos-3 resampled onto the brick grid
(legacypipe), so neighbouring coadd pixels share noise: the lag-1 correlation measured on
DR10 coadds is about +0.11 (issue 11's audit), while independent draws give 0. Noise is
made correlated here by a separable 3-tap filter [a, 1, a] along each axis, normalised so
the per-pixel variance (what the invvar maps state) is unchanged; a is chosen so the lag-1
correlation along either axis is ``lag1``: 2a / (1 + 2a^2) = lag1.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d

DR10_LAG1 = 0.11
"""Lag-1 noise correlation of DR10 coadd pixels along rows and columns (see above)."""


def lag1_taps(lag1: float) -> np.ndarray:
    """The filter [a, 1, a] / sqrt(1 + 2 a^2) giving lag-1 correlation ``lag1`` (0 <= lag1 < 0.7)."""
    if not 0 <= lag1 < 1 / np.sqrt(2):
        raise ValueError(f"noise lag-1 correlation must be in [0, 0.707), got {lag1}")
    a = 0.0 if lag1 == 0 else (1 - np.sqrt(1 - 2 * lag1**2)) / (2 * lag1)
    return np.array([a, 1.0, a]) / np.sqrt(1 + 2 * a**2)


def correlate(white: np.ndarray, lag1: float) -> np.ndarray:
    """Unit-variance white noise (..., H, W) -> noise of the same per-pixel variance with
    lag-1 correlation ``lag1`` along the last two axes (edges reflected)."""
    if lag1 == 0:
        return white
    taps = lag1_taps(lag1)
    return correlate1d(correlate1d(white, taps, axis=-1, mode="reflect"), taps, axis=-2, mode="reflect")


def lag1_correlation(noise: np.ndarray) -> float:
    """Measured lag-1 correlation of noise images (..., H, W), averaged over both axes."""
    n = noise - noise.mean(axis=(-2, -1), keepdims=True)
    var = (n**2).mean()
    return float(((n[..., 1:, :] * n[..., :-1, :]).mean() + (n[..., :, 1:] * n[..., :, :-1]).mean()) / (2 * var))


def autocorrelation(lag1: float) -> np.ndarray:
    """(5, 5) correlation between a pixel and its neighbours out to lag 2 of noise made by
    :func:`correlate` (centre 1; lag (1, 0) = ``lag1``; lag (1, 1) = lag1^2)."""
    r = _autocorrelation_1d(lag1)
    return np.outer(r, r)


def _autocorrelation_1d(lag1: float) -> np.ndarray:
    """Lags -2..2 of the 1-d taps' autocorrelation (the 2-d one is its outer product)."""
    t = lag1_taps(lag1)
    return np.correlate(np.pad(t, 2), t, mode="valid")


def sum_variance(sigma: np.ndarray, lag1: float) -> np.ndarray:
    """Variance of the sum of noise over pixels with per-pixel sigma ``sigma`` (..., H, W)
    (0 outside the summed region), for noise with lag-1 correlation ``lag1``: sum over pixel
    pairs of sigma_i sigma_j rho(i - j). Reduces to sum(sigma^2) for white noise."""
    if lag1 == 0:
        return (sigma**2).sum(axis=(-2, -1))
    # the autocorrelation is the outer product of a 1-d one: two 5-tap passes, not one 25-tap
    r = _autocorrelation_1d(lag1)
    smoothed = correlate1d(correlate1d(sigma, r, axis=-1, mode="reflect"), r, axis=-2, mode="reflect")
    return (sigma * smoothed).sum(axis=(-2, -1))
