"""``store.movement`` on SQLite and PostgreSQL: equal to ``metrics.movement`` over the log.

The SQL stores sum the deals unchanged since the window's start in the database and
stream only the others (``storage/sql/_movement.py``). Generated stories, written
through a store, are measured over windows anywhere along them, late ones included
(where most deals are quiet), for every kind of money; then hand-worked cases of the
summed part.
"""

from __future__ import annotations

import importlib.util
import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _backends import Backend
from _postgres import PostgresServer
from salespipeline import Bant, log, metrics, presets
from salespipeline.errors import ValidationError
from salespipeline.metrics import Flow
from salespipeline.metrics._waterfall import ROWS, State, Tally, View, slipped, step
from salespipeline.storage import DealStore, PostgresStore, SQLiteStore
from salespipeline.storage.sql._moved import RULES
from salespipeline.testing._stories import Story, deal_stories

FIVE = presets.five_stage()
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
QUALIFIED = Bant(budget=True, authority=True, need=True, timeline=True)
MONEY: tuple[dict[str, Any], ...] = (
    {},
    {"currency": "EUR"},
    {"currency": "USD", "rates": {"EUR": Decimal("1.08"), "KRW": Decimal("0.00074")}},
)


def written(store: DealStore, story: Story) -> DealStore:
    for before, after in story:
        if before is None:
            store.add(after)
        else:
            store.save(after)
    return store


def whole_log(store: DealStore) -> Iterator[log.Change]:
    after = 0
    while page := store.log(after=after):
        yield from page
        after = page[-1].position or after


def late_windows(times: list[datetime]) -> st.SearchStrategy[tuple[datetime, datetime]]:
    """Windows whose ends are the log's own instants (or a tick off them), any order kept."""
    tick = timedelta(microseconds=1)
    instants = st.sampled_from(times).flatmap(
        lambda t: st.sampled_from([t - tick, t, t + tick, t + timedelta(days=3)])
    )
    return st.tuples(instants, instants).map(sorted).map(tuple)  # type: ignore[arg-type]


def check_store(store: DealStore, data: st.DataObject) -> None:
    written(store, data.draw(deal_stories(FIVE, T0, ids=4)))
    changes = list(whole_log(store))
    times = sorted({change.at for change in changes})
    for start, end in data.draw(st.lists(late_windows(times), min_size=1, max_size=4)):
        for money in MONEY:
            pure = metrics.movement(changes, FIVE, start=start, end=end, **money)
            assert store.movement(FIVE, start=start, end=end, **money) == pure


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_sqlite_movement_equals_the_pure_movement_for_any_window(data: st.DataObject) -> None:
    with SQLiteStore(":memory:") as store:
        check_store(store, data)


@pytest.mark.postgres
def test_postgres_movement_equals_the_pure_movement_for_any_window(
    postgres_server: PostgresServer,
) -> None:
    @settings(max_examples=30, deadline=None)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        with PostgresStore(postgres_server.fresh_schema(), max_connections=1) as store:
            check_store(store, data)

    check()


# -- hand-worked: the summed part -------------------------------------------------


def quiet_store() -> SQLiteStore:
    """Three open deals opened on day 0 and never changed, one lost on day 1."""
    store = SQLiteStore(":memory:")
    store.add(FIVE.start("e1", amount=Decimal("100.25"), currency="EUR", at=T0))
    store.add(FIVE.start("e2", amount=Decimal("0.000001"), currency="EUR", at=T0))
    store.add(FIVE.start("k1", amount=1_000_000, currency="KRW", at=T0))
    lost = FIVE.start("l1", amount=7, currency="EUR", at=T0)
    store.add(lost)
    store.save(FIVE.lose(lost, "price", at=T0 + timedelta(days=1)))
    return store


def test_quiet_deals_are_in_start_and_end_at_their_exact_amounts() -> None:
    with quiet_store() as store:
        m = store.movement(FIVE, start=T0 + timedelta(days=2), end=T0 + timedelta(days=9))
    assert m.currency is None
    eur = m.by_currency["EUR"]
    assert (eur.start.count, eur.start.value) == (2, Decimal("100.250001"))
    assert eur.end == eur.start
    assert m.by_currency["KRW"].end.value == 1_000_000
    assert (m.start.count, m.end.count, m.lost.count) == (3, 3, 0)


def test_quiet_deals_convert_at_their_rate_and_need_one() -> None:
    with quiet_store() as store:
        start, end = T0 + timedelta(days=2), T0 + timedelta(days=9)
        m = store.movement(FIVE, start=start, end=end, currency="USD", rates={"EUR": 2, "KRW": 1})
        assert m.end.value == Decimal("200.500002") + 1_000_000
        with pytest.raises(ValidationError, match="KRW"):
            store.movement(FIVE, start=start, end=end, currency="USD", rates={"EUR": 2})


def test_the_log_benchmark_runs_and_its_paths_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the smoke size of benchmarks/report_1m.py --log: it exits 0 only if every pair agrees
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "report_1m.py"
    spec = importlib.util.spec_from_file_location("report_1m_log", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = ["--log", "--deals", "120", "--heap-deals", "30", "--db", str(tmp_path / "l.sqlite")]
    assert module.main(argv) == 0
    out = capsys.readouterr().out
    assert "120 deals" in out and "| NO |" not in out
    assert out.count("| yes |") == 6
    with SQLiteStore(tmp_path / "l.sqlite") as store:
        kinds = {change.kind for change in store.log(limit=10_000)}
        assert store.verify() == ()
    assert {"open", "move", "update"} <= kinds


def test_the_log_benchmark_writes_the_rows_the_store_itself_writes(tmp_path: Path) -> None:
    # generate_log bulk-inserts what add/save would write; the same stories written
    # through the store one by one must leave the very same rows in both tables
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "report_1m.py"
    spec = importlib.util.spec_from_file_location("report_1m_rows", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pipeline = presets.seven_stage()
    module.generate_log(tmp_path / "bulk.sqlite", pipeline, 150, seed=3)
    rng = random.Random(3)
    with SQLiteStore(tmp_path / "store.sqlite") as store:
        store.save_pipeline(pipeline)
        for i in range(150):
            versions = module.log_story(i, rng, pipeline)
            store.add(versions[0])
            for version in versions[1:]:
                store.save(version)
    tables = {}
    for name in ("bulk", "store"):
        with closing(sqlite3.connect(tmp_path / f"{name}.sqlite")) as connection:
            tables[name] = [
                connection.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
                for table in ("sp_deals", "sp_changes")
            ]
    assert tables["bulk"] == tables["store"]
    assert len(tables["bulk"][0]) == 150 and len(tables["bulk"][1]) > 300


@pytest.mark.postgres
def test_the_postgres_movement_benchmark_runs_and_its_paths_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # benchmarks/movement_pg.py copies a --log file into PostgreSQL: exit 0 only if equal
    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    modules = {}
    for name in ("report_1m", "movement_pg"):
        spec = importlib.util.spec_from_file_location(f"{name}_smoke", folder / f"{name}.py")
        assert spec is not None and spec.loader is not None
        modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(modules[name])
    path = tmp_path / "l.sqlite"
    modules["report_1m"].generate_log(path, presets.seven_stage(), 120)
    assert modules["movement_pg"].main(["--db", str(path)]) == 0
    out = capsys.readouterr().out
    assert "PostgreSQL" in out and out.count("| yes |") == 6


# -- hand-worked: the part sorted in SQL, and what it leaves to the stream ----------

DAY = timedelta(days=1)
WEEK = (T0 + DAY, T0 + 8 * DAY)  # 2026-03-03 09:00 to 03-10 09:00: days 03-04 .. 03-10 inside


def walked(store: DealStore, deal: Any, *stages: str, at: datetime) -> Any:
    """``deal`` moved through ``stages`` an hour apart from ``at``, each move saved."""
    for n, stage in enumerate(stages):
        deal = FIVE.move(deal, stage, at=at + n * timedelta(hours=1))
        store.save(deal)
    return deal


def week_store(store: DealStore) -> DealStore:
    """One deal of each edge around the window ``WEEK`` (its figures in the test below)."""
    qualified = {"bant": QUALIFIED}
    won = FIVE.start("w", amount=100, close_date=date(2026, 3, 5), at=T0, **qualified)
    store.add(won)
    won = won.evolve(amount=120, at=T0 + 2 * DAY)
    store.save(won)
    stages = ("qualification", "initial_contact", "proposal", "closing", "won")
    walked(store, won, *stages, at=T0 + 3 * DAY)
    lost = FIVE.start("c", amount=40, at=T0 + 2 * DAY)  # created and lost inside
    store.add(lost)
    store.save(FIVE.lose(lost, "price", at=T0 + 4 * DAY))
    back = FIVE.start("r", amount=80, at=T0)
    store.add(back)
    back = FIVE.lose(back, "price", at=T0 + 2 * DAY)
    store.save(back)
    store.save(FIVE.move(back, "prospecting", at=T0 + 3 * DAY))
    euro = FIVE.start("x", amount=50, at=T0)
    store.add(euro)
    store.save(euro.evolve(currency="EUR", at=T0 + 2 * DAY))  # streamed
    old = FIVE.start("i", amount=30, at=T0, **qualified)
    store.add_many([FIVE.move(old, "qualification", at=T0 + 2 * DAY)], imported=True)
    gone = FIVE.start("e", amount=999, at=T0)
    store.add(gone)
    store.erase("e", actor="dpo", reason="asked", at=T0 + 9 * DAY)
    late = FIVE.start("s", amount=10, close_date=date(2026, 3, 4), at=T0)
    store.add(late)
    store.save(late.evolve(close_date=date(2026, 3, 20), at=T0 + 2 * DAY))
    store.add(FIVE.start("t", amount=Decimal("0.000001"), at=T0 + DAY))
    store.add(FIVE.start("after", amount=5, at=T0 + 8 * DAY))
    quiet = FIVE.start("q", amount=60, at=T0)  # changed only after the window
    store.add(quiet)
    store.save(quiet.evolve(amount=70, at=T0 + 9 * DAY))
    twice = FIVE.start("s2", amount=20, close_date=date(2026, 3, 4), at=T0)
    store.add(twice)
    twice = twice.evolve(close_date=date(2026, 3, 6), at=T0 + 2 * DAY)
    store.save(twice)
    store.save(twice.evolve(amount=25, close_date=date(2026, 3, 8), at=T0 + 3 * DAY))
    return store


def test_a_week_of_edges_sorted_in_sql_equals_the_worked_figures(backend: Backend) -> None:
    with week_store(backend.open()) as store:
        m = store.movement(FIVE, start=WEEK[0], end=WEEK[1])
        changes = list(whole_log(store))
        assert m == metrics.movement(changes, FIVE, start=WEEK[0], end=WEEK[1])
        for money in MONEY[1:]:
            pure = metrics.movement(changes, FIVE, start=WEEK[0], end=WEEK[1], **money)
            assert store.movement(FIVE, start=WEEK[0], end=WEEK[1], **money) == pure
    usd, eur = m.by_currency["USD"], m.by_currency["EUR"]
    tiny = Decimal("0.000001")
    assert usd.start == Flow(7, Decimal(350))  # w 100, r 80, x 50, i 30, s 10, q 60, s2 20
    assert usd.created == Flow(2, 40 + tiny)  # c, t
    assert (usd.increased, usd.decreased) == (Flow(2, Decimal(25)), Flow(0, Decimal(0)))
    assert (usd.won, usd.lost) == (Flow(1, Decimal(120)), Flow(2, Decimal(120)))
    assert (usd.reopened, usd.migrated_out) == (Flow(1, Decimal(80)), Flow(1, Decimal(50)))
    assert usd.end == Flow(6, 205 + tiny)  # r 80, i 30, s 10, t, q 60, s2 25
    assert usd.slipped == Flow(2, Decimal(35))  # s 10, s2 25 (after its last slip)
    assert usd.pushed_out == Flow(1, Decimal(10))  # s: due 03-04, then 03-20
    assert (eur.created, eur.end) == (Flow(1, Decimal(50)), Flow(1, Decimal(50)))
    assert m.start.count == 7 and m.end.count == 7 and m.currency is None


def kind_of(state: State | None) -> int:
    """The code in ``_moved.KINDS`` of the kind ``state`` is of, for the view of ``p``."""
    if state is None:
        return 0
    if state.pipeline != "p":
        return 1
    return {"won": 2, "lost": 3}.get(state.stage, 4)


STATES = st.builds(
    State,
    st.sampled_from(["p", "q"]),
    st.sampled_from(["won", "lost", "prospecting", "closing"]),
    st.sampled_from([Decimal(0), Decimal(1), Decimal("2.5")]),
    st.sampled_from(["USD", "EUR"]),
    st.none() | st.dates(date(2026, 3, 1), date(2026, 3, 3)),
)


@given(st.none() | STATES, STATES)
def test_the_rules_sql_looks_up_are_the_waterfalls_own_for_any_states(
    before: State | None, after: State
) -> None:
    # the table holds for every state, not only the one of each kind it was made from
    view = View("p", None, lambda state: state.amount)
    tally = Tally()
    net = step(tally, view, before, after)
    pair = (kind_of(before), kind_of(after))
    [*rows] = (row for row in ROWS if tally.counts[row])
    assert rows == ([RULES.events[pair]] if pair in RULES.events else [])
    counts = pair in RULES.deltas
    assert before is None or net == (after.amount - before.amount if counts else 0)
    assert (kind_of(after) in RULES.member) == view.member(after)
    moved_later = (
        before is not None
        and before.close_date is not None
        and after.close_date is not None
        and after.close_date > before.close_date
    )
    assert slipped(view, before, after) == (pair in RULES.slips and moved_later)
