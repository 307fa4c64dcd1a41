"""A stored deal row decodes as the Deal constructor would build it, or is refused.

``_codec`` builds stored deals without running the constructor's converters again
(their answers for repeating names remembered, times range-checked as built); here
rows with junk in a column or two are decoded both ways: the same Deal, or both refuse.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespipeline.deal import Bant, Deal, History, StageChange
from salespipeline.errors import CorruptRecordError
from salespipeline.storage import _codec
from salespipeline.testing.contract import T0, contract_pipeline, rich_deal

PIPELINE = contract_pipeline()
DEALS = (
    rich_deal(PIPELINE),
    PIPELINE.start("plain", at=T0),
    PIPELINE.lose(PIPELINE.start("lost", at=T0, owner="ann"), "price", at=T0),
)
JUNK = (
    None,
    "",
    " ",
    "usd",
    "USD",
    "xx",
    "lead",
    "won",
    "lost",
    "commit",
    "\x00",
    "{}",
    '{"a": 1}',
    "[1]",
    "nope",
    "2026-02-30",
    "2026-03-01",
    "1.50",
    "-0.00",
    " 7 ",
    "1e3",
    0,
    1,
    2,
    -1,
    True,
    False,
    0.5,
    1.5,
    2**31,
    2**62,
    -(2**62),
    Decimal("-1"),
    Decimal("1E+3"),
    Decimal("0.1234567890123"),
    Decimal("NaN"),
    b"bytes",
    _codec.to_us(T0),
    253402300799999999,
)


def _reference(row: list[Any], changes: list[Any]) -> Deal:
    """The row built by the Deal constructor itself (every converter and validator)."""
    (id, pipeline, stage, amount, currency, budget, authority, need, timeline) = row[:9]
    (fields, probability, lost_reason, next_action, next_us) = row[9:14]
    (created_us, entered_us, closed_us, version) = row[14:18]
    (owner, close_date, forecast_category, updated_us) = row[18:22]
    optional_time = lambda us: None if us is None else _codec.from_us(us)  # noqa: E731
    return Deal(
        id,
        pipeline,
        stage,
        amount=_codec._amount(amount),
        currency=currency,
        bant=Bant(*(_codec._flag(v) for v in (budget, authority, need, timeline))),
        fields=_codec._fields(fields),
        probability=probability,
        lost_reason=lost_reason,
        next_action=next_action,
        next_action_at=optional_time(next_us),
        created_at=_codec.from_us(created_us),
        stage_entered_at=_codec.from_us(entered_us),
        closed_at=optional_time(closed_us),
        owner=owner,
        close_date=None if close_date is None else _codec._date(close_date),
        forecast_category=forecast_category,
        updated_at=_codec.from_us(updated_us),
        version=version,
        history=History._trusted(_codec.decode_history(row[0], changes)),
    )


def test_every_junk_value_in_every_column_decodes_as_the_constructor_builds_it() -> None:
    for deal in DEALS:
        for column in range(len(_codec.DEAL_COLUMNS)):
            for junk in JUNK:
                _check(deal, [(column, junk)])


@given(
    deal=st.sampled_from(DEALS),
    damage=st.lists(
        st.tuples(st.integers(0, len(_codec.DEAL_COLUMNS) - 1), st.sampled_from(JUNK)),
        max_size=2,
    ),
)
def test_a_row_decodes_as_the_constructor_builds_it_or_is_refused(
    deal: Deal, damage: list[tuple[int, object]]
) -> None:
    _check(deal, damage)


def _check(deal: Deal, damage: list[tuple[int, object]]) -> None:
    row = _codec.deal_values(deal)
    for column, junk in damage:
        row[column] = junk
    changes = [(deal.id, *_codec.change_values(c)[1:]) for c in deal.history]
    try:
        expected: Deal | None = _reference(row, changes)
    except Exception:  # any refusal: the decoder must refuse too
        expected = None
    if expected is None:
        try:
            _codec.decode_deal(row, changes)
        except CorruptRecordError:
            return
        raise AssertionError(f"decoded a row the constructor refuses: {damage}")
    decoded = _codec.decode_deal(row, changes)
    assert decoded == expected
    assert str(decoded.amount) == str(expected.amount)  # the same places, not only the value
    assert [type(getattr(decoded, n)) for n in _codec.ENCODERS if n != "bant"] == [
        type(getattr(expected, n)) for n in _codec.ENCODERS if n != "bant"
    ]


def test_a_found_row_decodes_its_json_history_as_the_history_rows() -> None:
    deal = DEALS[0]
    row = _codec.deal_values(deal)
    entries = [list(_codec.change_values(c)[1:]) for c in deal.history]
    assert _codec.decode_found([*row, json.dumps(entries)]) == deal
    with pytest.raises(CorruptRecordError, match="no history rows") as refused:
        _codec.decode_found([*row, None])
    assert refused.value.deal_id == deal.id


def test_a_found_row_with_junk_in_a_column_or_an_entry_decodes_as_the_history_rows_do() -> None:
    json_junk = [junk for junk in JUNK if not isinstance(junk, (bytes, Decimal))]
    for deal in DEALS:
        entries = [list(_codec.change_values(c)[1:]) for c in deal.history]
        for column in range(len(_codec.DEAL_COLUMNS)):
            for junk in JUNK:
                row = _codec.deal_values(deal)
                row[column] = junk
                _check_found(row, entries)
        for index, entry in enumerate(entries):
            for field in range(len(entry)):
                for junk in json_junk:
                    damaged = [list(e) for e in entries]
                    damaged[index][field] = junk
                    _check_found(_codec.deal_values(deal), damaged)


def _check_found(row: list[Any], entries: list[list[Any]]) -> None:
    """``decode_found`` of ``row`` and its JSON history is ``decode_deal`` of the same
    row and history rows: the same Deal, or both refuse."""
    try:
        expected: Deal | None = _codec.decode_deal(row, [(row[0], *e) for e in entries])
    except CorruptRecordError:
        expected = None
    found = [*row, json.dumps(entries)]
    if expected is None:
        with pytest.raises(CorruptRecordError):
            _codec.decode_found(found)
        return
    decoded = _codec.decode_found(found)
    assert decoded == expected
    assert str(decoded.amount) == str(expected.amount)
    assert [(c.at, type(c.at)) for c in decoded.history] == [
        (c.at, type(c.at)) for c in expected.history
    ]


def test_junk_in_every_field_of_a_history_row_decodes_as_stage_change_builds_it() -> None:
    """The history decoders check each value as ``StageChange`` does (a blank actor was
    once read back from a row, though no StageChange can hold one)."""
    junk = [*JUNK, "   ", "\t"]
    for deal in DEALS:
        for entry in deal.history:
            values = list(_codec.change_values(entry))
            for field in range(1, len(values)):
                for value in junk:
                    damaged = [*values[:field], value, *values[field + 1 :]]
                    _check_entry(deal.id, damaged)


def _check_entry(deal_id: str, row: list[Any]) -> None:
    _, version, from_stage, to_stage, at_us, reason, actor = row
    try:
        at = _codec.from_us(at_us)
        expected: StageChange | None = StageChange(
            deal_id, from_stage, to_stage, at, version, reason=reason, actor=actor
        )
    except Exception:  # any refusal: the decoder must refuse too
        expected = None
    if expected is None:
        with pytest.raises(CorruptRecordError):
            _codec.decode_history(deal_id, [row])
        return
    assert _codec.decode_history(deal_id, [row]) == [expected]
