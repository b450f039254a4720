"""The gen2-vs-gen3 comparison: per-run epoch tables and a one-factor-at-a-time summary.

Reads each run's ``history.json`` (validation, per epoch) and ``metrics.json`` (test split,
the checkpoint the run kept). Every TPR carries its 95% Wilson interval; every difference
from the baseline carries Newcombe's hybrid-score interval, so a factor whose effect is
inside the noise of this sample size reads as such.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lensfinder.diagnose import TARGET_KEYS, find_cliffs  # noqa: E402
from lensfinder.metrics import wilson_interval  # noqa: E402
from lensfinder.tables import atomic_path, write_json, write_png  # noqa: E402

EPOCH_KEYS = ("tpr@fpr1e-4", "tpr@fpr0.001", "fpr@tpr0.85", "n_neg_tied_at_top", "auc")


def newcombe_interval(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """95% interval of p1 - p2 for independent binomials (Newcombe 1998, method 10:
    hybrid of the two Wilson score intervals)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1)
    l2, u2 = wilson_interval(k2, n2)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def epoch_table(history: dict) -> list[dict]:
    """One row per epoch: train loss, duplication factor, and the validation metrics in
    the run's stored score dtype and (``f32_`` prefix) as float32 logits."""
    rows = []
    for e in history["epochs"]:
        f32 = e.get("logit_float32", e)
        rows.append({"epoch": e["epoch"], "n_pos": e["n_pos"], "train_loss": e["train_loss"], "lr": e["lr"],
                     "duplication_factor": e["duplication_factor"], "score_dtype": e["score_dtype"],
                     **{k: e[k] for k in EPOCH_KEYS}, **{f"f32_{k}": f32[k] for k in EPOCH_KEYS}})
    return rows


def _as_stored(metrics: dict) -> tuple[str, dict]:
    """(dtype, metrics) as the run itself reported them on the test split."""
    for k, v in metrics.items():
        if k.startswith("metrics_as_"):
            return k[len("metrics_as_"):], v
    return "logit_float32", metrics["metrics"]


def summary_row(label: str, run: str, role: str, factor, dtype: str, m: dict, table: list[dict],
                base: dict | None, dataset: str | None = None) -> dict:
    """One line of the summary table: test TPRs with CIs, differences from the baseline,
    and the validation cliffs of the run's history in that dtype."""
    prefix = "" if dtype == table[0]["score_dtype"] else "f32_"
    n_pos = m["n_pos"]
    row = {"label": label, "run": run, "role": role, "factor": factor, "score_dtype": dtype, "dataset": dataset,
           "n_pos": n_pos, "n_neg": m["n_neg"], "min_resolvable_fpr": m["min_resolvable_fpr"],
           "auc": m["auc"], "n_neg_tied_at_top": m["n_neg_tied_at_top"],
           "epochs_run": len(table), "duplication_factor": table[-1]["duplication_factor"],
           "val_cliff_epochs": {k: [table[i]["epoch"] for i in find_cliffs([r[prefix + k] for r in table],
                                                                          table[0]["n_pos"])]
                                for k in TARGET_KEYS}}
    for k in TARGET_KEYS:
        row[k] = m[k]
        row[f"{k}_ci95"] = list(wilson_interval(round(m[k] * n_pos), n_pos))
        if base is not None:
            d = newcombe_interval(round(m[k] * n_pos), n_pos, round(base[k] * base["n_pos"]), base["n_pos"])
            row[f"delta_{k}"] = m[k] - base[k]
            row[f"delta_{k}_ci95"] = list(d)
            row[f"delta_{k}_significant"] = bool(d[0] > 0 or d[1] < 0)
    return row


def compare_runs(rows: list[dict], inputs: dict, out_json, out_html, out_png, configs: dict | None = None) -> dict:
    """Rule body of ``compare``. ``rows``: :func:`lensfinder.ablations.comparison_rows`;
    ``inputs``: {run: {"history": path, "metrics": path}}; ``configs``: {run: run config}."""
    runs = {}
    for r in rows:
        hist = json.loads(Path(inputs[r["run"]]["history"]).read_text())
        metrics = json.loads(Path(inputs[r["run"]]["metrics"]).read_text())
        if metrics.get("fingerprint") != hist.get("fingerprint"):
            raise RuntimeError(f"{inputs[r['run']]['metrics']} (configuration {metrics.get('fingerprint')}) does not come "
                               f"from the training of {inputs[r['run']]['history']} ({hist.get('fingerprint')}): "
                               f"rerun evaluate for run {r['run']}")
        table = epoch_table(hist)
        runs[r["run"]] = {**r, "epochs": table, "best_epoch": hist.get("best_epoch"),
                          "stopped_early": hist.get("stopped_early"), "checkpoint_epoch": metrics.get("checkpoint_epoch"),
                          "test": metrics, "sources": inputs[r["run"]],
                          "config": (configs or {}).get(r["run"], {})}
    base_run = rows[0]["run"]
    base_dtype, base_m = _as_stored(runs[base_run]["test"])
    summary = []
    for r in rows:
        info = runs[r["run"]]
        dtype, m = _as_stored(info["test"])
        label = {"baseline": f"{r['run']} (all fixes)", "reference": f"{r['run']} (every gen2 setting)"}.get(
            r["role"], f"{base_run} + {r['factor']}")
        ds = info["config"].get("dataset")
        summary.append(summary_row(label, r["run"], r["role"], r["factor"], dtype, m, info["epochs"],
                                   None if r["role"] == "baseline" else base_m, ds))
        if dtype != "logit_float32":
            # the same weights and scores, ranked as float32 logits: the cast alone removed
            summary.append(summary_row(f"{r['run']} without the {dtype} cast (same weights, float32 logits)",
                                       r["run"], r["role"] + "_float32", "cast removed", "logit_float32",
                                       info["test"]["metrics"], info["epochs"], base_m, ds))
    out = {"baseline": base_run, "reference": rows[-1]["run"], "summary": summary, "runs": runs}
    write_json(out, out_json)
    with atomic_path(out_html) as tmp:
        tmp.write_text(render_html(out))
    plot_summary(summary, out_png)
    return out


# --------------------------------------------------------------------------- rendering
def _pct(x) -> str:
    return "&ndash;" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _ci(v) -> str:
    return f"[{100 * v[0]:.1f}, {100 * v[1]:.1f}]"


def render_html(c: dict) -> str:
    """The comparison as a standalone HTML page (shown inline by Snakemake's report)."""
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>gen2 vs gen3</title><style>",
           "body{font-family:sans-serif;font-size:13px;margin:12px} table{border-collapse:collapse;margin:8px 0}",
           "td,th{border:1px solid #bbb;padding:2px 6px;text-align:right} th{background:#eee}",
           "td.l{text-align:left} .sig{font-weight:bold} .cliff{background:#fdd}</style></head><body>",
           "<h2>Test split, checkpoint each run kept: which factor changes the low-FPR TPR</h2>",
           "<p>TPR in percent with 95% Wilson intervals; &Delta; = this row minus the baseline with Newcombe's "
           "95% interval (bold: excludes 0). Scores ranked as the run stores them unless the row says otherwise. "
           "FPRs below 1/n_neg cannot be resolved: there tpr@fpr equals TPR at zero false positives. A row tested on "
           "another dataset's test split than the baseline (test set column) differs from it in population too.</p>",
           "<table><tr><th>run</th><th>test set</th><th>score dtype</th><th>n_pos / n_neg</th>"]
    for k in TARGET_KEYS:
        out.append(f"<th>{k}</th><th>&Delta; {k}</th>")
    out.append("<th>AUC</th><th>neg. tied at top</th><th>epochs</th><th>dup.</th><th>validation cliffs</th></tr>")
    for s in c["summary"]:
        cells = [f"<td class='l'>{html.escape(s['label'])}</td><td class='l'>{html.escape(str(s['dataset'] or ''))}</td>"
                 f"<td class='l'>{s['score_dtype']}</td>",
                 f"<td>{s['n_pos']} / {s['n_neg']}</td>"]
        for k in TARGET_KEYS:
            cells.append(f"<td>{_pct(s[k])} {_ci(s[k + '_ci95'])}</td>")
            if f"delta_{k}" in s:
                cls = " class='sig'" if s[f"delta_{k}_significant"] else ""
                cells.append(f"<td{cls}>{100 * s['delta_' + k]:+.1f} {_ci(s['delta_' + k + '_ci95'])}</td>")
            else:
                cells.append("<td>&ndash;</td>")
        cl = "; ".join(f"{k}: epoch {', '.join(map(str, v))}" for k, v in s["val_cliff_epochs"].items() if v) or "none"
        cells.append(f"<td>{s['auc']:.3f}</td><td>{s['n_neg_tied_at_top']}</td><td>{s['epochs_run']}</td>"
                     f"<td>{s['duplication_factor']:.1f}</td><td class='l{' cliff' if cl != 'none' else ''}'>{cl}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    for name, info in c["runs"].items():
        dtype = info["epochs"][0]["score_dtype"]
        out.append(f"<h3>{html.escape(name)} &mdash; validation per epoch (stored as {dtype}"
                   f"{'' if dtype == 'logit_float32' else ' and as float32 logits'})</h3>")
        out.append("<table><tr><th>epoch</th><th>train loss</th><th>lr</th><th>dup.</th>")
        cols = [("", k) for k in EPOCH_KEYS]
        if dtype != "logit_float32":
            cols += [("f32_", k) for k in EPOCH_KEYS]
        out.append("".join(f"<th>{k}{' (f32)' if p else ''}</th>" for p, k in cols) + "</tr>")
        cliffs = {(p, k): set(find_cliffs([e[p + k] for e in info["epochs"]], info["epochs"][0]["n_pos"]))
                  for p, k in cols if k in TARGET_KEYS}
        for i, e in enumerate(info["epochs"]):
            best = " style='background:#dfd'" if e["epoch"] == info.get("checkpoint_epoch") else ""
            cells = [f"<td{best}>{e['epoch']}</td><td>{e['train_loss']:.4g}</td><td>{e['lr']:.2g}</td>"
                     f"<td>{e['duplication_factor']:.1f}</td>"]
            for p, k in cols:
                v = e[p + k]
                txt = f"{v:.3f}" if k == "auc" else (str(v) if k == "n_neg_tied_at_top" else _pct(v))
                cls = " class='cliff'" if i in cliffs.get((p, k), ()) else ""
                cells.append(f"<td{cls}>{txt}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table><p>Green: the epoch whose weights were tested. Red: a cliff (the metric fell to 0 "
                   "from a value whose 95% interval excludes 0).</p>")
    out.append("</body></html>")
    return "\n".join(out)


def plot_summary(summary: list[dict], path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(summary) + 1.5), sharey=True)
    y = np.arange(len(summary))[::-1]
    for ax, k in zip(axes, TARGET_KEYS):
        v = np.array([s[k] for s in summary])
        lo = v - np.array([s[k + "_ci95"][0] for s in summary])
        hi = np.array([s[k + "_ci95"][1] for s in summary]) - v
        ax.errorbar(v, y, xerr=[lo, hi], fmt="o", capsize=3)
        ax.axvline(summary[0][k], color="grey", ls=":", lw=0.8)
        ax.set_xlabel(f"test {k} (95% CI)")
        ax.set_xlim(-0.02, 1.02)
    axes[0].set_yticks(y, [s["label"] for s in summary], fontsize=7)
    fig.tight_layout()
    write_png(fig, path)
