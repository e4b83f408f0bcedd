"""The whole local training pipeline on defaults: wall time, and where it goes.

Runs ``training`` exactly as ``catalog run training`` does (kfp.local, SubprocessRunner, every task in its own
Python process), with its own serving home, and splits the wall time into

- **kfp.local**: the pipeline's wall time less the tasks' (building the pipeline, kfp.local's bookkeeping and
  artifact handling between tasks);
- **process start**: a bare ``python -c pass`` per task (measured in this run);
- **imports**: the top-level imports of each task's own process, from ``PYTHONPROFILEIMPORTTIME``, which the
  tasks inherit (kfp's executor, our modules and their libraries): the first block of import lines in the
  task's log, up to the next process's header;
- **worker start**: the same for the processes a task launches whose output reaches its log (torchrun and the
  training ranks of tune and train): each process's imports plus a process start, divided by the ranks that
  start together (``world_size``, 2 on defaults), since those import in parallel;
- **work**: the rest of each task (reading and writing data, training, serving, the rollout).

"Outside the work" is all but the last. ``-X importtime`` adds a little to each import, so the import share
is an upper bound. Model servers the deploy step starts log to their own files: their start-up counts as the
deploy step's work (waiting for an honest readiness is the rollout's job).

``python -m bench pipeline [--runs N] [--monitoring] [--keep DIR]``: the second run has a champion to compare with
(gate and canary); ``--monitoring`` then runs the monitoring pipeline on its default, unshifted batch (drift
check only) and on a shifted one (retrain, gate, canary).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

GOAL_SECONDS = 120.0
GOAL_OUTSIDE_SHARE = 0.20

# "import time:       123 |      45678 | package" (self, cumulative, name indented by nesting)
_IMPORT_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)")


_HEADER = "import time: self [us] | cumulative | imported package"


@dataclass
class TaskCost:
    """One task's wall time split into start, imports, worker start and work."""

    name: str
    seconds: float
    imports: float
    start: float
    workers: float = 0.0

    @property
    def work(self) -> float:
        return max(0.0, self.seconds - self.imports - self.start - self.workers)


def import_blocks(log: str) -> list[float]:
    """Seconds of top-level imports per process, in the order the processes' headers appear in ``log``
    (concurrent processes interleave, so only the first block is exactly one process's)."""
    blocks: list[float] = []
    for line in log.splitlines():
        if _HEADER in line:
            blocks.append(0.0)
            continue
        m = _IMPORT_LINE.search(line)
        if m and blocks and len(m.group(3)) == 1:  # top level: one space after the bar
            blocks[-1] += int(m.group(2)) / 1e6
    return blocks


def task_cost(name: str, seconds: float, log: str, start: float, parallel: int) -> TaskCost:
    """The task's own process's imports, and its launched processes' start and imports over ``parallel``."""
    blocks = import_blocks(log)
    own = blocks[0] if blocks else 0.0
    workers = sum(b + start for b in blocks[1:]) / parallel
    return TaskCost(name, seconds, own, start, workers)


def interpreter_start(repeats: int = 5) -> float:
    """Median seconds of ``python -c pass`` with this environment (no -X importtime)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


SHIFTED_BATCH = "demo://events?rows=3000&bad_share=0.02&seed=12&start=2026-03-02&shift=1.5"


def run_once(root: Path, start: float, parallel: int, pipeline: str = "training",
             arguments: dict[str, str] | None = None) -> tuple[float, list[TaskCost], str]:
    """One run of ``pipeline`` on defaults (or ``arguments``); its wall time, task costs and status."""
    from catalog.local_run import run_pipeline

    summary = run_pipeline(pipeline, arguments or {}, root=root)
    costs = [task_cost(t.name, t.seconds, Path(t.log).read_text() if t.log else "", start, parallel)
             for t in summary.tasks]
    if summary.status != "SUCCEEDED":
        print(summary.error, file=sys.stderr)
    return summary.seconds, costs, summary.status


def report(label: str, wall: float, costs: list[TaskCost]) -> float:
    """Print the run's breakdown; return the share outside the steps' work."""
    tasks = sum(c.seconds for c in costs)
    kfp_local = wall - tasks
    imports, starts = sum(c.imports for c in costs), sum(c.start for c in costs)
    workers = sum(c.workers for c in costs)
    print(f"\n{label}: {wall:.1f} s wall, {len(costs)} tasks")
    print(f"{'task':<22}{'wall s':>8}{'imports':>9}{'start':>7}{'workers':>9}{'work':>8}")
    for c in costs:
        print(f"{c.name:<22}{c.seconds:>8.1f}{c.imports:>9.1f}{c.start:>7.2f}{c.workers:>9.1f}{c.work:>8.1f}")
    outside = kfp_local + imports + starts + workers
    print(f"kfp.local {kfp_local:.1f} s, task imports {imports:.1f} s, task process start {starts:.1f} s, "
          f"worker start and imports {workers:.1f} s, work {wall - outside:.1f} s")
    share = outside / wall if wall else 0.0
    print(f"ratio outside/wall: {share:.2f} (goal <= {GOAL_OUTSIDE_SHARE:.2f}); "
          f"ratio wall/goal: {wall / GOAL_SECONDS:.2f} (goal {GOAL_SECONDS:.0f} s)")
    return share


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="runs in a row (the second has a champion)")
    parser.add_argument("--keep", metavar="DIR", help="keep the runs (logs, artifacts) under DIR")
    parser.add_argument("--monitoring", action="store_true",
                        help="then the monitoring pipeline on its default (unshifted) batch and on a shifted one")
    args = parser.parse_args(list(argv))
    from pipelines.defaults import LAUNCH

    parallel = int(json.loads(LAUNCH).get("world_size", 1))
    from components.serving.canary.local import LocalServing
    from components.serving.target import DeployConfig

    start = interpreter_start()
    print(f"python -c pass: {start * 1000:.0f} ms; cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        saved = {k: os.environ.get(k) for k in ("CATALOG_SERVING_HOME", "PYTHONPROFILEIMPORTTIME")}
        os.environ["CATALOG_SERVING_HOME"] = str(Path(tmp) / "serving")
        os.environ["PYTHONPROFILEIMPORTTIME"] = "1"  # read by each task's interpreter, not by this one's imports
        try:
            status = "SUCCEEDED"
            for i in range(args.runs):
                wall, costs, status = run_once(Path(args.keep or tmp) / "runs", start, parallel)
                report(f"run {i + 1} ({status})", wall, costs)
                if status != "SUCCEEDED":
                    break
            batches = {"unshifted": {}, "shifted": {"current_uri": SHIFTED_BATCH, "data_version": "shifted"}}
            for label, arguments in batches.items() if args.monitoring and status == "SUCCEEDED" else ():
                wall, costs, status = run_once(Path(args.keep or tmp) / "runs", start, parallel, "monitoring",
                                               arguments)
                report(f"monitoring, {label} batch ({status})", wall, costs)
        finally:
            LocalServing(DeployConfig.parse({})).stop()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return 0 if status == "SUCCEEDED" else 1
