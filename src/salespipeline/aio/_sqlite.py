"""AsyncSQLiteStore: the embedded default for asyncio apps."""

from __future__ import annotations

import functools
import os
import sqlite3

from salespipeline.aio._threaded import ThreadedStore
from salespipeline.storage.sql._names import check_names
from salespipeline.storage.sqlite import SQLiteStore, check_options

__all__ = ["AsyncSQLiteStore"]


class AsyncSQLiteStore(ThreadedStore):
    """Deals in a SQLite file (or an app's ``sqlite3.Connection``), for asyncio.

    ``SQLiteStore``'s calls, run on a worker thread: the same options, schema, log
    and errors. Nothing is opened until ``async with store:`` or ``await
    store.open()``; the arguments are checked at once.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | sqlite3.Connection,
        *,
        timeout: float | None = None,
        synchronous: str | None = None,
        prefix: str = "sp_",
    ) -> None:
        check_options(path, timeout, synchronous)
        check_names(prefix, None, schemas=False)
        shown = "a sqlite3.Connection" if isinstance(path, sqlite3.Connection) else os.fspath(path)
        super().__init__(
            functools.partial(
                SQLiteStore, path, timeout=timeout, synchronous=synchronous, prefix=prefix
            ),
            name=f"AsyncSQLiteStore({shown!r})",
        )
