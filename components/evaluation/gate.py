"""The gate: absolute thresholds on the candidate's held-out metrics, and the comparison with the champion.

Rule: a candidate is blessed only when every check passes —
- each limit that is on: ``metric >= min_<metric>`` or ``metric <= max_<metric>``;
- the held-out split has at least ``min_rows`` rows;
- with a champion, for the compared metric's difference d = candidate - champion on the same held-out rows and
  its two-sided bootstrap interval [low, high] at ``confidence``: higher is better → d >= -tolerance and
  low >= -tolerance; lower is better (log loss, calibration error) → d <= tolerance and high <= tolerance.
  (The interval's bound alone is a one-sided test at (1 + confidence) / 2; requiring d as well means a candidate
  that is worse than the champion beyond the tolerance on these rows is never blessed, whatever the resamples.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from components.evaluation.bootstrap import Interval, paired_difference
from components.evaluation.config import LOWER_IS_BETTER, Comparison, Thresholds
from components.evaluation.metrics import metric_function

RULE = ("blessed only when every check passes: each limit that is on (metric >= min_<metric>, metric <= "
        "max_<metric>); held-out rows >= min_rows; with a champion, the difference d = candidate - champion of the "
        "compared metric on the same held-out rows and its two-sided paired bootstrap interval [low, high] at the "
        "configured confidence satisfy d >= -tolerance and low >= -tolerance (higher is better), or d <= tolerance "
        "and high <= tolerance (log_loss, calibration_error: lower is better)")


@dataclass(frozen=True)
class Check:
    """One rule of the gate, its outcome, and the sentence that explains it."""

    name: str
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    """Blessed when every check passed; ``reasons`` are the failed checks' sentences (or every sentence when
    blessed)."""

    checks: tuple[Check, ...]

    @property
    def blessed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        failed = [c.reason for c in self.checks if not c.passed]
        return failed or [c.reason for c in self.checks]


def threshold_checks(metrics: dict[str, float | None], thresholds: Thresholds, rows: int) -> list[Check]:
    """A check for the held-out row count and for every limit that is on."""
    checks = [Check("min_rows", rows >= thresholds.min_rows,
                    f"held-out rows {rows} {'>=' if rows >= thresholds.min_rows else '<'} min_rows "
                    f"{thresholds.min_rows}")]
    for metric, (kind, limit) in thresholds.limits().items():
        value = metrics.get(metric)
        name = f"{kind}_{metric}"
        if value is None:
            checks.append(Check(name, False, f"{metric} is undefined on the held-out rows; {name} {limit:g} "
                                             "cannot be met"))
            continue
        passed = value >= limit if kind == "min" else value <= limit
        sign = (">=" if passed else "<") if kind == "min" else ("<=" if passed else ">")
        checks.append(Check(name, passed, f"{metric} {value:.4f} {sign} {name} {limit:g}"))
    return checks


def not_worse(interval: Interval, tolerance: float, lower_is_better: bool) -> bool:
    """The comparison rule (see the module docstring)."""
    if lower_is_better:
        return interval.estimate <= tolerance and interval.high <= tolerance
    return interval.estimate >= -tolerance and interval.low >= -tolerance


def comparison_check(cfg: Comparison, candidate: float, champion: float, interval: Interval) -> Check:
    """The check of the candidate against the champion on ``cfg.metric``."""
    lower = cfg.metric in LOWER_IS_BETTER
    passed = not_worse(interval, cfg.tolerance, lower)
    pct = f"{cfg.confidence * 100:g}%"
    facts = (f"{cfg.metric}: candidate {candidate:.4f} vs champion {champion:.4f}, difference "
             f"{interval.estimate:+.4f}, {pct} CI [{interval.low:+.4f}, {interval.high:+.4f}] "
             f"({interval.resamples} paired resamples)")
    bound, limit = (interval.high, cfg.tolerance) if lower else (interval.low, -cfg.tolerance)
    if passed:
        return Check(f"champion_{cfg.metric}", True,
                     f"{facts}: not worse than the champion beyond the tolerance {cfg.tolerance:g}")
    side = "above" if lower else "below"
    if interval.estimate > limit if lower else interval.estimate < limit:
        why = (f"the difference {interval.estimate:+.4f} is {side} {limit:+g}: the candidate is worse than the "
               f"champion beyond the tolerance on the held-out rows")
    else:
        why = (f"the interval's {'upper' if lower else 'lower'} bound {bound:+.4f} is {side} {limit:+g}: the "
               f"candidate may be worse than the champion beyond the tolerance at {pct} confidence")
    return Check(f"champion_{cfg.metric}", False, f"{facts}: {why} ({'lower' if lower else 'higher'} is better)")


def compare(y: np.ndarray, candidate: np.ndarray, champion: np.ndarray, cfg: Comparison, threshold: float,
            bins: int) -> tuple[Interval, Check]:
    """The champion check on probabilities of both models for the same rows: the paired bootstrap interval of
    the difference of ``cfg.metric`` and the check against the tolerance."""
    fn = metric_function(cfg.metric, threshold, bins)
    interval = paired_difference(y, candidate, champion, fn, resamples=cfg.resamples, confidence=cfg.confidence,
                                 seed=cfg.seed)
    return interval, comparison_check(cfg, fn(y, candidate), fn(y, champion), interval)


def decide(checks: list[Check]) -> Decision:
    """The decision over all checks."""
    return Decision(tuple(checks))
