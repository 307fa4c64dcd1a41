"""``salespipeline accuracy``: a past forecast against what was won, from the command line.

Hand-worked on a week (times UTC): on 2 March, a (100 USD, in c at 80 %) and b
(200 USD, in a at 10 %) were forecast to close in the week of 9 March; a was won,
b lost, and d (30 USD), opened and won in the week, came unforecast. Weighted
100 x 0.8 + 200 x 0.1 = 100, commit 100 (a: c's 80 % is commit), won 130: both
errors -30, -30/130 of won. One EUR deal (e, 50) forecast too shows the rates.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from salespipeline import Pipeline, Stage
from salespipeline.cli import main
from salespipeline.storage import SQLiteStore

T = datetime(2026, 3, 2, tzinfo=timezone.utc)
WEEK = datetime(2026, 3, 9, tzinfo=timezone.utc)
ABC = Pipeline(
    "abc",
    [Stage("a", probability=0.1), Stage("b", probability=0.5), Stage("c", probability=0.8)],
    allow_skip=True,
)
WINDOW = ("--made-at", "2026-03-02T01:00+00:00", "--from", "2026-03-09", "--to", "2026-03-16")


def _store(path: Path, *, euros: bool) -> None:
    p = ABC
    with SQLiteStore(path) as store:
        store.save_pipeline(p)
        a = p.move(p.start("a", amount=100, close_date=date(2026, 3, 10), at=T), "c", at=T)
        store.add(a)
        store.add(p.start("b", amount=200, close_date=date(2026, 3, 12), at=T))
        if euros:
            store.add(p.start("e", amount=50, currency="EUR", close_date=date(2026, 3, 11), at=T))
        store.save(p.win(store.get("a"), at=WEEK + timedelta(days=1)))
        store.save(p.lose(store.get("b"), "price", at=WEEK + timedelta(days=2)))
        store.add(p.win(p.start("d", amount=30, at=WEEK), at=WEEK + timedelta(hours=1)))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "accuracy.sqlite"
    _store(path, euros=False)
    return path


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.sqlite"
    _store(path, euros=True)
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_json_is_the_stores_result(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, "accuracy", "--db", str(db), *WINDOW, "--format", "json")
    assert (status, err) == (0, "")
    data = json.loads(out)
    assert (data["forecast_deals"], data["won_deals"]) == (2, 2)
    assert (data["weighted"], data["commit"], data["won"]) == ("100", "100", "130")
    assert (data["weighted_error"], data["commit_error"]) == ("-30", "-30")
    assert data["weighted_error_rate"] == -30 / 130
    with SQLiteStore(db) as store:
        expected = store.forecast_accuracy(
            "abc", made_at=T + timedelta(hours=1), start=WEEK, end=WEEK + timedelta(days=7)
        )
    assert data == expected.to_dict()


def test_text_puts_the_currency_on_every_amount(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(capsys, "accuracy", "--db", str(db), "--pipeline", "abc", *WINDOW)
    assert status == 0
    lines = out.splitlines()
    assert "2 deals forecast to close in it, 2 won" in lines
    assert "weighted forecast        100.00 USD" in lines
    assert "won                      130.00 USD" in lines
    assert "commit error             -30.00 USD (-23.1% of won)" in lines


def test_mixed_currencies_convert_at_the_rates(
    mixed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(capsys, "accuracy", "--db", str(mixed), *WINDOW)
    assert status == 0 and "Money per currency" in out
    assert "  weighted forecast      5.00 EUR" in out.splitlines()
    status, out, _ = _run(
        capsys, "accuracy", "--db", str(mixed), *WINDOW,
        "--currency", "USD", "--rate", "EUR=1.08", "--format", "json",
    )  # fmt: skip
    assert status == 0
    data = json.loads(out)
    assert (data["currency"], data["weighted"]) == ("USD", "105.4")  # 100 + 50 x 0.1 x 1.08
    assert Decimal(data["weighted"]) == 100 + Decimal(50) * Decimal("0.1") * Decimal("1.08")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--made-at", "2026-03-02", "--from", "2026-03-09", "--to", "2026-03-01"],
         "is after --to"),
        (["--made-at", "2026-03-02T01:00", "--from", "2026-03-09", "--to", "2026-03-16"],
         "needs a timezone"),
        (["--made-at", "monday", "--from", "2026-03-09", "--to", "2026-03-16"], "--made-at"),
        ([*WINDOW, "--rate", "EUR=1.1"], "--rate needs --currency"),
        ([*WINDOW, "--currency", "USD", "--rate", "EUR=0"], "positive"),
        ([*WINDOW, "--currency", "USD", "--rate", "GBP=2"], "in EUR without a --rate"),
        ([*WINDOW, "--pipeline", "nowhere"], "nowhere"),
    ],
)  # fmt: skip
def test_bad_options_are_one_line_errors(
    mixed: Path, capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    status, out, err = _run(capsys, "accuracy", "--db", str(mixed), *argv)
    assert (status, out) == (2, "")
    assert fragment in err and err.count("\n") == 1
