"""Phase 4a-c: the population of injected lens systems.

The priors of the lens (SIE + external shear on an LRG of the parent sample) and of the
source (elliptical Sersic), and reproducible draws from them: the manifest holds each
positive's first draw; phase 4c redraws a system that is not recognisable as a lens
(:mod:`lensfinder.detectability`) from the same priors with the attempt number in its seed.

theta_E is either uniform in a range (``theta_e_model: uniform``) or the LRG's own
(``velocity_dispersion``: :mod:`lensfinder.lens_mass`, from its luminosity and redshift and
a source redshift). Source magnitudes are uniform or follow the faint galaxy counts
(``source_mag_model: counts``: dN/dm ~ 10^(a m); a ~ 0.33 in r for 21 < r < 25, e.g.
Metcalfe et al. 2001, MNRAS 323, 795), so most sources sit at the faint end as on the sky.
Sources may carry star-forming knots (``knots_max`` > 0): compact round clumps inside the
half-light ellipse, each a few to 15% of the light, sub-kpc to kpc in size like the clumps
of z ~ 1-3 star-forming galaxies (Guo et al. 2015, ApJ 800, 39), and bluer than their host
(young stars: nearly flat in f_nu by default), so arcs are not all smooth nor one colour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lensfinder import seeding
from lensfinder.lens_mass import FaberJackson, einstein_radius, rest_frame_abs_mag
from lensfinder.sky.shapes import axis_ratio_angle, stamp_angle

UNLENSED_SOURCE = "unlensed_source"
"""Population of a control made by injection: an ordinary galaxy given a drawn lens system
that is recognisable, whose source is then added *unlensed* (one copy per image, at the
images' distances from the lens, random position angles, the arc's flux and colour), so
the classes differ by the arc's shape and configuration, not by its flux
(:func:`lensfinder.inject.unlensed_copies`)."""


@dataclass(frozen=True)
class Priors:
    """Lens and source priors. Angles in arcsec, magnitudes AB (intrinsic, i.e. before
    Milky Way extinction, which the injection applies with the galaxy's transmission)."""

    theta_e_model: str = "uniform"                   # uniform | velocity_dispersion
    theta_e: tuple[float, float] = (0.8, 3.0)        # SIE Einstein radius, uniform model
    faber_jackson: FaberJackson = field(default_factory=FaberJackson)  # velocity_dispersion model
    source_z: tuple[float, float] = (1.0, 3.0)       # uniform; velocity_dispersion model
    lens_q_min: float = 0.5                          # mass axis ratio floor
    lens_q_scatter: float = 0.05                     # mass q = light q + N(0, scatter)
    shear_max: float = 0.1                           # |gamma| uniform in [0, shear_max]
    frac_in_caustic: float = 0.8                     # fraction with |beta| < theta_E
    source_mag_r: tuple[float, float] = (22.0, 25.0)  # unlensed r mag range
    source_mag_model: str = "uniform"                 # uniform | counts
    source_counts_slope: float = 0.33                 # counts: dN/dm ~ 10^(slope m)
    source_g_r: tuple[float, float] = (0.3, 0.2)     # g - r ~ N(mean, sigma)
    source_r_z: tuple[float, float] = (0.2, 0.2)     # r - z ~ N(mean, sigma)
    source_n: tuple[float, float] = (0.5, 2.5)       # Sersic index, uniform
    source_re: tuple[float, float] = (0.1, 0.6)      # half-light radius, uniform
    source_q: tuple[float, float] = (0.4, 1.0)       # axis ratio, uniform
    knots_max: int = 0                               # star-forming knots per source: 0..knots_max
    knot_flux: tuple[float, float] = (0.05, 0.15)    # each knot's share of the source flux, uniform
    knot_re: tuple[float, float] = (0.03, 0.10)      # knot half-light radius (arcsec), uniform
    knot_g_r: tuple[float, float] = (0.0, 0.1)       # knot g - r ~ N(mean, sigma)
    knot_r_z: tuple[float, float] = (0.0, 0.1)       # knot r - z ~ N(mean, sigma)

    @classmethod
    def from_dict(cls, d: dict | None) -> "Priors":
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in (d or {}).items()}
        if isinstance(d.get("faber_jackson"), dict):
            d["faber_jackson"] = FaberJackson(**d["faber_jackson"])
        p = cls(**d)
        if p.theta_e_model not in THETA_E_MODELS:
            raise ValueError(f"priors.theta_e_model must be one of {THETA_E_MODELS}, not {p.theta_e_model!r}")
        if not 0 <= p.knots_max <= KNOT_SLOTS:
            raise ValueError(f"priors.knots_max must be in 0..{KNOT_SLOTS}, not {p.knots_max}")
        if p.source_mag_model not in SOURCE_MAG_MODELS:
            raise ValueError(f"priors.source_mag_model must be one of {SOURCE_MAG_MODELS}, not {p.source_mag_model!r}")
        p.check_ranges()
        return p

    # (lo, hi) ranges and the open lower bound each must keep (None: any value)
    RANGES = {"theta_e": 0.0, "source_z": 0.0, "source_mag_r": None, "source_n": 0.0, "source_re": 0.0,
              "source_q": 0.0, "knot_flux": 0.0, "knot_re": 0.0}
    NORMALS = ("source_g_r", "source_r_z", "knot_g_r", "knot_r_z")  # (mean, sigma)

    def check_ranges(self) -> None:
        """Refuse reversed or unphysical ranges, naming the key (e.g. ``priors.theta_e``)."""
        for key, floor in self.RANGES.items():
            v = getattr(self, key)
            if len(v) != 2 or v[0] > v[1] or (floor is not None and v[0] <= floor):
                raise ValueError(f"priors.{key}: {list(v)} must be [low, high] with low <= high"
                                 + (f" and low > {floor}" if floor is not None else ""))
        if self.source_q[1] > 1 or self.knot_flux[1] >= 1:
            raise ValueError(f"priors.source_q must lie in (0, 1] and knot_flux in (0, 1): {list(self.source_q)}, "
                             f"{list(self.knot_flux)}")
        for key in self.NORMALS:
            v = getattr(self, key)
            if len(v) != 2 or v[1] < 0:
                raise ValueError(f"priors.{key}: {list(v)} must be [mean, sigma] with sigma >= 0")
        if not (0 < self.lens_q_min <= 1 and self.lens_q_scatter >= 0 and self.shear_max >= 0
                and 0 <= self.frac_in_caustic <= 1 and self.knots_max >= 0):
            raise ValueError("priors: need 0 < lens_q_min <= 1, lens_q_scatter >= 0, shear_max >= 0, "
                             f"0 <= frac_in_caustic <= 1 (got {self.lens_q_min}, {self.lens_q_scatter}, "
                             f"{self.shear_max}, {self.frac_in_caustic})")


THETA_E_MODELS = ("uniform", "velocity_dispersion")
SOURCE_MAG_MODELS = ("uniform", "counts")
LENS_LIGHT_COLUMNS = ("mag_g", "mag_r", "mag_z", "mag_w1", "z_lens")
"""What the velocity_dispersion model reads of a lens galaxy (parent-sample columns)."""


KNOT_SLOTS = 3  # the most knots a source can have (knots_max <= KNOT_SLOTS)
KNOT_PARAMS = ("knot_re", *(f"knot{i}_{c}" for i in range(KNOT_SLOTS) for c in ("x", "y", "flux", "g_r", "r_z")))

MANIFEST_PARAMS = (
    "theta_e", "lens_q", "lens_phi", "gamma1", "gamma2", "src_x", "src_y", "src_n", "src_re", "src_q", "src_phi",
    "src_mag_g", "src_mag_r", "src_mag_z", "lens_sigma", "src_z", *KNOT_PARAMS,
)
"""Per-row lens/source parameters (NaN for controls). Angles in the stamp frame (x along
pixel columns = West, y = North), radians counter-clockwise from +x; lengths arcsec;
lens_sigma km/s and src_z only for ``theta_e_model: velocity_dispersion`` (else NaN);
knot<i>_x/y: offset of knot i from the source centre (source plane), knot<i>_flux its
fraction of the source's r flux (0: no knot i), knot<i>_g_r / _r_z its colours (the
source's src_mag_* are totals: the Sersic part has what the knots leave)."""

DRAWN_COLUMNS = (*MANIFEST_PARAMS, "source_in_caustic")
"""Every manifest column a draw sets (what a redraw replaces in the stamps)."""


def _names(gal) -> list[str]:
    """Column names of an Arrow or pandas table."""
    return list(gal.column_names) if hasattr(gal, "column_names") else list(gal.columns)


def _einstein_radii(p: Priors, gal, uu: np.ndarray, scatter: np.ndarray):
    """(theta_E arcsec, sigma km/s, z_source) per row; theta_E NaN where the lens has no
    redshift (velocity_dispersion model). Uses draws uu[:, 0] and uu[:, 13]."""
    n = len(uu)
    if p.theta_e_model == "uniform":
        return p.theta_e[0] + (p.theta_e[1] - p.theta_e[0]) * uu[:, 0], np.full(n, np.nan), np.full(n, np.nan)
    missing = [c for c in LENS_LIGHT_COLUMNS if c not in _names(gal)]
    if missing:
        raise KeyError(f"theta_e_model velocity_dispersion needs the lens columns {missing} (phase-3 parent sample "
                       "with photo-z sweeps: sky.dr10.photoz_dir)")
    z_l = np.asarray(gal["z_lens"], np.float64)
    mags = np.stack([np.asarray(gal[c], np.float64) for c in LENS_LIGHT_COLUMNS[:4]], axis=1)
    # the source lies behind the lens: its range starts 0.1 beyond z_lens if need be
    lo = np.maximum(p.source_z[0], z_l + 0.1)
    z_src = lo + np.maximum(p.source_z[1] - lo, 0.0) * uu[:, 13]
    sigma = 10 ** p.faber_jackson.log_sigma(rest_frame_abs_mag(mags, np.nan_to_num(z_l, nan=0.5)), z_l, scatter)
    ok = np.isfinite(z_l) & (z_l > 0)
    sigma, z_src = np.where(ok, sigma, np.nan), np.where(ok, z_src, np.nan)
    return einstein_radius(sigma, z_l, z_src), sigma, z_src


def _source_mags(p: Priors, u: np.ndarray) -> np.ndarray:
    """Unlensed source r magnitudes in ``p.source_mag_r`` from uniform draws ``u``."""
    lo, hi = p.source_mag_r
    if p.source_mag_model == "uniform":
        return lo + (hi - lo) * u
    a = p.source_counts_slope  # inverse CDF of dN/dm ~ 10^(a m) on [lo, hi]
    return np.log10(10 ** (a * lo) + u * (10 ** (a * hi) - 10 ** (a * lo))) / a


def _knots(p: Priors, uu: np.ndarray, zz: np.ndarray, re: np.ndarray, q: np.ndarray,
           phi: np.ndarray) -> dict[str, np.ndarray]:
    """KNOT_PARAMS from uniform draws ``uu`` (N, 2 + 3 KNOT_SLOTS) and normal draws ``zz``
    (N, 2 KNOT_SLOTS) for sources of half-light
    radius ``re``, axis ratio ``q`` and angle ``phi``: 0..knots_max knots, uniform in area
    inside the half-light ellipse (semi-axes re/sqrt(q), re sqrt(q))."""
    n_knots = np.floor(uu[:, 0] * (p.knots_max + 1)).astype(int)
    out = {"knot_re": np.where(n_knots > 0, p.knot_re[0] + (p.knot_re[1] - p.knot_re[0]) * uu[:, 1], 0.0)}
    for i in range(KNOT_SLOTS):
        u_r, u_a, u_f = uu[:, 2 + 3 * i], uu[:, 3 + 3 * i], uu[:, 4 + 3 * i]
        a = 2 * np.pi * u_a
        xr, yr = np.sqrt(u_r) * re / np.sqrt(q) * np.cos(a), np.sqrt(u_r) * re * np.sqrt(q) * np.sin(a)
        on = i < n_knots
        out[f"knot{i}_x"] = np.where(on, xr * np.cos(phi) - yr * np.sin(phi), 0.0)
        out[f"knot{i}_y"] = np.where(on, xr * np.sin(phi) + yr * np.cos(phi), 0.0)
        out[f"knot{i}_flux"] = np.where(on, p.knot_flux[0] + (p.knot_flux[1] - p.knot_flux[0]) * u_f, 0.0)
        out[f"knot{i}_g_r"] = np.where(on, p.knot_g_r[0] + p.knot_g_r[1] * zz[:, 2 * i], 0.0)
        out[f"knot{i}_r_z"] = np.where(on, p.knot_r_z[0] + p.knot_r_z[1] * zz[:, 2 * i + 1], 0.0)
    return out


def system_keys(seed: int, dataset: str, stream: str, gid: np.ndarray, system: np.ndarray | None,
                redraw: tuple = ()) -> np.ndarray:
    """(N,) uint64 keys of one draw stream for galaxies ``gid``. System 0 of a galaxy (and
    every galaxy of a dataset without ``systems_per_galaxy``) keeps the key of (seed,
    dataset, stream, galaxy[, attempt]); system s > 0 -- the s-th independent lens system
    drawn for the same galaxy -- hashes ("system", s) in after it, so a dataset's first
    systems do not change when more are asked for."""
    keys = seeding.row_keys(seed, dataset, stream, gid, *redraw)
    if system is None or not np.any(system):
        return keys
    return np.where(system == 0, keys, seeding.row_keys(seed, dataset, stream, gid, *redraw, "system", system))


def draw_parameters(p: Priors, seed: int, dataset: str, gal, attempt: int = 0) -> dict[str, np.ndarray]:
    """Lens and source parameters for positive galaxies ``gal`` (a table with galaxy_id,
    shape_r, shape_e1, shape_e2 columns; one row each), as (N,) arrays keyed by
    MANIFEST_PARAMS plus ``source_in_caustic``. Draw ``attempt`` k > 0 is the k-th redraw of a
    system that was not recognisable (:mod:`lensfinder.detectability`): its own stream of
    (seed, dataset, galaxy, k), so redraws are reproducible and independent of other rows.
    An optional ``system`` column numbers several systems drawn for one galaxy
    (:func:`system_keys`)."""
    gid = np.asarray(gal["galaxy_id"])
    system = np.asarray(gal["system"]) if "system" in _names(gal) else None
    redraw = () if attempt == 0 else (attempt,)

    def stream(name: str) -> np.ndarray:
        return system_keys(seed, dataset, name, gid, system, redraw)

    keys = stream("lens-source")
    uu = seeding.uniform(keys, 16)
    zz = seeding.normal(keys, 3)
    scatter = seeding.normal(stream("lens-mass"), 1)[:, 0]
    theta_e, sigma, z_src = _einstein_radii(p, gal, uu, scatter)
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
    mag_r = _source_mags(p, uu[:, 8])
    src_re = p.source_re[0] + (p.source_re[1] - p.source_re[0]) * uu[:, 10]
    src_q = p.source_q[0] + (p.source_q[1] - p.source_q[0]) * uu[:, 11]
    src_phi = np.pi * uu[:, 12]
    knots = _knots(p, seeding.uniform(stream("source-knots"), 2 + 3 * KNOT_SLOTS),
                   seeding.normal(stream("knot-colours"), 2 * KNOT_SLOTS),
                   src_re, src_q, src_phi)
    return {
        "theta_e": theta_e,
        "lens_q": lens_q,
        "lens_phi": np.mod(lens_phi, np.pi),
        "gamma1": gamma * np.cos(2 * gamma_ang),
        "gamma2": gamma * np.sin(2 * gamma_ang),
        "src_x": r_frac * theta_e * np.cos(beta_ang),
        "src_y": r_frac * theta_e * np.sin(beta_ang),
        "src_n": p.source_n[0] + (p.source_n[1] - p.source_n[0]) * uu[:, 9],
        "src_re": src_re,
        "src_q": src_q,
        "src_phi": src_phi,
        "src_mag_g": mag_r + p.source_g_r[0] + p.source_g_r[1] * zz[:, 1],
        "src_mag_r": mag_r,
        "src_mag_z": mag_r - (p.source_r_z[0] + p.source_r_z[1] * zz[:, 2]),
        "lens_sigma": sigma,
        "src_z": z_src,
        **knots,
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
