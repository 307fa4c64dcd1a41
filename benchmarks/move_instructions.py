"""Instructions a persisted ``Tracker.move`` on SQLite costs, counted by callgrind.

    python -m benchmarks.move_instructions          # needs valgrind; prints the count

Instructions, unlike seconds, come out the same on a busy machine. Two runs under
``valgrind --tool=callgrind`` (``PYTHONHASHSEED=0``) each copy one database of
``DEALS`` deals opened by a Tracker and walk ``DEALS`` of them, then none, through
the six moves of the seven-stage preset (``persist``'s walk: a load on each deal's
first move); their difference over the moves walked is the count a move. Runs of
one tree differ by about 2,000 instructions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.persist import MOVES_PER_DEAL, TrackerMover, ids, setup, sqlite_backend

DEALS = 40


def walk(count: int, database: Path) -> None:
    """Walk the first ``count`` deals of a fresh copy of ``database`` to the last stage."""
    directory = Path(tempfile.mkdtemp(prefix="sp-moves-"))
    try:
        copy = directory / "deals.sqlite"
        shutil.copy(database, copy)
        mover = TrackerMover(sqlite_backend(directory), str(copy))
        try:
            for deal_id in ids(DEALS)[:count]:
                mover.walk(deal_id)
        finally:
            mover.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def instructions(count: int, database: Path, out: Path) -> int:
    """The instructions of a whole ``walk(count, database)`` process under callgrind."""
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "benchmarks.move_instructions",
            "--walk",
            str(count),
            str(database),
        ],
        check=True,
        capture_output=True,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    summary = next(line for line in out.read_text().splitlines() if line.startswith("summary:"))
    return int(summary.split()[1])


def per_move() -> float:
    """Instructions a move: a walk of ``DEALS`` deals minus one of none, over its moves."""
    directory = Path(tempfile.mkdtemp(prefix="sp-moves-"))
    try:
        database = Path(setup(sqlite_backend(directory), DEALS))
        idle = instructions(0, database, directory / "callgrind.0")
        busy = instructions(DEALS, database, directory / "callgrind.1")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return (busy - idle) / (DEALS * MOVES_PER_DEAL)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--walk"]:
        walk(int(argv[1]), Path(argv[2]))
        return
    print(f"Tracker.move on SQLite: {per_move():,.0f} instructions a move")


if __name__ == "__main__":
    main(sys.argv[1:])
