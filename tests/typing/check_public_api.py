"""The public API's inferred types, checked by mypy (``mypy --strict`` on this file).

Never run, only type-checked: a changed return type or a lost annotation breaks CI
here before it breaks a user's type-checked code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal

from typing_extensions import assert_type

import salespipeline
from salespipeline import (
    LOST,
    WON,
    Bant,
    Deal,
    Finding,
    Guard,
    History,
    Migration,
    Pipeline,
    SalesPipelineError,
    Stage,
    StageBlockedError,
    StageChange,
    Tracker,
    TransitionNotAllowedError,
    UnknownStageError,
    Violation,
    guards,
    metrics,
    presets,
    scoring,
)
from salespipeline.metrics import PipelineReport
from salespipeline.storage import DealStore, MemoryStore, PostgresStore, SQLiteStore

at = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)

# -- values ------------------------------------------------------------------------
stage = Stage("proposal", probability=0.5, requires=guards.bant(), rot_after=timedelta(days=21))
assert_type(stage.name, str)
assert_type(stage.label, str)
assert_type(stage.probability, float)
assert_type(stage.requires, tuple[Guard, ...])
assert_type(stage.rot_after, timedelta | None)
assert_type(WON, Literal["won"])
assert_type(LOST, Literal["lost"])

bant = Bant(budget=True, need=True)
assert_type(bant.score, int)
assert_type(bant.missing, tuple[str, ...])
assert_type(bant.qualified, bool)

# -- pipeline operations -----------------------------------------------------------
pipeline = Pipeline("inbound", [Stage("lead", probability=0.1), stage], allow_skip=True)
assert_type(pipeline.name, str)
assert_type(pipeline.stages, tuple[Stage, ...])
assert_type(pipeline.stage_names, tuple[str, ...])
assert_type(pipeline.lost_reasons, tuple[str, ...] | None)
assert_type(pipeline.stage("lead"), Stage)

deal = pipeline.start("d-1", amount="100.00", at=at)
assert_type(deal, Deal)
assert_type(pipeline.move(deal, "proposal", at=at, reason="asked"), Deal)
assert_type(pipeline.advance(deal, at=at), Deal)
assert_type(pipeline.win(deal, at=at), Deal)
assert_type(pipeline.lose(deal, "price", at=at), Deal)
assert_type(pipeline.reopen(deal, "lead", at=at), Deal)
assert_type(pipeline.check(deal, "proposal"), tuple[Violation, ...])
assert_type(pipeline.moves(deal), tuple[str, ...])
assert_type(pipeline.probability(deal), float)
assert_type(pipeline.with_clock(lambda: at), Pipeline)

# -- deals -------------------------------------------------------------------------
assert_type(deal.id, str)
assert_type(deal.stage, str)
assert_type(deal.amount, Decimal)
assert_type(deal.fields, Mapping[str, Any])
assert_type(deal.probability, float | None)
assert_type(deal.closed_at, datetime | None)
assert_type(deal.version, int)
assert_type(deal.history, History)
entries: Sequence[StageChange] = deal.history
assert_type(deal.is_open, bool)
assert_type(deal.evolve(amount="5"), Deal)
assert_type(deal.history[-1].from_stage, str | None)

# -- guards ------------------------------------------------------------------------
combined = guards.bant("budget", min_score=1) & guards.min_amount(1000)
assert_type(combined(deal), tuple[Violation, ...])
assert_type(guards.requires_fields("use_case")(deal), tuple[Violation, ...])
assert_type(guards.rule("big", lambda d: d.amount > 0, "needs an amount").name, str)
assert_type(Violation("bant", "missing budget").field, str | None)

# -- presets and errors ------------------------------------------------------------
assert_type(presets.five_stage(labels="ko"), Pipeline)
assert_type(presets.funnel(), Pipeline)

try:
    pipeline.advance(deal)
except StageBlockedError as blocked:
    assert_type(blocked.violations, tuple[Violation, ...])
    assert_type(blocked.deal_id, str)
except TransitionNotAllowedError as refused:
    assert_type(refused.from_stage, str)
    assert_type(refused.to_stage, str)
except UnknownStageError as unknown:
    assert_type(unknown.stage, object)
except SalesPipelineError as error:
    assert_type(error.message, str)

assert_type(salespipeline.__version__, str)

# -- definitions, migrations, scoring ----------------------------------------------
assert_type(pipeline.to_dict(), dict[str, Any])
assert_type(Pipeline.from_dict(pipeline.to_dict()), Pipeline)
assert_type(salespipeline.load_pipeline("pipeline.toml"), Pipeline)
assert_type(pipeline.lint(), tuple[Finding, ...])
assert_type(pipeline.diagram("mermaid"), str)
migration = Migration(
    presets.seven_stage(), presets.five_stage(), {"needs_assessment": "proposal"}
)
assert_type(migration.apply(deal, at=at), Deal)
card = scoring.ScoreCard([scoring.bant("budget", points=10)])
assert_type(card.score(deal), scoring.Score)
assert_type(card.score(deal).value, float)
assert_type(card.score(deal).parts, Mapping[str, int])
assert_type(guards.min_score(card, 60)(deal), tuple[Violation, ...])

# -- tracker and stores ------------------------------------------------------------
store = MemoryStore()
assert_type(store, MemoryStore)
assert_type(SQLiteStore("crm.sqlite").get("d-1"), Deal)
assert_type(PostgresStore("dbname=crm").find(open=True), Iterator[Deal])
tracker = Tracker(store, [pipeline], clock=lambda: at, retries=5)
assert_type(tracker.store, DealStore)
assert_type(tracker.open("inbound", "d-2", amount=10), Deal)
assert_type(tracker.move("d-2", "proposal"), Deal)
assert_type(tracker.advance("d-2"), Deal)
assert_type(tracker.win("d-2"), Deal)
assert_type(tracker.lose("d-2", "price"), Deal)
assert_type(tracker.reopen("d-2"), Deal)
assert_type(tracker.update("d-2", amount="20"), Deal)
assert_type(tracker.get("d-2"), Deal)
assert_type(tracker.deals(stage="lead"), Iterator[Deal])
assert_type(store.history("d-2"), tuple[StageChange, ...])
assert_type(store.pipelines(), tuple[Pipeline, ...])
assert_type(store.report(pipeline, as_of=at), PipelineReport)

# -- metrics -----------------------------------------------------------------------
deals = [deal]
assert_type(metrics.win_rate(deals), float | None)
assert_type(metrics.win_rate(deals, by="value"), float | None)
assert_type(metrics.average_deal_size(deals), Decimal | None)
assert_type(metrics.cycle_length(deals), timedelta | None)
assert_type(metrics.sales_velocity(deals), Decimal | None)
assert_type(metrics.weighted_pipeline(deals, pipeline), Decimal)
assert_type(metrics.stage_counts(deals, pipeline), dict[str, int])
assert_type(metrics.conversion_rates(deals, pipeline), dict[str, float | None])
assert_type(metrics.time_in_stage(deals, pipeline), dict[str, timedelta | None])
assert_type(metrics.stalled(deals, pipeline, now=at), list[Deal])
report = metrics.report(deals, pipeline, as_of=at)
assert_type(report, PipelineReport)
assert_type(report.win_rate, float | None)
assert_type(report.stage_counts, Mapping[str, int])
assert_type(report.render(), str)
assert_type(report.to_dict(), dict[str, Any])
assert_type(report.currency, str | None)
assert_type(report.open_value, Decimal | None)
assert_type(report.by_currency, Mapping[str, metrics.CurrencyFigures])
assert_type(report.by_category, Mapping[str, metrics.CategoryFigures])
assert_type(report.by_category["commit"].value, Decimal | None)
assert_type(report.by_currency["USD"].open_value, Decimal)
in_eur = metrics.report(deals, pipeline, as_of=at, currency="EUR", rates={"USD": Decimal("0.9")})
assert_type(in_eur, PipelineReport)
assert_type(store.report(pipeline, currency="EUR", rates={"USD": 1}), PipelineReport)
