"""Run every benchmark side by side and print one Markdown table.

    python benchmarks/run.py            # the full run (minutes; "find" writes 1,000,000 deals)
    python benchmarks/run.py --quick    # a smoke run on tiny sizes (seconds)

Figures are ratios against references measured in the same run. ``--quick`` runs
the same code on tiny sizes so the benchmarks never rot; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import attrs

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import (
    bulk_add,
    compile_cache,
    consume,
    find_page,
    long_history,
    memory,
    persist,
    walk,
)


@attrs.frozen
class Row:
    """One line of the table: what was measured, the figure, and how it compares."""

    benchmark: str
    subject: str
    figure: str
    ratio: str = ""
    verdict: str = ""


@attrs.frozen
class Sizes:
    """How much work each benchmark does."""

    deals: int
    rounds: int
    memory_deals: int
    definitions: int
    persisted_moves: int
    log_changes: int = 20_000
    long_entries: int = 10_000
    long_deals: int = 20
    find_deals: int = 1_000_000
    bulk_deals: int = 100_000


FULL = Sizes(deals=300, rounds=5, memory_deals=100_000, definitions=1_000, persisted_moves=2_000)
QUICK = Sizes(
    deals=10,
    rounds=1,
    memory_deals=200,
    definitions=64,
    persisted_moves=20,
    log_changes=50,
    long_entries=100,
    long_deals=2,
    find_deals=300,
    bulk_deals=50,
)


def _verdict(value: float, *, bar: float, goal: float, lower_is_better: bool = True) -> str:
    meets = (lambda limit: value <= limit) if lower_is_better else (lambda limit: value >= limit)
    if meets(goal):
        return "meets goal"
    return "meets bar" if meets(bar) else "MISSES BAR"


def walk_rows(sizes: Sizes) -> list[Row]:
    per_move = walk.measure(n_deals=sizes.deals, rounds=sizes.rounds)
    reference = per_move[walk.REFERENCE]
    ours = per_move[walk.SALESPIPELINE]
    rows = []
    for name, seconds in per_move.items():
        verdict = ""
        if name == walk.SALESPIPELINE:
            goal = per_move[walk.TRANSITIONS] / reference
            verdict = _verdict(ours / reference, bar=1.0, goal=goal)
        rows.append(
            Row(
                "1. transition",
                name,
                f"{seconds * 1e6:.2f} µs",
                f"{seconds / reference:.4f}x",
                verdict,
            )
        )
    return rows


def _per_backend(
    section: str,
    measure: Callable[[persist.Backend], dict[str, float]],
    *,
    ours: str,
    reference: str,
    unit: str,
    bar: float,
    relative: Sequence[tuple[str, str, float]] = (),
) -> list[Row]:
    """One row per contender per backend, rates as ratios of ``reference``'s; for each
    ``(name, base, bar)`` of ``relative``, a row of ``name``'s rate as a ratio of ``base``'s."""
    rows = []
    with persist.backends() as backends:
        for backend in backends:
            if isinstance(backend, str):
                rows.append(Row(section, "PostgreSQL", backend))
                continue
            rate = measure(backend)
            for name, base, bar_of_base in relative:
                if name in rate:
                    rows.append(
                        _relative_row(section, backend.name, rate, name, base, bar_of_base)
                    )
            for name, per_second in rate.items():
                ratio = per_second / rate[reference]
                verdict = ""
                if name == ours:
                    verdict = _verdict(ratio, bar=bar, goal=0.9, lower_is_better=False)
                rows.append(
                    Row(
                        section,
                        f"{backend.name}: {name}",
                        f"{per_second:,.0f} {unit}/s",
                        f"{ratio:.2f}x",
                        verdict,
                    )
                )
    return rows


def persist_rows(sizes: Sizes) -> list[Row]:
    return _per_backend(
        "2. persisted",
        lambda backend: persist.measure(backend, moves=sizes.persisted_moves, rounds=sizes.rounds),
        ours=persist.TRACKER,
        reference=persist.REFERENCE,
        unit="moves",
        bar=0.6,
        relative=[(persist.SQLALCHEMY, persist.TRACKER, 0.7)],
    )


def _relative_row(
    section: str, backend: str, rate: dict[str, float], name: str, base: str, bar: float
) -> Row:
    ratio = rate[name] / rate[base]
    return Row(
        section,
        f"{backend}: {name}, against the store's own",
        f"{rate[name]:,.0f} moves/s",
        f"{ratio:.2f}x",
        _verdict(ratio, bar=bar, goal=0.9, lower_is_better=False),
    )


def consume_rows(sizes: Sizes) -> list[Row]:
    return _per_backend(
        "5. consume",
        lambda backend: consume.measure(backend, changes=sizes.log_changes, rounds=sizes.rounds),
        ours=consume.OURS,
        reference=consume.REFERENCE,
        unit="changes",
        bar=0.5,
    )


def _length_rows(subject: str, per_move: dict[str, float], entries: int) -> list[Row]:
    """The short and the long deal's cost per move; the long one's as a multiple."""
    short, long = per_move["short"], per_move["long"]
    return [
        Row(
            "6. long history", f"{subject}, {long_history.SHORT} entries", f"{short * 1e6:,.1f} µs"
        ),
        Row(
            "6. long history",
            f"{subject}, {entries:,} entries",
            f"{long * 1e6:,.1f} µs",
            f"{long / short:.2f}x",
            _verdict(long / short, bar=1.5, goal=1.1),
        ),
    ]


def long_rows(sizes: Sizes) -> list[Row]:
    entries, rounds = sizes.long_entries, sizes.rounds
    pure = long_history.pure(entries, moves=20 * sizes.persisted_moves, rounds=rounds)
    rows = _length_rows(
        long_history.PURE, {"short": pure["7"], "long": pure[str(entries)]}, entries
    )
    with persist.backends() as backends:
        for backend in backends:
            if isinstance(backend, str):
                rows.append(Row("6. long history", "PostgreSQL", backend))
                continue
            measured = long_history.tracked(
                backend,
                entries,
                deals=sizes.long_deals,
                moves=sizes.persisted_moves // 2,
                rounds=rounds,
            )
            for subject, per_move in measured.items():
                rows += _length_rows(f"{backend.name}: {subject}", per_move, entries)
    return rows


def find_rows(sizes: Sizes) -> list[Row]:
    """A keyset page of one owner against a full scan, and fifty pages deep against the first."""
    rows = []
    for result in find_page.run(sizes.find_deals, rounds=sizes.rounds):
        if isinstance(result, str):
            rows.append(Row("7. find", "PostgreSQL", result))
            continue
        seconds = result.seconds
        rows += [
            Row(
                "7. find",
                f"{result.backend}: {find_page.SCAN}",
                f"{seconds[find_page.SCAN] * 1e3:,.1f} ms",
            ),
            Row(
                "7. find",
                f"{result.backend}: {find_page.FIRST} ({sizes.find_deals:,} deals)",
                f"{seconds[find_page.FIRST] * 1e3:,.2f} ms",
                f"{result.first_vs_scan:.4f}x of the scan",
                _verdict(result.first_vs_scan, bar=0.01, goal=0.001),
            ),
            Row(
                "7. find",
                f"{result.backend}: page {result.depth}",
                f"{seconds[find_page.DEEP] * 1e3:,.2f} ms",
                f"{result.deep_vs_first:.2f}x of the first",
                _verdict(result.deep_vs_first, bar=1.5, goal=1.1),
            ),
        ]
    return rows


def bulk_rows(sizes: Sizes) -> list[Row]:
    """``store.add_many`` against hand-written executemany inserts of the same rows, and
    ``salespipeline import`` of the same deals as a CSV file against ``add_many``."""
    rows = _per_backend(
        "8. bulk add",
        lambda backend: bulk_add.measure(
            backend, n_deals=sizes.bulk_deals, rounds=min(sizes.rounds, 3)
        ),
        ours=bulk_add.ADD_MANY,
        reference=bulk_add.REFERENCE,
        unit="deals",
        bar=0.8,
    )
    return [*rows, import_row(sizes)]


def import_row(sizes: Sizes) -> Row:
    """The time of ``salespipeline import`` of an N-row CSV as a multiple of ``add_many``'s."""
    with tempfile.TemporaryDirectory(prefix="salespipeline-bench-") as folder:
        seconds = bulk_add.measure_import(
            Path(folder), n_deals=sizes.bulk_deals, rounds=min(sizes.rounds, 3)
        )
    ratio = seconds[bulk_add.IMPORT] / seconds[bulk_add.ADD_MANY]
    return Row(
        "8. bulk add",
        f"SQLite file: {bulk_add.IMPORT} of a {sizes.bulk_deals:,}-row CSV",
        f"{seconds[bulk_add.IMPORT]:,.2f} s",
        f"{ratio:.2f}x of add_many",
        _verdict(ratio, bar=4.0, goal=2.0),
    )


def memory_rows(sizes: Sizes) -> list[Row]:
    per_deal = memory.bytes_per_deal(sizes.memory_deals)
    verdict = _verdict(per_deal, bar=4096, goal=1536)
    subject = f"bytes per deal, {memory.HISTORY} history entries ({sizes.memory_deals:,} deals)"
    return [
        Row("3. memory", subject, f"{per_deal:,.0f} B", f"{per_deal / 4096:.2f}x of 4 KB", verdict)
    ]


def compile_rows(sizes: Sizes) -> list[Row]:
    cost = compile_cache.compile_cost(rounds=sizes.rounds, lookups=100 * sizes.deals)
    grown = compile_cache.growth(definitions=sizes.definitions)
    kept = ", ".join(f"{b / 1024:,.0f}" for b in grown.retained_bytes)
    growth = grown.retained_bytes[-1] - grown.retained_bytes[0]
    flat = abs(growth) < 64 * 1024 and len(set(grown.registry_entries)) == 1
    return [
        Row("4. compile", "first compile, 7-stage shape", f"{cost.first * 1e3:.2f} ms", "1x"),
        Row(
            "4. compile",
            "cached compile, same shape",
            f"{cost.cached * 1e6:.2f} µs",
            f"{cost.cached / cost.first:.5f}x",
        ),
        Row(
            "4. compile",
            "Pipeline(...) with a cached shape",
            f"{cost.pipeline_cached * 1e6:.1f} µs",
        ),
        Row(
            "4. compile",
            f"KB kept after each of {len(grown.retained_bytes)} batches "
            f"({grown.definitions:,} distinct definitions)",
            kept,
            f"+{growth / 1024:,.1f} KB after batch 1",
            "flat" if flat else "GROWS",
        ),
        Row(
            "4. compile",
            "shapes cached / cache bound; registry entries; evicted class freed",
            f"{grown.cache_size} / {grown.cache_max}; {grown.registry_entries[-1]}; "
            f"{grown.evicted_class_freed}",
            verdict="bounded" if grown.evicted_class_freed else "LEAKS",
        ),
    ]


SECTIONS: dict[str, Callable[[Sizes], list[Row]]] = {
    "walk": walk_rows,
    "persist": persist_rows,
    "memory": memory_rows,
    "compile": compile_rows,
    "consume": consume_rows,
    "long": long_rows,
    "find": find_rows,
    "bulk": bulk_rows,
}


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header() -> str:
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("salespipeline", "python-statemachine", "transitions", "attrs")
    )
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"- machine: {_cpu()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}\n"
        f"- Python {platform.python_version()} ({platform.python_implementation()}); {versions}\n"
        f"- date: {now}"
    )


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| benchmark | subject | figure | ratio | verdict |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.benchmark} | {r.subject} | {r.figure} | {r.ratio} | {r.verdict} |" for r in rows
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument(
        "--only", action="append", choices=sorted(SECTIONS), help="run only these sections"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rows: list[Row] = []
    for name in args.only or SECTIONS:
        print(f"running {name}…", file=sys.stderr, flush=True)
        rows += SECTIONS[name](sizes)
    if args.quick:
        rows = [attrs.evolve(row, verdict="(smoke run)") for row in rows]
    print(header())
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
