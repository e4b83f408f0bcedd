"""CLI argument handling (no pipeline runs here)."""

from __future__ import annotations

import pytest

from catalog.cli import main, parse_parameters
from pipelines import factory
from pipelines.targets import Target


def inputs() -> dict:
    return factory("training")(Target.LOCAL).component_spec.inputs


def test_parameters_are_typed_from_the_pipeline_signature() -> None:
    args = parse_parameters(["max_quarantine_share=0.2", "data_version=7", "source_uri=a=b"], inputs())
    assert args == {"max_quarantine_share": 0.2, "data_version": "7", "source_uri": "a=b"}


@pytest.mark.parametrize("pair,message", [
    ("nope=1", "unknown parameter 'nope'; this pipeline takes: contract, data_version"),
    ("max_quarantine_share=lots", "parameter 'max_quarantine_share' expects Float"),
    ("source_uri", "is not name=value"),
])
def test_bad_parameters_are_named(pair: str, message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        parse_parameters([pair], inputs())


def test_unknown_pipeline_is_named() -> None:
    with pytest.raises(SystemExit, match="unknown pipeline 'nope'; available: \\['monitoring', 'training'\\]"):
        main(["run", "nope"])


def test_list_shows_every_component(capsys: pytest.CaptureFixture[str]) -> None:
    from components._kfp import COMPONENTS

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMPONENTS)
