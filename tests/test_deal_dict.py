"""deal.to_dict() / Deal.from_dict(): JSON-compatible, exact round trips, every refusal named."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespipeline import LOST, Bant, Deal, ValidationError, limits, log, presets
from salespipeline._checks import thaw
from salespipeline.deal import STATE
from salespipeline.testing import strategies

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
FIVE = presets.five_stage()
ANY_PIPELINE = st.sampled_from([FIVE, presets.seven_stage(), presets.funnel()]) | (
    strategies.pipelines(2, 6)
)
KEYS = ("id", *STATE, "updated_at", "version", "history")


def later(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def full_deal() -> Deal:
    """A lost deal with every optional attribute set and actors and reasons in its history."""
    deal = FIVE.start(
        "acme",
        amount="1234.567890",
        currency="EUR",
        bant=Bant(budget=True, need=True),
        fields={"region": "EMEA", "tags": ["a", {"b": None}], "seats": 12},
        probability=0.35,
        at=T0,
    )
    deal = deal.evolve(
        owner="kim",
        close_date=date(2026, 3, 31),
        forecast_category="best_case",
        next_action="call back",
        next_action_at=later(30),
        at=later(1),
    )
    deal = FIVE.advance(deal, at=later(2))
    deal = FIVE.move(deal, LOST, reason="no budget", at=later(3), actor="lee")
    return deal.evolve(fields={**deal.fields, "note": "후속 없음"}, at=later(4))


def base() -> dict[str, Any]:
    return full_deal().to_dict()


def refused(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Deal.from_dict(data)  # type: ignore[arg-type]
    return caught.value


# -- round trips ---------------------------------------------------------------------


@given(st.data())
def test_any_deal_round_trips_through_its_dict_and_json(data: st.DataObject) -> None:
    deal = data.draw(strategies.deals(data.draw(ANY_PIPELINE)))
    assert Deal.from_dict(deal.to_dict()) == deal
    text = json.dumps(deal.to_dict(), allow_nan=False)
    again = Deal.from_dict(json.loads(text))
    assert again == deal
    assert again.updated_at == deal.updated_at and again.history == deal.history
    assert json.dumps(again.to_dict(), allow_nan=False) == text


@given(st.data())
def test_the_dict_is_keyed_by_attribute_name_in_json_types(data: st.DataObject) -> None:
    deal = data.draw(strategies.deals(data.draw(ANY_PIPELINE)))
    encoded = deal.to_dict()
    assert tuple(encoded) == KEYS
    assert encoded["amount"] == str(deal.amount)
    assert Decimal(encoded["amount"]) == deal.amount
    assert encoded["updated_at"] == deal.updated_at.isoformat()
    assert encoded["updated_at"].endswith("+00:00")
    assert all(
        set(entry) == {"from_stage", "to_stage", "at", "version", "reason", "actor"}
        for entry in encoded["history"]
    )
    assert json.loads(json.dumps(encoded)) == encoded


@given(st.data())
def test_the_dict_encodes_each_attribute_as_the_change_log_does(data: st.DataObject) -> None:
    pipeline = data.draw(ANY_PIPELINE)
    deal = data.draw(strategies.deals(pipeline, max_steps=0))
    opened = log.derive(None, deal)
    logged = {name: thaw(new) for name, (_, new) in opened.changed.items()}
    assert logged == {name: deal.to_dict()[name] for name in STATE}


def test_a_full_lost_deal_round_trips_exactly() -> None:
    deal = full_deal()
    again = Deal.from_dict(json.loads(json.dumps(deal.to_dict())))
    assert again == deal
    assert (again.owner, again.close_date, again.forecast_category) == (
        "kim",
        date(2026, 3, 31),
        "best_case",
    )
    assert (again.lost_reason, again.history[-1].actor, again.history[-1].reason) == (
        "no budget",
        "lee",
        "no budget",
    )
    assert again.probability == 0.35 and again.amount == Decimal("1234.56789")
    assert again.fields["note"] == "후속 없음"


def test_times_in_other_zones_are_read_as_utc() -> None:
    data = base()
    data["history"][0]["at"] = data["created_at"] = "2026-01-05T18:00:00+09:00"
    assert Deal.from_dict(data) == full_deal()


def test_keys_with_defaults_may_be_left_out() -> None:
    deal = FIVE.start("acme", at=T0)
    required = ("id", "pipeline", "stage", "created_at", "stage_entered_at", "history")
    assert Deal.from_dict({key: deal.to_dict()[key] for key in required}) == deal


# -- refusals ------------------------------------------------------------------------


@pytest.mark.parametrize("data", [None, [], "acme", 3])
def test_data_that_is_not_a_mapping_is_refused(data: object) -> None:
    assert "must be a mapping" in str(refused(data))


def test_an_unknown_key_is_refused_by_name() -> None:
    error = refused({**base(), "colour": "red"})
    assert error.field == "colour" and "unknown key 'colour'" in str(error)


def test_a_non_text_key_is_refused() -> None:
    error = refused({**base(), 7: "seven"})
    assert error.field == "7" and "unknown key 7" in str(error)


@pytest.mark.parametrize(
    "key", ["id", "pipeline", "stage", "created_at", "stage_entered_at", "history"]
)
def test_a_missing_required_key_is_refused_by_name(key: str) -> None:
    data = base()
    del data[key]
    error = refused(data)
    assert error.field == key and f"lacks the key {key!r}" in str(error)


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("id", 7, "deal id must be a string"),
        ("id", " ", "deal id must not be blank"),
        ("pipeline", None, "pipeline must be a string"),
        ("amount", 1.5, "no floats"),
        ("amount", "-1", "amount"),
        ("amount", "ten", "amount"),
        ("amount", "1" * (limits.MAX_AMOUNT_DIGITS + 1), "amount"),
        ("amount", "0.1234567", "amount"),
        ("currency", "XYZ", "ISO 4217"),
        ("bant", {"budget": 1}, "bant.budget must be True or False"),
        ("bant", {"money": True}, "bant must be a mapping"),
        ("bant", [True], "bant must be a mapping"),
        ("fields", [1], "fields must be a mapping"),
        ("fields", {"a": "x" * limits.MAX_FIELDS_BYTES}, "fields"),
        ("probability", "0.5", "probability must be a number"),
        ("probability", 1.5, "probability"),
        ("probability", 10**400, "probability"),
        ("owner", " ", "owner must not be blank"),
        ("owner", "x" * (limits.MAX_TEXT + 1), "owner"),
        ("next_action", "a\x00b", "next_action"),
        ("close_date", "2026-02-30", "close_date '2026-02-30' is not an ISO date"),
        ("close_date", "2026-03-31T00:00:00", "is not an ISO date"),
        ("close_date", 20260331, "close_date must be an ISO date text"),
        ("forecast_category", "closed", "forecast_category must be one of"),
        ("created_at", None, "created_at: "),
        ("created_at", "2026-01-05 09:00", "created_at must be timezone-aware"),
        ("created_at", "yesterday", "created_at 'yesterday' is not an ISO 8601 time"),
        ("created_at", 1767603600, "created_at must be ISO 8601 text"),
        ("updated_at", "9998-12-31T23:00:00-05:00", "outside the years"),
        ("next_action_at", "2026-01-06T10:00:00", "next_action_at must be timezone-aware"),
        ("version", 2.0, "version must be an integer"),
        ("version", True, "version must be an integer"),
        ("version", limits.MAX_VERSION + 1, "version must be an integer"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(key: str, value: object, says: str) -> None:
    error = refused({**base(), key: value})
    assert error.field == key
    assert says in str(error)
    assert key in str(error)


@pytest.mark.parametrize("history", ["v1", {"0": {}}, 3, None])
def test_a_history_that_is_not_a_list_is_refused(history: object) -> None:
    error = refused({**base(), "history": history})
    assert error.field == "history" and "history must be a list" in str(error)


def test_a_history_entry_that_is_not_a_mapping_is_refused_by_index() -> None:
    data = base()
    data["history"][1] = ["prospecting", "qualification"]
    error = refused(data)
    assert error.field == "history[1]" and "history[1] must be a mapping" in str(error)


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("at", "2026-01-05T10:00:00", "history[1].at must be timezone-aware"),
        ("at", "soon", "history[1].at 'soon' is not an ISO 8601 time"),
        ("at", None, "history[1].at must be ISO 8601 text"),
        ("version", "2", "history[1].version must be an integer"),
        ("to_stage", None, "history[1].to_stage must be a string"),
        ("from_stage", 3, "history[1].from_stage must be a string"),
        ("reason", 3, "history[1].reason must be a string"),
        ("actor", " ", "history[1].actor must not be blank"),
        ("actor", "x" * (limits.MAX_TEXT + 1), "history[1].actor"),
    ],
)
def test_a_bad_history_value_is_refused_naming_its_path(
    key: str, value: object, says: str
) -> None:
    data = base()
    data["history"][1][key] = value
    error = refused(data)
    assert error.field == f"history[1].{key}"
    assert says in str(error)


def test_an_unknown_or_missing_history_key_is_refused_by_path() -> None:
    data = base()
    data["history"][0]["deal_id"] = "acme"
    assert refused(data).field == "history[0].deal_id"
    data = base()
    del data["history"][2]["at"]
    error = refused(data)
    assert error.field == "history[2].at" and "lacks the key 'at'" in str(error)


def test_values_that_disagree_with_each_other_are_refused() -> None:
    assert "history ends in" in str(refused({**base(), "stage": "proposal"}))
    assert "lost_reason" in str(refused({**base(), "lost_reason": None}))
    assert "stage_entered_at" in str(refused({**base(), "stage_entered_at": later(9).isoformat()}))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


def outcome(data: dict[str, Any]) -> Deal | ValidationError:
    """The deal ``data`` describes, or the ValidationError refusing it (anything else escapes)."""
    try:
        return Deal.from_dict(data)
    except ValidationError as error:
        return error


@given(st.sampled_from(KEYS), JSON)
def test_any_json_value_under_any_key_is_a_deal_or_a_validation_error(
    key: str, value: object
) -> None:
    result = outcome({**base(), key: value})
    if isinstance(result, ValidationError):
        assert result.field is None or result.field.startswith(key)
    else:
        assert Deal.from_dict(result.to_dict()) == result


@given(st.integers(0, 2), st.sampled_from(["from_stage", "to_stage", "at", "version"]), JSON)
def test_any_json_value_in_a_history_entry_is_a_deal_or_a_validation_error(
    index: int, key: str, value: object
) -> None:
    data = base()
    data["history"][index][key] = value
    result = outcome(data)
    if isinstance(result, ValidationError):
        assert result.field in (None, f"history[{index}].{key}")
    else:
        assert result.history[index] == full_deal().history[index]


def test_a_time_encodes_as_its_own_iso_text_whichever_was_encoded_before() -> None:
    """The encoder keeps the last time it encoded; an equal time or another one is
    still encoded as itself, with or without microseconds."""
    from salespipeline.deal import encode_value

    whole, fraction = T0, T0 + timedelta(microseconds=5)
    equal = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
    for value in (whole, whole, fraction, equal, whole, fraction, fraction):
        assert encode_value("stage_entered_at", value) == value.isoformat()
    assert encode_value("closed_at", None) is None
