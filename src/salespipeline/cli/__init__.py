"""The ``salespipeline`` command: ``demo``, ``report``, ``lint``, ``diagram``, ``migrate``.

This is the edge where files, the database, the terminal and the wall clock are
touched. Bad input (an unreadable file, an invalid definition, a missing database)
ends with exit status 2 and one line on stderr, never a traceback.
"""

from salespipeline.cli._main import (
    main,
)

__all__ = [
    "main",
]
