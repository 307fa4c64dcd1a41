"""DealStore: the abstract storage contract every adapter implements.

A store keeps deals with their append-only history and the pipeline definitions
they belong to. Writes are optimistic: ``save`` succeeds only when the stored
version is the one the change was made on, so concurrent writers never overwrite
each other silently. ``salespipeline.testing.StoreContract`` checks an adapter
against this contract.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from salespipeline import _checks as c
from salespipeline import limits, log, metrics
from salespipeline._checks import MAX_ID_LENGTH, check_id, check_text
from salespipeline._unchecked import replace
from salespipeline.deal import Deal, History, StageChange, to_actor
from salespipeline.errors import (
    DuplicateDealError,
    StorageError,
    UnknownPipelineError,
    ValidationError,
    shown,
)
from salespipeline.log import Change
from salespipeline.metrics._asof import as_of_instant
from salespipeline.pipeline import Pipeline
from salespipeline.storage._asof import deals_as_of
from salespipeline.storage._consumers import (
    Consumer,
    check_consumer_name,
    check_position,
    check_recorded,
)
from salespipeline.storage._definitions import decode_all, decode_pipeline, definition_row
from salespipeline.storage._erasure import check_erasure, erase_change, erased_by
from salespipeline.storage._query import FieldValue, Query, check_names, check_query

if TYPE_CHECKING:
    from salespipeline.metrics import ForecastAccuracy, Movement, OwnerFigures, PipelineReport

__all__ = [
    "Consumer",
    "DealStore",
    "FieldValue",
    "Query",
    "QueryingStore",
    "Read",
    "add_options",
    "as_stored",
    "check_change_args",
    "check_consumer_name",
    "check_deal",
    "check_erasure",
    "check_filters",
    "check_id",
    "check_log_page",
    "check_many",
    "check_names",
    "check_pipeline_name",
    "check_position",
    "check_query",
    "check_recorded",
    "checked_query",
    "decode_all",
    "decode_pipeline",
    "definition_row",
    "each_planned_add",
    "erase_change",
    "erased_by",
    "matches",
    "new_entries",
    "no_import",
    "planned_adds",
    "recorded_pipeline",
    "split_history",
    "verifying",
]


class DealStore(abc.ABC):
    """Deals, their histories and pipeline definitions, behind one small interface."""

    @abc.abstractmethod
    def add(
        self,
        deal: Deal,
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
    ) -> Change | None:
        """Store a new deal with its history; ``DuplicateDealError`` if the id exists.

        Logs its ``open`` change (``log.recorded`` when it comes with a past) and
        returns the last change logged, position set.
        """

    @abc.abstractmethod
    def get(self, id: str) -> Deal:
        """The stored deal with its full history; ``DealNotFoundError`` if absent."""

    def load(self, id: str) -> Deal:
        """The stored deal, to change it: ``get``, but a store may leave the older
        entries of a long history to be read when first needed.

        The Tracker loads with it, so a move costs the same whatever the history's
        length. Such a deal's older entries can be read only while the store is open.
        """
        return self.get(id)

    @abc.abstractmethod
    def save(
        self,
        deal: Deal,
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
    ) -> Change | None:
        """Write ``deal`` if the stored version is ``deal.version - 1``, else ``ConcurrencyError``.

        The store derives the ``Change`` from the stored deal and ``deal``
        (``log.derive``) and writes it with the row in one transaction; it returns
        that change, position set. A ``key`` already in the deal's log is refused.
        """

    def add_many(
        self,
        deals: Iterable[Deal],
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
        imported: bool = False,
    ) -> tuple[Change, ...]:
        """Store new deals in one transaction, all or nothing; each deal's last change, in order.

        Each deal is logged as ``add`` logs it (``imported``: as ``import`` changes,
        ``log.imported``). A taken or repeated id is ``DuplicateDealError`` and a bad
        deal ``ValidationError``: nothing is written. At most ``limits.MAX_BULK`` deals.
        """
        checked = check_many(deals)
        if imported:
            raise no_import(self)
        with self.transaction():
            return tuple(self._added(deal, actor, reason, key) for deal in checked)

    def _added(self, deal: Deal, actor: str | None, reason: str | None, key: str | None) -> Change:
        change = self.add(deal, **add_options(actor, reason, key))
        if not isinstance(change, Change):  # a store written for part 1 returns None
            raise StorageError(f"{type(self).__name__}.add returned no change: it keeps no log")
        return change

    def last_known(self, id: str) -> Deal | None:
        """The deal ``id`` as this store last read or wrote it, or None; it may be stale.

        A Tracker decides a command on it instead of loading the deal first: the save's
        version check refuses a stale one (``ConcurrencyError``), and the Tracker then
        loads the deal and decides again. A store that remembers nothing returns None
        (the default), and every command starts with ``get``.
        """
        return None

    # -- the change log (stores that predate it raise StorageError) -------------------

    def changes(self, id: str, *, key: str | None = None) -> tuple[Change, ...]:
        """Deal ``id``'s changes, oldest first (only the one made with ``key``, if given).

        ``DealNotFoundError`` when the log has no change of ``id``.
        """
        raise self._no_log()

    def log(self, *, after: int = 0, limit: int = 1000) -> tuple[Change, ...]:
        """Up to ``limit`` changes of every deal with positions above ``after``, in order.

        A reader paging with ``after=<last position seen>`` never skips a committed
        change, even when transactions commit out of position order.
        """
        raise self._no_log()

    def consumer(self, name: str) -> Consumer:
        """The durable reader called ``name``; its position is kept in this store."""
        return Consumer(self, check_consumer_name(name))

    def verify(self) -> tuple[str, ...]:
        """Problems found by replaying the log against the stored deals (empty: consistent)."""
        steps = verifying()
        answer: Any = None
        while True:
            try:
                read = steps.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            answer = self._answer(read)

    def _answer(self, read: Read) -> Any:
        """What this store's method ``read`` names answers (``find``'s deals as a list)."""
        name, arguments = read
        answer = getattr(self, name)(**arguments)
        return list(answer) if name == "find" else answer

    def erase(
        self,
        id: str,
        *,
        actor: str,
        reason: str,
        key: str | None = None,
        at: datetime | None = None,
    ) -> Change:
        """Delete deal ``id`` and every change of its log, and log its ``erase`` change.

        The change keeps no personal data (see the how-to "Erase a deal"); it is
        returned, position set. ``actor`` and a non-blank ``reason`` are required; a
        retry with the same ``key`` returns the same change and writes nothing.
        """
        raise StorageError(
            f"{type(self).__name__} cannot erase deals: implement erase() (see the storage "
            "adapter guide)"
        )

    def consumer_position(self, name: str) -> int:
        """Consumer ``name``'s recorded position (0 when it has none)."""
        raise self._no_log()

    def record_consumer_position(
        self, name: str, position: int, *, backwards: bool = False
    ) -> None:
        """Record consumer ``name``'s position (never lowered unless ``backwards``)."""
        raise self._no_log()

    def transaction(self) -> AbstractContextManager[None]:
        """A block whose store calls (this thread's, Tracker calls included) are one
        transaction: committed when the block ends, rolled back, all of them, when it
        raises. Inside a transaction the caller began on the store's connection, the
        block joins it (a savepoint) and the caller's commit decides."""
        raise StorageError(
            f"{type(self).__name__} cannot join calls into one transaction: implement "
            "transaction() (see the storage adapter guide)"
        )

    def _when_committed(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once what this thread wrote is committed (now, outside a block)."""
        callback()

    def _no_log(self) -> StorageError:
        return StorageError(
            f"{type(self).__name__} keeps no change log: implement changes(), log(), "
            "consumer_position() and record_consumer_position() (see the storage adapter guide)"
        )

    @abc.abstractmethod
    def find(
        self,
        *,
        pipeline: str | None = None,
        stage: str | None = None,
        open: bool | None = None,
        owner: str | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        updated_since: datetime | None = None,
        order_by: str = "id",
        limit: int | None = None,
        after: str | None = None,
    ) -> Iterator[Deal]:
        """The deals matching every given filter, in id order, streamed.

        ``after`` (the last id seen) and ``limit`` page through them by keyset, so a
        page never repeats or skips a deal whatever is written between pages. A name
        the store does not know is ``UnknownPipelineError`` / ``UnknownStageError``
        (``check_names``); implement it with ``checked_query(self, ...)`` and
        ``Query.select``.
        """

    def count(
        self,
        *,
        pipeline: str | None = None,
        stage: str | None = None,
        open: bool | None = None,
        owner: str | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        updated_since: datetime | None = None,
    ) -> int:
        """How many deals ``find`` with the same filters yields.

        The default counts what ``find`` streams, passing only the filters given.
        """
        given: dict[str, Any] = {
            name: value
            for name, value in (
                ("pipeline", pipeline),
                ("stage", stage),
                ("open", open),
                ("owner", owner),
                ("fields", fields),
                ("updated_since", updated_since),
            )
            if value is not None
        }
        return sum(1 for _ in self.find(**given))

    def _carries(self, pipeline: str | None, stage: str | None) -> bool:
        """Whether a stored deal is in ``pipeline`` and ``stage`` (None: any); the
        default reads ``find()``, stores answer from an index."""
        return any(
            (pipeline is None or d.pipeline == pipeline) and (stage is None or d.stage == stage)
            for d in self.find()
        )

    def history(self, id: str) -> tuple[StageChange, ...]:
        """The deal's stage changes, oldest first; ``DealNotFoundError`` if absent."""
        return tuple(self.get(id).history)

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
        return recorded_pipeline(check_pipeline_name(name), self._definitions())

    def _definitions(self) -> Mapping[str, object]:
        """Each recorded name with its highest version's definition as stored, undecoded.

        Values are JSON text, ``to_dict`` data or a Pipeline. Stores override this to
        read their rows; the default decodes every definition through ``pipelines()``.
        """
        return {pipeline.name: pipeline for pipeline in self.pipelines()}

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store's resources; closing twice is harmless."""

    def report(
        self,
        pipeline: Pipeline | str,
        *,
        as_of: datetime | None = None,
        owner: str | None = None,
        currency: str | None = None,
        rates: Mapping[str, Decimal | int] | None = None,
        now: datetime | None = None,
    ) -> PipelineReport:
        """Every metric for ``pipeline`` (a Pipeline or a recorded name) as it stood at
        ``as_of`` (default: the pipeline clock's now).

        Equal to ``metrics.report`` over the deals replayed from the log up to ``as_of``,
        with the same ``owner``, ``currency`` and ``rates`` (``now``: the deprecated
        name of ``as_of``); SQL stores push the aggregation down into the database.
        """
        resolved = self._resolve(pipeline)
        instant = as_of_instant(resolved, as_of, now)
        deals = deals_as_of(self, resolved.name, instant)
        return metrics.report(
            deals, resolved, as_of=instant, owner=owner, currency=currency, rates=rates
        )

    def by_owner(
        self,
        pipeline: Pipeline | str,
        *,
        as_of: datetime | None = None,
        currency: str | None = None,
        rates: Mapping[str, Decimal | int] | None = None,
    ) -> tuple[OwnerFigures, ...]:
        """``metrics.by_owner`` over ``pipeline``'s deals as they stood at ``as_of``
        (rebuilt from the log where they changed since)."""
        resolved = self._resolve(pipeline)
        instant = as_of_instant(resolved, as_of, None)
        deals = deals_as_of(self, resolved.name, instant)
        return metrics.by_owner(deals, resolved, as_of=instant, currency=currency, rates=rates)

    def movement(
        self,
        pipeline: Pipeline | str,
        *,
        start: datetime,
        end: datetime,
        rates: Mapping[str, Decimal | int] | None = None,
        currency: str | None = None,
    ) -> Movement:
        """The waterfall of ``pipeline`` over ``[start, end)``: ``metrics.movement`` over the log.

        Equal (``==``) to it with the same arguments; SQL stores read fewer changes.
        """
        resolved = self._resolve(pipeline)
        return metrics.movement(
            self._whole_log(), resolved, start=start, end=end, rates=rates, currency=currency
        )

    def forecast_accuracy(
        self,
        pipeline: Pipeline | str,
        *,
        made_at: datetime,
        start: datetime,
        end: datetime,
        currency: str | None = None,
        rates: Mapping[str, Decimal | int] | None = None,
    ) -> ForecastAccuracy:
        """The forecast for ``[start, end)`` as it stood at ``made_at``, against what was
        won: ``metrics.forecast_accuracy`` over the store's log, equal (``==``) to it."""
        resolved = self._resolve(pipeline)
        return metrics.forecast_accuracy(
            self._whole_log(),
            resolved,
            made_at=made_at,
            start=start,
            end=end,
            currency=currency,
            rates=rates,
        )

    def _whole_log(self, *, page: int = 1000) -> Iterator[Change]:
        """Every change in the log, in position order, read a page at a time."""
        after = 0
        while changes := self.log(after=after, limit=page):
            yield from changes
            after = changes[-1].position or after + len(changes)

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


class QueryingStore(DealStore):
    """A store whose ``find`` and ``count`` check their arguments here, once
    (``checked_query``), and answer the checked ``Query`` in ``_selected`` and
    ``_counted``: the shipped stores, and an adapter that wants the same checks."""

    def find(
        self,
        *,
        pipeline: str | None = None,
        stage: str | None = None,
        open: bool | None = None,
        owner: str | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        updated_since: datetime | None = None,
        order_by: str = "id",
        limit: int | None = None,
        after: str | None = None,
    ) -> Iterator[Deal]:
        query = checked_query(
            self,
            pipeline=pipeline,
            stage=stage,
            open=open,
            owner=owner,
            fields=fields,
            updated_since=updated_since,
            order_by=order_by,
            limit=limit,
            after=after,
        )
        return self._selected(query)

    def count(
        self,
        *,
        pipeline: str | None = None,
        stage: str | None = None,
        open: bool | None = None,
        owner: str | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        updated_since: datetime | None = None,
    ) -> int:
        query = checked_query(
            self,
            pipeline=pipeline,
            stage=stage,
            open=open,
            owner=owner,
            fields=fields,
            updated_since=updated_since,
        )
        return self._counted(query)

    @abc.abstractmethod
    def _selected(self, query: Query) -> Iterator[Deal]:
        """The deals ``query`` matches, in id order, paged as it says, streamed."""

    @abc.abstractmethod
    def _counted(self, query: Query) -> int:
        """How many deals ``query`` matches."""


Read = tuple[str, dict[str, Any]]
"""A store read a pure algorithm asks for: the method's name and its keywords."""


def verifying() -> Generator[Read, Any, tuple[str, ...]]:
    """``verify``'s algorithm over the reads it yields (``log`` pages, ``find``,
    ``changes``), so a sync store and an async one answer them alike."""
    problems: list[str] = []
    seen: set[str] = set()
    after = 0
    while page := (yield ("log", {"after": after, "limit": 1000})):
        for change in page:
            if change.position is None or change.position <= after:
                problems.append(f"the log's positions do not rise at {change.position}")
            after = max(after, change.position or after)
            seen.add(change.deal_id)
    stored = set()
    for deal in (yield ("find", {})):
        stored.add(deal.id)
        problem = _replay_problem(deal, (yield ("changes", {"id": deal.id})))
        if problem is not None:
            problems.append(f"deal {deal.id!r}: {problem}")
    for deal_id in sorted(seen - stored):
        problems.extend(_orphan_problem(deal_id, (yield ("changes", {"id": deal_id}))))
    return tuple(problems)


def _replay_problem(deal: Deal, changes: Sequence[Change]) -> str | None:
    try:
        replayed = log.replay(changes).get(deal.id)
    except ValidationError as error:
        return f"its log does not replay: {error}"
    if replayed is None:
        return "its log has no change that opens it"
    if replayed != deal:
        names = [
            n for n in Deal.__attrs_attrs__ if getattr(replayed, n.name) != getattr(deal, n.name)
        ]
        return f"the stored row differs from its log in {', '.join(n.name for n in names)}"
    return None


def _orphan_problem(deal_id: str, changes: Sequence[Change]) -> list[str]:
    if changes and changes[-1].kind == "erase":
        return []
    return [f"deal {deal_id!r}: the log has changes but the store has no such deal"]


def as_stored(deal: Deal, change: Change) -> Deal:
    """``deal`` as the store keeps it: a move's history entry carries the change's actor."""
    if change.to_stage is None or change.actor is None:  # no actor: the entry has none
        return deal
    if deal.history[-1].actor == change.actor:
        return deal
    entry = change.entry
    assert entry is not None
    return replace(deal, history=deal.history.with_last(entry))


def check_change_args(actor: object, reason: object, key: object) -> None:
    """Refuse a save's ``actor``, ``reason`` or ``key`` before any work."""
    if actor is None and reason is None and key is None:
        return
    to_actor(actor)
    c.to_optional_text(reason, "reason")
    if key is not None:
        check_id(key, "key")


def check_log_page(after: object, limit: object) -> tuple[int, int]:
    """``log()``'s arguments checked: ``after`` a position (0 to ``limits.MAX_POSITION``),
    ``limit`` 1..``limits.MAX_PAGE``."""
    after = c.to_position(after, "after")
    if not c.is_int(limit) or not 1 <= limit <= limits.MAX_PAGE:
        raise ValidationError(
            f"limit must be an integer from 1 to {limits.MAX_PAGE:,}, not {shown(limit)}"
        )
    return after, limit


def add_options(actor: str | None, reason: str | None, key: str | None) -> dict[str, str]:
    """The keywords given to ``add`` (only those set: a part 1 store takes the deal alone)."""
    given = (("actor", actor), ("reason", reason), ("key", key))
    return {name: value for name, value in given if value is not None}


def no_import(store: object) -> StorageError:
    """What a store that only has the default ``add_many`` says when asked to import."""
    return StorageError(
        f"{type(store).__name__} cannot import deals: implement add_many(..., imported=True) "
        "to log their import changes (see the storage adapter guide)"
    )


def check_many(deals: object) -> tuple[Deal, ...]:
    """``add_many``'s deals checked before any write: Deals, at most ``limits.MAX_BULK``,
    no id twice (``DuplicateDealError``)."""
    if isinstance(deals, (str, bytes, Mapping)) or not isinstance(deals, Iterable):
        raise ValidationError(f"deals must be an iterable of Deal values, not {shown(deals)}")
    checked: list[Deal] = []
    ids: set[str] = set()
    for deal in deals:
        if len(checked) == limits.MAX_BULK:
            raise ValidationError(
                f"deals: one call takes at most {limits.MAX_BULK:,} deals; split the batch"
            )
        checked.append(check_deal(deal))
        if deal.id in ids:
            raise DuplicateDealError(deal.id)
        ids.add(deal.id)
    return tuple(checked)


def planned_adds(
    deals: object, actor: object, reason: object, key: object, *, imported: bool
) -> tuple[tuple[Deal, tuple[Change, ...]], ...]:
    """``add_many``'s arguments checked, each deal with the changes that log it: ``add``'s
    (``log.recorded``) or, when ``imported``, ``log.imported``; before any write."""
    return tuple(each_planned_add(deals, actor, reason, key, imported=imported))


def each_planned_add(
    deals: object, actor: object, reason: object, key: object, *, imported: bool
) -> Iterator[tuple[Deal, tuple[Change, ...]]]:
    """``planned_adds`` one deal at a time (the arguments and the batch checked first),
    for a store that keeps less of each than all its changes."""
    checked = check_many(deals)
    check_change_args(actor, reason, key)
    logged = log.imported if imported else log.recorded
    options: dict[str, Any] = {"actor": actor, "reason": reason, "key": key}
    return ((deal, logged(deal, **options)) for deal in checked)


def check_pipeline_name(name: object) -> str:
    """A pipeline name to look up, checked before any read."""
    return check_text(name, "pipeline name", max_length=MAX_ID_LENGTH)


def recorded_pipeline(name: str, recorded: Mapping[str, object]) -> Pipeline:
    """The definition ``recorded`` holds for ``name``, decoded; else ``UnknownPipelineError``."""
    if name not in recorded:
        raise UnknownPipelineError(name, known=sorted(recorded))
    return decode_pipeline(name, recorded[name])


def check_deal(deal: object) -> Deal:
    """``deal`` if it is a Deal, else a ``ValidationError`` (stores accept nothing else)."""
    if not isinstance(deal, Deal):
        raise ValidationError(f"a store keeps Deal values, not {type(deal).__name__}")
    return deal


def check_filters(pipeline: object, stage: object, open: object, **more: object) -> Query:
    """Refuse filter values of the wrong type before any query runs; the checked ``Query``.

    ``more`` takes ``find``'s other keywords (``owner``, ``fields``, ``updated_since``,
    ``order_by``, ``limit``, ``after``).
    """
    return check_query(pipeline=pipeline, stage=stage, open=open, **more)


def checked_query(store: DealStore, **arguments: object) -> Query:
    """``find``'s or ``count``'s ``arguments`` checked, then their names against what
    ``store`` knows (its recorded definitions and stored deals), before any work."""
    query = check_query(**arguments)
    if query.pipeline is not None or query.stage is not None:
        check_names(query, store._definitions(), store._carries)
    return query


def matches(
    deal: Deal,
    pipeline: str | None,
    stage: str | None,
    open: bool | None,
    **more: object,
) -> bool:
    """Whether ``deal`` passes ``find``'s filters (the in-memory reading of them);
    ``more`` takes ``owner``, ``fields`` and ``updated_since``."""
    return check_query(pipeline=pipeline, stage=stage, open=open, **more).matches(deal)


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
    shared = isinstance(history, History)
    kept = history.starts_with(stored) if shared else tuple(history[:count]) == tuple(stored)
    if kept or _same_moves(history[:count], stored):
        new = history.after(count) if shared else tuple(history[count:])
        if not new or new[0].version >= deal.version:
            return new
    raise ValidationError(
        f"its history is not the stored history plus new entries ({_difference(history, stored)});"
        " save only deals derived from the stored deal",
        deal_id=deal.id,
    )


def _same_moves(given: Sequence[StageChange], kept: Sequence[StageChange]) -> bool:
    """The same entries but perhaps the actor, which a save may add to the stored ones."""
    return len(given) == len(kept) and all(
        a is b or (a.actor is None and a == attrs.evolve(b, actor=None))
        for a, b in zip(given, kept, strict=True)
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
