"""The tuning spec's algorithm and early stopping as Optuna objects: distributions, samplers, the pruner."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.pruners import BasePruner, MedianPruner, NopPruner
from optuna.samplers import BaseSampler, CmaEsSampler, GridSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from components.tuning.spec import MAX_SEED, ParameterSpec, TuningSpec


class TuningError(RuntimeError):
    """The study cannot run as specified (unsupported option, bad storage, missing package)."""


def distribution(param: ParameterSpec, *, grid: bool = False) -> BaseDistribution:
    """The Optuna distribution of one parameter (grid search: the grid values as categorical choices)."""
    fs = param.feasible_space
    if grid:
        return CategoricalDistribution(param.grid())
    if param.parameter_type == "double":
        assert fs.low is not None and fs.high is not None
        return FloatDistribution(fs.low, fs.high, log=param.log, step=fs.step)
    if param.parameter_type == "int":
        assert fs.low is not None and fs.high is not None
        return IntDistribution(int(fs.low), int(fs.high), log=param.log, step=int(fs.step or 1))
    return CategoricalDistribution(param.choices())


def distributions(spec: TuningSpec) -> dict[str, BaseDistribution]:
    """Every parameter's distribution, in spec order."""
    grid = spec.algorithm.algorithm_name == "grid"
    return {p.name: distribution(p, grid=grid) for p in spec.parameters}


class AskTellGridSampler(GridSampler):
    """GridSampler for ask-and-tell: Optuna's ``after_trial`` calls ``study.stop()`` once the grid is covered,
    which raises outside ``study.optimize``; here the engine's trial budget (validated <= the grid size) stops."""

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        return None


def build_sampler(spec: TuningSpec, *, trials_before: int = 0) -> BaseSampler:
    """The sampler for ``spec.algorithm`` with every option set explicitly (Optuna 5 changed TPE's defaults:
    multivariate and constant_liar are now on). Unset Katib settings take Optuna's documented values.

    ``trials_before``: trials the study already holds (a resumed study). A sampler's random state is not stored
    with the study, so a seeded sampler made afresh would repeat the suggestions of the study's first run; the
    seed is moved on by the trial count instead (still deterministic for a given history)."""
    name = spec.algorithm.algorithm_name
    opts = spec.algorithm.options()
    seed: int | None = opts.get("random_state")
    if seed is not None and trials_before > 0:
        seed = (seed + trials_before) % (MAX_SEED + 1)
    if name in ("tpe", "multivariate-tpe"):
        return TPESampler(
            n_startup_trials=opts.get("n_startup_trials", 10),
            n_ei_candidates=opts.get("n_ei_candidates", 24),
            seed=seed,
            multivariate=name == "multivariate-tpe",
            group=False,
            constant_liar=True,  # as Katib's Optuna suggestion: running trials count as bad, so parallel asks spread
        )
    if name == "random":
        return RandomSampler(seed=seed)
    if name == "grid":
        return AskTellGridSampler(spec.grid_space(), seed=seed)
    if name == "cmaes":
        if importlib.util.find_spec("cmaes") is None:
            raise TuningError("algorithm cmaes needs the 'cmaes' package, which this image does not have; "
                              "use tpe or multivariate-tpe, or add cmaes to the image")
        if opts.get("restart_strategy") is not None:
            raise TuningError("cmaes restart_strategy 'ipop' is not supported by Optuna >= 4.4 (it silently "
                              "falls back to none); remove the setting or run the spec as a Katib Experiment")
        return CmaEsSampler(
            sigma0=opts.get("sigma"),
            n_startup_trials=1,
            independent_sampler=RandomSampler(seed=seed),
            warn_independent_sampling=False,
            seed=seed,
            consider_pruned_trials=False,
            restart_strategy=None,
            use_separable_cma=False,
            with_margin=False,
            lr_adapt=False,
        )
    raise TuningError(f"unknown algorithm {name!r}")  # pragma: no cover - the spec rejects it first


def build_pruner(spec: TuningSpec) -> BasePruner:
    """Katib's medianstop as Optuna's MedianPruner: no pruning before ``min_trials_required`` trials have
    succeeded, nor before step ``start_step``; checked at every step."""
    if spec.early_stopping is None:
        return NopPruner()
    opts = spec.early_stopping.options()
    return MedianPruner(
        n_startup_trials=opts["min_trials_required"],
        n_warmup_steps=opts["start_step"],
        interval_steps=1,
        n_min_trials=1,
    )
