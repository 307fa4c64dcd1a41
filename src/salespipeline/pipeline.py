"""Pipeline: a validated definition and the pure operations that move deals through it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import attrs

from salespipeline import _checks as c
from salespipeline import _engine, limits
from salespipeline._unchecked import after_move, stage_change
from salespipeline.deal import Bant, Deal, StageChange, to_actor
from salespipeline.errors import (
    DefinitionError,
    StageBlockedError,
    TransitionNotAllowedError,
    UnknownStageError,
    ValidationError,
    shown,
)
from salespipeline.guards import Guard, Violation, evaluate
from salespipeline.stages import LOST, TERMINAL, WON, Stage, category_of

if TYPE_CHECKING:
    from salespipeline.definitions import Finding

__all__ = ["Clock", "Pipeline", "system_clock"]

Clock = Callable[[], datetime]
STAGE_NAME: Final = re.compile(r"[a-z][a-z0-9_]*\Z")
PIPELINE_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")
MAX_NAME: Final = limits.MAX_NAME

_TERMINAL_STAGES: Final = {
    WON: Stage(WON, label="Won", probability=1.0),
    LOST: Stage(LOST, label="Lost", probability=0.0),
}


def system_clock() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def _name_problems(name: object) -> list[str]:
    if not isinstance(name, str) or not PIPELINE_NAME.match(name) or len(name) > MAX_NAME:
        return [
            f"pipeline name must be 1-{MAX_NAME} letters, digits, '_', '.' or '-', "
            f"not {shown(name)}"
        ]
    return []


def _stage_problems(stages: object) -> list[str]:
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Sequence):
        return [f"stages must be a sequence of Stage, not {type(stages).__name__}"]
    if not stages:
        return ["a pipeline needs at least one open stage"]
    if len(stages) > limits.MAX_STAGES:
        return [f"a pipeline has at most {limits.MAX_STAGES} open stages, not {len(stages)}"]
    problems: list[str] = []
    seen: set[str] = set()
    for position, stage in enumerate(stages, 1):
        if not isinstance(stage, Stage):
            problems.append(f"stage #{position} is not a Stage: {shown(stage)}")
            continue
        name = stage.name
        if name in (WON, LOST):
            problems.append(f"stage #{position}: {name!r} is reserved for the terminal stage")
        elif not STAGE_NAME.match(name) or len(name) > MAX_NAME:
            problems.append(
                f"stage #{position}: name {name!r} must match [a-z][a-z0-9_]* "
                f"(at most {MAX_NAME} characters)"
            )
        if name in seen:
            problems.append(f"stage #{position}: name {name!r} is used twice")
        seen.add(name)
        if not 0.0 <= stage.probability <= 1.0:
            problems.append(f"stage {name!r}: probability {stage.probability} is not in [0, 1]")
        if stage.rot_after is not None and stage.rot_after <= timedelta(0):
            problems.append(f"stage {name!r}: rot_after must be positive")
        label = c.text_problem(stage.label, f"stage {name!r}: label", max_length=limits.MAX_TEXT)
        if label is not None:
            problems.append(label)
        elif not stage.label.strip():
            problems.append(f"stage {name!r}: label must not be blank")
    return problems


def _option_problems(
    allow_skip: object, allow_back: object, lost_reasons: object, version: object
) -> list[str]:
    problems = [
        f"{what} must be True or False, not {shown(value)}"
        for what, value in (("allow_skip", allow_skip), ("allow_back", allow_back))
        if not isinstance(value, bool)
    ]
    if not c.is_int(version) or not 1 <= version <= limits.MAX_VERSION:
        problems.append(
            f"version must be a positive integer (at most {limits.MAX_VERSION:,}), "
            f"not {shown(version)}"
        )
    if lost_reasons is not None:
        if isinstance(lost_reasons, (str, bytes)) or not isinstance(lost_reasons, Sequence):
            problems.append("lost_reasons must be a sequence of strings or None")
        elif not lost_reasons:
            problems.append("lost_reasons must not be empty (use None to allow any reason)")
        else:
            for reason in lost_reasons:
                if not isinstance(reason, str) or not reason.strip():
                    problems.append(f"lost reason {shown(reason)} must be a non-blank string")
                elif (problem := c.text_problem(reason, "a lost reason")) is not None:
                    problems.append(problem)
            texts = [reason for reason in lost_reasons if isinstance(reason, str)]
            if len(set(texts)) != len(texts):
                problems.append("lost_reasons lists a reason twice")
    return problems


@attrs.frozen
class _Move:
    """What a move into one stage needs, worked out once when the pipeline is made."""

    to: str
    closes: bool
    loses: bool
    guards: tuple[Guard, ...]


class Pipeline:
    """A team's stage set, entry rules and move policy, validated as a whole.

    Operations are pure: they return a new ``Deal`` and never change their argument.
    """

    __slots__ = (
        "_allow_back",
        "_allow_skip",
        "_by_name",
        "_clock",
        "_graph",
        "_guards",
        "_into",
        "_lost_reasons",
        "_name",
        "_names",
        "_positions",
        "_stages",
        "_version",
    )

    def __init__(
        self,
        name: str,
        stages: Sequence[Stage],
        *,
        allow_skip: bool = False,
        allow_back: bool = True,
        lost_reasons: Sequence[str] | None = None,
        version: int = 1,
        clock: Clock | None = None,
    ) -> None:
        problems = (
            _name_problems(name)
            + _stage_problems(stages)
            + _option_problems(allow_skip, allow_back, lost_reasons, version)
        )
        if clock is not None and not callable(clock):
            problems.append("clock must be a zero-argument callable returning a datetime")
        if problems:
            raise DefinitionError(problems, pipeline=name if isinstance(name, str) else None)
        self._name = name
        self._stages = tuple(stages)
        self._allow_skip = allow_skip
        self._allow_back = allow_back
        self._lost_reasons = None if lost_reasons is None else tuple(lost_reasons)
        self._version = version
        self._clock: Clock = clock or system_clock
        self._names = (*tuple(s.name for s in self._stages), WON, LOST)
        self._by_name = {n: i for i, n in enumerate(self._names)}
        self._positions = MappingProxyType(self._by_name)
        self._guards = (*(s.requires for s in self._stages), (), ())
        self._graph = _engine.compile_graph(
            len(self._stages), allow_skip=allow_skip, allow_back=allow_back
        )
        n = len(self._stages)
        self._into = tuple(
            _Move(name, i >= n, i == n + 1, self._guards[i]) for i, name in enumerate(self._names)
        )

    # -- definition --------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The open stages, in order."""
        return self._stages

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Every stage a deal can be in: the open ones in order, then WON and LOST."""
        return self._names

    @property
    def positions(self) -> Mapping[str, int]:
        """Each stage name's position in ``stage_names`` (read-only): open stages first."""
        return self._positions

    @property
    def targets(self) -> tuple[frozenset[int], ...]:
        """Per position in ``stage_names``, the positions a move may go to (guards aside).

        Read from the compiled python-statemachine class, the one source of truth for
        which moves exist; lint, diagrams and the test strategies walk it.
        """
        return self._graph.targets

    @property
    def allow_skip(self) -> bool:
        return self._allow_skip

    @property
    def allow_back(self) -> bool:
        return self._allow_back

    @property
    def lost_reasons(self) -> tuple[str, ...] | None:
        return self._lost_reasons

    @property
    def version(self) -> int:
        return self._version

    @property
    def clock(self) -> Clock:
        """The clock used when an operation is given no ``at`` (not part of identity)."""
        return self._clock

    def with_clock(self, clock: Clock) -> Pipeline:
        """The same definition, reading time from ``clock``."""
        return Pipeline(
            self._name,
            self._stages,
            allow_skip=self._allow_skip,
            allow_back=self._allow_back,
            lost_reasons=self._lost_reasons,
            version=self._version,
            clock=clock,
        )

    def _identity(self) -> tuple[Any, ...]:
        return (
            self._name,
            self._stages,
            self._allow_skip,
            self._allow_back,
            self._lost_reasons,
            self._version,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pipeline):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        names = ", ".join(s.name for s in self._stages)
        return f"Pipeline({self._name!r}, [{names}], version={self._version})"

    def stage(self, name: str) -> Stage:
        """The stage called ``name`` (WON and LOST included)."""
        index = self._index(name)
        if index >= len(self._stages):
            return _TERMINAL_STAGES[self._names[index]]
        return self._stages[index]

    def probability(self, deal: Deal) -> float:
        """The deal's win probability: 1.0 if won, 0.0 if lost, else override or stage's."""
        index = self._source(deal)
        if deal.stage == WON:
            return 1.0
        if deal.stage == LOST:
            return 0.0
        return self._stages[index].probability if deal.probability is None else deal.probability

    def forecast_category(self, deal: Deal) -> str:
        """The deal's forecast category: its own, else its stage's, else its probability's.

        WON is ``closed`` and LOST ``omitted``; a probability below 0.4 is ``pipeline``,
        below 0.7 ``best_case``, else ``commit``.
        """
        index = self._source(deal)
        stage = deal.stage if deal.stage in TERMINAL else self._stages[index]
        return category_of(stage, probability=deal.probability, override=deal.forecast_category)

    # -- queries -----------------------------------------------------------------

    def check(self, deal: Deal, to: str) -> tuple[Violation, ...]:
        """Why moving ``deal`` to ``to`` would be refused; empty when it is allowed."""
        source, target = self._source(deal), self._index(to, deal_id=deal.id)
        refusal = self._graph_refusal(source, target)
        if refusal is not None:
            return (Violation("transition", refusal),)
        return self._violations(deal, target)

    def moves(self, deal: Deal) -> tuple[str, ...]:
        """The stages ``deal`` may move to now, guards evaluated, in stage order."""
        targets = self._graph.targets[self._source(deal)]
        return tuple(
            self._names[t]
            for t in range(len(self._names))
            if t in targets and not self._violations(deal, t)
        )

    # -- operations --------------------------------------------------------------

    def start(
        self,
        id: str,
        *,
        amount: Decimal | int | str = 0,
        currency: str = "USD",
        bant: Bant | None = None,
        fields: Mapping[str, Any] | None = None,
        probability: float | None = None,
        owner: str | None = None,
        close_date: date | None = None,
        forecast_category: str | None = None,
        next_action: str | None = None,
        next_action_at: datetime | None = None,
        at: datetime | None = None,
        actor: str | None = None,
    ) -> Deal:
        """A new deal in the first stage (whose guards apply too); ``actor``: who opened it."""
        when = self._now() if at is None else c.to_utc(at, "at")
        first = self._stages[0].name
        deal = Deal(
            id,
            self._name,
            first,
            amount=amount,
            currency=currency,
            bant=Bant() if bant is None else bant,
            fields={} if fields is None else fields,
            probability=probability,
            owner=owner,
            close_date=close_date,
            forecast_category=forecast_category,
            next_action=next_action,
            next_action_at=next_action_at,
            created_at=when,
            stage_entered_at=when,
            history=(StageChange(id, None, first, when, 1, actor=actor),),
        )
        violations = self._violations(deal, 0)
        if violations:
            raise StageBlockedError(deal.id, first, violations, from_stage=None)
        return deal

    def move(
        self,
        deal: Deal,
        to: str,
        *,
        at: datetime | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> Deal:
        """``deal`` moved to stage ``to``; from LOST this is ``reopen``; to LOST, ``lose``.

        Every operation takes ``at`` (default: the pipeline's clock, never before the
        deal's last change) and ``actor``, who made the move, kept on its history entry.
        """
        source = self._source(deal)
        return self._apply(deal, source, self._index(to, deal_id=deal.id), at, reason, actor)

    def advance(self, deal: Deal, *, at: datetime | None = None, actor: str | None = None) -> Deal:
        """``deal`` moved to the next open stage; from the last one, use ``win``."""
        source = self._source(deal)
        last = len(self._stages) - 1
        if source >= last:
            why = (
                "it is the last open stage: use win()"
                if source == last
                else f"{deal.stage!r} is not an open stage"
            )
            raise TransitionNotAllowedError(deal.id, deal.stage, "(next stage)", reason=why)
        return self._apply(deal, source, source + 1, at, None, actor)

    def win(self, deal: Deal, *, at: datetime | None = None, actor: str | None = None) -> Deal:
        """``deal`` moved to WON (final)."""
        return self._apply(deal, self._source(deal), len(self._stages), at, None, actor)

    def lose(
        self, deal: Deal, reason: str, *, at: datetime | None = None, actor: str | None = None
    ) -> Deal:
        """``deal`` moved to LOST with a (required, non-blank) reason."""
        return self._apply(deal, self._source(deal), len(self._stages) + 1, at, reason, actor)

    def reopen(
        self,
        deal: Deal,
        to: str | None = None,
        *,
        at: datetime | None = None,
        actor: str | None = None,
    ) -> Deal:
        """A lost ``deal`` moved back to ``to`` (default: the stage it was lost from)."""
        source = self._source(deal)
        if deal.stage != LOST:
            raise TransitionNotAllowedError(
                deal.id,
                deal.stage,
                deal.stage if to is None else to if isinstance(to, str) else shown(to),
                reason="only a lost deal can be reopened",
                action="reopen",
            )
        if to is None:
            to = self._lost_from(deal)
        return self._apply(deal, source, self._index(to, deal_id=deal.id), at, None, actor)

    def _lost_from(self, deal: Deal) -> str:
        """The open stage ``deal`` was lost from, skipping records that stayed in LOST."""
        entered = next(
            (change.from_stage for change in reversed(deal.history) if change.from_stage != LOST),
            None,
        )
        if entered is None:
            return self._stages[0].name
        if entered not in self._by_name:
            raise TransitionNotAllowedError(
                deal.id,
                LOST,
                entered,
                reason=f"it was lost from {entered!r}, which pipeline {self._name!r} does not "
                "have (after a migration?): name the stage to reopen to",
            )
        return entered

    # -- internals ---------------------------------------------------------------

    def _now(self) -> datetime:
        return c.to_utc(self._clock(), "the pipeline clock's time")

    def _index(self, name: object, *, deal_id: str | None = None) -> int:
        index = self._by_name.get(name) if isinstance(name, str) else None
        if index is None:
            raise UnknownStageError(name, pipeline=self._name, deal_id=deal_id)
        return index

    def _source(self, deal: object) -> int:
        if not isinstance(deal, Deal):
            raise ValidationError(f"expected a Deal, not {type(deal).__name__}")
        if deal.pipeline != self._name:
            raise ValidationError(
                f"belongs to pipeline {deal.pipeline!r}, not {self._name!r}", deal_id=deal.id
            )
        index = self._by_name.get(deal.stage)  # a Deal's stage is text: no type to check
        return self._index(deal.stage, deal_id=deal.id) if index is None else index

    def _graph_refusal(self, source: int, target: int) -> str | None:
        """Why the graph has no ``source -> target`` move, or None when it has one."""
        if source == target:
            return f"the deal is already in {self._names[source]!r}"
        if self._graph.allows(source, target):
            return None
        n = len(self._stages)
        if source == n:
            return "won is final"
        if source == n + 1:
            return "a lost deal can only be reopened to an open stage"
        if target == n:
            return "a deal is won from the last open stage (this pipeline does not allow skipping)"
        if target < source:
            return "this pipeline does not allow moving back"
        return "this pipeline does not allow skipping stages"

    def _violations(self, deal: Deal, target: int) -> tuple[Violation, ...]:
        guards = self._guards[target]
        return evaluate(guards, deal, stage=self._names[target]) if guards else ()

    def _lost_reason(self, deal: Deal, reason: object) -> str:
        if reason is None:
            raise ValidationError("a lost deal needs a reason", deal_id=deal.id, field="reason")
        return check_lost_reason(
            reason, self._lost_reasons, deal_id=deal.id, field="reason", label="lost reason"
        )

    def _apply(
        self,
        deal: Deal,
        source: int,
        target: int,
        at: datetime | None,
        reason: str | None,
        actor: object,
    ) -> Deal:
        refusal = self._graph_refusal(source, target)
        if refusal is not None:
            raise TransitionNotAllowedError(
                deal.id, self._names[source], self._names[target], reason=refusal
            )
        move = self._into[target]
        if move.loses:
            reason = self._lost_reason(deal, reason)
        elif reason is not None:
            reason = c.check_text(reason, "reason")
        who = None if actor is None else to_actor(actor)
        when = c.not_before(self._now() if at is None else at, deal.updated_at, deal_id=deal.id)
        if move.guards and (violations := self._violations(deal, target)):
            raise StageBlockedError(deal.id, move.to, violations, from_stage=deal.stage)
        return self._moved(deal, target, when, reason, who)

    def _moved(
        self,
        deal: Deal,
        target: int,
        when: datetime,
        reason: str | None,
        actor: str | None = None,
    ) -> Deal:
        move = self._into[target]
        version = deal.version + 1
        change = stage_change(deal.id, deal.stage, move.to, when, version, reason, actor)
        return after_move(
            deal,
            stage=move.to,
            stage_entered_at=when,
            closed_at=when if move.closes else None,
            lost_reason=reason if move.loses else None,
            updated_at=when,
            version=version,
            history=deal.history.appended(change),
        )

    # -- definitions as data (implemented in salespipeline.definitions) ---------

    def to_dict(self) -> dict[str, Any]:
        """The definition as TOML-safe data (see ``salespipeline.definitions``)."""
        return _definitions().to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, clock: Clock | None = None) -> Pipeline:
        """The pipeline ``data`` describes; every problem listed in one ``DefinitionError``."""
        return _definitions().from_dict(data, clock=clock)

    def lint(self) -> tuple[Finding, ...]:
        """Legal but suspicious parts of this definition (see ``definitions.lint``)."""
        return _definitions().lint(self)

    def diagram(self, format: str = "mermaid") -> str:
        """This pipeline's stages and moves as ``"mermaid"`` or ``"dot"`` text."""
        return _definitions().diagram(self, format)  # type: ignore[arg-type]


class Definitions(Protocol):
    """What ``salespipeline.definitions`` lends ``Pipeline``'s data methods.

    The core never imports that package (it is built on the core): the package
    connects itself with ``connect_definitions`` when it is imported, which
    importing ``salespipeline`` always does.
    """

    def to_dict(self, pipeline: Pipeline) -> dict[str, Any]: ...

    def from_dict(self, data: Mapping[str, Any], *, clock: Clock | None = None) -> Pipeline: ...

    def lint(self, pipeline: Pipeline) -> tuple[Finding, ...]: ...

    def diagram(self, pipeline: Pipeline, format: Literal["mermaid", "dot"] = ...) -> str: ...


_connected: list[Definitions] = []


def connect_definitions(definitions: Definitions) -> None:
    """Lend ``Pipeline.to_dict``/``from_dict``/``lint``/``diagram`` their implementation."""
    _connected[:] = [definitions]


def _definitions() -> Definitions:
    return _connected[0]


def check_lost_reason(
    reason: object, known: Sequence[str] | None, *, deal_id: str, field: str, label: str
) -> str:
    """A lost reason as text: not blank, and one of ``known`` when the pipeline lists them
    (``field`` and ``label`` name the argument in the error)."""
    text = c.check_text(reason, label)
    if not text.strip():
        raise ValidationError(f"the {label} is blank", deal_id=deal_id, field=field)
    if known is not None and text not in known:
        raise ValidationError(
            f"{label} {text!r} is not one of {list(known)}", deal_id=deal_id, field=field
        )
    return text
