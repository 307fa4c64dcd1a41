"""The stores' constructor arguments, checked before anything is opened (private).

A bad argument is a ``ValidationError`` naming it at once, never a ``TypeError``
from the driver or a wait for a connection that cannot succeed.
"""

from __future__ import annotations

import os
from typing import Final

from salespipeline._checks import is_encodable, is_int, is_number
from salespipeline.errors import ValidationError, shown

__all__ = ["MAX_TIMEOUT", "check_count", "check_path", "check_timeout"]

MAX_TIMEOUT: Final = (2**31 - 1) // 1000
"""The longest wait in seconds: SQLite counts its busy timeout in a C int of milliseconds."""


def check_path(path: object) -> str:
    """``path`` (a ``str`` or ``os.PathLike`` of one) as text a database file can be named by."""
    text = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(text, str):
        raise ValidationError(f"path must be a str or an os.PathLike, not {shown(path)}")
    if "\x00" in text or not is_encodable(text):
        raise ValidationError(f"path {shown(text)} cannot name a file (NUL or a lone surrogate)")
    return text


def check_timeout(value: object, *, zero: bool) -> float:
    """``value`` as seconds to wait: from 0 (above 0 unless ``zero``) to ``MAX_TIMEOUT``."""
    if not is_number(value) or not (0 <= value <= MAX_TIMEOUT) or (value == 0 and not zero):
        low = "0" if zero else "above 0"
        wanted = f"a number of seconds from {low} to {MAX_TIMEOUT:,}"
        raise ValidationError(f"timeout must be {wanted}, not {shown(value)}")
    return float(value)


def check_count(value: object, what: str) -> int:
    """``value`` as a count of at least one (``bool`` is not a count)."""
    if not is_int(value) or value < 1:
        raise ValidationError(f"{what} must be an integer of at least 1, not {shown(value)}")
    return value
