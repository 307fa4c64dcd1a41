"""Memory: bytes per in-memory deal that has five history entries.

Deals are made the way an app makes them (own id, amount and BANT answers, a
distinct time per move) and measured with ``tracemalloc``, so everything a deal
keeps alive counts: the deal, its history, timestamps, amount and id.
"""

from __future__ import annotations

import gc
import tracemalloc
from datetime import datetime, timedelta, timezone

from salespipeline import Bant, Deal, presets

HISTORY = 5
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def make_deals(n_deals: int) -> list[Deal]:
    """``n_deals`` deals with five history entries: half reach ``proposal``, half are lost."""
    pipeline = presets.seven_stage()
    deals = []
    for i in range(n_deals):
        at = T0 + timedelta(minutes=i)
        deal = pipeline.start(
            f"deal-{i:07d}",
            amount=1000 + i,
            bant=Bant(budget=True, authority=True, need=True, timeline=i % 2 == 0),
            at=at,
        )
        for step in range(1, HISTORY - 1):
            deal = pipeline.advance(deal, at=at + timedelta(hours=step))
        last = at + timedelta(hours=HISTORY - 1)
        if deal.bant.qualified:
            deal = pipeline.advance(deal, at=last)
        else:
            deal = pipeline.lose(deal, "no budget", at=last)
        deals.append(deal)
    return deals


def bytes_per_deal(n_deals: int = 100_000) -> float:
    """Traced bytes kept alive per deal (the list holding them included)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        deals = make_deals(n_deals)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(deals) == n_deals
    return (after - before) / n_deals
