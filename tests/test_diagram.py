"""Diagrams: golden fragments, escaping, and every allowed move drawn exactly once."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given

from salespipeline import Pipeline, Stage, ValidationError, _engine, guards, presets
from salespipeline.definitions._diagram import dot_text, mermaid_text
from salespipeline.testing import strategies

MERMAID_EDGE = re.compile(r"^    (s\w+) --> (s\w+)(?: : (\w+))?$", re.MULTILINE)
DOT_EDGE = re.compile(r'^    (s\w+) -> (s\w+)(?: \[label="(\w+)"\])?;$', re.MULTILINE)


def _expected_edges(pipeline: Pipeline) -> Counter[tuple[str, str]]:
    n = len(pipeline.stages)
    return Counter(
        (_engine.state_id(i, n), _engine.state_id(j, n))
        for i, j in _engine.edges(
            n, allow_skip=pipeline.allow_skip, allow_back=pipeline.allow_back
        )
    )


def test_mermaid_golden_fragments_in_korean() -> None:
    text = presets.seven_stage(labels="ko").diagram("mermaid")
    for fragment in [
        "---\ntitle: seven_stage v1\n---\nstateDiagram-v2\n    direction LR\n",
        '    state "잠재 고객 발굴" as s0\n    s0 : 5%\n',
        '    state "제안/견적" as s4\n    s4 : 50%\n    s4 : requires BANT\n',
        '    state "Won" as sW\n    state "Lost" as sL\n',
        "    [*] --> s0\n    s0 --> s1\n    s0 --> sL : lose\n",
        "    s6 --> sW : win\n",
        "    s3 --> s1 : back\n",
        "    sL --> s6 : reopen\n    sW --> [*]\n",
    ]:
        assert fragment in text


def test_dot_golden_fragments_in_korean() -> None:
    text = presets.four_stage(labels="ko").diagram("dot")
    assert text.startswith('digraph "four_stage" {\n    label="four_stage v1";\n')
    for fragment in [
        '    s0 [label="리드 생성\\n5%"];\n',
        '    s2 [label="제안/견적\\n50%\\nrequires BANT"];\n',
        '    sW [label="Won", shape=doublecircle];\n',
        "    s0 -> s1;\n",
        '    s3 -> sW [label="win"];\n',
        '    sL -> s0 [label="reopen"];\n',
    ]:
        assert fragment in text
    assert text.endswith("}\n")


def test_guards_and_probabilities_are_described() -> None:
    pipeline = Pipeline(
        "p",
        [
            Stage("a", probability=0.125),
            Stage(
                "b",
                probability=0.5,
                requires=[
                    guards.bant("budget", "need", min_score=1) | guards.min_amount(1000),
                    guards.requires_fields("champion", "use_case"),
                    guards.rule("credit_ok", lambda d: True, "credit"),
                ],
            ),
        ],
    )
    text = pipeline.diagram()
    assert "    s0 : 12.5%\n" in text
    assert (
        "    s1 : requires (BANT budget/need (at least 1) or amount ≥ 1000), "
        "fields champion, use_case, credit_ok\n"
    ) in text


def test_skip_edges_are_labelled() -> None:
    pipeline = Pipeline("p", [Stage(n, probability=0.1) for n in ("a", "b", "c")], allow_skip=True)
    text = pipeline.diagram()
    assert "    s0 --> s2 : skip\n" in text
    assert "    s0 --> sW : win\n" in text


def test_mermaid_labels_are_escaped() -> None:
    nasty = 'Say "hi"; #1: <b>\nnext'
    text = Pipeline("p", [Stage("a", label=nasty, probability=0.1)]).diagram()
    assert '    state "Say #34;hi#34;#59; #35;1#58; #60;b#62; next" as s0\n' in text
    assert mermaid_text("제안/견적") == "제안/견적"


def test_dot_labels_are_escaped() -> None:
    assert dot_text('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c\\nd"'
    text = Pipeline("p", [Stage("a", label='x"y', probability=0.1)]).diagram("dot")
    assert '    s0 [label="x\\"y\\n10%"];\n' in text


def test_stage_names_never_become_diagram_ids() -> None:
    pipeline = Pipeline("p", [Stage(n, probability=0.1) for n in ("state", "end", "note")])
    text = pipeline.diagram()
    assert not re.search(r"--> (state|end|note)\b", text)
    assert '    state "End" as s1\n' in text


def test_an_unknown_format_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="'mermaid' or 'dot'"):
        presets.funnel().diagram("svg")


@given(strategies.pipelines(max_stages=8))
def test_every_allowed_move_appears_exactly_once_in_mermaid(pipeline: Pipeline) -> None:
    text = pipeline.diagram("mermaid")
    drawn = Counter((m[1], m[2]) for m in MERMAID_EDGE.finditer(text))
    assert drawn == _expected_edges(pipeline)


@given(strategies.pipelines(max_stages=8))
def test_every_allowed_move_appears_exactly_once_in_dot(pipeline: Pipeline) -> None:
    text = pipeline.diagram("dot")
    drawn = Counter((m[1], m[2]) for m in DOT_EDGE.finditer(text))
    assert drawn == _expected_edges(pipeline)
    assert text.count("->") == sum(drawn.values())


@given(strategies.pipelines(max_stages=6))
def test_diagrams_are_deterministic(pipeline: Pipeline) -> None:
    twin = Pipeline.from_dict(pipeline.to_dict())
    for text_format in ("mermaid", "dot"):
        assert pipeline.diagram(text_format) == twin.diagram(text_format)
