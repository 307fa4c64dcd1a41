"""CLI plugins: --plugin MODULE and the salespipeline.plugins entry points make guards readable."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespipeline import DefinitionError, Pipeline, Stage, Tracker, definitions, guards
from salespipeline.cli import main
from salespipeline.cli._plugins import FIX, unregistered
from salespipeline.storage import SQLiteStore

PLUGIN = "sp_test_meddic_plugin"
MEDDIC = dedent(
    """
    import attrs
    from salespipeline import guards

    @attrs.frozen
    class Meddic:
        name: str = "meddic"

        def __call__(self, deal):
            if deal.fields.get("champion"):
                return ()
            return (guards.Violation("meddic", "no champion named", "champion"),)

        def spec(self):
            return {"guard": "meddic"}

    guards.register("meddic", Meddic)
    """
)
B2B = dedent(
    """
    format = 1
    name = "b2b"

    [[stages]]
    name = "lead"
    probability = 0.1

    [[stages]]
    name = "demo"
    probability = 0.5
    requires = [{guard = "meddic"}]
    """
)
MESSAGE = "names guard kind 'meddic', which is not registered: " + FIX


@pytest.fixture(autouse=True)
def isolated_registry() -> Iterator[None]:
    """Each test starts and ends with the guard kinds and imported modules it found."""
    kinds = dict(guards.KINDS.factories)
    modules = set(sys.modules)
    yield
    guards.KINDS.factories.clear()
    guards.KINDS.factories.update(kinds)
    for name in set(sys.modules) - modules:
        if name.startswith("sp_test_"):
            del sys.modules[name]


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on ``sys.path`` holding the plugin module ``PLUGIN`` (and any written later)."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / f"{PLUGIN}.py").write_text(MEDDIC)
    monkeypatch.syspath_prepend(str(folder))
    return folder


@pytest.fixture
def b2b_toml(tmp_path: Path) -> Path:
    path = tmp_path / "b2b.toml"
    path.write_text(B2B)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status: int, err: str, fragment: str) -> None:
    assert status == 2
    assert err.startswith("salespipeline: error: ")
    assert err.count("\n") == 1
    assert fragment in err
    assert "Traceback" not in err


def entry_point_distribution(folder: Path, value: str, *, name: str = "meddic") -> None:
    """An installed distribution in ``folder`` whose ``salespipeline.plugins`` entry
    point ``name`` names ``value``, as pip would leave it."""
    info = folder / "sp_test_meddic-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sp-test-meddic\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[salespipeline.plugins]\n{name} = {value}\n")


def with_on_path(folder: Path) -> dict[str, str]:
    """The environment of a child process that also finds modules in ``folder``."""
    inherited = os.environ.get("PYTHONPATH")
    path = os.pathsep.join([str(folder), *([inherited] if inherited else [])])
    return {**os.environ, "PYTHONPATH": path}


# -- lint and diagram ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["lint", "diagram"])
def test_a_file_naming_an_unregistered_guard_says_which_and_how_to_fix_it(
    b2b_toml: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    status, out, err = run(capsys, command, str(b2b_toml))
    assert_one_line_error(status, err, f"{b2b_toml} {MESSAGE}")
    assert out == ""


def test_lint_reads_the_guard_a_plugin_registers(
    plugins: Path, b2b_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--plugin", PLUGIN, "lint", str(b2b_toml)) == (
        0,
        f"{b2b_toml}: no findings\n",
        "",
    )
    assert "meddic" in guards.registered()


def test_diagram_draws_the_guard_a_plugin_registers(
    plugins: Path, b2b_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "--plugin", PLUGIN, "diagram", str(b2b_toml))
    assert (status, err) == (0, "")
    assert "meddic" in out
    assert out == definitions.load_pipeline(b2b_toml).diagram("mermaid")


def test_plugin_is_repeatable_and_each_module_is_imported(
    plugins: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (plugins / "sp_test_region_plugin.py").write_text(
        "from salespipeline import guards\n"
        "guards.register('region', lambda: guards.requires_fields('region'))\n"
    )
    path = tmp_path / "two.toml"
    path.write_text(B2B.replace('{guard = "meddic"}', '{guard = "meddic"}, "region"'))
    status, _, err = run(capsys, "--plugin", PLUGIN, "lint", str(path))
    assert_one_line_error(status, err, "names guard kind 'region', which is not registered")
    argv = ["--plugin", PLUGIN, "--plugin", "sp_test_region_plugin", "lint", str(path)]
    assert run(capsys, *argv)[0] == 0


def test_several_unregistered_guards_are_named_together_with_other_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "odd.toml"
    path.write_text(
        B2B.replace('{guard = "meddic"}', '{guard = "all_of", guards = ["meddic", "champ"]}')
        + "colour = 'red'\n"
    )
    status, _, err = run(capsys, "lint", str(path))
    assert_one_line_error(
        status,
        err,
        "names guard kinds 'champ', 'meddic', which are not registered: register each with "
        "salespipeline.guards.register in a module and pass --plugin MODULE",
    )
    assert "unknown key(s) 'colour'" in err


def test_migrate_to_a_file_naming_an_unregistered_guard_says_how_to_fix_it(
    tmp_path: Path, b2b_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "crm.sqlite"
    with SQLiteStore(db) as store:
        Tracker(store, [Pipeline("old", [Stage("lead", probability=0.1)])])
    status, _, err = run(capsys, "migrate", "--db", str(db), "--to", str(b2b_toml))
    assert_one_line_error(status, err, MESSAGE)


# -- report: definitions stored in a database ----------------------------------------


@pytest.fixture
def b2b_db(plugins: Path, b2b_toml: Path, tmp_path: Path) -> Path:
    """A database recording ``b2b`` (made with the plugin imported), then the plugin forgotten."""
    kinds = dict(guards.KINDS.factories)
    importlib.import_module(PLUGIN)
    db = tmp_path / "crm.sqlite"
    with SQLiteStore(db) as store:
        tracker = Tracker(store, [definitions.load_pipeline(b2b_toml)])
        tracker.open("b2b", "acme", amount="5000")
    guards.KINDS.factories.clear()
    guards.KINDS.factories.update(kinds)
    del sys.modules[PLUGIN]
    return db


def test_report_on_a_stored_definition_naming_an_unregistered_guard_says_how_to_fix_it(
    b2b_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for extra in ([], ["--pipeline", "b2b"]):
        status, out, err = run(capsys, "report", "--db", str(b2b_db), *extra)
        assert_one_line_error(status, err, f"the stored definition of pipeline 'b2b' {MESSAGE}")
        assert out == ""


def test_report_reads_a_stored_guard_a_plugin_registers(
    b2b_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "--plugin", PLUGIN, "report", "--db", str(b2b_db))
    assert (status, err) == (0, "")
    assert out.startswith("Pipeline b2b as of ")


# -- entry points --------------------------------------------------------------------


def test_an_installed_entry_point_loads_by_itself(
    plugins: Path, b2b_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry_point_distribution(plugins, PLUGIN)
    assert run(capsys, "lint", str(b2b_toml))[0] == 0
    assert PLUGIN in sys.modules


def test_an_entry_point_naming_an_attribute_loads_its_module(
    plugins: Path, b2b_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry_point_distribution(plugins, f"{PLUGIN}:Meddic")
    assert run(capsys, "lint", str(b2b_toml))[0] == 0


def test_a_broken_entry_point_names_itself_and_its_distribution(
    plugins: Path, b2b_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry_point_distribution(plugins, "sp_test_missing_module", name="meddic")
    status, out, err = run(capsys, "lint", str(b2b_toml))
    assert_one_line_error(
        status,
        err,
        "cannot load plugin 'sp_test_missing_module' (entry point 'meddic' of distribution "
        "'sp-test-meddic'): ModuleNotFoundError: No module named 'sp_test_missing_module'",
    )
    assert out == ""


def test_the_entry_point_of_a_real_installation_loads_in_a_fresh_process(
    plugins: Path, b2b_toml: Path
) -> None:
    entry_point_distribution(plugins, PLUGIN)
    env = with_on_path(plugins)
    done = subprocess.run(
        [sys.executable, "-m", "salespipeline", "lint", str(b2b_toml)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{b2b_toml}: no findings\n", "")


# -- broken plugins ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        (None, "cannot load plugin 'sp_test_broken': ModuleNotFoundError: No module named"),
        (
            "raise RuntimeError('no\\nlicence')",
            "cannot load plugin 'sp_test_broken': RuntimeError: no licence",
        ),
        ("def f(:\n", "cannot load plugin 'sp_test_broken': SyntaxError:"),
        (
            "from salespipeline import guards\nguards.register('not a name', guards.bant)\n",
            "cannot load plugin 'sp_test_broken': ValidationError: guard kind name must be "
            "an identifier",
        ),
    ],
)
def test_a_plugin_that_fails_to_import_is_one_line_and_exit_status_2(
    plugins: Path,
    b2b_toml: Path,
    capsys: pytest.CaptureFixture[str],
    source: str | None,
    fragment: str,
) -> None:
    if source is not None:
        (plugins / "sp_test_broken.py").write_text(source)
    status, out, err = run(capsys, "--plugin", "sp_test_broken", "lint", str(b2b_toml))
    assert_one_line_error(status, err, fragment)
    assert out == ""


def test_a_broken_plugin_in_a_fresh_process_prints_no_traceback(
    plugins: Path, b2b_toml: Path
) -> None:
    (plugins / "sp_test_broken.py").write_text("import sp_test_nothing_here\n")
    env = with_on_path(plugins)
    done = subprocess.run(
        [sys.executable, "-m", "salespipeline", "--plugin", "sp_test_broken", "lint", "x.toml"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "salespipeline: error: cannot load plugin 'sp_test_broken': ModuleNotFoundError: "
        "No module named 'sp_test_nothing_here'\n"
    )


def test_plugin_goes_before_the_command(
    plugins: Path, b2b_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "lint", "--plugin", PLUGIN, str(b2b_toml))
    assert_one_line_error(status, err, "unrecognized arguments")
    assert PLUGIN not in sys.modules


# -- the message, for any kind name ---------------------------------------------------


KIND_NAMES = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)


@given(st.lists(KIND_NAMES | st.sampled_from(["bant", "meddic"]), min_size=1, max_size=3))
def test_every_unregistered_kind_is_named_whatever_its_name(kinds: list[str]) -> None:
    unknown = {kind for kind in kinds if kind not in guards.KINDS.known()}
    data = {  # without a probability: a DefinitionError whatever the kinds
        "format": 1,
        "name": "odd",
        "stages": [{"name": "a", "requires": kinds}],
    }
    with pytest.raises(DefinitionError) as raised:
        definitions.from_dict(data)
    refusal = unregistered(raised.value, "odd.toml")
    if not unknown:
        assert refusal is None
        return
    assert refusal is not None
    message = str(refusal)
    names = ", ".join(repr(kind) for kind in sorted(unknown))
    assert message.startswith(
        f"odd.toml names guard kind{'s' if len(unknown) > 1 else ''} {names}"
    )
    assert "\n" not in message


def test_a_definition_error_without_unknown_guards_is_left_as_it_is() -> None:
    with pytest.raises(DefinitionError) as raised:
        definitions.from_dict({"format": 1, "name": "x", "stages": [{"name": "a"}]})
    assert unregistered(raised.value, "x.toml") is None
    assert unregistered(ValueError("unknown guard 'meddic'"), "x.toml") is None
