"""What the rollout needs from a serving backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Literal, Self

from components._core.jobs import RunningJob
from components.serving.target import DeployConfig, Served

Which = Literal["candidate", "stable"]


def record_seen(seen: list[dict[str, Any]], entry: dict[str, Any]) -> None:
    """Append ``entry`` to a backend's record of statuses seen; an entry equal to the last one is counted there
    (``reads``) instead of repeated."""
    last = seen[-1] if seen else None
    if last is not None and {k: v for k, v in last.items() if k != "reads"} == entry:
        last["reads"] = last.get("reads", 1) + 1
    else:
        seen.append(entry)


class RolloutFailure(RuntimeError):
    """A rollout step failed; the rollout rolls back and records this reason."""


class ServingBackend(ABC):
    """One service on one platform: its stable model, at most one canary, and traffic between them."""

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: DeployConfig, **clients: Any) -> Self:
        """The backend for ``cfg`` (clients injected, or made on first use)."""

    @abstractmethod
    def stable(self) -> Served | None:
        """The model taking the traffic now; None before the first deployment."""

    @abstractmethod
    def canary(self) -> Served | None:
        """A candidate deployed beside the stable model (a rollout in progress or interrupted), if any."""

    @abstractmethod
    def deploy_canary(self, candidate: Served, percent: int) -> RunningJob:
        """Deploy ``candidate`` with ``percent`` of the traffic (100 when nothing serves yet). The returned job
        succeeds once the candidate is honestly ready and the split is in place, and fails when it cannot be;
        cancelling it rolls back. Waited on through the one wait path."""

    @abstractmethod
    def predict(self, which: Which, rows: Sequence[dict[str, Any]]) -> list[float]:
        """P(label = 1) for each row from the candidate or the stable model directly (one request)."""

    @abstractmethod
    def observed_traffic(self, probe: Sequence[dict[str, Any]]) -> dict[str, float]:
        """The share of live traffic each model version serves now (measured with ``probe`` requests through the
        service's endpoint where answers name the model, else read from the platform's status)."""

    @abstractmethod
    def promote(self) -> None:
        """Send all traffic to the candidate, which becomes the stable model."""

    @abstractmethod
    def rollback(self) -> None:
        """Send all traffic back to the stable model and remove the candidate (nothing serves after a failed
        first deployment)."""

    def statuses(self) -> list[dict[str, Any]]:
        """Platform statuses seen during the rollout, for the record (default: none)."""
        return []

    def endpoint(self) -> str:
        """Where clients send requests (the service's URL); '' when the platform gives none yet."""
        return ""
