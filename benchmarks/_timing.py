"""Interleaved timing: every contender runs once per round, the best round counts.

Interleaving spreads the noise of a shared machine over all contenders alike, and
the best of several rounds is the least disturbed estimate of each one's cost.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping
from typing import Any

# A contender: ``prepare()`` builds untimed input, ``run(input)`` is the timed work.
Prepare = Callable[[], Any]
Run = Callable[[Any], Any]


def best_times(contenders: Mapping[str, tuple[Prepare, Run]], *, rounds: int) -> dict[str, float]:
    """The best wall time in seconds of each contender's ``run`` over ``rounds`` rounds."""
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(rounds):
        for name, (prepare, run) in contenders.items():
            work = prepare()
            gc.collect()
            started = time.perf_counter()
            run(work)
            best[name] = min(best[name], time.perf_counter() - started)
    return best
