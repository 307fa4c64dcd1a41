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


_LAST: list[tuple[object, int]] = [(None, 0)]
"""The instant ``to_us`` converted last and its microseconds (held, so its identity is its own)."""


def to_us(moment: datetime) -> int:
    """Whole microseconds since ``EPOCH`` (exact for aware datetimes).

    Subtracting aware times is slow, and a move converts one instant three times (the
    stage's entry, the deal's update, the change), the very same object. So the last
    one converted is kept with its value, and an instant that *is* it (identity,
    never a lookup) is not converted again.
    """
    last = _LAST[0]
    if last[0] is moment:
        return last[1]
    us = (moment - EPOCH) // ONE_US
    _LAST[0] = (moment, us)
    return us
