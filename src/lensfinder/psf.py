"""Point-spread functions shared by the mock sky and the injected arcs.

Three kinds (``inject.psf.kind``, ``sky.mock.psf``):

* ``gaussian``: circular Gaussian of FWHM PSFSIZE. No wings: on real DR10 data an arc
  blurred with it would be the one Gaussian thing in the stamp.
* ``moffat`` (the default): circular Moffat (1969), I(r) = (beta - 1) / (pi alpha^2)
  [1 + (r/alpha)^2]^-beta, FWHM = 2 alpha sqrt(2^(1/beta) - 1) set to PSFSIZE. The Legacy
  Surveys model the inner PSF of every DECam CCD as a Moffat fitted to its PSFEx image
  (legacysurvey.org/dr10/psf). beta is configurable; the default 3.5 lies between the ~2.5 of
  many measured stellar profiles and the 4.765 of Kolmogorov turbulence (Trujillo et al.
  2001, MNRAS 328, 977).
* ``pixel``: the survey's own coadd PSF image at the galaxy (one image per band, as the
  viewer's ``coadd-psf`` endpoint returns it), centred and normalised here.

Kernels are pixel-integrated, (N, B, K, K) with K = KERNEL_SIZE, normalised to unit sum.
Convolution is a batched FFT (numpy's pocketfft through scipy.fft; nothing hand-written).
The mock sky renders its galaxies as mixtures of Gaussians, so it takes the Moffat as a
mixture of Gaussians fitted once (:func:`moffat_mixture`); injection uses the exact profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from scipy.optimize import least_squares
from scipy.special import erf

from lensfinder import PIXSCALE
from lensfinder.photometry import FWHM_PER_SIGMA

PSF_KINDS = ("gaussian", "moffat", "pixel")

KERNEL_SIZE = 33
"""Kernel side, pixels (+-4.2 arcsec). A beta = 3.5 Moffat of FWHM 1.6 arcsec puts 0.8% of
its light outside that radius; the kernel is renormalised to unit sum, as the survey's own
PSF images are."""

_KERNEL_CHUNK = 256  # kernels integrated at once (bounds the oversampled profiles' memory)
_OVERSAMPLE = 5  # sub-pixels per side when integrating a Moffat over pixels (<0.1% of peak)


@dataclass(frozen=True)
class PsfConfig:
    """Which PSF blurs the injected arcs (the ``inject.psf`` config section)."""

    kind: str = "moffat"
    moffat_beta: float = 3.5
    pixel_dir: str = ""  # pixel: local coadd-psf files; empty: the cutout service (sky.cutouts)

    @classmethod
    def from_dict(cls, d: dict | None) -> "PsfConfig":
        cfg = cls(**(d or {}))
        if cfg.kind not in PSF_KINDS:
            raise ValueError(f"inject.psf.kind must be one of {PSF_KINDS}, got {cfg.kind!r}")
        if cfg.moffat_beta <= 1:
            raise ValueError(f"inject.psf.moffat_beta must be > 1 (finite flux), got {cfg.moffat_beta}")
        return cfg


def moffat_alpha(fwhm, beta: float):
    """Moffat core width alpha (same units as ``fwhm``) of a profile of the given FWHM."""
    return np.asarray(fwhm, dtype=np.float64) / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def _offsets(size: int, oversample: int) -> np.ndarray:
    """Sub-pixel centres, pixel units, of a kernel whose centre pixel is the origin."""
    return (np.arange(size * oversample) + 0.5) / oversample - 0.5 - size // 2


def gaussian_kernels(fwhm_arcsec, size: int = KERNEL_SIZE, pixscale: float = PIXSCALE) -> np.ndarray:
    """Pixel-integrated circular Gaussians, (..., size, size), unit sum, one per FWHM
    (arcsec, any shape ``...``). Exact pixel integrals (erf), separable."""
    sigma = np.asarray(fwhm_arcsec, dtype=np.float64)[..., None] / FWHM_PER_SIGMA / pixscale
    d = np.arange(size) - size // 2
    g = 0.5 * (erf((d + 0.5) / (np.sqrt(2) * sigma)) - erf((d - 0.5) / (np.sqrt(2) * sigma)))
    k = g[..., :, None] * g[..., None, :]
    return k / k.sum(axis=(-2, -1), keepdims=True)


def moffat_kernels(fwhm_arcsec, beta: float, size: int = KERNEL_SIZE, pixscale: float = PIXSCALE) -> np.ndarray:
    """Pixel-integrated circular Moffats of index ``beta``, (..., size, size), unit sum,
    one per FWHM (arcsec)."""
    fwhm = np.asarray(fwhm_arcsec, dtype=np.float64)
    # rows of a brick share a few PSF sizes: each distinct one is integrated once, and at most
    # _KERNEL_CHUNK at a time (the oversampled profiles take ~220 kB per kernel)
    distinct, inverse = np.unique(fwhm, return_inverse=True)
    sub = _offsets(size, _OVERSAMPLE)
    r2 = sub[:, None] ** 2 + sub[None, :] ** 2
    parts = []
    for i in range(0, len(distinct), _KERNEL_CHUNK):
        alpha = moffat_alpha(distinct[i:i + _KERNEL_CHUNK], beta)[:, None, None] / pixscale  # pixels
        prof = (1.0 + r2 / alpha**2) ** (-beta)  # (n, size*os, size*os)
        k = prof.reshape(-1, size, _OVERSAMPLE, size, _OVERSAMPLE).sum(axis=(-3, -1))
        parts.append(k / k.sum(axis=(-2, -1), keepdims=True))
    return np.concatenate(parts)[inverse.reshape(fwhm.shape)]


def pixel_kernel(image: np.ndarray, where: str, size: int = KERNEL_SIZE) -> np.ndarray:
    """A survey PSF image (H, W) as a (size, size) unit-sum kernel centred on its central
    pixel: the image's own centre pixel (H//2, W//2) is kept at the kernel centre, and the
    image is cropped or zero-padded symmetrically. ``where`` names the source in errors."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or not np.isfinite(img).all():
        raise ValueError(f"{where}: a PSF image must be a finite 2-d array, got shape {img.shape}")
    out = np.zeros((size, size))
    h = size // 2
    cy, cx = img.shape[0] // 2, img.shape[1] // 2
    y0, y1 = max(cy - h, 0), min(cy + h + 1, img.shape[0])
    x0, x1 = max(cx - h, 0), min(cx + h + 1, img.shape[1])
    out[h - (cy - y0):h + (y1 - cy), h - (cx - x0):h + (x1 - cx)] = img[y0:y1, x0:x1]
    total = out.sum()
    if not total > 0:
        raise ValueError(f"{where}: the PSF image sums to {total} within {size}x{size} pixels")
    return out / total


def kernels(kind: str, fwhm_arcsec: np.ndarray, beta: float = 3.5, pixel_images: np.ndarray | None = None,
            size: int = KERNEL_SIZE) -> np.ndarray:
    """(N, B, size, size) kernels of ``kind`` for FWHMs (N, B) arcsec; ``pixel`` takes the
    kernels from ``pixel_images`` (N, B, size, size), already made by :func:`pixel_kernel`."""
    if kind == "gaussian":
        return gaussian_kernels(fwhm_arcsec, size)
    if kind == "moffat":
        return moffat_kernels(fwhm_arcsec, beta, size)
    if kind == "pixel":
        if pixel_images is None:
            raise ValueError("psf kind 'pixel' needs the survey PSF images")
        return np.asarray(pixel_images, dtype=np.float64)
    raise ValueError(f"unknown psf kind {kind!r}; expected one of {PSF_KINDS}")


def convolve(images: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve (N, B, H, W) images with per-image kernels (N, B, K, K), K odd, centre at
    (K//2, K//2): the 'same'-size result (N, B, H, W). Light blurred beyond the image edge
    is lost, so pad the image first where that light matters."""
    n_y, n_x = images.shape[-2:]
    k = kernel.shape[-1]
    shape = (scipy.fft.next_fast_len(n_y + k - 1, real=True), scipy.fft.next_fast_len(n_x + k - 1, real=True))
    spec = scipy.fft.rfft2(images, s=shape) * scipy.fft.rfft2(kernel, s=shape)
    full = scipy.fft.irfft2(spec, s=shape)
    h = k // 2
    return full[..., h:h + n_y, h:h + n_x]


def _weighted_spectra(images: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(N, B, H, W//2 + 1) complex64 spectra of sum_c weights[:, b, c] images[:, c] for
    components (N, C, H, W) and weights (N, B, C). Only the components with a non-zero weight
    are transformed, and each row's sum runs over its own components in a fixed order, so a
    row's spectrum does not depend on the other rows of its batch (stamps must not:
    tests/test_inject.py)."""
    n, b, c = weights.shape
    rows, comps = np.nonzero(np.any(weights != 0, axis=1))
    parts = scipy.fft.rfft2(images[rows, comps].astype(np.float32))  # (P, H, W//2 + 1)
    spec = np.zeros((n, b) + parts.shape[1:], np.complex64)
    for k in range(c):
        sel = comps == k  # at most one entry per row
        spec[rows[sel]] += weights[rows[sel], :, k, None, None].astype(np.complex64) * parts[sel][:, None]
    return spec


def convolve_interior(images: np.ndarray, kernel: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Convolve (N, B, H, W) images with per-image kernels (N, B, K, K), K odd, and keep
    the interior (N, B, H - K + 1, W - K + 1) float64: the pixels at least K//2 from every
    edge, which see the whole kernel. A circular FFT of the image's own size is exact there
    (its wrap-around reaches only K//2 pixels in), so this needs (H, W) transforms where
    :func:`convolve` needs (H + K - 1, W + K - 1): ~2x faster for a 64-px stamp padded by 16.

    With ``weights`` (N, B, C), ``images`` are (N, C, H, W) components and band b of the
    result is the blur of sum_c weights[:, b, c] images[:, c]: the sum is taken after the
    transform (it is linear), so a row costs one transform per component that carries light
    rather than one per band.

    The transforms are float32 (pocketfft's single precision is ~3x faster on 96x96): the
    result errs by ~1e-7 of the image's peak, far below the photon noise of any arc."""
    n_y, n_x = images.shape[-2:]
    h = kernel.shape[-1] // 2
    # the kernel's centre moved to pixel (0, 0), as a circular convolution wants it
    wrapped = np.zeros(kernel.shape[:-2] + (n_y, n_x), np.float32)
    for ys, yk in ((slice(0, h + 1), slice(h, None)), (slice(n_y - h, None), slice(0, h))):
        for xs, xk in ((slice(0, h + 1), slice(h, None)), (slice(n_x - h, None), slice(0, h))):
            wrapped[..., ys, xs] = kernel[..., yk, xk]
    if weights is None:
        spec = scipy.fft.rfft2(images.astype(np.float32))
    else:
        spec = _weighted_spectra(images, weights)
    spec *= scipy.fft.rfft2(wrapped)
    return scipy.fft.irfft2(spec, s=(n_y, n_x))[..., h:n_y - h, h:n_x - h].astype(np.float64)


@lru_cache(maxsize=8)
def moffat_mixture(beta: float, n_components: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A circular Moffat of index ``beta`` and alpha = 1 as a mixture of circular Gaussians:
    (weights, variances in units of alpha^2). Weights and widths are fitted once (least
    squares on the radial profile out to 12 alpha, weighted by area); with 3 components the
    largest residual is below 0.4% of the peak for beta in 2.5-5 (tests/test_psf.py). The
    weights sum to slightly less than 1 (0.986 at beta = 2.5): the far wing is not fitted."""
    n = n_components
    r = np.linspace(0.0, 12.0, 1200)
    target = (beta - 1) / np.pi * (1 + r**2) ** (-beta)
    w = np.sqrt(r + 0.05) / target[0]

    def model(p):
        a, s2 = np.exp(p[:n]), np.exp(2 * p[n:])
        return (a / (2 * np.pi * s2) * np.exp(-0.5 * r[:, None] ** 2 / s2)).sum(axis=1)

    p0 = np.concatenate([np.log(np.full(n, 1.0 / n)), np.log(np.geomspace(0.4, 4.0, n))])
    fit = least_squares(lambda p: (model(p) - target) * w, p0, method="lm", max_nfev=20000)
    return np.exp(fit.x[:n]), np.exp(2 * fit.x[n:])
