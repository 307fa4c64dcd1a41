"""Instants and durations as exact integer microseconds (private).

Both report paths and the stores count time this way, so sums and means of
durations are exact whatever the database.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Final

__all__ = ["EPOCH", "ONE_US", "micros", "to_us"]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
"""The instant every stored ``*_us`` column counts from."""

ONE_US: Final = timedelta(microseconds=1)


def micros(delta: timedelta) -> int:
    """A duration as an exact integer number of microseconds."""
    return delta // ONE_US


def to_us(moment: datetime) -> int:
    """Whole microseconds since ``EPOCH`` (exact for aware datetimes)."""
    return (moment - EPOCH) // ONE_US
