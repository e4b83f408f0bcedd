"""Evidently 0.7.23's drift methods (``evidently/legacy/calculations/stattests``), reimplemented over numpy
arrays and value counts: same statistics, default thresholds and comparisons, computed over every row.

p-value methods (drift when the p-value is below the threshold; ``ks`` also at equality): ``ks``
(two-sample Kolmogorov-Smirnov), ``chisquare`` (observed current counts against reference shares scaled to the
current size), ``z`` (two-proportion z-test of "not the first value in sorted order"). Distance methods (drift
at or above the threshold): ``wasserstein`` (first Wasserstein distance over the reference's population std,
floored at 0.001), ``jensenshannon`` (natural-log Jensen-Shannon distance of shares) and ``psi`` (population
stability index of shares, zero shares replaced as Evidently does). The last two compare per-value shares, or
for a numerical column with more than 20 distinct reference values shares in Sturges bins over both sides."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.spatial import distance

HISTOGRAM_MIN_UNIQUE = 20  # Evidently bins a numerical column with more distinct reference values than this
STD_FLOOR = 0.001  # Evidently's floor of the reference std that normalises the Wasserstein distance


@dataclass(frozen=True)
class MethodSpec:
    """One method: Evidently's name and display name, default threshold, the column kinds it accepts, and
    whether its score is a p-value (drift below the threshold) or a distance (drift at or above it)."""

    name: str
    display_name: str
    default_threshold: float
    kinds: frozenset[str]
    p_value: bool
    inclusive: bool = False  # a p-value equal to the threshold drifts (Evidently's ks only)

    def drifted(self, score: float, threshold: float) -> bool:
        """Evidently's decision for this method (NaN never drifts, as in Evidently)."""
        if self.p_value:
            return bool(score <= threshold) if self.inclusive else bool(score < threshold)
        return bool(score >= threshold)


_NUM, _CAT = "numerical", "categorical"
METHODS: dict[str, MethodSpec] = {m.name: m for m in (
    MethodSpec("ks", "K-S p_value", 0.05, frozenset({_NUM}), p_value=True, inclusive=True),
    MethodSpec("chisquare", "chi-square p_value", 0.05, frozenset({_CAT}), p_value=True),
    MethodSpec("z", "Z-test p_value", 0.05, frozenset({_CAT}), p_value=True),
    MethodSpec("wasserstein", "Wasserstein distance (normed)", 0.1, frozenset({_NUM}), p_value=False),
    MethodSpec("jensenshannon", "Jensen-Shannon distance", 0.1, frozenset({_NUM, _CAT}), p_value=False),
    MethodSpec("psi", "PSI", 0.1, frozenset({_NUM, _CAT}), p_value=False),
)}


@dataclass(frozen=True)
class Counts:
    """Value counts of both sides over the union of their values, in sorted value order."""

    keys: list[object]
    reference: np.ndarray
    current: np.ndarray


def ks(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sided two-sample Kolmogorov-Smirnov p-value (scipy's automatic exact/asymptotic choice)."""
    return float(stats.ks_2samp(reference, current).pvalue)


def wasserstein_normed(reference: np.ndarray, current: np.ndarray) -> float:
    """First Wasserstein distance between the empirical distributions over ``max(std(reference), 0.001)``.

    The integral of |F_ref - F_cur| over the merged sorted values, placing each (sorted) reference value by one
    binary search into the sorted current values: O(n log n) for the sort, no per-value search of the large side.
    """
    ref, cur = np.sort(reference), np.sort(current)
    n, m = ref.size, cur.size
    slots = np.arange(n) + np.searchsorted(cur, ref, side="right")
    is_ref = np.zeros(n + m, dtype=bool)
    is_ref[slots] = True
    merged = np.empty(n + m, dtype=np.float64)
    merged[is_ref] = ref
    merged[~is_ref] = cur
    ref_below = np.cumsum(is_ref[:-1], dtype=np.int64)
    cur_below = np.arange(1, n + m, dtype=np.int64) - ref_below
    gaps = np.diff(merged)
    dist = float(np.dot(np.abs(ref_below / n - cur_below / m), gaps))
    return dist / max(float(np.std(reference)), STD_FLOOR)


def chisquare(counts: Counts) -> float:
    """Chi-squared goodness-of-fit p-value of the current counts against the reference's scaled to the current
    size (a value absent from the reference gives p = 0)."""
    expected = counts.reference * (counts.current.sum() / counts.reference.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(counts.current, expected).pvalue)


def z_test(counts: Counts) -> float:
    """Two-proportion z-test p-value, the proportion being "not the first value in sorted order"; 1.0 when
    both sides hold the same single value."""
    ref_seen, cur_seen = np.flatnonzero(counts.reference), np.flatnonzero(counts.current)
    if ref_seen.size == 1 and cur_seen.size == 1 and ref_seen[0] == cur_seen[0]:
        return 1.0
    n1, n2 = float(counts.reference.sum()), float(counts.current.sum())
    p1, p2 = 1.0 - counts.reference[0] / n1, 1.0 - counts.current[0] / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def sturges_shares(reference: np.ndarray, current: np.ndarray, *, integer: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Shares of each side in the equal-width Sturges bins of both sides together: numpy's ``"sturges"``
    bin edges of the concatenation (``integer``: of integer values, bins at least 1 wide), computed from its
    size and range without concatenating."""
    lo = min(float(reference.min()), float(current.min()))
    hi = max(float(reference.max()), float(current.max()))
    size = reference.size + current.size
    width = (hi - lo) / (np.log2(size) + 1.0)
    if integer and 0 < width < 1:
        width = 1.0
    bins = math.ceil((hi - lo) / width) if width else 1
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    ref = np.histogram(reference, bins=bins, range=(lo, hi))[0] / reference.size
    cur = np.histogram(current, bins=bins, range=(lo, hi))[0] / current.size
    return ref, cur


def fill_zeroes(shares: np.ndarray) -> np.ndarray:
    """Evidently's PSI smoothing: zero shares become min(non-zero) / 1e6 when that minimum is <= 1e-4, else
    1e-4."""
    out = shares.astype(np.float64, copy=True)
    smallest = float(out[out != 0].min())
    out[out == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return out


def jensenshannon(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log) between two share vectors."""
    return float(distance.jensenshannon(reference, current))


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index between two share vectors, zero shares filled first."""
    ref, cur = fill_zeroes(reference), fill_zeroes(current)
    return float(np.sum((ref - cur) * np.log(ref / cur)))
