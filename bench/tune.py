"""Tuning benchmark: trials needed to reach a target, TPE vs random search; epochs saved by median stopping.

Every trial runs through the real engine (``run_tuning``: ask-and-tell, trials started through the launch module
and polled through the one wait path, metrics.jsonl reading, pruning, Katib stop order) on the simulated backend
(``tests/fakes/learning_curves.py``): a synthetic learning curve per configuration, no torch, on a manual clock,
so a run is exactly reproducible for a seed and costs only the sampler's time.

The objective is a validation loss after ``EPOCHS`` epochs over five hyperparameters (learning rate and weight
decay on a log scale, dropout, hidden width, optimizer). Its optimum is narrow in learning rate and weight decay,
and the learning rate also sets how fast a curve falls, so curves cross (a slow learner can end best).

1. Trials to target: each algorithm runs with ``goal = TARGET`` (stop when a trial's val_loss <= target) and a
   budget of ``--budget`` trials, one trial at a time; a seed that misses counts as the budget (censored).
2. Pruning: the same random-search trials (same seed, so the same configurations) with and without Katib's
   medianstop; epochs run with pruning vs without, and the best value each finds.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import optuna

from components.training.launch import LaunchSpec
from components.tuning.engine import run_tuning
from components.tuning.results import StopReason, TuningResult
from components.tuning.spec import TuningSpec
from tests.fakes.clock import ManualClock
from tests.fakes.learning_curves import SimulatedBackend

EPOCHS = 20
TARGET = 0.25
GOAL_TRIALS_RATIO = 0.5
GOAL_EPOCHS_SAVED = 0.30
KATIB_MEDIANSTOP = (3, 4)  # Katib's medianstop defaults: min_trials_required, start_step
OPT_PENALTY = {"adam": 0.0, "rmsprop": 0.03, "sgd": 0.08}

PARAMETERS: list[dict[str, Any]] = [
    {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": 1e-5, "max": 1.0, "distribution": "logUniform"}},
    {"name": "weight_decay", "parameterType": "double",
     "feasibleSpace": {"min": 1e-6, "max": 0.1, "distribution": "logUniform"}},
    {"name": "dropout", "parameterType": "double", "feasibleSpace": {"min": 0.0, "max": 0.6}},
    {"name": "hidden", "parameterType": "int", "feasibleSpace": {"min": 16, "max": 512, "distribution": "logUniform"}},
    {"name": "optimizer", "parameterType": "categorical", "feasibleSpace": {"list": ["adam", "rmsprop", "sgd"]}},
]


def final_loss(cfg: dict[str, Any]) -> float:
    """Validation loss the configuration converges to (lowest 0.20 at lr=10^-2.5, wd=1e-4, dropout 0.2, 128)."""
    return (0.20
            + 0.08 * (math.log10(cfg["lr"]) + 2.5) ** 2
            + 0.03 * (math.log10(cfg["weight_decay"]) + 4.0) ** 2
            + 0.5 * (cfg["dropout"] - 0.2) ** 2
            + 0.02 * (math.log2(cfg["hidden"]) - 7.0) ** 2
            + OPT_PENALTY[cfg["optimizer"]])


def learning_curve(cfg: dict[str, Any]) -> list[float]:
    """val_loss per epoch: from 1.5 towards the final loss, slower for small learning rates."""
    final = final_loss(cfg)
    tau = 1.5 + 2.0 * max(0.0, -2.5 - math.log10(cfg["lr"]))
    return [final + (1.5 - final) * math.exp(-(e + 1) / tau) for e in range(EPOCHS)]


def _spec(algorithm: str, seed: int, budget: int, goal: float | None, median: tuple[int, int] | None) -> TuningSpec:
    settings = [{"name": "random_state", "value": str(seed)}]
    if algorithm in ("tpe", "multivariate-tpe"):
        settings.append({"name": "n_startup_trials", "value": "10"})
    objective: dict[str, Any] = {"type": "minimize", "objectiveMetricName": "val_loss"}
    if goal is not None:
        objective["goal"] = goal
    return TuningSpec.parse({
        "objective": objective,
        "algorithm": {"algorithmName": algorithm, "algorithmSettings": settings},
        "parameters": PARAMETERS,
        "parallelTrialCount": 1,
        "maxTrialCount": budget,
        "maxFailedTrialCount": 0,
        **({"earlyStopping": {"algorithmSettings": [
            {"name": "min_trials_required", "value": str(median[0])},
            {"name": "start_step", "value": str(median[1])}]}} if median else {}),
    })


def run_study(algorithm: str, seed: int, budget: int, *, goal: float | None = None,
              median: tuple[int, int] | None = None,
              epochs_per_poll: int = EPOCHS) -> tuple[TuningResult, SimulatedBackend]:
    """One study through the engine on the simulated backend, in memory, on a manual clock."""
    spec = _spec(algorithm, seed, budget, goal, median)
    backend = SimulatedBackend(learning_curve, epochs_per_poll=epochs_per_poll)
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        base = LaunchSpec.parse({"name": f"bench-{algorithm}-{seed}", "trainer_config": {"epochs": EPOCHS},
                                 "data_uri": "synthetic", "output_uri": f"{tmp}/runs", "world_size": 1})
        result, _history = run_tuning(spec, base, backend, storage=optuna.storages.InMemoryStorage(),
                                      storage_label="memory", clock=ManualClock().clock())
    return result, backend


def trials_to_target(algorithm: str, seed: int, budget: int) -> tuple[int, bool]:
    result, _ = run_study(algorithm, seed, budget, goal=TARGET)
    return result.trials.height, result.stop_reason is StopReason.GOAL_REACHED


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(prog="python -m bench tune", description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=8, help="seeds per algorithm (default 8)")
    p.add_argument("--budget", type=int, default=300, help="trial budget per study for trials-to-target")
    p.add_argument("--prune-trials", type=int, default=60, help="trials per study in the pruning comparison")
    p.add_argument("--min-trials", type=int, default=5, help="medianstop min_trials_required (default 5)")
    p.add_argument("--start-step", type=int, default=8,
                   help="medianstop start_step (default 8 of 20 epochs; Katib's default 4 is also reported)")
    p.add_argument("--algorithms", default="tpe,multivariate-tpe,random",
                   help="comma-separated algorithms for trials-to-target (random is the reference)")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    algorithms = [a for a in args.algorithms.split(",") if a]
    if "random" not in algorithms:
        algorithms.append("random")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds = list(range(args.seeds))
    print(f"tuning benchmark: target val_loss <= {TARGET}, {EPOCHS} epochs per trial, seeds {seeds}, "
          f"budget {args.budget} trials, one trial at a time")

    means: dict[str, float] = {}
    for algorithm in algorithms:
        t0 = time.perf_counter()
        counts, hits = [], 0
        for seed in seeds:
            n, hit = trials_to_target(algorithm, seed, args.budget)
            counts.append(n)
            hits += hit
        means[algorithm] = statistics.mean(counts)
        print(f"trials to target  {algorithm:17s} mean {means[algorithm]:6.1f}  median {statistics.median(counts):6.1f}"
              f"  per seed {counts}  reached {hits}/{len(seeds)}  ({time.perf_counter() - t0:.1f} s)")

    settings = {"bench": (args.min_trials, args.start_step), "katib-default": KATIB_MEDIANSTOP}
    pruning: dict[str, tuple[float, int]] = {}
    for label, (min_trials, start_step) in settings.items():
        saved, same_best = [], 0
        for seed in seeds:
            full, full_backend = run_study("random", seed, args.prune_trials, epochs_per_poll=1)
            pruned, pruned_backend = run_study("random", seed, args.prune_trials, epochs_per_poll=1,
                                               median=(min_trials, start_step))
            assert full.trials["params_lr"].to_list() == pruned.trials["params_lr"].to_list()  # same trials
            frac = 1 - pruned_backend.epochs_run / full_backend.epochs_run
            equal = math.isclose(full.best_value or math.inf, pruned.best_value or -math.inf, rel_tol=1e-12)
            same_best += equal
            saved.append(frac)
            stopped = (pruned.trials["state"] == "EarlyStopped").sum()
            print(f"median stop {label} (min_trials_required {min_trials}, start_step {start_step}) seed {seed}: "
                  f"epochs {pruned_backend.epochs_run}/{full_backend.epochs_run} ({frac:.1%} saved), "
                  f"{stopped}/{args.prune_trials} stopped early, best val_loss {pruned.best_value:.4f} vs "
                  f"{full.best_value:.4f} unpruned{'' if equal else '  (best trial was pruned)'}")
        pruning[label] = (statistics.mean(saved), same_best)
        print(f"median stop {label}: mean {statistics.mean(saved):.1%} epochs saved, same best value in "
              f"{same_best}/{len(seeds)} seeds")

    ratios: dict[str, float] = {}
    for algorithm in algorithms:
        if algorithm != "random":
            ratios[f"{algorithm}_vs_random_trials"] = means[algorithm] / means["random"]
    ratios["epochs_saved_by_median_stop"], same_best = pruning["bench"]
    for algorithm in algorithms:
        if algorithm == "random":
            continue
        r = ratios[f"{algorithm}_vs_random_trials"]
        print(f"ratio {algorithm}/random trials to target: {r:.2f} (goal <= {GOAL_TRIALS_RATIO}) "
              f"{'PASS' if r <= GOAL_TRIALS_RATIO else 'MISS'}")
    s = ratios["epochs_saved_by_median_stop"]
    ok = s >= GOAL_EPOCHS_SAVED and same_best == len(seeds)
    print(f"ratio epochs saved by median stop (min_trials_required {args.min_trials}, start_step "
          f"{args.start_step}): {s:.1%}, same best value in {same_best}/{len(seeds)} seeds "
          f"(goal >= {GOAL_EPOCHS_SAVED:.0%} at equal best value) {'PASS' if ok else 'MISS'}")
    return ratios


if __name__ == "__main__":
    main()
