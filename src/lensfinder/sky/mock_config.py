"""The mock sky's configuration (the ``sky.mock`` config section) and its seeded streams."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lensfinder import PIXSCALE
from lensfinder.noise import DR10_LAG1
from lensfinder.psf import PsfConfig
from lensfinder.sky.bricks import brick_center, sweep_name
from lensfinder.sky.false_positives import FalsePositiveConfig


@dataclass(frozen=True)
class MockSkyConfig:
    """Mock sky parameters. Densities are per deg^2 of mock brick (``brick_size_pix``^2
    pixels at 0.262"), so a bigger sky has more objects, never a denser one.

    lrg_density: LRG-like galaxies (desitarget's model of DESI LRG targets,
    :mod:`lensfinder.sky.lrg_model`) per deg^2, before the cuts of phase 3. DESI's target
    density is 605 per deg^2 (Zhou et al. 2023, AJ 165, 58); the demo over-samples ~3x for
    training volume. lrg_min_sep_arcsec: no two LRGs closer, except the ``lrg_pair_fraction``
    drawn as physical pairs lrg_pair_sep_arcsec apart. field_mag_range: r magnitudes of
    field galaxies and stars drawn from :mod:`lensfinder.sky.counts` (none if
    ``field_objects`` is false: tests that need isolated LRGs); those not detected
    (S/N < detect_snr in every band) are rendered but not catalogued. window_pix: pixels
    are rendered only in a window this wide around every LRG-like galaxy (the only pixels
    the pipeline reads); the rest of a brick has no coverage (image 0, invvar 0).
    n_bright_star: extra r = 11-13 stars per brick (small test skies: the BRIGHT mask).
    """

    seed: int = 20261124
    bricks: tuple[str, ...] = ("1501p020",)
    brick_size_pix: int = 3600
    lrg_density: float = 2000.0
    lrg_min_sep_arcsec: float = 20.0
    lrg_pair_fraction: float = 0.01
    lrg_pair_sep_arcsec: tuple[float, float] = (3.0, 10.0)
    field_objects: bool = True
    field_mag_range: tuple[float, float] = (14.0, 25.0)
    detect_snr: float = 6.0
    window_pix: int = 80
    n_bright_star: int = 0
    frac_bad_quality: float = 0.05
    frac_masked: float = 0.02
    no_coverage_stripe_prob: float = 0.3
    psf_fwhm_mean: dict = field(default_factory=lambda: {"g": 1.45, "r": 1.30, "z": 1.20})
    psf_fwhm_range: tuple[float, float] = (1.0, 1.6)
    depth_mean: dict = field(default_factory=lambda: {"g": 24.5, "r": 23.9, "z": 23.0})
    depth_sigma: float = 0.15
    psf: PsfConfig = PsfConfig()   # gaussian | moffat: the family the arcs are blurred with
    noise_lag1: float = DR10_LAG1  # pixel-noise correlation of the resampled coadds
    false_positives: FalsePositiveConfig = FalsePositiveConfig()  # look-alike hosts: sky.false_positives

    @classmethod
    def from_dict(cls, d: dict) -> "MockSkyConfig":
        d = dict(d)
        d["psf"] = PsfConfig.from_dict(d.get("psf"))
        d["false_positives"] = FalsePositiveConfig.from_dict(d.get("false_positives"))
        if d["psf"].kind == "pixel":
            raise ValueError("sky.mock.psf.kind must be gaussian or moffat (the mock has no survey PSF images)")
        for key in ("bricks", "psf_fwhm_range", "lrg_pair_sep_arcsec", "field_mag_range"):
            if key in d:
                d[key] = tuple(d[key])
        cfg = cls(**d)
        for key in ("psf_fwhm_range", "lrg_pair_sep_arcsec", "field_mag_range"):
            lo, hi = getattr(cfg, key)
            if not 0 < lo <= hi:
                raise ValueError(f"sky.mock.{key}: {[lo, hi]} must be [low, high] with 0 < low <= high")
        return cfg

    @property
    def brick_area_deg2(self) -> float:
        """Sky area of one mock brick, deg^2."""
        return (self.brick_size_pix * PIXSCALE / 3600.0) ** 2


def sweep_names(bricks) -> list[str]:
    """Sorted names of the sweep files that the mock bricks fall in."""
    return sorted({sweep_name(*brick_center(b)) for b in bricks})


def bricks_in_sweep(bricks, sweep: str) -> list[str]:
    """The mock bricks whose centres fall in sweep file ``sweep``."""
    return [b for b in bricks if sweep_name(*brick_center(b)) == Path(sweep).name]


def mock_brickid(cfg: MockSkyConfig, brickname: str) -> int:
    """Mock BRICKID: 1-based position in the configured brick list (real DR10 ids are
    a survey-wide enumeration the mock has no need to reproduce)."""
    return cfg.bricks.index(brickname) + 1


def brick_rngs(cfg: MockSkyConfig, brickname: str, n: int) -> list[np.random.Generator]:
    """The first ``n`` of the brick's independent streams (seeded by config seed and brick
    name): 0 conditions, 1 catalogue, 2 noise, 4 photo-z, 5 look-alike features."""
    ss = np.random.SeedSequence([cfg.seed, zlib.crc32(brickname.encode())])
    return [np.random.default_rng(s) for s in ss.spawn(n)]
