"""The command line: every command, and one-line errors with exit status 2 for bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

import attrs
import pytest

from salespipeline import Pipeline, Stage, Tracker, dump_pipeline, guards, presets
from salespipeline.cli import main
from salespipeline.cli._main import _Progress
from salespipeline.deal import Deal
from salespipeline.storage import SQLiteStore

NOW = "2026-06-30T00:00:00+00:00"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _assert_one_line_error(status: int, err: str, fragment: str) -> None:
    assert status == 2
    assert err.startswith("salespipeline: error: ")
    assert err.count("\n") == 1
    assert fragment in err
    assert "Traceback" not in err


@pytest.fixture
def demo_db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    db = tmp_path / "demo.sqlite"
    assert main(["demo", "--db", str(db), "--deals", "40", "--seed", "7"]) == 0
    capsys.readouterr()
    return db


def _report_part(out: str) -> str:
    return out[out.index("Pipeline ") : out.index("\nAgain, any time")]


# -- demo ----------------------------------------------------------------------------


def test_demo_simulates_and_prints_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "d.sqlite"
    status, out, _ = _run(
        capsys, "demo", "--db", str(db), "--deals", "60", "--preset", "four_stage"
    )
    assert status == 0
    assert out.startswith(f"Simulated 60 deals through four_stage (seed 2026) in {db}\n")
    for fragment in ["60 deals:", "conversion", "win rate (count)", "sales velocity"]:
        assert fragment in out
    for fragment in ["weighted pipeline", "stalled deals", "lead_generation"]:
        assert fragment in out
    with SQLiteStore(db) as store:
        assert len(list(store.find(pipeline="four_stage"))) == 60


def test_demo_is_reproducible_for_a_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = []
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        _, out, _ = _run(
            capsys, "demo", "--db", str(tmp_path / name), "--deals", "30", "--seed", seed
        )
        runs.append(_report_part(out))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_demo_without_db_writes_a_fresh_temporary_file_each_run_and_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    paths = []
    for _ in range(2):
        status, out, _ = _run(capsys, "demo", "--deals", "5")
        assert status == 0
        paths.append(Path(out.splitlines()[0].rsplit(" in ", 1)[1]))
        assert "salespipeline demo --db demo.sqlite" in out
    assert paths[0] != paths[1]
    assert all(p.parent.parent == tmp_path for p in paths)
    assert list(tmp_path.iterdir()) == []  # each run left nothing behind


def test_demo_runs_again_on_the_same_db(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "demo", "--db", str(demo_db), "--deals", "10")
    assert status == 0
    assert "50 deals:" in out


def test_the_report_command_repeats_the_demo_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "d.sqlite"
    _, demo_out, _ = _run(capsys, "demo", "--db", str(db), "--deals", "25")
    status, out, _ = _run(capsys, "report", "--db", str(db), "--as-of", NOW)
    assert status == 0
    assert out == _report_part(demo_out)


def test_report_lists_overdue_follow_ups_most_overdue_first(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SQLiteStore(demo_db) as store:
        expected = [
            d.id
            for d in sorted(
                (d for d in store.find(open=True) if d.next_action_at is not None),
                key=lambda d: (d.next_action_at, d.id),
            )
            if d.next_action_at < datetime.fromisoformat(NOW)
        ]
    assert expected, "the demo plans next actions, some past due"
    status, out, _ = _run(capsys, "report", "--db", str(demo_db), "--as-of", NOW)
    assert status == 0
    assert f"overdue follow-ups       {len(expected)}" in out
    listed = [line.split(":")[0].strip() for line in out.splitlines() if "d overdue)" in line]
    assert listed == expected[:5]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["demo", "--preset", "nine_stage"], "invalid choice: 'nine_stage'"),
        (["demo", "--deals", "0"], "must be at least 1"),
        (["demo", "--deals", "many"], "is not a whole number"),
        ([], "required: COMMAND"),
        (["forecast"], "invalid choice: 'forecast'"),
    ],
)
def test_bad_arguments(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> None:
    _assert_one_line_error(*_run(capsys, *argv)[::2], fragment)


def test_help_and_version_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "demo" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert "salespipeline" in capsys.readouterr().out


# -- report --------------------------------------------------------------------------


def test_report_one_pipeline(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "report", "--db", str(demo_db), "--pipeline", "seven_stage")
    assert status == 0
    assert out.startswith("Pipeline seven_stage as of ")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--pipeline", "funnel"], "unknown pipeline 'funnel' (known: seven_stage)"),
        (["--as-of", "2026-06-30 00:00"], "needs a timezone"),
        (["--as-of", "midsummer"], "is not an ISO 8601 date or date and time"),
    ],
)
def test_report_bad_options(
    demo_db: Path, capsys: pytest.CaptureFixture[str], extra: list[str], fragment: str
) -> None:
    status, _, err = _run(capsys, "report", "--db", str(demo_db), *extra)
    _assert_one_line_error(status, err, fragment)


def test_report_on_a_missing_database_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "missing.sqlite"
    status, _, err = _run(capsys, "report", "--db", str(db))
    _assert_one_line_error(status, err, "no database at")
    assert not db.exists()


def test_report_on_a_file_that_is_not_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "notes.sqlite"
    db.write_text("these are not the deals you are looking for\n" * 100)
    status, _, err = _run(capsys, "report", "--db", str(db))
    _assert_one_line_error(status, err, str(db))


def test_report_on_an_empty_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "empty.sqlite"
    SQLiteStore(db).close()
    status, _, err = _run(capsys, "report", "--db", str(db))
    _assert_one_line_error(status, err, "records no pipelines")


@attrs.frozen
class _Meddic:
    """A custom guard kind that only the app that recorded ``b2b`` registers."""

    name: str = "meddic"

    def __call__(self, deal: Deal) -> list[guards.Violation]:
        return []

    def spec(self) -> dict[str, str]:
        return {"guard": "meddic"}


@pytest.fixture
def custom_guard_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database recording ``partner`` and ``b2b``, whose guard kind is not registered here."""
    db = tmp_path / "crm.sqlite"
    partner = Pipeline(
        "partner", [Stage("intro", probability=0.2), Stage("deal", probability=0.6)]
    )
    b2b = Pipeline(
        "b2b", [Stage("lead", probability=0.1), Stage("demo", probability=0.5, requires=_Meddic())]
    )
    with monkeypatch.context() as registered, SQLiteStore(db) as store:
        registered.setitem(guards.KINDS.factories, "meddic", _Meddic)
        tracker = Tracker(store, [b2b, partner])
        tracker.open("partner", "p1")
    return db


def test_report_reads_only_the_pipeline_asked_for(
    custom_guard_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(
        capsys, "report", "--db", str(custom_guard_db), "--pipeline", "partner"
    )
    assert (status, err) == (0, "")
    assert out.startswith("Pipeline partner as of ")


@pytest.mark.parametrize("extra", [["--pipeline", "b2b"], []])
def test_report_names_an_unregistered_guard_kind_and_the_fix(
    custom_guard_db: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    status, _, err = _run(capsys, "report", "--db", str(custom_guard_db), *extra)
    _assert_one_line_error(
        status,
        err,
        "the stored definition of pipeline 'b2b' names guard kind 'meddic', which is not "
        "registered: register it with salespipeline.guards.register in a module and pass "
        "--plugin MODULE, or install a package with a salespipeline.plugins entry point",
    )


# -- lint and diagram ----------------------------------------------------------------


@pytest.fixture
def five_toml(tmp_path: Path) -> Path:
    path = tmp_path / "five.toml"
    dump_pipeline(presets.five_stage(labels="ko"), path)
    return path


def test_lint_a_clean_file(five_toml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "lint", str(five_toml))[:2] == (0, f"{five_toml}: no findings\n")


def test_lint_findings_exit_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "odd.json"
    path.write_text(
        '{"format": 1, "name": "odd", "lost_reasons": ["price"], "stages": ['
        '{"name": "a", "probability": 0.5, "requires": ["bant"]},'
        '{"name": "b", "probability": 0.2}]}'
    )
    status, out, _ = _run(capsys, "lint", str(path))
    assert status == 1
    assert out.splitlines() == [
        f"{path}: decreasing-probability [b]: stage 'b' has probability 0.2, lower than 0.5 "
        "of the stage before it ('a')",
        f"{path}: guard-on-first-stage [a]: the first stage 'a' requires bant: new deals must "
        "pass it when started; qualify them in a later stage instead",
        f"{path}: single-lost-reason: lost_reasons lists only 'price': every lost deal gets it, "
        "so it records nothing; list the real reasons or allow any (lost_reasons=None)",
    ]


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("missing.toml", None, "cannot read the file"),
        ("bad.toml", "format = ", "invalid TOML"),
        ("bad.json", "{", "invalid JSON"),
        ("p.yaml", "format: 1", "unsupported file type '.yaml'"),
        ("unknown.toml", 'format = 1\nname = "x"\n[[stages]]\nname = "a"\n', "probability"),
    ],
)
@pytest.mark.parametrize("command", ["lint", "diagram"])
def test_unreadable_definitions(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    name: str,
    content: str | None,
    fragment: str,
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    status, out, err = _run(capsys, command, str(path))
    _assert_one_line_error(status, err, fragment)
    assert out == ""


@pytest.mark.parametrize(
    ("text_format", "start"), [("mermaid", "---\ntitle: five_stage v1"), ("dot", "digraph")]
)
def test_diagram(
    five_toml: Path, capsys: pytest.CaptureFixture[str], text_format: str, start: str
) -> None:
    status, out, _ = _run(capsys, "diagram", str(five_toml), "--format", text_format)
    assert status == 0
    assert out.startswith(start)
    assert "거래 마감" in out
    assert out == presets.five_stage(labels="ko").diagram(text_format)  # type: ignore[arg-type]


# -- migrate -------------------------------------------------------------------------


def test_migrate_seven_to_five(
    demo_db: Path, five_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    maps = ["--map", "needs_assessment=initial_contact", "--map", "negotiation=closing"]
    status, out, _ = _run(capsys, "migrate", "--db", str(demo_db), "--to", str(five_toml), *maps)
    assert (status, out) == (0, "40 deal(s) migrated from seven_stage v1 to five_stage v1\n")
    with SQLiteStore(demo_db) as store:
        deals = list(store.find())
        assert {d.pipeline for d in deals} == {"five_stage"}
        assert all(
            d.history[-1].reason == "migrated from seven_stage v1 to five_stage v1" for d in deals
        )
        assert {p.name for p in store.pipelines()} == {"five_stage", "seven_stage"}
    status, out, _ = _run(capsys, "report", "--db", str(demo_db))
    assert status == 0
    assert out.startswith("Pipeline five_stage as of ")
    assert "\n40 deals:" in out.split("\n\nPipeline seven_stage")[0]
    assert "\n0 deals" in out.split("\n\nPipeline seven_stage")[1]
    _, before, _ = _run(capsys, "report", "--db", str(demo_db), "--as-of", NOW)
    assert before.startswith("Pipeline five_stage as of 2026-06-30 00:00 UTC\n0 deals:")
    assert "\n\nPipeline seven_stage as of 2026-06-30 00:00 UTC\n40 deals" in before


def test_migrate_lists_every_unmapped_stage(
    demo_db: Path, five_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = _run(capsys, "migrate", "--db", str(demo_db), "--to", str(five_toml))
    _assert_one_line_error(status, err, "stage 'needs_assessment' is not mapped")
    assert "stage 'negotiation' is not mapped" in err
    with SQLiteStore(demo_db) as store:
        assert {d.pipeline for d in store.find()} == {"seven_stage"}


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--map", "negotiation"], "--map takes OLD=NEW, not 'negotiation'"),
        (["--map", "a=b", "--map", "a=c"], "names stage 'a' twice"),
        (["--from", "funnel"], "unknown pipeline 'funnel'"),
    ],
)
def test_migrate_bad_options(
    demo_db: Path,
    five_toml: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    fragment: str,
) -> None:
    argv = ["migrate", "--db", str(demo_db), "--to", str(five_toml), *extra]
    status, _, err = _run(capsys, *argv)
    _assert_one_line_error(status, err, fragment)


def test_migrate_needs_from_when_several_pipelines_could_be_meant(
    demo_db: Path, five_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SQLiteStore(demo_db) as store:
        store.save_pipeline(presets.funnel())
    status, _, err = _run(capsys, "migrate", "--db", str(demo_db), "--to", str(five_toml))
    _assert_one_line_error(status, err, "--from (recorded: funnel, seven_stage)")


# -- progress and the module entry point ---------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_once_work_takes_a_moment() -> None:
    stream = _Terminal()
    with _Progress("working", 10, stream=stream) as progress:
        progress.update(1)
        assert stream.getvalue() == ""
        progress._started -= 1.0
        progress.update(5)
    assert stream.getvalue() == "\rworking [###############...............] 5/10\n"


def test_progress_is_silent_off_a_terminal() -> None:
    stream = io.StringIO()
    with _Progress("working", 10, stream=stream) as progress:
        progress._started -= 1.0
        progress.update(10)
    assert stream.getvalue() == ""


def test_python_dash_m_runs_the_demo(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    done = subprocess.run(
        [sys.executable, "-m", "salespipeline", "demo", "--deals", "50", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Simulated 50 deals through seven_stage")
    assert "win rate" in done.stdout


def test_report_as_of_a_date_is_that_day_at_midnight_utc(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(capsys, "report", "--db", str(demo_db), "--as-of", "2026-03-01")
    _, same, _ = _run(capsys, "report", "--db", str(demo_db), "--as-of", "2026-03-01T00:00Z")
    assert status == 0
    assert out.startswith("Pipeline seven_stage as of 2026-03-01 00:00 UTC")
    assert out == same


def test_report_as_of_matches_the_store_and_owner_filters(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    given_at = datetime.fromisoformat(NOW)
    with SQLiteStore(demo_db) as store:
        for deal in list(store.find(limit=3)):
            store.save(deal.evolve(owner="kim", at=max(given_at, deal.updated_at)))
        at = max(d.updated_at for d in store.find()).date() + timedelta(days=1)
        expected = store.report(
            "seven_stage", as_of=datetime.combine(at, time(), timezone.utc), owner="kim"
        )
    argv = ["report", "--db", str(demo_db), "--as-of", at.isoformat(), "--owner", "kim"]
    status, out, _ = _run(capsys, *argv, "--format", "json")
    assert status == 0
    assert json.loads(out) == expected.to_dict()
    assert expected.deals == 3


def test_report_now_is_a_deprecated_alias_of_as_of(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, expected, _ = _run(capsys, "report", "--db", str(demo_db), "--as-of", NOW)
    status, out, err = _run(capsys, "report", "--db", str(demo_db), "--now", NOW)
    assert (status, out) == (0, expected)
    assert "--now is deprecated: use --as-of" in err
    status, _, err = _run(capsys, "report", "--db", str(demo_db), "--now", NOW, "--as-of", NOW)
    _assert_one_line_error(status, err, "pass --as-of alone")


@pytest.mark.parametrize("owner", ["", "   ", "x" * 201])
def test_report_refuses_a_blank_or_too_long_owner(
    demo_db: Path, capsys: pytest.CaptureFixture[str], owner: str
) -> None:
    status, _, err = _run(capsys, "report", "--db", str(demo_db), "--owner", owner)
    _assert_one_line_error(status, err, "owner")
