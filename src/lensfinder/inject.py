"""Phase 4c: cut real 64x64 g,r,z stamps for manifest rows and inject lensed arcs.

For one shard of the manifest: group rows by brick, cut every row's stamp from the brick's
coadds in one gather (or fetch it from the cutout service, :mod:`lensfinder.sky.cutout_source`),
then for the positives, in batches:

1. ray-trace the arc (:mod:`lensfinder.lensing`) on a grid padded by the PSF kernel's
   half-width, so light of the source just outside the stamp is blurred in;
2. blur each band with the galaxy's PSF (:mod:`lensfinder.psf`: Moffat of FWHM PSFSIZE by
   default), crop to the stamp and scale to nanomaggies (source flux x Milky Way
   transmission);
3. decide whether the system is recognisable as a lens (:mod:`lensfinder.detectability`);
   one that is not is redrawn from the dataset's priors with the attempt number in its seed
   (:class:`lensfinder.population.Population`), up to ``max_attempts``; one never
   recognisable is skipped and counted (``not_recognisable``), so every row labelled 1 is;
4. add the arc and its photon noise (in electrons, with the coadd's pixel correlation:
   :mod:`lensfinder.noise`) to the real cutout.

Unlensed-source controls (population ``unlensed_source``, label 0) go through steps 1-3
like positives, so their systems are recognisable lenses too; step 4 then adds, instead of
the arc, copies of the source as it is without the lens (:func:`unlensed_copies`).

Stamps that cannot be made (crossing the brick edge, off the brick, NaN pixels, zero invvar,
no service data, a failed service request) are skipped and counted per reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from lensfinder import BANDS, PIXSCALE, STAMP_SIZE, psf, seeding
from lensfinder.detectability import (CRITERIA, Criteria, arc_snr, clear_of_lens, failures, geometry_ok, resolved,
                                      solve_images)
from lensfinder.lensing import Knots, LensSystems, source_components
from lensfinder.noise import DR10_LAG1, correlate
from lensfinder.photometry import mag_to_flux
from lensfinder.population import DRAWN_COLUMNS, KNOT_SLOTS, UNLENSED_SOURCE, Population
from lensfinder.sky.coadds import FLAG_NAMES, CoaddError
from lensfinder.sky.cutout_source import LocalCoadds, ServiceCutouts, check_job_skips
from lensfinder.sky.psf_images import PSF_SKIP_REASONS, LocalPsfImages, ServicePsfImages
from lensfinder.sky.psf_images import psf_kernels as survey_psf_kernels
from lensfinder.sky.shapes import ellipticity
from lensfinder.stamps import DIAGNOSTIC_FIELDS, ROW_GROUP_ROWS, STAMP_CODECS, encode_npz, encode_stamps, stamp_schema, writer_options
from lensfinder.tables import ParquetStreamWriter, write_json

ZEROPOINT_ELECTRONS = {"g": 26.610, "r": 26.818, "z": 26.484}
"""DECam AB magnitude giving 1 electron/s (legacypipe's legacyzpts ``DecamMeasurer.zp0``,
"e/sec"). The ADU zero points are 2.5 log10(gain) ~ 1.5 mag fainter (DECam gain ~4 e-/ADU);
using those would make the arc's photon noise 2x too large."""

NOT_RECOGNISABLE = "not_recognisable"
"""Skip reason of a positive (or unlensed-source control) none of whose draws was
recognisable as a lens."""
NO_LENS_REDSHIFT = "no_lens_redshift"
"""Skip reason of a positive whose lens has no redshift (``theta_e_model: velocity_dispersion``)."""
NO_EINSTEIN_RADIUS = "no_einstein_radius"
"""Skip reason of a positive whose lens has a redshift but no finite Einstein radius (e.g. a
source drawn behind no lens, or photometry the mass model cannot use)."""


COPY_SLOTS = 8  # random draws per unlensed copy kind; an SIE + shear has at most 5 images


@dataclass(frozen=True)
class InjectConfig:
    """Phase-4c settings (the ``inject`` config section)."""

    supersample: int = 4
    core_supersample: int = 32
    exptime_s: float = 90.0
    zeropoint: dict = field(default_factory=lambda: dict(ZEROPOINT_ELECTRONS))  # AB mag of 1 e-/s
    psf: psf.PsfConfig = psf.PsfConfig()
    noise_lag1: float = DR10_LAG1  # the arc noise gets the coadd's pixel correlation
    recognisable: Criteria = Criteria()
    write_npz: bool = False
    stamp_compression: str = "none"  # Parquet codec of the stamp column (see stamps.writer_options)
    batch: int = 256

    @classmethod
    def from_dict(cls, d: dict | None) -> "InjectConfig":
        d = dict(d or {})
        d["psf"] = psf.PsfConfig.from_dict(d.get("psf"))
        d["recognisable"] = Criteria.from_dict(d.get("recognisable"))
        cfg = cls(**d)
        if cfg.stamp_compression not in STAMP_CODECS:
            raise ValueError(f"inject.stamp_compression: {cfg.stamp_compression!r} is not one of {list(STAMP_CODECS)}")
        if set(cfg.zeropoint) != set(BANDS):
            raise ValueError(f"inject.zeropoint: bands {sorted(cfg.zeropoint)} must be exactly {list(BANDS)}")
        if cfg.supersample < 1 or cfg.core_supersample < 1 or cfg.exptime_s <= 0 or cfg.batch < 1:
            raise ValueError("inject: supersample, core_supersample and batch must be >= 1 and exptime_s > 0 "
                             f"(got {cfg.supersample}, {cfg.core_supersample}, {cfg.batch}, {cfg.exptime_s})")
        return cfg

    NOT_PARAMS = ("batch",)
    """Settings that cannot change a stamp (rows are rendered in batches of ``batch``, and a
    row's pixels do not depend on its batch: tests/test_inject.py), so they are not rule
    params -- changing them reruns nothing (issue 32) -- and jobs read them from the config."""

    @classmethod
    def for_job(cls, params: dict, section: dict | None) -> "InjectConfig":
        """A job's settings: its params over the config's ``inject`` section's
        :data:`NOT_PARAMS`."""
        extra = {k: v for k, v in (section or {}).items() if k in cls.NOT_PARAMS}
        return cls.from_dict({**params, **extra})


NOT_STAMP_SETTINGS = ("shards", "gallery_pairs", *InjectConfig.NOT_PARAMS)
"""Keys of the ``inject`` config section that cannot change a stamp: how the workflow splits
and shows the work, and :attr:`InjectConfig.NOT_PARAMS`. The workflow leaves them out of
rule params (changing them reruns nothing); a script that injects as phase 4c does leaves
them out of its :class:`InjectConfig`."""


def shard_bricks(bricknames: np.ndarray, n_shards: int) -> list[list[str]]:
    """Assign whole bricks to ``n_shards`` shards, balancing rows greedily (largest brick
    first, each to the shard with the fewest rows so far; ties by brick name and shard
    index, so the assignment is deterministic). Each shard's bricks are in name order."""
    names, counts = np.unique(bricknames, return_counts=True)
    load = [0] * n_shards
    shards: list[list[str]] = [[] for _ in range(n_shards)]
    for i in sorted(range(len(names)), key=lambda i: (-counts[i], names[i])):
        k = min(range(n_shards), key=lambda k: (load[k], k))
        shards[k].append(str(names[i]))
        load[k] += int(counts[i])
    return [sorted(s) for s in shards]


def _lens_systems(p: dict[str, np.ndarray], dx_pix: np.ndarray, dy_pix: np.ndarray) -> LensSystems:
    """Systems of parameters ``p`` (DRAWN_COLUMNS arrays) around a lens offset by
    (dx_pix, dy_pix) from the stamp's central pixel."""
    le1, le2 = ellipticity(p["lens_q"], p["lens_phi"])
    se1, se2 = ellipticity(p["src_q"], p["src_phi"])
    lx, ly = dx_pix * PIXSCALE, dy_pix * PIXSCALE
    return LensSystems(theta_e=p["theta_e"], lens_e1=le1, lens_e2=le2, lens_x=lx, lens_y=ly,
                       gamma1=p["gamma1"], gamma2=p["gamma2"], src_x=lx + p["src_x"], src_y=ly + p["src_y"],
                       src_re=p["src_re"], src_n=p["src_n"], src_e1=se1, src_e2=se2)


def _slots(p: dict[str, np.ndarray], name: str, k: int = KNOT_SLOTS) -> np.ndarray:
    """(N, k) parameter ``knot<i>_<name>`` of the first ``k`` knot slots."""
    return np.stack([p[f"knot{i}_{name}"] for i in range(k)], axis=1)


def _knots(p: dict[str, np.ndarray], systems: LensSystems, k: int) -> Knots | None:
    """The first ``k`` knot slots of parameters ``p`` around the sources of ``systems``
    (None for k = 0: smooth sources)."""
    if not k:
        return None
    return Knots(x=systems.src_x[:, None] + _slots(p, "x", k), y=systems.src_y[:, None] + _slots(p, "y", k),
                 flux=_slots(p, "flux", k), re=p["knot_re"])


def _band_columns(rows: pa.Table, prefix: str) -> np.ndarray:
    return np.stack([rows[f"{prefix}_{b}"].to_numpy().astype(np.float64) for b in BANDS], axis=1)


def psf_kernels(rows: pa.Table, cfg: InjectConfig, pixel_images: np.ndarray | None = None) -> np.ndarray:
    """(N, 3, K, K) PSF kernels of ``rows`` (FWHM from PSFSIZE_<band>)."""
    return psf.kernels(cfg.psf.kind, _band_columns(rows, "psfsize"), cfg.psf.moffat_beta, pixel_images)


def component_fluxes(p: dict[str, np.ndarray], rows: pa.Table) -> np.ndarray:
    """Observed (reddened) fluxes, nanomaggies, of each source's Sersic part and knots: (N,
    3 bands, 1 + KNOT_SLOTS). ``src_mag_*`` are the totals; a knot has its share of the r
    flux and its own colours, the Sersic part the rest of each band (never below 0)."""
    total = np.stack([mag_to_flux(p[f"src_mag_{b}"]) for b in BANDS], axis=1)  # (N, 3)
    knot_r = total[:, 1:2] * _slots(p, "flux")  # (N, K)
    knots = np.stack([knot_r * 10 ** (-0.4 * _slots(p, "g_r")), knot_r, knot_r * 10 ** (0.4 * _slots(p, "r_z"))],
                     axis=1)
    sersic = np.maximum(total - knots.sum(axis=2), 0.0)
    return np.concatenate([sersic[:, :, None], knots], axis=2) * _band_columns(rows, "mw_transmission")[:, :, None]


def make_arcs(p: dict[str, np.ndarray], rows: pa.Table, dx_pix, dy_pix, kernels: np.ndarray, cfg: InjectConfig):
    """Noiseless, PSF-blurred arcs of parameters ``p`` for ``rows``: (N, 3, 64, 64) float64
    nanomaggies, and each source's total r-band magnification (N,). The arc is traced on a
    grid padded by the kernel's half-width, blurred, then cropped to the stamp."""
    pad = kernels.shape[-1] // 2
    systems = _lens_systems(p, dx_pix, dy_pix)
    flux = component_fluxes(p, rows)  # (N, 3, 1 + KNOT_SLOTS)
    used = np.flatnonzero((flux[:, 1, 1:] > 0).any(axis=0))
    k = int(used[-1]) + 1 if len(used) else 0  # knot slots up to the last one in use: no tracing of empty ones
    flux = flux[:, :, :1 + k]
    comp = source_components(systems, _knots(p, systems, k), STAMP_SIZE + 2 * pad, PIXSCALE, cfg.supersample,
                             cfg.core_supersample)  # (N, 1 + k, H, W), unit flux each
    blurred = psf.convolve_interior(comp, kernels, flux)  # (N, 3, 64, 64)
    mu_total = np.einsum("nc,nc->n", flux[:, 1], comp.sum(axis=(2, 3))) / flux[:, 1].sum(axis=1)
    return blurred, mu_total


def needs_system(rows: pa.Table) -> np.ndarray:
    """(N,) bool: rows that get a drawn lens system -- positives and unlensed-source controls."""
    drawn = rows["label"].to_numpy() == 1
    if "population" in rows.column_names:
        drawn |= rows["population"].to_numpy(zero_copy_only=False) == UNLENSED_SOURCE
    return drawn


def unlensed_copies(p: dict[str, np.ndarray], rows: pa.Table, dx_pix, dy_pix, kernels: np.ndarray,
                    images: list, arcs: np.ndarray, keys: np.ndarray, cfg: InjectConfig) -> np.ndarray:
    """The control of a recognisable system: its source *without* the lens, (N, 3, 64, 64)
    nanomaggies, PSF-blurred as :func:`make_arcs`.

    One copy of the source per image of the system (``images``: per system the image
    positions x, y in arcsec and magnifications, :func:`lensfinder.detectability.solve_images`),
    at that image's distance from the lens and a random position angle, with the image's
    share (|mu_i| / sum |mu|) of the arc's flux in each band (``arcs``: the system's arcs as
    :func:`make_arcs` gives them, so knots of their own colour keep the arc's colour). A copy's size
    is the source's times |mu_i|^(v/2), v uniform in [0, 1): from the source's own size (v=0:
    all the arc's flux in a compact blob) to the image's area (v=1: the arc's surface
    brightness), so neither size nor surface brightness tells a copy from an arc -- only the
    tangential stretch, curvature and image configuration do. Flux, colour and radius
    follow the arc's, so an aperture-flux classifier cannot tell them apart (the point of
    these controls). Draws come from ``keys`` (one per row)."""
    n = len(arcs)
    mu_band = arcs.sum(axis=(2, 3)) / component_fluxes(p, rows).sum(axis=2)  # (N, 3) on the stamp
    k_max = max((len(mu) for _, _, mu in images), default=0)
    r = np.zeros((n, k_max))
    w = np.zeros((n, k_max))
    for i, (x, y, mu) in enumerate(images):
        lx, ly = dx_pix[i] * PIXSCALE, dy_pix[i] * PIXSCALE
        r[i, :len(mu)] = np.hypot(x - lx, y - ly)
        w[i, :len(mu)] = np.abs(mu) / np.abs(mu).sum()
    if k_max > COPY_SLOTS:
        raise ValueError(f"a system with {k_max} images: unlensed copies draw for at most {COPY_SLOTS}")
    # a fixed number of draws per row: a row's copies must not depend on the other rows of
    # its batch (they did when this was the batch's largest image count)
    u = seeding.uniform(keys, 2 * COPY_SLOTS)
    out = np.zeros((n, len(BANDS), STAMP_SIZE, STAMP_SIZE))
    for k in range(k_max):
        j = np.flatnonzero(w[:, k] > 0)
        phi = 2 * np.pi * u[j, k]
        scale = np.abs(np.array([images[i][2][k] for i in j])) ** (u[j, COPY_SLOTS + k] / 2)
        q = {name: v[j].copy() for name, v in p.items()}
        q["theta_e"][:], q["gamma1"][:], q["gamma2"][:] = 0.0, 0.0, 0.0  # no deflection
        q["src_x"], q["src_y"] = r[j, k] * np.cos(phi), r[j, k] * np.sin(phi)
        q["src_re"] = q["src_re"] * scale
        q["knot_re"] = q["knot_re"] * scale
        for slot in range(KNOT_SLOTS):
            q[f"knot{slot}_x"] = q[f"knot{slot}_x"] * scale
            q[f"knot{slot}_y"] = q[f"knot{slot}_y"] * scale
        copy, _ = make_arcs(q, rows.take(pa.array(j)), dx_pix[j], dy_pix[j], kernels[j], cfg)
        out[j] += copy * (w[j, k, None] * mu_band[j])[:, :, None, None]
    return out


def electrons_per_nanomaggy(rows: pa.Table, cfg: InjectConfig) -> np.ndarray:
    """(N, 3): electrons per nanomaggy in each row's coadd, NOBS x exptime x 10^(0.4 (zp - 22.5))."""
    nobs = np.maximum(_band_columns(rows, "nobs"), 1)
    return nobs * cfg.exptime_s * 10 ** (0.4 * (np.array([cfg.zeropoint[b] for b in BANDS]) - 22.5))


def arc_noise(arcs: np.ndarray, rows: pa.Table, cfg: InjectConfig) -> np.ndarray:
    """Photon noise of the arcs (nanomaggies), Gaussian with variance arc / g where g is the
    coadd's electrons per nanomaggy, with the coadd's pixel correlation (``cfg.noise_lag1``).
    Drawn from each row's own stream, so a stamp's noise does not depend on its shard."""
    gain = electrons_per_nanomaggy(rows, cfg)[:, :, None, None]
    keys = seeding.row_keys(0, "arc-noise", rows["seed"].to_numpy())
    z = correlate(seeding.normal(keys, int(np.prod(arcs.shape[1:]))).reshape(arcs.shape), cfg.noise_lag1)
    return z * np.sqrt(np.maximum(arcs, 0) / gain)


@dataclass
class Assessment:
    """Detectability of a batch of systems, every field (N,) but ``image_mu`` (N arrays)."""

    n_images: np.ndarray
    image_mu: list
    images: list  # per system (x, y, mu) of its images (lensfinder.detectability.solve_images)
    mu_total: np.ndarray
    snr: np.ndarray
    resolved: np.ndarray
    failed: dict  # criterion -> (N,) bool
    ok: np.ndarray


def assess(p, rows, dx_pix, dy_pix, arcs, mu_total, invvar, cfg: InjectConfig, every: bool = True) -> Assessment:
    """Is each system recognisable by ``cfg.recognisable``? (Resolution in the r band.)
    The lens equation is solved for every system with ``every`` (a first draw: each
    criterion's failures are counted), else only for those that pass every other criterion
    (a redraw: the rest fail anyway; a system not solved has 0 images and its
    ``multiple_images`` failure is not counted)."""
    snr = arc_snr(arcs, invvar, electrons_per_nanomaggy(rows, cfg), cfg.noise_lag1)
    fwhm = rows["psfsize_r"].to_numpy()
    res = resolved(p["theta_e"], p["src_re"], fwhm)
    clear = clear_of_lens(p["theta_e"], fwhm, cfg.recognisable)
    others = failures(np.full(len(snr), cfg.recognisable.min_images), mu_total, snr, res, cfg.recognisable, clear)
    solve = np.ones(len(snr), bool) if every else ~np.any(list(others.values()), axis=0)
    images = [(np.zeros(0), np.zeros(0), np.zeros(0))] * len(snr)
    for i, found in zip(np.flatnonzero(solve), solve_images(_lens_systems({k: v[solve] for k, v in p.items()},
                                                                          dx_pix[solve], dy_pix[solve]))):
        images[i] = found
    n_images = np.array([len(mu) for _, _, mu in images])
    failed = {**others, "multiple_images": solve & (n_images < cfg.recognisable.min_images)}
    ok = solve & ~np.any(list(failed.values()), axis=0)
    return Assessment(n_images, [mu for _, _, mu in images], images, mu_total, snr, res, failed, ok)


def _diagnostics(arcs, a: Assessment, src_flux_r, dx, dy, attempt) -> dict[str, np.ndarray]:
    f32 = np.float32
    magnification = arcs[:, 1].sum(axis=(1, 2)) / src_flux_r  # on the stamp, after the PSF
    return {
        "arc_flux_g": arcs[:, 0].sum(axis=(1, 2)).astype(f32),
        "arc_flux_r": arcs[:, 1].sum(axis=(1, 2)).astype(f32),
        "arc_flux_z": arcs[:, 2].sum(axis=(1, 2)).astype(f32),
        "magnification": magnification.astype(f32),
        "mu_total": a.mu_total.astype(f32),
        "arc_snr": a.snr.astype(f32),
        "arc_max_pixel": arcs.max(axis=(1, 2, 3)).astype(f32),
        "lens_x_pix": (STAMP_SIZE // 2 + dx).astype(f32),
        "lens_y_pix": (STAMP_SIZE // 2 + dy).astype(f32),
        "n_images": a.n_images.astype(np.int8),
        "resolved": a.resolved,
        "draw_attempt": np.full(len(arcs), attempt, np.int16),
    }


def _empty_diagnostics(n: int) -> dict:
    fill = {pa.int8(): -1, pa.int16(): -1, pa.bool_(): False, pa.float32(): np.nan}
    out = {f.name: np.full(n, fill[f.type], f.type.to_pandas_dtype()) for f in DIAGNOSTIC_FIELDS
           if f.type in fill}
    out["image_magnifications"] = [None] * n
    return out


@dataclass
class Injected:
    """What :func:`inject_positives` did to one batch of rows."""

    params: dict          # DRAWN_COLUMNS of the kept draw, (n_pos,) each
    diag: dict            # DIAGNOSTIC_FIELDS, one entry per row
    failed: np.ndarray    # row indices never recognisable
    first_failures: dict  # criterion -> how many first draws failed it
    redraws: int


def _geometry_passes(p: dict, pending: np.ndarray, fwhm_r: np.ndarray, c: Criteria, first: dict | None) -> np.ndarray:
    """Positions in ``pending`` of the draws that pass the criteria needing no rendering
    (resolved, clear of the lens); with ``first`` (the first draws), count the failures."""
    theta_e, src_re = p["theta_e"][pending], p["src_re"][pending]
    if first is not None:
        if c.resolved:
            first["resolved"] += int((~resolved(theta_e, src_re, fwhm_r)).sum())
        first["clear_of_lens"] += int((~clear_of_lens(theta_e, fwhm_r, c)).sum())
    return np.flatnonzero(geometry_ok(theta_e, src_re, fwhm_r, c))


def inject_positives(rows: pa.Table, image, invvar, dx, dy, cfg: InjectConfig, population: Population | None,
                     pixel_psfs: np.ndarray | None = None) -> Injected:
    """Add recognisable arcs (and their noise) to ``image`` (N, 3, 64, 64) in place for the
    positive ``rows`` -- for unlensed-source controls, their :func:`unlensed_copies` --,
    redrawing systems that fail ``cfg.recognisable``. ``pixel_psfs``: survey PSF kernels of
    those rows (:func:`needs_system`), in row order (``psf.kind: pixel`` only)."""
    pos = np.flatnonzero(needs_system(rows))
    unlensed = rows["label"].to_numpy()[pos] == 0
    p = {k: rows[k].to_numpy().astype(np.float64)[pos] for k in DRAWN_COLUMNS}
    diag = _empty_diagnostics(rows.num_rows)
    kern = psf_kernels(rows.take(pa.array(pos)), cfg, pixel_psfs)
    first = {k: 0 for k in CRITERIA}
    pending, redraws, c = np.arange(len(pos)), 0, cfg.recognisable
    for attempt in range(c.max_attempts):
        if attempt:
            if population is None:
                raise ValueError("a positive needs a redraw but no lens population was given")
            new = population.draw(rows.take(pa.array(pos[pending])), attempt)
            for k in DRAWN_COLUMNS:
                p[k][pending] = new[k]
            redraws += len(pending)
        ok = np.zeros(len(pending), bool)
        # geometry is cheap: a draw failing it is not rendered (nor its images solved)
        live = _geometry_passes(p, pending, rows["psfsize_r"].to_numpy()[pos[pending]], c, first if not attempt else None)
        for start in range(0, len(live), cfg.batch):
            j = pending[live[start:start + cfg.batch]]
            idx, sub, pj = pos[j], rows.take(pa.array(pos[j])), {k: v[j] for k, v in p.items()}
            arcs, mu = make_arcs(pj, sub, dx[idx], dy[idx], kern[j], cfg)
            a = assess(pj, sub, dx[idx], dy[idx], arcs, mu, invvar[idx], cfg, every=attempt == 0)
            if attempt == 0:  # the rendered draws passed the geometric criteria
                for k, v in a.failed.items():
                    first[k] += int(v.sum())
            swap = np.flatnonzero(a.ok & unlensed[j])
            if swap.size:
                keys = seeding.row_keys(0, "unlensed-copies", sub["seed"].to_numpy()[swap], attempt)
                arcs[swap] = unlensed_copies({k: v[swap] for k, v in pj.items()}, sub.take(pa.array(swap)),
                                             dx[idx[swap]], dy[idx[swap]], kern[j[swap]],
                                             [a.images[i] for i in swap], arcs[swap], keys, cfg)
            # an unlensed control's "arc" columns describe its copies
            src_r = mag_to_flux(pj["src_mag_r"]) * sub["mw_transmission_r"].to_numpy()
            for k, v in _diagnostics(arcs, a, src_r, dx[idx], dy[idx], attempt).items():
                diag[k][idx] = v
            for i, m in zip(idx, a.image_mu):
                diag["image_magnifications"][i] = m.astype(np.float32).tolist()
            good = np.flatnonzero(a.ok)
            image[idx[good]] += arcs[good] + arc_noise(arcs[good], sub.take(pa.array(good)), cfg)
            ok[live[start:start + len(j)]] = a.ok
        pending = pending[~ok]
        if not len(pending):
            break
    return Injected(p, diag, pos[pending], first, redraws)


def _survey_psfs(rows: pa.Table, psf_images, skipped: dict):
    """Kernels of the ``rows`` that get a lens system (:func:`needs_system`; ``psf.kind:
    pixel``) and which rows to keep: such a row whose PSF is missing or unusable is skipped
    and counted by reason."""
    pos = np.flatnonzero(needs_system(rows))
    if psf_images is None and len(pos):
        raise ValueError("inject.psf.kind is 'pixel' but no survey PSF images were given")
    kernels, reasons = survey_psf_kernels(psf_images, rows["ra"].to_numpy()[pos], rows["dec"].to_numpy()[pos])
    keep = np.ones(rows.num_rows, bool)
    for i, why in zip(pos, reasons):
        if why:
            skipped[why] += 1
            keep[i] = False
    return kernels[[why is None for why in reasons]], keep


def _take(keep: np.ndarray, rows: pa.Table, *arrays):
    """``rows`` and per-row ``arrays`` where ``keep``."""
    return (rows.filter(pa.array(keep)), *(a[keep] for a in arrays))


def inject_brick(rows: pa.Table, brick, cfg: InjectConfig, population: Population | None, psf_images=None):
    """Stamps for the manifest ``rows`` of one brick (``brick.cutouts(ra, dec, size)`` gives
    their :class:`~lensfinder.sky.coadds.Cutouts`; ``psf_images`` the survey PSFs for
    ``psf.kind: pixel``). Returns (kept rows, with each positive's kept draw in its parameter
    columns; their stamps; diagnostics; counts as :func:`_zero_counts`: skips per reason,
    redraws, first draws failing each criterion)."""
    cut = brick.cutouts(rows["ra"].to_numpy(), rows["dec"].to_numpy(), STAMP_SIZE)
    counts = _zero_counts()
    skipped = counts["skipped"]
    skipped.update({name: int(np.count_nonzero(cut.flags & bit)) for bit, name in FLAG_NAMES.items()})
    keep = cut.flags == 0
    rows = rows.filter(pa.array(keep))
    image, invvar = cut.image[keep].astype(np.float64), cut.invvar[keep]
    dx = (cut.x - np.floor(cut.x + 0.5))[keep]
    dy = (cut.y - np.floor(cut.y + 0.5))[keep]
    pixel_psfs = None
    if cfg.psf.kind == "pixel":
        pixel_psfs, has_psf = _survey_psfs(rows, psf_images, skipped)
        rows, image, invvar, dx, dy = _take(has_psf, rows, image, invvar, dx, dy)
    drawn = needs_system(rows)
    if not drawn.any():  # e.g. the candidates' parent-sample cutouts
        return rows, image.astype(np.float32), _empty_diagnostics(rows.num_rows), counts
    has_mass = ~drawn | np.isfinite(rows["theta_e"].to_numpy(zero_copy_only=False))
    no_z = ~np.isfinite(rows["z_lens"].to_numpy(zero_copy_only=False).astype(float)) if "z_lens" in rows.column_names \
        else np.ones(rows.num_rows, bool)
    skipped[NO_LENS_REDSHIFT] = int((~has_mass & no_z).sum())
    skipped[NO_EINSTEIN_RADIUS] = int((~has_mass & ~no_z).sum())
    if pixel_psfs is not None:  # one kernel per drawn row, in row order
        pixel_psfs = pixel_psfs[has_mass[drawn]]
    rows, image, invvar, dx, dy = _take(has_mass, rows, image, invvar, dx, dy)
    pos = np.flatnonzero(needs_system(rows))
    done = inject_positives(rows, image, invvar, dx, dy, cfg, population, pixel_psfs)
    for k in DRAWN_COLUMNS:
        col = rows[k].to_numpy().astype(np.float64)
        col[pos] = done.params[k]
        rows = rows.set_column(rows.schema.get_field_index(k), rows.schema.field(k), pa.array(col.astype(
            rows.schema.field(k).type.to_pandas_dtype())))
    skipped[NOT_RECOGNISABLE] = len(done.failed)
    counts["redraws"], counts["first_draw_failures"] = done.redraws, done.first_failures
    kept = np.setdiff1d(np.arange(rows.num_rows), done.failed)
    diag = {k: (np.asarray(v)[kept] if k != "image_magnifications" else [v[i] for i in kept])
            for k, v in done.diag.items()}
    return rows.take(pa.array(kept)), image[kept].astype(np.float32), diag, counts


SKIP_REASONS = (*FLAG_NAMES.values(), *PSF_SKIP_REASONS, NO_LENS_REDSHIFT, NO_EINSTEIN_RADIUS, NOT_RECOGNISABLE)


def _zero_counts() -> dict:
    """The counts every brick, shard and dataset report carries, all zero."""
    return {"skipped": {name: 0 for name in SKIP_REASONS}, "redraws": 0,
            "first_draw_failures": {k: 0 for k in CRITERIA}}


def _add_counts(total: dict, part: dict) -> None:
    """Add ``part``'s counts (as :func:`_zero_counts`) to ``total`` in place."""
    total["redraws"] += part["redraws"]
    for key in ("skipped", "first_draw_failures"):
        for k, v in part[key].items():
            total[key][k] += v


def inject_shard(manifest_path, source: LocalCoadds | ServiceCutouts, shard: int, n_shards: int, out_path,
                 report_path, population: Population | None, cfg: InjectConfig = InjectConfig(),
                 psf_images: LocalPsfImages | ServicePsfImages | None = None) -> dict:
    """Phase-4c rule body for shard ``shard`` (0-based) of ``n_shards``: write its stamps
    Parquet (row groups of <= ROW_GROUP_ROWS) and a report with skips per reason and the
    redraws of systems that were not recognisable. Pixels come from ``source`` (local coadd
    bricks or the cutout service); redraws from ``population`` (the dataset's priors; None
    for a manifest without positives, as the candidates'); survey PSFs, for ``psf.kind:
    pixel``, from ``psf_images``. Memory holds one brick's coadds and one batch of rows at a
    time."""
    t0 = time.perf_counter()
    manifest = pq.ParquetFile(manifest_path)
    bricks = shard_bricks(manifest.read(columns=["brickname"])["brickname"].to_numpy(zero_copy_only=False),
                          n_shards)[shard]
    schema = stamp_schema(manifest.schema_arrow, cfg.write_npz)
    report = {"shard": shard, "n_shards": n_shards, "bricks": bricks, "cutouts_resampled": source.resampled,
              "n_rows": 0, "n_written": 0,
              "n_positives_written": 0, "n_unlensed_controls_written": 0, "n_skipped": 0, **_zero_counts()}
    manifest_ds = ds.dataset(manifest_path, format="parquet")
    with ParquetStreamWriter(out_path, schema, **writer_options(schema, cfg.stamp_compression)) as writer:
        for name in bricks:
            try:
                brick = source.brick(name)
            except CoaddError as exc:
                raise CoaddError(f"{out_path} (shard {shard + 1} of {n_shards}): {exc}") from exc
            # The brick's manifest rows stream in batches of at most ROW_GROUP_ROWS: memory is
            # one brick's coadds plus one batch of stamps, whatever the number of rows.
            # (single-threaded scan: batches come in file order, so stamps are reproducible)
            for batch in manifest_ds.to_batches(filter=pc.field("brickname") == name, batch_size=ROW_GROUP_ROWS,
                                                use_threads=False):
                rows = pa.Table.from_batches([batch])
                if rows.num_rows == 0:
                    continue
                report["n_rows"] += rows.num_rows
                kept, stamps, diag, counts = inject_brick(rows, brick, cfg, population, psf_images)
                _add_counts(report, counts)
                report["n_skipped"] += rows.num_rows - len(kept)
                cols = {n: kept[n] for n in kept.column_names}
                cols["stamp"] = encode_stamps(stamps)
                if cfg.write_npz:
                    cols["stamp_npz"] = encode_npz(stamps)
                cols.update({f.name: pa.array(diag[f.name], f.type) for f in DIAGNOSTIC_FIELDS})
                cols["resolved"] = pa.array(diag["resolved"], mask=kept["label"].to_numpy() == 0)  # null: no lens
                cols["cutout_resampled"] = pa.array(np.full(len(kept), source.resampled))
                writer.write(pa.Table.from_pydict({f.name: cols[f.name] for f in schema}, schema=schema))
                report["n_written"] += len(kept)
                report["n_positives_written"] += int(pc.sum(kept["label"]).as_py() or 0)
                report["n_unlensed_controls_written"] += int((needs_system(kept) & (kept["label"].to_numpy() == 0)).sum())
            del brick
    report["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(report, report_path)
    check_job_skips(report, source.max_failure_fraction, f"{out_path} (shard {shard + 1} of {n_shards})")
    return report


def empty_shard_note(total: dict) -> str | None:
    """A line for the console where some shards held no brick (:func:`shard_bricks` never
    splits a brick, so shards beyond the manifest's bricks are jobs that start, read the
    manifest and write nothing: seconds each, on a small part of the sky)."""
    if not total["n_empty_shards"]:
        return None
    return (f"{total['n_empty_shards']} of {total['n_shards']} phase-4c shards held no brick (the manifest spans "
            f"{total['n_bricks']} bricks): set inject.shards to at most {max(total['n_bricks'], 1)} for this sky")


def gather_reports(reports: list[dict], out_path) -> dict:
    """Sum shard reports into one dataset report (written to ``out_path``); fails where
    no shard wrote a stamp, naming the skips."""
    total = {"n_shards": len(reports), "n_rows": 0, "n_written": 0, "n_positives_written": 0,
             "n_unlensed_controls_written": 0, "n_skipped": 0, **_zero_counts(), "seconds": 0.0}
    for r in reports:
        for k in ("n_rows", "n_written", "n_positives_written", "n_unlensed_controls_written", "n_skipped", "seconds"):
            total[k] += r[k]
        _add_counts(total, r)
    if total["n_written"] + total["n_skipped"] != total["n_rows"]:
        raise RuntimeError(f"shard reports do not add up: {total}")
    if total["n_written"] == 0:  # nothing downstream may train or score on an empty dataset
        reasons = {k: v for k, v in total["skipped"].items() if v}
        raise RuntimeError(f"{out_path}: no shard wrote a stamp ({total['n_rows']} manifest rows; skipped: {reasons})")
    total["n_bricks"] = sum(len(r["bricks"]) for r in reports)
    total["n_empty_shards"] = sum(not r["bricks"] for r in reports)
    total["per_shard"] = reports
    write_json(total, out_path)
    return total
