"""The hand-worked metrics dataset, shared by the pure and the SQL report tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from salespipeline.deal import Bant, Deal
from salespipeline.pipeline import Pipeline
from salespipeline.stages import Stage

T = datetime(2026, 1, 1, tzinfo=timezone.utc)
DAY = timedelta(days=1)
NOW = T + 6 * DAY
AS_OF = T + 11 * DAY
"""An instant after every change of the hand-worked datasets: reports of them as they end."""
FULL = Bant(budget=True, authority=True, need=True, timeline=True)


def day(n: float) -> datetime:
    return T + n * DAY


def abc() -> Pipeline:
    """Three stages: a (10 %, stalls after 2 days), b (50 %, 3 days), c (80 %, never)."""
    return Pipeline(
        "abc",
        [
            Stage("a", probability=0.1, rot_after=2 * DAY),
            Stage("b", probability=0.5, rot_after=3 * DAY),
            Stage("c", probability=0.8),
        ],
    )


def hand_worked(p: Pipeline) -> list[Deal]:
    """The hand-worked dataset of the metrics tests (times in days after T).

    d1  1000  a@0 -> b@1 -> c@3 -> won@4          won, cycle 4 d
    d2  3000  a@0 -> b@2 -> lost@5                lost from b
    d3  2000  a@1 -> b@2 -> c@4 -> won@10         won, cycle 9 d
    d4   500  a@2                                 open in a (no BANT)
    d5  4000  a@0 -> b@1, probability 0.25        open in b (no BANT), closes 2026-02-15
    d6  1500  a@0 -> lost@1                       lost from a
    """
    d1 = p.start("d1", amount=1000, bant=FULL, at=day(0))
    d1 = p.win(p.advance(p.advance(d1, at=day(1)), at=day(3)), at=day(4))
    d2 = p.start("d2", amount=3000, at=day(0))
    d2 = p.lose(p.advance(d2, at=day(2)), "price", at=day(5))
    d3 = p.start("d3", amount=2000, bant=FULL, at=day(1))
    d3 = p.win(p.advance(p.advance(d3, at=day(2)), at=day(4)), at=day(10))
    d4 = p.start("d4", amount=500, at=day(2))
    d5 = p.start(
        "d5", amount=4000, probability=0.25, fields={"expected_close": "2026-02-15"}, at=day(0)
    )
    d5 = p.advance(d5, at=day(1))
    d6 = p.lose(p.start("d6", amount=1500, at=day(0)), "no budget", at=day(1))
    return [d1, d2, d3, d4, d5, d6]


EUR_PER_USD = Decimal("0.9")
"""The rate of the two-currency dataset: one USD is worth 0.9 EUR."""


def two_currencies(p: Pipeline) -> list[Deal]:
    """Three EUR and two USD deals on ``abc()`` (times in days after T), hand-worked in
    ``docs/explanation/metrics.md`` and ``tests/test_report_currency.py``.

    e1  1000 EUR  a@0 -> b@1 -> c@3 -> won@4           won, cycle 4 d
    e2  2000 EUR  a@0 -> b@2 -> lost@5                 lost from b
    e3   500 EUR  a@2                                  open in a (10 %)
    u1  3000 USD  a@0 -> b@1 -> c@2 -> won@8           won, cycle 8 d
    u2   400 USD  a@1 -> b@2, probability 0.25         open in b
    """
    e1 = p.start("e1", amount=1000, currency="EUR", bant=FULL, at=day(0))
    e1 = p.win(p.advance(p.advance(e1, at=day(1)), at=day(3)), at=day(4))
    e2 = p.start("e2", amount=2000, currency="EUR", at=day(0))
    e2 = p.lose(p.advance(e2, at=day(2)), "price", at=day(5))
    e3 = p.start("e3", amount=500, currency="EUR", at=day(2))
    u1 = p.start("u1", amount=3000, currency="USD", bant=FULL, at=day(0))
    u1 = p.win(p.advance(p.advance(u1, at=day(1)), at=day(2)), at=day(8))
    u2 = p.start("u2", amount=400, currency="USD", probability=0.25, at=day(1))
    u2 = p.advance(u2, at=day(2))
    return [e1, e2, e3, u1, u2]
