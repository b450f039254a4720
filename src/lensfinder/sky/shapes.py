"""The one ellipse convention of lensfinder: ellipticity (e1, e2) <-> axis ratio and
angle, and the two angle origins in use.

Ellipticity: |e| = (1 - q) / (1 + q), e1 = |e| cos 2a, e2 = |e| sin 2a -- Tractor's
``EllipseE`` (SHAPE_E1/E2) and lenstronomy's ``param_util.phi_q2_ellipticity`` share it.
What the angle ``a`` means depends on the frame:

* catalogue (Tractor): ``a`` is the position angle of the major axis, East of North;
* stamp (lensing, injection): ``a`` is measured counter-clockwise from +x, with x = West
  and y = North as in a DR10 coadd (RA increases to the left). The major axis
  (-sin PA, cos PA) then lies at ``a = PA + pi/2`` (:func:`stamp_angle`).

SHAPE_R is the half-light radius along the major axis, arcsec.
"""

from __future__ import annotations

import numpy as np

# Tractor shapes reach |e| -> 1 for unresolved fits; q >= 5e-4 keeps them finite.
E_MAX_CATALOGUE = 0.999
# SIE / Sersic ray tracing: q >= 5e-5 (the lens code caps q below 1 separately).
E_MAX_LENSING = 0.9999


def ellipticity(q, angle) -> tuple[np.ndarray, np.ndarray]:
    """(e1, e2) of axis ratio ``q`` (0-1] and major-axis ``angle`` (radians, either frame)."""
    c = (1.0 - np.asarray(q, dtype=np.float64)) / (1.0 + np.asarray(q, dtype=np.float64))
    return c * np.cos(2 * angle), c * np.sin(2 * angle)


def axis_ratio_angle(e1, e2, e_max: float = E_MAX_CATALOGUE) -> tuple[np.ndarray, np.ndarray]:
    """(q, angle) of ellipticity (e1, e2), |e| capped at ``e_max``; inverse of
    :func:`ellipticity`. Computed in the dtype of the inputs."""
    e = np.clip(np.hypot(e1, e2), 0.0, e_max)
    return (1 - e) / (1 + e), 0.5 * np.arctan2(e2, e1)


def stamp_angle(position_angle):
    """Angle from +x (x = West, y = North) of a major axis at ``position_angle`` East of North."""
    return position_angle + np.pi / 2


def covariance_pixels(r_pix, q, theta) -> np.ndarray:
    """2x2 shape matrices, (N, 2, 2) in pixel units (x = West, y = North), of ellipses with
    major-axis scale ``r_pix``, axis ratio ``q`` and position angle ``theta`` (radians
    East of North)."""
    r_pix, q, theta = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (r_pix, q, theta)))
    ux, uy = -np.sin(theta), np.cos(theta)  # major axis: North is +y, East is -x
    vx, vy = -uy, ux  # minor axis, perpendicular
    a2, b2 = r_pix**2, (q * r_pix) ** 2
    cov = np.empty(r_pix.shape + (2, 2))
    cov[..., 0, 0] = a2 * ux * ux + b2 * vx * vx
    cov[..., 0, 1] = cov[..., 1, 0] = a2 * ux * uy + b2 * vx * vy
    cov[..., 1, 1] = a2 * uy * uy + b2 * vy * vy
    return cov
