"""Core values: Stage, Bant, StageChange, Deal."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespipeline import Bant, Deal, Stage, StageChange, ValidationError, guards, limits
from salespipeline.deal import _iso_text

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def make_deal(**overrides: object) -> Deal:
    values: dict[str, object] = {
        "created_at": T0,
        "stage_entered_at": T0,
        "history": (StageChange("d1", None, "lead", T0, 1),),
    }
    values.update(overrides)
    return Deal("d1", "p", "lead", **values)  # type: ignore[arg-type]


# -- Stage ----------------------------------------------------------------------


def test_stage_label_defaults_to_title_of_name() -> None:
    assert Stage("needs_assessment", probability=0.3).label == "Needs Assessment"


def test_stage_keeps_korean_label() -> None:
    assert Stage("proposal", label="제안/견적", probability=0.5).label == "제안/견적"


def test_stage_normalises_single_guard_to_tuple() -> None:
    guard = guards.bant()
    assert Stage("proposal", probability=0.5, requires=guard).requires == (guard,)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"probability": "high"},
        {"probability": True},
        {"probability": float("nan")},
        {"probability": 0.5, "requires": "bant"},
        {"probability": 0.5, "requires": [lambda deal: ()]},  # no name
        {"probability": 0.5, "rot_after": 14},
        {"probability": 0.5, "label": 3},
    ],
)
def test_stage_rejects_wrong_types(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Stage("proposal", **kwargs)  # type: ignore[arg-type]


def test_stage_is_frozen() -> None:
    stage = Stage("proposal", probability=0.5)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stage.probability = 0.9  # type: ignore[misc]


# -- Bant -----------------------------------------------------------------------


def test_bant_score_missing_and_qualified() -> None:
    bant = Bant(budget=True, need=True)
    assert bant.score == 2
    assert bant.missing == ("authority", "timeline")
    assert not bant.qualified
    assert Bant(True, True, True, True).qualified


@given(st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_bant_score_plus_missing_is_four(b: bool, a: bool, n: bool, t: bool) -> None:
    bant = Bant(b, a, n, t)
    assert bant.score + len(bant.missing) == 4
    assert bant.qualified == (not bant.missing)


def test_bant_rejects_non_booleans() -> None:
    with pytest.raises(ValidationError, match="budget"):
        Bant(budget=1)  # type: ignore[arg-type]


# -- StageChange ----------------------------------------------------------------


def test_stage_change_rejects_naive_time() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        StageChange("d1", None, "lead", datetime(2026, 1, 1), 1)


def test_stage_change_needs_the_stage_it_enters() -> None:
    with pytest.raises(ValidationError, match="to_stage"):
        StageChange("d1", None, None, T0, 1)  # type: ignore[arg-type]
    assert StageChange("d1", None, "lead", T0, 1).from_stage is None  # entry: from nowhere


def test_stage_change_normalises_aware_time_to_utc() -> None:
    seoul = timezone(timedelta(hours=9))
    change = StageChange("d1", None, "lead", datetime(2026, 1, 1, 18, tzinfo=seoul), 1)
    assert change.at == datetime(2026, 1, 1, 9, tzinfo=timezone.utc)
    assert change.at.tzinfo is timezone.utc


# -- Deal -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_amount", "stored"),
    [(5, Decimal(5)), ("12.50", Decimal("12.50")), (Decimal("0.01"), Decimal("0.01"))],
)
def test_deal_amount_converts_to_decimal(given_amount: object, stored: Decimal) -> None:
    deal = make_deal(amount=given_amount)
    assert deal.amount == stored
    assert isinstance(deal.amount, Decimal)


@pytest.mark.parametrize(
    "amount",
    [1.5, float("nan"), Decimal("NaN"), Decimal("Infinity"), "inf", -1, "-0.01", "abc", True],
)
def test_deal_rejects_bad_amounts(amount: object) -> None:
    with pytest.raises(ValidationError, match="amount"):
        make_deal(amount=amount)


def test_deal_rejects_naive_timestamps() -> None:
    naive = datetime(2026, 1, 5, 9, 0)
    with pytest.raises(ValidationError, match="timezone-aware"):
        make_deal(created_at=naive)


def test_deal_rejects_empty_history() -> None:
    with pytest.raises(ValidationError, match="history must not be empty"):
        make_deal(history=())


def test_deal_rejects_history_not_ending_at_stage() -> None:
    history = (StageChange("d1", None, "other", T0, 1),)
    with pytest.raises(ValidationError, match="history ends in 'other'"):
        make_deal(history=history)


def test_deal_rejects_broken_history_chain() -> None:
    history = (
        StageChange("d1", None, "lead", T0, 1),
        StageChange("d1", "demo", "lead", T0, 2),
    )
    with pytest.raises(ValidationError, match="broken"):
        make_deal(history=history, version=2)


def test_deal_rejects_closed_at_on_open_deal() -> None:
    with pytest.raises(ValidationError, match="open deal"):
        make_deal(closed_at=T0)


def test_deal_fields_are_read_only_and_json_only() -> None:
    deal = make_deal(fields={"owner": "김민지", "tags": ["a", "b"], "meta": {"n": 1}})
    assert deal.fields["owner"] == "김민지"
    assert deal.fields["tags"] == ("a", "b")
    with pytest.raises(TypeError):
        deal.fields["owner"] = "x"  # type: ignore[index]
    with pytest.raises(ValidationError, match="JSON-compatible"):
        make_deal(fields={"when": T0})
    with pytest.raises(ValidationError, match="finite"):
        make_deal(fields={"score": float("inf")})


def test_deal_fields_compare_equal_to_plain_dicts() -> None:
    assert make_deal(fields={"a": 1}).fields == {"a": 1}


def test_deal_is_hashable_and_picklable() -> None:
    deal = make_deal(fields={"tags": ["x"], "meta": {"k": [1, 2]}})
    assert hash(deal) == hash(pickle.loads(pickle.dumps(deal)))
    assert pickle.loads(pickle.dumps(deal)) == deal


def test_evolve_bumps_version_and_validates() -> None:
    deal = make_deal()
    changed = deal.evolve(amount="250", bant=Bant(budget=True))
    assert changed.version == 2
    assert changed.amount == Decimal(250)
    assert deal.version == 1 and deal.amount == 0
    with pytest.raises(ValidationError, match="deal 'd1'"):
        deal.evolve(amount=-5)


@pytest.mark.parametrize("name", ["stage", "history", "version", "id", "closed_at"])
def test_evolve_refuses_lifecycle_fields(name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        make_deal().evolve(**{name: "x"})


def test_evolve_refuses_unknown_field_with_typed_error() -> None:
    with pytest.raises(ValidationError, match="no field 'colour'"):
        make_deal().evolve(colour="red")


def test_is_open() -> None:
    assert make_deal().is_open


@given(st.text(max_size=300))
def test_deal_id_is_checked_not_crashing(deal_id: str) -> None:
    try:
        deal = Deal(
            deal_id,
            "p",
            "lead",
            created_at=T0,
            stage_entered_at=T0,
            history=(StageChange(deal_id, None, "lead", T0, 1),),
        )
    except ValidationError:
        assert not deal_id.strip() or "\x00" in deal_id or len(deal_id) > limits.MAX_TEXT
    else:
        assert deal.id == deal_id


@given(st.datetimes(timezones=st.just(timezone.utc)) | st.datetimes(timezones=st.timezones()))
def test_times_are_written_as_isoformat_writes_them(moment: datetime) -> None:
    """A save writes times from their fields where it can; the text is isoformat's."""
    assert _iso_text(moment) == moment.isoformat()
    assert _iso_text(moment) == moment.isoformat()  # the day's text remembered
