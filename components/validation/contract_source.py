"""Where a contract comes from: a built-in name, inline JSON, or a JSON/YAML file at a path or URI."""

from __future__ import annotations

import json
from collections.abc import Callable

import yaml

from components._core.artifacts import filesystem
from components.validation.contract import Contract, ContractError


def _builtins() -> dict[str, Callable[[], Contract]]:
    from components.data.contracts import breast_cancer_contract, demo_events_contract

    return {"demo_events": demo_events_contract, "breast_cancer": breast_cancer_contract}


def load_contract(spec: str) -> Contract | None:
    """Resolve ``spec``: '' → None (infer from a reference), a built-in name, inline JSON, or a file URI."""
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
    data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    return Contract.parse(data)
