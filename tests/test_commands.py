"""The Tracker's decision core without any store: the steps it asks for, driven by hand.

``_commands.run`` yields each read or write as a value and takes its result back (or
its error, thrown in), so the retry rule can be checked step by step, with no I/O,
exactly as a sync or an async driver would see it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from salespipeline import log
from salespipeline._commands import (
    Changes,
    Command,
    Commit,
    Get,
    Load,
    Step,
    Steps,
    opened,
    run,
)
from salespipeline.deal import Deal
from salespipeline.errors import (
    ConcurrencyError,
    DealNotFoundError,
    DuplicateDealError,
    TransitionNotAllowedError,
)
from test_tracker import QUALIFIED, T0, sales

PIPELINE = sales()


def now() -> Any:
    return T0 + timedelta(hours=1)


def moving(retries: int = 1, key: str | None = None, remembered: Deal | None = None) -> Steps[Any]:
    """An advance of deal "d", on ``remembered`` when the store remembers it."""
    return run(
        "d",
        Command("advance"),
        key,
        pipeline=lambda name: PIPELINE,
        now=now,
        remembered=lambda id: remembered,
        retries=retries,
    )


class Script:
    """Drives a decision: answers each step it yields with the next reply, recording it."""

    def __init__(self, steps: Steps[Any]) -> None:
        self.steps = steps
        self.seen: list[Step] = []
        self.reply: Any = None
        self.error: BaseException | None = None
        self.step = self._next()

    def _next(self) -> Step:
        if self.error is not None:
            error, self.error = self.error, None
            step = self.steps.throw(error)
        else:
            step = self.steps.send(self.reply)
        self.seen.append(step)
        return step

    def answer(self, reply: Any = None, *, error: BaseException | None = None) -> Step:
        self.reply, self.error = reply, error
        self.step = self._next()
        return self.step

    def finish(self, reply: Any = None) -> Any:
        with pytest.raises(StopIteration) as stop:
            self.answer(reply)
        return stop.value.value


LEAD = PIPELINE.start("d", bant=QUALIFIED, at=T0)
CONFLICT = ConcurrencyError("d", expected=1, actual=2)


def test_a_move_on_a_remembered_deal_reads_nothing_and_commits() -> None:
    script = Script(moving(remembered=LEAD))
    step = script.step
    assert isinstance(step, Commit) and step.previous is LEAD
    assert step.deal.stage == "proposal"
    assert script.finish(step.deal) is step.deal
    assert [type(s) for s in script.seen] == [Commit]


def test_a_stale_remembered_deal_is_decided_again_on_a_load_which_is_no_retry() -> None:
    script = Script(moving(retries=0, remembered=LEAD))  # stale: its commit conflicts
    assert script.answer(error=CONFLICT) == Load("d")
    theirs = PIPELINE.advance(LEAD, at=T0 + timedelta(minutes=5))
    step = script.answer(theirs)
    assert isinstance(step, Commit) and step.deal.stage == "closing"  # from where it is now
    assert script.finish(step.deal).stage == "closing"


def test_a_conflict_on_a_loaded_deal_is_retried_then_raised() -> None:
    script = Script(moving(retries=1))
    assert script.step == Load("d")  # nothing remembered
    script.answer(LEAD)
    assert script.answer(error=CONFLICT) == Load("d")  # the one retry
    step = script.answer(LEAD)
    assert isinstance(step, Commit)
    with pytest.raises(ConcurrencyError):
        script.answer(error=CONFLICT)


def test_a_retry_refuses_a_deal_that_left_the_stage_the_command_saw() -> None:
    script = Script(moving(retries=3))
    script.answer(LEAD)
    script.answer(error=CONFLICT)
    lost = PIPELINE.lose(LEAD, "budget", at=T0 + timedelta(minutes=5))
    with pytest.raises(ConcurrencyError):
        script.answer(lost)  # an advance decided in lead never moves a lost deal


def test_a_refusal_of_a_remembered_deal_is_checked_on_the_loaded_one() -> None:
    lost = PIPELINE.lose(LEAD, "budget", at=T0)
    script = Script(moving(remembered=lost))
    assert script.step == Load("d")  # the copy refuses: it may be stale
    with pytest.raises(TransitionNotAllowedError):
        script.answer(lost)  # the stored deal refuses too


def test_a_command_made_with_its_key_returns_that_deal_and_writes_nothing() -> None:
    moved = PIPELINE.advance(LEAD, at=now())
    made = log.derive(LEAD, moved, key="k1")
    script = Script(moving(key="k1"))
    assert script.step == Changes("d", "k1")
    assert script.answer((made,)) == Get("d")
    assert script.finish(moved) is moved
    assert not any(isinstance(step, Commit) for step in script.seen)


def test_a_key_on_an_unknown_deal_goes_on_to_decide() -> None:
    script = Script(moving(key="k1"))
    assert script.answer(error=DealNotFoundError("d")) == Load("d")


def test_an_open_whose_id_is_taken_returns_the_deal_its_key_opened() -> None:
    script = Script(opened("d", "k1", lambda: LEAD, "ana"))
    assert script.answer(()) == Commit(LEAD, None, "ana", "k1")  # the key made nothing yet
    assert script.answer(error=DuplicateDealError("d")) == Changes("d", "k1")
    opening = log.derive(None, LEAD, key="k1")
    assert script.answer((opening,)) == Get("d")
    assert script.finish(LEAD) is LEAD


def test_an_open_whose_id_is_taken_without_a_key_is_refused() -> None:
    script = Script(opened("d", None, lambda: LEAD, None))
    assert script.step == Commit(LEAD, None, None, None)
    with pytest.raises(DuplicateDealError):
        script.answer(error=DuplicateDealError("d"))
