"""Every Python example in README.md and docs/ runs, so the documentation never rots.

Each page's ```python blocks run top to bottom in one namespace, inside a temporary
working directory; a block that raises fails the page's test with the page's path and
the block's line. Other fences (text, bash, toml…) are shown, never run.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import traceback
import types
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

import salespipeline

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
RUNNABLE = frozenset({"python", "py"})


@attrs.frozen
class Block:
    """One fenced code block: where it starts (1-based line of its first code line)."""

    path: str
    line: int
    language: str
    code: str


def blocks(text: str, path: str) -> Iterator[Block]:
    """The fenced code blocks of a Markdown page, in order, dedented to their fence."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        words = opening["info"].strip().lstrip("{.").split()
        language = words[0].rstrip("}").lower() if words else ""
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not _closes(lines[j], fence):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        yield Block(path, i + 2, language, "\n".join(body) + "\n")
        i = j + 1


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(fence) and not stripped.strip(fence[0])


def python_blocks(page: Path) -> list[Block]:
    relative = page.relative_to(ROOT).as_posix()
    found = blocks(page.read_text(encoding="utf-8"), relative)
    return [b for b in found if b.language in RUNNABLE]


def run_page(page_blocks: list[Block], module_name: str) -> None:
    """Run the blocks in order in one fresh module namespace; fail naming path and line."""
    module = types.ModuleType(module_name)
    sys.modules[module_name] = module
    try:
        for block in page_blocks:
            source = "\n" * (block.line - 1) + block.code
            try:
                exec(compile(source, block.path, "exec"), module.__dict__)
            except Exception as error:
                detail = "".join(traceback.format_exception_only(type(error), error)).strip()
                pytest.fail(
                    f"{block.path}:{block.line}: the python block starting at line "
                    f"{block.line} raised {detail}\n{traceback.format_exc()}",
                    pytrace=False,
                )
    finally:
        del sys.modules[module_name]


def pages() -> list[Path]:
    found = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
    return [page for page in found if python_blocks(page)]


def needs_postgres(page: Path) -> bool:
    """Pages that connect to ``os.environ["DATABASE_URL"]`` run against the test server."""
    return "DATABASE_URL" in page.read_text(encoding="utf-8")


def page_params() -> list[object]:
    return [
        pytest.param(
            page,
            id=page.relative_to(ROOT).as_posix(),
            marks=[pytest.mark.postgres] if needs_postgres(page) else [],
        )
        for page in pages()
    ]


@pytest.mark.parametrize("page", page_params())
def test_page_examples_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if needs_postgres(page):
        monkeypatch.setenv("DATABASE_URL", request.getfixturevalue("postgres_database"))
    monkeypatch.chdir(tmp_path)
    run_page(python_blocks(page), "docs_example_" + re.sub(r"\W", "_", page.stem))


# -- the collector itself ----------------------------------------------------------

PAGE = """\
# Title

```python
x = 1
```

```text
not python at all
```

```bash
exit 1
```

!!! note

    ```python
    y = x + 1
    ```

~~~~python title="tilde fence"
z = y * 10
~~~~
"""


def test_collector_finds_python_blocks_in_order_with_their_lines() -> None:
    found = [b for b in blocks(PAGE, "page.md") if b.language in RUNNABLE]
    assert [(b.line, b.code) for b in found] == [
        (4, "x = 1\n"),
        (18, "y = x + 1\n"),
        (22, "z = y * 10\n"),
    ]


def test_collector_keeps_other_languages_unrun() -> None:
    languages = [b.language for b in blocks(PAGE, "page.md")]
    assert languages == ["python", "text", "bash", "python", "python"]


def test_page_blocks_share_one_namespace() -> None:
    page_blocks = [b for b in blocks(PAGE, "page.md") if b.language in RUNNABLE]
    page_blocks.append(Block("page.md", 30, "python", "assert z == 20\n"))
    run_page(page_blocks, "docs_example_selftest")


def test_failing_block_names_page_and_line() -> None:
    page_blocks = [
        Block("docs/how-to/x.md", 3, "python", "a = 1\n"),
        Block("docs/how-to/x.md", 9, "python", "b = a\nraise RuntimeError('boom')\n"),
    ]
    with pytest.raises(pytest.fail.Exception) as failed:
        run_page(page_blocks, "docs_example_failing")
    message = str(failed.value)
    assert message.startswith("docs/how-to/x.md:9:")
    assert "RuntimeError: boom" in message
    assert 'File "docs/how-to/x.md", line 10' in message


def test_page_without_python_yields_no_test(tmp_path: Path) -> None:
    page = tmp_path / "plain.md"
    page.write_text("# Plain\n\n```bash\necho hi\n```\n", encoding="utf-8")
    assert [b.language for b in blocks(page.read_text(), "plain.md")] == ["bash"]
    assert all(p.name != "plain.md" for p in pages())


# -- the reference covers the public API -------------------------------------------


def documented_modules() -> set[str]:
    directive = re.compile(r"^:::\s*(\S+)", re.MULTILINE)
    return {
        match
        for page in (DOCS / "reference").glob("*.md")
        for match in directive.findall(page.read_text(encoding="utf-8"))
    }


def rendered(name: str, value: object, documented: set[str]) -> bool:
    """Whether a reference page renders ``name``: its defining module's, or an exporter's."""
    if isinstance(value, types.ModuleType):
        return value.__name__ in documented
    definer = getattr(value, "__module__", None) if callable(value) else None
    return definer in documented or any(
        name in getattr(importlib.import_module(module), "__all__", ()) for module in documented
    )


def test_every_public_name_has_a_reference_page() -> None:
    documented = documented_modules()
    missing = [
        name
        for name in salespipeline.__all__
        if name != "__version__" and not rendered(name, getattr(salespipeline, name), documented)
    ]
    assert not missing, f"no docs/reference page renders: {', '.join(missing)}"


def test_reference_pages_name_importable_modules() -> None:
    for module in documented_modules():
        importlib.import_module(module)


# -- generated pages ---------------------------------------------------------------


def test_presets_page_is_what_the_library_generates_now() -> None:
    spec = importlib.util.spec_from_file_location("gen_presets", DOCS / "gen_presets.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    committed = (DOCS / "presets.md").read_text(encoding="utf-8")
    assert committed == generator.render(), "docs/presets.md is stale: run docs/gen_presets.py"
