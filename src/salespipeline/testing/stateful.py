"""``PipelineStateMachine``: hypothesis drives your pipeline and checks its promises.

Subclass it, set ``pipeline = ...`` (and optionally ``store = ...``), and expose
``TestMyPipeline = MyMachine.TestCase``. Hypothesis then starts deals, moves, wins,
loses, reopens and updates them in random order, with time moving forward on a fake
clock, and shrinks any broken promise to a short story. After the run, the test case
checks that every stage was entered (``StageCoverage``).
"""

from __future__ import annotations

import copy
import functools
import itertools
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    TestCaseProperty,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from salespipeline.deal import Deal, StageChange
from salespipeline.errors import (
    GuardError,
    SalesPipelineError,
    StageBlockedError,
    TransitionNotAllowedError,
    ValidationError,
)
from salespipeline.guards import AllOf, AnyOf, BantGuard, Guard, MinAmount, RequiresFields
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON
from salespipeline.testing.strategies import (
    _TEXT,
    LOST_REASONS,
    _probe,
    _satisfying_changes,
    _updates,
    amounts,
    bants,
    fields,
)

if TYPE_CHECKING:
    from hypothesis.stateful import _StateMachineTestCase

__all__ = [
    "Entry",
    "FakeClock",
    "PipelineStateMachine",
    "Satisfy",
    "StageCoverage",
    "UnreachedStageWarning",
]

Satisfy = Mapping[str, st.SearchStrategy[Mapping[str, Any]]]
"""Guard name -> a strategy of ``deal.evolve(...)`` keyword arguments that pass that guard."""

_START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
_TERMINAL_PROBABILITY = {WON: 1.0, LOST: 0.0}
_MICROSECOND = timedelta(microseconds=1)
_YEAR = timedelta(days=365)
_MOVE_FIELDS = frozenset(
    {"stage", "stage_entered_at", "closed_at", "lost_reason", "updated_at", "version"}
)
_START_KEYS = frozenset({"amount", "currency", "bant", "fields", "probability"})
_BUILT_IN = (BantGuard, RequiresFields, MinAmount)
_GUIDE = '"Stages behind custom guards" in docs/how-to/property-testing.md'


class FakeClock:
    """A clock that stands still until advanced; it never runs backwards."""

    def __init__(self, start: datetime = _START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        """Move time forward by ``delta`` (zero allowed, negative refused)."""
        if delta < timedelta(0):
            raise ValueError(f"a FakeClock only moves forward, not by {delta}")
        self.now += delta


class UnreachedStageWarning(UserWarning):
    """A run never entered a stage that nothing blocks: more examples or steps may reach it."""


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names)


@attrs.frozen
class StageCoverage:
    """How often one run of a machine entered each stage, and which guards kept stages out.

    ``blocked`` maps a stage to the guards on it the machine has no way to pass: not
    built in, and not named in the machine's ``satisfy``.
    """

    machine: str
    examples: int
    entered: Mapping[str, int]
    blocked: Mapping[str, tuple[str, ...]]

    @property
    def unreached(self) -> tuple[str, ...]:
        """The stages no example entered, in pipeline order."""
        return tuple(name for name, count in self.entered.items() if count == 0)

    def check(self) -> None:
        """Fail if a guard the machine cannot pass kept a stage out; warn of other gaps."""
        missing = self.unreached
        if not missing or not self.examples:
            return
        stuck = {name: self.blocked[name] for name in missing if name in self.blocked}
        if stuck:
            raise AssertionError(self._stuck_message(missing, stuck))
        warnings.warn(
            f"{self.machine} never entered {_quoted(missing)} in {self.examples} examples; "
            "more max_examples or stateful_step_count (hypothesis settings) may reach it",
            UnreachedStageWarning,
            stacklevel=2,
        )

    def _stuck_message(
        self, missing: tuple[str, ...], stuck: Mapping[str, tuple[str, ...]]
    ) -> str:
        where = "; ".join(f"{_quoted(names)} on {stage!r}" for stage, names in stuck.items())
        first = next(iter(stuck.values()))[0]
        noun = "guard" if sum(map(len, stuck.values())) == 1 else "guards"
        return (
            f"{self.machine} never entered {_quoted(missing)} in {self.examples} examples: "
            f"it has no way to pass the custom {noun} {where}. Give it one with "
            f"satisfy = {{{first!r}: <a strategy of deal.evolve() updates that pass it>}}, "
            "for example st.fixed_dictionaries({'fields': st.fixed_dictionaries({...})}) "
            f"(see {_GUIDE})"
        )


def _unmet(guard: Guard, satisfy: Mapping[str, object]) -> tuple[str, ...]:
    """The guards inside ``guard`` the machine has no way to pass (empty: it has one)."""
    if guard.name in satisfy or isinstance(guard, _BUILT_IN):
        return ()
    if isinstance(guard, AllOf):
        return tuple(name for inner in guard.guards for name in _unmet(inner, satisfy))
    if isinstance(guard, AnyOf):
        options = [_unmet(inner, satisfy) for inner in guard.guards]
        return () if () in options else tuple(name for o in options for name in o)
    return (guard.name,)


def _blocked(pipeline: Pipeline, satisfy: Mapping[str, object]) -> dict[str, tuple[str, ...]]:
    """Stage -> the guards on it that neither the built-in qualifier nor ``satisfy`` pass."""
    found = {}
    for stage in pipeline.stages:
        names = tuple(dict.fromkeys(n for g in stage.requires for n in _unmet(g, satisfy)))
        if names:
            found[stage.name] = names
    return found


def _named(requires: Iterable[Guard], satisfy: Mapping[str, object]) -> list[str]:
    """The guards in ``requires`` (combinations searched) that ``satisfy`` has an entry for."""
    found: list[str] = []
    for guard in requires:
        if guard.name in satisfy:
            found.append(guard.name)
        elif isinstance(guard, (AllOf, AnyOf)):
            found.extend(_named(guard.guards, satisfy))
    return list(dict.fromkeys(found))


def _guard_names(requires: Iterable[Guard]) -> Iterable[str]:
    for guard in requires:
        yield guard.name
        if isinstance(guard, (AllOf, AnyOf)):
            yield from _guard_names(guard.guards)


def _check_satisfy(machine: type[PipelineStateMachine]) -> None:
    """Refuse a ``satisfy`` that is not guard name -> strategy, or names no guard."""
    satisfy = machine.satisfy
    if not isinstance(satisfy, Mapping) or not all(
        isinstance(k, str) and isinstance(v, st.SearchStrategy) for k, v in satisfy.items()
    ):
        raise TypeError(
            f"{machine.__name__}: set `satisfy = {{guard name: a strategy of deal.evolve() "
            f"updates}}`, not {satisfy!r}"
        )
    chosen = machine.pipeline
    if isinstance(chosen, Pipeline):
        known = set(_guard_names(g for s in chosen.stages for g in s.requires))
        unknown = sorted(set(satisfy) - known)
        if unknown:
            raise TypeError(
                f"{machine.__name__}.satisfy names {_quoted(unknown)}, but no stage of "
                f"{chosen.name!r} requires a guard of that name "
                f"(its guards: {_quoted(sorted(known))})"
            )


def _merge(changes: dict[str, Any], update: object, name: str, fields: Mapping[str, Any]) -> None:
    """Add one drawn ``satisfy`` update to ``changes``; ``fields`` merge into ``fields``."""
    if not isinstance(update, Mapping) or not isinstance(update.get("fields", {}), Mapping):
        raise TypeError(
            f"satisfy[{name!r}] must draw a dict of deal.evolve() keyword arguments "
            f"(with fields as a dict), not {update!r}"
        )
    for key, value in update.items():
        changes[key] = {**changes.get("fields", fields), **value} if key == "fields" else value


class _CoverageCheckedTestCase(TestCaseProperty):
    """Hypothesis' ``TestCase`` for a machine, checking its ``coverage()`` after each run."""

    def __get__(
        self, obj: RuleBasedStateMachine | None, typ: type[RuleBasedStateMachine] | None = None
    ) -> type[_StateMachineTestCase]:
        machine = type(obj) if obj is not None else typ
        assert machine is not None and issubclass(machine, PipelineStateMachine)
        return _checked_test_case(machine)


@functools.cache
def _checked_test_case(machine: type[PipelineStateMachine]) -> type[_StateMachineTestCase]:
    base = TestCaseProperty().__get__(None, machine)

    class TestCase(base):  # type: ignore[valid-type,misc]
        def runTest(self) -> None:
            machine._reset_coverage()
            super().runTest()
            machine.coverage().check()

    TestCase.runTest.is_hypothesis_test = True  # type: ignore[attr-defined]
    TestCase.runTest._hypothesis_state_machine_class = machine  # type: ignore[attr-defined]
    TestCase.__name__, TestCase.__qualname__ = base.__name__, base.__qualname__
    return TestCase


class _Store(Protocol):
    def add(self, deal: Deal, /) -> Any: ...
    def get(self, deal_id: str, /) -> Deal: ...
    def save(self, deal: Deal, /) -> Any: ...


@attrs.frozen
class Entry:
    """A stage a deal entered, and what its guards said about the deal at that moment."""

    deal_id: str
    stage: str
    version: int
    refusals: tuple[str, ...]


def _refusals(requires: tuple[Guard, ...], deal: Deal) -> tuple[str, ...]:
    """Why ``requires`` refuse ``deal``, asked of the guards directly, not via the pipeline."""
    found: list[str] = []
    for guard in requires:
        try:
            found.extend(v.message for v in guard(deal))
        except Exception as error:
            found.append(f"guard {guard.name!r} raised {error!r}")
    return tuple(found)


def _outcome(operation: Callable[[], Deal]) -> Deal | SalesPipelineError:
    """The deal an operation returns, or the refusal it raises (any other error escapes)."""
    try:
        return operation()
    except SalesPipelineError as refused:
        return refused


def _policy_allows(pipeline: Pipeline, source: str, target: str) -> bool:
    """Whether the documented move rules have ``source -> target`` (guards aside)."""
    open_names = [s.name for s in pipeline.stages]
    last = len(open_names) - 1
    if source in (WON, target):
        return False
    if source == LOST:
        return target in open_names
    if target == LOST:
        return True
    i = open_names.index(source)
    if target == WON:
        return pipeline.allow_skip or i == last
    j = open_names.index(target)
    if j == i + 1:
        return True
    return pipeline.allow_skip if j > i else pipeline.allow_back


def _machine_strategy(pick: Callable[[PipelineStateMachine], list[str]]) -> st.SearchStrategy[str]:
    return st.runner().flatmap(lambda machine: st.sampled_from(pick(machine)))


def _stage_names() -> st.SearchStrategy[str]:
    return _machine_strategy(lambda m: list(m.subject.stage_names))


def _reasons() -> st.SearchStrategy[str]:
    return _machine_strategy(lambda m: list(m.subject.lost_reasons or LOST_REASONS))


def _walk_lengths() -> st.SearchStrategy[int]:
    return st.runner().flatmap(lambda machine: _lengths(len(machine.subject.stages)))


@functools.cache
def _lengths(stages: int) -> st.SearchStrategy[int]:
    """How many stages a walk goes: any number, and often all the way to WON."""
    return st.integers(1, stages) | st.just(stages)


def _next_stage(pipeline: Pipeline, stage: str) -> str | None:
    """Where advancing leads from ``stage``: the next open stage, WON after the last, or None."""
    open_names = [s.name for s in pipeline.stages]
    if stage not in open_names:
        return None
    i = open_names.index(stage)
    return open_names[i + 1] if i + 1 < len(open_names) else WON


def _bad_reasons() -> st.SearchStrategy[str]:
    def pick(machine: PipelineStateMachine) -> list[str]:
        listed = machine.subject.lost_reasons
        unlisted = [] if listed is None else ["-".join(("unlisted", *listed))]
        return ["", "   ", *unlisted]

    return _machine_strategy(pick)


_START_VALUES = st.fixed_dictionaries(
    {"amount": amounts(), "bant": bants(), "fields": fields()},
    optional={"probability": st.floats(0, 1), "currency": st.sampled_from(("EUR", "KRW"))},
)


def _has_room(machine: PipelineStateMachine) -> bool:
    """Whether the run may start another deal (``max_deals`` bounds them)."""
    return len(machine.deals) < machine.max_deals


_START_DRAWN = st.runner().flatmap(lambda machine: machine._start_values())
"""What ``start`` and ``start_ahead`` pass: the machine's own start values."""


class PipelineStateMachine(RuleBasedStateMachine):
    """Drives ``pipeline`` with random operations and checks its promises after each.

    Set ``pipeline`` on your subclass (a ``Pipeline``, or a strategy such as
    ``strategies.pipelines()`` to test many); set ``store`` to a zero-argument factory
    of a deal store to also save every change there and compare it with the model;
    ``max_deals`` bounds how many deals one run starts (deeper walks, not wider);
    ``satisfy`` tells the machine how to pass custom guards (see ``Satisfy``).
    """

    pipeline: ClassVar[Pipeline | st.SearchStrategy[Pipeline]]
    store: ClassVar[Callable[[], _Store] | None] = None
    max_deals: ClassVar[int] = 4
    satisfy: ClassVar[Satisfy] = {}

    deal_ids = Bundle("deal_ids")
    TestCase = _CoverageCheckedTestCase()
    _entered: ClassVar[Counter[str]] = Counter()
    _examples: ClassVar[int] = 0

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__(**options)
        cls._reset_coverage()

    def __init__(self) -> None:
        super().__init__()
        machine = type(self)
        if not isinstance(getattr(machine, "pipeline", None), (Pipeline, st.SearchStrategy)):
            raise TypeError(
                f"{machine.__name__}: set `pipeline = <a Pipeline>` (or a strategy of "
                "pipelines) on the class"
            )
        _check_satisfy(machine)
        machine._examples += 1
        self.subject: Pipeline
        self.clock = FakeClock()
        self.deals: dict[str, Deal] = {}
        self.changes: dict[str, int] = {}
        self.entries: list[Entry] = []
        self._requires: dict[str, tuple[Guard, ...]] = {}
        self._probabilities: dict[str, float] = {}
        factory = type(self).store
        self.deal_store: _Store | None = None if factory is None else factory()

    @classmethod
    def coverage(cls) -> StageCoverage:
        """How often the current (or last) run entered each stage of the class's pipeline.

        ``TestCase`` checks it after each run; after ``run_state_machine_as_test`` call
        ``coverage().check()`` yourself. A strategy of pipelines has no stages to count.
        """
        chosen = getattr(cls, "pipeline", None)
        if not isinstance(chosen, Pipeline):
            return StageCoverage(cls.__name__, cls._examples, {}, {})
        entered = {name: cls._entered[name] for name in chosen.stage_names}
        return StageCoverage(cls.__name__, cls._examples, entered, _blocked(chosen, cls.satisfy))

    @classmethod
    def _reset_coverage(cls) -> None:
        cls._entered, cls._examples = Counter(), 0

    @initialize(pipeline=st.runner().flatmap(lambda machine: machine._pipelines()))
    def use_pipeline(self, pipeline: Pipeline) -> None:
        """The pipeline under test: the class's own, or one drawn from its strategy.

        Also builds Hypothesis' Unicode tables for the text the rules draw, here, where
        the too_slow health check does not time it, rather than inside the first draw.
        """
        _TEXT.validate()
        self.subject = pipeline
        self._requires = {s.name: s.requires for s in pipeline.stages}
        self._probabilities = {s.name: s.probability for s in pipeline.stages}

    def _pipelines(self) -> st.SearchStrategy[Pipeline]:
        chosen = type(self).pipeline
        return st.just(chosen) if isinstance(chosen, Pipeline) else chosen

    def _lost_reason(self) -> str:
        return (self.subject.lost_reasons or LOST_REASONS)[0]

    def _start_values(self) -> st.SearchStrategy[dict[str, Any]]:
        """What ``start`` passes: random values, or with ``satisfy`` updates for stage one."""
        named = _named(self.subject.stages[0].requires, self.satisfy)
        if not named:
            return _START_VALUES
        updates = st.tuples(*(self.satisfy[name] for name in named))
        return _START_VALUES | st.tuples(_START_VALUES, updates).map(
            lambda drawn: _start_updated(drawn[0], zip(named, drawn[1], strict=True))
        )

    def _qualifying_changes(self, to: str, deal: Deal, data: st.DataObject) -> dict[str, Any]:
        """``evolve`` changes meant to let ``deal`` into ``to``: drawn from ``satisfy``, then
        the built-in qualifier's."""
        requires = self._requires.get(to, ())
        changes: dict[str, Any] = {}
        for name in _named(requires, self.satisfy):
            update = data.draw(self.satisfy[name], label=f"satisfy[{name!r}]")
            _merge(changes, update, name, deal.fields)
        candidate = _evolved(deal, changes, type(self).__name__)
        return {**changes, **(_satisfying_changes(requires, candidate) or {})}

    # -- rules -------------------------------------------------------------------

    @precondition(_has_room)
    @rule(
        target=deal_ids,
        values=_START_DRAWN,
        qualify=st.booleans(),
    )
    def start(self, values: dict[str, Any], qualify: bool) -> str | MultipleResults[str]:
        """Start a deal (sometimes qualified for the first stage); refused only by its guards."""
        deal_id, at = f"deal-{len(self.changes)}", self.clock.now
        first = self.subject.stages[0].name
        probe = _probe(self.subject, deal_id, at, **values)
        changes = _satisfying_changes(self._requires[first], probe) if qualify else None
        if changes:
            values = {**values, **changes}
            probe = _probe(self.subject, deal_id, at, **values)
        refusals = _refusals(self._requires[first], probe)
        deal = _outcome(lambda: self.subject.start(deal_id, at=at, **values))
        if isinstance(deal, SalesPipelineError):
            assert refusals, f"start() refused a deal that passes {first!r}'s guards: {deal}"
            return multiple()
        assert deal == probe, f"start() made {deal!r}, expected {probe!r}"
        self._enter(Entry(deal_id, first, 1, refusals))
        self.changes[deal_id] = 0
        self._commit(deal_id, deal, new=True)
        return deal_id

    @precondition(_has_room)
    @rule(
        target=deal_ids,
        values=_START_DRAWN,
        steps=_walk_lengths(),
        then_lose=st.booleans(),
        data=st.data(),
    )
    def start_ahead(
        self, values: dict[str, Any], steps: int, then_lose: bool, data: st.DataObject
    ) -> str | MultipleResults[str]:
        """Start a qualified deal, ``walk`` it ``steps`` stages, and sometimes lose it
        there: half of the runs open with this, so short runs reach the last stages."""
        started = self.start(values, qualify=True)
        if isinstance(started, str):
            self.walk(started, steps, data)
            if then_lose and self.deals[started].stage != WON:
                self.lose(started, data.draw(_reasons(), label="reason"))
        return started

    @rule(deal_id=deal_ids, to=_stage_names(), reason=st.none() | _reasons())
    def move(self, deal_id: str, to: str, reason: str | None) -> None:
        """Move to any stage, allowed or not, sometimes with a reason."""
        if to == LOST and reason is None:
            reason = self._lost_reason()
        self.attempt(
            deal_id, to, lambda d, at: self.subject.move(d, to, at=at, reason=reason), reason
        )

    @rule(deal_id=deal_ids, data=st.data())
    def move_along(self, deal_id: str, data: st.DataObject) -> None:
        """A move the graph has, the deal first qualified for it where built-in guards allow."""
        deal = self.deals[deal_id]
        targets = [
            t for t in self.subject.stage_names if _policy_allows(self.subject, deal.stage, t)
        ]
        if not targets:
            return
        to = data.draw(st.sampled_from(targets), label="to")
        changes = self._qualifying_changes(to, deal, data)
        if changes:
            self._evolve(deal_id, changes)
        why = data.draw(_reasons(), label="reason") if to == LOST else None
        self.attempt(deal_id, to, lambda d, at: self.subject.move(d, to, at=at, reason=why), why)

    @rule(deal_id=deal_ids)
    def advance(self, deal_id: str) -> None:
        open_names = [s.name for s in self.subject.stages]
        stage = self.deals[deal_id].stage
        i = open_names.index(stage) if stage in open_names else len(open_names)
        target = open_names[i + 1] if i + 1 < len(open_names) else None
        self.attempt(deal_id, target, lambda d, at: self.subject.advance(d, at=at))

    @rule(deal_id=deal_ids, steps=_walk_lengths(), data=st.data())
    def walk(self, deal_id: str, steps: int, data: st.DataObject) -> None:
        """Qualify and advance up to ``steps`` stages, winning from the last: deep stages
        in one step, so short runs reach them too. Stops at the first refusal."""
        for _ in range(steps):
            target = _next_stage(self.subject, self.deals[deal_id].stage)
            if target is None or not self._walk_into(deal_id, target, data):
                return

    def _walk_into(self, deal_id: str, target: str, data: st.DataObject) -> bool:
        """Qualify the deal for ``target``, then advance (or win) into it; whether it moved."""
        changes = self._qualifying_changes(target, self.deals[deal_id], data)
        if changes:
            self._evolve(deal_id, changes)
        move = self.subject.win if target == WON else self.subject.advance
        self.attempt(deal_id, target, lambda d, at: move(d, at=at))
        return self.deals[deal_id].stage == target

    @rule(deal_id=deal_ids)
    def win(self, deal_id: str) -> None:
        self.attempt(deal_id, WON, lambda d, at: self.subject.win(d, at=at))

    @rule(deal_id=deal_ids, reason=_reasons())
    def lose(self, deal_id: str, reason: str) -> None:
        self.attempt(deal_id, LOST, lambda d, at: self.subject.lose(d, reason, at=at), reason)

    @rule(deal_id=deal_ids, reason=_bad_reasons())
    def lose_without_a_valid_reason(self, deal_id: str, reason: str) -> None:
        """Lose with a blank or unlisted reason: always refused."""
        lose = self.subject.lose
        self.attempt(deal_id, LOST, lambda d, at: lose(d, reason, at=at), reason, valid=False)

    @rule(deal_id=deal_ids, to=st.none() | _stage_names())
    def reopen(self, deal_id: str, to: str | None) -> None:
        """Reopen (to a stage, or where it was lost); refused unless the deal is lost."""
        deal = self.deals[deal_id]
        target = (to or deal.history[-1].from_stage) if deal.stage == LOST else None
        self.attempt(deal_id, target, lambda d, at: self.subject.reopen(d, to, at=at))

    @rule(deal_id=deal_ids, to=_stage_names(), before=st.timedeltas(_MICROSECOND, _YEAR))
    def move_back_in_time(self, deal_id: str, to: str, before: timedelta) -> None:
        """Move dated before the deal's last change: always refused."""
        at = self.deals[deal_id].history[-1].at - before
        why = self._lost_reason() if to == LOST else None
        move = self.subject.move
        self.attempt(deal_id, to, lambda d, _: move(d, to, at=at, reason=why), why, valid=False)

    @rule(deal_id=deal_ids, changes=_updates())
    def update(self, deal_id: str, changes: dict[str, Any]) -> None:
        """Change the amount, BANT, fields or probability with ``evolve``."""
        self._evolve(deal_id, changes)

    @rule(deal_id=deal_ids, to=_stage_names(), data=st.data())
    def qualify_for(self, deal_id: str, to: str, data: st.DataObject) -> None:
        """Change the deal with ``evolve`` so that it passes ``to``'s guards (built-in or
        named in ``satisfy``)."""
        changes = self._qualifying_changes(to, self.deals[deal_id], data)
        if changes:
            self._evolve(deal_id, changes)

    @rule(delta=st.timedeltas(timedelta(0), timedelta(days=30)))
    def tick(self, delta: timedelta) -> None:
        """Let time pass on the fake clock."""
        self.clock.advance(delta)

    # -- invariants --------------------------------------------------------------

    @invariant()
    def deals_are_in_stages_of_the_pipeline(self) -> None:
        for deal in self.deals.values():
            assert deal.pipeline == self.subject.name, f"{deal.id}: pipeline {deal.pipeline!r}"
            assert deal.stage in self.subject.stage_names, f"{deal.id}: stage {deal.stage!r}"

    @invariant()
    def probabilities_are_as_documented(self) -> None:
        for deal in self.deals.values():
            expected = _TERMINAL_PROBABILITY.get(deal.stage)
            if expected is None:
                own = deal.probability
                expected = self._probabilities[deal.stage] if own is None else own
            actual = self.subject.probability(deal)
            assert actual == expected, f"{deal.id}: probability {actual}, expected {expected}"

    @invariant()
    def versions_rise_by_one_per_change(self) -> None:
        for deal_id, deal in self.deals.items():
            expected = 1 + self.changes[deal_id]
            assert deal.version == expected, f"{deal_id}: version {deal.version} != {expected}"

    @invariant()
    def histories_are_unbroken_chains(self) -> None:
        for deal in self.deals.values():
            problem = _chain_problem(deal)
            assert problem is None, f"{deal.id}: {problem}"

    @invariant()
    def won_is_final(self) -> None:
        for deal in self.deals.values():
            stages = [change.to_stage for change in deal.history]
            if WON in stages:
                assert stages.index(WON) == len(stages) - 1, f"{deal.id} left WON: {stages}"
                assert self.subject.moves(deal) == (), f"{deal.id}: WON deal has moves"

    @invariant()
    def no_deal_entered_a_stage_its_guards_refused(self) -> None:
        for entry in self.entries:
            assert not entry.refusals, (
                f"{entry.deal_id} entered {entry.stage!r} (v{entry.version}) although its "
                f"guards refused: {'; '.join(entry.refusals)}"
            )

    @invariant()
    def store_matches_the_model(self) -> None:
        if self.deal_store is None:
            return
        for deal_id, deal in self.deals.items():
            stored = self.deal_store.get(deal_id)
            assert stored == deal, f"{deal_id}: store has {stored!r}, model has {deal!r}"

    def teardown(self) -> None:
        close = getattr(self.deal_store, "close", None)
        if callable(close):
            close()

    # -- checked operations (also for your own rules) ---------------------------

    def attempt(
        self,
        deal_id: str,
        target: str | None,
        operation: Callable[[Deal, datetime], Deal],
        reason: str | None = None,
        *,
        valid: bool = True,
    ) -> None:
        """Run ``operation(deal, now)`` on a modelled deal and check what it did.

        ``target`` is where it moves the deal if allowed (None: it must be refused),
        ``reason`` the lost reason it records; ``valid=False`` marks arguments that
        must be refused (a bad reason, a past time). Use it in your own rules.
        """
        before = self.deals[deal_id]
        snapshot = copy.deepcopy(before)
        allowed = target is not None and self._check_agrees_with_moves(before, target)
        after = _outcome(lambda: operation(before, self.clock.now))
        if isinstance(after, SalesPipelineError):
            assert before == snapshot, f"a refused operation changed its input deal: {after}"
            self._assert_fair_refusal(before, target, after, allowed=allowed, valid=valid)
            return
        assert before == snapshot, f"an operation changed its input deal {deal_id}"
        assert valid, f"{deal_id}: an invalid operation to {target!r} succeeded"
        assert target is not None, f"{deal_id}: an operation succeeded from {before.stage!r}"
        assert allowed, f"{deal_id}: moved to {target!r} although check() refused it"
        self._accept(before, after, target, reason)

    def _check_agrees_with_moves(self, deal: Deal, target: str) -> bool:
        allowed = self.subject.check(deal, target) == ()
        listed = target in self.subject.moves(deal)
        assert allowed == listed, (
            f"{deal.id} in {deal.stage!r}: check() says {allowed} but moves() says {listed} "
            f"for {target!r}"
        )
        return allowed

    def _assert_fair_refusal(
        self,
        deal: Deal,
        target: str | None,
        refused: SalesPipelineError,
        *,
        allowed: bool,
        valid: bool,
    ) -> None:
        where = f"{deal.id} {deal.stage!r} -> {target!r}"
        assert not (valid and allowed), f"{where}: refused although check() allowed it: {refused}"
        if target is None or not _policy_allows(self.subject, deal.stage, target):
            assert isinstance(refused, TransitionNotAllowedError), f"{where}: {refused!r}"
            return
        refusals = _refusals(self._requires.get(target, ()), deal)
        if not refusals:
            assert not valid, f"{where}: refused although the move exists and guards pass"
            assert isinstance(refused, ValidationError), f"{where}: {refused!r}"
        elif valid and isinstance(refused, StageBlockedError):
            reported = tuple(v.message for v in refused.violations)
            assert reported == refusals, f"{where}: reported {reported}, guards say {refusals}"
        elif valid:
            assert isinstance(refused, GuardError), f"{where}: {refused!r}"

    def _accept(self, before: Deal, after: Deal, target: str, reason: str | None) -> None:
        source, at = before.stage, self.clock.now
        where = f"{before.id} {source!r} -> {target!r}"
        assert _policy_allows(self.subject, source, target), f"{where}: no such move exists"
        assert after.stage == target, f"{where}: the deal is in {after.stage!r}"
        assert after.version == before.version + 1, f"{where}: version {after.version}"
        change = StageChange(before.id, source, target, at, after.version, reason)
        assert after.history == (*before.history, change), f"{where}: history {after.history}"
        closed = target in (WON, LOST)
        assert after.closed_at == (at if closed else None), f"{where}: closed_at"
        assert after.lost_reason == (reason if target == LOST else None), f"{where}: lost_reason"
        assert after.stage_entered_at == at, f"{where}: stage_entered_at"
        assert after.updated_at == at, f"{where}: updated_at"
        for name in _KEPT_FIELDS:
            assert getattr(after, name) == getattr(before, name), f"{where}: {name} changed"
        refusals = _refusals(self._requires.get(target, ()), before)
        self._enter(Entry(before.id, target, after.version, refusals))
        self._commit(before.id, after)

    def _enter(self, entry: Entry) -> None:
        self.entries.append(entry)
        type(self)._entered[entry.stage] += 1

    def _evolve(self, deal_id: str, changes: dict[str, Any]) -> None:
        before = self.deals[deal_id]
        after = before.evolve(**changes)
        assert after.version == before.version + 1, f"{deal_id}: evolve gave v{after.version}"
        assert after.history == before.history, f"{deal_id}: evolve changed the history"
        assert after.stage == before.stage, f"{deal_id}: evolve changed the stage"
        self._commit(deal_id, after)

    def _commit(self, deal_id: str, deal: Deal, *, new: bool = False) -> None:
        if not new:
            self.changes[deal_id] += 1
        self.deals[deal_id] = deal
        if self.deal_store is not None:
            (self.deal_store.add if new else self.deal_store.save)(deal)


def _start_updated(values: dict[str, Any], updates: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """``values`` for ``start`` with ``satisfy`` updates for the first stage merged in."""
    changes: dict[str, Any] = {}
    for name, update in updates:
        _merge(changes, update, name, values["fields"])
    refused = sorted(set(changes) - _START_KEYS)
    if refused:
        raise ValueError(
            f"satisfy for a first-stage guard may set only {_quoted(sorted(_START_KEYS))} "
            f"(what start() takes), not {_quoted(refused)}"
        )
    return {**values, **changes}


def _evolved(deal: Deal, changes: Mapping[str, Any], machine: str) -> Deal:
    """``deal`` with drawn ``satisfy`` changes, or a clear error naming the hook."""
    if not changes:
        return deal
    try:
        return deal.evolve(**changes)
    except ValidationError as refused:
        raise ValueError(
            f"{machine}.satisfy drew {dict(changes)!r}, which deal.evolve() refuses: {refused}"
        ) from refused


# What a stage move must leave as it was.
_KEPT_FIELDS = tuple(
    a.name for a in attrs.fields(Deal) if a.name not in _MOVE_FIELDS | {"history"}
)


def _chain_problem(deal: Deal) -> str | None:
    """Why ``deal.history`` is not an unbroken chain ending at its stage, or None."""
    history = deal.history
    if not history or history[0].from_stage is not None:
        return "the history must start with an entry from None"
    for previous, change in itertools.pairwise(history):
        if change.from_stage != previous.to_stage:
            return f"v{change.version} leaves {change.from_stage!r}, not {previous.to_stage!r}"
        if change.version <= previous.version:
            return f"versions do not rise: v{previous.version} then v{change.version}"
        if change.at < previous.at:
            return f"time runs backwards at v{change.version}"
    last = history[-1]
    if last.to_stage != deal.stage or last.at != deal.stage_entered_at:
        return f"the history ends in {last.to_stage!r}, the deal is in {deal.stage!r}"
    if last.version > deal.version or deal.created_at != history[0].at:
        return "the history does not match the deal's version or creation time"
    if (deal.closed_at is not None) != (deal.stage in (WON, LOST)):
        return f"closed_at is {deal.closed_at} in {deal.stage!r}"
    return None
