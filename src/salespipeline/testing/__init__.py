"""Property-testing tools for your own pipelines and storage adapters.

Needs the ``testing`` extra (``pip install salespipeline[testing]``): importing this
package imports hypothesis; importing ``salespipeline`` alone never does.
"""

from salespipeline.testing import strategies
from salespipeline.testing.async_contract import AsyncStoreContract
from salespipeline.testing.contract import StoreContract
from salespipeline.testing.stateful import (
    FakeClock,
    PipelineStateMachine,
    Satisfy,
    StageCoverage,
    UnreachedStageWarning,
)

__all__ = [
    "AsyncStoreContract",
    "FakeClock",
    "PipelineStateMachine",
    "Satisfy",
    "StageCoverage",
    "StoreContract",
    "UnreachedStageWarning",
    "strategies",
]
