"""A one-line progress bar on stderr, for commands that work through many deals (private)."""

from __future__ import annotations

import sys
import time
from typing import IO

__all__ = ["Progress"]


class Progress:
    """A one-line progress bar on stderr, drawn on a terminal once work takes a moment."""

    def __init__(self, label: str, total: int, *, stream: IO[str] | None = None) -> None:
        self._label = label
        self._total = max(total, 1)
        self._stream = stream or sys.stderr
        self._started = time.monotonic()
        self._drawn = 0.0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self._stream.isatty() or now - self._started < 0.5:
            return
        if now - self._drawn < 0.1 and done < self._total:
            return
        self._drawn = now
        filled = 30 * min(done, self._total) // self._total
        bar = "#" * filled + "." * (30 - filled)
        self._stream.write(f"\r{self._label} [{bar}] {done:,}/{self._total:,}")
        self._stream.flush()
