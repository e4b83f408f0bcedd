"""A schema contract for a table: one rule per column plus unique keys, as strict configs.

A contract travels as JSON (a pipeline parameter or a file) and is validated where it is built: a bound of
the wrong kind, ``min > max``, an allowed value of the wrong type or a unique key that is not a column
fails at once, naming the field. :func:`components.validation.infer.infer_contract` derives one from a
reference table.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator

from components._core.config import StrictConfig

DType = Literal["int", "float", "string", "bool", "datetime", "date"]
Bound = int | float | str
Category = bool | int | float | str

NUMERIC: frozenset[str] = frozenset({"int", "float"})
TEMPORAL: frozenset[str] = frozenset({"datetime", "date"})
RESERVED_COLUMNS: tuple[str, ...] = ("_row", "_reasons")


class ContractError(ValueError):
    """The table does not fit the contract at the schema level (missing, extra or unusable columns)."""


def parse_datetime_bound(text: str, time_zone: str | None) -> datetime:
    """An ISO bound as a datetime in the column's zone (a naive bound is read in that zone)."""
    value = datetime.fromisoformat(text)
    if time_zone is None:
        return value if value.tzinfo is None else value.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
    zone = ZoneInfo(time_zone)
    return value.replace(tzinfo=zone) if value.tzinfo is None else value.astimezone(zone)


def parse_date_bound(text: str) -> date:
    """An ISO date bound (``YYYY-MM-DD``)."""
    return date.fromisoformat(text)


class ColumnRule(StrictConfig):
    """The rules one column must satisfy. Numeric bounds are numbers; datetime/date bounds are ISO strings."""

    name: str = Field(min_length=1, max_length=256, description="column name")
    dtype: DType = Field(description="logical type: int, float, string, bool, datetime or date")
    nullable: bool = Field(default=False, description="whether nulls are allowed")
    min: Bound | None = Field(default=None, description="inclusive lower bound: number or ISO datetime/date")
    max: Bound | None = Field(default=None, description="inclusive upper bound: number or ISO datetime/date")
    allowed: list[Category] | None = Field(
        default=None, min_length=1, max_length=100_000,
        description="allowed values (categories) for int, float, string or bool columns")
    finite: bool = Field(default=True, description="float columns only: NaN and +/-inf are invalid when true")
    time_zone: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="datetime columns only: IANA zone of the values (e.g. 'UTC'); None means naive")

    @model_validator(mode="after")
    def _check(self) -> ColumnRule:
        for side in ("min", "max"):
            bound = getattr(self, side)
            if bound is None:
                continue
            if self.dtype in NUMERIC:
                if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound):
                    raise ValueError(f"{side} of {self.dtype} column {self.name!r} must be a finite number, "
                                     f"got {bound!r}")
            elif self.dtype in TEMPORAL:
                if not isinstance(bound, str):
                    raise ValueError(f"{side} of {self.dtype} column {self.name!r} must be an ISO string, "
                                     f"got {bound!r}")
                try:
                    if self.dtype == "date":
                        parse_date_bound(bound)
                    else:
                        datetime.fromisoformat(bound)
                except ValueError:
                    raise ValueError(f"{side} of {self.dtype} column {self.name!r} is not an ISO "
                                     f"{self.dtype}: {bound!r}") from None
            else:
                raise ValueError(f"min/max do not apply to {self.dtype} column {self.name!r}")
        if self.time_zone is not None:
            if self.dtype != "datetime":
                raise ValueError(f"time_zone applies only to datetime columns, not {self.name!r}")
            try:
                ZoneInfo(self.time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time_zone {self.time_zone!r} for column {self.name!r}") from None
        if self.min is not None and self.max is not None and self._inverted():
            raise ValueError(f"min {self.min!r} > max {self.max!r} for column {self.name!r}")
        if self.allowed is not None:
            self._check_allowed(self.allowed)
        return self

    def _check_allowed(self, allowed: list[Category]) -> None:
        if self.dtype in TEMPORAL:
            raise ValueError(f"allowed values do not apply to {self.dtype} column {self.name!r}; use min/max")
        ok = {
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "string": lambda v: isinstance(v, str),
            "bool": lambda v: isinstance(v, bool),
        }[self.dtype]
        bad = [v for v in allowed if not ok(v)]
        if bad:
            raise ValueError(f"allowed values of {self.dtype} column {self.name!r} have the wrong type: "
                             f"{bad[:5]!r}")

    def _inverted(self) -> bool:
        lo, hi = str(self.min), str(self.max)
        if self.dtype == "date":
            return parse_date_bound(lo) > parse_date_bound(hi)
        if self.dtype == "datetime":
            zone = self.time_zone or "UTC"  # compare naive and aware bounds on one clock
            return parse_datetime_bound(lo, zone) > parse_datetime_bound(hi, zone)
        assert isinstance(self.min, int | float) and isinstance(self.max, int | float)
        return self.min > self.max

    def lower_bound(self) -> float | int | datetime | date | None:
        """The lower bound as a value comparable with the column (datetimes in the column's zone)."""
        return self._typed(self.min)

    def upper_bound(self) -> float | int | datetime | date | None:
        """The upper bound as a value comparable with the column."""
        return self._typed(self.max)

    def _typed(self, bound: Bound | None) -> float | int | datetime | date | None:
        if bound is None:
            return None
        if self.dtype == "date":
            return parse_date_bound(str(bound))
        if self.dtype == "datetime":
            return parse_datetime_bound(str(bound), self.time_zone)
        assert isinstance(bound, int | float)
        return bound


class Contract(StrictConfig):
    """A table contract: column rules, unique keys and whether columns outside the contract are allowed."""

    columns: list[ColumnRule] = Field(min_length=1, max_length=10_000, description="one rule per column")
    unique_keys: list[str] = Field(
        default_factory=list, max_length=64,
        description="columns whose combined values must be unique (empty: no uniqueness rule)")
    allow_extra_columns: bool = Field(
        default=True, description="whether input columns outside the contract are allowed")

    @model_validator(mode="after")
    def _check(self) -> Contract:
        names = [c.name for c in self.columns]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate column rules: {dup}")
        reserved = sorted(set(names) & set(RESERVED_COLUMNS))
        if reserved:
            raise ValueError(f"column names {reserved} are reserved for the quarantine output")
        unknown = [k for k in self.unique_keys if k not in names]
        if unknown:
            raise ValueError(f"unique_keys {unknown} are not contract columns")
        if len(set(self.unique_keys)) != len(self.unique_keys):
            raise ValueError(f"unique_keys repeat a column: {self.unique_keys}")
        return self

    @property
    def names(self) -> list[str]:
        """Contract column names in order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnRule:
        """The rule of one column."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)
