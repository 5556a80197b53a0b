"""Small value helpers shared by every layer (no I/O, no survey knowledge)."""

from __future__ import annotations

import math
from typing import Any


def finite_or_none(value: Any) -> Any:
    """The value, or None for a NaN/inf float (MongoDB, JSON and protobuf want nulls)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
