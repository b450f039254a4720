"""Phase 3: the DESI LRG parent sample from DR10 sweep files.

The selection is the DESI main-survey LRG selection, identical to
``desitarget.cuts.isLRG`` applied to extinction-corrected fluxes as
``desitarget.cuts.set_target_bits`` does (tests compare the two on 10^4+ varied rows): the
DECaLS ("south") cuts for rows of a southern RELEASE, the BASS/MzLS ("north") cuts for rows
of a northern one, as desitarget decides per row from RELEASE (counted in the summary).
It is re-implemented here rather than imported because desitarget is a heavy,
test-only dependency and because the report needs the count cut by each criterion,
which desitarget does not expose. Arithmetic deliberately stays in float32 like
desitarget's, so boundary cases agree bit for bit.

Sweeps are processed in row chunks and selected rows are streamed to Parquet, so peak
memory is bounded by one chunk of one sweep file, never by the sky.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lensfinder.photometry import flux_to_mag
from lensfinder.sky.columns import MASKBITS, MOCK_POPULATION_COLUMN
from lensfinder.sky.false_positives import UNLABELLED
from lensfinder.sky.sweeps import SweepError, has_column, iter_sweep
from lensfinder.tables import ParquetStreamWriter, write_json

# desitarget.io.releasedict (desitarget 2.x): Legacy Surveys RELEASE -> photometric system,
# "N" = BASS/MzLS (north), "S" = DECam (south). DR10 DECaLS rows are 10000.
RELEASE_PHOTSYS = {3000: "S", 4000: "N", 5000: "S", 6000: "N", 7000: "S", 7999: "S", 8000: "S", 8001: "N",
                   9000: "S", 9001: "N", 9002: "S", 9003: "N", 9004: "S", 9005: "N", 9006: "S", 9007: "N",
                   9008: "S", 9009: "N", 9010: "S", 9011: "N", 9012: "S", 9013: "N", 10000: "S"}


def is_south(release, where: str = "sweep") -> np.ndarray:
    """(N,) bool: rows whose RELEASE is of the southern (DECam) photometric system. An
    unknown RELEASE is an error naming it (desitarget refuses them too)."""
    release = np.asarray(release)
    unknown = sorted(set(np.unique(release).tolist()) - set(RELEASE_PHOTSYS))
    if unknown:
        raise SweepError(f"{where}: RELEASE {unknown} is not a known Legacy Surveys release "
                         f"(known: {sorted(RELEASE_PHOTSYS)}; desitarget.io.releasedict)")
    south = np.array([r for r, s in RELEASE_PHOTSYS.items() if s == "S"])
    return np.isin(release, south)


DEFAULT_MASKBITS = ("BRIGHT", "GALAXY", "CLUSTER")
"""Legacy Surveys MASKBITS that veto an LRG (desitarget's default imaging mask)."""
CHUNK_ROWS = 100_000  # sweep rows per read: bounds a phase-3 job's memory, not the sky's size

SELECTION_COLUMNS = (
    "FLUX_G", "FLUX_R", "FLUX_Z", "FLUX_W1",
    "FLUX_IVAR_R", "FLUX_IVAR_Z", "FLUX_IVAR_W1",
    "MW_TRANSMISSION_G", "MW_TRANSMISSION_R", "MW_TRANSMISSION_Z", "MW_TRANSMISSION_W1",
    "FIBERFLUX_Z", "FIBERTOTFLUX_Z", "NOBS_G", "NOBS_R", "NOBS_Z",
    "GAIA_PHOT_G_MEAN_MAG", "MASKBITS",
)
CARRIED_COLUMNS = (
    "RELEASE", "BRICKID", "BRICKNAME", "OBJID", "TYPE", "RA", "DEC", "EBV",
    "FLUX_W2", "MW_TRANSMISSION_W2", "FLUX_IVAR_G",
    "PSFSIZE_G", "PSFSIZE_R", "PSFSIZE_Z", "PSFDEPTH_G", "PSFDEPTH_R", "PSFDEPTH_Z",
    "GALDEPTH_G", "GALDEPTH_R", "GALDEPTH_Z", "SHAPE_R", "SHAPE_E1", "SHAPE_E2", "SERSIC",
)
READ_COLUMNS = SELECTION_COLUMNS + CARRIED_COLUMNS
PHOTOZ_ROW_KEY = ("RELEASE", "BRICKID", "OBJID")
PHOTOZ_COLUMNS = (*PHOTOZ_ROW_KEY, "Z_PHOT_MEDIAN", "Z_PHOT_STD", "Z_SPEC")
"""What phase 3 reads of the photometric-redshift sweeps (DR10 ``10.1-photo-z/sweep-*-pz.fits``,
Zhou et al. 2023, random-forest photo-z's; row-matched to the ``10.1`` sweeps, -99 where
not computed: https://www.legacysurvey.org/dr10/files/)."""

CRITERIA = {
    "quality_r": "r flux > 0 and r flux ivar > 0",
    "quality_z": "z flux > 0, z flux ivar > 0 and z fibre flux > 0",
    "quality_w1": "W1 flux > 0 and W1 flux ivar > 0",
    "gaia": "Gaia G == 0 (no match) or G > 18",
    "zfibertot": "z fibre-total mag > 17.5 (not extinction corrected)",
    "nobs": "observed at least once in g, r and z",
    "maskbits": "none of MASKBITS {bits} set",
    "nonstellar": "z - W1 > 0.8 (r - z) - 0.6",
    "zfiber_faint": "z fibre mag < 21.6",
    "lowz": "g - W1 > 2.9 or r - W1 > 1.8",
    "sliding": "(r - W1 > 1.8 (W1 - 17.14) and r - W1 > W1 - 16.33) or r - W1 > 3.3",
}
"""Every criterion of the selection, in the order of the cascade in the summary."""


def galaxy_id(release, brickid, objid) -> np.ndarray:
    """Stable int64 galaxy id with the DESI TARGETID bit layout: RELEASE (16 bits),
    BRICKID (20 bits), OBJID (22 bits)."""
    release = np.asarray(release, dtype=np.int64)
    brickid = np.asarray(brickid, dtype=np.int64)
    objid = np.asarray(objid, dtype=np.int64)
    if (objid >= 1 << 22).any() or (brickid >= 1 << 20).any() or (objid < 0).any():
        raise ValueError("OBJID or BRICKID out of range for the TARGETID-style galaxy_id")
    return (release << 42) | (brickid << 22) | objid


def extinction_corrected(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """De-reddened fluxes (nanomaggies), float32 as desitarget computes them:
    keys g, r, z, w1, zfiber. FIBERTOTFLUX is deliberately not de-reddened (desitarget)."""
    return {
        "g": cols["FLUX_G"] / cols["MW_TRANSMISSION_G"],
        "r": cols["FLUX_R"] / cols["MW_TRANSMISSION_R"],
        "z": cols["FLUX_Z"] / cols["MW_TRANSMISSION_Z"],
        "w1": cols["FLUX_W1"] / cols["MW_TRANSMISSION_W1"],
        "zfiber": cols["FIBERFLUX_Z"] / cols["MW_TRANSMISSION_Z"],
    }


def lrg_criteria(cols: dict[str, np.ndarray], maskbits: Iterable[str] = DEFAULT_MASKBITS) -> dict[str, np.ndarray]:
    """Pass (True) / fail per criterion of :data:`CRITERIA` for every row.

    ``cols`` maps upper-case sweep column names to arrays (float32 fluxes as in the
    sweeps). A row is an LRG iff it passes every criterion. The colour cuts are the south's
    or the north's per row (``RELEASE``; all south without that column). Each is computed
    with scalar constants, as desitarget does, so float32 boundary cases agree bit for bit.
    """
    south = is_south(cols["RELEASE"]) if "RELEASE" in cols else np.ones(len(cols["FLUX_R"]), bool)
    f = extinction_corrected(cols)
    # desitarget clips at 1e-7 nanomaggies before taking logs (the quality cuts already
    # require positive flux, so the clip only affects rows that fail anyway).
    mag = {k: 22.5 - 2.5 * np.log10(v.clip(1e-7)) for k, v in f.items()}
    g, r, z, w1, zfib = mag["g"], mag["r"], mag["z"], mag["w1"], mag["zfiber"]
    bits = 0
    for name in maskbits:
        bits |= 1 << MASKBITS[name]
    gaia = cols["GAIA_PHOT_G_MEAN_MAG"]
    with np.errstate(invalid="ignore"):
        return {
            "quality_r": (cols["FLUX_IVAR_R"] > 0) & (f["r"] > 0),
            "quality_z": (cols["FLUX_IVAR_Z"] > 0) & (f["z"] > 0) & (f["zfiber"] > 0),
            "quality_w1": (cols["FLUX_IVAR_W1"] > 0) & (f["w1"] > 0),
            "gaia": (gaia == 0) | (gaia > 18),
            "zfibertot": cols["FIBERTOTFLUX_Z"] < 10 ** (-0.4 * (17.5 - 22.5)),
            "nobs": (cols["NOBS_G"] > 0) & (cols["NOBS_R"] > 0) & (cols["NOBS_Z"] > 0),
            "maskbits": (cols["MASKBITS"] & bits) == 0,
            "nonstellar": z - w1 > 0.8 * (r - z) - 0.6,
            "zfiber_faint": np.where(south, zfib < 21.6, zfib < 21.61),
            "lowz": np.where(south, g - w1 > 2.9, g - w1 > 2.97) | (r - w1 > 1.8),
            "sliding": np.where(south,
                                ((r - w1 > (w1 - 17.14) * 1.8) & (r - w1 > (w1 - 16.33) * 1.0)) | (r - w1 > 3.3),
                                ((r - w1 > (w1 - 17.13) * 1.83) & (r - w1 > (w1 - 16.31) * 1.0)) | (r - w1 > 3.4)),
        }


def is_lrg(cols: dict[str, np.ndarray], maskbits: Iterable[str] = DEFAULT_MASKBITS) -> np.ndarray:
    """Boolean LRG mask (see :func:`lrg_criteria`)."""
    crit = lrg_criteria(cols, maskbits)
    return np.logical_and.reduce(list(crit.values()))


PARENT_SCHEMA = pa.schema(
    [("galaxy_id", pa.int64()), ("release", pa.int16()), ("brickid", pa.int32()), ("brickname", pa.string()),
     ("objid", pa.int32()), ("type", pa.string()), ("ra", pa.float64()), ("dec", pa.float64()),
     ("ebv", pa.float32())]
    + [(f"flux_{b}", pa.float32()) for b in ("g", "r", "z", "w1", "w2")]
    + [(f"mag_{b}", pa.float32()) for b in ("g", "r", "z", "w1")]
    + [("zfiberflux", pa.float32()), ("flux_ivar_g", pa.float32()), ("flux_ivar_r", pa.float32()),
       ("flux_ivar_z", pa.float32())]
    + [(f"mw_transmission_{b}", pa.float32()) for b in ("g", "r", "z")]
    + [(f"{k}_{b}", pa.float32()) for k in ("psfsize", "psfdepth", "galdepth") for b in ("g", "r", "z")]
    + [(f"nobs_{b}", pa.int16()) for b in ("g", "r", "z")]
    + [("shape_r", pa.float32()), ("shape_e1", pa.float32()), ("shape_e2", pa.float32()),
       ("sersic", pa.float32()), ("maskbits", pa.int32()), ("sweep", pa.string())]
    + [(k, pa.float32()) for k in ("z_phot_median", "z_phot_std", "z_spec", "z_lens")]
    + [("population", pa.string())]
)
"""Columns of ``parent_lrg.parquet``: fluxes are extinction-corrected nanomaggies, mags AB
(extinction-corrected), psfsize arcsec FWHM, psf/galdepth 1/nanomaggies^2, shape_r arcsec;
redshifts NaN where unknown (no photo-z file, or its -99 fill), z_lens = z_spec where there
is one, else z_phot_median; population: the mock's false-positive population of the galaxy
(``ordinary`` without one; ``unlabelled`` on real data)."""


def lens_redshift(z_spec, z_phot) -> np.ndarray:
    """The redshift a lens model uses: spectroscopic where known, else the photo-z median;
    NaN where neither is (the photo-z sweeps fill unknown values with -99)."""
    z_spec = np.asarray(z_spec, dtype=np.float32)
    z_phot = np.asarray(z_phot, dtype=np.float32)
    return np.where(z_spec > 0, z_spec, np.where(z_phot >= 0, z_phot, np.float32(np.nan))).astype(np.float32)


def _known(z) -> np.ndarray:
    z = np.asarray(z, dtype=np.float32)
    return np.where(np.isfinite(z) & (z >= 0), z, np.float32(np.nan))


def _parent_rows(cols: dict[str, np.ndarray], keep: np.ndarray, sweep: str) -> pa.Table:
    c = {k: v[keep] for k, v in cols.items()}
    f = extinction_corrected(c)
    out = {
        "galaxy_id": galaxy_id(c["RELEASE"], c["BRICKID"], c["OBJID"]),
        "release": c["RELEASE"], "brickid": c["BRICKID"], "brickname": c["BRICKNAME"], "objid": c["OBJID"],
        "type": c["TYPE"], "ra": c["RA"], "dec": c["DEC"], "ebv": c["EBV"],
        "flux_g": f["g"], "flux_r": f["r"], "flux_z": f["z"], "flux_w1": f["w1"],
        "flux_w2": c["FLUX_W2"] / c["MW_TRANSMISSION_W2"],
    }
    for b in ("g", "r", "z", "w1"):
        out[f"mag_{b}"] = flux_to_mag(f[b]).astype(np.float32)
    out["zfiberflux"] = f["zfiber"]
    for b in ("g", "r", "z"):
        B = b.upper()
        out[f"flux_ivar_{b}"] = c[f"FLUX_IVAR_{B}"]
        out[f"mw_transmission_{b}"] = c[f"MW_TRANSMISSION_{B}"]
    for k in ("PSFSIZE", "PSFDEPTH", "GALDEPTH", "NOBS"):
        for b in ("g", "r", "z"):
            out[f"{k.lower()}_{b}"] = c[f"{k}_{b.upper()}"]
    for k in ("SHAPE_R", "SHAPE_E1", "SHAPE_E2", "SERSIC", "MASKBITS"):
        out[k.lower()] = c[k]
    n = int(keep.sum())
    out["sweep"] = np.full(n, sweep)
    nan = np.full(n, np.nan, np.float32)
    out["z_phot_median"] = _known(c["Z_PHOT_MEDIAN"]) if "Z_PHOT_MEDIAN" in c else nan
    out["z_phot_std"] = _known(c["Z_PHOT_STD"]) if "Z_PHOT_STD" in c else nan
    out["z_spec"] = np.where(c["Z_SPEC"] > 0, c["Z_SPEC"], np.nan).astype(np.float32) if "Z_SPEC" in c else nan
    out["z_lens"] = lens_redshift(out["z_spec"], out["z_phot_median"])
    out["population"] = c[MOCK_POPULATION_COLUMN] if MOCK_POPULATION_COLUMN in c else np.full(n, UNLABELLED)
    return pa.Table.from_pydict({k: out[k] for k in PARENT_SCHEMA.names}, schema=PARENT_SCHEMA)


def _empty_summary(maskbits) -> dict:
    bits = ", ".join(f"{m} ({MASKBITS[m]})" for m in maskbits)
    return {
        "n_rows": 0, "n_selected": 0, "n_nonfinite_flux": 0,
        "criteria": {k: {"description": d.format(bits=bits), "n_fail": 0} for k, d in CRITERIA.items()},
        "cascade": {k: 0 for k in CRITERIA},
        "lens_redshift": {"spec": 0, "photo": 0, "none": 0},
        "populations": {},
        # rows and selected rows per photometric system (the cuts differ: desitarget's isLRG)
        "photometric_system": {"S": {"n_rows": 0, "n_selected": 0}, "N": {"n_rows": 0, "n_selected": 0}},
    }


def _photoz_chunk(pz_chunks, chunk: pa.Table, start: int, sweep_path, photoz_path) -> dict[str, np.ndarray]:
    """The photo-z rows matching sweep rows ``start``.. of ``chunk``; the files are
    row-matched, and any row whose (RELEASE, BRICKID, OBJID) differs is an error naming it."""
    pz = next(pz_chunks, None)
    if pz is None or pz.num_rows != chunk.num_rows:
        raise SweepError(f"{photoz_path}: not row-matched to {sweep_path}: it ends before sweep row "
                         f"{start + (0 if pz is None else pz.num_rows)}")
    for key in PHOTOZ_ROW_KEY:
        bad = np.flatnonzero(pz[key].to_numpy() != chunk[key].to_numpy())
        if len(bad):
            raise SweepError(f"{photoz_path}: not row-matched to {sweep_path}: row {start + bad[0]} has {key} "
                             f"{pz[key][int(bad[0])]} in the photo-z file but {chunk[key][int(bad[0])]} in the sweep")
    return {k: pz[k].to_numpy() for k in PHOTOZ_COLUMNS if k not in PHOTOZ_ROW_KEY}


def select_sweep(sweep_path: str | os.PathLike, out_path: str | os.PathLike,
                 summary_path: str | os.PathLike | None = None, chunk_rows: int = CHUNK_ROWS,
                 maskbits: Iterable[str] = DEFAULT_MASKBITS, photoz_path: str | os.PathLike | None = None) -> dict:
    """Select LRGs from one sweep file into ``out_path`` (Parquet, :data:`PARENT_SCHEMA`),
    with their redshifts from the row-matched ``photoz_path`` (read in the same chunks).

    The summary (also written as JSON to ``summary_path``) counts, for every criterion,
    the rows failing it on its own (``criteria``) and the rows left after applying the
    criteria in order (``cascade``); rows with non-finite selection fluxes are counted
    (they fail the cuts, as in desitarget); ``lens_redshift`` counts selected rows by where
    their redshift comes from; ``populations`` counts selected rows per false-positive
    population (the mock's truth column; real sweeps: all ``unlabelled``).
    """
    maskbits = tuple(maskbits)
    sweep = Path(sweep_path).name
    summary = {"sweep": sweep, **_empty_summary(maskbits), "maskbits": list(maskbits)}
    pz_chunks = iter_sweep(photoz_path, PHOTOZ_COLUMNS, chunk_rows=chunk_rows) if photoz_path else None
    # the mock sky's truth column: which false-positive population each galaxy belongs to
    truth = (MOCK_POPULATION_COLUMN,) if has_column(sweep_path, MOCK_POPULATION_COLUMN) else ()
    start = 0
    with ParquetStreamWriter(out_path, PARENT_SCHEMA) as writer:
        for chunk in iter_sweep(sweep_path, READ_COLUMNS + truth, chunk_rows=chunk_rows):
            cols = {name: chunk[name].to_numpy(zero_copy_only=False) for name in chunk.column_names}
            if pz_chunks is not None:
                cols.update(_photoz_chunk(pz_chunks, chunk, start, sweep_path, photoz_path))
            start += chunk.num_rows
            try:
                crit = lrg_criteria(cols, maskbits)
            except SweepError as exc:
                raise SweepError(f"{sweep_path}: rows {start - chunk.num_rows}-{start - 1}: {exc}") from None
            south = is_south(cols["RELEASE"])
            running = np.ones(chunk.num_rows, dtype=bool)
            for name, ok in crit.items():
                summary["criteria"][name]["n_fail"] += int(np.count_nonzero(~ok))
                running &= ok
                summary["cascade"][name] += int(np.count_nonzero(running))
            flux_cols = ("FLUX_G", "FLUX_R", "FLUX_Z", "FLUX_W1", "FIBERFLUX_Z")
            summary["n_nonfinite_flux"] += int(np.count_nonzero(~np.logical_and.reduce(
                [np.isfinite(cols[c]) for c in flux_cols])))
            summary["n_rows"] += chunk.num_rows
            summary["n_selected"] += int(np.count_nonzero(running))
            for sys_, rows_ in (("S", south), ("N", ~south)):
                summary["photometric_system"][sys_]["n_rows"] += int(rows_.sum())
                summary["photometric_system"][sys_]["n_selected"] += int((running & rows_).sum())
            rows = _parent_rows(cols, running, sweep)
            _count_redshifts(summary["lens_redshift"], rows)
            _count_values(summary["populations"], rows["population"])
            writer.write(rows)
    if pz_chunks is not None and next(pz_chunks, None) is not None:
        raise SweepError(f"{photoz_path}: not row-matched to {sweep_path}: it has more than the sweep's {start} rows")
    if summary_path is not None:
        write_json(summary, summary_path)
    return summary


def _count_redshifts(counts: dict, rows: pa.Table) -> None:
    spec = np.isfinite(rows["z_spec"].to_numpy(zero_copy_only=False))
    known = np.isfinite(rows["z_lens"].to_numpy(zero_copy_only=False))
    counts["spec"] += int(spec.sum())
    counts["photo"] += int((known & ~spec).sum())
    counts["none"] += int((~known).sum())


def _count_values(counts: dict, column: pa.ChunkedArray | pa.Array) -> None:
    for vc in pc.value_counts(column).to_pylist():
        counts[vc["values"]] = counts.get(vc["values"], 0) + vc["counts"]


def gather_parent(part_paths: Iterable[str | os.PathLike], summaries: Iterable[dict],
                  out_path: str | os.PathLike, summary_path: str | os.PathLike) -> dict:
    """Concatenate per-sweep selections into ``parent_lrg.parquet`` (streamed one row
    group at a time) and sum their summaries into ``selection_summary.json``."""
    summaries = list(summaries)
    maskbits = summaries[0]["maskbits"] if summaries else list(DEFAULT_MASKBITS)
    total = {**_empty_summary(maskbits), "maskbits": maskbits, "per_sweep": {}}
    for s in summaries:
        for key in ("n_rows", "n_selected", "n_nonfinite_flux"):
            total[key] += s[key]
        for k, v in s["lens_redshift"].items():
            total["lens_redshift"][k] += v
        for k, v in s["populations"].items():
            total["populations"][k] = total["populations"].get(k, 0) + v
        for sys_, counts in s.get("photometric_system", {}).items():
            for k, v in counts.items():
                total["photometric_system"][sys_][k] += v
        for name in CRITERIA:
            total["criteria"][name]["n_fail"] += s["criteria"][name]["n_fail"]
            total["cascade"][name] += s["cascade"][name]
        total["per_sweep"][s["sweep"]] = {"n_rows": s["n_rows"], "n_selected": s["n_selected"]}
    with ParquetStreamWriter(out_path, PARENT_SCHEMA) as writer:
        for path in part_paths:
            pf = pq.ParquetFile(path)
            for i in range(pf.num_row_groups):
                writer.write(pf.read_row_group(i).cast(PARENT_SCHEMA))
    if writer.n_rows != total["n_selected"]:
        raise RuntimeError(f"gathered {writer.n_rows} rows but the summaries count {total['n_selected']}")
    write_json(total, summary_path)
    return total
