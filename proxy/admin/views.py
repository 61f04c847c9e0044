"""Service results (frozen dataclasses) as JSON-ready dicts for responses."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import orjson


def jsonable(value: Any) -> Any:
    """Dataclasses, datetimes, Decimals, sets and enums to plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return orjson.loads(orjson.dumps(value, default=_default, option=orjson.OPT_UTC_Z))


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")  # exact, never exponent notation (money)
    if isinstance(value, frozenset | set):
        return sorted(str(v) for v in value)
    return str(value)
