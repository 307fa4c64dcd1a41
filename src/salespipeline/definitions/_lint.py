"""Lint: definitions that are legal but probably not what the team meant (private).

Every check is static (no deals needed) and sound: a finding is only reported when
the definition itself shows the problem. The codes and their exact definitions are
listed in ``docs/how-to/definitions.md``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Final

import attrs

from salespipeline import _checks as c
from salespipeline.deal import BANT_CRITERIA, Deal
from salespipeline.errors import ValidationError
from salespipeline.guards import AllOf, AnyOf, Guard, RequiresFields
from salespipeline.pipeline import Pipeline

__all__ = ["MAX_OPEN_STAGES", "Finding", "lint"]

MAX_OPEN_STAGES: Final = 9
_ATTRIBUTES: Final = frozenset(a.name for a in attrs.fields(Deal)) | frozenset(BANT_CRITERIA)


@attrs.frozen
class Finding:
    """A suspicious but legal part of a definition: a stable ``code``, plain words, the stage."""

    code: str
    message: str
    stage: str | None = None


def lint(pipeline: Pipeline) -> tuple[Finding, ...]:
    """Every finding for ``pipeline``, check by check, stages in order."""
    if not isinstance(pipeline, Pipeline):
        raise ValidationError(f"lint() takes a Pipeline, not {type(pipeline).__name__}")
    return tuple(finding for check in _CHECKS for finding in check(pipeline))


def _decreasing_probability(pipeline: Pipeline) -> Iterator[Finding]:
    for before, stage in pairwise(pipeline.stages):
        if stage.probability < before.probability:
            yield Finding(
                "decreasing-probability",
                f"stage {stage.name!r} has probability {stage.probability}, lower than "
                f"{before.probability} of the stage before it ({before.name!r})",
                stage.name,
            )


def _certain_before_won(pipeline: Pipeline) -> Iterator[Finding]:
    for stage in pipeline.stages:
        if stage.probability == 1.0:
            yield Finding(
                "certain-before-won",
                f"open stage {stage.name!r} has probability 1.0: a deal there counts as won "
                "in the weighted pipeline although it can still be lost",
                stage.name,
            )


def _guard_on_first_stage(pipeline: Pipeline) -> Iterator[Finding]:
    first = pipeline.stages[0]
    if first.requires:
        yield Finding(
            "guard-on-first-stage",
            f"the first stage {first.name!r} requires {', '.join(first.guard_names)}: "
            "new deals must pass it when started; qualify them in a later stage instead",
            first.name,
        )


def _refuses_everything(guard: Guard) -> bool:
    """True only when ``guard`` provably refuses every deal (unknown guards: False)."""
    if isinstance(guard, RequiresFields):
        return any(not _can_be_field(name) for name in guard.names)
    if isinstance(guard, AllOf):
        return any(_refuses_everything(g) for g in guard.guards)
    if isinstance(guard, AnyOf):
        return all(_refuses_everything(g) for g in guard.guards)
    return False


def _can_be_field(name: str) -> bool:
    return len(name) <= c.MAX_ID_LENGTH


def _enterable(pipeline: Pipeline) -> list[bool]:
    """Per open stage: False when its guards provably refuse every deal."""
    return [not any(_refuses_everything(g) for g in s.requires) for s in pipeline.stages]


def _unenterable_stage(pipeline: Pipeline) -> Iterator[Finding]:
    for stage, enterable in zip(pipeline.stages, _enterable(pipeline), strict=True):
        if not enterable:
            yield Finding(
                "unenterable-stage",
                f"no deal can ever enter stage {stage.name!r}: its guards require a field "
                f"name no deal can carry (longer than {c.MAX_ID_LENGTH} characters)",
                stage.name,
            )


def _dead_end(pipeline: Pipeline) -> Iterator[Finding]:
    """Open stages from which WON cannot be reached without passing through LOST."""
    n = len(pipeline.stages)
    targets = pipeline.targets
    enterable = [*_enterable(pipeline), True]
    for start in range(n):
        if enterable[start] and not _reaches_won(start, targets, enterable, n):
            name = pipeline.stages[start].name
            yield Finding(
                "dead-end",
                f"a deal in stage {name!r} can only leave it by being lost: every way "
                "forward enters a stage no deal can enter",
                name,
            )


def _reaches_won(
    start: int, targets: tuple[frozenset[int], ...], enterable: list[bool], won: int
) -> bool:
    seen, todo = {start}, [start]
    while todo:
        for target in targets[todo.pop()]:
            if target <= won and enterable[target] and target not in seen:
                if target == won:
                    return True
                seen.add(target)
                todo.append(target)
    return False


def _lost_reasons(pipeline: Pipeline) -> Iterator[Finding]:
    reasons = pipeline.lost_reasons or ()
    if len(reasons) == 1:
        yield Finding(
            "single-lost-reason",
            f"lost_reasons lists only {reasons[0]!r}: every lost deal gets it, so it records "
            "nothing; list the real reasons or allow any (lost_reasons=None)",
        )
    groups: dict[str, list[str]] = defaultdict(list)
    for reason in reasons:
        groups[" ".join(reason.casefold().split())].append(reason)
    for same in groups.values():
        if len(same) > 1:
            yield Finding(
                "near-duplicate-lost-reason",
                f"lost reasons {', '.join(map(repr, same))} differ only in case or spacing: "
                "all but one will go unused, and reports will split one reason in two",
            )


def _required_fields(guard: Guard) -> Iterator[str]:
    if isinstance(guard, RequiresFields):
        yield from guard.names
    elif isinstance(guard, (AllOf, AnyOf)):
        for inner in guard.guards:
            yield from _required_fields(inner)


def _fields_by_stage(pipeline: Pipeline) -> list[tuple[str, str]]:
    return [
        (stage.name, field)
        for stage in pipeline.stages
        for guard in stage.requires
        for field in _required_fields(guard)
    ]


def _field_shadows_attribute(pipeline: Pipeline) -> Iterator[Finding]:
    for stage, field in _fields_by_stage(pipeline):
        if field in _ATTRIBUTES:
            yield Finding(
                "field-shadows-attribute",
                f"stage {stage!r} requires custom field {field!r}, which nothing sets: "
                f"{field!r} is part of the deal itself (use min_amount or bant for those)",
                stage,
            )


def _near_duplicate_field(pipeline: Pipeline) -> Iterator[Finding]:
    groups: dict[str, dict[str, str]] = defaultdict(dict)
    for stage, field in _fields_by_stage(pipeline):
        key = "".join(ch for ch in field.casefold() if ch not in "_- .")
        groups[key].setdefault(field, stage)
    for spellings in groups.values():
        if len(spellings) > 1:
            listed = ", ".join(f"{f!r} (stage {s!r})" for f, s in spellings.items())
            yield Finding(
                "near-duplicate-field",
                f"required fields {listed} differ only in case or separators: deals will "
                "set one spelling and never the other",
                next(iter(spellings.values())),
            )


def _too_many_stages(pipeline: Pipeline) -> Iterator[Finding]:
    n = len(pipeline.stages)
    if n > MAX_OPEN_STAGES:
        yield Finding(
            "too-many-stages",
            f"{n} open stages: more than {MAX_OPEN_STAGES} are hard to keep current; "
            "most teams use 5 to 7",
        )


_CHECKS: Final[tuple[Callable[[Pipeline], Iterator[Finding]], ...]] = (
    _decreasing_probability,
    _certain_before_won,
    _guard_on_first_stage,
    _unenterable_stage,
    _dead_end,
    _lost_reasons,
    _field_shadows_attribute,
    _near_duplicate_field,
    _too_many_stages,
)
