"""Trial parameters and the best parameters: merged into a trainer config, and the typed output of tuning that the
training step consumes (``BestParams``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from components._core.config import StrictConfig

ParamValue = int | float | str | bool


class ParamsError(ValueError):
    """Parameters cannot be merged into the trainer config."""


def merge_params(trainer_config: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``trainer_config`` with each parameter set; dotted names set nested keys
    (``optimizer.lr`` sets ``trainer_config["optimizer"]["lr"]``, creating the mapping when absent)."""
    merged = copy.deepcopy(dict(trainer_config))
    for name, value in params.items():
        node = merged
        *parents, leaf = name.split(".")
        for i, key in enumerate(parents):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                where = ".".join(parents[: i + 1])
                raise ParamsError(f"parameter {name!r}: trainer_config.{where} is not a mapping")
            node = child
        node[leaf] = value
    return merged


class BestParams(StrictConfig):
    """The tuning step's typed output: the best trial's parameters and how they scored."""

    params: dict[str, ParamValue] = Field(description="parameter name (dotted for nested keys) -> value")
    objective_metric_name: str = Field(min_length=1, description="metric the value is of")
    direction: Literal["maximize", "minimize"] = Field(description="whether higher or lower is better")
    value: float = Field(allow_inf_nan=False, description="the best trial's objective value")
    trial_name: str = Field(description="name of the best trial's job")
    study_name: str = Field(description="the study it came from")

    def apply(self, trainer_config: Mapping[str, Any]) -> dict[str, Any]:
        """``trainer_config`` with the best parameters merged in (what the training step trains with)."""
        return merge_params(trainer_config, self.params)
