"""Lens candidates: the trained model scores the real, un-injected parent sample.

The parent LRGs become a "dataset" of controls only (label 0, split ``parent``, no arcs),
cut by the same phase-4c code as training stamps -- so the model sees exactly the pixels
it was trained on, minus the injections. Scored with the run's best checkpoint, ranked
by float32 logit, cross-matched with the known-lens catalogue, and the top N drawn for
visual inspection.

On the mock sky there are no real lenses: every known-lens "recovery" there is a
coincidence of positions, and zero is the expected count -- the report says so.
"""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lensfinder import pages, plots
from lensfinder.gallery import rgb, stamps_of_rows
from lensfinder.manifest import negatives_manifest
from lensfinder.sky.crossmatch import MATCH_RADIUS_ARCSEC, nearest_within
from lensfinder.stamps import read_columns
from lensfinder.tables import atomic_path, write_json, write_parquet
from lensfinder.training.inference import SelectedModel

SPLIT = "parent"


def parent_manifest(parent_path, out_path) -> int:
    """Write the parent sample as an all-control manifest (label 0, split ``parent``,
    sample_id = galaxy_id << 1 as in phase 4a). Returns the number of rows."""
    t = negatives_manifest(pq.read_table(parent_path), SPLIT)
    write_parquet(t, out_path)
    return t.num_rows


def score_parent(run_config_path, best_path, stamp_paths) -> tuple[pd.DataFrame, dict]:
    """(galaxy_id, ra, dec, brickname, population, logit (float32) of every parent stamp; the model's
    provenance: configuration fingerprint, checkpoint hash and epoch)."""
    sel = SelectedModel(run_config_path, best_path)
    sid, _, logit = sel.score(stamp_paths, SPLIT)
    cols = ["sample_id", "galaxy_id", "ra", "dec", "brickname", "population"]
    meta = read_columns(stamp_paths, cols).to_pandas().set_index("sample_id")
    df = meta.loc[sid].reset_index()
    df["logit"] = logit
    return df, sel.provenance()


def rank_candidates(scored: pd.DataFrame, known: pd.DataFrame) -> pd.DataFrame:
    """Sorted by logit (descending; ties by galaxy_id), with rank (1-based) and the
    nearest known lens (name, separation) where one lies within the veto radius."""
    df = scored.sort_values(["logit", "galaxy_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    idx, sep = nearest_within(df["ra"].to_numpy(), df["dec"].to_numpy(), known)
    names = known["name"].to_numpy() if "name" in known else np.arange(len(known)).astype(str)
    df["known_lens"] = np.where(idx >= 0, names[np.maximum(idx, 0)] if len(known) else "", "")
    df["known_lens_sep_arcsec"] = sep
    return df[["rank", "galaxy_id", "ra", "dec", "logit", "brickname", "population", "known_lens",
               "known_lens_sep_arcsec"]]


def recall_summary(ranked: pd.DataFrame, known: pd.DataFrame, top_ks=(10, 100, 1000), mock: bool = False) -> dict:
    """Known lenses in the parent sample and how many of them rank in the top K."""
    in_parent = ranked[ranked["known_lens"] != ""]
    out = {"n_parent": int(len(ranked)), "n_known_lenses_catalogue": int(len(known)),
           "match_radius_arcsec": MATCH_RADIUS_ARCSEC, "n_known_in_parent": int(len(in_parent)),
           "recovered_in_top_k": {str(k): int((in_parent["rank"] <= k).sum()) for k in top_ks}, "mock_sky": mock}
    # which kinds of galaxy the model ranks highest (the mock's look-alikes; real sky:
    # unlabelled, or past_false_positive for a user's list)
    out["top_k_by_population"] = {str(k): ranked.head(k)["population"].value_counts().sort_index().to_dict()
                                  for k in top_ks}
    out["note"] = ("Mock sky: it contains no real lenses, so zero recovered known lenses is the expected result by "
                   "construction; any match is a chance alignment of mock positions with catalogued lenses."
                   if mock else "Real sky: recovered known lenses in the top K measure real-world recall.")
    return out


def top_stamps(ranked: pd.DataFrame, stamp_paths, n: int) -> dict[int, np.ndarray]:
    """{galaxy_id: (3, 64, 64) stamp} of the top ``n`` candidates, read one row group at a time."""
    return stamps_of_rows(stamp_paths, ranked["galaxy_id"].head(n), key="galaxy_id")


def write_gallery(ranked: pd.DataFrame, stamps: dict, n: int, out_png, out_html, summary: dict) -> None:
    """A PNG grid and an HTML page (inline images, coordinates, logits, known-lens matches)
    of the top ``n`` candidates."""
    top = ranked.head(n)
    images = [rgb(stamps[int(g)]) for g in top["galaxy_id"]]
    plots.image_grid([(img, f"#{r} {lg:.2f}") for img, r, lg in zip(images, top["rank"], top["logit"])], out_png,
                     f"top {len(top)} candidates (rank, float32 logit)")
    cards = [{**r, "png": base64.b64encode(plots.png_bytes(img)).decode()}
             for img, r in zip(images, top.to_dict("records"))]
    pages.write_page(out_html, "candidates.html.j2", cards=cards, summary=summary)


def write_candidates(run_config_path, best_path, stamp_paths, known_lenses_path, out_parquet, out_csv,
                     out_summary, out_png, out_html, n_gallery: int = 48, mock: bool = False) -> dict:
    """Rule body of ``candidates``."""
    known = pd.read_csv(known_lenses_path, usecols=["name", "ra", "dec"])
    scored, model_info = score_parent(run_config_path, best_path, stamp_paths)
    ranked = rank_candidates(scored, known)
    write_parquet(pa.Table.from_pandas(ranked, preserve_index=False), out_parquet)
    with atomic_path(out_csv) as tmp:
        ranked.to_csv(tmp, index=False, float_format="%.6f")
    summary = recall_summary(ranked, known, mock=mock)
    summary["run_config"] = str(run_config_path)
    summary["model"] = model_info
    write_json(summary, out_summary)
    write_gallery(ranked, top_stamps(ranked, stamp_paths, n_gallery), n_gallery, out_png, out_html, summary)
    return summary
