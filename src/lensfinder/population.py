"""Phase 4a-c: the population of injected lens systems.

The priors of the lens (SIE + external shear on an LRG of the parent sample) and of the
source (elliptical Sersic), and reproducible draws from them: the manifest holds each
positive's first draw; phase 4c redraws a system that is not recognisable as a lens
(:mod:`lensfinder.detectability`) from the same priors with the attempt number in its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lensfinder import seeding
from lensfinder.sky.shapes import axis_ratio_angle, stamp_angle


@dataclass(frozen=True)
class Priors:
    """Lens and source priors. Angles in arcsec, magnitudes AB (intrinsic, i.e. before
    Milky Way extinction, which the injection applies with the galaxy's transmission)."""

    theta_e: tuple[float, float] = (0.8, 3.0)        # SIE Einstein radius, uniform
    lens_q_min: float = 0.5                          # mass axis ratio floor
    lens_q_scatter: float = 0.05                     # mass q = light q + N(0, scatter)
    shear_max: float = 0.1                           # |gamma| uniform in [0, shear_max]
    frac_in_caustic: float = 0.8                     # fraction with |beta| < theta_E
    source_mag_r: tuple[float, float] = (22.0, 25.0)  # unlensed r mag, uniform
    source_g_r: tuple[float, float] = (0.3, 0.2)     # g - r ~ N(mean, sigma)
    source_r_z: tuple[float, float] = (0.2, 0.2)     # r - z ~ N(mean, sigma)
    source_n: tuple[float, float] = (0.5, 2.5)       # Sersic index, uniform
    source_re: tuple[float, float] = (0.1, 0.6)      # half-light radius, uniform
    source_q: tuple[float, float] = (0.4, 1.0)       # axis ratio, uniform

    @classmethod
    def from_dict(cls, d: dict | None) -> "Priors":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in (d or {}).items()})


MANIFEST_PARAMS = (
    "theta_e", "lens_q", "lens_phi", "gamma1", "gamma2", "src_x", "src_y", "src_n", "src_re", "src_q", "src_phi",
    "src_mag_g", "src_mag_r", "src_mag_z",
)
"""Per-row lens/source parameters (NaN for controls). Angles in the stamp frame (x along
pixel columns = West, y = North), radians counter-clockwise from +x; lengths arcsec."""

DRAWN_COLUMNS = (*MANIFEST_PARAMS, "source_in_caustic")
"""Every manifest column a draw sets (what a redraw replaces in the stamps)."""


def draw_parameters(p: Priors, seed: int, dataset: str, gal, attempt: int = 0) -> dict[str, np.ndarray]:
    """Lens and source parameters for positive galaxies ``gal`` (a table with galaxy_id,
    shape_r, shape_e1, shape_e2 columns; one row each), as (N,) arrays keyed by
    MANIFEST_PARAMS plus ``source_in_caustic``. Draw ``attempt`` k > 0 is the k-th redraw of a
    system that was not recognisable (:mod:`lensfinder.detectability`): its own stream of
    (seed, dataset, galaxy, k), so redraws are reproducible and independent of other rows."""
    ids = ("lens-source", np.asarray(gal["galaxy_id"]))
    keys = seeding.row_keys(seed, dataset, *ids) if attempt == 0 else seeding.row_keys(seed, dataset, *ids, attempt)
    uu = seeding.uniform(keys, 16)
    zz = seeding.normal(keys, 3)
    theta_e = p.theta_e[0] + (p.theta_e[1] - p.theta_e[0]) * uu[:, 0]
    # mass follows light: the LRG's own axis ratio and position angle where it has a shape
    q_light, pa_light = axis_ratio_angle(np.asarray(gal["shape_e1"], np.float64), np.asarray(gal["shape_e2"], np.float64))
    has_shape = (np.asarray(gal["shape_r"]) > 0) & np.isfinite(q_light)
    q_draw = p.lens_q_min + (1 - p.lens_q_min) * uu[:, 1]
    lens_q = np.where(has_shape, q_light + p.lens_q_scatter * zz[:, 0], q_draw)
    lens_q = np.clip(lens_q, p.lens_q_min, 1.0)
    lens_phi = np.where(has_shape, stamp_angle(pa_light), np.pi * uu[:, 2])
    gamma = p.shear_max * uu[:, 3]
    gamma_ang = np.pi * uu[:, 4]
    inside = uu[:, 5] < p.frac_in_caustic
    # |beta| uniform in area: inside the SIS radial caustic (|beta| < theta_E: multiply
    # imaged for an SIS, approximately so for SIE + shear) or in [theta_E, 2 theta_E].
    r_frac = np.where(inside, np.sqrt(uu[:, 6]), np.sqrt(1 + 3 * uu[:, 6]))
    beta_ang = 2 * np.pi * uu[:, 7]
    mag_r = p.source_mag_r[0] + (p.source_mag_r[1] - p.source_mag_r[0]) * uu[:, 8]
    return {
        "theta_e": theta_e,
        "lens_q": lens_q,
        "lens_phi": np.mod(lens_phi, np.pi),
        "gamma1": gamma * np.cos(2 * gamma_ang),
        "gamma2": gamma * np.sin(2 * gamma_ang),
        "src_x": r_frac * theta_e * np.cos(beta_ang),
        "src_y": r_frac * theta_e * np.sin(beta_ang),
        "src_n": p.source_n[0] + (p.source_n[1] - p.source_n[0]) * uu[:, 9],
        "src_re": p.source_re[0] + (p.source_re[1] - p.source_re[0]) * uu[:, 10],
        "src_q": p.source_q[0] + (p.source_q[1] - p.source_q[0]) * uu[:, 11],
        "src_phi": np.pi * uu[:, 12],
        "src_mag_g": mag_r + p.source_g_r[0] + p.source_g_r[1] * zz[:, 1],
        "src_mag_r": mag_r,
        "src_mag_z": mag_r - (p.source_r_z[0] + p.source_r_z[1] * zz[:, 2]),
        "source_in_caustic": inside,
    }


@dataclass(frozen=True)
class Population:
    """The draws of one dataset: its priors, the config seed and the dataset's name."""

    priors: Priors
    seed: int
    dataset: str

    def draw(self, gal, attempt: int = 0) -> dict[str, np.ndarray]:
        """:func:`draw_parameters` for galaxies ``gal`` at ``attempt``."""
        return draw_parameters(self.priors, self.seed, self.dataset, gal, attempt)
