"""Awaiting work to its end even when the awaiting task is cancelled (private).

A commit, or the entering and leaving of a sync store's transaction, must not be cut
off half-way: the task's cancellation is raised once the work is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["finished"]

R = TypeVar("R")


async def finished(work: Awaitable[R], done: Callable[[R], object] | None = None) -> R:
    """``work``'s result, awaited to its end even when the task is cancelled meanwhile.

    ``done`` is called with the result when the work succeeded, cancelled or not; a
    cancellation is raised after it.
    """
    running = asyncio.ensure_future(work)
    try:
        result = await asyncio.shield(running)
    except asyncio.CancelledError:
        await asyncio.wait([running])
        if done is not None and not running.cancelled() and running.exception() is None:
            done(running.result())
        raise
    if done is not None:
        done(result)
    return result
