"""Regression tests for inputs that escaped as bare exceptions or unbounded work (issue 15).

Each test names the input that broke the public API before, and checks that it now
gets a typed error from ``salespipeline.errors`` (or the documented normal form),
before any work or write.
"""

from __future__ import annotations

import decimal
import time
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespipeline import (
    DefinitionError,
    Pipeline,
    SalesPipelineError,
    Stage,
    StorageError,
    Tracker,
    TransitionNotAllowedError,
    UnknownPipelineError,
    UnknownStageError,
    ValidationError,
    _checks,
    cli,
    definitions,
    followups,
    guards,
    limits,
    metrics,
    presets,
    scoring,
)
from salespipeline.migration import Migration, migrate_store
from salespipeline.storage import MemoryStore, SQLiteStore

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
WEST = timezone(timedelta(hours=-1))
EAST = timezone(timedelta(hours=1))


class IntOffset(tzinfo):
    """A broken tzinfo: ``utcoffset`` returns an int instead of a timedelta."""

    def utcoffset(self, dt: datetime | None) -> Any:
        return 3600

    def dst(self, dt: datetime | None) -> Any:
        return None


# -- times ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "at",
    [
        datetime.max.replace(tzinfo=WEST),  # converting to UTC overflows the calendar
        datetime.min.replace(tzinfo=EAST),
        datetime(9999, 12, 31, tzinfo=timezone.utc),  # past MAX_YEAR
        datetime(2026, 1, 1, tzinfo=IntOffset()),
    ],
    ids=["max-west", "min-east", "year-9999", "int-offset"],
)
def test_times_that_cannot_be_utc_are_validation_errors(at: datetime) -> None:
    pipeline = presets.four_stage()
    with pytest.raises(ValidationError, match=r"at|timestamp|time zone"):
        pipeline.start("d1", at=at)
    deal = pipeline.start("d1", at=T0)
    with pytest.raises(ValidationError):
        deal.evolve(next_action_at=at)


def test_the_years_at_the_edges_of_the_limit_are_accepted() -> None:
    deal = presets.four_stage().start("d1", at=datetime(1, 1, 1, 1, tzinfo=EAST))
    assert deal.created_at == datetime(1, 1, 1, tzinfo=timezone.utc)
    late = datetime(limits.MAX_YEAR, 12, 31, 23, tzinfo=WEST)
    with pytest.raises(ValidationError, match="years"):
        presets.four_stage().start("d2", at=late)  # 9999-01-01 in UTC


# -- amounts -------------------------------------------------------------------------------


def test_a_huge_exponent_is_normalised_at_once_not_unfolded_later() -> None:
    started = time.perf_counter()
    deal = presets.four_stage().start("d1", amount="0E+20000000", at=T0)
    assert str(deal.amount) == "0"
    with SQLiteStore(":memory:") as store:
        store.add(deal)
        assert store.get("d1").amount == 0
    assert time.perf_counter() - started < 5  # a guard against a hang, not a benchmark


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("1e3", "1000"),
        ("12.50", "12.50"),
        ("1.5000000", "1.500000"),
        ("999999999999999999.999999", "999999999999999999.999999"),
        (Decimal("5E+17"), "500000000000000000"),
    ],
)
def test_amounts_are_kept_in_canonical_form(given: object, stored: str) -> None:
    assert str(presets.four_stage().start("d1", amount=given, at=T0).amount) == stored


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("1.1234567", "decimal places"),
        ("1E+18", "too large"),
        (10**18, "too large"),
        ("1e999999999", "too large"),
    ],
)
def test_amounts_beyond_the_published_limits_are_refused(given: object, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        presets.four_stage().start("d1", amount=given, at=T0)


# -- text --------------------------------------------------------------------------------


def test_an_unknown_currency_code_is_refused() -> None:
    pipeline = presets.four_stage()
    with pytest.raises(ValidationError, match="ISO 4217"):
        pipeline.start("d1", currency="XYZ", at=T0)
    assert pipeline.start("d1", currency="krw", at=T0).currency == "KRW"


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_next_action_is_refused(blank: str) -> None:
    deal = presets.four_stage().start("d1", at=T0)
    with pytest.raises(ValidationError, match="next_action"):
        deal.evolve(next_action=blank)


@pytest.mark.parametrize("label", ["Pro\x00posal", "lone \ud800", "x" * (limits.MAX_TEXT + 1)])
def test_a_label_no_backend_can_keep_is_a_definition_problem(label: str) -> None:
    with pytest.raises(DefinitionError) as refused:
        Pipeline("p", [Stage("a", probability=0.1), Stage("b", label=label, probability=0.5)])
    assert any("label" in problem for problem in refused.value.problems)


# -- fields ------------------------------------------------------------------------------


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"notes": "x" * limits.MAX_FIELDS_BYTES}, "KiB"),
        ({"rows": list(range(10**6))}, "KiB"),
        ({"deep": _nested(limits.MAX_DEPTH + 1)}, "nested"),
        ({"big": 10**5000}, "too long"),
    ],
    ids=["long-text", "long-list", "deep", "big-int"],
)
def test_fields_beyond_the_published_limits_are_refused(
    fields: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        presets.four_stage().start("d1", fields=fields, at=T0)


def test_fields_up_to_the_limits_are_kept() -> None:
    fields = {"deep": _nested(limits.MAX_DEPTH - 1), "notes": "é" * 1000, "n": 10**1000}
    assert presets.four_stage().start("d1", fields=fields, at=T0).fields["n"] == 10**1000


# -- pipelines -----------------------------------------------------------------------------


def test_a_pipeline_with_too_many_stages_is_refused_before_it_is_compiled() -> None:
    stages = [Stage(f"s{i}", probability=0.5) for i in range(5_000)]
    started = time.perf_counter()
    with pytest.raises(DefinitionError, match=f"at most {limits.MAX_STAGES}"):
        Pipeline("long", stages)
    assert time.perf_counter() - started < 5


def test_the_largest_pipeline_builds() -> None:
    stages = [Stage(f"s{i}", probability=0.5) for i in range(limits.MAX_STAGES)]
    assert len(Pipeline("long", stages).stages) == limits.MAX_STAGES


@pytest.mark.parametrize("version", [9_999_999_999_999_999_999, limits.MAX_VERSION + 1, 0])
def test_a_version_no_store_can_keep_is_a_definition_problem(version: int) -> None:
    with pytest.raises(DefinitionError, match="version"):
        Pipeline("p", [Stage("a", probability=0.1)], version=version)
    Pipeline("p", [Stage("a", probability=0.1)], version=limits.MAX_VERSION)


# -- the tracker ---------------------------------------------------------------------------


def test_a_refused_tracker_records_no_pipeline() -> None:
    unwritable = Pipeline(
        "custom",
        [Stage("a", probability=0.1, requires=guards.rule("r", lambda d: True, "never"))],
    )
    store = MemoryStore()
    with pytest.raises(DefinitionError):
        Tracker(store, [presets.four_stage(), unwritable])
    assert store.pipelines() == ()


def test_unknown_names_in_tracker_filters_are_errors_not_empty_results() -> None:
    tracker = Tracker(MemoryStore(), [presets.four_stage()])
    with pytest.raises(UnknownStageError):
        list(tracker.deals(stage="nowhere"))
    with pytest.raises(UnknownPipelineError):
        list(tracker.deals(pipeline="nope"))
    with pytest.raises(UnknownStageError):
        list(tracker.deals(pipeline="four_stage", stage="nowhere"))
    assert list(tracker.deals(pipeline="four_stage", stage="won")) == []


# -- definitions as text ---------------------------------------------------------------------

DEEP_JSON = "[" * 5000 + "]" * 5000
DEEP_TOML = "a = " + "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    ("text", "text_format", "reason"),
    [
        (DEEP_JSON, "json", "nested"),
        (DEEP_TOML, "toml", "nested"),
        ('{"a": ' * 33 + "1" + "}" * 33, "json", "nested"),
        ('{"format": 1, "name": "p", "version": ' + "9" * 5000 + "}", "json", "digits"),
        ("format = 1\nversion = " + "9" * 5000, "toml", "digits"),
        (b"\xff\xfe", "toml", "UTF-8"),
    ],
    ids=["deep-json", "deep-toml", "33-tables", "long-int-json", "long-int-toml", "not-utf8"],
)
def test_definition_text_that_broke_the_parsers_is_a_definition_error(
    text: str | bytes, text_format: Any, reason: str
) -> None:
    with pytest.raises(DefinitionError) as refused:
        definitions.loads(text, format=text_format)
    assert reason in " ".join(refused.value.problems)


@pytest.mark.parametrize("text", [None, 5, ["format = 1"]])
def test_a_definition_that_is_not_text_is_a_validation_error(text: Any) -> None:
    with pytest.raises(ValidationError, match="str or bytes"):
        definitions.loads(text)


def test_a_definition_may_be_given_as_utf8_bytes() -> None:
    text = definitions.dumps(presets.four_stage(labels="ko"))
    assert definitions.loads(text.encode()) == presets.four_stage(labels="ko")


def test_a_definition_file_with_thousands_of_stages_is_refused_before_any_is_built(
    tmp_path: Any,
) -> None:
    path = tmp_path / "long.json"
    stages = ", ".join(f'{{"name": "s{i}", "probability": 0.5}}' for i in range(5_000))
    path.write_text(f'{{"format": 1, "name": "long", "stages": [{stages}]}}')
    started = time.perf_counter()
    with pytest.raises(DefinitionError, match=f"at most {limits.MAX_STAGES}"):
        definitions.load_pipeline(path)
    assert time.perf_counter() - started < 5


# -- migration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("store", "migration"),
    [(MemoryStore(), "junk"), ("junk", None), (MemoryStore(), None)],
)
def test_migrate_store_refuses_arguments_of_the_wrong_kind(store: Any, migration: Any) -> None:
    with pytest.raises(ValidationError, match="migrate_store"):
        migrate_store(store, migration)


def test_migrate_store_refuses_a_progress_that_cannot_be_called() -> None:
    mapping = {"needs_assessment": "qualification", "negotiation": "proposal"}
    migration = Migration(presets.seven_stage(), presets.five_stage(), mapping)
    with pytest.raises(ValidationError, match="progress"):
        migrate_store(MemoryStore(), migration, progress=5)  # type: ignore[arg-type]


# -- wording ---------------------------------------------------------------------------------


def test_months_in_a_duration_are_refused_with_the_reason() -> None:
    with pytest.raises(DefinitionError) as refused:
        definitions.from_dict(
            {
                "format": 1,
                "name": "p",
                "stages": [{"name": "a", "probability": 0.5, "rot_after": "P1M"}],
            }
        )
    assert "months" in refused.value.problems[0] and "not an ISO" not in refused.value.problems[0]


def test_reopening_an_open_deal_says_so_in_plain_words() -> None:
    pipeline = presets.four_stage()
    with pytest.raises(TransitionNotAllowedError) as refused:
        pipeline.reopen(pipeline.start("d1", at=T0))
    assert "(reopen)" not in str(refused.value)
    assert "cannot reopen it from 'lead_generation'" in str(refused.value)
    assert refused.value.to_stage == refused.value.from_stage == "lead_generation"


# -- found by the hostile-input classes of the fuzz suite (tests/test_fuzz_api.py) --------------


class RaisingOffset(tzinfo):
    """A tzinfo whose ``utcoffset`` fails, as a broken zone database would."""

    def utcoffset(self, dt: datetime | None) -> Any:
        raise RuntimeError("the zone database is unreachable")

    def dst(self, dt: datetime | None) -> Any:
        return None


def _deep(depth: int = 5_000) -> Any:
    return _nested(depth)


def test_a_tzinfo_that_raises_is_a_validation_error_with_the_cause_chained() -> None:
    with pytest.raises(ValidationError, match="time zone") as refused:
        presets.four_stage().start("d1", at=datetime(2026, 1, 1, tzinfo=RaisingOffset()))
    assert isinstance(refused.value.__cause__, RuntimeError)


def test_an_amount_is_normalised_whatever_the_callers_decimal_context() -> None:
    pipeline = presets.four_stage()
    with decimal.localcontext(decimal.Context(prec=1, Emax=1, Emin=-1)):
        assert str(pipeline.start("d1", amount="1e3", at=T0).amount) == "1000"
        with pytest.raises(ValidationError, match="decimal places"):
            pipeline.start("d1", amount="1e-30", at=T0)


@pytest.mark.parametrize("amount", [10**5000, -(10**5000)], ids=["huge", "huge-negative"])
def test_an_integer_amount_past_pythons_digit_limit_is_refused_as_too_large(amount: int) -> None:
    with pytest.raises(ValidationError, match="too large"):
        presets.four_stage().start("d1", amount=amount, at=T0)


@pytest.mark.parametrize("zero", ["-0", "-0E+5", Decimal("-0.00")])
def test_negative_zero_is_stored_as_zero(zero: object) -> None:
    amount = presets.four_stage().start("d1", amount=zero, at=T0).amount
    assert amount == 0 and not amount.is_signed()


REFUSALS_OF_UNPRINTABLE_VALUES: dict[str, Any] = {
    "stage name": lambda v: Stage(v, probability=0.5),
    "stage probability": lambda v: Stage("a", probability=v),
    "pipeline name": lambda v: Pipeline(v, [Stage("a", probability=0.5)]),
    "pipeline version": lambda v: Pipeline("p", [Stage("a", probability=0.5)], version=v),
    "lost reasons": lambda v: Pipeline("p", [Stage("a", probability=0.5)], lost_reasons=[v]),
    "deal probability": lambda v: presets.four_stage().start("d1", probability=v, at=T0),
    "deal currency": lambda v: presets.four_stage().start("d1", currency=v, at=T0),
    "move to": lambda v: presets.four_stage().move(presets.four_stage().start("d", at=T0), v),
    "reopen to": lambda v: presets.four_stage().reopen(presets.four_stage().start("d", at=T0), v),
    "definition format": lambda v: definitions.from_dict({"format": v}),
    "bant criteria": lambda v: guards.bant(v),
    "min_score card": lambda v: guards.min_score(v, 50),
    "score card rules": lambda v: scoring.ScoreCard(v),
    "score rule field": lambda v: scoring.has_field(v, points=5),
    "score rule value": lambda v: scoring.field_equals("k", v, points=5),
    "guard kind name": lambda v: guards.register(v, guards.bant),
}


@pytest.mark.parametrize("where", sorted(REFUSALS_OF_UNPRINTABLE_VALUES))
@pytest.mark.parametrize("value", ["deep", "huge"])
def test_a_refused_value_too_deep_or_too_long_to_print_is_still_a_typed_error(
    where: str, value: str
) -> None:
    """Messages quote refused values through a bounded repr (repr() itself would raise)."""
    hostile = _deep() if value == "deep" else 10**5000
    with pytest.raises(SalesPipelineError) as refused:
        REFUSALS_OF_UNPRINTABLE_VALUES[where](hostile)
    assert len(str(refused.value)) < 2_000


@pytest.mark.parametrize(
    "data",
    [
        {"format": 1, "name": "p", "stages": [], "x": _deep(50)},
        {"format": 1, "name": "p", ("not", "text"): 1},
        {"format": 1, "name": "p", "stages": [{"name": "a", "probability": 0.5, (1,): 1}]},
    ],
    ids=["deep-value", "tuple-key", "tuple-key-in-a-stage"],
)
def test_from_dict_refuses_data_that_no_file_could_hold(data: Any) -> None:
    with pytest.raises(DefinitionError, match=r"nested|not text"):
        Pipeline.from_dict(data)


def test_a_dotted_toml_key_deeper_than_the_limit_is_refused_before_tomllib_reads_it() -> None:
    text = ".".join(["a"] * 40_000) + " = 1\n" + definitions.dumps(presets.four_stage())
    started = time.perf_counter()
    with pytest.raises(DefinitionError, match="nested"):
        definitions.loads(text)
    assert time.perf_counter() - started < 2  # tomllib took 27 s over this key


def test_dots_in_toml_strings_and_keys_as_deep_as_the_limit_are_read() -> None:
    dotted = ".".join("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ")  # 35 dots, inside a string
    text = definitions.dumps(presets.four_stage())
    text = text.replace('label = "Proposal / quote"', f'label = "{dotted}"')
    assert definitions.loads(text).stage("proposal").label == dotted
    key = ".".join(["a"] * limits.MAX_DEPTH)  # as deep as allowed: read, then an unknown key
    with pytest.raises(DefinitionError, match="unknown key"):
        definitions.loads(f"{key} = 1\n{text}")


@pytest.mark.parametrize("path", [None, 5, "a\x00b.toml", "lone \ud800.toml"])
def test_a_definition_path_that_cannot_name_a_file_is_a_validation_error(path: Any) -> None:
    with pytest.raises(ValidationError, match=r"path|cannot name a file"):
        definitions.load_pipeline(path)
    with pytest.raises(ValidationError, match=r"path|cannot name a file"):
        definitions.dump_pipeline(presets.four_stage(), path)


def test_a_definition_that_cannot_be_written_is_a_storage_error(tmp_path: Any) -> None:
    with pytest.raises(StorageError, match="cannot write") as refused:
        definitions.dump_pipeline(presets.four_stage(), tmp_path / "missing" / "p.toml")
    assert isinstance(refused.value.__cause__, OSError)


@pytest.mark.parametrize(
    "call",
    [
        definitions.to_dict,
        definitions.dumps,
        definitions.lint,
        definitions.diagram,
        lambda p: definitions.dump_pipeline(p, "p.toml"),
    ],
    ids=["to_dict", "dumps", "lint", "diagram", "dump_pipeline"],
)
def test_definition_functions_given_no_pipeline_say_so(call: Any) -> None:
    with pytest.raises(ValidationError, match="takes a Pipeline"):
        call(None)


@pytest.mark.parametrize(
    "call",
    [
        lambda deals: followups.overdue(deals, now=T0),
        lambda deals: metrics.overdue(deals, now=T0),
        followups.unplanned,
        lambda deals: scoring.conversion_by_score_band(deals, presets.four_stage(), _card()),
    ],
    ids=["overdue", "metrics.overdue", "unplanned", "conversion_by_score_band"],
)
@pytest.mark.parametrize("deals", [None, 5, [5], "deals"])
def test_deal_functions_given_something_else_than_deals_say_so(call: Any, deals: Any) -> None:
    with pytest.raises(ValidationError, match="Deal"):
        call(deals)


def _card() -> scoring.ScoreCard:
    return scoring.ScoreCard([scoring.bant("budget", points=5)])


@pytest.mark.parametrize(
    "call",
    [
        lambda: guards.evaluate(None, presets.four_stage().start("d", at=T0), stage="x"),  # type: ignore[arg-type]
        lambda: guards.evaluate((guards.bant(),), "deal", stage="x"),  # type: ignore[arg-type]
        lambda: guards.evaluate((), presets.four_stage().start("d", at=T0), stage=_deep()),  # type: ignore[arg-type]
        lambda: Migration(presets.seven_stage(), presets.five_stage(), {"prospecting": ["x"]}),
        lambda: _migration().done(None),  # type: ignore[arg-type]
        lambda: migrate_store(MemoryStore(), _migration(), batch_size=10**30),
        lambda: scoring.ScoreBand(low=10**400, high=100, won=0, lost=0),
        lambda: scoring.Score(value=0.0, points=0, max_points=1, parts=None, reasons={}),  # type: ignore[arg-type]
    ],
    ids=[
        "evaluate-guards",
        "evaluate-deal",
        "evaluate-stage",
        "migration-mapping",
        "migration-done",
        "migrate-batch",
        "score-band",
        "score",
    ],
)
def test_more_arguments_of_the_wrong_kind_are_validation_errors(call: Any) -> None:
    with pytest.raises(SalesPipelineError):
        call()


def _migration() -> Migration:
    mapping = {"needs_assessment": "qualification", "negotiation": "proposal"}
    return Migration(presets.seven_stage(), presets.five_stage(), mapping)


@pytest.mark.parametrize(
    "now", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"], ids=["year-0", "year-10000"]
)
def test_cli_report_at_an_instant_utc_cannot_hold_is_a_one_line_error(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], now: str
) -> None:
    db = tmp_path / "demo.sqlite"
    assert cli.main(["demo", "--db", str(db), "--deals", "3"]) == 0
    capsys.readouterr()
    assert cli.main(["report", "--db", str(db), "--as-of", now]) == 2
    assert "years 1-9998" in capsys.readouterr().err


def test_cli_refuses_a_database_path_no_file_system_can_name(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["demo", "--db", "lone \ud800.sqlite", "--deals", "1"]) == 2
    assert "cannot name a file" in capsys.readouterr().err


def test_cli_errors_stay_on_one_line_when_a_file_name_holds_a_newline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["lint", "two\nlines"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize(
    "arguments",
    [("nul\x00", "m", None), ("r", "lone \ud800", None), ("r", "m", "f\x00"), ("r", "m", 5)],
    ids=["name", "message", "field", "field-type"],
)
def test_a_rule_guard_keeps_only_text_every_backend_and_diagram_can_hold(
    arguments: tuple[Any, Any, Any],
) -> None:
    name, message, field = arguments
    with pytest.raises(ValidationError):
        guards.rule(name, lambda deal: True, message, field)


@given(
    st.text(st.sampled_from(" \t\x00\x0bab-é\ud800"), max_size=8)
    | st.text(max_size=300)
    | st.sampled_from(
        ["", " ", "\x1c", "a" * limits.MAX_TEXT, "a" * (limits.MAX_TEXT + 1), "\x00"]
    )
)
def test_an_id_is_checked_alike_whichever_way_it_is_seen(text: str) -> None:
    """``check_id`` takes plainly valid ids at a glance; it refuses and keeps what the
    whole check does."""
    try:
        expected: str | None = _checks.check_text(
            text, "deal id", max_length=_checks.MAX_ID_LENGTH
        )
        assert expected is not None
        if not expected.strip():
            expected = None
    except ValidationError:
        expected = None
    if expected is None:
        with pytest.raises(ValidationError):
            _checks.check_id(text)
    else:
        assert _checks.check_id(text) == expected
