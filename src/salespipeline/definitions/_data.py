"""Pipeline definitions as data: dicts, TOML and JSON files, lint and diagrams.

The dict is TOML-safe (no nulls; an absent key means its default) and carries a
``format`` number. Guards are written as a registered kind plus parameters, never
as code: reading a definition only calls factories registered with
``guards.register``, so a file cannot make the library import or run anything.
Reading reports every problem found in one ``DefinitionError``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from os import PathLike, fsencode, fspath
from pathlib import Path
from typing import Any, Final, Literal

import tomli_w

from salespipeline import _checks as c
from salespipeline import limits
from salespipeline._durations import format_duration, parse_duration
from salespipeline.definitions import _guards as _guard_data
from salespipeline.definitions._diagram import diagram
from salespipeline.definitions._lint import Finding, lint
from salespipeline.errors import DefinitionError, StorageError, ValidationError, shown
from salespipeline.pipeline import Clock, Pipeline
from salespipeline.stages import Stage

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "FORMAT",
    "Finding",
    "diagram",
    "dump_pipeline",
    "dumps",
    "from_dict",
    "lint",
    "load_pipeline",
    "loads",
    "to_dict",
]

FORMAT: Final = 1
TextFormat = Literal["toml", "json"]
_TOP_KEYS: Final = frozenset(
    {"format", "name", "version", "allow_skip", "allow_back", "lost_reasons", "stages"}
)
_STAGE_KEYS: Final = frozenset(
    {"name", "label", "probability", "requires", "rot_after", "forecast_category"}
)
_SUFFIXES: Final[dict[str, TextFormat]] = {".toml": "toml", ".json": "json"}


# -- writing -----------------------------------------------------------------------


def to_dict(pipeline: Pipeline) -> dict[str, Any]:
    """The definition as plain, TOML-safe data; ``from_dict`` reads it back equal.

    Raises ``DefinitionError`` naming every stage and guard that cannot be data
    (a guard with no ``spec()`` whose kind is not registered).
    """
    _check_pipeline(pipeline, "to_dict")
    problems: list[str] = []
    stages = [_stage_dict(stage, problems) for stage in pipeline.stages]
    if problems:
        raise DefinitionError(problems, pipeline=pipeline.name)
    data: dict[str, Any] = {
        "format": FORMAT,
        "name": pipeline.name,
        "version": pipeline.version,
        "allow_skip": pipeline.allow_skip,
        "allow_back": pipeline.allow_back,
    }
    if pipeline.lost_reasons is not None:
        data["lost_reasons"] = list(pipeline.lost_reasons)
    data["stages"] = stages
    return data


def _stage_dict(stage: Stage, problems: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": stage.name,
        "label": stage.label,
        "probability": stage.probability,
    }
    if stage.rot_after is not None:
        data["rot_after"] = format_duration(stage.rot_after)
    if stage.forecast_category is not None:
        data["forecast_category"] = stage.forecast_category
    specs = []
    for guard in stage.requires:
        try:
            specs.append(_guard_data.to_spec(guard))
        except _guard_data.NotData as error:
            problems.append(f"stage {stage.name!r}: {error}")
    if specs:
        data["requires"] = specs
    return data


# -- reading -----------------------------------------------------------------------


def from_dict(data: Mapping[str, Any], *, clock: Clock | None = None) -> Pipeline:
    """The pipeline described by ``data``; every problem is listed in one ``DefinitionError``.

    Shape problems (unknown keys, wrong types, unknown guards) and the pipeline's
    own rules (names, probabilities, lost reasons) are reported together whenever
    the stages could be read at all.
    """
    if not isinstance(data, Mapping):
        raise DefinitionError([f"a definition must be a table, not {type(data).__name__}"])
    shape = c.data_problem(data, "the definition")
    if shape is not None:
        raise DefinitionError([shape])
    problems = _unknown_keys(data, _TOP_KEYS, "the definition")
    problems += [f"{k} must not be null: leave it out for the default" for k in _nulls(data)]
    problems += _format_problems(data)
    stages = _read_stages(data.get("stages"), problems)
    pipeline = None
    if "name" not in data:
        problems.append("name is required")
    elif stages is not None:
        pipeline = _build(data, stages, clock, problems)
    if problems or pipeline is None:
        name = data.get("name")
        raise DefinitionError(problems, pipeline=name if isinstance(name, str) else None)
    return pipeline


def _build(
    data: Mapping[str, Any], stages: list[Stage], clock: Clock | None, problems: list[str]
) -> Pipeline | None:
    """The pipeline, or None with the pipeline's own problems appended."""
    options = {
        k: data[k] for k in ("allow_skip", "allow_back", "version") if data.get(k) is not None
    }
    try:
        return Pipeline(
            data["name"], stages, lost_reasons=data.get("lost_reasons"), clock=clock, **options
        )
    except DefinitionError as error:
        problems.extend(error.problems)
        return None


def _unknown_keys(data: Mapping[Any, Any], allowed: frozenset[str], where: str) -> list[str]:
    extra = sorted(map(str, set(data) - allowed))
    if not extra:
        return []
    return [f"{where}: unknown key(s) {', '.join(map(repr, extra))}; allowed: {sorted(allowed)}"]


def _nulls(data: Mapping[str, Any]) -> list[str]:
    return [
        str(k)
        for k in ("version", "allow_skip", "allow_back", "lost_reasons")
        if k in data and data[k] is None
    ]


def _format_problems(data: Mapping[str, Any]) -> list[str]:
    if "format" not in data:
        return [f"format is required (this version reads format = {FORMAT})"]
    value = data["format"]
    if value != FORMAT or isinstance(value, bool):
        return [f"format {shown(value)} is not supported (this version reads format = {FORMAT})"]
    return []


def _read_stages(value: object, problems: list[str]) -> list[Stage] | None:
    """The stages, or None when any could not be read (problems then say why)."""
    if value is None:
        problems.append("stages is required: a list of stage tables")
        return None
    if not isinstance(value, (list, tuple)):
        problems.append(f"stages must be a list of stage tables, not {type(value).__name__}")
        return None
    if len(value) > limits.MAX_STAGES:
        problems.append(
            f"a pipeline has at most {limits.MAX_STAGES} open stages, not {len(value)}"
        )
        return None
    stages = [_read_stage(position, item, problems) for position, item in enumerate(value, 1)]
    return [s for s in stages if s is not None] if all(stages) else None


def _read_stage(position: int, data: object, problems: list[str]) -> Stage | None:
    if not isinstance(data, Mapping):
        problems.append(f"stage #{position} must be a table, not {type(data).__name__}")
        return None
    name = data.get("name")
    where = f"stage #{position}" + (f" ({name!r})" if isinstance(name, str) else "")
    problems.extend(_unknown_keys(data, _STAGE_KEYS, where))
    requires = _guard_data.read_all(data.get("requires", []), where, problems)
    blocking = _field_problems(data, where)
    rot_after = None
    if isinstance(data.get("rot_after"), str):
        try:
            rot_after = parse_duration(data["rot_after"])
        except ValueError as error:
            blocking.append(f"{where}: rot_after: {error}")
    if blocking:
        problems.extend(blocking)
        return None
    try:
        label: Any = data.get("label")
        return Stage(
            data["name"],
            label=label,
            probability=data["probability"],
            requires=requires,
            rot_after=rot_after,
            forecast_category=data.get("forecast_category"),
        )
    except (ValidationError, OverflowError) as error:
        problems.append(f"{where}: {error}")
        return None


def _field_problems(data: Mapping[str, Any], where: str) -> list[str]:
    problems = []
    if not isinstance(data.get("name"), str):
        problems.append(f"{where}: name is required and must be a string")
    if "label" in data and not isinstance(data["label"], str):
        problems.append(f"{where}: label must be a string, not {shown(data['label'])}")
    probability = data.get("probability")
    if isinstance(probability, bool) or not isinstance(probability, (int, float)):
        problems.append(f"{where}: probability is required and must be a number in [0, 1]")
    if "rot_after" in data and not isinstance(data["rot_after"], str):
        problems.append(
            f"{where}: rot_after must be an ISO 8601 duration string such as 'P14D', "
            f"not {shown(data['rot_after'])}"
        )
    if "requires" in data and not isinstance(data["requires"], (list, tuple)):
        problems.append(f"{where}: requires must be a list of guard tables")
    return problems


# -- text and files ----------------------------------------------------------------


def dumps(pipeline: Pipeline, *, format: TextFormat = "toml") -> str:
    """The definition as TOML (default) or JSON text."""
    _check_pipeline(pipeline, "dumps")
    data = to_dict(pipeline)
    if format == "toml":
        return tomli_w.dumps(data)
    if format == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    raise ValidationError(f"format must be 'toml' or 'json', not {shown(format)}")


def loads(
    text: str | bytes, *, format: TextFormat = "toml", clock: Clock | None = None
) -> Pipeline:
    """The pipeline defined by TOML or JSON ``text`` (str, or UTF-8 bytes).

    Bad text, nesting deeper than ``limits.MAX_DEPTH`` and integers of more than 20
    digits are a ``DefinitionError``; text that is neither str nor bytes is a
    ``ValidationError``.
    """
    return from_dict(_parse(_text(text), format), clock=clock)


def _text(text: object) -> str:
    if isinstance(text, (bytes, bytearray)):
        try:
            return bytes(text).decode("utf-8")
        except UnicodeDecodeError as error:
            raise DefinitionError([f"the text is not UTF-8: {error.reason}"]) from None
    if not isinstance(text, str):
        raise ValidationError(f"loads() takes the definition as str or bytes, not {shown(text)}")
    return text


def _parse(text: str, format: str) -> Any:
    if format not in ("toml", "json"):
        raise ValidationError(f"format must be 'toml' or 'json', not {shown(format)}")
    try:
        if format == "toml":
            _check_toml_keys(text)
            data = tomllib.loads(text)
        else:
            data = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_int=_small_int)
    except tomllib.TOMLDecodeError as error:
        raise DefinitionError([f"invalid TOML: {error}"]) from error
    except (json.JSONDecodeError, _BadJSONError) as error:
        raise DefinitionError([f"invalid JSON: {error}"]) from error
    except RecursionError:
        raise DefinitionError([_too_deep()]) from None
    except ValueError as error:  # an integer past Python's digit limit, in TOML
        raise DefinitionError([f"invalid {format.upper()}: {error}"]) from None
    if _depth(data) > limits.MAX_DEPTH:  # parsers that do not recurse (3.13's json)
        raise DefinitionError([_too_deep()])
    return data


def _depth(data: object) -> int:
    """How deeply lists and tables nest in parsed data (walked without recursion)."""
    deepest, todo = 0, [(data, 0)]
    while todo and deepest <= limits.MAX_DEPTH:
        value, depth = todo.pop()
        deepest = max(deepest, depth)
        if isinstance(value, Mapping):
            todo.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            todo.extend((v, depth + 1) for v in value)
    return deepest


_TOML_MARKS: Final = re.compile(r"""["'#=,\[\]{}\n.]""")
_TOML_BASIC_END: Final = re.compile(r'(?:[^"\\\n]|\\.)*"')
_TOML_MULTILINE_END: Final = re.compile(r'(?:[^"\\]|\\.|"(?!""))*"""', re.S)


def _check_toml_keys(text: str) -> None:
    """Refuse a dotted key of more than ``limits.MAX_DEPTH`` parts before tomllib reads it.

    Each part of a dotted key (``a.b.c = 1``, ``[a."b".c]``) is one level of nesting,
    and tomllib's work grows with the square of their number (a 40,000-part key took
    27 s). One linear pass counts the dots outside strings and comments between two
    delimiters: a value has at most one (``0.5``), a key one fewer than its parts.
    """
    dots, at = 0, 0
    while at >= 0 and (mark := _TOML_MARKS.search(text, at)) is not None:
        char, at = mark.group(), mark.end()
        if char == ".":
            dots += 1
            if dots >= limits.MAX_DEPTH:
                raise DefinitionError([_too_deep()])
        elif char == '"':
            at = _after_basic_string(text, at)
        elif char == "'":
            closing = "'''" if text.startswith("''", at) else "'"
            at = _after(text.find(closing, at + len(closing) - 1), len(closing))
        else:  # a delimiter, or a comment (which runs to the end of its line)
            dots = 0
            if char == "#":
                at = _after(text.find("\n", at))
    # at < 0: an unterminated string or a last comment; tomllib stops there too


def _after(found: int, length: int = 1) -> int:
    return -1 if found < 0 else found + length


def _after_basic_string(text: str, at: int) -> int:
    if text.startswith('""', at):
        end = _TOML_MULTILINE_END.match(text, at + 2)
    else:
        end = _TOML_BASIC_END.match(text, at)
    return -1 if end is None else end.end()


def _too_deep() -> str:
    return f"the definition is nested more than {limits.MAX_DEPTH} levels deep"


def _small_int(digits: str) -> int:
    if len(digits.lstrip("-")) > 20:
        raise _BadJSONError(f"integer {digits[:12]}... has more than 20 digits")
    return int(digits)


class _BadJSONError(ValueError):
    """A key given twice in one object, or an integer too long to be a parameter."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _BadJSONError(f"key {key!r} appears twice in one object")
        data[key] = value
    return data


def load_pipeline(path: str | Path, *, clock: Clock | None = None) -> Pipeline:
    """The pipeline defined in a ``.toml`` or ``.json`` file.

    An unreadable file, invalid text or an invalid definition is a ``DefinitionError``
    whose problems start with the file's path.
    """
    path = _path(path, "load_pipeline")
    try:
        text_format = _text_format(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as error:
            raise DefinitionError([f"cannot read the file: {error.strerror or error}"]) from error
        except UnicodeDecodeError as error:
            raise DefinitionError([f"the file is not UTF-8 text: {error.reason}"]) from error
        return loads(text, format=text_format, clock=clock)
    except DefinitionError as error:
        problems = [f"{path}: {p}" for p in error.problems]
        raise DefinitionError(problems, pipeline=error.pipeline) from error


def dump_pipeline(pipeline: Pipeline, path: str | Path) -> None:
    """Write the definition to a ``.toml`` or ``.json`` file (UTF-8).

    A file that cannot be written is a ``StorageError`` chaining the ``OSError``.
    """
    _check_pipeline(pipeline, "dump_pipeline")
    path = _path(path, "dump_pipeline")
    text = dumps(pipeline, format=_text_format(path))
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise StorageError(f"cannot write {path}: {error.strerror or error}") from error


def _path(value: object, what: str) -> Path:
    """A path that can name a file: text (or a path object) the file system can encode."""
    if not isinstance(value, (str, PathLike)):
        raise ValidationError(f"{what}() takes a file path, not {type(value).__name__}")
    text = fspath(value)
    try:
        encoded = fsencode(text)  # a name read from the disk (surrogateescape) encodes back
    except UnicodeEncodeError:
        encoded = b"\x00"
    if not isinstance(text, str) or b"\x00" in encoded:
        raise ValidationError(f"{what}(): {shown(text)} cannot name a file")
    return Path(text)


def _check_pipeline(value: object, what: str) -> None:
    if not isinstance(value, Pipeline):
        raise ValidationError(f"{what}() takes a Pipeline, not {type(value).__name__}")


def _text_format(path: Path) -> TextFormat:
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise DefinitionError([f"unsupported file type {path.suffix!r}: use .toml or .json"])
    return found
