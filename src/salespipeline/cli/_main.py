"""The ``salespipeline`` command: ``demo``, ``report``, ``movement``, ``accuracy``, ``lint``,
``diagram``, ``migrate`` and ``import``.

This is the edge where files, the database, the terminal and the wall clock are
touched. Bad input (an unreadable file, an invalid definition, a missing database, a
plugin that does not load) ends with exit status 2 and one line on stderr, never a
traceback. Plugins (``--plugin MODULE`` and the ``salespipeline.plugins`` entry
points) are imported before the command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from salespipeline import __version__, presets
from salespipeline._checks import to_utc
from salespipeline.cli import _accuracy
from salespipeline.cli._demo import END, SimulatedClock, open_store, simulate
from salespipeline.cli._import import add_import, named_file
from salespipeline.cli._movement import (
    add_money,
    add_movement,
    add_window,
    html_window,
    moved,
    movement_options,
    shown,
)
from salespipeline.cli._plugins import ENTRY_POINT_GROUP, PluginError, load_plugins, unregistered
from salespipeline.cli._progress import Progress as _Progress
from salespipeline.cli._report import FORMATS, checked_output, currency, rates, rendered, write
from salespipeline.deal import Deal
from salespipeline.definitions import load_pipeline
from salespipeline.errors import (
    DefinitionError,
    SalesPipelineError,
    StorageError,
    ValidationError,
)
from salespipeline.followups import overdue
from salespipeline.metrics import PipelineReport, render_html
from salespipeline.metrics._asof import check_owner
from salespipeline.migration import Migration, migrate_store
from salespipeline.pipeline import Pipeline
from salespipeline.storage import DealStore, SQLiteStore
from salespipeline.tracker import Tracker

__all__ = ["main"]

T = TypeVar("T")

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, handled by ``main``."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see {self.prog} --help)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 lint findings, 2 bad input)."""
    try:
        args = _parser().parse_args(argv)
        load_plugins(args.plugin)
        return int(args.run(args))
    except SystemExit as exit_:  # --help and --version
        return exit_.code if isinstance(exit_.code, int) else EXIT_OK
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly
        _silence_stdout()
        return EXIT_OK
    except (_UsageError, PluginError) as error:
        return _fail(str(error))
    except (SalesPipelineError, OSError) as error:
        return _fail(_one_line(error))
    except KeyboardInterrupt:
        return 130


def _silence_stdout() -> None:
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _fail(message: str) -> int:
    print(f"salespipeline: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _one_line(error: BaseException) -> str:
    """The error's message on one line (a file name may hold a newline)."""
    if isinstance(error, DefinitionError):
        where = f"pipeline {error.pipeline!r}" if error.pipeline else "definition"
        text = f"invalid {where}: " + "; ".join(error.problems)
    elif isinstance(error, OSError) and error.strerror:
        text = f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    else:
        text = str(error)
    return " ".join(text.split())


# -- arguments -----------------------------------------------------------------------


def _parser() -> _Parser:
    parser = _Parser(
        prog="salespipeline",
        description="Sales pipelines as state machines: simulate, report, movement, lint, draw, "
        "migrate, import.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first, for the guard kinds it registers (repeatable; modules of "
        f"the {ENTRY_POINT_GROUP} entry points load by themselves)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(commands)
    _add_report(commands)
    add_movement(commands, _movement)
    _accuracy.add_accuracy(commands, _forecast_accuracy)
    _add_lint(commands)
    _add_diagram(commands)
    _add_migrate(commands)
    add_import(commands)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser("demo", help="simulate deals on a SQLite file and print a report")
    demo.add_argument("--db", type=Path, help="SQLite file (default: a fresh temporary file)")
    demo.add_argument("--deals", type=_positive_int, default=1000, help="deals (default 1000)")
    demo.add_argument(
        "--preset", choices=sorted(presets.PRESETS), default="seven_stage", help="stage set"
    )
    demo.add_argument("--seed", type=int, default=2026, help="random seed (default 2026)")
    demo.set_defaults(run=_demo)


def _add_report(commands: Any) -> None:
    report = commands.add_parser("report", help="print the metrics of a database's pipelines")
    report.add_argument("--db", type=Path, required=True, help="SQLite file")
    report.add_argument("--pipeline", help="only this pipeline (default: every one recorded)")
    report.add_argument(
        "--as-of",
        metavar="WHEN",
        help="report the pipeline as it stood then: an ISO 8601 date (00:00 UTC of that "
        "day, e.g. 2026-03-01) or date and time with a timezone (default: now)",
    )
    report.add_argument("--now", help="deprecated: the old name of --as-of")
    report.add_argument("--owner", help="only the deals of this owner")
    report.add_argument("--format", choices=FORMATS, default="text", help="default: text")
    report.add_argument(
        "--output", type=Path, metavar="FILE", help="write to FILE (default: stdout)"
    )
    add_money(report)
    add_window(report, required=False)
    report.set_defaults(run=_report)


def _add_lint(commands: Any) -> None:
    lint = commands.add_parser("lint", help="report suspicious parts of a definition file")
    lint.add_argument("file", type=Path, help="pipeline definition (.toml or .json)")
    lint.set_defaults(run=_lint)


def _add_diagram(commands: Any) -> None:
    diagram = commands.add_parser("diagram", help="draw a definition file as Mermaid or DOT")
    diagram.add_argument("file", type=Path, help="pipeline definition (.toml or .json)")
    diagram.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")
    diagram.set_defaults(run=_diagram)


def _add_migrate(commands: Any) -> None:
    migrate = commands.add_parser("migrate", help="move a database's deals to a new definition")
    migrate.add_argument("--db", type=Path, required=True, help="SQLite file")
    migrate.add_argument("--to", type=Path, required=True, help="target definition file")
    migrate.add_argument("--from", dest="source", help="recorded pipeline to migrate from")
    migrate.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="map a stage (repeatable); same-named stages map to themselves",
    )
    migrate.set_defaults(run=_migrate)


# -- commands ------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    """Simulate into ``--db``, or into a temporary file that is removed afterwards."""
    if args.db is not None:
        return _simulate(args, _database_path(args.db))
    with tempfile.TemporaryDirectory(prefix="salespipeline-demo-") as folder:
        return _simulate(args, Path(folder) / "demo.sqlite")


def _simulate(args: argparse.Namespace, path: Path) -> int:
    clock = SimulatedClock()
    pipeline = presets.PRESETS[args.preset](clock=clock)
    with open_store(path) as store:
        first = sum(1 for _ in store.find())
        tracker = Tracker(store, pipeline, clock=clock)
        with _Progress("simulating deals", args.deals) as progress:
            simulate(
                tracker,
                pipeline,
                clock,
                deals=args.deals,
                seed=args.seed,
                first_id=first,
                progress=progress.update,
            )
        report = store.report(pipeline, as_of=END)
        late = overdue(store.find(pipeline=pipeline.name, open=True), now=END)
    print(f"Simulated {args.deals:,} deals through {pipeline.name} (seed {args.seed}) in {path}")
    _print_block(report.render())
    _print_block(_follow_ups(late, now=END))
    if args.db is not None:
        print(f"\nAgain, any time: salespipeline report --db {path} --as-of {END.isoformat()}")
    else:
        print(
            "\nThe data was in a temporary file, now removed; to keep it and report on it "
            "later: salespipeline demo --db demo.sqlite"
        )
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    """Every option checked first; the output written only once it is complete."""
    now = _as_of(args)
    owner = check_owner(args.owner)
    code, converted = currency(args.currency), rates(args.currency, args.rate)
    output = checked_output(args.output, _database_path(args.db))
    window = html_window(args)
    with _existing_store(args.db) as store:
        chosen = _chosen(store, args.pipeline, args.db)
        reports = [
            _rated(store, p, now=now, owner=owner, currency=code, rates=converted) for p in chosen
        ]
        if args.format == "text":
            text = _text_reports(store, reports, now=now)
        elif window is not None:
            text = render_html(*reports, movements=[moved(store, p, window) for p in chosen])
        else:
            text = rendered(args.format, reports)
    write(text, output)
    return EXIT_OK


def _movement(args: argparse.Namespace) -> int:
    """Every option checked first; the output written only once it is complete."""
    options = movement_options(args)
    with _existing_store(args.db) as store:
        movements = [moved(store, p, options) for p in _chosen(store, args.pipeline, args.db)]
    write(shown(args.format, movements), None)
    return EXIT_OK


def _forecast_accuracy(args: argparse.Namespace) -> int:
    """Every option checked first; the output written only once it is complete."""
    options = _accuracy.accuracy_options(args)
    with _existing_store(args.db) as store:
        chosen = _chosen(store, args.pipeline, args.db)
        results = [_accuracy.measured(store, p, options) for p in chosen]
    write(_accuracy.shown(args.format, results), None)
    return EXIT_OK


def _rated(
    store: DealStore,
    pipeline: Pipeline,
    *,
    now: datetime,
    owner: str | None,
    currency: str | None,
    rates: dict[str, Decimal] | None,
) -> PipelineReport:
    """The pipeline's report; currencies found without a rate are named with the option."""
    try:
        return store.report(pipeline, as_of=now, owner=owner, currency=currency, rates=rates)
    except ValidationError as error:
        if error.field != "rates" or currency is None or rates is None:
            raise
        found = store.report(pipeline, as_of=now, owner=owner).currencies
        missing = [code for code in found if code != currency and code not in rates]
        if not missing:
            raise
        raise ValidationError(
            f"--currency {currency}: pipeline {pipeline.name} has deals in "
            f"{', '.join(missing)} without a --rate: add --rate {missing[0]}=RATE "
            f"(the value of one {missing[0]} in {currency}) for each"
        ) from None


def _text_reports(store: DealStore, reports: Sequence[PipelineReport], *, now: datetime) -> str:
    """The plain-text reports, each followed by its overdue follow-ups."""
    blocks = []
    for report in reports:
        late = overdue(store.find(pipeline=report.pipeline, open=True), now=now)
        blocks.append(_ended(report.render()) + _ended(_follow_ups(late, now=now)))
    return "\n".join(blocks)


def _ended(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _follow_ups(late: Sequence[Deal], *, now: datetime, shown: int = 5) -> str:
    """The overdue next actions, most overdue first, under the report's table."""
    lines = [f"\n{'overdue follow-ups':<24} {len(late)}"]
    for deal in late[:shown]:
        days = (now - deal.next_action_at).days if deal.next_action_at else 0
        lines.append(f"  {deal.id}: {deal.next_action or 'next action'} ({days}d overdue)")
    if len(late) > shown:
        lines.append(f"  … and {len(late) - shown} more")
    return "\n".join(lines)


def _lint(args: argparse.Namespace) -> int:
    findings = _definition(args.file).lint()
    for finding in findings:
        where = f" [{finding.stage}]" if finding.stage else ""
        print(f"{args.file}: {finding.code}{where}: {finding.message}")
    if not findings:
        print(f"{args.file}: no findings")
    return EXIT_FINDINGS if findings else EXIT_OK


def _diagram(args: argparse.Namespace) -> int:
    print(_definition(args.file).diagram(args.format), end="")
    return EXIT_OK


def _migrate(args: argparse.Namespace) -> int:
    target = _definition(args.to)
    mapping = _mapping(args.map)
    with _existing_store(args.db) as store:
        source = _source(store, args.source, target)
        migration = Migration(source, target, mapping)
        total = sum(1 for _ in store.find(pipeline=source.name))
        with _Progress("migrating deals", total) as progress:
            moved = migrate_store(store, migration, progress=progress.update)
    print(f"{moved:,} deal(s) {migration.reason}")
    return EXIT_OK


# -- helpers -------------------------------------------------------------------------


def _print_block(text: str) -> None:
    print(text, end="" if text.endswith("\n") else "\n")


def _existing_store(path: Path) -> SQLiteStore:
    """The store in ``path``; a missing file is an error, not a new empty database."""
    if not _database_path(path).is_file():
        raise ValidationError(f"no database at {path}")
    return SQLiteStore(path)


def _database_path(path: Path) -> Path:
    """``path`` if the file system can name it (no NUL, no lone surrogate), else refused."""
    return named_file(path, "--db")


def _chosen(store: DealStore, name: str | None, db: Path) -> list[Pipeline]:
    """The recorded pipeline called ``name`` (only its definition is read), else every one."""
    if name is not None:
        return [_stored(lambda: store.pipeline(name))]
    recorded = _stored(store.pipelines)
    if not recorded:
        raise ValidationError(f"{db} records no pipelines")
    return list(recorded)


def _source(store: DealStore, name: str | None, target: Pipeline) -> Pipeline:
    """The pipeline to migrate from: ``--from``, or the only recorded one besides the target."""
    if name is not None:
        return _stored(lambda: store.pipeline(name))
    others = [p for p in _stored(store.pipelines) if p.name != target.name]
    if len(others) != 1:
        known = ", ".join(p.name for p in others) or "none"
        raise ValidationError(f"say which pipeline to migrate with --from (recorded: {known})")
    return others[0]


def _definition(path: Path) -> Pipeline:
    """The pipeline in a definition file; a guard kind nobody registered is named with the fix."""
    try:
        return load_pipeline(path)
    except DefinitionError as error:
        refusal = unregistered(error, str(path))
        if refusal is None:
            raise
        raise refusal from error


def _stored(read: Callable[[], T]) -> T:
    """``read()`` of recorded definitions; a guard kind nobody registered is named with the fix."""
    try:
        return read()
    except StorageError as error:
        refusal = unregistered(error)
        if refusal is None:
            raise
        raise refusal from error


def _mapping(pairs: Sequence[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ValidationError(f"--map takes OLD=NEW, not {pair!r}")
        if old.strip() in mapping:
            raise ValidationError(f"--map names stage {old.strip()!r} twice")
        mapping[old.strip()] = new.strip()
    return mapping


def _as_of(args: argparse.Namespace) -> datetime:
    """The instant of ``--as-of`` (or of the deprecated ``--now``); now when neither."""
    if args.as_of is not None and args.now is not None:
        raise ValidationError("pass --as-of alone: --now is its deprecated old name")
    if args.now is not None:
        print("salespipeline: --now is deprecated: use --as-of", file=sys.stderr)
        return _instant(args.now, "--now")
    if args.as_of is not None:
        return _instant(args.as_of, "--as-of")
    return datetime.now(timezone.utc)


def _instant(text: str, option: str = "--now") -> datetime:
    """An ISO 8601 date (00:00 UTC of that day) or date and time with a timezone."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{option} {text!r} is not an ISO 8601 date or date and time"
        ) from None
    if value.tzinfo is None:
        raise ValidationError(f"{option} {text!r} needs a timezone, for example +00:00")
    return to_utc(value, option)  # refuses an instant that UTC cannot hold
