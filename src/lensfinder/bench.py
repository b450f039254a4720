"""The test bench's manifest: one set of rows, independent of every dataset, that every run
is scored on (issue 27).

Built from the bench region alone (:mod:`lensfinder.bench_region`), which no dataset
trains, validates or tests on. Three kinds of row, all split ``test``:

* **sky** (kind 0): every parent LRG of the region as it is, nothing injected -- the
  negatives of the sky-prevalence FPR. On the mock sky the look-alike populations are
  present at the mock's training rates (several times their sky rates, so each is measured
  on hundreds of galaxies); :mod:`lensfinder.bench_metrics` weights each population to its
  **sky rate** (``sky_rates``, default :data:`lensfinder.sky.false_positives.SKY_RATES`),
  so the ordinary LRGs dominate as on the real sky;
* **lens** (kind 1): ``lenses`` ordinary LRGs of the region with an arc injected from the
  bench's own ``priors`` (default: the realistic faint source population of
  ``config/dr10.yaml``, not any run's training priors); every lens parameter is stored and
  unrecognisable systems are redrawn by phase 4c as for any dataset;
* **unlensed** (kind 2): ``unlensed_controls`` other ordinary LRGs with a drawn source
  added unlensed -- a hard subset, reported in its own column, never in the sky FPR.

A lens host also appears as a sky row (its un-injected self): the bench's negatives are
every galaxy of the region, so FPR 1e-4 needs a region of >= ~10^4 LRGs, and no galaxy is
spent twice in a way that could bias a metric (no training happens on the bench).
``sample_id = galaxy_id << 2 | kind``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from lensfinder import seeding
from lensfinder.bench_region import BenchRegion, bench_pixels, in_bench
from lensfinder.manifest import (EASY_POPULATIONS, PARENT_COLUMNS, known_lens_veto, manifest_table,
                                 population_counts)
from lensfinder.population import MANIFEST_PARAMS, UNLENSED_SOURCE, FaberJackson, Priors, draw_parameters
from lensfinder.sky.false_positives import SKY_RATES, UNLABELLED
from lensfinder.sky.crossmatch import MATCH_RADIUS_ARCSEC
from lensfinder.tables import write_json, write_parquet

NAME = "bench"  # the stream name of the bench's draws (as a dataset's name is for its own)
KINDS = ("sky", "lens", "unlensed")

# The realistic source population of config/dr10.yaml: faint sources (r 22-25 from the
# galaxy counts, with star-forming knots) behind theta_E from each LRG's luminosity and
# redshift. Arcs near the detection limit, as real DECaLS lenses are (issue 31).
BENCH_PRIORS = Priors(theta_e_model="velocity_dispersion", faber_jackson=FaberJackson(), source_z=(1.0, 3.0),
                      frac_in_caustic=1.0, source_mag_r=(22.0, 25.0), source_mag_model="counts", knots_max=3)


@dataclass(frozen=True)
class BenchConfig:
    """The ``bench`` config section."""

    region: BenchRegion = BenchRegion()
    max_galaxies: int | None = None  # sky rows: every LRG of the region (None) or at most this many
    lenses: int = 2000               # lens hosts drawn (fewer if the region has fewer ordinary LRGs)
    unlensed_controls: int = 500     # hard subset: sources added unlensed
    priors: Priors = BENCH_PRIORS
    sky_rates: dict = field(default_factory=lambda: dict(SKY_RATES))  # population -> fraction of LRGs on the sky
    prevalence: float = 1e-3         # lenses per LRG, for purity ("inspect N candidates per lens")
    selection_fpr: float = 1e-3      # the sky-prevalence FPR at which the selection function is read

    @classmethod
    def from_dict(cls, d: dict | None) -> "BenchConfig":
        d = dict(d or {})
        d["region"] = BenchRegion.from_dict(d.get("region"))
        if "priors" in d:
            d["priors"] = Priors.from_dict(d["priors"])
        cfg = cls(**d)
        if cfg.lenses < 1 or cfg.unlensed_controls < 0:
            raise ValueError(f"bench.lenses must be >= 1 and bench.unlensed_controls >= 0 "
                             f"(got {cfg.lenses}, {cfg.unlensed_controls})")
        if not 0 < cfg.prevalence < 1 or not 0 < cfg.selection_fpr < 1:
            raise ValueError("bench.prevalence and bench.selection_fpr must be in (0, 1)")
        bad = {k: v for k, v in cfg.sky_rates.items() if not 0 <= v < 1}
        if bad or sum(cfg.sky_rates.values()) >= 1:
            raise ValueError(f"bench.sky_rates must be fractions in [0, 1) summing to < 1: {cfg.sky_rates}")
        return cfg

    def manifest_params(self) -> dict:
        """What the bench manifest depends on (the rest is scoring's)."""
        d = asdict(self)
        return {k: d[k] for k in ("region", "max_galaxies", "lenses", "unlensed_controls", "priors")}


def bench_sample_id(galaxy_id, kind: int) -> np.ndarray:
    """The bench's sample id of a galaxy's row of ``kind`` (0 sky, 1 lens, 2 unlensed)."""
    return (np.asarray(galaxy_id, np.int64) << 2) | kind


def build_bench_manifest(parent: pd.DataFrame, cfg: BenchConfig, seed: int,
                         known_lenses: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The bench manifest (sorted by brick then sample_id; every row split ``test``, column
    ``bench_kind``) and its audit. ``parent``: the phase-3 parent sample; ``known_lenses``:
    ra, dec in degrees (galaxies near them are left out, as in phase 4a)."""
    gal = parent.loc[:, [c for c in PARENT_COLUMNS if c in parent.columns]].copy()
    if "population" not in gal:
        gal["population"] = UNLABELLED
    region = in_bench(gal["ra"].to_numpy(), gal["dec"].to_numpy(), cfg.region, seed)
    veto = known_lens_veto(gal["ra"].to_numpy(), gal["dec"].to_numpy(), known_lenses)
    gal = gal.loc[region & ~veto]
    order = np.argsort(seeding.uniform(seeding.row_keys(seed, NAME, "galaxy-order", gal["galaxy_id"].to_numpy())),
                       kind="stable")
    gal = gal.iloc[order[: cfg.max_galaxies] if cfg.max_galaxies is not None else order].reset_index(drop=True)
    easy = gal.loc[gal["population"].isin(EASY_POPULATIONS)]
    if cfg.priors.theta_e_model == "velocity_dispersion" and "z_lens" in easy:
        easy = easy.loc[np.isfinite(easy["z_lens"].to_numpy(float))]  # theta_E needs the lens redshift
    hosts = easy.iloc[: cfg.lenses]
    unl = easy.iloc[len(hosts): len(hosts) + cfg.unlensed_controls]
    none = {k: np.nan for k in MANIFEST_PARAMS}
    parts = [
        gal.assign(label=np.int8(0), bench_kind=np.int8(0), **none, source_in_caustic=False),
        hosts.assign(label=np.int8(1), bench_kind=np.int8(1), **draw_parameters(cfg.priors, seed, NAME, hosts)),
        unl.assign(label=np.int8(0), bench_kind=np.int8(2), population=UNLENSED_SOURCE,
                   **draw_parameters(cfg.priors, seed, NAME, unl)),
    ]
    m = pd.concat(parts, ignore_index=True)
    m["sample_id"] = bench_sample_id(m["galaxy_id"].to_numpy(), 0) | m["bench_kind"].to_numpy().astype(np.int64)
    m["twin_sample_id"] = np.int64(-1)
    m["control_strategy"] = NAME
    m["healpix"] = bench_pixels(m["ra"].to_numpy(), m["dec"].to_numpy(), cfg.region)
    m["split"] = "test"
    m["seed"] = seeding.row_keys(seed, NAME, "row", m["sample_id"].to_numpy()).view(np.int64)
    m = m.sort_values(["brickname", "sample_id"], kind="stable").reset_index(drop=True)
    audit = {"region": cfg.region.as_params(), "n_parent": int(len(parent)), "n_in_region": int(region.sum()),
             "n_vetoed_known_lens": int((region & veto).sum()), "veto_radius_arcsec": MATCH_RADIUS_ARCSEC,
             "n_region_pixels": int(np.unique(m["healpix"]).size),
             "rows": {k: int((m["bench_kind"] == i).sum()) for i, k in enumerate(KINDS)},
             "lenses_requested": cfg.lenses, "unlensed_requested": cfg.unlensed_controls,
             "populations": population_counts(m)}
    if audit["rows"]["sky"] == 0 or audit["rows"]["lens"] == 0:
        raise ValueError(f"the bench region holds {audit['rows']['sky']} parent LRGs and {audit['rows']['lens']} "
                         f"lens hosts: raise bench.region.fraction (now {cfg.region.fraction}) or use more sky")
    return m, audit


def write_bench_manifest(parent_path, cfg: BenchConfig, seed: int, known_lenses_path, manifest_path,
                         audit_path) -> dict:
    """Rule body of ``bench_manifest``: the manifest Parquet (phase 4c's input) and its audit."""
    parent = pd.read_parquet(parent_path)
    known = pd.read_csv(known_lenses_path, usecols=["ra", "dec"])
    m, audit = build_bench_manifest(parent, cfg, seed, known)
    write_parquet(manifest_table(m), manifest_path)
    write_json(audit, audit_path)
    return audit
