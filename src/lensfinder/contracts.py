"""Names shared by the JSON products that pass between rules (history, metrics,
diagnostics, comparison). Torch-free: the Snakefile imports it to check a config's metric
names before any job runs.
"""

from __future__ import annotations

FPR_TARGETS = (1e-4, 1e-3)
TPR_TARGETS = (0.50, 0.70, 0.85)


def metric_key(fpr: float) -> str:
    """History/metrics key of the TPR at a false-positive rate: 1e-4 -> 'tpr@fpr1e-4',
    1e-3 -> 'tpr@fpr0.001' (gen2's own key spellings, kept so its history compares)."""
    return "tpr@fpr1e-4" if fpr == 1e-4 else f"tpr@fpr{fpr:g}"


def fpr_key(tpr: float) -> str:
    """Key of the FPR at a true-positive rate: 0.5 -> 'fpr@tpr0.50'."""
    return f"fpr@tpr{tpr:.2f}"


TPR_KEYS = tuple(metric_key(f) for f in FPR_TARGETS)
FPR_KEYS = tuple(fpr_key(t) for t in TPR_TARGETS)
# the low-FPR metrics gen2 logged per epoch, under its own names
GEN2_HISTORY_KEYS = TPR_KEYS + FPR_KEYS

# Scalars of every validation record that grow with quality: what early stopping may watch.
HIGHER_IS_BETTER = (*(metric_key(f) for f in FPR_TARGETS), "auc", "pauc", "tpr0", "tpr10")
