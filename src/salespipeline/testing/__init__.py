"""Property-testing tools for your own pipelines and storage adapters.

Needs the ``testing`` extra (``pip install salespipeline[testing]``): importing this
package imports hypothesis; importing ``salespipeline`` alone never does.
"""

from salespipeline.testing import strategies
from salespipeline.testing.stateful import FakeClock, PipelineStateMachine

# StoreContract (testing/contract.py) is exported here by the storage work.

__all__ = ["FakeClock", "PipelineStateMachine", "strategies"]
