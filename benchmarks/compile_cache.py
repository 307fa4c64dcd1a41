"""Definition compile: the first compile of a shape against a cached one, and proof
that compiling many distinct definitions keeps memory flat.

A pipeline's python-statemachine class depends only on its shape (open stage count,
skip and back policy), so ``_engine.compile_graph`` caches one class per shape in a
bounded LRU cache, and every class carries the same name, so the library's global
registry holds one entry however many shapes are compiled.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
import weakref
from typing import Any

import attrs
from statemachine import registry

from salespipeline import Pipeline, Stage, _engine, guards

SHAPE = {"n_open": 7, "allow_skip": False, "allow_back": True}


@attrs.frozen
class CompileCost:
    """Seconds to compile a shape the first time, and to fetch it from the cache."""

    first: float
    cached: float
    pipeline_cached: float


@attrs.frozen
class Growth:
    """Memory kept after each batch of distinct definitions, and the cache's state."""

    definitions: int
    retained_bytes: tuple[int, ...]
    cache_size: int
    cache_max: int
    registry_entries: tuple[int, ...]
    evicted_class_freed: bool


def _seven_stages(tag: str) -> list[Stage]:
    return [Stage(f"{tag}_s{i}", probability=i / 10) for i in range(7)]


def compile_cost(*, rounds: int = 5, lookups: int = 10_000) -> CompileCost:
    """Best-of-``rounds`` cold compile of the 7-stage shape, and the cached costs."""
    first = float("inf")
    for _ in range(rounds):
        _engine.compile_graph.cache_clear()
        started = time.perf_counter()
        _engine.compile_graph(7, allow_skip=False, allow_back=True)
        first = min(first, time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(lookups):
        _engine.compile_graph(7, allow_skip=False, allow_back=True)
    cached = (time.perf_counter() - started) / lookups
    stages = _seven_stages("x")
    n_pipelines = max(1, lookups // 10)
    started = time.perf_counter()
    for _ in range(n_pipelines):
        Pipeline("warm", stages)
    return CompileCost(first, cached, (time.perf_counter() - started) / n_pipelines)


def distinct_definition(i: int) -> Pipeline:
    """Definition ``i``: its own name, stage names and guards; one of 16 shapes."""
    n_open = 3 + i % 4
    stages = [
        Stage(
            f"d{i}_stage{k}",
            label=f"Stage {k} of definition {i}",
            probability=k / n_open,
            requires=(guards.min_amount(i + k),) if k == n_open - 1 else (),
        )
        for k in range(n_open)
    ]
    return Pipeline(
        f"definition-{i}",
        stages,
        allow_skip=(i // 4) % 2 == 0,
        allow_back=(i // 8) % 2 == 0,
    )


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def growth(*, definitions: int = 1_000, batches: int = 4) -> Growth:
    """Build ``definitions`` distinct pipelines in batches, dropping each batch.

    Every batch of 16 or more definitions covers all 16 shapes, so the first batch
    fills the cache and the later ones should keep nothing more.
    """
    per_batch = definitions // batches
    retained: list[int] = []
    entries: list[int] = []
    tracemalloc.start()
    try:
        baseline = _traced()
        for batch in range(batches):
            built = [distinct_definition(batch * per_batch + i) for i in range(per_batch)]
            del built
            retained.append(_traced() - baseline)
            entries.append(len(registry._REGISTRY))
    finally:
        tracemalloc.stop()
    info = _engine.compile_graph.cache_info()
    return Growth(
        definitions=per_batch * batches,
        retained_bytes=tuple(retained),
        cache_size=info.currsize,
        cache_max=info.maxsize or 0,
        registry_entries=tuple(entries),
        evicted_class_freed=_evicted_class_is_freed(),
    )


def _evicted_class_is_freed() -> bool:
    """A class dropped from the cache is collected: nothing else keeps it alive."""
    graph: Any = _engine.compile_graph(2, allow_skip=True, allow_back=False)
    machine = weakref.ref(graph.machine)
    del graph
    _engine.compile_graph.cache_clear()
    _engine.compile_graph(7, allow_skip=False, allow_back=True)  # the registry moves on
    gc.collect()
    return machine() is None
