"""Plans: the SQL store's work as data, which a sync or an async driver runs (private).

A plan is a generator: it yields the transactions it needs (``Within``) and is sent
what each returned, or thrown what each raised. Inside a transaction, its steps
yield ``Statement`` values and are sent their results. Neither does I/O (the
sans-I/O shape of h11): ``drive`` runs a plan on DB-API cursors, and the async
stores await the same plan on async cursors, so the store's logic exists once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final, Generic, Literal, NamedTuple, TypeVar

import attrs

__all__ = [
    "ROWS",
    "Done",
    "Fetch",
    "Kind",
    "Plan",
    "Statement",
    "Steps",
    "Within",
    "advance",
    "awaited",
    "drive",
    "execute",
    "named",
    "one",
    "result",
    "single",
]

T = TypeVar("T")
S = TypeVar("S")

Fetch = Literal["none", "one", "all", "rowcount", "lastrowid", "named"]
"""What a statement's result is: nothing, its first row (or None), all its rows, the
rows it changed, the id SQLite gave the row it inserted, or its rows by column name."""

Kind = Literal["read", "write", "statement"]
"""A transaction's kind: one snapshot, one atomic write that serialises with other
writers, or statements each atomic on its own (see ``SQLStore._read`` and so on)."""


class Statement(NamedTuple):
    """One SQL statement, its bound parameters, and what of its result the plan needs.

    ``many``: ``params`` is a sequence of rows, run with ``executemany``. ``binary``:
    its rows come in the driver's binary format (psycopg's ``binary=True``: integers
    and booleans with no text to parse), for a dialect that says so. A named tuple,
    read-only like a frozen class and made in a fraction of its time: a save makes
    two on every move.
    """

    sql: str
    params: Any = ()
    fetch: Fetch = "none"
    many: bool = False
    binary: bool = False


Steps = Generator[Statement, Any, T]
"""The statements of one transaction; its value is the transaction's result."""


@attrs.frozen
class Within(Generic[T]):
    """One transaction of ``kind``, running ``steps``."""

    kind: Kind
    steps: Steps[T]


Plan = Generator["Within[Any]", Any, T]
"""A store call: its transactions, one after another; its value is the call's result."""


@attrs.frozen
class Done(Generic[T]):
    """The plan (or steps) ended with ``value``."""

    value: T


def advance(
    generator: Generator[S, Any, T], result: Any = None, error: BaseException | None = None
) -> S | Done[T]:
    """Hand ``generator`` the last step's ``result``, or the ``error`` it raised: its next
    step, or ``Done`` with its value.

    A raised error is thrown in, so the plan's ``try`` blocks see it as if the
    statement had raised there; a plan that does not catch it raises it again.
    """
    try:
        if error is not None:
            return generator.throw(error)
        return generator.send(result)
    except StopIteration as stop:
        return Done(stop.value)


async def awaited(generator: Generator[S, Any, T], do: Callable[[S], Awaitable[Any]]) -> T:
    """The async driver's loop (``_ran``'s counterpart): hand ``generator`` what awaiting
    ``do`` made of each step it yields, or what that raised; its value. The result and
    the error are passed as they are, with no object made per step."""
    result: Any = None
    error: BaseException | None = None
    while not isinstance(step := advance(generator, result, error), Done):
        try:
            result, error = await do(step), None
        except BaseException as raised:
            result, error = None, raised
    value: T = step.value
    return value


def one(statement: Statement) -> Steps[Any]:
    """The steps of a transaction of one statement; its result."""
    return (yield statement)


def single(kind: Kind, statement: Statement) -> Plan[Any]:
    """A plan of one statement in a transaction of ``kind``; its result."""
    return (yield Within(kind, one(statement)))


ROWS: Final = frozenset({"one", "all", "named"})
"""The fetches that read the statement's rows."""


def execute(cursor: Any, statement: Statement) -> Any:
    """Run ``statement`` on a DB-API cursor; what its ``fetch`` asks for."""
    sql, params, fetch, many, binary = statement
    if many:
        cursor.executemany(sql, params)
    elif binary:
        cursor.execute(sql, params, binary=True)
    else:
        cursor.execute(sql, params)
    if fetch == "rowcount":  # a save's update, then its insert: answered without ``result``
        return cursor.rowcount
    if fetch == "lastrowid":
        return getattr(cursor, "lastrowid", None)
    return result(statement, cursor, cursor.fetchall() if fetch in ROWS else None)


def result(statement: Statement, cursor: Any, rows: Sequence[Any] | None) -> Any:
    """What ``statement``'s ``fetch`` asks for, of the ``cursor`` that ran it and its
    ``rows`` (read only for the fetches in ``ROWS``)."""
    fetch = statement.fetch
    if rows is not None:
        if fetch == "one":
            return rows[0] if rows else None
        return list(rows) if fetch == "all" else named(cursor.description, rows)
    if fetch == "rowcount":
        return cursor.rowcount
    return getattr(cursor, "lastrowid", None) if fetch == "lastrowid" else None


def named(description: Sequence[Sequence[Any]] | None, rows: Sequence[Any]) -> list[Any]:
    """``rows`` as mappings of column name to value."""
    names = [column[0] for column in description or ()]
    return [dict(zip(names, row, strict=True)) for row in rows]


def drive(plan: Plan[T], opened: Callable[[Kind], AbstractContextManager[Any]]) -> T:
    """Run ``plan``, each transaction on the cursor ``opened(kind)`` gives, synchronously."""
    return _ran(plan, _within, opened)


def _within(opened: Callable[[Kind], AbstractContextManager[Any]], within: Within[T]) -> T:
    with opened(within.kind) as cursor:
        return _ran(within.steps, execute, cursor)


def _ran(generator: Generator[S, Any, T], do: Callable[[Any, S], object], context: Any) -> T:
    """Send ``generator`` what ``do(context, step)`` makes of each step it yields, or throw
    in what that raised (as ``awaited`` does for the async driver); its value. A plain
    loop, with no object or closure made per step: a save runs it on every move."""
    try:
        step = next(generator)
        while True:
            try:
                value = do(context, step)
            except BaseException as error:
                step = generator.throw(error)
            else:
                step = generator.send(value)
    except StopIteration as stop:
        result: T = stop.value
        return result
