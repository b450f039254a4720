"""Phase 4c: is an injected system recognisable as a lens?

Per system: the images of the source centre (the lens equation solved, not the SIS
approximation), their magnifications, the total magnification of the extended source, the
arc's S/N in its own pixels and whether the images are resolved. A system is recognisable
when it passes the configured criteria; the defaults are Collett (2015, ApJ 811, 20, sec.
2.3): multiply imaged, total magnification >= 3, resolved (theta_E^2 > R_e^2 + (FWHM/2)^2)
and S/N >= 20 in the lensed images. Optionally (``min_theta_e_fwhm`` > 0) the arcs must also
lie clear of the lens: theta_E >= k x FWHM. Collett's criterion asks only that the images be
resolved once the lens light is subtracted; in ground-based imaging with the lens light in
the stamp, an Einstein radius below the seeing FWHM leaves a blob around the lens, not arcs
(searches at ~1.1-1.3" seeing aim at theta_E > 1.5": HOLISMOKES II, Canameras et al. 2020,
A&A 644, A163).

The solver is the triangle-mapping method (Schramm & Kayser 1987; as in glafic and
lenstronomy's ``LensEquationSolver``): image-plane grid cells, split in two triangles, are
mapped to the source plane; a triangle containing the source holds an image, which Newton
iterations then refine. Written here, vectorised over systems, because lenstronomy's solver
loops over one system at a time in Python; tests/test_detectability.py checks it against
lenstronomy on random systems.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lensfinder.lensing import LensSystems, deflection
from lensfinder.noise import sum_variance

_GRID = 120           # image-plane grid points per side for the triangle search
# Nested grids, each 1/_ZOOM the width of the last, centred on the lens: near the singular
# SIE centre the lens mapping stretches a cell across much of the source plane, so faint
# images close to the centre are only caught by a finer grid there.
_LEVELS, _ZOOM = 3, 10.0
_NEWTON_STEPS = 12
_FD_STEP = 1e-5       # arcsec, finite-difference step of the lens-mapping Jacobian
_CONVERGED = 1e-7     # arcsec in the source plane
_SAME_IMAGE = 1e-4    # arcsec: Newton solutions closer than this are one image
_CENTRE = 1e-4        # x theta_E: the singular SIE centre holds no image


@dataclass(frozen=True)
class Criteria:
    """Recognisability criteria (the ``inject.recognisable`` config section); defaults are
    Collett (2015)'s. ``max_attempts``: draws per positive before it is given up (counted)."""

    min_images: int = 2
    min_magnification: float = 3.0
    min_arc_snr: float = 20.0
    resolved: bool = True
    min_theta_e_fwhm: float = 0.0  # theta_E >= this x the r-band FWHM (0: no such cut)
    max_attempts: int = 20

    @classmethod
    def from_dict(cls, d: dict | None) -> "Criteria":
        return cls(**(d or {}))


def _source_position(x, y, sys: LensSystems, dtype=np.float64):
    ax, ay = deflection(x, y, sys, dtype)
    return x - ax, y - ay


def _jacobian(x, y, sys: LensSystems):
    """d(beta)/d(theta) at points (N, P) by central differences: four (N, P) arrays."""
    h = _FD_STEP
    bxp, byp = _source_position(x + h, y, sys)
    bxm, bym = _source_position(x - h, y, sys)
    bxq, byq = _source_position(x, y + h, sys)
    bxn, byn = _source_position(x, y - h, sys)
    return (bxp - bxm) / (2 * h), (bxq - bxn) / (2 * h), (byp - bym) / (2 * h), (byq - byn) / (2 * h)


def _cells_around_origin(bx: np.ndarray, by: np.ndarray) -> np.ndarray:
    """(N, G-1, G-1) bool: grid cells whose four source-plane corners (``bx``, ``by`` (N, G,
    G), relative to the source) straddle the source in both coordinates -- the only cells
    one of whose triangles can contain it (a triangle lies within its cell's corners)."""
    out = None
    for v in (bx, by):
        for side in (v >= 0, v <= 0):
            anyc = side[:, :-1, :-1] | side[:, :-1, 1:] | side[:, 1:, :-1] | side[:, 1:, 1:]
            out = anyc if out is None else out & anyc
    return out


def _triangle_hits(sys: LensSystems, half_width: np.ndarray):
    """Image-plane first guesses: (system index, x, y) of every grid triangle whose source-
    plane image contains the source centre. The grid is traced in float32 (a first guess;
    Newton refines in float64) and the triangle test runs only on cells around the source."""
    n = len(sys)
    t = np.linspace(-1.0, 1.0, _GRID)
    gx = sys.lens_x[:, None, None] + half_width[:, None, None] * t[None, None, :]
    gy = sys.lens_y[:, None, None] + half_width[:, None, None] * t[None, :, None]
    gx, gy = np.broadcast_to(gx, (n, _GRID, _GRID)), np.broadcast_to(gy, (n, _GRID, _GRID))
    f32 = np.float32
    bx, by = _source_position(gx.reshape(n, -1).astype(f32), gy.reshape(n, -1).astype(f32), sys, f32)
    bx = bx.reshape(n, _GRID, _GRID) - sys.src_x[:, None, None].astype(f32)
    by = by.reshape(n, _GRID, _GRID) - sys.src_y[:, None, None].astype(f32)
    k, i, j = np.nonzero(_cells_around_origin(bx, by))  # row-major, as the full test's hits were
    hits = []
    # the two triangles of each cell: (00, 01, 10) and (11, 10, 01) as (row, col) corners
    for corners in (((0, 0), (0, 1), (1, 0)), ((1, 1), (1, 0), (0, 1))):
        px = [bx[k, i + r, j + c] for r, c in corners]
        py = [by[k, i + r, j + c] for r, c in corners]
        # the origin (the source) is inside when the three edge cross products agree in sign
        d = [px[a] * py[(a + 1) % 3] - py[a] * px[(a + 1) % 3] for a in range(3)]
        inside = ((d[0] >= 0) & (d[1] >= 0) & (d[2] >= 0)) | ((d[0] <= 0) & (d[1] <= 0) & (d[2] <= 0))
        ki, ii, ji = k[inside], i[inside], j[inside]
        ix = sum(gx[ki, ii + r, ji + c] / 3 for r, c in corners)
        iy = sum(gy[ki, ii + r, ji + c] / 3 for r, c in corners)
        hits.append((ki, ix, iy))
    return tuple(np.concatenate(parts) for parts in zip(*hits))


def solve_images(sys: LensSystems) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Images of each system's source centre: per system (x, y, magnification), arrays of
    the images found (arcsec; signed magnification 1/det A), in order of decreasing |mu|."""
    if not len(sys):
        return []
    beta = np.hypot(sys.src_x - sys.lens_x, sys.src_y - sys.lens_y)
    half_width = 2.5 * sys.theta_e + beta
    levels = [_triangle_hits(sys, half_width / _ZOOM**i) for i in range(_LEVELS)]
    k, x, y = (np.concatenate(parts) for parts in zip(*levels))
    one = sys.take(k)
    for _ in range(_NEWTON_STEPS):
        bx, by = _source_position(x[:, None], y[:, None], one)
        a11, a12, a21, a22 = (v[:, 0] for v in _jacobian(x[:, None], y[:, None], one))
        det = a11 * a22 - a12 * a21
        rx, ry = one.src_x - bx[:, 0], one.src_y - by[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            x = x + np.where(det != 0, (a22 * rx - a12 * ry) / det, 0.0)
            y = y + np.where(det != 0, (-a21 * rx + a11 * ry) / det, 0.0)
    bx, by = _source_position(x[:, None], y[:, None], one)
    a11, a12, a21, a22 = (v[:, 0] for v in _jacobian(x[:, None], y[:, None], one))
    with np.errstate(divide="ignore"):
        mu = 1.0 / (a11 * a22 - a12 * a21)
    good = (np.hypot(bx[:, 0] - one.src_x, by[:, 0] - one.src_y) < _CONVERGED) \
        & (np.hypot(x - one.lens_x, y - one.lens_y) > _CENTRE * one.theta_e) & np.isfinite(mu)
    out = []
    for s in range(len(sys)):
        sel = np.flatnonzero((k == s) & good)
        xs, ys, ms = [], [], []
        for i in sel[np.argsort(-np.abs(mu[sel]), kind="stable")]:
            if all(np.hypot(x[i] - u, y[i] - v) > _SAME_IMAGE for u, v in zip(xs, ys)):
                xs.append(x[i]), ys.append(y[i]), ms.append(mu[i])
        out.append((np.array(xs), np.array(ys), np.array(ms)))
    return out


def arc_snr(arcs: np.ndarray, invvar: np.ndarray, electrons_per_nmgy: np.ndarray, lag1: float = 0.0) -> np.ndarray:
    """S/N of noiseless arcs (N, B, H, W) nanomaggies in their own pixels: per band, over the
    pixels where the arc is >= 1 sigma of the pixel noise (coadd noise from ``invvar`` plus
    the arc's photon noise with ``electrons_per_nmgy`` (N, B)), sum(arc) / sqrt(var(sum)),
    the variance of the sum including the pixel-noise correlation ``lag1`` of resampled
    coadds (:mod:`lensfinder.noise`; ignoring it would overstate the S/N by ~18% at 0.11);
    bands combined in quadrature. (N,). Pixels without data (invvar 0) are not counted."""
    with np.errstate(divide="ignore"):
        var = np.where(invvar > 0, 1.0 / invvar, np.inf) + np.maximum(arcs, 0) / electrons_per_nmgy[:, :, None, None]
    own = (arcs >= np.sqrt(var)) & np.isfinite(var)
    signal = np.where(own, arcs, 0).sum(axis=(2, 3))
    noise = np.sqrt(sum_variance(np.sqrt(np.where(own, var, 0)), lag1))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_band = np.where(noise > 0, signal / noise, 0.0)
    return np.sqrt((per_band**2).sum(axis=1))


def resolved(theta_e, src_re, fwhm) -> np.ndarray:
    """Collett (2015)'s resolution criterion theta_E^2 > R_e^2 + (FWHM/2)^2 (arcsec)."""
    return np.asarray(theta_e) ** 2 > np.asarray(src_re) ** 2 + (np.asarray(fwhm) / 2) ** 2


def clear_of_lens(theta_e, fwhm, c: Criteria) -> np.ndarray:
    """theta_E >= ``c.min_theta_e_fwhm`` x FWHM (arcsec; all True when the cut is off)."""
    return np.asarray(theta_e) >= c.min_theta_e_fwhm * np.asarray(fwhm)


def geometry_ok(theta_e, src_re, fwhm, c: Criteria) -> np.ndarray:
    """The criteria that need no rendering: resolved (if asked) and clear of the lens."""
    ok = clear_of_lens(theta_e, fwhm, c)
    return ok & resolved(theta_e, src_re, fwhm) if c.resolved else ok


CRITERIA = ("multiple_images", "magnification", "arc_snr", "resolved", "clear_of_lens")


def failures(n_images, mu_total, snr, is_resolved, c: Criteria, is_clear=None) -> dict[str, np.ndarray]:
    """{criterion of CRITERIA: which systems fail it} under ``c`` (all arguments (N,);
    ``is_clear``: :func:`clear_of_lens`, all True if omitted)."""
    none = np.zeros(np.shape(n_images), bool)
    return {"multiple_images": np.asarray(n_images) < c.min_images,
            "magnification": np.asarray(mu_total) < c.min_magnification,
            "arc_snr": np.asarray(snr) < c.min_arc_snr,
            "resolved": ~np.asarray(is_resolved, bool) if c.resolved else none,
            "clear_of_lens": none if is_clear is None else ~np.asarray(is_clear, bool)}


def recognisable(n_images, mu_total, snr, is_resolved, c: Criteria, is_clear=None) -> np.ndarray:
    """Which systems pass every criterion of ``c`` (all arguments (N,))."""
    return ~np.any(list(failures(n_images, mu_total, snr, is_resolved, c, is_clear).values()), axis=0)
