"""Which epoch's weights a run hands on, and when it stops.

With early stopping (gen3) the selected epoch is the best by ``early_stopping.metric``
(ties within ``min_delta`` broken by ``tiebreak``) and training stops ``patience`` epochs
after it. Without (gen2), every epoch is trained and the last weights are kept -- so the
selected epoch is the last one, and ``history.json``'s ``best_epoch`` says so.
"""

from __future__ import annotations

from lensfinder.training.config import EarlyStopping
from lensfinder.training.state import TrainState


def better(cand: tuple, best: tuple | None, min_delta: float) -> bool:
    """Is (metric, tiebreak) ``cand`` an improvement on ``best``?"""
    if best is None:
        return True
    if cand[0] > best[0] + min_delta:
        return True
    return abs(cand[0] - best[0]) <= min_delta and cand[1] > best[1]


def select_epoch(state: TrainState, record: dict, es: EarlyStopping) -> bool:
    """Update ``state``'s selection with the validation ``record`` of epoch
    ``record["epoch"]``; True when this epoch's weights become the selected model."""
    cand = (record[es.metric], record[es.tiebreak])
    improved = better(cand, state.best, es.min_delta)
    if improved:
        state.best, state.epochs_since_best = cand, 0
    else:
        state.epochs_since_best += 1
    if improved or not es.enabled:
        state.best_epoch = record["epoch"]
    return improved or not es.enabled


def should_stop(state: TrainState, es: EarlyStopping, epochs: int) -> bool:
    """After the epoch just recorded: patience exhausted, or the last epoch done."""
    return (es.enabled and state.epochs_since_best >= es.patience) or state.epoch >= epochs
