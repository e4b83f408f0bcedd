"""What a trial reported: its objective values by epoch, read incrementally from the files the trainer writes
(``metrics.jsonl``, ``final_metrics.json``: the launch module's contract), and its value by Katib's strategy."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field

from components._core.artifacts import filesystem, is_local
from components.training.launch import FINAL_METRICS_FILE, METRICS_FILE, output_file

log = logging.getLogger(__name__)


@dataclass
class Observations:
    """Objective values a trial reported, by step, read incrementally from its metrics.jsonl."""

    lines_read: int = 0
    values: dict[int, float] = field(default_factory=dict)
    latest: float | None = None


def read_new_metrics(uri: str, obs: Observations, metric: str) -> list[tuple[int, float]]:
    """Read complete lines of ``<uri>/metrics.jsonl`` past ``obs.lines_read``; return new (step, value) pairs
    of ``metric`` (step = the line's ``epoch``, else its line index). Bad lines are skipped with a warning."""
    fs, path = filesystem(output_file(uri, METRICS_FILE))
    try:
        if not is_local(uri):
            fs.invalidate_cache(path)
        if not fs.exists(path):
            return []
        with fs.open(path, "r") as fh:
            text = fh.read()
    except (OSError, ValueError) as err:
        log.warning("cannot read %s yet: %s", path, err)
        return []
    lines = text.split("\n")[:-1]  # a last line without newline is still being written
    new: list[tuple[int, float]] = []
    for index in range(obs.lines_read, len(lines)):
        raw = lines[index].strip()
        if not raw:
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError:
            log.warning("%s line %d is not JSON; skipped", path, index + 1)
            continue
        value = row.get(metric) if isinstance(row, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        epoch = row.get("epoch", index)
        step = int(epoch) if isinstance(epoch, int | float) and not isinstance(epoch, bool) else index
        obs.latest = float(value)
        if step in obs.values or step < 0:
            continue
        obs.values[step] = float(value)
        new.append((step, float(value)))
    obs.lines_read = len(lines)
    return new


def final_metric(uri: str, metric: str) -> float | None:
    """``metric`` from the trial's ``final_metrics.json``, or None when absent or not a finite number."""
    fs, path = filesystem(output_file(uri, FINAL_METRICS_FILE))
    try:
        if not fs.exists(path):
            return None
        with fs.open(path, "r") as fh:
            row = json.load(fh)
    except (OSError, ValueError):
        return None
    value = row.get(metric) if isinstance(row, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def extract_value(obs: Observations, strategy: str, final: float | None = None) -> float | None:
    """A trial's objective value by Katib's metric strategy (min, max or latest of the observations)."""
    values = list(obs.values.values())
    if final is not None:
        values.append(final)
    if not values:
        return None
    if strategy == "min":
        return min(values)
    if strategy == "max":
        return max(values)
    return final if final is not None else obs.latest if obs.latest is not None else values[-1]
