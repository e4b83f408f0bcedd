"""Helpers for calling a wrapper's ``python_func`` on temporary artifacts, as KFP's executor would."""

from pathlib import Path

from kfp import dsl


def artifact(cls: type, path: Path) -> dsl.Artifact:
    """An output (or input) artifact of type ``cls`` at ``path``, with empty metadata."""
    return cls(name=path.name, uri=str(path), metadata={})


def outputs(tmp_path: Path, **kinds: type) -> dict[str, dsl.Artifact]:
    """One artifact per keyword (``name=dsl.Dataset``) under ``tmp_path``."""
    return {name: artifact(cls, tmp_path / name) for name, cls in kinds.items()}
