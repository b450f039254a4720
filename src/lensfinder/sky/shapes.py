"""Tractor galaxy shapes: (SHAPE_R, SHAPE_E1, SHAPE_E2) <-> axis ratio and position angle.

Tractor's ``EllipseE``: |e| = sqrt(e1^2 + e2^2), axis ratio q = (1 - |e|) / (1 + |e|),
position angle of the major axis theta = atan2(e2, e1) / 2, measured from North through
East. SHAPE_R is the half-light radius along the major axis, arcsec.
"""

from __future__ import annotations

import numpy as np


def e1e2_to_q_theta(e1, e2) -> tuple[np.ndarray, np.ndarray]:
    """Axis ratio q (0-1] and major-axis position angle (radians, East of North)."""
    e1 = np.asarray(e1, dtype=np.float64)
    e2 = np.asarray(e2, dtype=np.float64)
    e = np.clip(np.hypot(e1, e2), 0.0, 0.999)
    return (1.0 - e) / (1.0 + e), 0.5 * np.arctan2(e2, e1)


def q_theta_to_e1e2(q, theta) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`e1e2_to_q_theta` (theta in radians East of North)."""
    q = np.asarray(q, dtype=np.float64)
    e = (1.0 - q) / (1.0 + q)
    return e * np.cos(2 * theta), e * np.sin(2 * theta)


def covariance_pixels(r_pix, q, theta) -> np.ndarray:
    """2x2 shape matrices, (N, 2, 2) in pixel units (x = West, y = North, as in a DR10
    coadd whose RA increases to the left), of ellipses with major-axis scale ``r_pix``,
    axis ratio ``q`` and position angle ``theta`` (radians East of North)."""
    r_pix, q, theta = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (r_pix, q, theta)))
    # Major axis unit vector: North is +y, East is -x.
    ux, uy = -np.sin(theta), np.cos(theta)
    vx, vy = -uy, ux  # minor axis, perpendicular
    a2, b2 = r_pix**2, (q * r_pix) ** 2
    cov = np.empty(r_pix.shape + (2, 2))
    cov[..., 0, 0] = a2 * ux * ux + b2 * vx * vx
    cov[..., 0, 1] = cov[..., 1, 0] = a2 * ux * uy + b2 * vx * vy
    cov[..., 1, 1] = a2 * uy * uy + b2 * vy * vy
    return cov
