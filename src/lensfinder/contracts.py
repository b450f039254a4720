"""The JSON products that pass between rules, typed: ``history.json`` (training),
``metrics.json`` (evaluation), ``diagnostics.json`` and ``comparison.json`` (the gen2
study). Each is a TypedDict; :func:`read` validates a file against one when it is read
(jsonschema, with the schema derived from the TypedDict),
so a renamed or missing field fails naming the file and key -- in the unit tests, not at
the last rule of a long run. Torch-free: the Snakefile imports it to check a config's
metric names before any job runs.

Metric names come from one place, :func:`metric_key` / :func:`fpr_key`.
"""

from __future__ import annotations

import functools
import json
import types
import typing
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import jsonschema

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
    "n_train_pos": NotRequired[int],  # histories written before learning curves lack it
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


def json_schema(tp) -> dict:
    """The JSON Schema of a contract type (a TypedDict above, or one of its field types):
    the TypedDicts stay the one statement of each product, and jsonschema validates it."""
    if tp is Any:
        return {}
    if typing.is_typeddict(tp):
        hints = typing.get_type_hints(tp)
        return {"type": "object", "required": sorted(tp.__required_keys__),
                "properties": {k: json_schema(v) for k, v in hints.items()}}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        return {"anyOf": [json_schema(t) for t in args]}
    if (origin or tp) is list:
        return {"type": "array", **({"items": json_schema(args[0])} if args else {})}
    if (origin or tp) is dict:
        return {"type": "object", **({"additionalProperties": json_schema(args[1])} if args else {})}
    return {"type": _JSON_TYPES[tp]}


_JSON_TYPES = {float: "number", int: "integer", str: "string", bool: "boolean", type(None): "null"}
# a tuple written to JSON reads back as an array: products checked before writing may hold them
_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
    "array", lambda _, v: isinstance(v, (list, tuple)))
_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_TYPES)


@functools.cache
def _validator(contract):
    return _Validator(json_schema(contract))


def check(contract, obj, where: str) -> None:
    """Raise :class:`ContractError` unless ``obj`` holds TypedDict ``contract``: every
    required key, every value of its type (nested objects and list items too). The message
    names ``where`` and the key path of the first error, the shallowest first."""
    errors = sorted(_validator(contract).iter_errors(obj), key=lambda e: (len(e.absolute_path), list(map(str, e.path))))
    if errors:
        err = errors[0]
        path = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in err.absolute_path)
        if err.validator == "required":
            missing = [k for k in err.validator_value if k not in err.instance]
            raise ContractError(f"{where}{path}: missing key(s) {missing}")
        raise ContractError(f"{where}{path} = {err.instance!r:.60}: {err.message:.200}")


def read(contract, path):
    """The JSON file ``path``, checked against ``contract`` (a TypedDict above)."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ContractError(f"{path}: not a readable {contract.__name__} JSON file ({exc})") from exc
    check(contract, obj, str(path))
    return obj
