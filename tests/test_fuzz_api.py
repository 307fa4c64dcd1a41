"""Hostile input to the pure API: only SalesPipelineError subclasses come out.

Random values of every kind (wrong types, huge/negative/NaN amounts, naive datetimes,
unknown stages, empty and very long ids, Unicode and quote characters) are thrown at
every public operation; a refused call must leave its input deal unchanged.
"""

from __future__ import annotations

import inspect
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from salespipeline import (
    Bant,
    Deal,
    Pipeline,
    SalesPipelineError,
    Stage,
    guards,
    presets,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
PIPELINE = presets.seven_stage()
BASE = PIPELINE.start("base", amount="100", at=T0)

nasty_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", " ", "'); DROP TABLE deals;--", '"', "\x00", "제안", "won", "lost"]),
    st.just("x" * 10_000),
    st.sampled_from(PIPELINE.stage_names),
)
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    nasty_text,
    st.datetimes(),  # naive
    st.datetimes(timezones=st.just(timezone.utc)),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.just(object()),
    st.just(Bant()),
    st.timedeltas(),
)


def _refused_or_ok(call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except SalesPipelineError:
        return None


@settings(max_examples=300)
@given(
    st.sampled_from(["move", "advance", "win", "lose", "reopen", "check", "moves", "probability"]),
    st.lists(anything, max_size=2),
    st.dictionaries(st.sampled_from(["at", "reason", "to"]), anything, max_size=2),
)
def test_operations_only_raise_typed_errors(name: str, args: list[Any], kwargs: Any) -> None:
    deal = BASE
    snapshot = (deal.stage, deal.version, deal.history)
    operation = getattr(PIPELINE, name)
    try:
        inspect.signature(operation).bind(deal, *args, **kwargs)
    except TypeError:
        assume(False)  # a call Python itself refuses is not a call of our API
    _refused_or_ok(operation, deal, *args, **kwargs)
    assert (deal.stage, deal.version, deal.history) == snapshot


@settings(max_examples=300)
@given(
    nasty_text,
    st.dictionaries(
        st.sampled_from(["amount", "currency", "bant", "fields", "probability", "at"]),
        anything,
        max_size=4,
    ),
)
def test_start_only_raises_typed_errors(deal_id: Any, kwargs: dict[str, Any]) -> None:
    deal = _refused_or_ok(PIPELINE.start, deal_id, **kwargs)
    if deal is not None:
        assert isinstance(deal, Deal)
        assert isinstance(deal.amount, Decimal)
        assert deal.created_at.tzinfo is timezone.utc


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(
            ["amount", "currency", "bant", "fields", "probability", "next_action", "stage", "x"]
        ),
        anything,
        min_size=1,
        max_size=3,
    )
)
def test_evolve_only_raises_typed_errors(changes: dict[str, Any]) -> None:
    changed = _refused_or_ok(BASE.evolve, **changes)
    if changed is not None:
        assert changed.version == BASE.version + 1
        assert changed.stage == BASE.stage


@settings(max_examples=300)
@given(
    anything,
    st.lists(
        st.builds(
            lambda name, p, rot: (name, p, rot),
            nasty_text,
            anything,
            st.one_of(st.none(), st.timedeltas(min_value=timedelta(days=-3))),
        ),
        max_size=4,
    ),
    st.dictionaries(
        st.sampled_from(["allow_skip", "allow_back", "lost_reasons", "version"]),
        anything,
        max_size=3,
    ),
)
def test_definitions_only_raise_typed_errors(
    name: Any, raw_stages: list[tuple[Any, Any, Any]], options: dict[str, Any]
) -> None:
    try:
        stages = [Stage(n, probability=p, rot_after=r) for n, p, r in raw_stages]
        pipeline = Pipeline(name, stages, **options)
    except SalesPipelineError:
        return
    deal = pipeline.start("d", at=T0)
    assert deal.stage == pipeline.stages[0].name


@settings(max_examples=200)
@given(st.sampled_from(["bant", "requires_fields", "min_amount", "all_of", "any_of"]), anything)
def test_guard_factories_only_raise_typed_errors(factory: str, argument: Any) -> None:
    guard = _refused_or_ok(getattr(guards, factory), argument)
    if guard is not None:
        violations = _refused_or_ok(guard, BASE)
        assert violations is None or isinstance(violations, tuple)
