"""Every figure lensfinder draws, on matplotlib's object-oriented Figure API: no pyplot
state, no backend switching on import (a Figure with no canvas manager renders with Agg
when saved), so importing a module never changes how a user's own plots behave.

Each function takes arrays or records already computed elsewhere and writes one PNG.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.image import imsave
from matplotlib.ticker import NullFormatter, ScalarFormatter

from lensfinder.contracts import TPR_KEYS
from lensfinder.metrics import roc, saturation_logit, scores_as_stored
from lensfinder.tables import atomic_path


def write_png(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> None:
    """Save ``fig`` as PNG atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")


def png_bytes(img: np.ndarray, scale: int = 2) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes, each pixel a scale x scale block, rows bottom-up as
    ``imshow(origin="lower")`` shows them."""
    buf = io.BytesIO()
    imsave(buf, np.kron(img, np.ones((scale, scale, 1), np.uint8)), format="png", origin="lower")
    return buf.getvalue()


# --------------------------------------------------------------------------- evaluation
def roc_curve(labels, logits, score_dtype: str, path, title: str) -> None:
    """ROC on a log FPR axis, as float32 logits and as the run stores its scores."""
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    n_neg = int((labels == 0).sum())
    for dtype, style in zip(dict.fromkeys(["logit_float32", score_dtype]), ("-", "--")):
        fpr, tpr, _ = roc(labels, scores_as_stored(logits, dtype))
        ax.step(np.maximum(fpr, 0.5 / n_neg), tpr, style, where="post", label=dtype)
    ax.axvline(1.0 / n_neg, color="grey", lw=0.8, ls=":", label=f"1/n_neg = {1.0 / n_neg:.1e}")
    ax.set(xscale="log", xlim=(0.5 / n_neg, 1), xlabel="false positive rate", ylabel="true positive rate")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    write_png(fig, path)


def score_histograms(labels, logits, path, title: str) -> None:
    """Per-class histograms of float32 logits, with the logit where bf16 sigmoids saturate."""
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    bins = np.linspace(float(logits.min()), float(logits.max()) + 1e-6, 60)
    ax.hist(logits[labels == 0], bins=bins, histtype="step", label=f"controls ({(labels == 0).sum()})", log=True)
    ax.hist(logits[labels == 1], bins=bins, histtype="step", label=f"lenses ({(labels == 1).sum()})", log=True)
    sat = saturation_logit("prob_bfloat16")
    ax.axvline(sat, color="grey", ls=":", lw=0.8, label=f"bf16 sigmoid saturates ({sat:.2f})")
    ax.set(xlabel="logit (float32)", ylabel="count")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    write_png(fig, path)


# --------------------------------------------------------------------------- galleries
def pair_gallery(images: list[tuple[np.ndarray, str, np.ndarray, str]], path, title: str) -> None:
    """Rows of two (positive, control) pairs: ``images`` holds (rgb, caption, rgb, caption)."""
    ncol, nrow = 4, max(1, (len(images) + 1) // 2)
    fig = Figure(figsize=(2.2 * ncol, 2.7 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, (img_a, cap_a, img_b, cap_b) in enumerate(images):
        a, b = axes[k // 2, 2 * (k % 2)], axes[k // 2, 2 * (k % 2) + 1]
        a.imshow(img_a, origin="lower")
        a.set_title(cap_a, fontsize=7)
        b.imshow(img_b, origin="lower")
        b.set_title(cap_b, fontsize=7)
    if not images:
        axes[0, 0].text(0.5, 0.5, "no stamps", ha="center", va="center")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    write_png(fig, path)


def image_grid(images: list[tuple[np.ndarray, str]], path, title: str, cols: int = 8) -> None:
    """A grid of (rgb, caption) thumbnails."""
    rows = max(1, -(-len(images) // cols))
    fig = Figure(figsize=(cols * 1.4, rows * 1.55))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, (img, caption) in zip(axes, images):
        ax.imshow(img, origin="lower")
        ax.set_title(caption, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    write_png(fig, path)


def injection_distributions(t: pd.DataFrame, path, title: str) -> None:
    """Histograms of the positives' theta_E, lens velocity dispersion (empty for a uniform
    theta_E prior), total magnification, arc S/N, number of images and unlensed r magnitude
    (columns of :func:`lensfinder.gallery.injection_table`)."""
    fig = Figure(figsize=(15.5, 2.8))
    axes = fig.subplots(1, 6)
    panels = (("theta_e", "θ_E (arcsec)", False), ("lens_sigma", "lens σ (km/s)", False),
              ("mu_total", "total magnification μ", True),
              ("arc_snr", "arc S/N (own pixels)", True), ("n_images", "images of the source centre", False),
              ("src_mag_r", "unlensed source r (AB)", False))
    for ax, (col, label, log) in zip(axes, panels):
        v = pd.to_numeric(t[col], errors="coerce").dropna().to_numpy(dtype=float) if col in t else np.array([])
        if col == "n_images":
            k, n = np.unique(v.astype(int), return_counts=True)
            ax.bar(k, n, width=0.6)
        elif len(v):
            bins = np.geomspace(max(v.min(), 1e-3), v.max() * 1.01, 30) if log else 30
            ax.hist(v, bins=bins)
            ax.axvline(np.median(v), color="C3", lw=1)
            if log:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only: no overlaps
                ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set(xlabel=label, ylabel="positives" if col == "theta_e" else None)
        ax.set_title(f"median {np.median(v):.3g}" if len(v) and col != "n_images" else "", fontsize=8)
    fig.suptitle(f"{title} (N = {len(t)})", fontsize=9)
    fig.tight_layout()
    write_png(fig, path)


# --------------------------------------------------------------------------- diagnostics
def ties(ties: list[dict], stored: str, path, title: str) -> None:
    """Validation TPRs and negatives tied at the top score per epoch, stored dtype vs float32."""
    df = pd.DataFrame(ties)
    fig = Figure(figsize=(6, 5))
    a1, a2 = fig.subplots(2, 1, sharex=True)
    for dtype, style in zip(dict.fromkeys([stored, "logit_float32"]), ("o-", "s--")):
        g = df[df["score_dtype"] == dtype].sort_values("epoch")
        for key, colour in zip(TPR_KEYS, ("C0", "C1")):
            a1.plot(g["epoch"], g[key], style, color=colour, label=f"{key} ({dtype})", ms=4)
        a2.plot(g["epoch"], g["n_neg_tied_at_top"], style, color="C3", label=f"negatives tied at top ({dtype})", ms=4)
    a1.set_ylabel("validation TPR")
    a1.legend(fontsize=7)
    a2.set(ylabel="count", xlabel="epoch")
    a2.legend(fontsize=7)
    a1.set_title(title, fontsize=9)
    fig.tight_layout()
    write_png(fig, path)


def overfitting(history: list[dict], path, title: str) -> None:
    """Train loss, validation metrics and logit magnitude against epoch."""
    h = pd.DataFrame(history)
    fig = Figure(figsize=(6, 7))
    a1, a2, a3 = fig.subplots(3, 1, sharex=True)
    a1.semilogy(h["epoch"], h["train_loss"], "o-", ms=4)
    a1.set_ylabel("train loss")
    a2.plot(h["epoch"], h["auc"], "o-", ms=4, label="AUC")
    for key in TPR_KEYS:
        a2.plot(h["epoch"], h[key], "o-", ms=4, label=f"{key} ({h['score_dtype'].iloc[0]})")
        if "logit_float32" in h:
            a2.plot(h["epoch"], [d[key] if isinstance(d, dict) else np.nan for d in h["logit_float32"]], "s--", ms=3,
                    label=f"{key} (float32 logits)")
    a2.set_ylabel("validation")
    a2.legend(fontsize=7)
    for key, lab in (("mean_abs_logit_pos", "mean |logit|, lenses"), ("mean_abs_logit_neg", "mean |logit|, controls"),
                     ("max_logit_neg", "max logit, controls")):
        if key in h:
            a3.plot(h["epoch"], h[key], "o-", ms=4, label=lab)
    sat = saturation_logit("prob_bfloat16")
    a3.axhline(sat, color="grey", ls=":", label=f"bf16 sigmoid == 1.0 above {sat:.2f}")
    a3.set(ylabel="logit", xlabel="epoch")
    a3.legend(fontsize=7)
    a1.set_title(title, fontsize=9)
    fig.tight_layout()
    write_png(fig, path)


def comparison_summary(summary: list[dict], path) -> None:
    """Test TPRs with 95% intervals, one row per comparison line, the baseline dotted."""
    fig = Figure(figsize=(10, 0.45 * len(summary) + 1.5))
    axes = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(summary))[::-1]
    for ax, k in zip(axes, TPR_KEYS):
        v = np.array([s[k] for s in summary])
        # a percentile interval can sit beside its estimate (e.g. at TPR ~ 0): no negative bars
        lo = np.maximum(v - np.array([s[k + "_ci95"][0] for s in summary]), 0.0)
        hi = np.maximum(np.array([s[k + "_ci95"][1] for s in summary]) - v, 0.0)
        ax.errorbar(v, y, xerr=[lo, hi], fmt="o", capsize=3)
        ax.axvline(summary[0][k], color="grey", ls=":", lw=0.8)
        ax.set(xlabel=f"test {k} (95% CI)", xlim=(-0.02, 1.02))
    axes[0].set_yticks(y, [s["label"] for s in summary], fontsize=7)
    fig.tight_layout()
    write_png(fig, path)


def selection_function(sel: dict, path, title: str) -> None:
    """One panel per quantity of a bench's selection function (``bench_metrics``):
    recall per quantile bin with its 95% Wilson interval."""
    by = sel["by"]
    fig = Figure(figsize=(3.2 * len(by), 3.0))
    for i, (name, q) in enumerate(by.items()):
        ax = fig.add_subplot(1, len(by), i + 1)
        bins = [b for b in q["bins"] if b["n"]]
        x = [0.5 * (b["lo"] + b["hi"]) for b in bins]
        y = [b["recall"] for b in bins]
        err = [[b["recall"] - b["ci95"][0] for b in bins], [b["ci95"][1] - b["recall"] for b in bins]]
        xerr = [[xi - b["lo"] for xi, b in zip(x, bins)], [b["hi"] - xi for xi, b in zip(x, bins)]]
        ax.errorbar(x, y, yerr=err, xerr=xerr, fmt="o", ms=3, capsize=2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(q["label"])
        if i == 0:
            ax.set_ylabel(f"recall at sky FPR {sel['sky_fpr']:g}")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    write_png(fig, path)


def purity_completeness(pc: dict, path, title: str) -> None:
    """Purity against completeness at the bench's stated lens prevalence."""
    fig = Figure(figsize=(4.2, 3.4))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(pc["completeness"], pc["purity"], lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("completeness (bench lenses found)")
    ax.set_ylabel(f"purity at {pc['prevalence']:g} lenses per LRG")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    write_png(fig, path)
