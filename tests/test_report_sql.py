"""``store.report`` computed in SQL equals ``metrics.report`` over the same deals.

Random deal sets, moved along legal moves so their histories are real, go into
SQLite and PostgreSQL; the SQL report must equal the pure one field by field
(Decimals exact, durations to the microsecond). Then the cases only SQL can get
wrong: sums past 64 bits, rows beyond a deal's version, unknown stages, id order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _backends import Backend
from _dataset import AS_OF, DAY, EUR_PER_USD, T, abc, hand_worked, two_currencies
from _postgres import PostgresServer, postgres_database, postgres_server  # noqa: F401
from salespipeline import log, metrics
from salespipeline.deal import Deal
from salespipeline.errors import CorruptRecordError
from salespipeline.metrics import PipelineReport
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, STAGE_CATEGORIES, Stage
from salespipeline.storage import DealStore, MemoryStore, PostgresStore, SQLiteStore

MAX_AMOUNT = Decimal("999999999999999999.999999")  # limits: 18 digits, 6 places
TWO_RATES = {"USD": EUR_PER_USD}


def random_deals(pipeline: Pipeline, seed: int, count: int) -> list[Deal]:
    """``count`` deals moved at random along legal moves, with varied amounts, currencies
    and forecast categories (their own, set at the start and changed along the way)."""
    rng = random.Random(seed)
    deals = []
    for i in range(count):
        at = T + timedelta(hours=rng.randrange(300), microseconds=rng.randrange(10**6))
        amount = rng.choice(
            [Decimal(rng.randrange(10**9)).scaleb(-rng.randrange(7)), Decimal(0), MAX_AMOUNT]
        )
        deal = pipeline.start(
            rng.choice(["p", "P", "é", "p_"]) + str(i),
            amount=amount,
            currency=rng.choice(["USD", "KRW", "EUR"]),
            probability=rng.choice([None, None, 0.0, 0.3, 1 / 3]),
            forecast_category=rng.choice([None, None, *STAGE_CATEGORIES]),
            at=at,
        )
        for _ in range(rng.randrange(9)):
            moves = pipeline.moves(deal)
            if not moves:
                break
            at += timedelta(seconds=rng.randrange(10**6), microseconds=rng.randrange(10**6))
            if rng.randrange(4) == 0:
                category = rng.choice([None, *STAGE_CATEGORIES])
                deal = deal.evolve(forecast_category=category, at=at)
                continue
            to = rng.choice(moves)
            deal = pipeline.move(deal, to, at=at, reason="gone" if to == LOST else None)
        deals.append(deal)
    return deals


@st.composite
def datasets(draw: st.DrawFn) -> tuple[Pipeline, list[Deal]]:
    size = draw(st.integers(1, 6))
    stages = [
        Stage(
            f"s{i}",
            probability=draw(st.sampled_from([0.0, 0.1, 0.35, 0.9])),
            rot_after=draw(st.sampled_from([None, DAY, 5 * DAY])),
            forecast_category=draw(st.sampled_from([None, None, *STAGE_CATEGORIES])),
        )
        for i in range(size)
    ]
    pipeline = Pipeline(
        "prop", stages, allow_skip=draw(st.booleans()), allow_back=draw(st.booleans())
    )
    deals = random_deals(pipeline, draw(st.integers(0, 2**32)), draw(st.integers(0, 30)))
    return pipeline, deals


RATES = st.decimals(min_value=Decimal("1e-12"), max_value=Decimal(10**17), places=12)


@st.composite
def money(draw: st.DrawFn) -> dict[str, Any]:
    """``report`` keywords: none, a currency alone, or a currency with a rate for each other."""
    currency = draw(st.sampled_from(["USD", "KRW", "EUR", "JPY"]))
    kind = draw(st.sampled_from(["none", "only", "rates"]))
    if kind == "none":
        return {}
    if kind == "only":
        return {"currency": currency}
    others = {"USD", "KRW", "EUR"} - {currency}
    return {"currency": currency, "rates": {code: draw(RATES) for code in sorted(others)}}


def assert_same_report(got: PipelineReport, expected: PipelineReport) -> None:
    """Field by field first (a readable failure), then the whole value."""
    for field in attrs.fields(PipelineReport):
        assert getattr(got, field.name) == getattr(expected, field.name), field.name
    assert got == expected


def as_replayed(
    store: DealStore, pipeline: Pipeline, as_of: datetime, **options: Any
) -> PipelineReport:
    """The pure report over ``store``'s log replayed up to ``as_of``."""
    changes = [c for deal in store.find() for c in store.changes(deal.id)]
    deals = log.replay(changes, until=as_of).values()
    return metrics.report(deals, pipeline, as_of=as_of, **options)


def fill(store: DealStore, deals: list[Deal]) -> DealStore:
    for deal in deals:
        store.add(deal)
    return store


# -- backends ----------------------------------------------------------------------


@pytest.fixture
def store(backend: Backend) -> Iterator[DealStore]:
    with backend.open() as opened:
        yield opened


# -- the SQL path equals the pure path -----------------------------------------------


def test_hand_worked_dataset(store: DealStore) -> None:
    p = abc()
    deals = hand_worked(p)
    report = fill(store, deals).report(p, as_of=AS_OF)
    assert (report.win_rate, report.weighted_pipeline, report.stalled_ids) == (
        0.5,
        Decimal(1050),
        ("d5", "d4"),
    )
    assert report.time_in_stage["b"] == timedelta(days=2, hours=8)
    assert report.sales_velocity == Decimal("230.7692307692307692307692307692308")
    assert_same_report(report, metrics.report(deals, p, as_of=AS_OF))


def test_memory_store_reports_through_the_pure_path() -> None:
    p = abc()
    deals = hand_worked(p)
    assert fill(MemoryStore(), deals).report(p, as_of=AS_OF) == metrics.report(
        deals, p, as_of=AS_OF
    )


def test_report_by_recorded_pipeline_name(store: DealStore) -> None:
    p = abc()
    store.save_pipeline(p)
    fill(store, hand_worked(p))
    assert store.report("abc", as_of=AS_OF) == store.report(p, as_of=AS_OF)


def test_report_reads_the_pipeline_clock(store: DealStore) -> None:
    p = abc()
    fill(store, hand_worked(p))
    assert store.report(p.with_clock(lambda: AS_OF)) == store.report(p, as_of=AS_OF)


def test_other_pipelines_are_left_out(store: DealStore) -> None:
    p, other = abc(), Pipeline("other", [Stage("a", probability=0.5)])
    deals = hand_worked(p)
    fill(store, [*deals, other.win(other.start("o", amount=7, at=T), at=T + DAY)])
    assert store.report(p, as_of=AS_OF) == metrics.report(deals, p, as_of=AS_OF)


def test_empty_store(store: DealStore) -> None:
    report = store.report(abc(), as_of=AS_OF)
    assert report == metrics.report([], abc(), as_of=AS_OF)
    assert (report.deals, report.win_rate, report.cycle_length) == (0, None, None)


def test_sql_stores_do_not_load_deals(store: DealStore, monkeypatch: pytest.MonkeyPatch) -> None:
    p = abc()
    fill(store, hand_worked(p))
    expected = metrics.report(hand_worked(p), p, as_of=AS_OF)

    def refuse(*args: object, **kwargs: object) -> Iterator[Deal]:
        raise AssertionError("the SQL report must not load deals")

    monkeypatch.setattr(store, "find", refuse)
    monkeypatch.setattr(metrics._functions, "aggregate", refuse)
    assert store.report(p, as_of=AS_OF) == expected


def test_sqlite_reads_the_deals_standing_since_as_of_by_a_scan_not_the_time_index(
    tmp_path: Path,
) -> None:
    # nearly every deal stands unchanged since as_of: looking each one up through the
    # time index made the report at a million deals take twice as long as a scan
    p = abc()
    with SQLiteStore(tmp_path / "r.sqlite") as store:
        fill(store, hand_worked(p))
        connection = store._connection
        assert connection is not None
        statements: list[str] = []
        connection.set_trace_callback(statements.append)
        store.report(p, as_of=AS_OF)
        connection.set_trace_callback(None)
        standing = [s for s in statements if "updated_at_us <=" in s]
        assert len(standing) == 3  # the grouped deals, their extra stays, the stalled
        for sql in standing:
            plan = " ".join(row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}"))
            assert "sp_deals_updated" not in plan, (sql, plan)


@settings(max_examples=60)
@given(datasets(), st.sampled_from([T, T + 3 * DAY, T + 40 * DAY, T + 400 * DAY]), money())
def test_sqlite_equals_pure(
    dataset: tuple[Pipeline, list[Deal]], now: datetime, options: dict[str, Any]
) -> None:
    pipeline, deals = dataset
    with SQLiteStore(":memory:") as store:
        got = fill(store, deals).report(pipeline, as_of=now, **options)
        assert_same_report(got, as_replayed(store, pipeline, now, **options))


@pytest.mark.postgres
def test_postgres_equals_pure(postgres_server: PostgresServer) -> None:  # noqa: F811
    @settings(max_examples=30, deadline=None)
    @given(datasets(), st.sampled_from([T, T + 3 * DAY, T + 40 * DAY, T + 400 * DAY]), money())
    def check(
        dataset: tuple[Pipeline, list[Deal]], now: datetime, options: dict[str, Any]
    ) -> None:
        pipeline, deals = dataset
        with PostgresStore(postgres_server.fresh_schema(), max_connections=1) as store:
            got = fill(store, deals).report(pipeline, as_of=now, **options)
            assert_same_report(got, as_replayed(store, pipeline, now, **options))

    check()


@pytest.mark.parametrize(
    "options",
    [{}, {"currency": "EUR"}, {"currency": "USD"}, {"currency": "EUR", "rates": TWO_RATES}],
    ids=["per-currency", "EUR-only", "USD-only", "into-EUR"],
)
def test_two_currencies_hand_worked(store: DealStore, options: dict[str, Any]) -> None:
    p = abc()
    deals = two_currencies(p)
    report = fill(store, deals).report(p, as_of=T + 10 * DAY, **options)
    assert_same_report(report, metrics.report(deals, p, as_of=T + 10 * DAY, **options))
    expected_open = {"": None, "EUR": Decimal(500), "USD": Decimal(400)}
    if "rates" in options:
        assert report.open_value == Decimal(860)
    else:
        assert report.open_value == expected_open[options.get("currency", "")]
    only = options.get("currency") if "rates" not in options else None
    assert list(report.by_currency) == ([only] if only else ["EUR", "USD"])


def test_a_currency_filter_applies_to_the_longest_stalled(store: DealStore) -> None:
    # twelve USD deals stalled longer than the two EUR ones: the EUR report lists the EUR
    # ids, which the whole pipeline's ten longest would leave out
    p = abc()
    deals = [p.start(f"u{i:02}", at=T - DAY) for i in range(12)]
    deals += [p.start(f"e{i}", currency="EUR", at=T) for i in range(2)]
    report = fill(store, deals).report(p, as_of=AS_OF, currency="EUR")
    assert (report.stalled, report.stalled_ids, report.deals) == (2, ("e0", "e1"), 2)
    assert_same_report(report, metrics.report(deals, p, as_of=AS_OF, currency="EUR"))
    converted = store.report(p, as_of=AS_OF, currency="EUR", rates={"USD": 1})
    assert (converted.stalled, len(converted.stalled_ids)) == (14, 10)
    assert "e0" not in converted.stalled_ids


# -- what only SQL can get wrong -----------------------------------------------------


def test_amount_sums_past_64_bits_stay_exact(store: DealStore) -> None:
    # 20 won and 20 lost deals of the largest amount: each sum is ~2 x 10**19
    one = Pipeline("one", [Stage("only", probability=0.5)])
    deals = [
        one.win(one.start(f"w{i}", amount=MAX_AMOUNT, at=T), at=T + DAY) for i in range(20)
    ] + [one.lose(one.start(f"l{i}", amount=MAX_AMOUNT, at=T), "x", at=T) for i in range(20)]
    deals += [one.start(f"o{i}", amount=MAX_AMOUNT, probability=1 / 3, at=T) for i in range(20)]
    report = fill(store, deals).report(one, as_of=AS_OF)
    assert report.average_deal_size == MAX_AMOUNT
    assert report.open_value == Decimal("19999999999999999999.99998")  # 20 x MAX
    assert report.win_rate_by_value == 0.5
    assert_same_report(report, metrics.report(deals, one, as_of=AS_OF))


def test_duration_sums_past_64_bits_stay_exact(store: DealStore) -> None:
    # 40 deals won after ~8000 years: 40 x 2.5 x 10**17 us > 2**63
    one = Pipeline("one", [Stage("only", probability=0.5)])
    start = datetime(1000, 1, 1, tzinfo=timezone.utc)
    end = datetime(9000, 1, 1, 0, 0, 0, 7, tzinfo=timezone.utc)
    deals = [one.win(one.start(f"w{i}", amount=1, at=start), at=end) for i in range(40)]
    later = datetime(9001, 1, 1, tzinfo=timezone.utc)
    report = fill(store, deals).report(one, as_of=later)
    assert report.cycle_length == end - start
    assert_same_report(report, metrics.report(deals, one, as_of=later))


def test_stalled_ids_sort_by_entry_then_code_point(store: DealStore) -> None:
    p = abc()
    ids = ["é", "Z", "a", "b0", "B", "가", "z", "_", "A1", "ab", "aa", "0", "~"]
    deals = [p.start(i, at=T) for i in ids] + [p.start("early", at=T - DAY)]
    report = fill(store, deals).report(p, as_of=AS_OF)
    assert report.stalled == 14
    assert report.stalled_ids == ("early", *sorted(ids)[:9])
    assert_same_report(report, metrics.report(deals, p, as_of=AS_OF))


def test_history_rows_beyond_the_deal_version_are_ignored(
    store: DealStore, backend: Backend
) -> None:
    p = abc()
    deals = hand_worked(p)
    fill(store, deals)
    at_us = (T + 8 * DAY - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
    backend.raw(
        "INSERT INTO sp_changes (deal_id, version, from_stage, to_stage, at_us, kind, changed) "
        "VALUES (?, ?, ?, ?, ?, 'move', '{}')",
        ("d4", 99, "a", "b", at_us),
    )
    assert store.report(p, as_of=AS_OF) == metrics.report(deals, p, as_of=AS_OF)


def test_a_stored_deal_in_an_unknown_stage_is_corrupt(store: DealStore, backend: Backend) -> None:
    p = abc()
    fill(store, hand_worked(p))
    backend.raw("UPDATE sp_deals SET stage = ? WHERE id = ?", ("zz", "d4"))
    with pytest.raises(CorruptRecordError, match=r"'d4'.*'zz'"):
        store.report(p, as_of=AS_OF)


def test_pipeline_names_are_bound_parameters(store: DealStore) -> None:
    p = Pipeline("q-1.x", [Stage("it_s", probability=0.5)])
    deals = [p.start("x", amount=3, at=T)]
    assert fill(store, deals).report(p, as_of=AS_OF) == metrics.report(deals, p, as_of=AS_OF)


def test_stalled_means_strictly_longer_than_rot_after(store: DealStore) -> None:
    # d4 entered a (rot 2 d) on day 2, d5 entered b (rot 3 d) on day 1: both exactly at
    # their limit on day 4, both over it a microsecond later
    p = abc()
    deals = hand_worked(p)
    fill(store, deals)
    at_limit = store.report(p, as_of=T + 4 * DAY)
    just_over = store.report(p, as_of=T + 4 * DAY + timedelta(microseconds=1))
    assert (at_limit.stalled, just_over.stalled_ids) == (0, ("d5", "d4"))
    assert at_limit == as_replayed(store, p, T + 4 * DAY)


def test_the_scale_benchmark_runs_and_its_reports_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the smoke size of benchmarks/report_1m.py: it exits 0 only if both reports are equal
    import importlib.util

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "report_1m.py"
    spec = importlib.util.spec_from_file_location("report_1m", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--deals", "300", "--db", str(tmp_path / "b.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "300 deals" in out
    assert "reports equal: yes" in out
