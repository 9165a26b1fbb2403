"""Plain JSON values from numbers and arrays: non-finite floats become None (JSON has no NaN); and the strict
reading of a stored record back into a dataclass (`check_known_keys`)."""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, Mapping


def finite_or_none(x: Any) -> float | None:
    """`x` as a float, or None when it is not a finite number."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def jsonable(value: Any) -> Any:
    """Plain JSON values, recursively: arrays and numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def check_known_keys(cls: type, data: Mapping[str, Any], what: str) -> None:
    """Raise ValueError when `data` (a stored record read back into the dataclass `cls`) has a key that is not one of
    its fields: a stale or mistyped settings file is noticed instead of silently dropped. `what` names the record."""
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"Unknown {what} {sorted(unknown)}. Known: {sorted(known)}")
