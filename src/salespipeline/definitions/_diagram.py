"""Diagrams of a pipeline's compiled transition graph, as Mermaid or Graphviz DOT (private).

Edges are read from the compiled python-statemachine graph (``pipeline.targets``), the
same table the pipeline uses to allow moves, so a diagram cannot disagree with the
pipeline. Nodes use the engine's generated ids; labels are escaped for each format.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from salespipeline import _engine
from salespipeline.deal import BANT_CRITERIA
from salespipeline.errors import ValidationError, shown
from salespipeline.guards import AllOf, AnyOf, BantGuard, Guard, MinAmount, RequiresFields
from salespipeline.pipeline import Pipeline

__all__ = ["describe", "diagram"]

DiagramFormat = Literal["mermaid", "dot"]


def diagram(pipeline: Pipeline, format: DiagramFormat = "mermaid") -> str:
    """The pipeline's stages and every allowed move, as Mermaid (default) or DOT text."""
    if not isinstance(pipeline, Pipeline):
        raise ValidationError(f"diagram() takes a Pipeline, not {type(pipeline).__name__}")
    if format == "mermaid":
        return "\n".join(_mermaid(pipeline)) + "\n"
    if format == "dot":
        return "\n".join(_dot(pipeline)) + "\n"
    raise ValidationError(f"diagram format must be 'mermaid' or 'dot', not {shown(format)}")


def describe(guard: Guard) -> str:
    """A short, readable account of what ``guard`` requires."""
    if isinstance(guard, BantGuard):
        text = "BANT"
        if guard.criteria != BANT_CRITERIA or guard.min_score is not None:
            text += " " + "/".join(guard.criteria)
        return text + (f" (at least {guard.min_score})" if guard.min_score is not None else "")
    if isinstance(guard, RequiresFields):
        return "fields " + ", ".join(guard.names)
    if isinstance(guard, MinAmount):
        return f"amount ≥ {guard.amount}"
    if isinstance(guard, (AllOf, AnyOf)):
        joiner = " and " if isinstance(guard, AllOf) else " or "
        return "(" + joiner.join(describe(g) for g in guard.guards) + ")"
    return str(guard.name)


def _percent(probability: float) -> str:
    return f"{round(probability * 100, 4):g}%"


def _node_lines(pipeline: Pipeline, index: int) -> list[str]:
    """The label lines of stage ``index``: label, probability, requirements."""
    stage = pipeline.stage(pipeline.stage_names[index])
    if index >= len(pipeline.stages):
        return [stage.label]
    lines = [stage.label, _percent(stage.probability)]
    if stage.requires:
        lines.append("requires " + ", ".join(describe(g) for g in stage.requires))
    return lines


def _edges(pipeline: Pipeline) -> Iterator[tuple[str, str, str]]:
    """Every allowed move once: (source id, target id, kind label or '')."""
    n = len(pipeline.stages)
    for source, targets in enumerate(pipeline.targets):
        for target in sorted(targets):
            yield _id(source, n), _id(target, n), _edge_kind(source, target, n)


def _edge_kind(source: int, target: int, n: int) -> str:
    if target == n:
        return "win"
    if target == n + 1:
        return "lose"
    if source == n + 1:
        return "reopen"
    if target < source:
        return "back"
    return "skip" if target > source + 1 else ""


def _id(index: int, n: int) -> str:
    return _engine.state_id(index, n)


# -- Mermaid -------------------------------------------------------------------------

_MERMAID_ESCAPES = {ch: f"#{ord(ch)};" for ch in '"#;:<>{}[]\\|`'}


def mermaid_text(text: str) -> str:
    """``text`` safe inside a Mermaid label (entity codes; newlines become spaces)."""
    flat = " ".join(text.split())
    return "".join(_MERMAID_ESCAPES.get(ch, ch) for ch in flat)


def _mermaid(pipeline: Pipeline) -> Iterator[str]:
    n = len(pipeline.stages)
    yield "---"
    yield f"title: {mermaid_text(f'{pipeline.name} v{pipeline.version}')}"
    yield "---"
    yield "stateDiagram-v2"
    yield "    direction LR"
    for index in range(n + 2):
        label, *details = _node_lines(pipeline, index)
        yield f'    state "{mermaid_text(label)}" as {_id(index, n)}'
        for line in details:
            yield f"    {_id(index, n)} : {mermaid_text(line)}"
    yield f"    [*] --> {_id(0, n)}"
    for source, target, kind in _edges(pipeline):
        yield f"    {source} --> {target}" + (f" : {kind}" if kind else "")
    yield f"    {_id(n, n)} --> [*]"


# -- DOT -----------------------------------------------------------------------------


def dot_text(text: str) -> str:
    """``text`` as a double-quoted DOT string."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "\\n".join(escaped.splitlines() or [""]) + '"'


def _dot(pipeline: Pipeline) -> Iterator[str]:
    n = len(pipeline.stages)
    yield f"digraph {dot_text(pipeline.name)} {{"
    yield f"    label={dot_text(f'{pipeline.name} v{pipeline.version}')};"
    yield "    labelloc=t;"
    yield "    rankdir=LR;"
    yield "    node [shape=box, style=rounded];"
    for index in range(n + 2):
        text = "\n".join(_node_lines(pipeline, index))
        shape = ", shape=doublecircle" if index >= n else ""
        yield f"    {_id(index, n)} [label={dot_text(text)}{shape}];"
    for source, target, kind in _edges(pipeline):
        yield f"    {source} -> {target}" + (f" [label={dot_text(kind)}];" if kind else ";")
    yield "}"
