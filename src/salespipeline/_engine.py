"""Compiles a pipeline's transition graph into a python-statemachine class.

The class is the one source of truth for which moves exist. It depends only on the
graph's shape (number of open stages, skip and back policy), so it is compiled once
per shape and cached; guards are reached through a validator that asks the
pipeline, so one class serves every pipeline of that shape. State ids and values
are generated (``s0``, ``s1``…, ``won``, ``lost`` become ``sW``, ``sL``): stage names
and labels never become python-statemachine identifiers.

The hot path reads the class's adjacency once into ``Graph.targets``; a property
test proves that table and the class agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import attrs
from statemachine import State, StateMachine
from statemachine.exceptions import TransitionNotAllowed

WON_ID = "sW"
LOST_ID = "sL"
_VALIDATOR = "_salespipeline_guard"


def state_id(index: int, n_open: int) -> str:
    """The generated state id of stage ``index`` (``n_open`` is WON, ``n_open+1`` LOST)."""
    if index == n_open:
        return WON_ID
    if index == n_open + 1:
        return LOST_ID
    return f"s{index}"


def edges(n_open: int, *, allow_skip: bool, allow_back: bool) -> Iterator[tuple[int, int]]:
    """The moves DESIGN.md allows, as (source, target) stage indexes."""
    won, lost = n_open, n_open + 1
    for i in range(n_open):
        for j in range(n_open):
            if j == i + 1 or (j > i + 1 and allow_skip) or (j < i and allow_back):
                yield i, j
        if i == n_open - 1 or allow_skip:
            yield i, won
        yield i, lost
    for j in range(n_open):
        yield lost, j


@attrs.frozen
class Graph:
    """A compiled shape: the machine class and the adjacency read back from it."""

    n_open: int
    allow_skip: bool
    allow_back: bool
    machine: type[StateMachine]
    targets: tuple[frozenset[int], ...]

    def allows(self, source: int, target: int) -> bool:
        return target in self.targets[source]


@lru_cache(maxsize=128)
def compile_graph(n_open: int, *, allow_skip: bool, allow_back: bool) -> Graph:
    """The compiled graph for this shape (cached: classes are costly and registered)."""
    machine = _build_class(n_open, allow_skip=allow_skip, allow_back=allow_back)
    return Graph(n_open, allow_skip, allow_back, machine, _read_targets(machine, n_open))


def _build_class(n_open: int, *, allow_skip: bool, allow_back: bool) -> type[StateMachine]:
    states = [
        State(
            state_id(i, n_open),
            value=state_id(i, n_open),
            initial=i == 0,
            final=i == n_open,
        )
        for i in range(n_open + 2)
    ]
    namespace: dict[str, Any] = {"__module__": __name__, "__qualname__": "CompiledPipeline"}
    namespace.update({state_id(i, n_open): s for i, s in enumerate(states)})
    events: dict[str, Any] = {}
    for source, target in edges(n_open, allow_skip=allow_skip, allow_back=allow_back):
        transition = states[source].to(states[target], validators=_VALIDATOR)
        name = f"to_{state_id(target, n_open)}"
        events[name] = events[name] | transition if name in events else transition
    namespace.update(events)
    # One class name for every shape: the library's global registry keeps one entry.
    metaclass: Any = type(StateMachine)
    machine: type[StateMachine] = metaclass("CompiledPipeline", (StateMachine,), namespace)
    return machine


def _read_targets(machine: type[StateMachine], n_open: int) -> tuple[frozenset[int], ...]:
    index = {state_id(i, n_open): i for i in range(n_open + 2)}
    by_state = {s.id: s for s in machine.states}
    return tuple(
        frozenset(index[t.target.id] for t in by_state[state_id(i, n_open)].transitions)
        for i in range(n_open + 2)
    )


class _Subject:
    """The model a machine instance drives: the stage id plus the guard callback."""

    def __init__(self, state: str, guard: Callable[[int], None], index: dict[str, int]) -> None:
        self.state = state
        self._guard = guard
        self._index = index

    def _salespipeline_guard(self, target: State) -> None:
        self._guard(self._index[target.id])


def run(graph: Graph, source: int, target: int, guard: Callable[[int], None]) -> bool:
    """Send one move through a real machine instance; False when the graph has no such move.

    ``guard(target)`` runs as the transition's validator and raises to refuse. Slow
    (one machine per call): for tests and tools, not the hot path.
    """
    n = graph.n_open
    index = {state_id(i, n): i for i in range(n + 2)}
    subject = _Subject(state_id(source, n), guard, index)
    machine = graph.machine(model=subject, state_field="state")
    if target == source:
        return False
    try:
        machine.send(f"to_{state_id(target, n)}")
    except TransitionNotAllowed:
        return False
    return subject.state == state_id(target, n)
