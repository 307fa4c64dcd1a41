"""salespipeline: sales pipelines and marketing funnels as configurable state machines."""

from salespipeline import guards, metrics, presets, scoring
from salespipeline.deal import Bant, Deal, History, StageChange
from salespipeline.definitions import Finding, dump_pipeline, load_pipeline
from salespipeline.errors import (
    ConcurrencyError,
    CorruptRecordError,
    DealNotFoundError,
    DefinitionError,
    DuplicateDealError,
    GuardError,
    SalesPipelineError,
    StageBlockedError,
    StorageError,
    TransitionNotAllowedError,
    UnknownPipelineError,
    UnknownStageError,
    ValidationError,
)
from salespipeline.guards import Guard, Violation
from salespipeline.metrics import PipelineReport
from salespipeline.migration import Migration
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON, Stage
from salespipeline.tracker import Tracker

__version__ = "0.1.0.dev0"

__all__ = [
    "LOST",
    "WON",
    "Bant",
    "ConcurrencyError",
    "CorruptRecordError",
    "Deal",
    "DealNotFoundError",
    "DefinitionError",
    "DuplicateDealError",
    "Finding",
    "Guard",
    "GuardError",
    "History",
    "Migration",
    "Pipeline",
    "PipelineReport",
    "SalesPipelineError",
    "Stage",
    "StageBlockedError",
    "StageChange",
    "StorageError",
    "Tracker",
    "TransitionNotAllowedError",
    "UnknownPipelineError",
    "UnknownStageError",
    "ValidationError",
    "Violation",
    "__version__",
    "dump_pipeline",
    "guards",
    "load_pipeline",
    "metrics",
    "presets",
    "scoring",
]
