"""A stage's guards as data and back, through the ``guards`` registry (private).

Only registered kinds (and the ``all_of``/``any_of`` combinators) can be read: data
names a kind, never code, so reading a definition can only call factories that
the application registered itself.
"""

from __future__ import annotations

from typing import Any

from salespipeline._kinds import NotData
from salespipeline.guards import KINDS, Guard

__all__ = ["NotData", "read_all", "to_spec"]


def to_spec(guard: Guard) -> dict[str, Any]:
    """``{"guard": kind, **parameters}``; combinators nest their guards; else ``NotData``."""
    return KINDS.write(guard)


def read_all(value: object, where: str, problems: list[str]) -> tuple[Guard, ...]:
    """The guards of a stage's ``requires`` list; unreadable ones are reported and left out."""
    if not isinstance(value, (list, tuple)):
        return ()
    return KINDS.read_list(value, f"{where}: requires", problems)
