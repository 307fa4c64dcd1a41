"""Pipeline definitions as stores keep them: one row of JSON text per name and version (private).

Every store checks and encodes a definition here and only writes the row, and
decodes one here when it is asked for, so a definition that no longer decodes (a
custom guard kind nobody registered) fails only the call that needs it, with a
message that names the problem and the fix.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from salespipeline import guards
from salespipeline.definitions import from_dict, to_dict
from salespipeline.errors import DefinitionError, StorageError, ValidationError, shown
from salespipeline.pipeline import Pipeline
from salespipeline.storage import _codec

__all__ = ["decode_all", "decode_pipeline", "definition_row"]


def definition_row(pipeline: object) -> tuple[str, int, str]:
    """``(name, version, JSON text)`` of ``pipeline``: what every store writes for it."""
    if not isinstance(pipeline, Pipeline):
        raise ValidationError(f"save_pipeline() takes a Pipeline, not {shown(pipeline)}")
    return pipeline.name, pipeline.version, _codec.dumps(to_dict(pipeline))


def decode_all(recorded: Mapping[str, object]) -> tuple[Pipeline, ...]:
    """Every recorded definition (name -> stored data) decoded, sorted by name."""
    return tuple(decode_pipeline(name, recorded[name]) for name in sorted(recorded))


def decode_pipeline(name: str, data: object) -> Pipeline:
    """A stored definition (JSON text, decoded data or a Pipeline) as a Pipeline; never repaired.

    A definition that does not decode is a ``StorageError`` naming the pipeline and
    the problem, so a bad row never surfaces as a ``DefinitionError`` the caller did
    not cause.
    """
    if isinstance(data, Pipeline):
        return data
    try:
        decoded: Any = _codec.loads(data) if isinstance(data, (str, bytes)) else data
    except ValueError as error:
        message = f"the stored definition of pipeline {name!r} is not JSON: {error}"
        raise StorageError(message) from error
    try:
        return from_dict(decoded)
    except DefinitionError as error:
        reason = _problems(decoded, error.problems)
        raise StorageError(f"the stored definition of pipeline {name!r} {reason}") from error


def _problems(data: object, problems: tuple[str, ...]) -> str:
    """What is wrong with a stored definition, in words; unregistered guards with the fix."""
    unknown = sorted(set(_guard_kinds(data)) - set(guards.KINDS.known()))
    if not unknown:
        return "is not a valid definition: " + "; ".join(problems)
    others = [p for p in problems if not any(f"guard {kind!r}" in p for kind in unknown)]
    kinds = ", ".join(repr(kind) for kind in unknown)
    text = (
        f"names guard kind {kinds}, which is not registered: register it with "
        f"guards.register({unknown[0]!r}, factory) in the code that opens the store"
        if len(unknown) == 1
        else f"names guard kinds {kinds}, which are not registered: register each with "
        "guards.register(name, factory) in the code that opens the store"
    )
    return text + "".join(f"; {problem}" for problem in others)


def _guard_kinds(data: object) -> Iterator[str]:
    """The guard kinds ``data`` names: ``{"guard": kind}`` tables and bare names in guard lists."""
    if isinstance(data, Mapping):
        kind = data.get("guard")
        if isinstance(kind, str):
            yield kind
        for key, value in data.items():
            if key in ("requires", "guards") and isinstance(value, list):
                yield from (item for item in value if isinstance(item, str))
            yield from _guard_kinds(value)
    elif isinstance(data, list):
        for item in data:
            yield from _guard_kinds(item)
