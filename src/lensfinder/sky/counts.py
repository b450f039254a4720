"""Number counts of the mock sky's field galaxies and stars, and draws from them.

Galaxies: differential r-band counts dN/dm (per deg^2 per mag) as a piecewise power law
through published anchors -- slope 0.6 dex/mag (Euclidean) brighter than r = 16 and 0.45
from 16 to 21 (Yasuda et al. 2001, AJ 122, 1104, SDSS), 0.35 fainter than r = 21 (the
faint-end slope of Metcalfe et al. 2001, MNRAS 323, 795, which the injected sources also
use), normalised to 1e4 galaxies per deg^2 brighter than r = 22 (the round figure both
surveys give). This is a fit through those anchors, not a transcription of either table:
``benchmarks/mock_realism.py`` prints it beside the mock's measured counts.

Stars: a high-latitude (|b| ~ 45 deg) estimate, not a measurement -- 150 per deg^2 per mag
at r = 17, 0.30 dex/mag brighter (disk), 0.12 fainter (halo), the shape of the Bahcall &
Soneira (1980) model at such latitudes. Real DR10 fields vary by 2-3x with latitude.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GALAXIES_BRIGHTER_THAN_22 = 1.0e4  # per deg^2 (Yasuda et al. 2001; Metcalfe et al. 2001)


@dataclass(frozen=True)
class PowerLawCounts:
    """dN/dm = norm x 10^(slope_i (m - m_ref)) continued across ``breaks`` (per deg^2 per
    mag). ``slopes`` has one more entry than ``breaks``: the slope brighter than the first
    break, then between breaks, then fainter than the last."""

    breaks: tuple[float, ...]
    slopes: tuple[float, ...]
    m_ref: float
    norm: float  # dN/dm at m_ref, which lies in the faintest segment

    def density(self, m) -> np.ndarray:
        """dN/dm at magnitudes ``m`` (per deg^2 per mag). log10 dN/dm is continuous and
        piecewise linear: each segment adds its slope times its share of [m_ref, m]."""
        m = np.asarray(m, dtype=np.float64)
        bounds = (-np.inf, *self.breaks, np.inf)
        log = np.full(m.shape, np.log10(self.norm))
        for slope, lo, hi in zip(self.slopes, bounds[:-1], bounds[1:]):
            log += slope * (np.clip(m, lo, hi) - np.clip(self.m_ref, lo, hi))
        return 10**log

    def integral(self, m_lo: float, m_hi: float, step: float = 0.01) -> float:
        """Objects per deg^2 with m_lo <= m < m_hi."""
        m = np.arange(m_lo, m_hi, step) + step / 2
        return float(self.density(m).sum() * step)


def _galaxy_counts() -> PowerLawCounts:
    shape = PowerLawCounts(breaks=(16.0, 21.0), slopes=(0.6, 0.45, 0.35), m_ref=22.0, norm=1.0)
    norm = GALAXIES_BRIGHTER_THAN_22 / shape.integral(10.0, 22.0)
    return PowerLawCounts(breaks=shape.breaks, slopes=shape.slopes, m_ref=22.0, norm=norm)


GALAXY_COUNTS = _galaxy_counts()
STAR_COUNTS = PowerLawCounts(breaks=(17.0,), slopes=(0.30, 0.12), m_ref=17.0, norm=150.0)


def draw_magnitudes(rng: np.random.Generator, counts: PowerLawCounts, area_deg2: float,
                    m_lo: float, m_hi: float, step: float = 0.01) -> np.ndarray:
    """Poisson number of objects in ``area_deg2`` with m_lo <= m < m_hi, magnitudes drawn
    from ``counts`` (inverse CDF on a ``step`` grid, then uniform within the cell)."""
    edges = np.arange(m_lo, m_hi + step / 2, step)
    mid = 0.5 * (edges[:-1] + edges[1:])
    per_cell = counts.density(mid) * np.diff(edges) * area_deg2
    n = int(rng.poisson(per_cell.sum()))
    cdf = np.cumsum(per_cell) / per_cell.sum()
    cell = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), mid.size - 1)
    return edges[cell] + rng.random(n) * np.diff(edges)[cell]
