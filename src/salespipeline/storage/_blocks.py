"""Per thread, the ``store.transaction()`` blocks a store is inside (private).

A block makes the store calls a thread makes inside it one transaction. What must
wait for that transaction to commit (a Tracker's listeners) waits here, and runs
when the outermost block ends without an error; an error drops it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["Blocks"]


class Blocks:
    """How deep each thread is in a store's blocks, and what waits for the outermost."""

    def __init__(self) -> None:
        self._local = threading.local()

    @property
    def depth(self) -> int:
        """The blocks this thread is inside (0: none)."""
        return len(getattr(self._local, "stack", ()))

    @contextmanager
    def entered(self) -> Iterator[int]:
        """Count this thread into one more block; the depth it entered at (0: outermost).

        The caller begins and ends the transaction (or savepoint) inside this context,
        so the waiting callbacks run only after the outermost one committed.
        """
        stack: list[list[Callable[[], None]]] = self._local.__dict__.setdefault("stack", [])
        stack.append([])
        try:
            yield len(stack) - 1
        except BaseException:
            stack.pop()
            raise
        waiting = stack.pop()
        if stack:
            stack[-1].extend(waiting)  # an inner block's callbacks wait for the outer one
            return
        for callback in waiting:
            callback()

    def when_committed(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this thread's outermost block commits; now if in none."""
        stack = getattr(self._local, "stack", None)
        if stack:
            stack[-1].append(callback)
        else:
            callback()
