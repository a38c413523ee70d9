"""Value types of the cascade spec (budgets, probabilities in (0, 1), names) and its base model."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, WithJsonSchema


def _open_unit(value: float) -> float:
    if not (0.0 < value < 1.0):  # also rejects NaN
        raise ValueError("expected a number strictly between 0 and 1")
    return float(value)


def _unit(value: float) -> float:
    if not (0.0 <= value <= 1.0):
        raise ValueError("expected a number between 0 and 1 (inclusive)")
    return float(value)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return float(value)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else value


def unique_items(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"expected distinct values ({v!r} appears twice)")
        seen.add(v)
    return values


def nonempty(values: list[Any]) -> list[Any]:
    if not values:
        raise ValueError("expected at least one value")
    return values


def _name(value: str) -> str:
    if not value or not all(c.isalnum() or c in "-_." for c in value):
        raise ValueError("expected a non-empty name of letters, digits, '-', '_' or '.'")
    return value


#: A number in the open interval (0, 1): budgets, δ, fractions of a pool.
OpenUnit = Annotated[
    float,
    AfterValidator(_open_unit),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}),
]
#: A number in the closed interval [0, 1].
Unit = Annotated[
    float, AfterValidator(_unit), WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1})
]
FiniteFloat = Annotated[float, AfterValidator(_finite), WithJsonSchema({"type": "number"})]
Name = Annotated[
    str, AfterValidator(_name), WithJsonSchema({"type": "string", "pattern": r"^[A-Za-z0-9_.\-]+$"})
]
#: One budget or a list of budgets; always a list after validation.
Budgets = Annotated[
    list[OpenUnit],
    BeforeValidator(_as_list),
    AfterValidator(nonempty),
    AfterValidator(unique_items),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                {
                    "type": "array",
                    "items": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                    "minItems": 1,
                },
            ]
        }
    ),
]


class SpecModel(BaseModel):
    """Base of every spec model: frozen-free, strict types, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)
