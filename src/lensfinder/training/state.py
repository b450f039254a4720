"""The training state that a checkpoint carries besides the weights: where the run is
(epoch, step), what it has learnt about itself (history, early-stopping bookkeeping) and
the running sums of an epoch interrupted mid-way, per rank.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class EpochSums:
    """Running sums of one rank's part of the current epoch."""
    loss_sum: float = 0.0
    samples: int = 0
    skipped: int = 0

    def values(self) -> list[float]:
        return [self.loss_sum, self.samples, self.skipped]


@dataclass
class TrainState:
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    history: list[dict] = field(default_factory=list)  # one contracts.EpochRecord per epoch
    best: tuple[float, float] | None = None  # (early-stopping metric, tie-break) of best_epoch
    best_epoch: int | None = None
    epochs_since_best: int = 0
    partial: EpochSums = field(default_factory=EpochSums)
    # every rank's sums, saved by rank 0 when DDP is interrupted mid-epoch
    partial_per_rank: list[EpochSums] | None = None
    finished: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str, rank: int) -> "TrainState":
        """The state of a checkpoint as seen by ``rank`` (its own part of a split epoch)."""
        d = json.loads(text)
        per_rank = d.pop("partial_per_rank")
        partial = per_rank[rank] if per_rank else d["partial"]
        best = d.pop("best")
        return cls(**{**d, "best": tuple(best) if best is not None else None,
                      "partial": EpochSums(**partial)}, partial_per_rank=None)

    def end_epoch(self, record: dict) -> None:
        self.history.append(record)
        self.epoch += 1
        self.step_in_epoch = 0
        self.partial = EpochSums()

    @property
    def samples_seen(self) -> int:
        return self.history[-1]["samples_seen"] if self.history else 0
