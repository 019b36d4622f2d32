"""Canonical tables → JSON-ready Python objects (ISO 8601 UTC times, no NaN)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pyarrow as pa


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(v, list):
        return [_clean(x) for x in v]
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    return v


def table_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows keyed by column name, in schema order."""
    return [{k: _clean(v) for k, v in row.items()} for row in table.to_pylist()]


def jsonable(obj: Any) -> Any:
    if isinstance(obj, pa.Table):
        return table_rows(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return _clean(obj)
