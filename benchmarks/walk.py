"""Transition cost: a seven-stage walk with a BANT guard before ``proposal``.

Each deal makes six advances and a win. The same walk is written four ways: with
salespipeline (pure ``Pipeline.advance``/``win``), with python-statemachine the
straightforward way (a machine instantiated on the record for each move, ``send``,
a validator for BANT), with the ``transitions`` library (``add_model``/``trigger``,
a condition for BANT) and as a plain dict lookup, the floor. The references keep
a history entry per move, as salespipeline does.
"""

from __future__ import annotations

from datetime import datetime, timezone
from itertools import pairwise
from typing import Any

from statemachine import State, StateMachine
from transitions import Machine

from benchmarks._timing import best_times
from salespipeline import Bant, Deal, presets

STAGES = (
    "prospecting",
    "qualification",
    "initial_contact",
    "needs_assessment",
    "proposal",
    "negotiation",
    "closing",
)
MOVES_PER_DEAL = len(STAGES)  # six advances and a win
QUALIFIED = Bant(budget=True, authority=True, need=True, timeline=True)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Record:
    """What an app keeps per deal when it drives a state machine library by hand."""

    def __init__(self, id: str) -> None:
        self.id = id
        self.stage = STAGES[0]
        self.bant = QUALIFIED
        self.version = 1
        self.history: list[tuple[str | None, str, datetime, int]] = [(None, STAGES[0], _now(), 1)]

    def record(self, source: str, target: str) -> None:
        self.version += 1
        self.history.append((source, target, _now(), self.version))


def _records(n_deals: int) -> list[Record]:
    return [Record(f"deal-{i}") for i in range(n_deals)]


# -- salespipeline -----------------------------------------------------------------


def salespipeline_prepare(n_deals: int) -> tuple[Any, list[Deal]]:
    pipeline = presets.seven_stage()
    return pipeline, [pipeline.start(f"deal-{i}", bant=QUALIFIED) for i in range(n_deals)]


def salespipeline_walk(work: tuple[Any, list[Deal]]) -> list[Deal]:
    pipeline, deals = work
    advance, win = pipeline.advance, pipeline.win
    done = []
    for deal in deals:
        for _ in range(MOVES_PER_DEAL - 1):
            deal = advance(deal)
        done.append(win(deal))
    return done


# -- python-statemachine, by hand --------------------------------------------------


class BantRefused(Exception):
    """The hand-written machine's refusal when BANT is not qualified."""


class SevenStage(StateMachine):
    """The walk written directly against python-statemachine."""

    prospecting = State(initial=True)
    qualification = State()
    initial_contact = State()
    needs_assessment = State()
    proposal = State()
    negotiation = State()
    closing = State()
    won = State(final=True)
    lost = State(final=True)

    advance = (
        prospecting.to(qualification)
        | qualification.to(initial_contact)
        | initial_contact.to(needs_assessment)
        | needs_assessment.to(proposal, validators="check_bant")
        | proposal.to(negotiation)
        | negotiation.to(closing)
    )
    win = closing.to(won)
    lose = lost.from_(
        prospecting,
        qualification,
        initial_contact,
        needs_assessment,
        proposal,
        negotiation,
        closing,
    )

    def check_bant(self) -> None:
        if not self.model.bant.qualified:
            raise BantRefused(f"deal {self.model.id}: BANT missing {self.model.bant.missing}")

    def after_transition(self, source: State, target: State) -> None:
        self.model.record(source.id, target.id)


def statemachine_walk(records: list[Record]) -> list[Record]:
    """A machine per move: what an app does when it loads a record per request."""
    for record in records:
        for _ in range(MOVES_PER_DEAL - 1):
            SevenStage(model=record, state_field="stage").send("advance")
        SevenStage(model=record, state_field="stage").send("win")
    return records


def statemachine_reused_walk(records: list[Record]) -> list[Record]:
    """A machine per deal, reused for its seven moves (cheaper, shown for fairness)."""
    for record in records:
        machine = SevenStage(model=record, state_field="stage")
        for _ in range(MOVES_PER_DEAL - 1):
            machine.send("advance")
        machine.send("win")
    return records


# -- transitions -------------------------------------------------------------------


def _transitions_machine() -> Machine:
    steps = [
        {"trigger": "advance", "source": a, "dest": b}
        for a, b in pairwise(STAGES)
        if b != "proposal"
    ]
    steps.append(
        {
            "trigger": "advance",
            "source": "needs_assessment",
            "dest": "proposal",
            "conditions": lambda event: event.model.bant.qualified,
        }
    )
    steps.append({"trigger": "win", "source": "closing", "dest": "won"})
    steps.append({"trigger": "lose", "source": list(STAGES), "dest": "lost"})
    return Machine(
        model=[],
        states=[*STAGES, "won", "lost"],
        transitions=steps,
        initial=STAGES[0],
        model_attribute="stage",
        auto_transitions=False,
        send_event=True,
        after_state_change=lambda event: event.model.record(
            event.transition.source, event.transition.dest
        ),
    )


def transitions_prepare(n_deals: int) -> tuple[Machine, list[Record]]:
    return _transitions_machine(), _records(n_deals)


def transitions_walk(work: tuple[Machine, list[Record]]) -> list[Record]:
    machine, records = work
    for record in records:
        machine.add_model(record, initial=record.stage)
        for _ in range(MOVES_PER_DEAL - 1):
            record.trigger("advance")  # type: ignore[attr-defined]
        record.trigger("win")  # type: ignore[attr-defined]
        machine.remove_model(record)
    return records


# -- the floor ---------------------------------------------------------------------

_NEXT = {**dict(pairwise(STAGES)), STAGES[-1]: "won"}


def floor_prepare(n_deals: int) -> list[dict[str, Any]]:
    return [{"stage": STAGES[0], "bant_ok": True} for _ in range(n_deals)]


def floor_walk(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A dict lookup and a boolean check per move: no history, no validation."""
    nxt = _NEXT
    for row in rows:
        for _ in range(MOVES_PER_DEAL):
            target = nxt[row["stage"]]
            if target == "proposal" and not row["bant_ok"]:
                raise BantRefused(target)
            row["stage"] = target
    return rows


# -- the table ---------------------------------------------------------------------

SALESPIPELINE = "salespipeline Pipeline.advance/win"
REFERENCE = "python-statemachine, by hand (machine per move)"
TRANSITIONS = "transitions (add_model + trigger)"


def contenders(n_deals: int) -> dict[str, tuple[Any, Any]]:
    """Name -> (prepare, walk) for every way of doing the walk."""
    return {
        SALESPIPELINE: (
            lambda: salespipeline_prepare(n_deals),
            salespipeline_walk,
        ),
        REFERENCE: (lambda: _records(n_deals), statemachine_walk),
        "python-statemachine, by hand (machine per deal)": (
            lambda: _records(n_deals),
            statemachine_reused_walk,
        ),
        TRANSITIONS: (
            lambda: transitions_prepare(n_deals),
            transitions_walk,
        ),
        "dict lookup (floor)": (lambda: floor_prepare(n_deals), floor_walk),
    }


def measure(*, n_deals: int = 300, rounds: int = 7) -> dict[str, float]:
    """Seconds per transition of each contender (best round)."""
    best = best_times(contenders(n_deals), rounds=rounds)
    return {name: seconds / (n_deals * MOVES_PER_DEAL) for name, seconds in best.items()}
