"""AsyncTracker: the Tracker's commands for asyncio apps, on an ``AsyncDealStore``.

The commands, their checks and the decision and retry rule are the sync Tracker's
own (``_tracking.Commands`` and ``_commands``); this driver only awaits the reads
and writes they ask for. A commit is seen through to its end even when the task
is cancelled meanwhile, so the deal is either moved and its listeners told, or
untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from salespipeline._commands import (
    STARTED,
    Commit,
    CommitMany,
    Finished,
    Outcome,
    Step,
    Steps,
    T,
    read,
    resume,
)
from salespipeline._tracking import Commands, commit_options, many_options
from salespipeline.aio._finished import finished
from salespipeline.aio._store import AsyncDealStore
from salespipeline.deal import Deal
from salespipeline.errors import SalesPipelineError
from salespipeline.log import Change
from salespipeline.pipeline import Pipeline

__all__ = ["AsyncTracker"]

R = TypeVar("R")


class AsyncTracker(Commands[AsyncDealStore, Awaitable[Deal], Awaitable[tuple[Deal, ...]]]):
    """Pipelines + an async store + a clock: the Tracker's atomic, retried commands, awaited.

    ``AsyncTracker(store, pipelines, *, clock=None, retries=3,
    record_definitions=True, actor=None)``, as ``Tracker``. Constructing it does no
    I/O; the pipelines' definitions are recorded in the store by the first command.
    Every command (``open``, ``move``, ``advance``, ``win``, ``lose``, ``reopen``,
    ``update``, ``import_deal``, ``get``) returns an awaitable of the deal;
    ``open_many`` an awaitable of the deals, ``erase`` of its change.
    """

    _stores = AsyncDealStore

    def _record(self, pipelines: tuple[Pipeline, ...]) -> None:
        self._unrecorded = list(pipelines)

    def deals(
        self,
        *,
        pipeline: str | None = None,
        stage: str | None = None,
        open: bool | None = None,
        **query: Any,
    ) -> AsyncIterator[Deal]:
        """The stored deals matching every given filter, streamed (see ``Tracker.deals``)."""
        self._filters(pipeline, stage, open, query)
        return self._store.find(pipeline=pipeline, stage=stage, open=open, **query)

    async def erase(
        self, id: str, *, reason: str, actor: str | None = None, key: str | None = None
    ) -> Change:
        """Erase deal ``id`` and its personal data from the store (a GDPR-style request).

        Its row and every change of its log are deleted; one ``erase`` change with no
        personal data is logged so consumers learn of it (the awaitable's result).
        ``actor`` (default: the tracker's) and a non-blank ``reason`` are required; a
        retry with the same ``key`` returns the same change. See "Erase a deal".
        """
        return await self._drive(self._erasure(id, actor, reason, key))

    async def _drive(self, steps: Steps[T]) -> T:
        while self._unrecorded:  # the first commands record the definitions
            pipeline = self._unrecorded.pop(0)
            try:
                await self._store.save_pipeline(pipeline)
            except BaseException:
                self._unrecorded.append(pipeline)
                raise
        outcome = STARTED
        while not isinstance(step := resume(steps, outcome), Finished):
            outcome = await self._attempt(step)
        result: T = step.value
        return result

    async def _attempt(self, step: Step) -> Outcome:
        """Perform one step on this tracker's store; what it gave or the error it raised."""
        try:
            if isinstance(step, Commit):
                return await self._commit(step), None
            if isinstance(step, CommitMany):
                return await self._commit_many(step), None
            name, args, keywords = read(step)
            return await getattr(self._store, name)(*args, **keywords), None
        except SalesPipelineError as error:
            return None, error

    async def _drive_many(self, steps: Steps[tuple[Deal, ...]]) -> tuple[Deal, ...]:
        return await self._drive(steps)

    async def _commit(self, step: Commit) -> Deal:
        """Write the step's deal and tell the listeners, to the end even if cancelled."""
        deal, previous = step.deal, step.previous
        options = commit_options(deal, step.actor, step.key, step.reason)
        write = self._store.add if previous is None else self._store.save
        await finished(
            write(deal, **options),
            lambda c: self._told(c, previous, deal, options, self._store._when_committed),
        )
        return deal

    async def _commit_many(self, step: CommitMany) -> tuple[Deal, ...]:
        """Write the step's new deals in one transaction, to the end even if cancelled."""
        writing = self._store.add_many(step.deals, **many_options(step))
        await finished(writing, lambda c: self._tell_each(c, step, self._store._when_committed))
        return step.deals
