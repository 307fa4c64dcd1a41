"""``store.movement`` on SQLite and PostgreSQL: equal to ``metrics.movement`` over the log.

The SQL stores sum the deals unchanged since the window's start in the database and
stream only the others (``storage/sql/_movement.py``). Generated stories, written
through a store, are measured over windows anywhere along them, late ones included
(where most deals are quiet), for every kind of money; then hand-worked cases of the
summed part.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _postgres import PostgresServer
from salespipeline import log, metrics, presets
from salespipeline.errors import ValidationError
from salespipeline.storage import DealStore, PostgresStore, SQLiteStore
from salespipeline.testing._stories import Story, deal_stories

FIVE = presets.five_stage()
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
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
