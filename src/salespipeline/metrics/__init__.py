"""Pipeline metrics: pure functions over deals, with the exact definitions teams rely on.

Functions that take a ``pipeline`` ignore deals of other pipelines; the four that
take none (``win_rate``, ``average_deal_size``, ``cycle_length``,
``sales_velocity``) count every deal given. A figure that is undefined (nothing to
average, nothing closed) is ``None``, never a ``ZeroDivisionError``. Each function
makes one pass over its deals, so any iterable (a generator, ``store.find()``)
works. ``report`` never adds amounts across currencies: it reports per currency
(``by_currency``), in one (``currency=``), or converted into one (``rates=``).
Definitions and formulas: ``docs/explanation/metrics.md``.
"""

from salespipeline.metrics._accuracy import ForecastAccuracy, forecast_accuracy
from salespipeline.metrics._csv import render_csv
from salespipeline.metrics._functions import (
    Bottleneck,
    Calibration,
    CategoryFigures,
    CurrencyFigures,
    DisqualificationCandidate,
    ForecastPeriod,
    OwnerFigures,
    PipelineReport,
    average_deal_size,
    bottlenecks,
    by_owner,
    calibration,
    conversion_rates,
    cycle_length,
    disqualification_candidates,
    forecast,
    overdue,
    render_report,
    report,
    sales_velocity,
    stage_counts,
    stalled,
    time_in_stage,
    weighted_pipeline,
    win_rate,
)
from salespipeline.metrics._funnel import render_funnel
from salespipeline.metrics._html import render_html
from salespipeline.metrics._movement import Flow, Movement, movement

__all__ = [
    "Bottleneck",
    "Calibration",
    "CategoryFigures",
    "CurrencyFigures",
    "DisqualificationCandidate",
    "Flow",
    "ForecastAccuracy",
    "ForecastPeriod",
    "Movement",
    "OwnerFigures",
    "PipelineReport",
    "average_deal_size",
    "bottlenecks",
    "by_owner",
    "calibration",
    "conversion_rates",
    "cycle_length",
    "disqualification_candidates",
    "forecast",
    "forecast_accuracy",
    "movement",
    "overdue",
    "render_csv",
    "render_funnel",
    "render_html",
    "render_report",
    "report",
    "sales_velocity",
    "stage_counts",
    "stalled",
    "time_in_stage",
    "weighted_pipeline",
    "win_rate",
]
