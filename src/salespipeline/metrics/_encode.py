"""A ``PipelineReport`` as JSON-compatible data (private; ``PipelineReport.to_dict``).

Decimals become decimal strings (never floats, so no digit is lost), instants ISO 8601
text in UTC, durations ISO 8601 duration text (``P6DT12H``, exact to the
microsecond, as definitions write ``rot_after``), tuples lists, and attrs values and
mappings objects keyed by their field or stage names, in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from salespipeline._durations import duration_text

if TYPE_CHECKING:
    from salespipeline.metrics._report import PipelineReport

__all__ = ["report_dict"]


def report_dict(report: PipelineReport) -> dict[str, Any]:
    """Every field of ``report``, encoded as ``json.dumps`` takes it."""
    return {
        field.name: encoded(getattr(report, field.name)) for field in attrs.fields(type(report))
    }


def encoded(value: object) -> Any:
    """``value`` as JSON-compatible data (see the module docstring)."""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return duration_text(value)
    if isinstance(value, Mapping):
        return {str(key): encoded(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [encoded(item) for item in value]
    if attrs.has(type(value)):
        kind: Any = type(value)
        return {f.name: encoded(getattr(value, f.name)) for f in attrs.fields(kind)}
    return value
