"""A deal's history as a shared, append-only sequence, so a move never copies it (private).

Every ``History`` is a read-only view of the first ``len`` entries of a list that is
only ever appended to. A move appends its entry to that list when the view is its
whole length (the usual case: the deal moved is the latest of its line) and hands
out a longer view of the same list, so a deal with 10,000 entries moves as cheaply
as one with 7. A view of an older deal that is moved again (a branch) copies what
it sees into a list of its own. Either way no view's entries ever change, so a
History is as immutable as the tuple it compares equal to.

A store may load only the latest entries and leave the older ones to be read when
first asked for (``History.lazy``): the head is read once, checked, and shared by
every view of that load.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, islice
from typing import TYPE_CHECKING, Any, ClassVar, Final, overload

from salespipeline.errors import StorageError, ValidationError

if TYPE_CHECKING:
    from salespipeline.deal import StageChange

__all__ = ["History", "head_of"]

_APPEND = threading.Lock()
"""Held while a view decides whether it may append in place (one process-wide lock:
the check and the append take a few hundred nanoseconds)."""


class _Head:
    """The ``count`` oldest entries of a lazily loaded history, read on first use."""

    __slots__ = ("__weakref__", "_entries", "_fetch", "_lock", "count")

    def __init__(self, count: int, fetch: Callable[[], Sequence[StageChange]]) -> None:
        self.count = count
        self._entries: tuple[StageChange, ...] | None = None
        self._fetch: Callable[[], Sequence[StageChange]] | None = fetch
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._entries is not None

    def entries(self) -> tuple[StageChange, ...]:
        entries = self._entries
        if entries is not None:
            return entries
        with self._lock:
            if self._entries is None:
                assert self._fetch is not None
                fetched = tuple(self._fetch())
                if len(fetched) != self.count:
                    raise StorageError(
                        f"the store read {len(fetched)} of the {self.count} older history "
                        "entries it promised"
                    )
                self._entries, self._fetch = fetched, None
            return self._entries


class History(Sequence["StageChange"]):
    """A deal's stage moves, oldest first: equal (``==``) to the tuple of its entries."""

    __slots__ = ("_entries", "_head", "_length")

    _entries: list[StageChange]
    _length: int
    _head: _Head | None

    entry_type: ClassVar[type] = object
    """What a History holds: ``StageChange``, set by ``salespipeline.deal`` (which this
    module cannot import: deal imports it)."""

    def __init__(self, entries: Iterable[StageChange] = ()) -> None:
        if isinstance(entries, (str, bytes)) or not isinstance(entries, Iterable):
            raise ValidationError(
                f"a History is made of StageChange entries, not {type(entries).__name__}"
            )
        self._entries = list(entries)
        if not all(isinstance(entry, self.entry_type) for entry in self._entries):
            raise ValidationError("a History is made of StageChange entries only")
        self._length = len(self._entries)
        self._head = None

    @classmethod
    def _trusted(cls, entries: list[StageChange]) -> History:
        """A history of ``entries``, already checked to be StageChange values (kept)."""
        return _view(entries, len(entries), None)

    @classmethod
    def lazy(
        cls,
        latest: Iterable[StageChange],
        older: int,
        fetch: Callable[[], Sequence[StageChange]],
    ) -> History:
        """The ``latest`` entries, after ``older`` ones that ``fetch`` reads when first needed."""
        view = cls._trusted(list(latest))
        if older:
            view._head = _Head(older, fetch)
            view._length += older
        return view

    def appended(self, *entries: StageChange) -> History:
        """This history followed by ``entries``, sharing this one's entries.

        The lock is taken by hand, not with ``with``: it costs half as much, on every move.
        """
        head = self._head
        length = self._length
        place = length if head is None else length - head.count
        mine = self._entries
        _APPEND.acquire()
        try:
            if len(mine) == place:
                mine.extend(entries)
                return _view(mine, length + len(entries), head)
        finally:
            _APPEND.release()
        copied = mine[:place]
        copied.extend(entries)
        return _view(copied, length + len(entries), head)

    def with_last(self, entry: StageChange) -> History:
        """This history with its last entry replaced by ``entry``."""
        start = 0 if self._head is None else self._head.count
        if self._length - 1 < start:
            return History._trusted([*self._items()[:-1], entry])
        return _view(self._entries, self._length - 1, self._head).appended(entry)

    @property
    def in_memory(self) -> int:
        """How many entries this view holds in memory."""
        if self._head is None or self._head.loaded:
            return self._length
        return self._length - self._head.count

    @property
    def loaded(self) -> bool:
        """Whether every entry is in memory (False until a lazy history's head is read)."""
        return self._head is None or self._head.loaded

    def latest(self) -> tuple[StageChange, ...]:
        """The entries in memory without reading anything: all, or a lazy load's latest."""
        start = 0 if self._head is None else self._head.count
        if self._head is not None and self._head.loaded:
            return self._items()
        return tuple(islice(self._entries, self._length - start))

    def starts_with(self, other: Sequence[StageChange]) -> bool:
        """Whether ``other``'s entries begin this history (free when this was made from it)."""
        if isinstance(other, History) and other._entries is self._entries:
            return other._length <= self._length
        count = len(other)
        return count <= self._length and tuple(self[:count]) == tuple(other)

    def after(self, count: int) -> tuple[StageChange, ...]:
        """The entries after the first ``count`` (``self[count:]``; a save reads the new
        entries of every deal it writes, which are always in memory)."""
        start = 0 if self._head is None else self._head.count
        if count >= start:
            return tuple(self._entries[count - start : self._length - start])
        return self[count:]

    # -- the sequence ---------------------------------------------------------------

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> StageChange: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[StageChange, ...]: ...

    def __getitem__(self, index: int | slice) -> StageChange | tuple[StageChange, ...]:
        if index == -1:  # the last entry, which every move and save reads: always in memory
            last = self._length - 1 - (0 if self._head is None else self._head.count)
            if last >= 0:
                return self._entries[last]
        if isinstance(index, slice):
            begin, end, step = index.indices(self._length)
            start = 0 if self._head is None else self._head.count
            if step == 1 and begin >= start:
                return tuple(self._entries[begin - start : max(begin, end) - start])
            return self._items()[index]
        length = self._length
        if not -length <= index < length:
            raise IndexError("history index out of range")
        if index < 0:
            index += length
        head = self._head
        if head is None:
            return self._entries[index]
        if index < head.count:
            return head.entries()[index]
        return self._entries[index - head.count]

    def __iter__(self) -> Iterator[StageChange]:
        if self._head is None:
            return islice(self._entries, self._length)
        return chain(self._head.entries(), islice(self._entries, self._length - self._head.count))

    def __reversed__(self) -> Iterator[StageChange]:
        for index in range(self._length - 1, -1, -1):
            yield self[index]

    def _items(self) -> tuple[StageChange, ...]:
        return tuple(self)

    # -- a value --------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if isinstance(other, History):
            if other._entries is self._entries and other._head is self._head:
                return other._length == self._length
            return other._length == self._length and other._items() == self._items()
        if isinstance(other, tuple):
            return len(other) == self._length and other == self._items()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._items())

    def __add__(self, other: object) -> tuple[StageChange, ...]:
        if not isinstance(other, (tuple, History)):
            return NotImplemented
        return self._items() + tuple(other)

    def __radd__(self, other: object) -> tuple[StageChange, ...]:
        if not isinstance(other, tuple):
            return NotImplemented
        return other + self._items()

    def __repr__(self) -> str:
        return repr(self._items())

    def __reduce__(self) -> tuple[Any, ...]:
        return (History, (self._items(),))


_new_view: Final = object.__new__


def _view(entries: list[StageChange], length: int, head: _Head | None) -> History:
    """A History of the first ``length`` entries of ``entries`` after ``head``, unchecked."""
    view: History = _new_view(History)
    view._entries, view._length, view._head = entries, length, head
    return view


def head_of(history: Sequence[StageChange]) -> _Head | None:
    """The unread head a lazy ``history`` shares with the views made from it (a store
    reads it before it closes)."""
    return history._head if isinstance(history, History) else None
