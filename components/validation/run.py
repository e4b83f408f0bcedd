"""Validation run: read a table, validate it against a contract (given, inferred from a reference, or none),
write the valid rows, the quarantine, statistics and a Markdown report, then gate on the quarantine share.

With neither a contract nor a reference, no row rules apply: every row passes through as valid, and the
statistics, report (verdict UNCHECKED) and metadata (``contract_source: none``) say so. The step that the KFP
wrapper calls (contract given as a string, config as JSON) is :mod:`components.validation.step`.

Order matters: configuration, input and contract problems raise before anything is written; the four artifacts
are written (each atomically) before the threshold gate raises, so a failing run still leaves its quarantine
and report behind for inspection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, model_validator

from components._core.artifacts import read_table, write_json, write_parquet, write_text
from components._core.config import ConfigError, StrictConfig
from components._core.metrics import numeric
from components.validation.contract import Contract
from components.validation.infer import InferOptions, infer_contract
from components.validation.report import reasons_summary, render_report
from components.validation.stats import column_stats
from components.validation.validate import pass_through, validate_table

ContractSource = Literal["declared", "inferred", "none"]


class QuarantineThresholdError(RuntimeError):
    """More rows were quarantined than the threshold allows; the artifacts were written before raising."""

    def __init__(self, summary: ValidationSummary) -> None:
        self.summary = summary
        super().__init__(
            f"quarantine share {summary.quarantine_share:.4f} ({summary.rows_quarantined} of "
            f"{summary.rows_in} rows) exceeds max_quarantine_share {summary.max_quarantine_share:.4f}; "
            "top reasons: "
            f"{reasons_summary(summary.reason_counts)}")


class EmptyInputError(ValueError):
    """The input (or reference) table has no rows and ``allow_empty`` is false."""


class ValidationConfig(StrictConfig):
    """Configuration of the validation step."""

    contract: Contract | None = Field(
        default=None, description="the contract; None: infer it from the reference table, or apply no row "
                                  "rules when there is none")
    max_quarantine_share: float = Field(
        default=0.05, ge=0.0, le=1.0,
        description="largest share of input rows that may be quarantined before the step fails")
    allow_empty: bool = Field(default=False, description="accept an input with no rows (otherwise an error)")
    infer: InferOptions = Field(
        default_factory=InferOptions,
        description="how the contract is inferred from the reference (contract=None only): unique_keys, "
                    "max_categories, max_category_share, numeric_ranges, range_margin, datetime_ranges")

    @model_validator(mode="after")
    def _check(self) -> ValidationConfig:
        if self.contract is not None and self.infer != InferOptions():
            raise ValueError("infer applies only when the contract is inferred (contract=None); put unique_keys "
                             "and bounds in the contract instead")
        return self


@dataclass(frozen=True)
class ValidationSummary:
    """What one validation run found; ``to_metadata()`` is a flat dict for KFP artifact metadata / metrics."""

    rows_in: int
    rows_valid: int
    rows_quarantined: int
    quarantine_share: float
    max_quarantine_share: float
    passed: bool
    reason_counts: dict[str, int] = field(default_factory=dict)
    contract_source: ContractSource = "declared"

    @property
    def contract_inferred(self) -> bool:
        """Whether the contract was inferred from a reference."""
        return self.contract_source == "inferred"

    def to_metadata(self) -> dict[str, int | float | bool | str]:
        """Flat key/value pairs for artifact metadata (reason counts as ``reason.<column>:<rule>``)."""
        meta: dict[str, int | float | bool | str] = {
            "rows_in": self.rows_in,
            "rows_valid": self.rows_valid,
            "rows_quarantined": self.rows_quarantined,
            "quarantine_share": self.quarantine_share,
            "max_quarantine_share": self.max_quarantine_share,
            "passed": self.passed,
            "contract_inferred": self.contract_inferred,
            "contract_source": self.contract_source,
            "row_rules_applied": self.contract_source != "none",
        }
        meta.update({f"reason.{k}": v for k, v in sorted(self.reason_counts.items())})
        return meta

    def metrics(self) -> dict[str, float]:
        """The numeric metadata entries, as KFP metric values."""
        return numeric(self.to_metadata())


def resolve_contract(config: ValidationConfig, reference_uri: str | None) -> tuple[Contract | None, ContractSource]:
    """The contract to apply (None: no row rules) and where it came from."""
    if config.contract is not None:
        if reference_uri is not None:
            raise ConfigError("invalid ValidationConfig.contract: give either a contract or a reference, not both")
        return config.contract, "declared"
    if reference_uri is None:
        return None, "none"
    reference = read_table(reference_uri)
    if reference.height == 0:
        raise EmptyInputError(f"reference table {reference_uri} has no rows: cannot infer a contract")
    return infer_contract(reference, config.infer), "inferred"


def describe_contract(source: ContractSource, infer: InferOptions) -> str | None:
    """One line on where the contract came from (for the report); None when no contract applies."""
    if source == "none":
        return None
    if source == "declared":
        return "declared"
    ranges = {"off": "no numeric ranges", "sign": "numeric ranges: min 0 on non-negative columns",
              "observed": "numeric ranges: observed min/max",
              "margin": f"numeric ranges: observed min/max widened by {infer.range_margin:g} x the observed "
                        "span on each side"}[infer.numeric_ranges]
    return (f"inferred from the reference ({ranges}; "
            f"{'observed' if infer.datetime_ranges else 'no'} datetime ranges; allowed sets for text columns "
            f"with <= {infer.max_categories} distinct values, <= {infer.max_category_share:.0%} of the rows)")


def run_validation(input_uri: str, *, valid_uri: str, quarantine_uri: str, stats_uri: str, report_uri: str,
                   config: ValidationConfig | dict[str, Any] | str, reference_uri: str | None = None
                   ) -> ValidationSummary:
    """Validate the table at ``input_uri`` and write valid rows (Parquet), quarantine (Parquet), statistics
    (JSON) and a report (Markdown).

    Raises ``QuarantineThresholdError`` after writing when the quarantine share exceeds
    ``config.max_quarantine_share``; ``ConfigError`` / ``ArtifactError`` / ``EmptyInputError`` /
    ``ContractError`` before writing anything.
    """
    cfg = ValidationConfig.parse(config)
    contract, source = resolve_contract(cfg, reference_uri)
    df = read_table(input_uri)
    if df.height == 0 and not cfg.allow_empty:
        raise EmptyInputError(f"input table {input_uri} has no rows (set allow_empty to accept empty inputs)")
    outcome = validate_table(df, contract) if contract is not None else pass_through(df)
    share = outcome.quarantine_share
    summary = ValidationSummary(
        rows_in=outcome.rows_in, rows_valid=outcome.rows_valid, rows_quarantined=outcome.rows_quarantined,
        quarantine_share=share, max_quarantine_share=cfg.max_quarantine_share,
        passed=share <= cfg.max_quarantine_share, reason_counts=dict(outcome.reason_counts),
        contract_source=source)
    stats = column_stats(outcome.valid)
    report = render_report(outcome, stats, max_quarantine_share=cfg.max_quarantine_share,
                           contract=describe_contract(source, cfg.infer))
    write_parquet(outcome.valid, valid_uri)
    write_parquet(outcome.quarantine, quarantine_uri)
    write_json({"summary": summary.to_metadata(), "reason_counts": summary.reason_counts,
                "contract": contract.model_dump(mode="json") if contract is not None else None,
                "columns": stats}, stats_uri)
    write_text(report, report_uri)
    if not summary.passed:
        raise QuarantineThresholdError(summary)
    return summary
