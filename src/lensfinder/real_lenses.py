"""The sim-to-real check: a trained run scores catalogued real lenses and a random sample of
parent galaxies, both cut by the cutout service, and reports the lenses' recall at the
FPR thresholds the random sample sets.

Networks trained on simulations can look excellent on simulations and poor on the sky
(Euclid Q1: 92% completeness at 100% purity on simulations, 50% at 24% purity on real
lenses; HOLISMOKES XI, Canameras et al. 2024, score 189 real lenses against 70,910 real
non-lenses). This is that measurement for a lensfinder run:

* targets (:func:`write_targets`): the lenses of a catalogue (default the lenscat export in
  ``resources/known_lenses.csv.gz``; any CSV of name, ra, dec[, grading, type]) of the chosen
  gradings and types, inside the run's footprint (the bricks of the parent sample, or every
  position), plus ``n_random`` parent galaxies the run's dataset never used (or a user's CSV
  of random positions) as the background that sets the thresholds;
* pixels: every target through the cutout service (cached, rate-limited, resumable; phase
  4c's code with nothing injected), so lenses and background share one pixel pipeline
  (Lanczos-resampled service cutouts: a domain shift from training stamps cut from native
  coadd pixels, which is part of what this check measures);
* :func:`recall_at_fpr`: the threshold at FPR f is the score exceeded by at most f x n_random
  random galaxies; recall is the fraction of lenses above it, with a 95% bootstrap interval
  over both samples (the threshold's own uncertainty included).

On the mock sky there are no real lenses; the catalogue's positions outside the mock bricks
are left out by the footprint, and any that fall inside are ordinary mock galaxies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lensfinder import seeding
from lensfinder.gallery import population_grid
from lensfinder.manifest import negatives_manifest
from lensfinder.metrics import FPR_TARGETS, metric_key, wilson_interval
from lensfinder.sky.bricks import brickname_at
from lensfinder.stamps import read_columns
from lensfinder.tables import write_json, write_parquet
from lensfinder.training.inference import SelectedModel

SPLIT = "real_lenses"
KNOWN_LENS = "known_lens"
RANDOM = "random"
KNOWN_ID_BIT = np.int64(1) << np.int64(62)  # sample ids of catalogue lenses; parent ids are galaxy_id << 1
FOOTPRINTS = ("parent_bricks", "all")
SUMMARY_FPRS = (*FPR_TARGETS, 1e-2)


@dataclass(frozen=True)
class RealLensesConfig:
    """The ``real_lenses`` config section (paths relative to the working directory)."""

    run: str | None = None           # None: candidates.run
    lenses: str | None = None        # None: resources/known_lenses.csv.gz
    gradings: tuple = ("confident", "probable")
    types: tuple = ("galaxy",)       # lenscat: galaxy, group, cluster
    footprint: str = "parent_bricks"
    n_random: int = 20000
    random_positions: str | None = None  # CSV of ra, dec instead of parent galaxies
    gallery_size: int = 12           # of the highest- and of the lowest-scored lenses each
    n_boot: int = 2000

    @classmethod
    def from_dict(cls, d: dict | None) -> "RealLensesConfig":
        d = dict(d or {})
        for k in ("gradings", "types"):
            if k in d:
                d[k] = tuple(d[k])
        cfg = cls(**d)
        if cfg.footprint not in FOOTPRINTS:
            raise ValueError(f"real_lenses.footprint: {cfg.footprint!r} is not one of {list(FOOTPRINTS)}")
        return cfg


def read_lens_catalogue(path) -> pd.DataFrame:
    """name, ra, dec (degrees), grading, type of a lens list; grading and type default to
    'ungraded' / 'galaxy' where the file has none. A file without name, ra and dec is an error
    naming it; rows with unusable coordinates are an error naming the first."""
    df = pd.read_csv(path)
    missing = {"name", "ra", "dec"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: a lens list needs columns name, ra, dec (missing: {', '.join(sorted(missing))})")
    ra, dec = pd.to_numeric(df["ra"], errors="coerce"), pd.to_numeric(df["dec"], errors="coerce")
    bad = ~(ra.between(0, 360) & dec.between(-90, 90))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: row {i + 2} ({df['name'].iloc[i]!r}): ra, dec must be degrees in [0, 360], [-90, 90]")
    return pd.DataFrame({"name": df["name"].astype(str), "ra": ra, "dec": dec,
                         "grading": df["grading"].astype(str) if "grading" in df else "ungraded",
                         "type": df["type"].astype(str) if "type" in df else "galaxy"})


def select_lenses(known: pd.DataFrame, cfg: RealLensesConfig, bricks: set[str] | None) -> tuple[pd.DataFrame, dict]:
    """The catalogue lenses to score (with their brickname) and counts at each cut.
    ``bricks``: the footprint's bricks (None: every position)."""
    grade = known["grading"].isin(cfg.gradings) | (known["grading"] == "ungraded")
    kind = known["type"].isin(cfg.types)
    sel = known[grade & kind].copy()
    sel["brickname"] = [brickname_at(r, d) for r, d in zip(sel["ra"], sel["dec"])]
    inside = sel["brickname"].isin(bricks).to_numpy() if bricks is not None else np.ones(len(sel), bool)
    counts = {"n_catalogue": int(len(known)), "n_grading_and_type": int(len(sel)),
              "n_in_footprint": int(inside.sum()), "footprint": cfg.footprint,
              "by_grading": sel[inside]["grading"].value_counts().sort_index().to_dict()}
    return sel[inside].reset_index(drop=True), counts


def random_sample(parent: pd.DataFrame, used_galaxies: np.ndarray, n: int, seed: int) -> pd.DataFrame:
    """``n`` parent galaxies the run's dataset never used, in per-galaxy hash order."""
    free = parent[~np.isin(parent["galaxy_id"].to_numpy(), used_galaxies)]
    order = np.argsort(seeding.uniform(seeding.row_keys(seed, "real-lenses", free["galaxy_id"].to_numpy())),
                       kind="stable")
    return free.iloc[order[:n]]


def targets_table(lenses: pd.DataFrame, background: pd.DataFrame) -> pa.Table:
    """One manifest of label-0 rows (nothing is injected): the lenses (sample_id
    KNOWN_ID_BIT | row, population known_lens) and the background (population random)."""
    n = len(lenses)
    lens_rows = pd.DataFrame({"galaxy_id": KNOWN_ID_BIT // 2 + np.arange(n, dtype=np.int64), "brickname": lenses["brickname"],
                              "ra": lenses["ra"], "dec": lenses["dec"], "population": KNOWN_LENS,
                              "name": lenses["name"], "grading": lenses["grading"]})
    bg = pd.DataFrame({"galaxy_id": background["galaxy_id"].to_numpy(np.int64),
                       "brickname": background["brickname"].to_numpy(), "ra": background["ra"].to_numpy(),
                       "dec": background["dec"].to_numpy(), "population": RANDOM, "name": "", "grading": ""})
    return negatives_manifest(pa.Table.from_pandas(pd.concat([lens_rows, bg], ignore_index=True),
                                                   preserve_index=False), SPLIT)


def read_random_positions(path) -> pd.DataFrame:
    """A user's background positions: a CSV with ra and dec (degrees)."""
    df = pd.read_csv(path)
    if not {"ra", "dec"} <= set(df.columns):
        raise ValueError(f"{path}: random positions need ra and dec columns (it has {', '.join(map(str, df.columns))})")
    return pd.DataFrame({"galaxy_id": np.arange(len(df), dtype=np.int64), "ra": df["ra"].astype(float),
                         "dec": df["dec"].astype(float),
                         "brickname": [brickname_at(r, d) for r, d in zip(df["ra"], df["dec"])]})


def write_targets(lenses_path, parent_path, manifest_path, random_positions_path, cfg: RealLensesConfig, seed: int,
                  out_manifest, out_audit) -> dict:
    """Rule body: the targets manifest and its counts. ``parent_path``/``manifest_path``:
    the parent sample and the run's dataset manifest (None with ``random_positions_path``)."""
    known = read_lens_catalogue(lenses_path)
    if random_positions_path:
        background = read_random_positions(random_positions_path)
        bricks = set(background["brickname"]) if cfg.footprint == "parent_bricks" else None
    else:
        parent = pq.read_table(parent_path, columns=["galaxy_id", "brickname", "ra", "dec"]).to_pandas()
        used = pq.read_table(manifest_path, columns=["galaxy_id"])["galaxy_id"].to_numpy()
        background = random_sample(parent, used, cfg.n_random, seed)
        bricks = set(parent["brickname"]) if cfg.footprint == "parent_bricks" else None
    lenses, counts = select_lenses(known, cfg, bricks)
    t = targets_table(lenses, background)
    audit = {"lenses": {"source": str(lenses_path), **counts},
             "random": {"source": str(random_positions_path or parent_path), "n": int(len(background))}}
    write_parquet(t, out_manifest)
    write_json(audit, out_audit)
    return audit


def thresholds_at_fprs(random_scores: np.ndarray, fprs) -> np.ndarray:
    """Per FPR f, the score that at most f x n of the random sample exceed (scores strictly
    above it are called lenses)."""
    s = np.sort(np.asarray(random_scores, np.float64))[::-1]
    return s[np.minimum(np.floor(np.asarray(fprs) * len(s)).astype(int), len(s) - 1)]


def recall_at_fpr(lens_scores, random_scores, fprs=SUMMARY_FPRS, n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """Per FPR: threshold, recall (lenses above it), its 95% Wilson interval (lens sampling
    only) and 95% bootstrap interval (lenses and random sample resampled together; null
    with ``n_boot`` 0), and whether n_random resolves that FPR."""
    lens, rnd = np.asarray(lens_scores, np.float64), np.asarray(random_scores, np.float64)
    rng = np.random.default_rng(seeding.row_keys(seed, "real-lenses-bootstrap", np.zeros(1, np.int64))[0])
    boot = np.empty((n_boot, len(fprs)))
    for b in range(n_boot):
        lb, rb = rng.choice(lens, len(lens)), rng.choice(rnd, len(rnd))
        boot[b] = (lb[:, None] > thresholds_at_fprs(rb, fprs)[None, :]).mean(axis=0)
    out = []
    for j, (f, thr) in enumerate(zip(fprs, thresholds_at_fprs(rnd, fprs))):
        k = int((lens > thr).sum())
        ci = [float(np.percentile(boot[:, j], 2.5)), float(np.percentile(boot[:, j], 97.5))] if n_boot else None
        out.append({"fpr": f, "key": metric_key(f), "threshold_logit": float(thr), "resolvable": bool(f * len(rnd) >= 1),
                    "fpr_realised": float((rnd > thr).mean()), "n_recovered": k, "recall": k / len(lens),
                    "recall_wilson_ci95": wilson_interval(k, len(lens)), "recall_bootstrap_ci95": ci})
    return out


def score_targets(run_config_path, best_path, stamp_paths) -> tuple[pd.DataFrame, dict]:
    """(sample_id, population, name, grading, ra, dec, logit (float32) of every target stamp;
    the model's provenance). A run that feeds catalogue PSF size and depth to its network
    cannot score catalogue lenses, which have no sweep row: refused, naming the setting."""
    sel = SelectedModel(run_config_path, best_path)
    if sel.cfg.model.metadata:
        raise ValueError(f"run {sel.cfg.name}: model.metadata is true, but catalogued lenses have no sweep row to "
                         "give PSF size and depth; score a run without metadata")
    sid, _, logit = sel.score(stamp_paths, SPLIT)
    meta = read_columns(stamp_paths, ["sample_id", "population", "name", "grading", "ra", "dec"]).to_pandas()
    df = meta.set_index("sample_id").loc[sid].reset_index()
    df["logit"] = logit
    return df, sel.provenance()


def lens_gallery(scored: pd.DataFrame, stamp_paths, n: int, out_png, title: str) -> None:
    """PNG: the ``n`` highest- and the ``n`` lowest-scored lenses, a row each."""
    lens = scored[scored["population"] == KNOWN_LENS].sort_values(["logit", "name"], ascending=[False, True])
    shown = pd.concat([lens.head(n).assign(population="1 highest-scored"),
                       lens.tail(min(n, max(len(lens) - n, 0))).iloc[::-1].assign(population="2 lowest-scored")])
    population_grid(shown, stamp_paths, out_png, title, n, lambda r: f"{r.name}\n{r.grading} {r.logit:.2f}")


def real_lens_summary(scored: pd.DataFrame, cfg: RealLensesConfig, seed: int) -> dict:
    """Recall at the random sample's FPR thresholds (all lenses, and per grading) and the
    lenses-vs-random AUC; recall is null where no lens was scored."""
    from sklearn.metrics import roc_auc_score
    lens = scored[scored["population"] == KNOWN_LENS]
    rnd = scored.loc[scored["population"] == RANDOM, "logit"].to_numpy()
    out = {"n_lenses_scored": int(len(lens)), "n_random_scored": int(len(rnd)),
           "min_resolvable_fpr": 1.0 / len(rnd) if len(rnd) else None, "recall": None, "by_grading": {}, "auc": None}
    if len(lens) == 0 or len(rnd) == 0:
        return out
    out["recall"] = recall_at_fpr(lens["logit"], rnd, n_boot=cfg.n_boot, seed=seed)
    out["by_grading"] = {g: {r["key"]: r["recall"] for r in recall_at_fpr(grp["logit"], rnd, n_boot=0)}
                         | {"n": int(len(grp))} for g, grp in lens.groupby("grading", sort=True)}
    y = np.r_[np.ones(len(lens)), np.zeros(len(rnd))]
    out["auc"] = float(roc_auc_score(y, np.r_[lens["logit"].to_numpy(), rnd]))
    return out


def write_real_lenses(run_config_path, best_path, stamp_paths, targets_audit_path, cfg: RealLensesConfig, seed: int,
                      mock: bool, out_scores, out_summary, out_png) -> dict:
    """Rule body: score the targets' stamps, write per-target scores, the summary and the
    gallery. Returns the summary."""
    import json
    from pathlib import Path
    stamp_paths = sorted(str(p) for p in stamp_paths)
    scored, provenance = score_targets(run_config_path, best_path, stamp_paths)
    write_parquet(pa.Table.from_pandas(scored, preserve_index=False), out_scores)
    targets = json.loads(Path(targets_audit_path).read_text())
    summary = {"run": provenance, "targets": targets, **real_lens_summary(scored, cfg, seed),
               "n_lenses_without_cutout": targets["lenses"]["n_in_footprint"]
               - int((scored["population"] == KNOWN_LENS).sum()),
               "n_random_without_cutout": targets["random"]["n"] - int((scored["population"] == RANDOM).sum()),
               "mock_sky": mock}
    for kind, n_asked, n_scored in (("catalogued lenses", targets["lenses"]["n_in_footprint"], summary["n_lenses_scored"]),
                                    ("random parent galaxies", targets["random"]["n"], summary["n_random_scored"])):
        if n_asked and not n_scored:  # every cutout lost: a dead source, not a result
            raise RuntimeError(f"real_lenses: none of the {n_asked} {kind} in the footprint got a stamp "
                               f"({', '.join(str(p) for p in stamp_paths)}: see their reports' skips)")
    if mock:
        summary["note"] = ("mock sky: it holds no real lenses; catalogue positions inside the mock bricks are "
                           "ordinary mock galaxies, so these numbers test the plumbing, not the model")
    write_json(summary, out_summary)
    lens_gallery(scored, stamp_paths, cfg.gallery_size, out_png,
                 f"known lenses scored by {Path(run_config_path).parent.name} (name, grading, logit)")
    return summary
