"""Storage adapters: where deals, their histories and pipeline definitions live.

``MemoryStore`` for tests, ``SQLiteStore`` (the embedded default) and
``PostgresStore`` (needs ``salespipeline[postgres]``; importable without it).
Write your own by subclassing ``DealStore`` and checking it with
``salespipeline.testing.StoreContract``.
"""

from salespipeline.storage.base import DealStore
from salespipeline.storage.memory import MemoryStore
from salespipeline.storage.postgres import PostgresStore
from salespipeline.storage.sqlite import SQLiteStore

__all__ = ["DealStore", "MemoryStore", "PostgresStore", "SQLiteStore"]
