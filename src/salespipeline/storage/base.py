"""DealStore: the abstract storage contract every adapter implements.

A store keeps deals with their append-only history and the pipeline definitions
they belong to. Writes are optimistic: ``save`` succeeds only when the stored
version is the one the change was made on, so concurrent writers never overwrite
each other silently. ``salespipeline.testing.StoreContract`` checks an adapter
against this contract.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING

from salespipeline import metrics
from salespipeline._checks import MAX_ID_LENGTH, check_id, check_text
from salespipeline.deal import Deal, StageChange
from salespipeline.errors import (
    UnknownPipelineError,
    ValidationError,
    shown,
)
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON
from salespipeline.storage._definitions import decode_all, decode_pipeline, definition_row

if TYPE_CHECKING:
    from salespipeline.metrics import PipelineReport

__all__ = [
    "DealStore",
    "check_deal",
    "check_filters",
    "check_id",
    "decode_all",
    "decode_pipeline",
    "definition_row",
    "matches",
    "new_entries",
    "split_history",
]


class DealStore(abc.ABC):
    """Deals, their histories and pipeline definitions, behind one small interface."""

    @abc.abstractmethod
    def add(self, deal: Deal) -> None:
        """Store a new deal with its history; ``DuplicateDealError`` if the id exists."""

    @abc.abstractmethod
    def get(self, id: str) -> Deal:
        """The stored deal with its full history; ``DealNotFoundError`` if absent."""

    @abc.abstractmethod
    def save(self, deal: Deal) -> None:
        """Write ``deal`` if the stored version is ``deal.version - 1``, else ``ConcurrencyError``.

        The deal row and its new history entries are written in one transaction.
        """

    @abc.abstractmethod
    def find(
        self, *, pipeline: str | None = None, stage: str | None = None, open: bool | None = None
    ) -> Iterator[Deal]:
        """The deals matching every given filter, in id order, streamed."""

    def history(self, id: str) -> tuple[StageChange, ...]:
        """The deal's stage changes, oldest first; ``DealNotFoundError`` if absent."""
        return self.get(id).history

    @abc.abstractmethod
    def save_pipeline(self, pipeline: Pipeline) -> None:
        """Record ``pipeline``'s definition (as ``to_dict`` data), keyed by name and version."""

    @abc.abstractmethod
    def pipelines(self) -> tuple[Pipeline, ...]:
        """The recorded definitions, the highest version of each name, sorted by name."""

    def pipeline(self, name: str) -> Pipeline:
        """The recorded definition called ``name``, its highest version; only it is decoded.

        ``UnknownPipelineError`` lists the recorded names. A definition that does not
        decode (a guard kind nobody registered) is a ``StorageError`` saying why.
        """
        name = check_text(name, "pipeline name", max_length=MAX_ID_LENGTH)
        recorded = self._definitions()
        if name not in recorded:
            raise UnknownPipelineError(name, known=sorted(recorded))
        return decode_pipeline(name, recorded[name])

    def _definitions(self) -> Mapping[str, object]:
        """Each recorded name with its highest version's definition as stored, undecoded.

        Values are JSON text, ``to_dict`` data or a Pipeline. Stores override this to
        read their rows; the default decodes every definition through ``pipelines()``.
        """
        return {pipeline.name: pipeline for pipeline in self.pipelines()}

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store's resources; closing twice is harmless."""

    def report(self, pipeline: Pipeline | str, *, now: datetime | None = None) -> PipelineReport:
        """Every metric for ``pipeline`` (a Pipeline or a recorded name) over the stored deals.

        Equal to ``metrics.report`` over ``find(pipeline=...)``; SQL stores may push
        the aggregation down into the database.
        """
        resolved = self._resolve(pipeline)
        return metrics.report(self.find(pipeline=resolved.name), resolved, now=now)

    def _resolve(self, pipeline: Pipeline | str) -> Pipeline:
        """``pipeline`` itself, or the recorded definition of that name."""
        if isinstance(pipeline, Pipeline):
            return pipeline
        if not isinstance(pipeline, str):
            raise ValidationError(f"expected a Pipeline or a pipeline name, not {shown(pipeline)}")
        return self.pipeline(pipeline)

    def __enter__(self) -> DealStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def check_deal(deal: object) -> Deal:
    """``deal`` if it is a Deal, else a ``ValidationError`` (stores accept nothing else)."""
    if not isinstance(deal, Deal):
        raise ValidationError(f"a store keeps Deal values, not {type(deal).__name__}")
    return deal


def check_filters(pipeline: object, stage: object, open: object) -> None:
    """Refuse filter values of the wrong type before any query runs."""
    for what, value in (("pipeline", pipeline), ("stage", stage)):
        if value is not None:
            check_text(value, f"find(): {what}", max_length=MAX_ID_LENGTH)
    if open is not None and not isinstance(open, bool):
        raise ValidationError(f"find(): open must be True, False or None, not {shown(open)}")


def matches(deal: Deal, pipeline: str | None, stage: str | None, open: bool | None) -> bool:
    """Whether ``deal`` passes ``find``'s filters (the in-memory reading of them)."""
    return (
        (pipeline is None or deal.pipeline == pipeline)
        and (stage is None or deal.stage == stage)
        and (open is None or open == (deal.stage not in (WON, LOST)))
    )


def new_entries(deal: Deal, stored: Sequence[StageChange]) -> tuple[StageChange, ...]:
    """The entries ``deal`` adds to ``stored``, the history of the version it was made on.

    A save writes only a deal whose history is exactly ``stored`` followed by entries
    of later versions (so its ``id`` and ``created_at`` are the stored ones too); any
    other is a ``ValidationError`` and nothing is written. Entries the deal shares
    with the loaded one compare by identity, so this costs little even for long
    histories.
    """
    count = len(stored)
    history = deal.history
    if history[:count] == tuple(stored) and (
        len(history) == count or history[count].version >= deal.version
    ):
        return history[count:]
    raise ValidationError(
        f"its history is not the stored history plus new entries ({_difference(history, stored)});"
        " save only deals derived from the stored deal",
        deal_id=deal.id,
    )


def _difference(history: Sequence[StageChange], stored: Sequence[StageChange]) -> str:
    """Where ``history`` first parts from ``stored``, in words."""
    for index, (given, kept) in enumerate(zip(history, stored, strict=False)):
        if given != kept:
            return f"entry {index + 1} differs from the stored v{kept.version} {kept.to_stage!r}"
    if len(history) < len(stored):
        return f"it has {len(history)} of the {len(stored)} stored entries"
    return f"entry {len(stored) + 1} has version {history[len(stored)].version}, already stored"


def split_history(deal: Deal) -> tuple[StageChange | None, tuple[StageChange, ...]]:
    """The last history entry the stored version already has, and the entries after it.

    A save is valid only if the stored deal ends where that entry says (same stage,
    same time): then the new entries continue the stored history.
    """
    base = deal.version - 1
    known = [change for change in deal.history if change.version <= base]
    new = tuple(change for change in deal.history if change.version > base)
    return (known[-1] if known else None), new
