"""Where phase 4c and the candidates get their pixels: local DR10 coadd bricks, or the
Legacy Surveys cutout service (``sky.cutouts.source: local | service``).

Both give the same :class:`~lensfinder.sky.coadds.Cutouts` per brick of manifest rows:
(N, 3, 64, 64) image and invvar, per-stamp skip flags, and the target's position so the
injection knows its sub-pixel offset. Local cutouts put the target within half a pixel of
pixel (32, 32) (the brick's own grid); service cutouts put it exactly there, resampled
(Lanczos-3) by the service onto a grid centred on the target -- a domain shift from native
pixels (correlated noise) that the stamps record in ``cutout_resampled``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lensfinder import STAMP_SIZE
from lensfinder.sky.coadds import (
    FLAG_NAN, FLAG_NO_COVERAGE, FLAG_NO_DATA, FLAG_OFF_BRICK, FLAG_SERVICE_ERROR, CoaddBrick, Cutouts,
)
from lensfinder.sky.cutout_service import DEFAULT_PSF_URL, DEFAULT_URL, LAYER, CutoutService

REASON_FLAGS = {"no_data": FLAG_NO_DATA, "service_error": FLAG_SERVICE_ERROR, "invalid_position": FLAG_OFF_BRICK}


CUTOUT_SOURCES = ("local", "service")  # local coadd bricks, or the Legacy Surveys viewer


@dataclass(frozen=True)
class CutoutSourceConfig:
    """The ``sky.cutouts`` config section. ``cache_dir`` empty: ``<results_dir>/cutout_cache``."""
    source: str = "local"
    url: str = DEFAULT_URL
    psf_url: str = DEFAULT_PSF_URL
    layer: str = LAYER
    cache_dir: str = ""
    min_interval_s: float = 0.5
    max_concurrent: int = 4
    max_retries: int = 5
    timeout_s: float = 60.0
    max_retry_after_s: float = 120.0
    max_failure_fraction: float = 0.05  # a job whose cutouts fail (after retries) more often than this fails

    @classmethod
    def from_dict(cls, d: dict | None, results_dir: str = "results") -> "CutoutSourceConfig":
        d = dict(d or {})
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"sky.cutouts: unknown key(s) {unknown}")
        cfg = cls(**d)
        if cfg.source not in CUTOUT_SOURCES:
            raise ValueError(f"sky.cutouts.source: {cfg.source!r} is not one of {list(CUTOUT_SOURCES)}")
        if not 0.0 <= cfg.max_failure_fraction <= 1.0:
            raise ValueError(f"sky.cutouts.max_failure_fraction: {cfg.max_failure_fraction!r} is not in [0, 1]")
        return cfg if cfg.cache_dir else dataclasses.replace(cfg, cache_dir=f"{results_dir}/cutout_cache")

    IDENTITY = ("source", "url", "psf_url", "layer")
    """The settings that decide a cutout's pixels. The others -- request rate, concurrency,
    retries, timeouts, cache location, failure ceiling -- are politeness and robustness:
    they cannot change a byte of a stamp (a retried or cached cutout is the same file)."""

    def as_params(self) -> dict:
        """What the rules pass as params: only :data:`IDENTITY` (local cutouts: none of it),
        so changing a politeness setting reruns nothing; jobs read those from the config's
        ``sky.cutouts`` section instead (:meth:`for_job`)."""
        return {"source": "local"} if self.source == "local" else {k: getattr(self, k) for k in self.IDENTITY}

    @classmethod
    def for_job(cls, params: dict, section: dict | None, results_dir: str) -> "CutoutSourceConfig":
        """A job's settings: its ``params`` (:meth:`as_params`) over the config's
        ``sky.cutouts`` ``section`` (politeness; not params, by design -- issue 28)."""
        return cls.from_dict({**(section or {}), **params}, results_dir)

    def service(self) -> CutoutService:
        return CutoutService(cache_dir=Path(self.cache_dir), base_url=self.url, psf_url=self.psf_url,
                             layer=self.layer, min_interval_s=self.min_interval_s, max_concurrent=self.max_concurrent,
                             max_retries=self.max_retries, timeout_s=self.timeout_s,
                             max_retry_after_s=self.max_retry_after_s)


class LocalCoadds:
    """Cutouts from local coadd bricks in DR10 layout under ``coadd_dir``."""
    resampled = False
    max_failure_fraction = 0.0  # local reads fail loudly (CoaddError); nothing is skipped as a service error

    def __init__(self, coadd_dir):
        self.coadd_dir = coadd_dir

    def brick(self, brickname: str) -> CoaddBrick:
        return CoaddBrick(self.coadd_dir, brickname)


class ServiceCutouts:
    """Cutouts from the cutout service; one request per stamp (cached), bricks irrelevant."""
    resampled = True

    def __init__(self, service: CutoutService, progress: bool = False, max_failure_fraction: float = 0.05):
        self.service, self.progress = service, progress
        self.max_failure_fraction = max_failure_fraction

    def brick(self, brickname: str) -> "ServiceCutouts":
        return self

    def cutouts(self, ra, dec, size: int = STAMP_SIZE) -> Cutouts:
        """(N, 3, size, size) cutouts of the service, the target on pixel (size//2, size//2)."""
        ra, dec = np.atleast_1d(ra).astype(float), np.atleast_1d(dec).astype(float)
        n = ra.size
        image = np.full((n, 3, size, size), np.nan, np.float32)
        invvar = np.zeros((n, 3, size, size), np.float32)
        flags = np.zeros(n, np.int32)
        results, reasons = self.service.fetch_many(zip(ra.tolist(), dec.tolist()), progress=self.progress)
        for i, (got, why) in enumerate(zip(results, reasons)):
            if got is None:
                flags[i] |= REASON_FLAGS[why]
                continue
            image[i], invvar[i] = got.image, got.invvar
        fetched = ~(flags.astype(bool))
        flags[fetched & ~np.isfinite(image).all(axis=(1, 2, 3))] |= FLAG_NAN
        flags[fetched & (invvar <= 0).any(axis=(1, 2, 3))] |= FLAG_NO_COVERAGE
        centre = np.full(n, float(size // 2))
        return Cutouts(image=image, invvar=invvar, flags=flags, x=centre, y=centre)


def open_cutout_source(cfg: CutoutSourceConfig, coadd_dir) -> LocalCoadds | ServiceCutouts:
    """The configured source: local bricks under ``coadd_dir`` or the service."""
    if cfg.source == "local":
        return LocalCoadds(coadd_dir)
    return ServiceCutouts(cfg.service(), progress=True, max_failure_fraction=cfg.max_failure_fraction)


def check_job_skips(report: dict, max_failure_fraction: float, where: str) -> None:
    """Fail a job whose pixel source is dead: more cutouts lost to service errors (after
    every retry) than ``max_failure_fraction``, or every row lost to the source (service
    error or no data). A shard whose few rows all sit at a brick edge or on a coverage gap
    is not a dead source and passes. ``report``: a phase-4c shard report (n_rows, n_written,
    skipped per reason)."""
    n_rows, skipped = report["n_rows"], report["skipped"]
    lost = skipped.get("service_error", 0)
    if n_rows and lost > max_failure_fraction * n_rows:
        raise RuntimeError(f"{where}: {lost} of {n_rows} cutouts failed at the cutout service after every retry "
                           f"(sky.cutouts.max_failure_fraction {max_failure_fraction}); the log names the requests")
    if n_rows and report["n_written"] == 0 and lost + skipped.get("no_data", 0) == n_rows:
        reasons = {k: v for k, v in skipped.items() if v}
        raise RuntimeError(f"{where}: none of {n_rows} rows gave a stamp (skipped: {reasons})")
