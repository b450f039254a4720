"""The bench region: HEALPix pixels of the sky set aside, once per sky, for the test bench.

No dataset may train or validate on a galaxy of this region (phase 4a drops them before it
draws anything, whatever the dataset's split scheme, so a row-split dataset such as gen2's
v4_paired is excluded too), and no dataset's parent negatives come from it. The bench
(:mod:`lensfinder.bench`) is then built from the region alone, so every run -- gen2,
gen3, each ablation and seed -- is scored on the same galaxies, none of which it has seen.

A pixel is in the region when a hash of (seed, "bench-region", pixel) falls below
``fraction``: the region depends on the sky and the seed only, not on which galaxies exist
or on any dataset's settings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import astropy.units as u
import numpy as np
from astropy_healpix import HEALPix

from lensfinder import seeding


@dataclass(frozen=True)
class BenchRegion:
    """``bench.region``: the held-out fraction of the sky and its pixelisation."""

    fraction: float = 0.15   # of HEALPix pixels
    healpix_nside: int = 1024  # 3.4' pixels, as the demo's sky splits; 64-256 on real data

    @classmethod
    def from_dict(cls, d: dict | None) -> "BenchRegion":
        r = cls(**(d or {}))
        if not 0 < r.fraction < 1:
            raise ValueError(f"bench.region.fraction must be in (0, 1), not {r.fraction}")
        if r.healpix_nside < 1 or r.healpix_nside & (r.healpix_nside - 1):
            raise ValueError(f"bench.region.healpix_nside must be a power of 2, not {r.healpix_nside}")
        return r

    def as_params(self) -> dict:
        return asdict(self)


def bench_pixels(ra, dec, region: BenchRegion) -> np.ndarray:
    """Nested HEALPix pixel (int64) at the region's nside of positions in degrees."""
    hp = HEALPix(nside=region.healpix_nside, order="nested")
    return hp.lonlat_to_healpix(np.asarray(ra, float) * u.deg, np.asarray(dec, float) * u.deg).astype(np.int64)


def pixel_in_bench(pixels: np.ndarray, region: BenchRegion, seed: int) -> np.ndarray:
    """(N,) bool: which HEALPix pixels belong to the bench region."""
    keys = seeding.row_keys(seed, "bench-region", region.healpix_nside, np.asarray(pixels, np.int64))
    return seeding.uniform(keys) < region.fraction


def in_bench(ra, dec, region: BenchRegion | None, seed: int) -> np.ndarray:
    """(N,) bool: positions (degrees) inside the bench region (all False without one)."""
    if region is None:
        return np.zeros(np.shape(ra), bool)
    return pixel_in_bench(bench_pixels(ra, dec, region), region, seed)
