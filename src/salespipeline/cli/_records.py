"""The records of an imported CSV file, each read in bounded memory and time (private).

``csv.reader`` reads a line as long as the file makes it, and one record it cannot
read (a cell over its field limit) ends the iteration with ``csv.Error``. Here each
record is at most ``MAX_RECORD`` characters: a longer one, or one ``csv`` refuses,
is a ``Broken`` record with the reason, its rest is skipped (to the end of its line,
and on while a quoted cell is open), and the next record is read as usual.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Final, TextIO

import attrs

from salespipeline.limits import MAX_RECORD

__all__ = ["MAX_RECORD", "Broken", "records"]

_CHUNK: Final = 64 * 1024


@attrs.frozen
class Broken:
    """A record that could not be read, and why."""

    reason: str


class _TooLong(Exception):
    """The record being read passed ``MAX_RECORD``."""


class _Lines:
    """The file's lines for ``csv.reader``, none read past the record's ``MAX_RECORD``.

    It counts the characters and quotes of the record being read, so that a broken
    record's rest can be skipped.
    """

    def __init__(self, file: TextIO) -> None:
        self._file = file
        self.size = self.quotes = 0
        self.complete = True

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._file.readline(MAX_RECORD + 1 - self.size)
        if not line:
            raise StopIteration
        self._took(line)
        if self.size > MAX_RECORD:
            raise _TooLong
        return line

    def start(self) -> None:
        """A new record begins."""
        self.size = self.quotes = 0

    def skip(self) -> None:
        """Read past a broken record: to the end of its line, and on while a quote is open."""
        while not self.complete or self.quotes % 2:
            line = self._file.readline(_CHUNK)
            if not line:
                return
            self._took(line)

    def _took(self, line: str) -> None:
        self.size += len(line)
        self.quotes += line.count('"')
        self.complete = line.endswith(("\n", "\r"))


def records(file: TextIO, delimiter: str) -> Iterator[tuple[int, list[str] | Broken]]:
    """Each record of ``file`` with its number (the first is 1): its cells, or ``Broken``."""
    lines = _Lines(file)
    reader = csv.reader(lines, delimiter=delimiter)
    number = 0
    while True:
        number += 1
        lines.start()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except (csv.Error, _TooLong) as error:
            lines.skip()
            yield number, Broken(_reason(error))
            continue
        yield number, cells


def _reason(error: Exception) -> str:
    if isinstance(error, _TooLong):
        return (
            f"the row is longer than {MAX_RECORD:,} characters, more than any deal holds "
            "(is a quote left open?); it was skipped"
        )
    if "field limit" in str(error):
        return (
            f"a cell is longer than {csv.field_size_limit():,} characters, more than any "
            "deal attribute holds; it was skipped"
        )
    return f"the row is not valid CSV ({error}); it was skipped"
