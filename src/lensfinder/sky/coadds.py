"""64x64 grz cutouts from local DR10 coadd bricks, located with the bricks' FITS WCS.

A brick is read once and many cutouts are cut from it in one vectorised gather, so
phase 4c pays the (fpack-decompression) cost per brick, not per galaxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from lensfinder import BANDS, STAMP_SIZE
from lensfinder.sky.bricks import coadd_path

FLAG_EDGE = 1
"""The stamp crosses the brick edge; pixels outside the brick are NaN (invvar 0)."""
FLAG_OFF_BRICK = 2
"""The requested centre is not on this brick at all; the stamp is all NaN."""
FLAG_NAN = 4
"""The stamp has NaN pixels inside the brick (bad / masked data in the coadd)."""
FLAG_NO_COVERAGE = 8
"""The stamp has in-brick pixels with zero inverse variance (no exposure)."""

FLAG_NO_DATA = 16
"""The cutout service has no pixels there (outside its footprint, or all NaN)."""
FLAG_SERVICE_ERROR = 32
"""The cutout service could not deliver this cutout (after its retries)."""

FLAG_NAMES = {FLAG_EDGE: "edge", FLAG_OFF_BRICK: "off_brick", FLAG_NAN: "nan_pixels", FLAG_NO_COVERAGE: "zero_invvar",
              FLAG_NO_DATA: "no_data", FLAG_SERVICE_ERROR: "service_error"}


class CoaddError(ValueError):
    """A coadd file that cannot serve cutouts; the message names the file."""


@dataclass
class Cutouts:
    """A batch of N cutouts.

    image:  (N, 3, S, S) float32, nanomaggies per pixel, bands g, r, z
    invvar: (N, 3, S, S) float32, 1/nanomaggies^2 per pixel (0 where no data)
    flags:  (N,) int32 bitmask of FLAG_* values (0 = clean)
    x, y:   (N,) float64 0-based pixel position of the requested centre in the brick
    """

    image: np.ndarray
    invvar: np.ndarray
    flags: np.ndarray
    x: np.ndarray
    y: np.ndarray


def flag_counts(flags: np.ndarray) -> dict[str, int]:
    """Number of stamps carrying each flag, by flag name (a stamp may carry several)."""
    flags = np.asarray(flags)
    return {name: int(np.count_nonzero(flags & bit)) for bit, name in FLAG_NAMES.items()}


def _read_image(path: Path) -> tuple[np.ndarray, fits.Header]:
    if not path.exists():
        raise CoaddError(f"{path}: coadd file not found")
    try:
        with fits.open(path) as hdul:
            hdu = next((h for h in hdul if h.data is not None and getattr(h.data, "ndim", 0) == 2), None)
            if hdu is None:
                raise CoaddError(f"{path}: no 2-d image HDU")
            return np.asarray(hdu.data, dtype=np.float32), hdu.header.copy()
    except CoaddError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise CoaddError(f"{path}: not a readable FITS image ({exc})") from exc


def _celestial_wcs(path: Path, header: fits.Header) -> WCS:
    try:
        wcs = WCS(header, naxis=2)
    except Exception as exc:  # astropy raises several types for malformed WCS keywords
        raise CoaddError(f"{path}: invalid WCS in header ({exc})") from exc
    if not wcs.has_celestial or "TAN" not in "".join(wcs.wcs.ctype):
        raise CoaddError(f"{path}: header has no celestial TAN WCS (CTYPE={list(wcs.wcs.ctype)})")
    return wcs


class CoaddBrick:
    """The image and invvar coadds of one brick in bands g, r, z, with its WCS.

    Holds 6 float32 images in memory (about 300 MB for a real 3600x3600 DR10 brick).
    """

    def __init__(self, coadd_dir: str | Path, brickname: str, bands: tuple[str, ...] = BANDS):
        self.brickname = brickname
        self.bands = bands
        images, invvars = [], []
        wcs = None
        for band in bands:
            ipath = coadd_path(coadd_dir, brickname, "image", band)
            vpath = coadd_path(coadd_dir, brickname, "invvar", band)
            img, hdr = _read_image(ipath)
            ivar, _ = _read_image(vpath)
            band_wcs = _celestial_wcs(ipath, hdr)
            if ivar.shape != img.shape:
                raise CoaddError(f"{vpath}: shape {ivar.shape} differs from its image {img.shape}")
            if wcs is None:
                wcs, shape = band_wcs, img.shape
            elif img.shape != shape or not np.allclose(band_wcs.wcs.crval, wcs.wcs.crval):
                raise CoaddError(f"{ipath}: pixel grid differs from band {bands[0]} of the same brick")
            images.append(img)
            invvars.append(ivar)
        self.wcs = wcs
        self.shape = shape
        # kept as one array per band: stacking them copied ~300 MB per brick for nothing
        # (~8% of a phase-4c shard of 3600-px bricks)
        self.image_bands, self.invvar_bands = images, invvars

    @property
    def image(self) -> np.ndarray:
        """(B, ny, nx) float32 image coadds (a new stacked copy)."""
        return np.stack(self.image_bands)

    @property
    def invvar(self) -> np.ndarray:
        """(B, ny, nx) float32 inverse-variance coadds (a new stacked copy)."""
        return np.stack(self.invvar_bands)

    def world_to_pixel(self, ra, dec) -> tuple[np.ndarray, np.ndarray]:
        """0-based (x, y) pixel coordinates of (ra, dec) degrees."""
        x, y = self.wcs.all_world2pix(np.atleast_1d(ra), np.atleast_1d(dec), 0)
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def cutouts(self, ra, dec, size: int = STAMP_SIZE) -> Cutouts:
        """Cut ``size`` x ``size`` stamps centred on (ra, dec) degrees (arrays of N).

        The object lands on pixel (size//2, size//2) to within half a pixel. Pixels outside
        the brick are NaN with invvar 0 and the stamp is flagged :data:`FLAG_EDGE`.
        """
        x, y = self.world_to_pixel(ra, dec)
        n = x.size
        ny, nx = self.shape
        ok = np.isfinite(x) & np.isfinite(y)
        xc = np.where(ok, np.floor(x + 0.5), -10 * size).astype(np.int64)
        yc = np.where(ok, np.floor(y + 0.5), -10 * size).astype(np.int64)
        half = size // 2
        offs = np.arange(size) - half
        cols = xc[:, None] + offs[None, :]  # (N, S)
        rows = yc[:, None] + offs[None, :]
        col_in = (cols >= 0) & (cols < nx)
        row_in = (rows >= 0) & (rows < ny)
        inside = row_in[:, :, None] & col_in[:, None, :]  # (N, S, S)
        rr = np.clip(rows, 0, ny - 1)[:, :, None]
        cc = np.clip(cols, 0, nx - 1)[:, None, :]
        # One fancy-index gather per band for all stamps: (N, B, S, S).
        image = np.stack([band[rr, cc] for band in self.image_bands], axis=1)
        invvar = np.stack([band[rr, cc] for band in self.invvar_bands], axis=1)
        outside = ~inside[:, None, :, :]
        image[np.broadcast_to(outside, image.shape)] = np.nan
        invvar[np.broadcast_to(outside, invvar.shape)] = 0.0

        flags = np.zeros(n, dtype=np.int32)
        on_brick = ok & (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
        flags[~inside.all(axis=(1, 2))] |= FLAG_EDGE
        flags[~on_brick] |= FLAG_OFF_BRICK
        in_b = np.broadcast_to(inside[:, None], image.shape)
        flags[(np.isnan(image) & in_b).any(axis=(1, 2, 3))] |= FLAG_NAN
        flags[((invvar <= 0) & in_b).any(axis=(1, 2, 3))] |= FLAG_NO_COVERAGE
        return Cutouts(image=image, invvar=invvar, flags=flags, x=x, y=y)
