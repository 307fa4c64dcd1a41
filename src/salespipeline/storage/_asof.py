"""The stored deals as they stood at an instant, for reports of the past (private).

A deal unchanged since ``as_of`` stands as it is; one opened by then and changed
since is rebuilt from its own changes up to ``as_of`` (``log.replay``). Deals are
read one at a time, so memory stays flat in the number of deals.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from salespipeline import log
from salespipeline.deal import Deal

if TYPE_CHECKING:
    from salespipeline.storage.base import DealStore

__all__ = ["changed_since", "deals_as_of", "standing"]


def deals_as_of(store: DealStore, pipeline: str, as_of: datetime) -> Iterator[Deal]:
    """``pipeline``'s deals as they stood at ``as_of`` (every pipeline is read: a deal
    may have been migrated out of ``pipeline`` since)."""
    for deal in store.find():
        changes = store.changes(deal.id) if changed_since(deal, as_of) else ()
        stood = standing(deal, pipeline, as_of, changes)
        if stood is not None:
            yield stood


def changed_since(deal: Deal, as_of: datetime) -> bool:
    """Whether ``deal`` was open at ``as_of`` and changed after it (its log is needed)."""
    return deal.created_at <= as_of < deal.updated_at


def standing(
    deal: Deal, pipeline: str, as_of: datetime, changes: Iterable[log.Change]
) -> Deal | None:
    """``deal`` as it stood at ``as_of`` if it was then in ``pipeline``, else None;
    ``changes`` is its log when ``changed_since`` says it is needed (else unread)."""
    if deal.created_at > as_of:
        return None
    if deal.updated_at > as_of:
        rebuilt = log.replay(changes, until=as_of).get(deal.id)
        if rebuilt is None:
            return None
        deal = rebuilt
    return deal if deal.pipeline == pipeline else None
