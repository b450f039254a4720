"""The survey's own PSF at each galaxy, for ``inject.psf.kind: pixel``.

DR10 PSFs vary from CCD to CCD; the coadd PSF at a position (the inverse-variance weighted
PSFEx models of the exposures there) is what the viewer's ``coadd-psf`` endpoint returns,
one HDU per band. SLSim and HOLISMOKES blur injected arcs with such a pixelized kernel at the
cutout centre. Two sources, both in that format:

* a local directory holding one file per galaxy, named :data:`PSF_FILE` (ra, dec to 7
  decimals, as in the viewer request: save
  ``coadd-psf/?ra=<ra>&dec=<dec>&layer=ls-dr10-south&bands=grz`` under that name);
* the cutout-service client (:meth:`~lensfinder.sky.cutout_service.CutoutService.fetch_psf`),
  cached on disk like the cutouts.

A galaxy whose PSF cannot be had is skipped by phase 4c and counted (``no_psf``), never
blurred with another PSF.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lensfinder import BANDS
from lensfinder.psf import KERNEL_SIZE, PsfConfig, pixel_kernel
from lensfinder.sky.cutout_service import CutoutService, CutoutServiceError, NoData, parse_coadd_psf
from lensfinder.sky.cutout_source import CutoutSourceConfig

PSF_FILE = "coadd-psf_{ra:.7f}_{dec:.7f}.fits"
PSF_SKIP_REASONS = ("no_psf", "bad_psf")
log = logging.getLogger(__name__)


class LocalPsfImages:
    """coadd-psf files in ``directory``, one per galaxy (:data:`PSF_FILE`)."""

    def __init__(self, directory):
        self.directory = Path(directory)

    def fetch(self, ra: float, dec: float) -> dict[str, np.ndarray]:
        path = self.directory / PSF_FILE.format(ra=ra, dec=dec)
        if not path.exists():
            raise NoData(f"{path}: no PSF file for ra={ra:.7f}, dec={dec:.7f}")
        return parse_coadd_psf(str(path), path.read_bytes())


class ServicePsfImages:
    """The viewer's ``coadd-psf`` through the cached cutout-service client."""

    def __init__(self, service: CutoutService):
        self.service = service

    def fetch(self, ra: float, dec: float) -> dict[str, np.ndarray]:
        return self.service.fetch_psf(ra, dec)


def psf_kernels(images: LocalPsfImages | ServicePsfImages, ra, dec, concurrency: int = 4):
    """Unit-sum kernels (N, 3, K, K) of the g, r, z PSF images at (ra, dec) degrees, and per
    position None or why there is none: 'no_psf' (no file, no CCDs) or 'bad_psf' (a file
    or response that is not a usable PSF image; the error names it)."""
    ra, dec = np.atleast_1d(ra).astype(float), np.atleast_1d(dec).astype(float)

    def one(pos):
        where = f"PSF at ra={pos[0]:.7f}, dec={pos[1]:.7f}"
        try:
            got = images.fetch(*pos)
            missing = [b for b in BANDS if b not in got]
            if missing:
                raise CutoutServiceError(f"{where}: no band(s) {missing}")
            return np.stack([pixel_kernel(got[b], f"{where}, band {b}") for b in BANDS]), None
        except NoData as exc:
            log.warning("%s", exc)
            return None, "no_psf"
        except (CutoutServiceError, ValueError) as exc:
            log.warning("%s", exc)
            return None, "bad_psf"

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        out = list(pool.map(one, zip(ra.tolist(), dec.tolist())))
    kernels = np.zeros((len(ra), len(BANDS), KERNEL_SIZE, KERNEL_SIZE))
    for i, (k, _) in enumerate(out):
        if k is not None:
            kernels[i] = k
    return kernels, [why for _, why in out]


def open_psf_images(cfg: PsfConfig, cutouts: CutoutSourceConfig | None) -> LocalPsfImages | ServicePsfImages | None:
    """Where ``psf.kind: pixel`` gets its PSFs: ``pixel_dir`` if set, else the cutout
    service of ``cutouts`` (the ``sky.cutouts`` section). None for the analytic kinds."""
    if cfg.kind != "pixel":
        return None
    if cfg.pixel_dir:
        return LocalPsfImages(cfg.pixel_dir)
    if cutouts is None:
        raise ValueError("inject.psf.kind is 'pixel' with no pixel_dir: the cutout service settings are needed")
    return ServicePsfImages(cutouts.service())
