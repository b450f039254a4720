"""The mock sky's pixels: every object that reaches a window, blurred by the brick's PSF,
plus noise with the pixel correlation of resampled DR10 coadds (:mod:`lensfinder.noise`).

Only windows around the LRG-like galaxies are covered -- the only pixels any rule reads --
so the cost of a brick grows mostly with its LRGs: at the demo's density the windows cover
~10% of a brick, and rendering the rest would cost ~10x more for pixels nothing reads.
"""

from __future__ import annotations

import numpy as np

from lensfinder import BANDS, PIXSCALE
from lensfinder.noise import correlate
from lensfinder.sky.mock_config import MockSkyConfig, brick_rngs
from lensfinder.sky.profiles import sersic_mog
from lensfinder.sky.shapes import axis_ratio_angle, covariance_pixels

FAINT_SIGMAS = 200.0  # total flux below this many pixel sigmas (S/N ~ 25 in a PSF aperture): a faint object
HALF_SIZES = np.array([12, 16, 24, 32, 48])  # object grids are (2h+1)^2 for h in these
NOISE_BLOCK = 128  # noise is correlated block by block (with a 1-pixel halo) where covered
DEPTH_CELL = 100  # the depth map is constant over cells of this many pixels


def mixture_size(n: float, faint: bool) -> int:
    """Gaussians fitted per Sersic profile: fits of 6 (5 kept) reproduce an exponential's
    profile to 1% of its light, 8 (6 kept) to 0.3% and de Vaucouleurs' with 10 to 3%
    (tests/test_scene.py); faint objects (S/N < ~25) get the cheapest that keeps r_e."""
    return 6 if faint else (8 if n < 2 else 10)


def _render_band(shape, render: dict, band: str) -> np.ndarray:
    """Noise-free image (nanomaggies/pixel) of every render object in one band, (H, W) float64.

    Each object is rendered on its own (2h+1)^2 grid and normalised to its exact flux, then
    scattered into the image (no per-pixel loops)."""
    ny, nx = shape
    c = render["cond"][band]
    x, y, flux = render["x"], render["y"], render["flux"][band]
    re_pix = render["re"] / PIXSCALE
    q, theta = axis_ratio_angle(np.asarray(render["e1"], np.float64), np.asarray(render["e2"], np.float64))
    shape_cov = covariance_pixels(re_pix, q, theta)
    half = np.clip(np.ceil(4 * c["sigma_psf_pix"] + 5 * re_pix), 8, 48).astype(int)
    half = HALF_SIZES[np.searchsorted(HALF_SIZES, half)]  # few distinct stamp sizes
    faint = flux < FAINT_SIGMAS * c["sigma_pix"]
    acc = np.zeros(ny * nx)
    for h, n_s, is_faint in sorted(set(zip(half.tolist(), render["sersic"].tolist(), faint.tolist()))):
        sel = np.flatnonzero((half == h) & (render["sersic"] == n_s) & (faint == is_faint))
        offs = np.arange(-h, h + 1)
        xc = np.floor(x[sel] + 0.5).astype(int)
        yc = np.floor(y[sel] + 0.5).astype(int)
        # float32 for the (N, S, S) Gaussian sums, which are ~all of the mock sky's run
        # time: 2x faster than float64, and each stamp is renormalised to its exact flux
        dx = (xc[:, None] + offs[None, :] - x[sel, None]).astype(np.float32)[:, None, :]  # (N, 1, S)
        dy = (yc[:, None] + offs[None, :] - y[sel, None]).astype(np.float32)[:, :, None]  # (N, S, 1)
        dx2, dy2, dxy = dx**2, dy**2, dx * dy
        stamp = np.zeros((sel.size, offs.size, offs.size), np.float32)
        amps, var = sersic_mog(float(n_s), mixture_size(n_s, is_faint))
        for a, v in zip(amps, var):
            for a_psf, v_psf in zip(c["psf_amps"], c["psf_var"]):  # galaxy x PSF components
                cov = v * shape_cov[sel] + v_psf * np.eye(2)
                det = cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] ** 2
                ixx, iyy, ixy = ((-0.5 * k / det).astype(np.float32)[:, None, None]
                                 for k in (cov[:, 1, 1], cov[:, 0, 0], -2 * cov[:, 0, 1]))
                norm = (a * a_psf / (2 * np.pi * np.sqrt(det))).astype(np.float32)[:, None, None]
                stamp += norm * np.exp(ixx * dx2 + iyy * dy2 + ixy * dxy)
        stamp = stamp.astype(np.float64) * (flux[sel] / stamp.sum(axis=(1, 2), dtype=np.float64))[:, None, None]
        cols = np.broadcast_to(xc[:, None, None] + offs[None, None, :], stamp.shape)
        rows = np.broadcast_to(yc[:, None, None] + offs[None, :, None], stamp.shape)
        ok = (cols >= 0) & (cols < nx) & (rows >= 0) & (rows < ny)
        np.add.at(acc, rows[ok] * nx + cols[ok], stamp[ok])
    return acc.reshape(ny, nx)


def coverage(cfg: MockSkyConfig, windows: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(H, W) bool: pixels within ``window_pix`` / 2 of a window centre (Chebyshev)."""
    size, half = cfg.brick_size_pix, cfg.window_pix // 2
    mask = np.zeros((size, size), dtype=bool)
    for wx, wy in zip(*windows):
        xc, yc = int(np.floor(wx + 0.5)), int(np.floor(wy + 0.5))
        mask[max(yc - half, 0):yc + half + 1, max(xc - half, 0):xc + half + 1] = True
    return mask


def covered_blocks(mask: np.ndarray) -> list[tuple[slice, slice]]:
    """The NOISE_BLOCK x NOISE_BLOCK blocks of ``mask`` holding a covered pixel."""
    ny, nx = mask.shape
    return [(slice(y0, min(y0 + NOISE_BLOCK, ny)), slice(x0, min(x0 + NOISE_BLOCK, nx)))
            for y0 in range(0, ny, NOISE_BLOCK) for x0 in range(0, nx, NOISE_BLOCK)
            if mask[y0:y0 + NOISE_BLOCK, x0:x0 + NOISE_BLOCK].any()]


def correlated_noise(rng: np.random.Generator, mask: np.ndarray, blocks, lag1: float) -> dict:
    """Unit-variance noise with the coadds' lag-1 correlation on the covered pixels, per
    block of ``blocks`` (0 outside the mask). White draws fill the covered pixels in raster
    order; each block is correlated with a 1-pixel halo, so empty sky costs nothing."""
    white = np.zeros(mask.shape)
    white[mask] = rng.standard_normal(int(mask.sum()))
    out = {}
    for ys, xs in blocks:
        ya, xa = max(ys.start - 1, 0), max(xs.start - 1, 0)
        block = correlate(white[ya:ys.stop + 1, xa:xs.stop + 1], lag1)
        dy, dx = ys.start - ya, xs.start - xa
        out[ys.start, xs.start] = block[dy:dy + ys.stop - ys.start, dx:dx + xs.stop - xs.start] * mask[ys, xs]
    return out


def render_brick(cfg: MockSkyConfig, brickname: str, render: dict) -> tuple[np.ndarray, np.ndarray]:
    """Rendered coadds of one brick: (image, invvar), each (3, H, W) float32 in
    nanomaggies and 1/nanomaggies^2; outside the windows and in no-coverage stripes image
    and invvar are 0. Only the blocks holding a window are computed."""
    noise_rng = brick_rngs(cfg, brickname, 4)[2]
    size = cfg.brick_size_pix
    mask = coverage(cfg, render["windows"])
    blocks = covered_blocks(mask)
    # Depth varies by ~10% across a real brick (exposure overlaps), here in steps of
    # DEPTH_CELL pixels: piecewise-constant maps compress losslessly to a few hundred kB,
    # where a smooth one quantised at q = 16 takes 5 MB per band.
    t = np.repeat(np.linspace(0.0, 2 * np.pi, -(-size // DEPTH_CELL)), DEPTH_CELL)[:size]
    image = np.zeros((len(BANDS), size, size), np.float32)
    invvar = np.zeros_like(image)
    for i, b in enumerate(BANDS):
        sigma = render["cond"][b]["sigma_pix"]
        px, py = noise_rng.uniform(0, 2 * np.pi, 2)
        fx, fy = 0.05 * np.cos(t + px), 0.05 * np.cos(t + py)
        noise = correlated_noise(noise_rng, mask, blocks, cfg.noise_lag1)
        light = _render_band((size, size), render, b)
        for ys, xs in blocks:
            ivar = (1.0 + fx[None, xs] + fy[ys, None]) / sigma**2 * mask[ys, xs]
            invvar[i, ys, xs] = ivar
            image[i, ys, xs] = (light[ys, xs] + noise[ys.start, xs.start] / np.sqrt(ivar + (ivar == 0))) * mask[ys, xs]
        if b in render["stripes"]:
            x0, x1 = render["stripes"][b]
            image[i, :, x0:x1] = 0.0
            invvar[i, :, x0:x1] = 0.0
    return image, invvar
