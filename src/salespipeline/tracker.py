"""Tracker: the entry point for apps, tying pipelines, a store and a clock together.

Every change loads the deal, lets the pipeline check and apply the move, and saves
it optimistically. When another writer got there first (``ConcurrencyError``), the
Tracker reloads and finishes the same intent, up to ``retries`` times: a deal
already at the destination is returned unchanged (two concurrent clicks on
"advance" move a deal one stage, not two); one still where the move was decided is
re-checked, guards included, and moved; one that is anywhere else is refused with
``ConcurrencyError``. The decision rule lives in ``_commands``; this module does
the I/O around it.

Every command takes ``actor=`` (who; the Tracker's ``actor`` by default) and
``key=``: a command whose key is already in the deal's log writes nothing and
returns the deal as that change left it, so a client may retry after a lost reply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from salespipeline._commands import (
    Changes,
    Commit,
    CommitMany,
    Erase,
    Get,
    Load,
    Steps,
    T,
    read,
)
from salespipeline._listeners import EVENTS, Listener, ListenerFailure, Unsubscribe
from salespipeline._tracking import Commands, commit_options, many_options
from salespipeline.deal import Deal
from salespipeline.errors import SalesPipelineError, UnknownPipelineError, UnknownStageError
from salespipeline.log import Change
from salespipeline.pipeline import Pipeline
from salespipeline.storage.base import DealStore

__all__ = ["EVENTS", "Listener", "ListenerFailure", "Tracker", "Unsubscribe"]


class Tracker(Commands[DealStore, Deal, tuple[Deal, ...]]):
    """Pipelines + a store + a clock: atomic, retried changes to stored deals.

    ``Tracker(store, pipelines, *, clock=None, retries=3, record_definitions=True,
    actor=None)``. The pipelines' definitions are recorded in the store
    (``store.pipelines()``), so a report or the CLI needs only the database. A
    pipeline whose guards cannot be written as data raises ``DefinitionError`` here
    unless ``record_definitions=False``. Every command (``open``, ``move``,
    ``advance``, ``win``, ``lose``, ``reopen``, ``update``, ``import_deal``, ``get``)
    returns the deal as it left it; ``open_many`` returns the deals, ``erase`` its
    ``erase`` change.
    """

    _stores = DealStore

    def _record(self, pipelines: tuple[Pipeline, ...]) -> None:
        for pipeline in pipelines:
            self._store.save_pipeline(pipeline)

    def deals(
        self,
        *,
        pipeline: str | None = None,
        stage: str | None = None,
        open: bool | None = None,
        **query: Any,
    ) -> Iterator[Deal]:
        """The stored deals matching every given filter (``owner``, ``fields``,
        ``updated_since``, ``limit`` and ``after`` too: see ``DealStore.find``).

        A pipeline the tracker does not have is ``UnknownPipelineError``, a stage none
        of the named (or, without ``pipeline``, of any) pipelines has is
        ``UnknownStageError``: a typo never reads as "no deals". A name the tracker
        knows and the store has never seen has no deals.
        """
        self._filters(pipeline, stage, open, query)
        try:
            return self._store.find(pipeline=pipeline, stage=stage, open=open, **query)
        except (UnknownPipelineError, UnknownStageError):
            return iter(())

    def erase(
        self, id: str, *, reason: str, actor: str | None = None, key: str | None = None
    ) -> Change:
        """Erase deal ``id`` and its personal data from the store (a GDPR-style request).

        Its row and every change of its log are deleted; one ``erase`` change with no
        personal data is logged so consumers learn of it, and returned. ``actor`` (default: the
        tracker's) and a non-blank ``reason`` are required; a retry with the same
        ``key`` returns the same change. See the how-to "Erase a deal".
        """
        return self._drive(self._erasure(id, actor, reason, key))

    def _drive(self, steps: Steps[T]) -> T:
        """Hand ``steps`` what each step it yields gave, or throw in the library error it
        raised (``resume``'s rule, in one loop with no value made per step: every
        command runs it)."""
        reply: Any = None
        failure: SalesPipelineError | None = None
        while True:
            try:
                step = steps.send(reply) if failure is None else steps.throw(failure)
            except StopIteration as done:
                result: T = done.value
                return result
            try:
                reply, failure = _PERFORM[type(step)](self, step), None
            except SalesPipelineError as error:
                reply, failure = None, error

    def _load(self, step: Load) -> Deal:
        return self._store.load(step.id)

    def _read(self, step: Get | Changes | Erase) -> Any:
        """Perform a step that calls one store method (``_commands.read``)."""
        name, args, keywords = read(step)
        return getattr(self._store, name)(*args, **keywords)

    def _drive_many(self, steps: Steps[tuple[Deal, ...]]) -> tuple[Deal, ...]:
        return self._drive(steps)

    def _commit_many(self, step: CommitMany) -> tuple[Deal, ...]:
        """Write the step's new deals in one transaction; listeners hear each after it."""
        changes = self._store.add_many(step.deals, **many_options(step))
        self._tell_each(changes, step, self._store._when_committed)
        return step.deals

    def _commit(self, step: Commit) -> Deal:
        """Write the step's deal (new without a previous one): the one place changes are stored."""
        deal, previous = step.deal, step.previous
        options = commit_options(deal, step.actor, step.key, step.reason)
        write = self._store.add if previous is None else self._store.save
        change = write(deal, **options) if options else write(deal)
        self._told(change, previous, deal, options, self._store._when_committed)
        return deal


_PERFORM: Final[Mapping[type, Callable[[Tracker, Any], Any]]] = {
    Commit: Tracker._commit,
    Load: Tracker._load,
    Get: Tracker._read,
    Changes: Tracker._read,
    Erase: Tracker._read,
    CommitMany: Tracker._commit_many,
}
"""How the sync driver performs each kind of step: one lookup, not a chain of tests."""
