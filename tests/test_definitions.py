"""Definitions as data: dict, TOML and JSON round trips, and every problem reported at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespipeline import (
    DefinitionError,
    Pipeline,
    Stage,
    definitions,
    guards,
    load_pipeline,
    presets,
)
from salespipeline._durations import format_duration, parse_duration
from salespipeline.deal import Deal
from salespipeline.guards import Violation
from salespipeline.testing import strategies

PRESETS = [
    pytest.param(factory(labels=labels), id=f"{name}-{labels}")
    for name, factory in presets.PRESETS.items()
    for labels in ("en", "ko")
]


def _minimal(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format": 1,
        "name": "inbound",
        "stages": [
            {"name": "new", "probability": 0.1},
            {"name": "demo", "probability": 0.5},
        ],
    }
    data.update(changes)
    return data


def _problems(data: Any) -> tuple[str, ...]:
    with pytest.raises(DefinitionError) as raised:
        definitions.from_dict(data)
    return raised.value.problems


# -- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("pipeline", PRESETS)
def test_every_preset_round_trips_through_a_dict(pipeline: Pipeline) -> None:
    assert Pipeline.from_dict(pipeline.to_dict()) == pipeline


@pytest.mark.parametrize("pipeline", PRESETS)
@pytest.mark.parametrize("text_format", ["toml", "json"])
def test_every_preset_round_trips_through_text(pipeline: Pipeline, text_format: Any) -> None:
    text = definitions.dumps(pipeline, format=text_format)
    assert definitions.loads(text, format=text_format) == pipeline


@given(strategies.pipelines(max_stages=8))
def test_generated_pipelines_round_trip_through_dict_toml_and_json(pipeline: Pipeline) -> None:
    assert definitions.from_dict(definitions.to_dict(pipeline)) == pipeline
    assert definitions.loads(definitions.dumps(pipeline)) == pipeline
    assert definitions.loads(definitions.dumps(pipeline, format="json"), format="json") == pipeline


@given(strategies.pipelines(max_stages=6))
def test_the_dict_is_toml_safe_plain_data_without_nulls(pipeline: Pipeline) -> None:
    def walk(value: object) -> Iterator[object]:
        yield value
        if isinstance(value, dict):
            for item in value.values():
                yield from walk(item)
        elif isinstance(value, list):
            for item in value:
                yield from walk(item)

    plain = (dict, list, str, int, float, bool)
    assert all(isinstance(v, plain) for v in walk(pipeline.to_dict()))


def test_dict_shape_of_a_guarded_stage() -> None:
    pipeline = Pipeline(
        "p",
        [
            Stage("a", probability=0.2),
            Stage(
                "b",
                label="제안",
                probability=0.5,
                rot_after=timedelta(days=2, hours=3),
                requires=[guards.bant("budget", min_score=1) | guards.min_amount("1000.50")],
            ),
        ],
        lost_reasons=["price"],
    )
    data = pipeline.to_dict()
    assert data["format"] == 1
    assert data["lost_reasons"] == ["price"]
    assert data["stages"][1] == {
        "name": "b",
        "label": "제안",
        "probability": 0.5,
        "rot_after": "P2DT3H",
        "requires": [
            {
                "guard": "any_of",
                "guards": [
                    {"guard": "bant", "criteria": ["budget"], "min_score": 1},
                    {"guard": "min_amount", "amount": "1000.50"},
                ],
            }
        ],
    }


def test_absent_keys_mean_defaults() -> None:
    pipeline = definitions.from_dict(_minimal())
    assert pipeline.version == 1
    assert not pipeline.allow_skip
    assert pipeline.allow_back
    assert pipeline.lost_reasons is None
    assert pipeline.stages[1].label == "Demo"
    assert pipeline.stages[1].rot_after is None
    assert pipeline.stages[1].requires == ()


def test_a_guard_may_be_written_as_its_kind_name_alone() -> None:
    data = _minimal()
    data["stages"][1]["requires"] = ["bant"]
    assert definitions.from_dict(data).stages[1].requires == (guards.bant(),)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P14D", timedelta(days=14)),
        ("P2W", timedelta(weeks=2)),
        ("PT36H", timedelta(hours=36)),
        ("P1DT2H3M4.5S", timedelta(days=1, hours=2, minutes=3, seconds=4.5)),
        ("PT0.000001S", timedelta(microseconds=1)),
    ],
)
def test_durations_are_iso_8601(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@given(st.timedeltas(min_value=timedelta(0)))
def test_durations_round_trip_exactly(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "14 days", "P1M", "-P1D", "P1.5D"])
def test_durations_refuse_what_is_not_days_and_time(text: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_duration(text)


# -- files -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_dump_then_load_a_file(tmp_path: Path, suffix: str) -> None:
    pipeline = presets.five_stage(labels="ko")
    path = tmp_path / f"five{suffix}"
    definitions.dump_pipeline(pipeline, path)
    assert load_pipeline(path) == pipeline
    assert "거래 마감" in path.read_text(encoding="utf-8")


def test_load_pipeline_reads_a_hand_written_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "inbound.toml"
    path.write_text(
        """
format = 1
name = "inbound"
lost_reasons = ["price", "timing"]

[[stages]]
name = "new"
probability = 0.1

[[stages]]
name = "proposal"
label = "제안/견적"
probability = 0.5
rot_after = "P21D"
requires = [{guard = "bant", criteria = ["budget", "authority"]}]
""",
        encoding="utf-8",
    )
    pipeline = load_pipeline(path)
    assert pipeline.stage("proposal").requires == (guards.bant("budget", "authority"),)
    assert pipeline.stage("proposal").rot_after == timedelta(days=21)
    assert pipeline.lost_reasons == ("price", "timing")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.toml", None, "cannot read"),
        ("bad.toml", b"format = 1\nname = ", "invalid TOML"),
        ("bad.json", b'{"format": 1,', "invalid JSON"),
        ("twice.json", b'{"format": 1, "format": 1}', "appears twice"),
        ("latin1.toml", "name = 'caf\xe9'".encode("latin-1"), "not UTF-8"),
        ("pipeline.yaml", b"format: 1", "unsupported file type"),
        ("list.json", b"[1, 2]", "must be a table"),
    ],
)
def test_unreadable_or_invalid_files_are_definition_errors(
    tmp_path: Path, name: str, content: bytes | None, expected: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DefinitionError) as raised:
        load_pipeline(path)
    assert expected in str(raised.value)
    assert raised.value.problems[0].startswith(str(path))


def test_a_directory_is_not_a_readable_definition(tmp_path: Path) -> None:
    folder = tmp_path / "defs.toml"
    folder.mkdir()
    with pytest.raises(DefinitionError, match="cannot read"):
        load_pipeline(folder)


# -- every problem at once -----------------------------------------------------------


def test_every_problem_is_listed_in_one_error() -> None:
    data = {
        "format": 1,
        "name": "bad name",
        "colour": "red",
        "stages": [
            {
                "name": "Prospecting",
                "probability": 1.5,
                "requires": [{"guard": "nope"}, {"guard": "bant", "criteria": ["cash"]}],
                "owner": "kim",
            },
            {"name": "prospecting", "probability": 0.2},
        ],
    }
    problems = _problems(data)
    expected = [
        "unknown key(s) 'colour'",
        "stage #1 ('Prospecting'): unknown key(s) 'owner'",
        "requires[0]: unknown guard 'nope'",
        "requires[1]: guard 'bant': unknown BANT criteria ['cash']",
        "pipeline name must be",
        "name 'Prospecting' must match",
        "probability 1.5 is not in [0, 1]",
    ]
    assert len(problems) == len(expected)
    for fragment, problem in zip(expected, problems, strict=True):
        assert fragment in problem


def test_wrong_types_in_several_stages_are_all_reported() -> None:
    data = _minimal(
        stages=[
            {"name": 3, "probability": "high"},
            {"name": "b", "probability": True, "label": 7, "rot_after": 14, "requires": "bant"},
            "not a table",
        ]
    )
    problems = _problems(data)
    assert len(problems) == 7
    assert "stage #1: name is required and must be a string" in problems
    assert "stage #3 must be a table, not str" in problems
    assert any("rot_after must be an ISO 8601 duration" in p for p in problems)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"format": 2}, "format 2 is not supported"),
        ({"format": True}, "format True is not supported"),
        ({"format": None}, "format None is not supported"),
        ({"stages": "new, demo"}, "stages must be a list"),
        ({"stages": []}, "at least one open stage"),
        ({"version": "2"}, "version must be a positive integer"),
        ({"allow_skip": "yes"}, "allow_skip must be True or False"),
        ({"lost_reasons": []}, "lost_reasons must not be empty"),
        ({"name": None}, "pipeline name must be"),
        ({"lost_reasons": None}, "lost_reasons must not be null"),
        ({"stages": [{"name": "a", "probability": 10**400}]}, "stage #1 ('a')"),
        ({"allow_back": None}, "allow_back must not be null"),
    ],
)
def test_top_level_problems(changes: dict[str, Any], expected: str) -> None:
    assert any(expected in p for p in _problems(_minimal(**changes)))


@pytest.mark.parametrize("key", ["format", "name", "stages"])
def test_required_keys(key: str) -> None:
    data = _minimal()
    del data[key]
    assert any(f"{key} is required" in p for p in _problems(data))


@pytest.mark.parametrize(
    ("guard", "expected"),
    [
        ({"guard": "os.system", "command": "rm -rf /"}, "unknown guard 'os.system'"),
        ("os.system", "unknown guard 'os.system'"),
        ({"guard": "__import__", "name": "os"}, "unknown guard '__import__'"),
        ({"guard": "bant", "criteria": "budget"}, "criteria must be a list of strings"),
        ({"guard": "bant", "min_score": 9}, "min_score must be between 1 and 4"),
        ({"guard": "bant", "colour": "red"}, "bad parameters"),
        ({"guard": "requires_fields"}, "bad parameters"),
        ({"guard": "min_amount", "amount": 1.5}, "no floats"),
        ({"guard": "all_of", "guards": []}, "needs a non-empty list"),
        ({"guard": "any_of", "guards": [{"guard": "nope"}]}, "guards[0]: unknown guard 'nope'"),
        ({"guard": "all_of", "guards": ["bant"], "x": 1}, "takes only 'guards'"),
        ({"kind": "bant"}, "needs a 'guard' key"),
        (42, "a guard must be a table"),
    ],
)
def test_guard_problems(guard: object, expected: str) -> None:
    data = _minimal()
    data["stages"][1]["requires"] = [guard]
    problems = _problems(data)
    assert len(problems) == 1
    assert expected in problems[0]
    assert problems[0].startswith("stage #2 ('demo'): requires[0]")


def test_every_bad_guard_of_every_stage_is_reported() -> None:
    data = _minimal()
    data["stages"][0]["requires"] = [{"guard": "min_amount", "amount": "x"}]
    data["stages"][1]["requires"] = [
        "bant",
        {"guard": "any_of", "guards": [{"guard": "nope"}, {"guard": "bant", "min_score": 0}]},
    ]
    problems = _problems(data)
    assert len(problems) == 3
    assert problems[0].startswith("stage #1 ('new'): requires[0]: guard 'min_amount':")
    assert problems[1].startswith("stage #2 ('demo'): requires[1].guards[0]: unknown guard")
    assert problems[2].startswith("stage #2 ('demo'): requires[1].guards[1]: guard 'bant':")


def test_a_definition_naming_os_system_runs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    calls: list[object] = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    data = _minimal()
    data["stages"][1]["requires"] = [{"guard": "os.system", "command": "echo hacked"}]
    problems = _problems(data)
    assert calls == []
    assert "unknown guard 'os.system'" in problems[0]


def test_guards_nested_too_deep_are_refused() -> None:
    spec: dict[str, Any] = {"guard": "bant"}
    for _ in range(40):
        spec = {"guard": "all_of", "guards": [spec]}
    data = _minimal()
    data["stages"][1]["requires"] = [spec]
    assert "nested more than" in _problems(data)[0]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
_STAGE_KEYS = st.sampled_from(["name", "label", "probability", "requires", "rot_after", "x"])
_GUARDS = st.sampled_from(
    ["bant", "requires_fields", "min_amount", "all_of", "any_of", "os.system"]
)


@st.composite
def _near_definitions(draw: st.DrawFn) -> dict[str, Any]:
    """Definition-shaped data with arbitrary values in every slot."""
    guard = st.fixed_dictionaries({"guard": _GUARDS}, optional={"criteria": _JSON, "names": _JSON})
    stage = st.dictionaries(_STAGE_KEYS, _JSON | st.lists(guard, max_size=2), max_size=6)
    return draw(
        st.fixed_dictionaries(
            {"format": st.just(1) | _JSON, "name": st.text(max_size=8) | _JSON},
            optional={
                "stages": st.lists(stage, max_size=3) | _JSON,
                "version": _JSON,
                "allow_skip": _JSON,
                "lost_reasons": _JSON,
            },
        )
    )


@given(_near_definitions() | _JSON)
def test_any_data_gives_a_pipeline_or_a_definition_error(data: Any) -> None:
    problems: tuple[str, ...] = ()
    try:
        pipeline = definitions.from_dict(data)
    except DefinitionError as error:
        problems = error.problems
        assert problems
    else:
        assert definitions.from_dict(pipeline.to_dict()) == pipeline
    assert all(isinstance(p, str) and p for p in problems)


def test_from_dict_refuses_a_non_mapping() -> None:
    with pytest.raises(DefinitionError, match="must be a table"):
        definitions.from_dict(["stages"])  # type: ignore[arg-type]


def test_from_dict_sets_the_clock() -> None:
    from conftest import T0

    pipeline = definitions.from_dict(_minimal(), clock=lambda: T0)
    assert pipeline.start("d1").created_at == T0


# -- custom guards -------------------------------------------------------------------


@attrs.frozen
class _Region:
    """A custom guard kind with a spec(): deals must be in one of ``regions``."""

    regions: tuple[str, ...]
    name: str = "region"

    def __call__(self, deal: Deal, /) -> tuple[Violation, ...]:
        if deal.fields.get("region") in self.regions:
            return ()
        return (Violation("region", "region not served", field="fields.region"),)

    def spec(self) -> dict[str, Any]:
        return {"guard": "region", "regions": list(self.regions)}


@pytest.fixture
def region_kind() -> Iterator[None]:
    guards.register("region", lambda regions: _Region(tuple(regions)))
    yield
    guards._REGISTRY.pop("region", None)


def _with(guard: Any) -> Pipeline:
    stages = [Stage("a", probability=0.1), Stage("b", probability=0.5, requires=guard)]
    return Pipeline("p", stages)


@pytest.mark.usefixtures("region_kind")
def test_a_registered_custom_guard_with_a_spec_round_trips() -> None:
    pipeline = _with([_Region(("EU", "KR")) & guards.bant()])
    data = pipeline.to_dict()
    assert data["stages"][1]["requires"][0]["guards"][0] == {
        "guard": "region",
        "regions": ["EU", "KR"],
    }
    assert Pipeline.from_dict(data) == pipeline
    assert definitions.loads(definitions.dumps(pipeline)) == pipeline


def test_a_custom_guard_whose_kind_is_not_registered_cannot_be_written() -> None:
    with pytest.raises(DefinitionError) as raised:
        _with([_Region(("EU",))]).to_dict()
    assert "stage 'b'" in raised.value.problems[0]
    assert "kind 'region', which is not registered" in raised.value.problems[0]


def test_rule_guards_are_not_data_and_every_one_is_named() -> None:
    credit = guards.rule("credit_check", lambda d: True, "credit check failed")
    legal = guards.rule("legal_review", lambda d: True, "legal review pending")
    pipeline = Pipeline(
        "p",
        [
            Stage("a", probability=0.1),
            Stage("b", probability=0.5, requires=[credit, guards.bant() | legal]),
        ],
    )
    with pytest.raises(DefinitionError) as raised:
        pipeline.to_dict()
    problems = raised.value.problems
    assert len(problems) == 2
    assert "stage 'b': guard 'credit_check' cannot be written as data" in problems[0]
    assert "guard 'legal_review'" in problems[1]


def test_a_registered_rule_is_written_by_its_kind_name() -> None:
    credit = guards.rule("credit_check", lambda d: d.amount < 1000, "over the credit limit")
    guards.register("credit_check", lambda: credit)
    try:
        pipeline = _with([credit])
        assert pipeline.to_dict()["stages"][1]["requires"] == [{"guard": "credit_check"}]
        assert Pipeline.from_dict(pipeline.to_dict()) == pipeline
    finally:
        guards._REGISTRY.pop("credit_check", None)


def test_a_spec_that_is_not_toml_safe_is_refused() -> None:
    class Odd:
        name = "odd"

        def __call__(self, deal: Deal, /) -> tuple[Violation, ...]:
            return ()

        def spec(self) -> dict[str, Any]:
            return {"guard": "bant", "limit": Decimal("1.5")}

    with pytest.raises(DefinitionError, match="not TOML-safe"):
        _with([Odd()]).to_dict()


def test_a_spec_that_raises_is_reported_not_raised() -> None:
    class Broken:
        name = "broken"

        def __call__(self, deal: Deal, /) -> tuple[Violation, ...]:
            return ()

        def spec(self) -> dict[str, Any]:
            raise RuntimeError("oops")

    with pytest.raises(
        DefinitionError, match=r"guard 'broken': spec\(\) raised RuntimeError: oops"
    ):
        _with([Broken()]).to_dict()


@pytest.mark.usefixtures("region_kind")
def test_a_factory_that_raises_is_reported_not_raised() -> None:
    data = _minimal()
    data["stages"][1]["requires"] = [{"guard": "region", "regions": 5}]
    problems = _problems(data)
    assert "guard 'region': its factory raised TypeError" in problems[0]


def test_definitions_json_is_valid_json_with_korean_kept() -> None:
    text = definitions.dumps(presets.funnel(labels="ko"), format="json")
    assert json.loads(text)["stages"][0]["label"] == "인식"
    assert "인식" in text
