"""``salespipeline import`` on records csv cannot read: one rejected row each, the rest read.

A cell past csv's field limit, a row past ``MAX_RECORD``, a file with no newline at
all: each is one rejected row naming its number and the reason, in bounded memory.
"""

from __future__ import annotations

import csv
import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from salespipeline import Tracker, presets
from salespipeline.cli import _records, main
from salespipeline.cli._records import MAX_RECORD, Broken, records
from salespipeline.storage import SQLiteStore

PIPELINE = presets.five_stage()
LIMIT = csv.field_size_limit()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "deals.sqlite"
    with SQLiteStore(path) as store:
        Tracker(store, PIPELINE)
    return path


def imported(
    capsys: pytest.CaptureFixture[str], db: Path, path: Path
) -> tuple[int, list[str], list[str]]:
    status = main(
        ["import", "--db", str(db), "--pipeline", PIPELINE.name, str(path), "--skip-bad"]
    )
    err = capsys.readouterr().err.splitlines()
    with SQLiteStore(db) as store:
        ids = [d.id for d in store.find()]
    return status, [line.removeprefix(f"{path}: ") for line in err], ids


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rows.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_cell_past_csv_s_field_limit_is_one_rejected_row(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f"id,owner\na,kim\nb,{'x' * (LIMIT + 1)}\nc,lee\n")
    status, err, ids = imported(capsys, db, path)
    assert status == 1 and ids == ["a", "c"]
    assert err == [
        f"row 3: a cell is longer than {LIMIT:,} characters, more than any deal attribute "
        "holds; it was skipped"
    ]


def test_a_quoted_cell_of_many_megabytes_over_many_lines_is_one_rejected_row(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cell = ('line ""quoted"", more\n' * 200_000).rstrip("\n")  # about 4.4 MB
    path = write(tmp_path, f'id,owner\na,kim\nb,"{cell}"\nc,lee\n"d",park\n')
    status, err, ids = imported(capsys, db, path)
    assert status == 1 and ids == ["a", "c", "d"]
    assert len(err) == 1 and err[0].startswith("row 3: a cell is longer than")


def test_a_file_without_a_newline_after_its_header_is_refused_row_by_row(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "id,owner\na,kim\n" + "b," + "y," * (3 * MAX_RECORD))
    status, err, ids = imported(capsys, db, path)
    assert status == 1 and ids == ["a"]
    assert err == [
        f"row 3: the row is longer than {MAX_RECORD:,} characters, more than any deal holds "
        "(is a quote left open?); it was skipped"
    ]


def test_an_open_quote_that_swallows_the_file_is_one_rejected_row(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, 'id,owner\na,kim\nb,"never closed\n' + "c,lee\n" * MAX_RECORD)
    status, err, ids = imported(capsys, db, path)
    assert status == 1 and ids == ["a"]
    assert len(err) == 1 and err[0].startswith("row 3: ")


def test_a_header_csv_cannot_read_stops_the_command(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f"id,{'h' * (LIMIT + 1)}\na,kim\n")
    status, err, ids = imported(capsys, db, path)
    assert status == 2 and ids == []
    assert len(err) == 1 and "the header row: a cell is longer than" in err[0]


def test_any_other_csv_error_is_one_rejected_row(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = csv.reader

    def failing(lines: Any, **options: Any) -> Iterator[list[str]]:
        for cells in real(lines, **options):
            if cells[0] == "b":
                raise csv.Error("something csv dislikes")
            yield cells

    monkeypatch.setattr(_records.csv, "reader", failing)
    path = write(tmp_path, "id,owner\na,kim\nb,lee\n")
    status, err, ids = imported(capsys, db, path)
    assert status == 1 and ids == ["a"]
    assert err == ["row 3: the row is not valid CSV (something csv dislikes); it was skipped"]


class Endless(io.TextIOBase):
    """A line of ``size`` characters, then one good line."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.tail = ["\n", "c,lee\n"]

    def readline(self, limit: int | None = -1) -> str:
        if self.left:
            taken = min(self.left, limit if limit and limit > 0 else self.left)
            self.left -= taken
            return "z" * taken
        return self.tail.pop(0) if self.tail else ""


def test_a_line_of_hundreds_of_megabytes_is_read_in_bounded_memory() -> None:
    tracemalloc.start()
    try:
        read = list(records(Endless(300 * MAX_RECORD), ","))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [number for number, _ in read] == [1, 2]
    assert isinstance(read[0][1], Broken) and read[1][1] == ["c", "lee"]
    assert peak < 4 * MAX_RECORD
