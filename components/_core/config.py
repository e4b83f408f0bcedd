"""Strict configuration base shared by every component.

Every component config is one ``StrictConfig`` subclass: unknown keys are rejected, fields are bounded and
described, and a bad value fails at once with a message that names the field.
"""

from __future__ import annotations

import json
import re
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigError(ValueError):
    """A configuration value is invalid; the message names every offending field."""


SECRET_FIELD = re.compile(r"pass(word|wd)?|secret|token|credential|api_?key|private_?key", re.IGNORECASE)


def _describe(err: ValidationError, model: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        got = e.get("input")
        shown = f" (got {got!r})" if not isinstance(got, dict) and got is not None else ""
        if shown and SECRET_FIELD.search(loc):
            shown = " (value not shown: the field may hold a secret)"
        lines.append(f"  {model}.{loc}: {e['msg']}{shown}")
    return f"invalid {model}:\n" + "\n".join(lines)


class StrictConfig(BaseModel):
    """Base model: forbids extra keys, validates defaults and assignments, is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, use_enum_values=True)

    @classmethod
    def parse(cls, data: Any) -> Self:
        """Validate a dict, a JSON string or an instance; raise ``ConfigError`` naming bad fields."""
        if isinstance(data, cls):
            return data
        try:
            if isinstance(data, str | bytes):
                text = data.strip() if isinstance(data, str) else data.decode().strip()
                return cls.model_validate(json.loads(text) if text else {})
            return cls.model_validate(data or {})
        except ValidationError as err:
            raise ConfigError(_describe(err, cls.__name__)) from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"invalid {cls.__name__}: not valid JSON ({err})") from None

    def to_json(self) -> str:
        """Canonical JSON (sorted keys) so equal configs serialize identically."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
