"""DriftConfig: Evidently's defaults, strict parsing, and errors that name the offending field or value."""

import pytest

from components._core.config import ConfigError
from components.drift.config import DriftConfig


def test_defaults_are_evidentlys_preset_defaults_and_the_stated_bounds() -> None:
    cfg = DriftConfig.parse("")
    assert cfg.drift_share == 0.5
    assert cfg.num_method is None and cfg.cat_method is None and cfg.threshold is None
    assert cfg.per_column_method == {} and cfg.per_column_threshold == {}
    assert cfg.max_rows is None and cfg.report_rows == 5_000 and cfg.seed == 0 and cfg.columns is None


def test_parses_json_dicts_and_instances_alike() -> None:
    text = ('{"drift_share": 0.3, "num_method": "psi", "cat_method": "chisquare", "per_column_method": '
            '{"amount": "ks"}, "per_column_threshold": {"amount": 0.01}, "threshold": 0.2, "max_rows": 1000, '
            '"report_rows": 200, "seed": 3, "columns": ["amount"]}')
    cfg = DriftConfig.parse(text)
    assert cfg.per_column_method == {"amount": "ks"} and cfg.per_column_threshold == {"amount": 0.01}
    assert DriftConfig.parse(cfg.model_dump()) == cfg and DriftConfig.parse(cfg) is cfg
    assert cfg.named_columns() == {"amount"}


@pytest.mark.parametrize(("config", "named"), [
    ({"num_method": "anderson"}, "num_method"),
    ({"per_column_method": {"amount": "kolmogorov"}}, "per_column_method.amount"),
    ({"num_method": "chisquare"}, "does not apply to numerical columns"),
    ({"cat_method": "wasserstein"}, "does not apply to categorical columns"),
    ({"per_column_threshold": {"amount": -1.0}}, "amount"),
    ({"drift_share": 0}, "drift_share"),
    ({"drift_share": 1.5}, "drift_share"),
    ({"max_rows": 10}, "max_rows"),
    ({"report_rows": 0}, "report_rows"),
    ({"columns": []}, "columns"),
    ({"method": "ks"}, "method"),
])
def test_bad_values_fail_naming_the_field(config: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        DriftConfig.parse(config)


def test_an_unknown_method_lists_the_supported_ones() -> None:
    with pytest.raises(ConfigError) as err:
        DriftConfig.parse({"cat_method": "fisher"})
    for name in ("ks", "chisquare", "z", "wasserstein", "jensenshannon", "psi"):
        assert f"'{name}'" in str(err.value)
