"""The published limits: inputs beyond these are refused before any work or write.

Each limit bounds the work one call can cause (no input makes the library work
without bound) and keeps every backend able to store what another accepts. A value
past a limit is a ``ValidationError`` (or a ``DefinitionError`` inside a definition)
naming the argument and the limit; ``docs/reference/limits.md`` lists them.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MAX_AMOUNT_DIGITS",
    "MAX_AMOUNT_PLACES",
    "MAX_BULK",
    "MAX_DEPTH",
    "MAX_FIELDS_BYTES",
    "MAX_FIELD_NUMBER",
    "MAX_FIND_FIELDS",
    "MAX_FIND_PAGE",
    "MAX_NAME",
    "MAX_PAGE",
    "MAX_PAST_VERSIONS",
    "MAX_POSITION",
    "MAX_RATE_DIGITS",
    "MAX_RATE_PLACES",
    "MAX_RECORD",
    "MAX_STAGES",
    "MAX_TEXT",
    "MAX_VERSION",
    "MAX_YEAR",
    "MIN_YEAR",
]

MAX_STAGES: Final = 64
"""Open stages in one pipeline."""

MAX_TEXT: Final = 200
"""Characters in an id, a reason, a label, a next action or any other short text."""

MAX_NAME: Final = 64
"""Characters in a pipeline or stage name (identifiers, tighter than ``MAX_TEXT``)."""

MAX_FIELDS_BYTES: Final = 64 * 1024
"""A deal's custom ``fields``, encoded as compact UTF-8 JSON."""

MAX_DEPTH: Final = 32
"""Nesting of lists and mappings, in every parser: fields, definitions, stored JSON."""

MAX_AMOUNT_DIGITS: Final = 18
"""Digits of an amount before the decimal point."""

MAX_AMOUNT_PLACES: Final = 6
"""Digits of an amount after the decimal point."""

MIN_YEAR: Final = 1
MAX_YEAR: Final = 9998
"""Years of a timestamp after conversion to UTC (room for a day either side)."""

MAX_VERSION: Final = 2**31 - 1
"""A deal's or a pipeline's version: what every store's integer column holds."""

MAX_POSITION: Final = 2**63 - 1
"""A change's position in the log, and every ``after`` or position given to read it
(a 64-bit signed integer column)."""

MAX_PAGE: Final = 10_000
"""Changes one ``store.log()`` or ``consumer.poll()`` call reads at most."""

MAX_FIND_PAGE: Final = 10_000
"""Deals one ``store.find(limit=...)`` page may ask for (``limit=None`` streams them all)."""

MAX_FIND_FIELDS: Final = 16
"""Custom fields one ``find()`` or ``count()`` call may filter on."""

MAX_FIELD_NUMBER: Final = 2**53
"""Magnitude of a number in a ``fields`` filter: up to it every backend's JSON reads a
number exactly alike, so ``1``, ``1.0`` and a stored ``1`` compare the same everywhere."""

MAX_PAST_VERSIONS: Final = 10_000
"""Versions a deal stored with a past (``store.add`` of a deal beyond version 1, or an
old database upgraded to the change log) may have: each becomes one logged change."""

MAX_BULK: Final = 100_000
"""Deals one ``store.add_many()`` or ``Tracker.open_many()`` call takes: one transaction
holds them all, so this bounds what it locks and keeps in memory."""

MAX_RECORD: Final = 1 << 20
"""Characters of one CSV record ``salespipeline import`` reads (1 MiB): a longer one is
rejected as its row, and the reader never holds more of it."""

MAX_RATE_DIGITS: Final = 18
"""Digits of an exchange rate (``report(..., rates=...)``) before the decimal point."""

MAX_RATE_PLACES: Final = 12
"""Digits of an exchange rate after the decimal point: with the amount limits, every
converted amount and every sum of them stays exact."""
