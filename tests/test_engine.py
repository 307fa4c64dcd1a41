"""The compiled python-statemachine class: generated ids, caching, registry."""

from __future__ import annotations

import gc

from statemachine import registry

from salespipeline import Pipeline, Stage, _engine, presets


def test_state_ids_are_generated_not_stage_names() -> None:
    pipeline = presets.seven_stage(labels="ko")
    ids = {s.id for s in pipeline._graph.machine.states}
    assert ids == {"s0", "s1", "s2", "s3", "s4", "s5", "s6", "sW", "sL"}


def test_one_class_per_shape_is_shared() -> None:
    a = Pipeline("a", [Stage("x", probability=0.1), Stage("y", probability=0.2)])
    b = Pipeline("b", [Stage("p", probability=0.5), Stage("q", probability=0.9)])
    assert a._graph is b._graph
    c = Pipeline("c", a.stages, allow_skip=True)
    assert c._graph is not a._graph


def test_registry_and_cache_stay_bounded_over_many_shapes() -> None:
    for n in range(1, 40):
        for skip in (False, True):
            for back in (False, True):
                _engine.compile_graph(n, allow_skip=skip, allow_back=back)
    gc.collect()
    names = [k for k in registry._REGISTRY if k.endswith("CompiledPipeline")]
    assert len(names) == 1
    assert _engine.compile_graph.cache_info().currsize <= 128


def test_targets_follow_the_graph_rules() -> None:
    graph = _engine.compile_graph(3, allow_skip=False, allow_back=True)
    won, lost = 3, 4
    assert graph.targets == (
        frozenset({1, lost}),
        frozenset({0, 2, lost}),
        frozenset({0, 1, won, lost}),
        frozenset(),
        frozenset({0, 1, 2}),
    )


def test_run_sends_through_a_real_machine() -> None:
    graph = _engine.compile_graph(3, allow_skip=False, allow_back=False)
    seen: list[int] = []
    assert _engine.run(graph, 0, 1, seen.append)
    assert seen == [1]
    assert not _engine.run(graph, 0, 2, seen.append)
    assert not _engine.run(graph, 3, 4, seen.append)  # WON is final
