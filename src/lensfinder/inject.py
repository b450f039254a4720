"""Phase 4c: cut real 64x64 g,r,z stamps for manifest rows and inject lensed arcs.

For one shard of the manifest: group rows by brick, cut every row's stamp from the brick's
coadds in one gather (or fetch it from the cutout service, :mod:`lensfinder.sky.cutout_source`), ray-trace the positives' arcs in batches (:mod:`lensfinder.lensing`),
blur each band with the galaxy's own PSF (Gaussian of FWHM PSFSIZE_<band>), scale to
nanomaggies (source flux x Milky Way transmission), add the arc's Poisson noise and add it
to the real cutout. Stamps that cannot be made (crossing the brick edge, off the brick,
NaN pixels, zero invvar, no service data, a failed service request) are skipped and counted
per reason in the shard report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from lensfinder import BANDS, PIXSCALE, STAMP_SIZE, seeding
from lensfinder.lensing import LensSystems, convolve_gaussian_psf, lensed_images
from lensfinder.sky.shapes import ellipticity
from lensfinder.photometry import mag_to_flux
from lensfinder.sky.coadds import FLAG_NAMES, CoaddError
from lensfinder.sky.cutout_source import LocalCoadds, ServiceCutouts
from lensfinder.stamps import DIAGNOSTIC_FIELDS, ROW_GROUP_ROWS, encode_npz, encode_stamps, stamp_schema, writer_options
from lensfinder.tables import ParquetStreamWriter, write_json


@dataclass(frozen=True)
class InjectConfig:
    """Phase-4c settings (the ``inject`` config section)."""

    supersample: int = 4
    core_supersample: int = 32
    exptime_s: float = 90.0
    # Approximate DECam AB zero points (mag giving 1 e-/s), for the arc's photon noise.
    zeropoint: dict = field(default_factory=lambda: {"g": 25.08, "r": 25.29, "z": 24.92})
    write_npz: bool = False
    stamp_compression: str = "none"  # Parquet codec of the stamp column (see stamps.writer_options)
    batch: int = 256

    @classmethod
    def from_dict(cls, d: dict | None) -> "InjectConfig":
        return cls(**(d or {}))


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


def _lens_systems(rows: pa.Table, dx_pix: np.ndarray, dy_pix: np.ndarray) -> LensSystems:
    col = lambda name: rows[name].to_numpy().astype(np.float64)  # noqa: E731
    le1, le2 = ellipticity(col("lens_q"), col("lens_phi"))
    se1, se2 = ellipticity(col("src_q"), col("src_phi"))
    lx, ly = dx_pix * PIXSCALE, dy_pix * PIXSCALE
    return LensSystems(theta_e=col("theta_e"), lens_e1=le1, lens_e2=le2, lens_x=lx, lens_y=ly,
                       gamma1=col("gamma1"), gamma2=col("gamma2"), src_x=lx + col("src_x"), src_y=ly + col("src_y"),
                       src_re=col("src_re"), src_n=col("src_n"), src_e1=se1, src_e2=se2)


def make_arcs(rows: pa.Table, dx_pix: np.ndarray, dy_pix: np.ndarray, cfg: InjectConfig):
    """Noiseless, PSF-convolved arcs for positive ``rows``: (N, 3, 64, 64) float64
    nanomaggies, and the in-stamp magnification (N,). ``dx_pix, dy_pix``: the lens centre's
    offset from the stamp's central pixel."""
    unit = lensed_images(_lens_systems(rows, dx_pix, dy_pix), STAMP_SIZE, PIXSCALE, cfg.supersample,
                         core_supersample=cfg.core_supersample)
    flux = np.stack([mag_to_flux(rows[f"src_mag_{b}"].to_numpy()) * rows[f"mw_transmission_{b}"].to_numpy()
                     for b in BANDS], axis=1)  # observed (reddened) source flux, nanomaggies
    fwhm = np.stack([rows[f"psfsize_{b}"].to_numpy() for b in BANDS], axis=1).astype(np.float64)
    arcs = convolve_gaussian_psf(unit[:, None] * flux[:, :, None, None], fwhm, PIXSCALE)
    return arcs, unit.sum(axis=(1, 2))


def arc_noise(arcs: np.ndarray, rows: pa.Table, cfg: InjectConfig) -> np.ndarray:
    """Photon noise of the arcs (nanomaggies), Gaussian with variance arc / g where g is
    the coadd's electrons per nanomaggy (NOBS x exptime x 10^(0.4 (zp - 22.5))). Drawn from
    each row's own stream, so a stamp's noise does not depend on its shard."""
    n = len(arcs)
    gain = np.stack([np.maximum(rows[f"nobs_{b}"].to_numpy(), 1) * cfg.exptime_s * 10 ** (0.4 * (cfg.zeropoint[b] - 22.5))
                     for b in BANDS], axis=1)[:, :, None, None]
    keys = seeding.row_keys(0, "arc-noise", rows["seed"].to_numpy())
    z = seeding.normal(keys, int(np.prod(arcs.shape[1:]))).reshape(arcs.shape)
    return z * np.sqrt(np.maximum(arcs, 0) / gain)[:n]


def _diagnostics(arcs, invvar, magnification, dx, dy) -> dict[str, np.ndarray]:
    f32 = np.float32
    return {
        "arc_flux_g": arcs[:, 0].sum(axis=(1, 2)).astype(f32),
        "arc_flux_r": arcs[:, 1].sum(axis=(1, 2)).astype(f32),
        "arc_flux_z": arcs[:, 2].sum(axis=(1, 2)).astype(f32),
        "magnification": magnification.astype(f32),
        "arc_snr": np.sqrt((arcs**2 * invvar).sum(axis=(1, 2, 3))).astype(f32),
        "arc_max_pixel": arcs.max(axis=(1, 2, 3)).astype(f32),
        "lens_x_pix": (STAMP_SIZE // 2 + dx).astype(f32),
        "lens_y_pix": (STAMP_SIZE // 2 + dy).astype(f32),
    }


def inject_brick(rows: pa.Table, brick, cfg: InjectConfig):
    """Stamps for the manifest ``rows`` of one brick (``brick.cutouts(ra, dec, size)`` gives
    their :class:`~lensfinder.sky.coadds.Cutouts`). Returns (kept rows with stamps and
    diagnostics as a table, skip counts per reason)."""
    cut = brick.cutouts(rows["ra"].to_numpy(), rows["dec"].to_numpy(), STAMP_SIZE)
    skipped = {name: int(np.count_nonzero(cut.flags & bit)) for bit, name in FLAG_NAMES.items()}
    keep = cut.flags == 0
    rows = rows.filter(pa.array(keep))
    image, invvar = cut.image[keep].astype(np.float64), cut.invvar[keep]
    dx = (cut.x - np.floor(cut.x + 0.5))[keep]
    dy = (cut.y - np.floor(cut.y + 0.5))[keep]
    diag = {f.name: np.full(len(rows), np.nan, np.float32) for f in DIAGNOSTIC_FIELDS}
    pos = np.flatnonzero(rows["label"].to_numpy() == 1)
    for start in range(0, len(pos), cfg.batch):
        idx = pos[start:start + cfg.batch]
        sub = rows.take(pa.array(idx))
        arcs, mu = make_arcs(sub, dx[idx], dy[idx], cfg)
        image[idx] += arcs + arc_noise(arcs, sub, cfg)
        for k, v in _diagnostics(arcs, invvar[idx], mu, dx[idx], dy[idx]).items():
            diag[k][idx] = v
    return rows, image.astype(np.float32), diag, skipped


def inject_shard(manifest_path, source: LocalCoadds | ServiceCutouts, shard: int, n_shards: int, out_path,
                 report_path, cfg: InjectConfig = InjectConfig()) -> dict:
    """Phase-4c rule body for shard ``shard`` (0-based) of ``n_shards``: write its stamps
    Parquet (row groups of <= ROW_GROUP_ROWS) and a report with skips per reason. Pixels
    come from ``source`` (local coadd bricks or the cutout service). Memory holds one
    brick's coadds and one batch of rows at a time."""
    t0 = time.perf_counter()
    manifest = pq.ParquetFile(manifest_path)
    bricks = shard_bricks(manifest.read(columns=["brickname"])["brickname"].to_numpy(zero_copy_only=False),
                          n_shards)[shard]
    schema = stamp_schema(manifest.schema_arrow, cfg.write_npz)
    report = {"shard": shard, "n_shards": n_shards, "bricks": bricks, "cutouts_resampled": source.resampled,
              "n_rows": 0, "n_written": 0,
              "n_positives_written": 0, "skipped": {name: 0 for name in FLAG_NAMES.values()}, "n_skipped": 0}
    manifest_ds = ds.dataset(manifest_path, format="parquet")
    with ParquetStreamWriter(out_path, schema, **writer_options(schema, cfg.stamp_compression)) as writer:
        for name in bricks:
            try:
                brick = source.brick(name)
            except CoaddError as exc:
                raise CoaddError(f"shard {shard}: {exc}") from exc
            # The brick's manifest rows stream in batches of at most ROW_GROUP_ROWS: memory is
            # one brick's coadds plus one batch of stamps, whatever the number of rows.
            # (single-threaded scan: batches come in file order, so stamps are reproducible)
            for batch in manifest_ds.to_batches(filter=pc.field("brickname") == name, batch_size=ROW_GROUP_ROWS,
                                                use_threads=False):
                rows = pa.Table.from_batches([batch])
                if rows.num_rows == 0:
                    continue
                report["n_rows"] += rows.num_rows
                kept, stamps, diag, skipped = inject_brick(rows, brick, cfg)
                for k, v in skipped.items():
                    report["skipped"][k] += v
                report["n_skipped"] += rows.num_rows - len(kept)
                cols = {n: kept[n] for n in kept.column_names}
                cols["stamp"] = encode_stamps(stamps)
                if cfg.write_npz:
                    cols["stamp_npz"] = encode_npz(stamps)
                cols.update({k: pa.array(v) for k, v in diag.items()})
                cols["cutout_resampled"] = pa.array(np.full(len(kept), source.resampled))
                writer.write(pa.Table.from_pydict({f.name: cols[f.name] for f in schema}, schema=schema))
                report["n_written"] += len(kept)
                report["n_positives_written"] += int(pc.sum(kept["label"]).as_py() or 0)
            del brick
    report["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(report, report_path)
    return report


def gather_reports(reports: list[dict], out_path) -> dict:
    """Sum shard reports into one dataset report (written to ``out_path``)."""
    total = {"n_shards": len(reports), "n_rows": 0, "n_written": 0, "n_positives_written": 0, "n_skipped": 0,
             "skipped": {name: 0 for name in FLAG_NAMES.values()}, "seconds": 0.0}
    for r in reports:
        for k in ("n_rows", "n_written", "n_positives_written", "n_skipped", "seconds"):
            total[k] += r[k]
        for k, v in r["skipped"].items():
            total["skipped"][k] += v
    if total["n_written"] + total["n_skipped"] != total["n_rows"]:
        raise RuntimeError(f"shard reports do not add up: {total}")
    total["per_shard"] = reports
    write_json(total, out_path)
    return total
