"""The generated stories reach the states the SQL-against-pure property tests need.

A pipeline that allows no skipping (FIVE) reaches WON only after every stage, so
stories of random moves almost never won a deal and a planted bug in the SQL's won
rule passed them. These checks draw a fixed, derandomized sample and hold the share
of stories that reach each interesting state; they fail if the strategy regresses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from salespipeline import presets
from salespipeline.deal import Deal
from salespipeline.stages import LOST, WON
from salespipeline.testing._stories import deal_stories
from test_log import stories

FIVE = presets.five_stage()
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
SAMPLE = 300
Pair = tuple[Deal | None, Deal]


def reached(pairs: Iterable[Pair]) -> set[str]:
    """The interesting things that happen in a story's ``(before, after)`` pairs."""
    seen = set()
    for before, after in pairs:
        if before is None:
            continue
        entered = after.stage != before.stage
        seen |= {"won"} if entered and after.stage == WON else set()
        seen |= {"lost"} if entered and after.stage == LOST else set()
        seen |= {"reopened"} if entered and before.stage == LOST else set()
        seen |= {"raised"} if after.amount > before.amount else set()
        seen |= {"cut"} if after.amount < before.amount else set()
        seen |= {"currency"} if after.currency != before.currency else set()
        seen |= {"migrated"} if after.pipeline != before.pipeline else set()
        pushed = before.close_date and after.close_date and after.close_date > before.close_date
        seen |= {"pushed"} if pushed else set()
    return seen


def shares(strategy: st.SearchStrategy[list[Pair]]) -> dict[str, float]:
    """The share of ``SAMPLE`` derandomized stories that reach each thing (deterministic)."""
    counts: Counter[str] = Counter()

    @settings(max_examples=SAMPLE, derandomize=True, database=None, phases=[Phase.generate])
    @given(strategy)
    def sample(pairs: list[Pair]) -> None:
        counts.update(reached(pairs) | {"any"})

    sample()
    return {thing: counts[thing] / counts["any"] for thing in counts}


def short_of(share: dict[str, float], floors: dict[str, float]) -> list[str]:
    """The things whose share is under its floor, with both."""
    return [
        f"{k}: {share.get(k, 0):.0%} < {v:.0%}" for k, v in floors.items() if share.get(k, 0) < v
    ]


def test_deal_stories_win_lose_reopen_and_change_money_often() -> None:
    share = shares(deal_stories(FIVE, T0, ids=4))
    floors = {"won": 0.2, "lost": 0.15, "reopened": 0.05, "raised": 0.1, "cut": 0.04}
    floors |= {"currency": 0.1, "pushed": 0.1, "migrated": 0.1}
    assert short_of(share, floors) == []


def test_log_stories_win_often() -> None:
    pairs = stories().map(lambda story: [(step.before, step.after) for step in story])
    floors = {"won": 0.3, "lost": 0.05, "reopened": 0.05, "migrated": 0.2}
    assert short_of(shares(pairs), floors) == []
