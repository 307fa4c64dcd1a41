"""Security: hostile text is data, never SQL or code.

Deal ids, field names and values, reasons and notes full of SQL, quotes and
backslashes round-trip verbatim through SQLite and PostgreSQL and leave every table
intact; NUL characters are refused by validation before any SQL runs. Definitions
are data only: the source never evaluates or imports code by name, and a definition
naming ``os.system`` as a guard is refused.
"""

from __future__ import annotations

import ast
import io
import os
import tokenize
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

from _reliability_workers import QUALIFIED, StoreSpec, dump_tables, open_store, pipeline
from salespipeline import (
    DealNotFoundError,
    DefinitionError,
    Pipeline,
    UnknownPipelineError,
    UnknownStageError,
    ValidationError,
)
from salespipeline.definitions import load_pipeline
from salespipeline.storage.sql._schema import TABLES

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
SRC = Path(__file__).resolve().parent.parent / "src" / "salespipeline"

HOSTILE = (
    "'); DROP TABLE sp_deals;--",
    '"; DROP TABLE sp_changes; --',
    "' OR '1'='1",
    "Robert'); DELETE FROM sp_deals WHERE ('1'='1",
    "\\",
    "\\'",
    "\\\\x00",
    "%s",
    "%(id)s",
    "?",
    "$1",
    "{0}",
    "/* comment",
    "-- comment",
    "E'\\\\'; SELECT pg_sleep(5);--",
    "제안'; DROP TABLE sp_meta;--",
    "’‘“”",
    " leading and trailing ",
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    if request.param == "sqlite":
        return StoreSpec("sqlite", str(tmp_path / "injection.sqlite"))
    return StoreSpec("postgres", request.getfixturevalue("postgres_database"))


@pytest.fixture
def store(spec: StoreSpec) -> Iterator[Any]:
    with open_store(spec) as opened:
        yield opened


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_round_trips_verbatim_and_harms_nothing(
    spec: StoreSpec, store: Any, text: str
) -> None:
    flow = pipeline()
    deal = flow.start(
        text,
        amount="12.50",
        bant=QUALIFIED,
        fields={text: text, "note": [text, {text: text}]},
        at=T0,
    )
    deal = deal.evolve(next_action=text)
    store.add(flow.start("bystander", at=T0))
    store.add(deal)
    assert store.get(text) == deal
    moved = flow.move(deal, flow.stages[1].name, at=T0 + timedelta(hours=1), reason=text)
    lost = flow.lose(moved, text, at=T0 + timedelta(hours=2))
    store.save(moved, key=text)
    store.save(lost, actor=text)
    loaded = store.get(text)
    assert loaded == attrs.evolve(lost, history=loaded.history)
    assert loaded.fields == {text: text, "note": (text, {text: text})}
    assert (loaded.lost_reason, loaded.next_action) == (text, text)
    assert [c.reason for c in store.history(text)] == [None, text, text]
    with pytest.raises(UnknownStageError):  # a name no definition or deal has
        list(store.find(stage=text))
    with pytest.raises(UnknownPipelineError):
        list(store.find(pipeline=text))
    assert list(store.find(owner=text)) == [] and store.count(owner=text) == 0
    assert [d.id for d in store.find(fields={text: text})] == [text]
    assert [d.id for d in store.find(after=text)] == ["bystander"] * (text < "bystander")
    assert store.count(fields={text: text, "note": text}) == 0
    assert [d.id for d in store.find()] == sorted(["bystander", text])
    tables = dump_tables(spec)
    assert set(tables) == set(TABLES)
    assert len(tables["sp_deals"]) == 2
    assert len(tables["sp_changes"]) == 5  # the bystander's open, the deal's four versions
    (keyed,) = store.changes(text, key=text)
    assert (keyed.version, keyed.reason) == (3, text)
    assert store.changes(text)[-1].actor == text == loaded.history[-1].actor


NUL = "a\x00b"
NUL_CHANGES: dict[str, Any] = {
    "id": lambda deal: pipeline().start(NUL, at=T0),
    "field name": lambda deal: deal.evolve(fields={NUL: 1}),
    "field value": lambda deal: deal.evolve(fields={"k": [NUL]}),
    "reason": lambda deal: pipeline().lose(deal, NUL, at=T0),
    "next_action": lambda deal: deal.evolve(next_action=NUL),
}


@pytest.mark.parametrize("where", sorted(NUL_CHANGES))
def test_nul_is_refused_by_validation_before_storage(
    spec: StoreSpec, store: Any, where: str
) -> None:
    base = pipeline().start("clean", at=T0)
    store.add(base)
    before = dump_tables(spec)
    with pytest.raises(ValidationError, match="NUL"):
        NUL_CHANGES[where](base)
    assert dump_tables(spec) == before


def test_lookups_with_sql_text_find_nothing_and_harm_nothing(spec: StoreSpec, store: Any) -> None:
    store.add(pipeline().start("clean", at=T0))
    before = dump_tables(spec)
    for text in HOSTILE:
        with pytest.raises(DealNotFoundError):
            store.get(text)
        with pytest.raises(DealNotFoundError):
            store.history(text)
        with pytest.raises(UnknownPipelineError):
            store.find(pipeline=text)
        with pytest.raises(UnknownStageError):
            store.count(stage=text)
        assert list(store.find(owner=text, fields={text: text})) == []
        assert store.count(owner=text) == store.count(fields={"k": text}) == 0
    assert dump_tables(spec) == before


def test_lookups_with_nul_are_validation_errors_on_every_backend(
    spec: StoreSpec, store: Any
) -> None:
    """Not "not found" on one backend and "storage failed" on another: a refusal."""
    before = dump_tables(spec)
    for lookup in (store.get, store.history, lambda t: list(store.find(pipeline=t))):
        with pytest.raises(ValidationError, match="NUL"):
            lookup(NUL)
    with pytest.raises(ValidationError, match="NUL"):
        list(store.find(stage=NUL))
    assert dump_tables(spec) == before


# -- definitions are data only ------------------------------------------------------

CODE_LOADERS = {"eval", "exec", "compile", "__import__", "importlib", "runpy", "marshal"}


def code_loading(source: str) -> list[str]:
    """Where ``source`` runs, compiles or imports code by name (comments, strings skipped)."""
    found: list[str] = []
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    for i, token in enumerate(tokens):
        if token.type != tokenize.NAME:
            continue
        previous = tokens[i - 1].string if i else ""
        following = tokens[i + 2].string if i + 2 < len(tokens) else ""
        attribute = previous == "."
        if token.string in CODE_LOADERS and not (attribute and token.string == "compile"):
            found.append(f"line {token.start[0]}: {token.string}")
        if token.string == "pickle" and following in {"load", "loads", "Unpickler"}:
            found.append(f"line {token.start[0]}: pickle.{following}")
        if token.string == "getattr" and not attribute and _dynamic_module_lookup(tokens, i):
            found.append(f"line {token.start[0]}: getattr on a module")
    return found


def _dynamic_module_lookup(tokens: list[tokenize.TokenInfo], i: int) -> bool:
    return i + 2 < len(tokens) and tokens[i + 2].string in {"builtins", "os", "sys"}


def test_the_scanner_finds_code_loading() -> None:
    sample = (
        "import importlib\nx = eval('1')\nexec(code)\n__import__('os')\n"
        "pickle.loads(b)\nre.compile('a')\n# eval(\ns = 'exec('\n"
    )
    assert code_loading(sample) == [
        "line 1: importlib",
        "line 2: eval",
        "line 3: exec",
        "line 4: __import__",
        "line 5: pickle.loads",
    ]


CODE_GENERATORS = {
    "_unchecked.py": ["exec", "compile"],
    "cli/_plugins.py": ["importlib", "importlib", "importlib"],
}
"""The allowed uses: ``_unchecked.generate`` compiles hot-path copiers from attrs field
names at import time, as attrs itself does (``test_the_one_exec_sees_no_data`` pins it);
the CLI imports the plugins its user names with ``--plugin`` and the installed
``salespipeline.plugins`` entry points, never a name read from data."""


def test_the_library_never_evaluates_or_imports_code_by_name() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 10
    found = {
        str(path.relative_to(SRC)): [hit.split(": ")[1] for hit in hits]
        for path in files
        if (hits := code_loading(path.read_text(encoding="utf-8")))
    }
    assert found == CODE_GENERATORS


def test_the_one_exec_sees_no_data() -> None:
    """``exec`` runs only inside ``generate``, called only at import with literal arguments."""
    tree = ast.parse((SRC / "_unchecked.py").read_text(encoding="utf-8"))
    owners = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and any(
            isinstance(call, ast.Call) and getattr(call.func, "id", None) == "exec"
            for call in ast.walk(node)
        )
    ]
    assert owners == ["generate"]
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "generate"
    ]
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    at_import = [
        node
        for statement in tree.body
        if not isinstance(statement, definitions)
        for node in ast.walk(statement)
        if node in calls
    ]
    lines = sorted(call.lineno for call in calls)
    assert lines and sorted(c.lineno for c in at_import) == lines, "called inside a function"
    for call in calls:
        assert isinstance(call.args[0], ast.Name) and call.args[0].id in {"Deal", "StageChange"}
        literals = [*call.args[1:], *(k.value for k in call.keywords)]
        assert all(_literal(value) for value in literals), ast.unparse(call)


def _literal(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) or (
        isinstance(node, ast.Tuple) and all(isinstance(e, ast.Constant) for e in node.elts)
    )


OS_SYSTEM_GUARDS: tuple[Any, ...] = (
    "os.system",
    {"guard": "os.system"},
    {"guard": "os.system", "command": "touch /tmp/pwned"},
    {"guard": "all_of", "guards": ["bant", {"guard": "os.system"}]},
    {"guard": "__import__('os').system"},
    {"guard": "subprocess.run", "args": ["true"]},
    {"guard": "builtins.eval", "source": "1"},
)


@pytest.mark.parametrize("guard", OS_SYSTEM_GUARDS)
def test_a_definition_naming_code_as_a_guard_is_refused(
    guard: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a) or 0)
    data = pipeline().to_dict()
    data["stages"][1]["requires"] = [guard]
    with pytest.raises(DefinitionError) as refused:
        Pipeline.from_dict(data)
    assert any("unknown guard" in p for p in refused.value.problems)
    assert calls == []


def test_a_definition_file_naming_os_system_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a) or 0)
    path = tmp_path / "evil.toml"
    path.write_text(
        'format = 1\nname = "evil"\n\n[[stages]]\nname = "lead"\nprobability = 0.1\n'
        'requires = [{ guard = "os.system", command = "touch pwned" }]\n',
        encoding="utf-8",
    )
    with pytest.raises(DefinitionError, match=r"os\.system"):
        load_pipeline(path)
    assert calls == []
    assert not (tmp_path / "pwned").exists()
