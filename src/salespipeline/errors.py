"""The exception hierarchy: one root, each subclass also the builtin it resembles.

Every error carries structured attributes (``deal_id``, ``stage``, ``violations``…)
beside a plain-words message, and pickles with them, so errors can cross process
boundaries (for example in a multiprocessing pool).
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from salespipeline.guards import Violation

__all__ = [
    "ConcurrencyError",
    "CorruptRecordError",
    "DealNotFoundError",
    "DefinitionError",
    "DuplicateDealError",
    "GuardError",
    "SalesPipelineError",
    "StageBlockedError",
    "StorageError",
    "TransitionNotAllowedError",
    "UnknownPipelineError",
    "UnknownStageError",
    "ValidationError",
]


class _Short(reprlib.Repr):
    """``repr`` cut short: a few levels, items and characters; huge integers by size."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxstring = self.maxother = 80
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = self.maxfrozenset = 6

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 256:  # past Python's digit limit, repr() itself would raise
            return f"<an integer of {x.bit_length() * 3 // 10}+ digits>"
        return super().repr_int(x, level)


_SHORT = _Short()


def shown(value: object) -> str:
    """``value`` as a message shows it: its repr, bounded even for deep, huge or broken values.

    Messages quote the values they refuse; a plain ``repr`` of a deeply nested list
    raises ``RecursionError``, of a huge integer ``ValueError``, and of a long text
    copies all of it.
    """
    try:
        return _SHORT.repr(value)
    except Exception:
        return f"<{type(value).__name__} object>"


def _restore(cls: type[SalesPipelineError], message: str, state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


def _deal(deal_id: str | None) -> str:
    return f"deal {deal_id!r}: " if deal_id is not None else ""


class SalesPipelineError(Exception):
    """Root of every error salespipeline raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        state = {k: v for k, v in self.__dict__.items() if k != "message"}
        return (_restore, (type(self), self.message, {"message": self.message, **state}))


class DefinitionError(SalesPipelineError, ValueError):
    """A pipeline definition is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[str], *, pipeline: str | None = None) -> None:
        self.problems = tuple(problems)
        self.pipeline = pipeline
        where = f"pipeline {pipeline!r}" if pipeline else "pipeline definition"
        listed = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid {where} ({len(self.problems)} problem(s)):\n{listed}")


class ValidationError(SalesPipelineError, ValueError):
    """A value or argument is invalid (amount, timestamp, reason, field…)."""

    def __init__(
        self, message: str, *, deal_id: str | None = None, field: str | None = None
    ) -> None:
        self.deal_id = deal_id
        self.field = field
        super().__init__(f"{_deal(deal_id)}{message}")


class UnknownStageError(SalesPipelineError, KeyError):
    """A stage name the pipeline does not have."""

    def __init__(
        self, stage: object, *, pipeline: str | None = None, deal_id: str | None = None
    ) -> None:
        self.stage = stage
        self.pipeline = pipeline
        self.deal_id = deal_id
        where = f" in pipeline {pipeline!r}" if pipeline else ""
        super().__init__(f"{_deal(deal_id)}unknown stage {shown(stage)}{where}")


class UnknownPipelineError(SalesPipelineError, KeyError):
    """A pipeline name that is not registered with the tracker or store."""

    def __init__(self, name: object, *, known: Sequence[str] = ()) -> None:
        self.name = name
        self.known = tuple(known)
        hint = f" (known: {', '.join(self.known)})" if self.known else ""
        super().__init__(f"unknown pipeline {shown(name)}{hint}")


class TransitionNotAllowedError(SalesPipelineError):
    """The move is not in the pipeline's transition graph.

    A refused ``reopen`` that named no stage has ``to_stage == from_stage``: there
    was nowhere to go.
    """

    def __init__(
        self,
        deal_id: str,
        from_stage: str,
        to_stage: str,
        *,
        reason: str | None = None,
        action: str = "move",
    ) -> None:
        self.deal_id = deal_id
        self.from_stage = from_stage
        self.to_stage = to_stage
        why = reason or "the pipeline has no such move"
        move = (
            f"cannot {action} it from {from_stage!r}"
            if to_stage == from_stage
            else f"cannot {action} from {from_stage!r} to {to_stage!r}"
        )
        super().__init__(f"{_deal(deal_id)}{move}: {why}")


class StageBlockedError(SalesPipelineError):
    """The move exists but the destination's guards refuse it; ``violations`` lists all."""

    def __init__(
        self,
        deal_id: str,
        stage: str,
        violations: Sequence[Violation],
        *,
        from_stage: str | None = None,
    ) -> None:
        self.deal_id = deal_id
        self.stage = stage
        self.from_stage = from_stage
        self.violations = tuple(violations)
        reasons = "; ".join(v.message for v in self.violations)
        super().__init__(f"{_deal(deal_id)}cannot enter stage {stage!r}: {reasons}")


class GuardError(SalesPipelineError):
    """A guard raised (a bug in the guard); the move is refused and the cause chained."""

    def __init__(self, deal_id: str, stage: str, guard: str, cause: str) -> None:
        self.deal_id = deal_id
        self.stage = stage
        self.guard = guard
        self.cause = cause
        super().__init__(
            f"{_deal(deal_id)}guard {guard!r} on stage {stage!r} failed, move refused: {cause}"
        )


class DealNotFoundError(SalesPipelineError, KeyError):
    """No deal with that id in the store."""

    def __init__(self, deal_id: str) -> None:
        self.deal_id = deal_id
        super().__init__(f"{_deal(deal_id)}not found")


class DuplicateDealError(SalesPipelineError):
    """A deal with that id already exists in the store."""

    def __init__(self, deal_id: str) -> None:
        self.deal_id = deal_id
        super().__init__(f"{_deal(deal_id)}already exists")


class ConcurrencyError(SalesPipelineError):
    """Optimistic concurrency: the stored version is not the one this change was made on.

    ``seen`` and ``found`` name the stages when a Tracker refused to re-apply a move
    to a deal another writer moved elsewhere meanwhile.
    """

    def __init__(
        self,
        deal_id: str,
        *,
        expected: int,
        actual: int | None,
        seen: str | None = None,
        found: str | None = None,
    ) -> None:
        self.deal_id = deal_id
        self.expected = expected
        self.actual = actual
        self.seen = seen
        self.found = found
        if seen is not None and found is not None:
            message = (
                f"changed concurrently: the move was decided in stage {seen!r}, "
                f"but another writer left the deal in {found!r} (version {actual}); "
                "it was not applied"
            )
        else:
            stored = "no stored deal" if actual is None else f"version {actual}"
            message = f"changed concurrently: expected stored version {expected}, found {stored}"
        super().__init__(f"{_deal(deal_id)}{message}")


class StorageError(SalesPipelineError):
    """The storage backend failed; the original exception is chained."""

    def __init__(self, message: str, *, deal_id: str | None = None) -> None:
        self.deal_id = deal_id
        super().__init__(f"{_deal(deal_id)}{message}")


class CorruptRecordError(StorageError):
    """A stored row does not decode into a valid deal; it is never silently repaired."""

    def __init__(self, deal_id: str, reason: str) -> None:
        self.reason = reason
        super().__init__(f"stored record is corrupt: {reason}", deal_id=deal_id)
