"""Phase 5, after evaluation: one run scored on the test bench (:mod:`lensfinder.bench`).

Every run -- each seed, ablation, gen2 and gen3 -- is scored on the same bench rows, so
their numbers compare models on the same galaxies. Writes ``bench_scores.parquet``
(sample_id, label, float32 logit, bench_kind, population), ``bench_metrics.json``
(:func:`lensfinder.bench_metrics.bench_metrics`), the selection-function figure and the
purity-completeness curve.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from lensfinder import plots
from lensfinder.bench import BenchConfig
from lensfinder.bench_metrics import SELECTION_QUANTITIES, bench_metrics
from lensfinder.stamps import read_columns
from lensfinder.tables import write_json, write_parquet
from lensfinder.training.inference import SelectedModel, scores_table

BENCH_COLUMNS = ("sample_id", "bench_kind", "population", *SELECTION_QUANTITIES)


def read_bench_rows(stamp_paths) -> pd.DataFrame:
    """The bench stamps' per-row columns (no pixels), sorted by sample_id."""
    t = read_columns(sorted(str(p) for p in stamp_paths), list(BENCH_COLUMNS)).to_pandas()
    return t.sort_values("sample_id", kind="stable").reset_index(drop=True)


def score_bench(run_config_path, best_path, stamp_paths, cfg: BenchConfig, out_scores, out_metrics,
                out_selection_png, out_purity_png) -> dict:
    """Rule body of ``bench_score``: score every bench row with the run's ``best.pt`` and
    write its scores, metrics and figures. Returns the metrics."""
    sel = SelectedModel(run_config_path, best_path)
    sid, labels, logits = sel.score(sorted(str(p) for p in stamp_paths), "test")
    rows = read_bench_rows(stamp_paths)
    if not np.array_equal(rows["sample_id"].to_numpy(), sid):
        raise RuntimeError(f"bench stamps {stamp_paths}: scored rows differ from the rows read")
    t = scores_table(sid, labels, logits)
    t = t.append_column("bench_kind", pa.array(rows["bench_kind"].to_numpy(), pa.int8()))
    t = t.append_column("population", pa.array(rows["population"].astype(str).to_numpy(), pa.large_string()))
    write_parquet(t, out_scores)
    lens = rows["bench_kind"].to_numpy() == 1
    metrics = {"run": sel.cfg.name, **sel.provenance(),
               **bench_metrics(labels, logits, rows["bench_kind"].to_numpy(), rows["population"].to_numpy(),
                               {q: rows.loc[lens, q].to_numpy(float) for q in SELECTION_QUANTITIES},
                               cfg.sky_rates, cfg.prevalence, cfg.selection_fpr)}
    write_json(metrics, out_metrics)
    sky = metrics["sky_prevalence"]
    title = (f"{sel.cfg.name} on the bench (simulation): {sky['n_pos']} lenses, {sky['n_neg']} LRGs at sky "
             f"prevalence")
    plots.selection_function(metrics["selection_function"], out_selection_png, title)
    plots.purity_completeness(metrics["purity"], out_purity_png, title)
    return metrics

