"""Durations as ISO 8601 text (``P14D``, ``PT36H``, ``P1DT2H30M``), exact to the microsecond
(private): how definitions write ``rot_after`` and reports their durations."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

_PATTERN: Final = re.compile(
    r"P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+)(?:\.(?P<fraction>\d{1,6}))?S)?)?",
    re.ASCII,
)
_CALENDAR: Final = re.compile(r"P(?=\d+[YM])(?:\d+Y)?(?:\d+M)?(?:\d+[WD])*(?:T.*)?", re.ASCII)
"""Durations with years or months: valid ISO 8601, but no fixed length to store."""


def format_duration(value: timedelta) -> str:
    """``value`` as ISO 8601 duration text, days and time parts only (no months)."""
    if value < timedelta(0):
        raise ValueError(f"duration {value} is negative")
    return duration_text(value)


def duration_text(value: timedelta) -> str:
    """A non-negative duration as ISO 8601 text in days, hours, minutes and seconds."""
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    time = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if seconds or value.microseconds:
        fraction = f".{value.microseconds:06d}".rstrip("0") if value.microseconds else ""
        time += f"{seconds}{fraction}S"
    text = "P" + (f"{value.days}D" if value.days else "") + (f"T{time}" if time else "")
    return text if text != "P" else "PT0S"


def parse_duration(text: str) -> timedelta:
    """The timedelta of ISO 8601 duration ``text`` (weeks, days, hours, minutes, seconds)."""
    match = _PATTERN.fullmatch(text.strip())
    if match is None and _CALENDAR.fullmatch(text.strip()):
        raise ValueError(
            f"{text!r} is ISO 8601, but counts years or months, whose length varies: "
            "give the duration in weeks, days or hours, such as 'P30D'"
        )
    if match is None or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        raise ValueError(
            f"{text!r} is not an ISO 8601 duration such as 'P14D', 'PT36H' or 'P1DT12H'"
        )
    parts = {k: int(v) for k, v in match.groupdict().items() if v and k != "fraction"}
    fraction = match["fraction"]
    micro = int(fraction.ljust(6, "0")) if fraction else 0
    try:
        return timedelta(microseconds=micro, **parts)
    except OverflowError:
        raise ValueError(f"duration {text!r} is too long") from None
