"""The error hierarchy: builtins, messages, pickling."""

from __future__ import annotations

import pickle

import pytest

from salespipeline import (
    ConcurrencyError,
    CorruptRecordError,
    DealNotFoundError,
    DefinitionError,
    DuplicateDealError,
    GuardError,
    SalesPipelineError,
    StageBlockedError,
    StorageError,
    TransitionNotAllowedError,
    UnknownPipelineError,
    UnknownStageError,
    ValidationError,
    Violation,
)

ERRORS = [
    DefinitionError(["a", "b"], pipeline="p"),
    ValidationError("bad amount", deal_id="d1", field="amount"),
    UnknownStageError("nowhere", pipeline="p", deal_id="d1"),
    UnknownPipelineError("q", known=["p"]),
    TransitionNotAllowedError("d1", "lead", "closing", reason="no skipping"),
    StageBlockedError("d1", "proposal", [Violation("bant", "BANT budget is not confirmed")]),
    GuardError("d1", "proposal", "broken", "ZeroDivisionError: x"),
    DealNotFoundError("d1"),
    DuplicateDealError("d1"),
    ConcurrencyError("d1", expected=3, actual=4),
    StorageError("disk full", deal_id="d1"),
    CorruptRecordError("d1", "unknown stage 'zz'"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_pickles_with_its_attributes(error: SalesPipelineError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_is_a_sales_pipeline_error(error: SalesPipelineError) -> None:
    assert isinstance(error, SalesPipelineError)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (DefinitionError, ValueError),
        (ValidationError, ValueError),
        (UnknownStageError, KeyError),
        (UnknownPipelineError, KeyError),
        (DealNotFoundError, KeyError),
        (CorruptRecordError, StorageError),
    ],
)
def test_errors_also_inherit_the_fitting_builtin(cls: type, builtin: type) -> None:
    assert issubclass(cls, builtin)


def test_key_errors_have_readable_messages() -> None:
    assert str(UnknownStageError("zz", pipeline="p")) == "unknown stage 'zz' in pipeline 'p'"
    assert str(DealNotFoundError("d9")) == "deal 'd9': not found"


def test_messages_name_deal_stages_and_reason() -> None:
    message = str(TransitionNotAllowedError("d1", "lead", "closing", reason="no skipping"))
    assert message == "deal 'd1': cannot move from 'lead' to 'closing': no skipping"
    blocked = str(ERRORS[5])
    assert "deal 'd1'" in blocked and "'proposal'" in blocked and "budget" in blocked


def test_definition_error_lists_problems() -> None:
    error = DefinitionError(["x is wrong", "y is wrong"])
    assert error.problems == ("x is wrong", "y is wrong")
    assert "x is wrong" in str(error) and "y is wrong" in str(error)
