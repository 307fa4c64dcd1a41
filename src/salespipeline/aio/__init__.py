"""Async salespipeline: ``AsyncTracker`` and async stores, for asyncio apps.

The same commands, checks, retries, idempotency keys, log and consumers as the sync
API, from one shared decision core: only the I/O is awaited.
"""

from salespipeline.aio._postgres import AsyncPostgresStore
from salespipeline.aio._sqlite import AsyncSQLiteStore
from salespipeline.aio._store import AsyncConsumer, AsyncDealStore
from salespipeline.aio._tracker import AsyncTracker

__all__ = [
    "AsyncConsumer",
    "AsyncDealStore",
    "AsyncPostgresStore",
    "AsyncSQLiteStore",
    "AsyncTracker",
]
