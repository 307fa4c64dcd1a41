"""Built-in guards and combinators."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespipeline import Bant, Deal, Pipeline, Stage, ValidationError, Violation, guards
from salespipeline.guards import Guard

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
PIPELINE = Pipeline("p", [Stage("lead", probability=0.1)])


def deal(**kw: object) -> Deal:
    return PIPELINE.start("d1", at=T0, **kw)  # type: ignore[arg-type]


def fields(violations: tuple[Violation, ...]) -> list[str | None]:
    return [v.field for v in violations]


def test_bant_reports_each_missing_criterion_in_order() -> None:
    result = guards.bant()(deal(bant=Bant(authority=True)))
    assert fields(result) == ["bant.budget", "bant.need", "bant.timeline"]
    assert all(v.rule == "bant" for v in result)


def test_bant_subset_of_criteria() -> None:
    guard = guards.bant("budget", "authority")
    assert guard(deal(bant=Bant(budget=True, authority=True))) == ()
    assert fields(guard(deal(bant=Bant(need=True)))) == ["bant.budget", "bant.authority"]


def test_bant_min_score_passes_at_k_and_reports_all_missing_below() -> None:
    guard = guards.bant(min_score=3)
    assert guard(deal(bant=Bant(True, True, True, False))) == ()
    assert fields(guard(deal(bant=Bant(True, True)))) == ["bant.need", "bant.timeline"]


@pytest.mark.parametrize(
    "call",
    [
        lambda: guards.bant("money"),
        lambda: guards.bant("budget", "budget"),
        lambda: guards.bant(min_score=5),
        lambda: guards.bant("budget", min_score=0),
        lambda: guards.requires_fields(),
        lambda: guards.requires_fields(""),
        lambda: guards.min_amount(1.5),
        lambda: guards.rule("", lambda d: True, "m"),
        lambda: guards.all_of(),
        lambda: guards.any_of("bant"),
    ],
)
def test_bad_guard_parameters_are_validation_errors(call: object) -> None:
    with pytest.raises(ValidationError):
        call()  # type: ignore[operator]


@pytest.mark.parametrize("empty", [None, "", "   ", [], {}])
def test_requires_fields_treats_empty_values_as_missing(empty: object) -> None:
    guard = guards.requires_fields("owner", "region")
    result = guard(deal(fields={"owner": empty, "region": "emea"}))
    assert fields(result) == ["fields.owner"]


def test_requires_fields_accepts_zero_and_false() -> None:
    guard = guards.requires_fields("seats", "trial")
    assert guard(deal(fields={"seats": 0, "trial": False})) == ()


def test_min_amount_is_inclusive_and_decimal_exact() -> None:
    guard = guards.min_amount("100.00")
    assert guard(deal(amount="100")) == ()
    (violation,) = guard(deal(amount="99.99"))
    assert violation.field == "amount"
    assert "99.99" in violation.message
    assert guard.amount == Decimal("100.00")


def test_rule_wraps_a_predicate() -> None:
    guard = guards.rule("eu_only", lambda d: d.currency == "EUR", "EUR deals only", "currency")
    assert guard(deal(currency="EUR")) == ()
    assert guard(deal()) == (Violation("eu_only", "EUR deals only", field="currency"),)


def test_all_of_and_ampersand_report_every_violation() -> None:
    combined = guards.min_amount(10) & guards.requires_fields("owner")
    assert combined == guards.all_of(guards.min_amount(10), guards.requires_fields("owner"))
    assert fields(combined(deal())) == ["amount", "fields.owner"]


def test_any_of_passes_on_one_and_reports_all_options_on_failure() -> None:
    either = guards.bant("budget") | guards.min_amount(1000)
    assert either(deal(amount=1000)) == ()
    assert either(deal(bant=Bant(budget=True))) == ()
    assert fields(either(deal())) == ["bant.budget", "amount"]


def test_guards_compare_by_value_and_name_themselves() -> None:
    assert guards.bant() == guards.bant("timeline", "need", "authority", "budget")
    assert guards.bant().name == "bant"
    assert (guards.bant() & guards.min_amount(1)).name == "all_of(bant, min_amount)"
    assert isinstance(guards.bant(), Guard)


def test_plain_function_with_name_is_a_guard() -> None:
    def weekday_only(d: Deal) -> tuple[Violation, ...]:
        return ()

    weekday_only.name = "weekday_only"  # type: ignore[attr-defined]
    assert isinstance(weekday_only, Guard)
    pipeline = Pipeline("p", [Stage("lead", probability=0.1, requires=weekday_only)])
    assert pipeline.start("d", at=T0).stage == "lead"


@given(
    st.builds(Bant, st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    st.integers(min_value=1, max_value=4),
)
def test_bant_min_score_matches_its_definition(bant: Bant, k: int) -> None:
    passed = guards.bant(min_score=k)(deal(bant=bant)) == ()
    assert passed == (bant.score >= k)


@given(st.integers(0, 10**6), st.integers(0, 10**6))
def test_all_of_is_the_concatenation_of_its_parts(amount: int, minimum: int) -> None:
    a, b = guards.min_amount(minimum), guards.bant("need")
    d = deal(amount=amount)
    assert (a & b)(d) == a(d) + b(d)


def test_combinators_write_themselves_as_data_with_their_guards_nested() -> None:
    either = guards.bant("budget") | (guards.min_amount(10) & guards.requires_fields("owner"))
    assert either.spec() == {
        "guard": "any_of",
        "guards": [
            {"guard": "bant", "criteria": ["budget"]},
            {
                "guard": "all_of",
                "guards": [
                    {"guard": "min_amount", "amount": "10"},
                    {"guard": "requires_fields", "names": ["owner"]},
                ],
            },
        ],
    }


@pytest.mark.parametrize(
    ("name", "factory"), [("not a name", lambda: None), ("", lambda: None), ("kind", 5)]
)
def test_register_refuses_a_bad_kind_name_or_factory(name: str, factory: object) -> None:
    with pytest.raises(ValidationError):
        guards.register(name, factory)  # type: ignore[arg-type]
    assert name not in guards.registered()


def test_registered_is_a_copy_of_the_guard_kinds() -> None:
    kinds = guards.registered()
    assert {"bant", "requires_fields", "min_amount", "min_score"} <= set(kinds)
    kinds.pop("bant")  # type: ignore[attr-defined]
    assert "bant" in guards.registered()


@pytest.mark.parametrize(
    ("kind", "params"),
    [("bant", {"criteria": "budget"}), ("requires_fields", {"names": "owner"})],
)
def test_a_kind_read_from_data_takes_its_names_as_a_list(kind: str, params: object) -> None:
    with pytest.raises(ValidationError, match="must be a list of strings"):
        guards.registered()[kind](**params)  # type: ignore[arg-type]
