"""Phase 4a: the injection manifest of one dataset.

Decides which parent-sample galaxies get an arc (label 1) and which are controls (label 0),
with which control strategy, in which split, and draws every lens and source parameter.
One row per stamp to make. All draws come from :mod:`lensfinder.seeding` streams keyed by
(seed, dataset, galaxy or sample id), so a row's content does not depend on the other rows.

Control strategies
    ``paired``            gen2: each positive's control is the same galaxy without the arc
                          (the classes then differ only by the arc's extra flux);
    ``unpaired``          positives and controls are disjoint galaxies;
    ``unpaired_matched``  disjoint, with controls drawn to match the positives'
                          distribution of r-band magnitude, PSF size and depth (of the
                          catalogue, i.e. before injection: every positive still carries
                          extra flux no control has);
    ``matched_after_injection``  disjoint; the manifest holds a pool of control candidates
                          (``match_pool_factor`` per control needed) and phase 4d
                          (:mod:`lensfinder.matching`) keeps those whose *observed* aperture
                          fluxes and colours match the injected positives', so "extra blue
                          flux near the centre" does not tell the classes apart.
Unlensed-source controls
    ``unlensed_controls`` (unpaired strategies) per positive, ordinary galaxies get a drawn
    lens system like a positive but are labelled 0: phase 4c adds the source *unlensed*,
    as bright and as blue as the arc would be, at the images' distances from the galaxy
    (population ``unlensed_source``). The look-alikes of a small sky rarely put light of an
    arc's flux, colour and radius around a host as bright as a lens; these do by
    construction, so after matching even a flux classifier that uses every feature jointly
    (gradient-boosted trees) is near chance, and only the arc's shape tells the classes
    apart.
Several systems per galaxy
    ``systems_per_galaxy`` k (unpaired strategies): every positive and unlensed-control galaxy
    gets k independently drawn lens systems, one row each (column ``system``), so the same
    sky yields up to k times the lenses; a galaxy's rows share its split.
Shared hosts
    ``shared_hosts``: the unlensed-source controls are drawn on the positives' own galaxies
    (systems numbered after the positives', so each is its own draw): with several systems
    per galaxy, a galaxy that only ever appeared as a lens would teach its identity; here
    every host appears with arcs and with unlensed sources, and only the arc tells them apart.
Lensable hosts
    ``lensable_hosts``: positives and unlensed-source controls only on galaxies for which at
    least one of the ``max_attempts`` draws phase 4c would make passes the criteria that need
    no rendering (resolved, theta_E >= min_theta_e_fwhm x FWHM). Draws are a pure function of
    (seed, dataset, galaxy, attempt), so the others would be skipped as not recognisable
    anyway: nothing kept changes, no galaxy is spent on a system that cannot be made, and the
    galaxies left go to the control pool.
Hard negatives
    ``hard_negative_fraction`` of the controls (or of the candidate pool) come from galaxies
    of a false-positive population: the mock's look-alikes, and on any sky the galaxies of a
    user's list of past false positives (``past_false_positives``: a CSV with galaxy_id or
    ra, dec), which get population ``past_false_positive``. With an unpaired strategy the
    positives come only from the other (ordinary or unlabelled) galaxies.
Split schemes
    ``row``     per row (gen2; with paired controls a galaxy's two rows can straddle
                splits -- kept only to reproduce gen2);
    ``galaxy``  per galaxy;
    ``sky``     per HEALPix pixel (nested) of the galaxy: no galaxy and no sky pixel in two
                splits (default).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import astropy.units as u
import numpy as np
import pandas as pd
import pyarrow as pa
from astropy_healpix import HEALPix

from lensfinder import PIXSCALE, seeding
from lensfinder.balance import standardised_mean_differences
from lensfinder.bench_region import BenchRegion, in_bench
from lensfinder.detectability import Criteria, geometry_ok
from lensfinder.population import MANIFEST_PARAMS, UNLENSED_SOURCE, Priors, draw_parameters
from lensfinder.sky.bricks import brick_center
from lensfinder.sky.false_positives import ORDINARY, UNLABELLED
from lensfinder.sky.crossmatch import MATCH_RADIUS_ARCSEC, nearest_within
from lensfinder.tables import write_json, write_parquet

CONTROL_STRATEGIES = ("paired", "unpaired", "unpaired_matched", "matched_after_injection")
PAST_FALSE_POSITIVE = "past_false_positive"
EASY_POPULATIONS = (ORDINARY, UNLABELLED)  # every other population is a hard negative
SPLIT_SCHEMES = ("row", "galaxy", "sky")
SPLITS = ("train", "val", "test")
# sample_id = galaxy_id << 1 | label, plus the system number from this bit up: galaxy ids are
# < 2^56 (lensfinder.select.galaxy_id: a release < 2^14 above bit 42), so bits 57-61 are free
SYSTEM_SHIFT = 57
MAX_SYSTEMS = 32


@dataclass(frozen=True)
class DatasetConfig:
    """One named dataset of the ``datasets`` config section."""

    name: str
    control: str = "unpaired_matched"
    split: str = "sky"
    split_fractions: dict = field(default_factory=lambda: {"train": 0.7, "val": 0.15, "test": 0.15})
    healpix_nside: int = 1024
    pos_fraction: float = 0.5
    match_pool_factor: float = 2.0   # *matched*: candidate controls per control needed
    hard_negative_fraction: float = 0.0  # of the controls / candidates, from false-positive populations
    unlensed_controls: float = 0.0   # unlensed-source controls per positive (unpaired strategies)
    past_false_positives: str | None = None  # CSV of past false positives (galaxy_id or ra, dec)
    max_galaxies: int | None = None
    systems_per_galaxy: int = 1      # lens systems drawn per positive / unlensed-control galaxy
    lensable_hosts: bool = False     # systems only on galaxies whose draws can pass the geometric criteria
    shared_hosts: bool = False       # unlensed-source controls on the positives' own galaxies
    priors: Priors = Priors()

    @classmethod
    def from_dict(cls, name: str, d: dict) -> "DatasetConfig":
        d = dict(d)
        d.pop("inject", None)  # phase-4c settings, not the manifest's
        d.pop("parent_negatives", None)  # evaluation's (lensfinder.parent_negatives)
        d["priors"] = Priors.from_dict(d.get("priors"))
        cfg = cls(name=name, **d)
        if cfg.control not in CONTROL_STRATEGIES:
            raise ValueError(f"dataset {name}: control must be one of {CONTROL_STRATEGIES}")
        if not 0 <= cfg.hard_negative_fraction <= 1:
            raise ValueError(f"dataset {name}: hard_negative_fraction must be in [0, 1]")
        if cfg.unlensed_controls < 0 or (cfg.control == "paired" and cfg.unlensed_controls > 0):
            raise ValueError(f"dataset {name}: unlensed_controls must be >= 0 and needs an unpaired control strategy")
        if cfg.control == "paired" and cfg.hard_negative_fraction > 0:
            raise ValueError(f"dataset {name}: paired controls are the positives' own galaxies; "
                             "hard_negative_fraction needs an unpaired control strategy")
        if cfg.lensable_hosts and cfg.control == "paired":
            raise ValueError(f"dataset {name}: lensable_hosts needs an unpaired control strategy (paired: every galaxy "
                             "is a positive and its own control)")
        if cfg.systems_per_galaxy < 1 or (cfg.control == "paired" and cfg.systems_per_galaxy > 1) \
                or cfg.systems_per_galaxy + unlensed_systems(cfg) * cfg.shared_hosts > MAX_SYSTEMS:
            raise ValueError(f"dataset {name}: systems_per_galaxy must be >= 1 (with shared_hosts, plus the unlensed "
                             f"ones, <= {MAX_SYSTEMS}), and 1 with paired controls (a positive's control is its own "
                             f"galaxy), not {cfg.systems_per_galaxy}")
        if cfg.shared_hosts and (cfg.control == "paired" or unlensed_systems(cfg) < 1):
            raise ValueError(f"dataset {name}: shared_hosts puts unlensed-source controls on the positives' galaxies: "
                             "it needs an unpaired control strategy and unlensed_controls x systems_per_galaxy >= 1")
        if cfg.split not in SPLIT_SCHEMES:
            raise ValueError(f"dataset {name}: split must be one of {SPLIT_SCHEMES}")
        fr = cfg.split_fractions
        # every split must get rows: an empty val split ends training after its first epoch,
        # an empty test split ends evaluation (both long after phase 4c)
        if set(fr) != set(SPLITS) or any(fr[s] <= 0 for s in SPLITS) or abs(sum(fr.values()) - 1) > 1e-6:
            raise ValueError(f"datasets.{name}.split_fractions {fr}: train, val and test must each be > 0 and sum to 1")
        return cfg


def known_lens_veto(ra, dec, known: pd.DataFrame, radius_arcsec: float = MATCH_RADIUS_ARCSEC) -> np.ndarray:
    """True for positions (degrees) within ``radius_arcsec`` of a catalogued lens."""
    return nearest_within(ra, dec, known, radius_arcsec)[0] >= 0


def _split_of(u_: np.ndarray, fractions: dict) -> np.ndarray:
    edges = np.cumsum([fractions[s] for s in SPLITS])
    return np.asarray(SPLITS)[np.minimum(np.searchsorted(edges, u_, side="right"), len(SPLITS) - 1)]


def healpix_of(ra, dec, nside: int) -> np.ndarray:
    """Nested HEALPix pixel (int64) of positions in degrees."""
    hp = HEALPix(nside=nside, order="nested")
    return hp.lonlat_to_healpix(np.asarray(ra) * u.deg, np.asarray(dec) * u.deg).astype(np.int64)


def split_of_units(units: np.ndarray, cfg: DatasetConfig, seed: int) -> np.ndarray:
    """The split ('train', 'val' or 'test') of each split unit of ``cfg.split`` (sample ids,
    galaxy ids or HEALPix pixels): a hash of (seed, dataset, scheme, unit), so a unit's split
    does not depend on which other units exist."""
    return _split_of(seeding.uniform(seeding.row_keys(seed, cfg.name, "split", cfg.split, units)), cfg.split_fractions)


def _matched_controls(pos: pd.DataFrame, pool: pd.DataFrame, n_controls: int, keys: np.ndarray) -> np.ndarray:
    """Indices into ``pool`` of ``n_controls`` controls whose joint distribution of r mag,
    r PSF size and r PSF depth follows the positives': each pool galaxy is weighted by the
    positive/pool density ratio in quantile bins of the three features, then sampled
    without replacement with Efraimidis-Spirakis keys u^(1/w)."""
    feats = ("mag_r", "psfsize_r", "psfdepth_r")
    n_bins = 5
    codes_pos = np.zeros(len(pos), dtype=np.int64)
    codes_pool = np.zeros(len(pool), dtype=np.int64)
    outside = np.zeros(len(pool), dtype=bool)
    for f in feats:
        x_pos, x_pool = pos[f].to_numpy(dtype=float), pool[f].to_numpy(dtype=float)
        edges = np.nanquantile(x_pos, np.linspace(0, 1, n_bins + 1))
        inner = np.unique(edges[1:-1])
        codes_pos = codes_pos * (n_bins + 1) + np.searchsorted(inner, x_pos)
        codes_pool = codes_pool * (n_bins + 1) + np.searchsorted(inner, x_pool)
        # the outer bins end at the positives' range: pool tails beyond it never match
        outside |= ~((x_pool >= edges[0]) & (x_pool <= edges[-1]))
    codes_pool[outside] = -1
    pos_counts = pd.Series(codes_pos).value_counts()
    pool_counts = pd.Series(codes_pool).value_counts()
    weight = (pos_counts.reindex(codes_pool).to_numpy(dtype=float) / pool_counts.reindex(codes_pool).to_numpy())
    weight = np.nan_to_num(weight, nan=0.0)
    with np.errstate(divide="ignore"):
        order_key = np.where(weight > 0, np.log(np.maximum(seeding.uniform(keys), 1e-300)) / weight, -np.inf)
    return np.argsort(-order_key, kind="stable")[: min(n_controls, int((weight > 0).sum()))]


def _standardised_mean_differences(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    feats = ["mag_r", "psfsize_r", "psfdepth_r"]
    smd = standardised_mean_differences(a[feats].to_numpy(dtype=float), b[feats].to_numpy(dtype=float))
    return {f: float(v) for f, v in zip(feats, smd)}


PARENT_COLUMNS = ("galaxy_id", "brickname", "ra", "dec", "type", "population",
                  "mag_g", "mag_r", "mag_z", "mag_w1", "z_lens",
                  "shape_r", "shape_e1", "shape_e2",
                  "psfsize_g", "psfsize_r", "psfsize_z", "psfdepth_g", "psfdepth_r", "psfdepth_z",
                  "mw_transmission_g", "mw_transmission_r", "mw_transmission_z", "nobs_g", "nobs_r", "nobs_z")


def mark_past_false_positives(gal: pd.DataFrame, past: pd.DataFrame | None) -> int:
    """Set population ``past_false_positive`` (in place) on the galaxies of a user's list of
    past false positives, matched by galaxy_id or else by position (within the known-lens
    match radius). Returns how many were marked."""
    if past is None or not len(past):
        return 0
    if "galaxy_id" in past:
        hit = gal["galaxy_id"].isin(past["galaxy_id"]).to_numpy()
    else:
        hit = nearest_within(gal["ra"].to_numpy(), gal["dec"].to_numpy(), past, MATCH_RADIUS_ARCSEC)[0] >= 0
    gal.loc[hit, "population"] = PAST_FALSE_POSITIVE
    return int(hit.sum())


def take_controls(pool: pd.DataFrame, hard_fraction: float, fill: bool = False) -> pd.DataFrame:
    """The rows of ``pool`` (in pool order), ``hard_fraction`` of them from false-positive
    populations. With too few hard negatives, fewer rows are taken so the fraction holds.
    With too few ordinary ones, ``fill`` takes the remaining hard negatives instead (phase
    4d's candidates: matching picks the controls from them, and every candidate it does not
    see is one a positive could have been matched to); without it, fewer rows again."""
    if hard_fraction <= 0:
        return pool
    n = len(pool)
    hard = ~pool["population"].isin(EASY_POPULATIONS).to_numpy()
    n_hard = min(int(round(hard_fraction * n)), int(hard.sum()))
    if n_hard < round(hard_fraction * n):
        n = int(n_hard / hard_fraction)
    n_easy = min(n - n_hard, int((~hard).sum()))
    if n_hard + n_easy < n:
        if fill:
            n_hard = min(n - n_easy, int(hard.sum()))
        elif hard_fraction < 1:
            n_hard = min(n_hard, int(round(n_easy * hard_fraction / (1 - hard_fraction))))
    keep = np.sort(np.concatenate([np.flatnonzero(hard)[:n_hard], np.flatnonzero(~hard)[:n_easy]]))
    return pool.iloc[keep]


def population_counts(m: pd.DataFrame) -> dict:
    """{label: {population: rows}} of a manifest (or stamps table)."""
    return {("positives" if k else "controls"): g["population"].value_counts().sort_index().to_dict()
            for k, g in m.groupby("label")}


def unlensed_systems(cfg: DatasetConfig) -> int:
    """Unlensed-source systems per unlensed-control galaxy: k, or with ``shared_hosts``
    (they are the positives' galaxies) round(k x ``unlensed_controls``)."""
    k = cfg.systems_per_galaxy
    return int(round(k * cfg.unlensed_controls)) if cfg.shared_hosts else k


def _galaxies_per_positive(cfg: DatasetConfig, candidates_per_positive: float) -> float:
    """Galaxies a positive galaxy takes with it: itself, its share of unlensed-source galaxies
    and of the control pool. With k systems per galaxy, a positive galaxy is k positive rows,
    needing k x ``candidates_per_positive`` control rows, of which the unlensed-source
    systems give k x ``unlensed_controls`` (on galaxies of their own, or with
    ``shared_hosts`` on the positive's); the pool gives the rest, one row per galaxy."""
    k, unl = cfg.systems_per_galaxy, cfg.unlensed_controls
    if cfg.shared_hosts:
        return 1 + k * max(candidates_per_positive - unl, 0.0)
    if k == 1:
        return 1 + candidates_per_positive
    return 1 + unl + k * max(candidates_per_positive - unl, 0.0)


def with_systems(gal: pd.DataFrame, k: int, first: int = 0) -> pd.DataFrame:
    """``gal`` repeated ``k`` times, galaxy by galaxy, with a ``system`` column first..first+k-1
    (no column for one system 0: a dataset's manifest is unchanged unless it asks for more)."""
    if k == 1 and first == 0:
        return gal
    out = gal.loc[gal.index.repeat(k)].copy()
    out["system"] = np.tile(np.arange(first, first + k, dtype=np.int16), len(gal))
    return out


def lensable(gal: pd.DataFrame, cfg: DatasetConfig, seed: int, criteria: Criteria) -> np.ndarray:
    """(N,) bool: galaxies at least one of whose first ``criteria.max_attempts`` draws (of
    system 0, as phase 4c draws them) has a finite theta_E passing
    :func:`lensfinder.detectability.geometry_ok` at the galaxy's r-band PSF FWHM."""
    ok = np.zeros(len(gal), bool)
    fwhm = gal["psfsize_r"].to_numpy(float)
    for attempt in range(criteria.max_attempts):
        todo = np.flatnonzero(~ok)
        if not len(todo):
            break
        p = draw_parameters(cfg.priors, seed, cfg.name, gal.iloc[todo], attempt)
        ok[todo] = np.isfinite(p["theta_e"]) & geometry_ok(p["theta_e"], p["src_re"], fwhm[todo], criteria)
    return ok


def _unpaired(gal: pd.DataFrame, cfg: DatasetConfig, seed: int, criteria: Criteria | None
              ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict, int]:
    """(positives, unlensed-source controls, other controls -- or phase 4d's candidates --,
    catalogue SMDs, ordinary galaxies left out as not lensable) of an unpaired strategy, from
    galaxies in hash order."""
    # rows: positives / (positives + controls) = pos_fraction. The matched strategies
    # keep a pool match_pool_factor times larger than the controls they need.
    ctl_per_pos = (1 - cfg.pos_fraction) / cfg.pos_fraction
    factor = 1.0 if cfg.control == "unpaired" else cfg.match_pool_factor
    # Look-alikes (and past false positives) are kept for the negatives: an arc injected
    # around a ring galaxy would teach "ring = lens" as much as "ring = not a lens".
    easy = np.flatnonzero(gal["population"].isin(EASY_POPULATIONS).to_numpy())
    n_easy = len(easy)
    if cfg.lensable_hosts:
        easy = easy[lensable(gal.iloc[easy], cfg, seed, criteria)]
    n_pos = min(int(round(len(gal) / _galaxies_per_positive(cfg, ctl_per_pos * factor))),
                int(len(easy) / (1 if cfg.shared_hosts else 1 + cfg.unlensed_controls)))
    pos = gal.iloc[easy[:n_pos]]
    unlensed = pos if cfg.shared_hosts else gal.iloc[easy[n_pos:n_pos + int(round(n_pos * cfg.unlensed_controls))]]
    pool = take_controls(gal.drop(index=pos.index.union(unlensed.index)), cfg.hard_negative_fraction,
                         fill=cfg.control == "matched_after_injection")
    if cfg.control in ("unpaired", "matched_after_injection"):
        ctl = pool  # matched_after_injection: phase 4d picks the controls from these
    else:
        ckey = seeding.row_keys(seed, cfg.name, "matching", pool["galaxy_id"].to_numpy())
        n_ctl = max(int(round(cfg.systems_per_galaxy * n_pos * ctl_per_pos)) - unlensed_systems(cfg) * len(unlensed), 0)
        ctl = pool.iloc[np.sort(_matched_controls(pos, pool, n_ctl, ckey))]
    return pos, unlensed, ctl, {"pool": _standardised_mean_differences(pos, pool),
                                "controls": _standardised_mean_differences(pos, pd.concat([unlensed, ctl]))}, \
        n_easy - len(easy)


def build_manifest(parent: pd.DataFrame, cfg: DatasetConfig, seed: int,
                   known_lenses: pd.DataFrame, past_false_positives: pd.DataFrame | None = None,
                   bench: BenchRegion | None = None, criteria: Criteria | None = None) -> tuple[pd.DataFrame, dict]:
    """The manifest (one row per stamp, sorted by brick then sample_id) and its audit.

    ``parent`` is the phase-3 parent sample; ``known_lenses`` has ra, dec (degrees);
    ``past_false_positives`` (optional) has galaxy_id or ra, dec; no galaxy of the
    ``bench`` region (:mod:`lensfinder.bench_region`) enters any split; ``criteria``
    (phase 4c's ``inject.recognisable``) is needed with ``lensable_hosts``.
    """
    if cfg.lensable_hosts and criteria is None:
        raise ValueError(f"dataset {cfg.name}: lensable_hosts needs phase 4c's recognisability criteria")
    gal = parent.loc[:, [c for c in PARENT_COLUMNS if c in parent.columns]].copy()
    if "population" not in gal:
        gal["population"] = UNLABELLED
    n_past = mark_past_false_positives(gal, past_false_positives)
    n_parent = len(gal)
    veto = known_lens_veto(gal["ra"].to_numpy(), gal["dec"].to_numpy(), known_lenses)
    # A galaxy near a catalogued lens is never a control; it is left out altogether, so a
    # real lens cannot hide among the positives either.
    gal = gal.loc[~veto]
    # the test bench's galaxies are never trained, validated or tested on by a dataset
    benched = in_bench(gal["ra"].to_numpy(), gal["dec"].to_numpy(), bench, seed)
    gal = gal.loc[~benched]
    # Galaxy order (and the cap) from per-galaxy hashes: independent of input row order.
    gkey = seeding.row_keys(seed, cfg.name, "galaxy-order", gal["galaxy_id"].to_numpy())
    gal = gal.iloc[np.argsort(seeding.uniform(gkey), kind="stable")]
    if cfg.max_galaxies is not None:
        gal = gal.iloc[: cfg.max_galaxies]
    gal = gal.reset_index(drop=True)

    pos, unlensed, ctl, matching, n_unlensable = (gal, gal.iloc[:0], gal, None, 0) if cfg.control == "paired" \
        else _unpaired(gal, cfg, seed, criteria)
    # k systems per positive (and unlensed-control) galaxy: k rows, each its own draw; on
    # shared hosts the unlensed systems are numbered after the positives' (draws of their own)
    k = cfg.systems_per_galaxy
    pos, unlensed = with_systems(pos, k), with_systems(unlensed, unlensed_systems(cfg), k if cfg.shared_hosts else 0)
    params = draw_parameters(cfg.priors, seed, cfg.name, pos)
    rows_pos = pos.assign(label=np.int8(1), **params)
    # an unlensed-source control's system is drawn exactly as a positive's (its own galaxy's
    # stream), so its source's flux, colour and image radii follow the positives'
    rows_unl = unlensed.assign(label=np.int8(0), population=UNLENSED_SOURCE,
                               **draw_parameters(cfg.priors, seed, cfg.name, unlensed))
    rows_ctl = ctl.assign(label=np.int8(0), **{k: np.nan for k in MANIFEST_PARAMS}, source_in_caustic=False)
    m = pd.concat([rows_pos, rows_unl, rows_ctl], ignore_index=True)
    # sample_id: the galaxy id with the label as lowest bit and the system number above the
    # galaxy id (unique: a galaxy appears at most once per label and system), so ids are
    # stable when other galaxies come or go.
    m["sample_id"] = (m["galaxy_id"].to_numpy() << 1) | m["label"].to_numpy().astype(np.int64)
    if "system" in m:
        m["system"] = m["system"].fillna(0).astype(np.int16)
        m["sample_id"] |= m["system"].to_numpy().astype(np.int64) << SYSTEM_SHIFT
    m["twin_sample_id"] = np.int64(-1)
    if cfg.control == "paired":
        m["twin_sample_id"] = m["sample_id"].to_numpy() ^ 1
    m["control_strategy"] = cfg.control

    # splits
    m["healpix"] = healpix_of(m["ra"].to_numpy(), m["dec"].to_numpy(), cfg.healpix_nside)
    split_unit = {"row": m["sample_id"], "galaxy": m["galaxy_id"], "sky": m["healpix"]}[cfg.split].to_numpy()
    m["split"] = split_of_units(split_unit, cfg, seed)
    m["seed"] = seeding.row_keys(seed, cfg.name, "row", m["sample_id"].to_numpy()).view(np.int64)
    m = m.sort_values(["brickname", "sample_id"], kind="stable").reset_index(drop=True)

    audit = leakage_audit(m)
    audit.update({
        "dataset": cfg.name, "control_strategy": cfg.control, "split_scheme": cfg.split,
        "healpix_nside": cfg.healpix_nside, "n_parent": n_parent, "n_vetoed_known_lens": int(veto.sum()),
        "veto_radius_arcsec": MATCH_RADIUS_ARCSEC, "n_galaxies_used": int(m["galaxy_id"].nunique()),
        "n_in_bench_region": int(benched.sum()), "bench_region": bench.as_params() if bench else None,
        "matching_standardised_mean_difference": matching,
        "hard_negative_fraction": cfg.hard_negative_fraction, "n_marked_past_false_positive": n_past,
        "unlensed_controls_per_positive": cfg.unlensed_controls, "n_unlensed_controls": len(rows_unl),
        "systems_per_galaxy": cfg.systems_per_galaxy, "lensable_hosts": cfg.lensable_hosts,
        "n_unlensable_hosts": n_unlensable,
        "populations": population_counts(m),
        "first_draws": first_draw_summary(rows_pos),
    })
    return m, audit


FIRST_DRAW_COLUMNS = ("theta_e", "lens_sigma", "src_z", "z_lens", "src_mag_r")


def first_draw_summary(pos: pd.DataFrame) -> dict:
    """The lens population before phase 4c: 10th/50th/90th percentiles of the positives'
    first draws (theta_E arcsec, sigma km/s, redshifts, source r mag) and how many have no
    theta_E (no lens redshift under ``theta_e_model: velocity_dispersion``). Phase 4c keeps
    the recognisable draws; its stamps report and ``injection.png`` show what was kept."""
    out = {"n_positives": len(pos), "n_without_theta_e": int(pos["theta_e"].isna().sum()), "quantiles": {}}
    for c in FIRST_DRAW_COLUMNS:
        v = pos[c].to_numpy(dtype=float) if c in pos else np.array([])
        v = v[np.isfinite(v)]
        out["quantiles"][c] = dict(zip(("p10", "p50", "p90"), np.round(np.quantile(v, [0.1, 0.5, 0.9]), 4).tolist())) \
            if len(v) else None
    return out


def leakage_audit(m: pd.DataFrame) -> dict:
    """Counts per split and label, and leakage between splits: galaxies, HEALPix pixels
    and paired twins that appear in more than one split."""
    by = m.groupby(["split", "label"]).size()
    counts = {s: {"positives": int(by.get((s, 1), 0)), "controls": int(by.get((s, 0), 0))} for s in SPLITS}
    gal_splits = m.groupby("galaxy_id")["split"].nunique()
    pix_splits = m.groupby("healpix")["split"].nunique()
    twins = m[m["twin_sample_id"] >= 0]
    twin_split = twins.set_index("sample_id")["split"]
    crossing = int((twin_split.reindex(twins["twin_sample_id"]).to_numpy() != twins["split"].to_numpy()).sum() // 2)
    return {
        "n_rows": len(m), "counts": counts,
        "galaxies_in_multiple_splits": int((gal_splits > 1).sum()),
        "healpix_pixels_in_multiple_splits": int((pix_splits > 1).sum()),
        "paired_twins_across_splits": crossing,
        "leaky": bool((gal_splits > 1).any() or crossing > 0),
    }


def manifest_table(m: pd.DataFrame) -> pa.Table:
    """The manifest as an Arrow table with stable column order and dtypes."""
    t = pa.Table.from_pandas(m, preserve_index=False)
    return t.cast(pa.schema([f.with_type(pa.float32()) if f.name in MANIFEST_PARAMS else f for f in t.schema]))


def negatives_manifest(parent: pa.Table, split: str) -> pa.Table:
    """Parent-sample rows as a manifest of label-0 stamps with nothing to inject (split
    ``split``, sample_id = galaxy_id << 1 as phase 4a gives controls), sorted by brick then
    sample_id because phase 4c streams a manifest brick by brick."""
    n = parent.num_rows
    gid = parent["galaxy_id"].to_numpy()
    t = parent.append_column("label", pa.array(np.zeros(n, np.int8)))
    t = t.append_column("sample_id", pa.array(gid.astype(np.int64) << 1))
    t = t.append_column("twin_sample_id", pa.array(np.full(n, -1, np.int64)))
    t = t.append_column("split", pa.array([split] * n, pa.large_string()))
    order = np.lexsort((t["sample_id"].to_numpy(), t["brickname"].to_numpy(zero_copy_only=False)))
    return t.take(pa.array(order))


class EmptySplit(ValueError):
    """A split without positives or without controls: training or evaluation cannot use it."""


def check_splits(audit: dict) -> None:
    """Every split needs positives and controls (train to learn, val for early stopping,
    test for the metrics); fail in phase 4a rather than after phase 4c and an epoch."""
    bad = {s: c for s, c in audit["counts"].items() if min(c.values()) == 0}
    if bad:
        hint = (f" With split: sky, raise datasets.{audit['dataset']}.healpix_nside (now {audit['healpix_nside']}) "
                "or cover more sky." if audit["split_scheme"] == "sky" else "")
        raise EmptySplit(f"dataset {audit['dataset']}: split(s) without positives or controls: {bad} "
                         f"(of {audit['n_rows']} rows).{hint}")


def sky_split_pixels(bricks, brick_size_pix: int, cfg: DatasetConfig, seed: int) -> dict[str, int]:
    """HEALPix pixels of each split inside the footprint of square mock bricks (degrees from
    :func:`lensfinder.sky.bricks.brick_center`): a split with none here cannot receive a row,
    so the workflow refuses the configuration before any job runs."""
    hp = HEALPix(nside=cfg.healpix_nside, order="nested")
    half = brick_size_pix * PIXSCALE / 3600 / 2
    step = min(half, hp.pixel_resolution.to_value(u.deg) / 4)
    offsets = np.arange(-half, half + step / 2, step)
    pix = set()
    for b in bricks:
        ra0, dec0 = brick_center(b)
        dd, rr = np.meshgrid(dec0 + offsets, offsets, indexing="ij")
        ra = ra0 + rr / np.cos(np.radians(dd))
        pix.update(hp.lonlat_to_healpix(ra.ravel() * u.deg, dd.ravel() * u.deg).tolist())
    splits = split_of_units(np.array(sorted(pix), dtype=np.int64), cfg, seed)
    return {s: int((splits == s).sum()) for s in SPLITS}


def read_past_false_positives(path) -> pd.DataFrame:
    """A user's list of past false positives: a CSV with a galaxy_id column (phase-3 ids)
    or ra and dec columns (degrees). Anything else is an error naming the file."""
    df = pd.read_csv(path)
    if "galaxy_id" in df:
        return df[["galaxy_id"]].astype({"galaxy_id": np.int64})
    if {"ra", "dec"} <= set(df.columns):
        return df[["ra", "dec"]].astype(float)
    raise ValueError(f"{path}: a past-false-positive list needs a galaxy_id column or ra and dec columns "
                     f"(it has {', '.join(map(str, df.columns))})")


def write_manifest(parent_path, dataset: DatasetConfig, seed: int, known_lenses_path,
                   manifest_path, audit_path, past_false_positives_path=None, bench: BenchRegion | None = None,
                   criteria: Criteria | None = None) -> dict:
    """Phase-4a rule body: read the parent sample, known lenses and (optional) past false
    positives, write the manifest Parquet and its audit JSON. Returns the audit. Raises
    :class:`EmptySplit` when a split has no positives or no controls."""
    parent = pd.read_parquet(parent_path)
    known = pd.read_csv(known_lenses_path, usecols=["ra", "dec"])
    past = read_past_false_positives(past_false_positives_path) if past_false_positives_path else None
    m, audit = build_manifest(parent, dataset, seed, known, past, bench, criteria)
    check_splits(audit)
    write_parquet(manifest_table(m), manifest_path)
    write_json(audit, audit_path)
    return audit
