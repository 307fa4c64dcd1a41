"""Constructors and copiers that skip validation, for values already checked (private).

``Pipeline`` operations and the stores build deals from parts they have checked, on
the hot path; re-running every attrs validator there would cost most of a move. Each
function is generated at import from the attrs fields, as attrs generates
``__init__``, and its source is registered with ``linecache`` (as attrs does in
``_linecache_and_compile``) so tracebacks and debuggers show the generated lines.

A value is built as an instance of a private subclass that adds no slots and keeps
``object``'s ``__setattr__``, so each field is a plain attribute store (which the
interpreter specialises to a slot write), and then becomes an instance of the frozen
class itself: no one ever holds it before it is frozen.
"""

from __future__ import annotations

import linecache
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

import attrs

from salespipeline.deal import Deal, StageChange

__all__ = ["after_move", "differing", "replace", "stage_change"]


class _Unchanged:
    """The default of every ``replace`` keyword: keep the source's value."""

    def __repr__(self) -> str:
        return "<unchanged>"


_KEEP: Final = _Unchanged()


def generate(
    cls: type[Any],
    name: str,
    doc: str,
    *,
    given: Sequence[str] = (),
    unset: Sequence[str] = (),
    differing: bool = False,
) -> Any:
    """Generate a constructor or copier for ``cls`` that skips validation.

    With ``given``, the function takes those fields (keyword-only after ``source``,
    or positionally when they and ``unset`` are all the fields) and copies the rest
    from ``source``; without, every field is an optional keyword that keeps
    ``source``'s value. ``unset`` fields are left empty, for a class that fills them
    when first read. One line per field: a plain store into the new value's slot
    while it is still an ``_unfrozen(cls)``, no frozen ``__setattr__``, no lookups.

    With ``differing``, instead ``name(before, after)``: the ``(field, old, new)`` of
    each field but ``unset`` whose values are not the same objects, in field order,
    each slot read directly (an ``attrgetter`` of them all takes several times as long)
    and read again for the few that differ (cheaper than keeping every value read).
    """
    names = tuple(a.name for a in attrs.fields(cls) if a.name not in unset)
    namespace: dict[str, Any] = {"__name__": __name__, "cls": cls, "KEEP": _KEEP}
    if differing:
        tests = "".join(
            f"\n    if before.{n} is not after.{n}:\n"
            f"        found.append(({n!r}, before.{n}, after.{n}))"
            for n in names
        )
        source = f"def {name}(before, after):\n    found = []{tests}\n    return found\n"
    else:
        if not given:
            params = ["source", "*", *(f"{n}=KEEP" for n in names)]
            values = {n: f"source.{n} if {n} is KEEP else {n}" for n in names}
        else:
            params = list(given) if set(given) == set(names) else ["source", "*", *given]
            values = {n: n if n in given else f"source.{n}" for n in names}
        body = "".join(f"\n    new.{n} = {values[n]}" for n in names)
        namespace["unfrozen"] = _unfrozen(cls)
        source = (
            f"def {name}({', '.join(params)}):\n    new = unfrozen(){body}\n"
            "    new.__class__ = cls\n    return new\n"
        )
    filename = _cached(source, f"<salespipeline generated {name} {cls.__qualname__}>")
    exec(compile(source, filename, "exec"), namespace)
    function = namespace[name]
    function.__doc__ = doc
    return function


_UNFROZEN: Final[dict[type[Any], type[Any]]] = {}


def _unfrozen(cls: type[Any]) -> type[Any]:
    """A subclass of the slotted ``cls`` with ``object``'s attribute setting and ``__init__``
    (one a class, made on first use).

    It adds no slots, so an instance may be turned into a ``cls`` by assigning
    ``__class__``; setting ``__delattr__`` too lets the interpreter see plain setattr.
    """
    if cls not in _UNFROZEN:
        if "__dict__" in dir(cls) or not hasattr(cls, "__slots__"):
            raise TypeError(f"{cls.__qualname__} is not a slotted class")
        namespace = {
            "__slots__": (),
            "__module__": __name__,
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
            "__init__": object.__init__,
        }
        _UNFROZEN[cls] = type(f"_Unfrozen{cls.__name__}", (cls,), namespace)
    return _UNFROZEN[cls]


def _cached(source: str, filename: str) -> str:
    """Register ``source`` with ``linecache`` under ``filename`` (made unique if taken)."""
    entry = (len(source), None, source.splitlines(True), filename)
    base, count = filename, 1
    while linecache.cache.setdefault(filename, entry) != entry:
        filename = f"{base[:-1]}-{count}>"
        entry = (len(source), None, source.splitlines(True), filename)
        count += 1
    return filename


replace: Final[Callable[..., Deal]] = generate(
    Deal,
    "replace",
    """A copy of a deal with already-checked ``**changes``, skipping re-validation.

    Only ``Pipeline`` operations and stores call it, with values they have checked.
    """,
)

after_move: Final[Callable[..., Deal]] = generate(
    Deal,
    "after_move",
    "``replace`` for a stage move: every field a move sets, as required keywords.",
    given=(
        "stage",
        "stage_entered_at",
        "closed_at",
        "lost_reason",
        "updated_at",
        "version",
        "history",
    ),
)

stage_change: Final[
    Callable[[str, str | None, str, datetime, int, str | None, str | None], StageChange]
] = generate(
    StageChange,
    "stage_change",
    "A StageChange from already-checked parts (hot path), in field order.",
    given=("deal_id", "from_stage", "to_stage", "at", "version", "reason", "actor"),
)

differing: Final[Callable[[Deal, Deal], list[tuple[str, Any, Any]]]] = generate(
    Deal,
    "differing",
    "The attributes a change records (``log.STATE``) two deals do not share, as (name, old, new).",
    unset=("id", "updated_at", "version", "history"),
    differing=True,
)
