"""The validation step the KFP wrapper calls: the contract from its string parameter, the config from JSON, the
run, and a summary whose ``to_metadata()`` / ``metrics()`` the wrapper copies onto its artifacts.

``contract`` is a built-in name (``demo_events``, ``breast_cancer``), inline JSON, a JSON/YAML file at a path or
URI, or empty: then it is inferred from the reference, or (no reference either) no row rules are applied and
the report and metadata say so (see :mod:`components.validation.run`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import yaml

from components._core.artifacts import filesystem
from components._core.config import ConfigError
from components.validation.contract import Contract, ContractError
from components.validation.run import ValidationConfig, ValidationSummary, run_validation

PARAMETERS = ("contract", "max_quarantine_share")  # given as the step's own arguments, never inside config


def _builtins() -> dict[str, Callable[[], Contract]]:
    from components.data.contracts import breast_cancer_contract, demo_events_contract

    return {"demo_events": demo_events_contract, "breast_cancer": breast_cancer_contract}


def load_contract(spec: str) -> Contract | None:
    """Resolve ``spec``: '' → None (infer from a reference), a built-in name, inline JSON, or a file URI.

    Raises ``ConfigError`` naming the bad field of an invalid contract, ``ContractError`` for an unknown name.
    """
    spec = spec.strip()
    if not spec:
        return None
    builtins = _builtins()
    if spec in builtins:
        return builtins[spec]()
    if spec.startswith("{"):
        return Contract.parse(spec)
    fs, path = filesystem(spec)
    if not fs.exists(path):
        raise ContractError(f"contract {spec!r} is neither a built-in ({', '.join(sorted(builtins))}), "
                            "inline JSON, nor an existing file")
    with fs.open(path, "r") as fh:
        text = fh.read()
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"invalid Contract: {spec} is not valid JSON/YAML ({err})") from None
    return Contract.parse(data)


def step_config(contract: str, max_quarantine_share: float, config: str | dict[str, Any]) -> ValidationConfig:
    """The run's config: ``config`` (JSON of the other ``ValidationConfig`` fields) plus the two parameters."""
    extra = ValidationConfig.parse(config).model_dump(exclude_unset=True)
    clash = [k for k in PARAMETERS if k in extra]
    if clash:
        raise ConfigError(f"invalid ValidationConfig.{clash[0]}: set it with the step's {clash[0]} parameter, "
                          "not inside config")
    return ValidationConfig.parse({**extra, "contract": load_contract(contract),
                                   "max_quarantine_share": max_quarantine_share})


def validate_step(data_uri: str, *, valid_uri: str, quarantine_uri: str, stats_uri: str, report_uri: str,
                  contract: str = "", max_quarantine_share: float = 0.05, config: str | dict[str, Any] = "{}",
                  reference_uri: str | None = None) -> ValidationSummary:
    """Validate ``data_uri`` against ``contract`` (or one inferred from ``reference_uri``) and write the four
    artifacts; raises ``QuarantineThresholdError`` after writing them when too many rows were quarantined."""
    cfg = step_config(contract, max_quarantine_share, config)
    return run_validation(data_uri, valid_uri=valid_uri, quarantine_uri=quarantine_uri, stats_uri=stats_uri,
                          report_uri=report_uri, config=cfg, reference_uri=reference_uri)
