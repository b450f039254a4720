"""The JSON products that pass between rules, typed: ``history.json`` (training),
``metrics.json`` (evaluation), ``diagnostics.json`` and ``comparison.json`` (the gen2
study). Each is a TypedDict; :func:`read` validates a file against one when it is read,
so a renamed or missing field fails naming the file and key -- in the unit tests, not at
the last rule of a long run. Torch-free: the Snakefile imports it to check a config's
metric names before any job runs.

Metric names come from one place, :func:`metric_key` / :func:`fpr_key`.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any, NotRequired, TypedDict

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
HIGHER_IS_BETTER = (*TPR_KEYS, "auc", "pauc", "tpr0", "tpr10")


def _score_fields() -> dict:
    fields = {"n_pos": int, "n_neg": int, "score_dtype": str, "min_resolvable_fpr": float, "auc": float,
              "pauc": float, "n_neg_tied_at_top": int, "n_pos_tied_at_top": int, "tpr0": float, "tpr10": float}
    for key in TPR_KEYS:
        fields.update({key: float, f"{key}_ci95": list[float], f"{key}_resolvable": bool})
    return {**fields, **{key: float for key in FPR_KEYS}}


# lensfinder.metrics.evaluate_scores: one set of scores, ranked as stored
ScoreMetrics = TypedDict("ScoreMetrics", _score_fields())

# one epoch of history.json (lensfinder.training.loop.validate + the selection)
EpochRecord = TypedDict("EpochRecord", {
    **_score_fields(), "epoch": int, "train_loss": float, "samples_seen_epoch": int, "n_train": int,
    "duplication_factor": float, "samples_seen": int, "n_skipped_nonfinite": int, "lr": float, "seconds": float,
    "mean_abs_logit_pos": float | None, "mean_abs_logit_neg": float | None, "max_logit_neg": float | None,
    "best_epoch": int | None,
    # runs that store another score dtype also record the float32-logit view of the same scores
    "logit_float32": NotRequired[dict[str, Any]]})


class History(TypedDict):
    run: str
    fingerprint: str
    data_fingerprint: str
    best_epoch: int | None  # the epoch whose weights are published as best.pt
    stopped_early: bool
    epochs: list[EpochRecord]


# ``metrics.json``; a run that stores another dtype adds ``metrics_as_<dtype>``. (Functional
# syntax: with postponed annotations the class syntax would make NotRequired keys required.)
Metrics = TypedDict("Metrics", {
    "run": str, "split": str, "fingerprint": str, "data_fingerprint": str | None, "checkpoint": str,
    "checkpoint_sha256": str, "checkpoint_epoch": int, "metrics": ScoreMetrics,
    "negatives": dict[str, Any],  # lensfinder.evaluate.negatives_summary
    "metrics_test_split_only": NotRequired[ScoreMetrics],  # with parent negatives: the test split alone
    "negatives_by_population": NotRequired[dict[str, Any]],  # lensfinder.metrics.negatives_by_population
    "flux_baseline_test": NotRequired[dict[str, Any]]})  # lensfinder.evaluate.flux_baseline_beside


class Diagnostics(TypedDict):
    run: str
    fingerprint: str
    score_dtype: str
    saturation_logit: dict[str, float]
    ties: list[dict[str, Any]]
    cliffs: dict[str, Any]
    memorisation: dict[str, Any]
    leakage: dict[str, Any]
    duplication_factor: dict[str, Any]
    overfitting: dict[str, Any]
    flux_baseline: dict[str, Any]
    sources: dict[str, str]


class Comparison(TypedDict):
    baseline: str
    reference: str
    summary: list[dict[str, Any]]
    runs: dict[str, dict[str, Any]]


class ContractError(ValueError):
    """A JSON product that does not hold what its contract says; names the file and key."""


def _matches(tp, value) -> bool:
    if tp is Any:
        return True
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        return any(_matches(t, value) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if typing.is_typeddict(tp):
        return isinstance(value, dict)
    if (origin or tp) is list:
        return isinstance(value, (list, tuple))  # a tuple written to JSON reads back as a list
    return isinstance(value, origin or tp)


def check(contract, obj, where: str) -> None:
    """Raise :class:`ContractError` unless ``obj`` has every required key of TypedDict
    ``contract`` with a value of its type (nested TypedDicts and list items checked too)."""
    if not isinstance(obj, dict):
        raise ContractError(f"{where}: expected an object, got {type(obj).__name__}")
    missing = [k for k in contract.__required_keys__ if k not in obj]
    if missing:
        raise ContractError(f"{where}: missing key(s) {missing}")
    for key, tp in typing.get_type_hints(contract).items():
        if key not in obj:
            continue
        value, here = obj[key], f"{where}: {key!r}"
        if not _matches(tp, value):
            raise ContractError(f"{here} = {value!r:.60} is not {getattr(tp, '__name__', tp)}")
        if typing.is_typeddict(tp):
            check(tp, value, f"{where}.{key}")
        item = typing.get_args(tp)[0] if typing.get_origin(tp) is list else None
        if item is not None:
            for i, v in enumerate(value):
                if typing.is_typeddict(item):
                    check(item, v, f"{where}.{key}[{i}]")
                elif not _matches(item, v):
                    raise ContractError(f"{here}[{i}] = {v!r:.60} is not {getattr(item, '__name__', item)}")


def read(contract, path):
    """The JSON file ``path``, checked against ``contract`` (a TypedDict above)."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ContractError(f"{path}: not a readable {contract.__name__} JSON file ({exc})") from exc
    check(contract, obj, str(path))
    return obj
