"""The validation step: read a table, validate it against a contract (given, or inferred from a reference),
write the valid rows, the quarantine, statistics and a Markdown report, then gate on the quarantine share.

Order matters: configuration, input and contract problems raise before anything is written; the four artifacts
are written (each atomically) before the threshold gate raises, so a failing run still leaves its quarantine
and report behind for inspection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, model_validator

from components._core.artifacts import read_table, write_json, write_parquet, write_text
from components._core.config import ConfigError, StrictConfig
from components.validation.contract import Contract, infer_contract
from components.validation.report import reasons_summary, render_report
from components.validation.stats import column_stats
from components.validation.validate import validate_table


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
        default=None, description="the contract; None: infer it from the reference table (reference_uri)")
    max_quarantine_share: float = Field(
        default=0.05, ge=0.0, le=1.0,
        description="largest share of input rows that may be quarantined before the step fails")
    allow_empty: bool = Field(default=False, description="accept an input with no rows (otherwise an error)")
    infer_unique_keys: list[str] = Field(
        default_factory=list, max_length=64,
        description="unique keys of the inferred contract (contract=None only)")
    infer_max_categories: int = Field(
        default=50, ge=0, le=100_000,
        description="inferred string columns with at most this many distinct values get an allowed set")

    @model_validator(mode="after")
    def _check(self) -> ValidationConfig:
        if self.contract is not None and self.infer_unique_keys:
            raise ValueError("infer_unique_keys applies only when the contract is inferred (contract=None); "
                             "put unique_keys in the contract instead")
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
    contract_inferred: bool = False

    def to_metadata(self) -> dict[str, int | float | bool | str]:
        """Flat key/value pairs (reason counts as ``reason.<column>:<rule>``)."""
        meta: dict[str, int | float | bool | str] = {
            "rows_in": self.rows_in,
            "rows_valid": self.rows_valid,
            "rows_quarantined": self.rows_quarantined,
            "quarantine_share": self.quarantine_share,
            "max_quarantine_share": self.max_quarantine_share,
            "passed": self.passed,
            "contract_inferred": self.contract_inferred,
        }
        meta.update({f"reason.{k}": v for k, v in sorted(self.reason_counts.items())})
        return meta


def resolve_contract(config: ValidationConfig, reference_uri: str | None) -> tuple[Contract, bool]:
    """The contract to apply and whether it was inferred (from the table at ``reference_uri``)."""
    if config.contract is not None:
        if reference_uri is not None:
            raise ConfigError("invalid ValidationConfig: give either a contract or a reference_uri, not both")
        return config.contract, False
    if reference_uri is None:
        raise ConfigError("invalid ValidationConfig.contract: None requires a reference_uri to infer it from")
    reference = read_table(reference_uri)
    if reference.height == 0:
        raise EmptyInputError(f"reference table {reference_uri} has no rows: cannot infer a contract")
    contract = infer_contract(reference, unique_keys=config.infer_unique_keys,
                              max_categories=config.infer_max_categories)
    return contract, True


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
    contract, inferred = resolve_contract(cfg, reference_uri)
    df = read_table(input_uri)
    if df.height == 0 and not cfg.allow_empty:
        raise EmptyInputError(f"input table {input_uri} has no rows (set allow_empty to accept empty inputs)")
    outcome = validate_table(df, contract)
    share = outcome.quarantine_share
    summary = ValidationSummary(
        rows_in=outcome.rows_in, rows_valid=outcome.rows_valid, rows_quarantined=outcome.rows_quarantined,
        quarantine_share=share, max_quarantine_share=cfg.max_quarantine_share,
        passed=share <= cfg.max_quarantine_share, reason_counts=dict(outcome.reason_counts),
        contract_inferred=inferred)
    stats = column_stats(outcome.valid)
    report = render_report(outcome, stats, max_quarantine_share=cfg.max_quarantine_share)
    write_parquet(outcome.valid, valid_uri)
    write_parquet(outcome.quarantine, quarantine_uri)
    write_json({"summary": summary.to_metadata(), "reason_counts": summary.reason_counts,
                "contract": contract.model_dump(mode="json"), "columns": stats}, stats_uri)
    write_text(report, report_uri)
    if not summary.passed:
        raise QuarantineThresholdError(summary)
    return summary
