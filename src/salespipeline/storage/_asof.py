"""The stored deals as they stood at an instant, for reports of the past (private).

A deal unchanged since ``as_of`` stands as it is; one opened by then and changed
since is rebuilt from its own changes up to ``as_of`` (``log.replay``). Deals are
read one at a time, so memory stays flat in the number of deals.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from salespipeline import log
from salespipeline.deal import Deal

if TYPE_CHECKING:
    from salespipeline.storage.base import DealStore

__all__ = ["deals_as_of"]


def deals_as_of(store: DealStore, pipeline: str, as_of: datetime) -> Iterator[Deal]:
    """``pipeline``'s deals as they stood at ``as_of`` (every pipeline is read: a deal
    may have been migrated out of ``pipeline`` since)."""
    for deal in store.find():
        if deal.created_at > as_of:
            continue
        if deal.updated_at > as_of:
            rebuilt = log.replay(store.changes(deal.id), until=as_of).get(deal.id)
            if rebuilt is None:
                continue
            deal = rebuilt
        if deal.pipeline == pipeline:
            yield deal
