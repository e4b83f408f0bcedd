"""Data validation: schema contracts, row-level validation with a quarantine, statistics and a report.

Logic only (no ``kfp`` imports): the KFP wrapper calls :func:`components.validation.run.run_validation`.
"""

from components.validation.contract import ColumnRule, Contract, ContractError, infer_contract
from components.validation.validate import ValidationOutcome, validate_table

__all__ = ["ColumnRule", "Contract", "ContractError", "ValidationOutcome", "infer_contract", "validate_table"]
