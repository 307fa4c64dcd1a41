"""Hypothesis strategies for pipelines, deals, BANT and moves, shipped for your own tests.

Every strategy shrinks towards the simplest case (few stages, no guards, a freshly
started deal, amounts of zero), so a failure reads as a short story. Deals are made
only by legal moves from ``pipeline.start``, so their history is real.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from salespipeline import _checks as c
from salespipeline import guards as g
from salespipeline.deal import BANT_CRITERIA, Bant, Deal, StageChange
from salespipeline.errors import StageBlockedError
from salespipeline.guards import AllOf, AnyOf, BantGuard, Guard, MinAmount, RequiresFields
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, STAGE_CATEGORIES, WON, Stage

__all__ = [
    "FIELD_NAMES",
    "LOST_REASONS",
    "amounts",
    "bants",
    "deals",
    "fields",
    "guards",
    "moves",
    "pipelines",
    "stage_names",
    "timestamps",
]

FIELD_NAMES: Final = ("use_case", "champion", "decision_date", "region")
"""The custom field names that generated guards require and generated deals carry."""

LOST_REASONS: Final = ("price", "timing", "competitor", "no_decision")
"""The lost reasons generated pipelines list, and generated deals give."""

# Stage names that would shadow python-statemachine's API if they became identifiers.
_TRICKY_NAMES: Final = ("send", "model", "states", "name", "id", "initial", "final", "events")
_LABELS: Final = ("제안/견적", "Proposal / quote", "Négociation", "リード")
# What stores can keep: any character but lone surrogates and NUL. Categories rather than
# codec="utf-8", whose table Hypothesis builds on first draw (seconds, cold).
_TEXT: Final = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
_ASCII: Final = st.characters(codec="ascii")
_CURRENCIES: Final = ("USD", "EUR", "KRW", "JPY")
_MAX_GUARD_AMOUNT: Final = 100_000
_EPOCH: Final = datetime(2000, 1, 1)
_END: Final = datetime(2100, 1, 1)


@functools.cache
def bants() -> st.SearchStrategy[Bant]:
    """Any BANT qualification; shrinks towards nothing confirmed."""
    b = st.booleans()
    return st.builds(Bant, budget=b, authority=b, need=b, timeline=b)


@functools.cache
def amounts(*, max_value: int = 10_000_000) -> st.SearchStrategy[Decimal]:
    """Non-negative Decimal amounts with two decimal places; shrinks towards zero."""
    return st.decimals(min_value=0, max_value=max_value, places=2)


@functools.cache
def timestamps() -> st.SearchStrategy[datetime]:
    """Timezone-aware UTC datetimes between 2000 and 2100."""
    return st.datetimes(min_value=_EPOCH, max_value=_END, timezones=st.just(timezone.utc))


@functools.cache
def fields() -> st.SearchStrategy[dict[str, Any]]:
    """Custom fields drawn from ``FIELD_NAMES``, with empty values (None, "", []) included."""
    leaves = st.one_of(
        st.none(),
        st.text(_TEXT, max_size=12),
        st.integers(-(10**6), 10**6),
        st.booleans(),
        st.lists(st.text(_TEXT, max_size=6), max_size=3),
    )
    return st.dictionaries(st.sampled_from(FIELD_NAMES), leaves, max_size=len(FIELD_NAMES))


@functools.cache
def stage_names() -> st.SearchStrategy[str]:
    """Valid stage names, including ones that are python-statemachine attribute names."""
    plain = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True, alphabet=_ASCII)
    return st.one_of(plain, st.sampled_from(_TRICKY_NAMES)).filter(lambda n: n not in (WON, LOST))


# Strategies a draw uses are built once, here, not inside every draw.
_CRITERIA: Final = st.lists(st.sampled_from(BANT_CRITERIA), min_size=1, unique=True)
_MIN_SCORES: Final = tuple(st.none() | st.integers(1, n) for n in range(1, len(BANT_CRITERIA) + 1))
_PROBABILITY: Final = st.floats(0, 1)
_PROBABILITY_OR_NONE: Final = st.none() | _PROBABILITY
_REASONS: Final = st.none() | st.lists(st.sampled_from(LOST_REASONS), min_size=1, unique=True)
_PIPELINE_NAMES: Final = st.from_regex(r"[a-z][a-z0-9_.\-]{0,15}", fullmatch=True, alphabet=_ASCII)
_VERSIONS: Final = st.integers(1, 3)
_POLICIES: Final = {None: st.booleans(), True: st.just(True), False: st.just(False)}
_CURRENCY: Final = st.sampled_from(_CURRENCIES)
_STEP_KINDS: Final = st.integers(0, 3)
_PAUSES: Final = st.timedeltas(timedelta(0), timedelta(days=60))
_OWNERS: Final = st.none() | st.sampled_from(("ana", "박지성", "sales-team-2"))
_CLOSE_DATES: Final = st.none() | st.dates(_EPOCH.date(), _END.date())
_CATEGORIES: Final = st.none() | st.sampled_from(STAGE_CATEGORIES)


@st.composite
def _bant_guard(draw: st.DrawFn) -> BantGuard:
    criteria = draw(_CRITERIA)
    return g.bant(*criteria, min_score=draw(_MIN_SCORES[len(criteria) - 1]))


@functools.cache
def _leaf_guards() -> st.SearchStrategy[Guard]:
    names = st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=2, unique=True)
    return st.one_of(
        _bant_guard(),
        names.map(lambda chosen: g.requires_fields(*chosen)),
        amounts(max_value=_MAX_GUARD_AMOUNT).map(g.min_amount),
    )


@functools.cache
def guards() -> st.SearchStrategy[Guard]:
    """Built-in guards: ``bant``, ``requires_fields``, ``min_amount``, and their combinations."""
    return st.recursive(
        _leaf_guards(),
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda gs: g.all_of(*gs)),
            st.lists(inner, min_size=1, max_size=3).map(lambda gs: g.any_of(*gs)),
        ),
        max_leaves=4,
    )


_GUARD_LISTS: Final = st.lists(guards(), max_size=2)


_LABEL_OR_NONE: Final = st.none() | st.sampled_from(_LABELS)
_ROT_DAYS: Final = st.none() | st.integers(1, 90)


@functools.cache
def _integers(lowest: int, highest: int) -> st.SearchStrategy[int]:
    return st.integers(lowest, highest)


@functools.cache
def _name_lists(min_stages: int, max_stages: int) -> st.SearchStrategy[list[str]]:
    return st.lists(stage_names(), min_size=min_stages, max_size=max_stages, unique=True)


def _stages(draw: st.DrawFn, names: Sequence[str], with_guards: bool) -> list[Stage]:
    probabilities = [draw(_PROBABILITY) for _ in names]
    if draw(_POLICIES[None]):
        probabilities.sort()
    stages = []
    for name, probability in zip(names, probabilities, strict=True):
        requires = draw(_GUARD_LISTS) if with_guards else []
        label, days = draw(_LABEL_OR_NONE), draw(_ROT_DAYS)
        rot_after = None if days is None else timedelta(days=days)
        options: dict[str, Any] = {} if label is None else {"label": label}
        stages.append(
            Stage(name, probability=probability, requires=requires, rot_after=rot_after, **options)
        )
    return stages


@st.composite
def pipelines(
    draw: st.DrawFn,
    min_stages: int = 2,
    max_stages: int = 12,
    *,
    allow_skip: bool | None = None,
    allow_back: bool | None = None,
    guards: bool = True,
) -> Pipeline:
    """Valid pipelines of ``min_stages``-``max_stages`` open stages.

    ``allow_skip`` / ``allow_back`` left as None are drawn at random; with ``guards``
    stages get random built-in guards (see ``guards()``). Probabilities may or may not
    rise; ``lost_reasons`` is drawn from ``LOST_REASONS`` or left None.
    """
    if not 1 <= min_stages <= max_stages:
        raise InvalidArgument(
            f"need 1 <= min_stages <= max_stages, got {min_stages}, {max_stages}"
        )
    stages = _stages(draw, draw(_name_lists(min_stages, max_stages)), guards)
    reasons = draw(_REASONS)
    return Pipeline(
        draw(_PIPELINE_NAMES),
        stages,
        allow_skip=draw(_POLICIES[allow_skip]),
        allow_back=draw(_POLICIES[allow_back]),
        lost_reasons=reasons,
        version=draw(_VERSIONS),
    )


def _satisfying_changes(requires: Sequence[Guard], deal: Deal) -> dict[str, Any] | None:
    """``evolve`` changes that make ``deal`` pass every guard in ``requires``.

    Known for the built-in guards; None when a (custom) guard still refuses. An
    empty dict means the deal passes already.
    """
    draft: dict[str, Any] = {"bant": deal.bant, "fields": dict(deal.fields), "amount": deal.amount}
    for guard in requires:
        _satisfy(guard, draft)
    changes = {k: v for k, v in draft.items() if v != getattr(deal, k)}
    candidate = deal.evolve(**changes) if changes else deal
    if any(guard(candidate) for guard in requires):
        return None
    return changes


def _satisfy(guard: Guard, draft: dict[str, Any]) -> None:
    if isinstance(guard, BantGuard):
        met = {k: getattr(draft["bant"], k) or k in guard.criteria for k in BANT_CRITERIA}
        draft["bant"] = Bant(**met)
    elif isinstance(guard, RequiresFields):
        values = draft["fields"]
        values.update({n: "yes" for n in guard.names if c.is_empty(values.get(n))})
    elif isinstance(guard, MinAmount):
        draft["amount"] = max(draft["amount"], guard.amount)
    elif isinstance(guard, AllOf):
        for inner in guard.guards:
            _satisfy(inner, draft)
    elif isinstance(guard, AnyOf):
        known = [o for o in guard.guards if isinstance(o, _SATISFIABLE)] or guard.guards[:1]
        _satisfy(known[0], draft)


_SATISFIABLE: Final = (BantGuard, RequiresFields, MinAmount, AllOf, AnyOf)


def _probe(pipeline: Pipeline, deal_id: str, at: datetime, **values: Any) -> Deal:
    """The deal ``pipeline.start`` would make, built by hand (its guards not yet asked)."""
    first = pipeline.stages[0].name
    history = (StageChange(deal_id, None, first, at, 1),)
    return Deal(
        deal_id,
        pipeline.name,
        first,
        created_at=at,
        stage_entered_at=at,
        history=history,
        **values,
    )


def _reason(pipeline: Pipeline) -> st.SearchStrategy[str]:
    return st.sampled_from(pipeline.lost_reasons or LOST_REASONS)


@st.composite
def _started(draw: st.DrawFn, pipeline: Pipeline, ids: st.SearchStrategy[str]) -> Deal:
    deal_id = draw(ids)
    at = draw(timestamps())
    values: dict[str, Any] = {
        "amount": draw(amounts()),
        "currency": draw(_CURRENCY),
        "bant": draw(bants()),
        "fields": draw(fields()),
        "probability": draw(_PROBABILITY_OR_NONE),
        "owner": draw(_OWNERS),
        "close_date": draw(_CLOSE_DATES),
        "forecast_category": draw(_CATEGORIES),
    }
    changes = _satisfying_changes(
        pipeline.stages[0].requires, _probe(pipeline, deal_id, at, **values)
    )
    assume(changes is not None)
    values.update(changes or {})
    try:
        return pipeline.start(deal_id, at=at, **values)
    except StageBlockedError:  # a custom guard that looks at more than its inputs
        assume(False)
        raise


def _targets(pipeline: Pipeline, deal: Deal) -> list[str]:
    """Destinations the graph has from ``deal``'s stage, forward ones first (guards aside).

    The order is what shrinking moves towards: advancing, then winning, then the rest.
    """
    source = pipeline.positions[deal.stage]
    allowed = sorted(pipeline.targets[source])
    allowed.sort(key=lambda i: (i <= source, i))
    return [pipeline.stage_names[i] for i in allowed]


@st.composite
def _step(draw: st.DrawFn, pipeline: Pipeline, deal: Deal) -> Deal | None:
    """One change to ``deal``: a legal move (qualifying it first if needed) or an update.

    An update is dated ``updated_at`` plus a pause (none, when shrunk), so a deal's
    last change may come after its last move.
    """
    if draw(_STEP_KINDS) == 3:
        return deal.evolve(at=deal.updated_at + draw(_PAUSES), **draw(_updates()))
    at = deal.updated_at + draw(_PAUSES)
    targets = _targets(pipeline, deal)
    if not targets:
        return None
    to = draw(st.sampled_from(targets))
    changes = _satisfying_changes(pipeline.stage(to).requires, deal)
    if changes is None:
        return None
    if changes:
        deal = deal.evolve(**changes)
    reason = draw(_reason(pipeline)) if to == LOST else None
    return pipeline.move(deal, to, at=at, reason=reason)


@functools.cache
def _updates() -> st.SearchStrategy[dict[str, Any]]:
    """One ``evolve`` change: amount, BANT, fields, probability, owner, close date or
    forecast category override (the last four may be set back to None)."""
    return st.one_of(
        st.builds(dict, amount=amounts()),
        st.builds(dict, bant=bants()),
        st.builds(dict, fields=fields()),
        st.builds(dict, probability=_PROBABILITY_OR_NONE),
        st.builds(dict, owner=_OWNERS),
        st.builds(dict, close_date=_CLOSE_DATES),
        st.builds(dict, forecast_category=_CATEGORIES),
    )


@st.composite
def deals(
    draw: st.DrawFn,
    pipeline: Pipeline,
    *,
    max_steps: int = 8,
    ids: st.SearchStrategy[str] | None = None,
) -> Deal:
    """Deals of ``pipeline``, started and then changed by up to ``max_steps`` legal steps.

    A step is a move along the pipeline's graph (the deal is first qualified with
    ``evolve`` when a built-in guard would refuse it) or an update of the amount,
    BANT, fields, probability, owner, close date or forecast category, dated at or
    after the deal's last change (so ``updated_at`` may be later than the last move).
    Deals start with or without an owner, close date and forecast category. Time
    never runs backwards. A walk ends early at a move that a custom guard refuses; a
    first stage whose custom guard refuses every generated deal leaves nothing to
    generate.
    """
    deal = draw(_started(pipeline, ids if ids is not None else _ids()))
    for _ in range(draw(_integers(0, max_steps))):
        moved = draw(_step(pipeline, deal))
        if moved is None:
            break
        deal = moved
    return deal


@functools.cache
def _ids() -> st.SearchStrategy[str]:
    return st.text(_TEXT, min_size=1, max_size=24).filter(lambda s: bool(s.strip()))


def moves(pipeline: Pipeline, deal: Deal, *, legal: bool = False) -> st.SearchStrategy[str]:
    """A destination for ``deal``: any stage name of ``pipeline``, legal or not (default).

    With ``legal=True`` only ``pipeline.moves(deal)`` (graph and guards allowing);
    that strategy is empty (``st.nothing()``) when the deal cannot move, for example
    once it is won.
    """
    options = pipeline.moves(deal) if legal else pipeline.stage_names
    return st.sampled_from(options) if options else st.nothing()
