"""Plugins of the command line: modules imported before a command runs (private).

A plugin is a module that registers custom guard kinds (``salespipeline.guards.register``)
when imported, so that the CLI can read definitions naming them. It is named with
``--plugin MODULE`` or by an installed distribution's entry point in the group
``salespipeline.plugins``. A definition that names a kind nobody registered is
reported with the kind and these two fixes.
"""

from __future__ import annotations

import ast
import functools
import importlib
import re
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from typing import Final

from salespipeline.errors import DefinitionError

__all__ = ["ENTRY_POINT_GROUP", "FIX", "PluginError", "load_plugins", "unregistered"]

ENTRY_POINT_GROUP: Final = "salespipeline.plugins"

FIX: Final = (
    "register it with salespipeline.guards.register in a module and pass --plugin MODULE, "
    f"or install a package with a {ENTRY_POINT_GROUP} entry point"
)
FIX_EACH: Final = FIX.replace("register it", "register each", 1)

_UNKNOWN_GUARD: Final = re.compile(r"unknown guard ('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")
"""How ``definitions.from_dict`` reports a guard kind it cannot read (``_kinds.Kinds.read``)."""


class PluginError(Exception):
    """A plugin that could not be loaded, or a guard kind that needs one; one line."""


def load_plugins(modules: Sequence[str]) -> None:
    """Import every entry point of ``ENTRY_POINT_GROUP``, then each of ``modules``, in order."""
    for entry_point in _entry_points():
        origin = f" (entry point {entry_point.name!r} of {_distribution(entry_point)})"
        _load(entry_point.value, origin, entry_point.load)
    for module in modules:
        _load(module, "", functools.partial(importlib.import_module, module))


def _entry_points() -> metadata.EntryPoints:
    try:
        return metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception as error:  # an installed distribution's metadata is broken
        cause = _one_line(f"{type(error).__name__}: {error}")
        raise PluginError(f"cannot read the {ENTRY_POINT_GROUP} entry points: {cause}") from error


def _load(name: str, origin: str, load: Callable[[], object]) -> None:
    """Call ``load``; whatever it raises becomes a ``PluginError`` naming the plugin."""
    try:
        load()
    except Exception as error:
        cause = _one_line(f"{type(error).__name__}: {error}")
        raise PluginError(f"cannot load plugin {name!r}{origin}: {cause}") from error


def _distribution(entry_point: metadata.EntryPoint) -> str:
    name = getattr(getattr(entry_point, "dist", None), "name", None)
    return f"distribution {name!r}" if isinstance(name, str) else "an installed distribution"


def unregistered(error: BaseException, where: str | None = None) -> PluginError | None:
    """The refusal to give when ``error`` (or a cause of it) is a definition naming guard
    kinds nobody registered, saying which and how to fix it; else None.

    ``where`` names the definition (a file); by default it is the stored one of its pipeline.
    """
    definition = _definition_error(error)
    if definition is None:
        return None
    kinds = sorted({kind for problem in definition.problems for kind in _kinds_in(problem)})
    if not kinds:
        return None
    if where is None:
        where = f"the stored definition of pipeline {definition.pipeline!r}"
    others = [p for p in definition.problems if not _UNKNOWN_GUARD.search(p)]
    return PluginError(_message(where, kinds, others))


def _message(where: str, kinds: Sequence[str], others: Sequence[str]) -> str:
    names = ", ".join(repr(kind) for kind in kinds)
    where = _one_line(where)  # a file name may hold a newline; a repr never does
    text = (
        f"{where} names guard kind {names}, which is not registered: {FIX}"
        if len(kinds) == 1
        else f"{where} names guard kinds {names}, which are not registered: {FIX_EACH}"
    )
    return text + "".join(f"; {_one_line(problem)}" for problem in others)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _definition_error(error: BaseException) -> DefinitionError | None:
    """``error`` if it is a ``DefinitionError``, else the first one among its causes."""
    current: BaseException | None = error
    for _ in range(8):  # a store wraps it once; a chain is never long
        if current is None or isinstance(current, DefinitionError):
            return current
        current = current.__cause__
    return None


def _kinds_in(problem: str) -> Iterator[str]:
    for match in _UNKNOWN_GUARD.finditer(problem):
        try:
            kind = ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError):
            continue
        if isinstance(kind, str):
            yield kind
