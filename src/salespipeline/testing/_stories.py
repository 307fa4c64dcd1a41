"""Generated deal stories for the waterfall's tests: opens, updates, moves, migrations.

``deal_stories(pipeline)`` draws what happened to a few deals over some days, as
``(before, after)`` pairs in time order (``before`` None for an open): amounts raised
and cut, currencies and close dates changed, deals won, lost, reopened and migrated
to another pipeline and back. A store writes them with ``add``/``save``; a pure test
turns them into the log with ``log.derive``.

Moves lean toward progress: a step often walks one deal several stages ahead, and runs
of steps keep to one deal, so a pipeline that allows no skipping still reaches WON in
a good share of stories (``tests/test_stories.py`` holds the share).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from hypothesis import strategies as st

from salespipeline.deal import Bant, Deal
from salespipeline.log import Change, derive
from salespipeline.migration import Migration
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON

__all__ = ["Story", "changes_of", "deal_stories", "elsewhere", "windows"]

Story = list[tuple[Deal | None, Deal]]

_QUALIFIED: Final = Bant(budget=True, authority=True, need=True, timeline=True)
_PAUSES: Final = st.sampled_from(
    [timedelta(0), timedelta(microseconds=1), timedelta(hours=5), timedelta(days=1)]
)
_AMOUNTS: Final = st.sampled_from([0, 1, 100, Decimal("99.99"), 2500, Decimal("0.000001")])
_CURRENCIES: Final = st.sampled_from(["USD", "USD", "EUR", "KRW"])
_A_DATE: Final = st.dates(date(2026, 3, 1), date(2026, 3, 20))
_DATES: Final = st.one_of(_A_DATE, _A_DATE, st.none())  # a date two times in three
_UPDATES: Final = st.fixed_dictionaries(
    {}, optional={"amount": _AMOUNTS, "currency": _CURRENCIES, "close_date": _DATES}
)
_OPERATIONS: Final = st.sampled_from(
    ["update", "slip", "move", "move", "walk", "walk", "walk", "migrate"]
)
_WALKS: Final = st.sampled_from([1, 2, 99, 99])  # 99: all the way to WON
_SLIPS: Final = st.sampled_from([timedelta(days=1), timedelta(days=6)])
_SAME_DEAL: Final = st.booleans()
_TICKS: Final = st.sampled_from([timedelta(microseconds=1), timedelta(hours=1)])


def elsewhere(pipeline: Pipeline) -> Pipeline:
    """The pipeline's stages under another name: where stories migrate deals (and back)."""
    return Pipeline(
        f"{pipeline.name}_elsewhere", pipeline.stages, lost_reasons=pipeline.lost_reasons
    )


@st.composite
def deal_stories(
    draw: st.DrawFn,
    pipeline: Pipeline,
    start: datetime,
    *,
    ids: int = 3,
    steps: int = 14,
    prefix: str = "d",
) -> Story:
    """What happened to up to ``ids`` deals (``prefix`` + a number), from ``start`` on.

    At most ``steps`` pairs; a walk (several moves ahead, a tick apart) counts each move.
    """
    pipelines = {pipeline.name: pipeline, elsewhere(pipeline).name: elsewhere(pipeline)}
    now, deals, story = start, dict[str, Deal](), Story()
    names = st.sampled_from([f"{prefix}{n}" for n in range(ids)])
    length = draw(st.integers(1, steps))
    while len(story) < length:
        now += draw(_PAUSES)
        same = bool(story) and draw(_SAME_DEAL)  # runs of steps on one deal take it far
        deal_id = story[-1][1].id if same else draw(names)
        for after in _next(draw, pipelines, pipeline, deals.get(deal_id), deal_id, now):
            story.append((deals.get(deal_id), after))
            deals[deal_id], now = after, after.updated_at
            if len(story) == length:
                break
    return story


def _next(
    draw: st.DrawFn,
    pipelines: Mapping[str, Pipeline],
    home: Pipeline,
    before: Deal | None,
    deal_id: str,
    now: datetime,
) -> list[Deal]:
    """The deal's next versions: an open, an update, a migration, a move or a walk."""
    if before is None:
        values: dict[str, Any] = draw(_UPDATES)
        return [home.start(deal_id, at=now, bant=_QUALIFIED, **values)]
    operation = draw(_OPERATIONS)
    current = pipelines[before.pipeline]
    if operation == "migrate":
        [target] = [p for p in pipelines.values() if p is not current]
        return [Migration(current, target).apply(before, at=now)]
    if operation == "walk" and before.is_open:
        return _walked(current, before, draw(_WALKS), now, draw(_TICKS))
    if operation == "slip":
        due = before.close_date or date(2026, 3, 1)
        return [before.evolve(at=now, close_date=due + draw(_SLIPS))]
    targets = current.moves(before)
    if operation == "move" and targets:
        return [_moved(current, before, draw(st.sampled_from(targets)), now)]
    return [before.evolve(at=now, **draw(_UPDATES))]


def _walked(
    pipeline: Pipeline, deal: Deal, moves: int, now: datetime, tick: timedelta
) -> list[Deal]:
    """``deal`` moved up to ``moves`` stages ahead, ``tick`` apart (WON after the last)."""
    walk = []
    for n in range(moves):
        if (to := _ahead(pipeline, deal)) is None:
            break
        deal = _moved(pipeline, deal, to, now + n * tick)
        walk.append(deal)
    return walk


def _ahead(pipeline: Pipeline, deal: Deal) -> str | None:
    """The stage right after the deal's (WON after the last), if the pipeline allows it."""
    position = pipeline.positions
    ahead = [t for t in pipeline.moves(deal) if position[t] == position[deal.stage] + 1]
    return ahead[0] if ahead else None


def _moved(pipeline: Pipeline, deal: Deal, to: str, now: datetime) -> Deal:
    if to == LOST:
        reason = pipeline.lost_reasons[0] if pipeline.lost_reasons else "price"
        return pipeline.lose(deal, reason, at=now)
    if to == WON:
        return pipeline.win(deal, at=now)
    return pipeline.move(deal, to, at=now)


def changes_of(story: Story) -> list[Change]:
    """The story's log, as a store would write it (without positions)."""
    return [derive(before, after) for before, after in story]


def windows(start: datetime) -> st.SearchStrategy[tuple[datetime, datetime]]:
    """A window ``[a, b)`` near a story from ``start``: empty, short, or all of it."""
    offsets = st.sampled_from(
        [timedelta(0), timedelta(microseconds=1), timedelta(hours=5), timedelta(days=1)]
    ) | st.timedeltas(timedelta(0), timedelta(days=8))
    return st.tuples(offsets, offsets).map(
        lambda pair: (start - timedelta(hours=1) + pair[0], start + pair[0] + pair[1])
    )
