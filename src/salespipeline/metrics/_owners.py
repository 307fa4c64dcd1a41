"""One row of figures per deal owner (private; ``metrics.by_owner``).

Each row is the owner's own ``PipelineReport`` cut down to what a leaderboard shows,
so every figure keeps the one definition the report gives it. Deals without an
owner get a row of their own, ``owner=None``, after the named owners.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

import attrs

from salespipeline.deal import Deal
from salespipeline.metrics._asof import as_they_stood
from salespipeline.metrics._facts import Facts, fold
from salespipeline.metrics._money import Money
from salespipeline.metrics._pure import DealFacts
from salespipeline.metrics._report import PipelineReport, finish
from salespipeline.pipeline import Pipeline

__all__ = ["OwnerFigures", "owner_rows"]


@attrs.frozen(kw_only=True)
class OwnerFigures:
    """One owner's deals in a pipeline at ``as_of``, as ``report(owner=...)`` counts them.

    ``owner`` is None for the deals nobody owns. The money figures are in
    ``currency``; when the owner's deals are in several currencies and none was asked
    for, they and ``currency`` are None (``report(owner=...).by_currency`` has them).
    """

    owner: str | None
    deals: int
    open_deals: int
    won: int
    lost: int
    currency: str | None
    open_value: Decimal | None
    won_value: Decimal | None
    lost_value: Decimal | None
    win_rate: float | None
    cycle_length: timedelta | None

    @classmethod
    def of(cls, owner: str | None, report: PipelineReport) -> OwnerFigures:
        """The row of ``report``, the report of ``owner``'s deals alone."""
        names = attrs.fields_dict(cls).keys() - {"owner"}
        return cls(owner=owner, **{name: getattr(report, name) for name in names})


def _order(owner: str | None) -> tuple[bool, str]:
    return (owner is None, owner or "")


def owner_rows(
    deals: Iterable[Deal], pipeline: Pipeline, *, as_of: datetime, money: Money
) -> tuple[OwnerFigures, ...]:
    """A row per owner among ``pipeline``'s deals as they stood at ``as_of``, by owner
    name (code point order), the unowned last."""
    facts = DealFacts(pipeline, as_of)
    groups: dict[str | None, list[Facts]] = {}
    own = (d for d in deals if d.pipeline == pipeline.name)
    for deal in as_they_stood(own, as_of):
        if money.only is None or deal.currency == money.only:
            groups.setdefault(deal.owner, []).append(facts(deal))
    return tuple(
        OwnerFigures.of(
            owner, finish(fold(pipeline, groups[owner], money=money), pipeline, as_of=as_of)
        )
        for owner in sorted(groups, key=_order)
    )
