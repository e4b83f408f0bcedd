"""Early stopping and best-epoch tracking, as plain state that goes into every checkpoint."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from components.training.config import EarlyStopping


@dataclass
class Progress:
    """Best validation value so far, epochs without improvement, and cumulative training throughput."""

    best_value: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False
    train_samples: int = 0
    train_seconds: float = 0.0

    def update(self, value: float, epoch: int, rule: EarlyStopping) -> bool:
        """Record one epoch's metric; returns True when it is the new best. Sets ``stopped_early``."""
        best, delta = self.best_value, rule.min_delta
        improved = not math.isnan(value) and (
            best is None or (value > best + delta if rule.maximize else value < best - delta))
        if improved:
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        if rule.patience and self.bad_epochs >= rule.patience:
            self.stopped_early = True
        return improved

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Progress:
        return cls(**d)
