"""Regression tests for inputs that escaped as bare exceptions or unbounded work (issue 15).

Each test names the input that broke the public API before, and checks that it now
gets a typed error from ``salespipeline.errors`` (or the documented normal form),
before any work or write.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any

import pytest

from salespipeline import (
    DefinitionError,
    Pipeline,
    Stage,
    Tracker,
    TransitionNotAllowedError,
    UnknownPipelineError,
    UnknownStageError,
    ValidationError,
    definitions,
    guards,
    limits,
    presets,
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
        ({"big": 2**64}, "64 bits"),
    ],
    ids=["long-text", "long-list", "deep", "big-int"],
)
def test_fields_beyond_the_published_limits_are_refused(
    fields: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        presets.four_stage().start("d1", fields=fields, at=T0)


def test_fields_up_to_the_limits_are_kept() -> None:
    fields = {"deep": _nested(limits.MAX_DEPTH - 1), "notes": "é" * 1000, "n": 2**63 - 1}
    assert presets.four_stage().start("d1", fields=fields, at=T0).fields["n"] == 2**63 - 1


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
