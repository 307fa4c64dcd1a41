"""Per thread (or asyncio task), the ``store.transaction()`` blocks a store is inside (private).

A block makes the store calls made inside it one transaction. What must wait for
that transaction to commit (a Tracker's listeners) waits here, and runs when the
outermost block ends without an error; an error drops it. The blocks are kept in
a context variable, so each thread, and each asyncio task, has its own.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["Blocks"]


class _Frame:
    """One open block: the callbacks waiting for its commit, until it ends."""

    __slots__ = ("callbacks", "open")

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []
        self.open = True


class Blocks:
    """How deep each thread or task is in a store's blocks, and what waits for the outermost.

    A task started inside a block inherits it (its context is a copy); what it asks
    to wait after the block has ended runs at once.
    """

    def __init__(self) -> None:
        self._open: contextvars.ContextVar[tuple[_Frame, ...]] = contextvars.ContextVar(
            f"salespipeline-blocks-{id(self)}", default=()
        )

    @property
    def depth(self) -> int:
        """The open blocks this thread or task is inside (0: none)."""
        return sum(frame.open for frame in self._open.get())

    @contextmanager
    def entered(self) -> Iterator[int]:
        """Count one more block; the depth it is entered at (0: outermost).

        The caller begins and ends the transaction (or savepoint) inside this context,
        so the waiting callbacks run only after the outermost one committed.
        """
        frames = self._open.get()
        frame = _Frame()
        token = self._open.set((*frames, frame))
        try:
            yield len(frames)
        finally:
            frame.open = False
            self._open.reset(token)
        if frames and frames[-1].open:
            frames[-1].callbacks.extend(frame.callbacks)  # they wait for the outer block
            return
        for callback in frame.callbacks:
            callback()

    def when_committed(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the outermost open block commits; now if none is open."""
        frames = self._open.get()
        if frames and frames[-1].open:
            frames[-1].callbacks.append(callback)
        else:
            callback()
