"""The ``import`` command: deals from another CRM's CSV export, all in one transaction (private).

``salespipeline import --db PATH --pipeline NAME FILE.csv [--map MAP.toml] [--dry-run]
[--skip-bad]``. The file is checked to be UTF-8 (a BOM is fine) and its delimiter
(``,`` or ``;``) is read from the header before anything else; then rows stream
through the mapping (``_mapping``, ``_rows``; a record too long or not CSV is one
rejected row, ``_records``) and are written a batch at a time
(``store.add_many``) inside one transaction, so memory stays flat and nothing is
ever half imported. Each rejected row is one line on stderr (row number, column,
reason); with any, the exit status is 1 and the transaction is rolled back, unless
``--skip-bad`` (the good rows are committed). ``--dry-run`` always rolls back.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

import attrs

from salespipeline.cli._mapping import ImportMap, default_map, load_map
from salespipeline.cli._plugins import unregistered
from salespipeline.cli._progress import Progress
from salespipeline.cli._records import Broken, records
from salespipeline.cli._rows import Columns, Planned, bind, plan
from salespipeline.deal import to_actor
from salespipeline.errors import (
    DuplicateDealError,
    SalesPipelineError,
    StorageError,
    ValidationError,
)
from salespipeline.pipeline import Pipeline
from salespipeline.storage import DealStore, SQLiteStore

__all__ = ["BATCH", "add_import", "clock", "named_file", "run"]

BATCH: Final = 1000
"""Rows written per ``add_many`` call (all inside the one transaction of the import)."""
_SAMPLE: Final = 64 * 1024
_CHUNK: Final = 1 << 20

Reject = Callable[[int, "str | None", str], None]
"""Report a rejected row: its number, the column at fault (if one is), the reason."""


def clock() -> datetime:
    """The time stamped on deals opened without a past (a test may replace it)."""
    return datetime.now(timezone.utc)


def add_import(commands: Any) -> None:
    """Register ``import`` with the command line's subcommands."""
    command = commands.add_parser("import", help="import deals from a CSV file")
    command.add_argument("--db", type=Path, required=True, help="SQLite file")
    command.add_argument("--pipeline", required=True, help="recorded pipeline to import into")
    command.add_argument("file", type=Path, metavar="FILE.csv", help="UTF-8, ',' or ';'")
    command.add_argument(
        "--map", type=Path, dest="mapping", metavar="MAP.toml", help="columns and stages"
    )
    command.add_argument("--dry-run", action="store_true", help="check every row, write none")
    command.add_argument(
        "--skip-bad", action="store_true", help="write the good rows when some are rejected"
    )
    command.add_argument("--actor", default="import", help="who the log names (default: import)")
    command.set_defaults(run=run)


@attrs.define
class Tally:
    """What an import did: deals opened and imported with a past, rows rejected."""

    opened: int = 0
    imported: int = 0
    rejected: int = 0
    written: bool = False

    def count(self, batch: Sequence[Planned]) -> None:
        imported = sum(p.imported for p in batch)
        self.imported += imported
        self.opened += len(batch) - imported


@attrs.frozen
class Source:
    """A CSV file checked to be UTF-8: its path, line count and delimiter."""

    path: Path
    lines: int
    delimiter: str


def run(args: argparse.Namespace) -> int:
    """Check the options and the file, import, and print what was done; 1 if any row failed."""
    actor = to_actor(args.actor) or "import"
    source = scan(named_file(args.file, "FILE"))
    mapping = None if args.mapping is None else named_file(args.mapping, "--map")
    with _existing(args.db) as store:
        pipeline = _recorded(store, args.pipeline)
        loaded = None if mapping is None else load_map(mapping, pipeline)
        tally = imported(store, pipeline, loaded, source, args, actor=actor)
    print(_summary(tally, source.path, pipeline.name, dry_run=args.dry_run))
    return 1 if tally.rejected else 0


class _RolledBack(Exception):
    """Ends the import's transaction without committing it (a dry run, rejected rows)."""


def imported(
    store: DealStore,
    pipeline: Pipeline,
    mapping: ImportMap | None,
    source: Source,
    args: argparse.Namespace,
    *,
    actor: str,
) -> Tally:
    """Every row of ``source`` through ``mapping`` into ``store``, in one transaction."""
    tally = Tally()

    def reject(number: int, column: str | None, reason: str) -> None:
        tally.rejected += 1
        where = f"{column}: " if column else ""
        print(f"{source.path}: row {number}: {where}{' '.join(reason.split())}", file=sys.stderr)

    try:
        with store.transaction():
            _through(store, pipeline, mapping, source, actor, tally, reject)
            if args.dry_run or (tally.rejected and not args.skip_bad):
                raise _RolledBack
        tally.written = True
    except _RolledBack:
        pass
    return tally


def _through(
    store: DealStore,
    pipeline: Pipeline,
    mapping: ImportMap | None,
    source: Source,
    actor: str,
    tally: Tally,
    reject: Reject,
) -> None:
    """Plan each row and write them a batch at a time, reporting each one refused."""
    rows = _rows(source)
    header = next(rows, None)
    if header is None:
        raise ValidationError(f"{source.path} is empty: it needs a header row")
    names = header[1]
    if isinstance(names, Broken):
        raise ValidationError(f"{source.path}: the header row: {names.reason}")
    columns = _bound(mapping, names, pipeline)
    now, batch = clock(), _Batch()
    with Progress(f"importing {source.path.name}", source.lines - 1) as progress:
        for number, cells in rows:
            if isinstance(cells, Broken):
                reject(number, None, cells.reason)
                continue
            if not cells:
                continue
            try:
                batch.add(plan(cells, number, columns, now=now, actor=actor))
            except SalesPipelineError as error:
                reject(number, columns.column_of(error), str(error))
            if len(batch.rows) == BATCH:
                tally.count(_written(store, batch.rows, actor, columns, reject))
                batch = _Batch()
            if number % 100 == 0:
                progress.update(number - 1)
        tally.count(_written(store, batch.rows, actor, columns, reject))
        progress.update(source.lines - 1)


@attrs.define
class _Batch:
    """The rows planned since the last write, and the row that brought each id."""

    rows: list[Planned] = attrs.Factory(list)
    ids: dict[str, int] = attrs.Factory(dict)

    def add(self, row: Planned) -> None:
        """Take ``row``; ``ValidationError`` when an earlier row of the batch has its id."""
        first = self.ids.setdefault(row.deal.id, row.number)
        if first != row.number:
            raise ValidationError(
                f"deal id {row.deal.id!r} repeats the id of row {first}", field="id"
            )
        self.rows.append(row)


def _bound(mapping: ImportMap | None, header: Sequence[str], pipeline: Pipeline) -> Columns:
    """The mapping bound to the header; one without ``[columns]`` takes the header's names."""
    if mapping is None or not mapping.columns:
        named = default_map([name.strip() for name in header], pipeline)
        mapping = named if mapping is None else attrs.evolve(mapping, columns=named.columns)
    return bind(mapping, header, pipeline)


def _written(
    store: DealStore, batch: list[Planned], actor: str, columns: Columns, reject: Reject
) -> list[Planned]:
    """Write a batch (a savepoint: all of it or none); a taken id rejects its row and the
    rest is written again. The rows written."""
    while batch:
        try:
            with store.transaction():
                store.add_many([p.deal for p in batch if not p.imported], actor=actor)
                store.add_many([p.deal for p in batch if p.imported], actor=actor, imported=True)
            return batch
        except DuplicateDealError as taken:
            bad = [p for p in batch if p.deal.id == taken.deal_id]
            if not bad:
                raise
            reason = f"deal id {taken.deal_id!r} is taken, by a stored deal or an earlier row"
            reject(bad[0].number, columns.column("id"), reason)
            batch = [p for p in batch if p is not bad[0]]
    return batch


def scan(path: Path) -> Source:
    """``path`` read once, in chunks: refused unless UTF-8; its lines and delimiter."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines, offset, head = 0, 0, ""
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as error:
                at = offset + error.start - pending
                line = lines + chunk[: max(error.start - pending, 0)].count(b"\n") + 1
                raise _not_utf8(path, at, line) from None
            lines += chunk.count(b"\n")
            offset += len(chunk)
            if len(head) < _SAMPLE:
                head += text
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise _not_utf8(path, offset, lines + 1) from None
    return Source(path, lines + 1, _delimiter(head.removeprefix("\ufeff")))


def _not_utf8(path: Path, at: int, line: int) -> ValidationError:
    return ValidationError(
        f"{path} is not UTF-8 (byte {at:,}, line {line:,}): export it again as UTF-8 "
        "(or re-save it as 'CSV UTF-8')"
    )


def _delimiter(head: str) -> str:
    """``;`` when it splits the header into more cells than ``,`` does, else ``,``."""
    line = head.partition("\n")[0]
    try:
        counts = {d: len(next(csv.reader([line], delimiter=d), [])) for d in (";", ",")}
    except csv.Error:  # a header cell past csv's limit: reading the header says so
        return ","
    return ";" if counts[";"] > counts[","] else ","


def _rows(source: Source) -> Iterator[tuple[int, list[str] | Broken]]:
    """Each record of the file with its number (the header is row 1), streamed."""
    with source.path.open(encoding="utf-8-sig", newline="") as file:
        try:
            yield from records(file, source.delimiter)
        except UnicodeDecodeError:
            raise ValidationError(
                f"{source.path} changed while read: it is no longer UTF-8"
            ) from None


def _summary(tally: Tally, path: Path, pipeline: str, *, dry_run: bool) -> str:
    good = tally.opened + tally.imported
    parts = f"{tally.imported:,} with their past, {tally.opened:,} opened"
    rejected = f"{tally.rejected:,} row(s) rejected"
    if dry_run:
        return (
            f"{path}: dry run: {good:,} deal(s) would be imported ({parts}), {rejected}; "
            "nothing written"
        )
    if not tally.written:
        return (
            f"{path}: {rejected}, nothing imported (fix them, or pass --skip-bad to import "
            f"the other {good:,})"
        )
    skipped = f"; {rejected} and skipped" if tally.rejected else ""
    return f"{path}: imported {good:,} deal(s) into {pipeline} ({parts}){skipped}"


def named_file(path: Path, option: str) -> Path:
    """``path`` if the file system can name it (no NUL, no lone surrogate), else refused."""
    try:
        encoded = os.fsencode(path)
    except UnicodeEncodeError:
        encoded = b"\x00"
    if b"\x00" in encoded:
        raise ValidationError(f"{option} {str(path)!r} cannot name a file")
    return path


def _existing(path: Path) -> SQLiteStore:
    """The store in ``path``; a missing file is an error, not a new empty database."""
    if not named_file(path, "--db").is_file():
        raise ValidationError(f"no database at {path}")
    return SQLiteStore(path)


def _recorded(store: DealStore, name: str) -> Pipeline:
    """The recorded pipeline ``name``; a guard kind nobody registered is named with the fix."""
    try:
        return store.pipeline(name)
    except StorageError as error:
        refusal = unregistered(error)
        if refusal is None:
            raise
        raise refusal from error
