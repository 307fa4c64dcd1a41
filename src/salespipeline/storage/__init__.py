"""Storage adapters: where deals, their histories and pipeline definitions live.

``MemoryStore`` for tests, ``SQLiteStore`` (the embedded default),
``PostgresStore`` (needs ``salespipeline[postgres]``; importable without it) and
``SQLAlchemyStore`` (an app's SQLAlchemy engine or connection; needs
``salespipeline[sqlalchemy]``).
Write your own by subclassing ``DealStore`` and checking it with
``salespipeline.testing.StoreContract``. Every store keeps the change log
(``changes``, ``log``, durable ``consumer`` readers and ``verify``).

The SQL stores create their tables on first use and record a schema version. A
database an older salespipeline made is upgraded in place, in one transaction, the
first time a newer one opens it (stop processes running the older one first); one
made by a newer salespipeline is refused with ``StorageError``.
"""

from salespipeline.storage._consumers import Consumer
from salespipeline.storage.base import DealStore
from salespipeline.storage.memory import MemoryStore
from salespipeline.storage.postgres import PostgresStore
from salespipeline.storage.sqlalchemy import SQLAlchemyStore
from salespipeline.storage.sqlite import SQLiteStore

__all__ = [
    "Consumer",
    "DealStore",
    "MemoryStore",
    "PostgresStore",
    "SQLAlchemyStore",
    "SQLiteStore",
]
