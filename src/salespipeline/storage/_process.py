"""A store belongs to the process that opened it; a forked child leaves it alone (private).

A database connection cannot be shared across ``os.fork()``: in the child every call
of an inherited store refuses with ``StorageError``, and ``close()`` there lets go of
the inherited connections without closing them, since closing a PostgreSQL
connection ends the parent's session on the server.
"""

from __future__ import annotations

import os
from typing import Final

from salespipeline.errors import StorageError

__all__ = ["check_process", "let_go"]

_INHERITED: Final[list[object]] = []


def check_process(store: object, pid: int) -> None:
    """Refuse work in any process but ``pid``, the one that opened ``store``."""
    if os.getpid() != pid:
        raise StorageError(
            f"{store!r} was opened in another process; open a new store in this one"
        )


def let_go(resource: object, pid: int) -> bool:
    """True when ``resource`` belongs to this process (``pid``), and may be closed here.

    Otherwise it was inherited through fork: it is kept referenced, so that no
    finaliser of this process closes it, and False is returned.
    """
    if os.getpid() == pid:
        return True
    _INHERITED.append(resource)
    return False
