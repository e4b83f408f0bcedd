"""Data validation: schema contracts, row-level validation with a quarantine, statistics and a report.

Logic only (no ``kfp`` imports): the KFP wrapper calls :func:`components.validation.step.validate_step`.
"""

from components.validation.contract import ColumnRule, Contract, ContractError
from components.validation.infer import InferOptions, infer_contract
from components.validation.validate import ValidationOutcome, validate_table

__all__ = ["ColumnRule", "Contract", "ContractError", "InferOptions", "ValidationOutcome", "infer_contract",
           "validate_table"]
