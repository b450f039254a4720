"""Learning curves: one run trained on nested shares of its training split (the loader's
``train_fraction``), every point scored on the test bench, so that bench AUC and TPR at
sky FPR 1e-3 / 1e-4 can be read against the number of training lenses -- where a finder
that falls short would get with more data (issue 31). Epochs are the other axis: each
point's validation metrics per epoch, from its ``history.json``.

The config section ``learning_curve: {run, fractions}`` adds the runs ``<run>_lc<k>``
(k = 1, 2, ... in the order of ``fractions``), each the run with ``loader.train_fraction``
set; the run itself is the point at fraction 1. Seeds replicate every point as they do the
run (``runs.<run>.seeds``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from lensfinder import contracts
from lensfinder.contracts import TPR_KEYS
from lensfinder.plots import write_png
from lensfinder.tables import write_json

CURVE_METRICS = ("auc", "tpr@fpr0.001", "tpr@fpr1e-4")
"""Bench metrics (sky prevalence) read at every point."""
TARGETS = {"auc": 0.98, "tpr@fpr0.001": 0.50, "tpr@fpr1e-4": 0.20}
"""What a finder must reach on the bench (issue 31's "Must show")."""
PRODUCTION_LENSES = 650_000
"""Training lenses of a production run: 1.3M stamps at half positives (gen2's data size)."""


def point_name(run: str, k: int) -> str:
    """Name of the ``k``-th (1-based) reduced-data point of ``run``'s learning curve."""
    return f"{run}_lc{k}"


def learning_curve_runs(runs: dict, section: dict | None) -> dict:
    """{point name: run config} for ``section`` = ``{run, fractions}``: the run's config with
    its loader's ``train_fraction`` set to each fraction (< 1; the run itself is 1)."""
    if not section:
        return {}
    base = section["run"]
    if base not in runs:
        raise KeyError(f"learning_curve.run {base!r} is not a run (runs: {', '.join(runs)})")
    fractions = [float(f) for f in section["fractions"]]
    if any(not 0 < f < 1 for f in fractions) or len(set(fractions)) != len(fractions):
        raise ValueError(f"learning_curve.fractions: {fractions} must be distinct and in (0, 1) "
                         "(the run itself is the point at 1)")
    cfg = runs[base]
    return {point_name(base, k): {**cfg, "loader": {**cfg.get("loader", {}), "train_fraction": f}}
            for k, f in enumerate(fractions, 1)}


@dataclass
class CurvePoint:
    """One fraction of the training split: its replicate runs and their files."""

    fraction: float
    runs: list[str]
    bench_metrics: list[str]  # paths of each replicate's bench_metrics.json
    histories: list[str]      # paths of each replicate's history.json


def _point(p: CurvePoint) -> dict:
    bench = [json.loads(Path(f).read_text())["sky_prevalence"] for f in p.bench_metrics]
    hist = [contracts.read(contracts.History, f) for f in p.histories]  # a malformed history is named
    lenses = [h["epochs"][0].get("n_train_pos") for h in hist]
    return {
        "fraction": p.fraction, "runs": p.runs, "n_train_lenses": lenses,
        "n_train_samples": [h["epochs"][0]["n_train"] for h in hist],
        "best_epoch": [h["best_epoch"] for h in hist],
        "bench": {m: [b[m] for b in bench] for m in CURVE_METRICS},
        "bench_n_pos": bench[0]["n_pos"], "bench_n_neg": bench[0]["n_neg"],
        "val_by_epoch": [[{"epoch": e["epoch"], **{m: e.get(m) for m in ("auc", *TPR_KEYS) if m in e}}
                          for e in h["epochs"]] for h in hist],
    }


def trend(points: list[dict], metric: str) -> dict | None:
    """Least-squares line of the seed-mean ``metric`` against log10(training lenses), read at
    10x the largest point and at :data:`PRODUCTION_LENSES`, with the number of lenses at
    which it would reach :data:`TARGETS` (None if it does not rise) -- an extrapolation,
    labelled as such; None with fewer than 3 points."""
    xs, ys = [], []
    for p in points:
        if None in p["n_train_lenses"]:
            return None
        xs.append(np.log10(np.mean(p["n_train_lenses"])))
        ys.append(float(np.mean(p["bench"][metric])))
    if len(xs) < 3:
        return None
    slope, intercept = np.polyfit(xs, ys, 1)
    at = lambda lenses: float(np.clip(slope * np.log10(lenses) + intercept, 0, 1))  # noqa: E731
    target = TARGETS[metric]
    reach = 10 ** ((target - intercept) / slope) if slope > 0 else None
    return {"per_decade": float(slope), "at_10x_the_largest": at(10 ** (max(xs) + 1)),
            "at_production": at(PRODUCTION_LENSES), "production_lenses": PRODUCTION_LENSES,
            "target": target, "lenses_to_reach_target": None if reach is None else float(reach),
            "assumes": "the metric keeps rising linearly in log10(training lenses) beyond the points measured, "
                       "with this network, epochs and sky (a production run -- ConvNeXt-Tiny on a GPU, 1.3M "
                       "stamps -- changes the network and the schedule too); an extrapolation, not a measurement"}


def write_learning_curve(points: list[CurvePoint], run: str, out_json, out_png) -> dict:
    """The curve's JSON (every point, each replicate's bench metrics and validation history)
    and figure: bench metrics against training lenses, validation AUC against epoch."""
    rows = sorted((_point(p) for p in points), key=lambda r: r["fraction"])
    result = {"run": run, "simulation": True, "points": rows,
              "trend": {m: trend(rows, m) for m in CURVE_METRICS}}
    write_json(result, out_json)
    _figure(result, out_png)
    return result


def _figure(result: dict, path) -> None:
    fig = Figure(figsize=(10, 4))
    ax, bx = fig.subplots(1, 2)
    for m, colour in zip(CURVE_METRICS, ("k", "C0", "C3")):
        pts = [(np.mean(p["n_train_lenses"]), p["bench"][m]) for p in result["points"] if None not in p["n_train_lenses"]]
        if not pts:
            continue
        x = [a for a, _ in pts]
        ax.plot(x, [np.mean(v) for _, v in pts], "o-", color=colour, label=f"bench {m} (dotted: target)")
        ax.axhline(TARGETS[m], color=colour, ls=":", lw=0.8)
        for a, v in pts:
            ax.plot([a] * len(v), v, ".", color=colour, alpha=0.4)
    ax.set(xscale="log", xlabel="training lenses", ylabel="bench metric (sky prevalence)", ylim=(0, 1),
           title=f"{result['run']}: learning curve (simulation)")
    ax.legend(fontsize=8)
    for p in result["points"]:
        for k, hist in enumerate(p["val_by_epoch"]):
            bx.plot([e["epoch"] for e in hist], [e.get("auc") for e in hist], "-",
                    color=f"C{result['points'].index(p)}", alpha=0.8,
                    label=f"{p['fraction']:g} of the training split" if k == 0 else None)
    bx.set(xlabel="epoch", ylabel="validation AUC", title="validation split, per epoch")
    bx.legend(fontsize=8)
    write_png(fig, path)
