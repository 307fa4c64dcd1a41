"""A movement as an SVG waterfall in the HTML report, and ``salespipeline movement``.

The SVG is parsed with ``xml.etree`` and each bar measured against the movement's
figures: its height is its value over the highest level, times ``PLOT_HEIGHT``, and it
stands where the running level says. Then the command, its formats and its refusals.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings

from salespipeline import Pipeline, metrics
from salespipeline.cli import main
from salespipeline.errors import ValidationError
from salespipeline.metrics import Flow, Movement
from salespipeline.metrics._html import MOVEMENT_SLOT
from salespipeline.metrics._movement_render import BALANCE, PLOT_HEIGHT
from salespipeline.storage import SQLiteStore
from salespipeline.testing._stories import Story, changes_of, deal_stories, windows
from test_movement import FIVE, T0, at, mixed_story, week, week_story

_START, _END = at(24), at(24 * 7)


def _waterfalls(html: str) -> list[ET.Element]:
    return [
        ET.fromstring(svg) for svg in re.findall(r'<svg class="waterfall".*?</svg>', html, re.S)
    ]


def _bars(svg: ET.Element) -> list[ET.Element]:
    return [e for e in svg.iter() if e.tag == "rect" and e.get("class") == "bar"]


def _assert_bars_match(svg: ET.Element, movement: Movement) -> None:
    """Each bar's height is its value to scale, and it spans the running level."""
    bars = _bars(svg)
    assert [b.get("data-row") for b in bars] == [name for name, _ in BALANCE]
    level, levels = Decimal(0), []
    for name, sign in BALANCE:
        value = getattr(movement, name).value
        low, high = (Decimal(0), value) if sign == 0 else (level, level + sign * value)
        levels.append((value, low, high))
        level = high
    top = max(max(low, high) for _, low, high in levels)
    floor = min(Decimal(0), *(min(low, high) for _, low, high in levels))
    plot_bottom = max(float(b.get("y", "nan")) + float(b.get("height", "nan")) for b in bars)
    plot_top = min(float(b.get("y", "nan")) for b in bars)
    scale = 0 if top == floor else PLOT_HEIGHT / float(top - floor)
    if top != floor:  # every bar inside the plot, the highest reaching its top
        assert plot_bottom - plot_top == pytest.approx(PLOT_HEIGHT, abs=1e-3)
    for bar, (value, low, high), (name, _) in zip(bars, levels, BALANCE, strict=True):
        assert float(bar.get("height", "nan")) == pytest.approx(float(value) * scale, abs=1e-3)
        bottom = float(bar.get("y", "nan")) + float(bar.get("height", "nan"))
        above_floor = float(min(low, high) - floor) * scale
        assert plot_bottom - bottom == pytest.approx(above_floor, abs=1e-3)
        assert bar.get("data-count") == str(getattr(movement, name).count)


def test_the_waterfall_bars_match_a_hand_made_week() -> None:
    movement = metrics.movement(week(), FIVE, start=_START, end=_END)
    report = metrics.report([], FIVE, as_of=_END)
    html = metrics.render_html(report, movements=[movement])
    [svg] = _waterfalls(html)
    _assert_bars_match(svg, movement)
    heights = {b.get("data-row"): float(b.get("height", "0")) for b in _bars(svg)}
    assert heights["start"] == pytest.approx(PLOT_HEIGHT * 680 / 770)  # top: 680 + 40 + 50
    assert heights["migrated_out"] == pytest.approx(PLOT_HEIGHT * 500 / 770)
    assert MOVEMENT_SLOT not in html
    assert "<script" not in html.lower()


def test_a_level_below_zero_keeps_every_bar_inside_the_plot() -> None:
    # Found by the property below: a deal created, lost, reopened and lost again in
    # the window counts as lost twice, so the running level dips below zero; the
    # plot's floor follows it instead of the bars running off the bottom.
    empty = metrics.movement([], FIVE, start=_START, end=_END)
    movement = attrs.evolve(
        empty,
        created=Flow(2, Decimal(1)),
        lost=Flow(2, Decimal(2)),
        reopened=Flow(1, Decimal(1)),
        migrated_out=Flow(1, Decimal(0)),
    )
    html = metrics.render_html(metrics.report([], FIVE, as_of=_END), movements=[movement])
    [svg] = _waterfalls(html)
    _assert_bars_match(svg, movement)
    lost = next(b for b in _bars(svg) if b.get("data-row") == "lost")
    assert float(lost.get("height", "nan")) == pytest.approx(PLOT_HEIGHT)  # from 1 to -1


@settings(max_examples=40, deadline=None)
@given(deal_stories(FIVE, T0), windows(T0))
def test_the_waterfall_matches_any_movement(
    story: Story, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    movement = metrics.movement(changes_of(story), FIVE, start=start, end=end)
    html = metrics.render_html(metrics.report([], FIVE, as_of=end), movements=[movement])
    shown = _waterfalls(html)
    if movement.currency is None and movement.by_currency:
        assert len(shown) == len(movement.by_currency)  # never added across currencies
        for svg, own in zip(shown, movement.by_currency.values(), strict=True):
            _assert_bars_match(svg, own)
    else:
        [svg] = shown
        _assert_bars_match(svg, movement)


def test_a_movement_of_another_pipeline_is_refused() -> None:
    movement = metrics.movement(week(), FIVE, start=_START, end=_END)
    other = metrics.report([], Pipeline("other", FIVE.stages), as_of=_END)
    with pytest.raises(ValidationError, match="movements"):
        metrics.render_html(other, movements=[movement])
    with pytest.raises(ValidationError, match="movements"):
        metrics.render_html(other, movements="no")  # type: ignore[arg-type]


# -- the command -----------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "week.sqlite"
    with SQLiteStore(path) as store:
        store.save_pipeline(FIVE)
        for before, after in [*week_story(), *mixed_story()]:
            if before is None:
                store.add(after)
            else:
                store.save(after)
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


WINDOW = ("--from", _START.isoformat(), "--to", _END.isoformat())


def _stored(db: Path, **money: object) -> Movement:
    with SQLiteStore(db) as store:
        return store.movement("five_stage", start=_START, end=_END, **money)  # type: ignore[arg-type]


def test_movement_prints_the_text_table(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, "movement", "--db", str(db), *WINDOW)
    assert (status, err) == (0, "")
    assert out == _stored(db).render()


def test_movement_as_json_is_to_dict(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(
        capsys, "movement", "--db", str(db), "--pipeline", "five_stage", *WINDOW,
        "--currency", "USD", "--rate", "EUR=1.08", "--format", "json",
    )  # fmt: skip
    assert status == 0
    assert json.loads(out) == _stored(db, currency="USD", rates={"EUR": Decimal("1.08")}).to_dict()


def test_a_date_alone_is_midnight_utc(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    day = f"{_START:%Y-%m-%d}"
    status, out, _ = _run(
        capsys, "movement", "--db", str(db), "--from", day, "--to", day, "--format", "json"
    )
    assert status == 0
    midnight = _START.replace(hour=0, minute=0)
    assert json.loads(out)["window_start"] == midnight.isoformat()


def test_report_html_takes_the_waterfall(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(
        capsys, "report", "--db", str(db), "--now", _END.isoformat(), "--format", "html", *WINDOW
    )
    assert status == 0
    movement = _stored(db)
    shown = _waterfalls(out)
    assert len(shown) == len(movement.by_currency) == 2
    for svg, own in zip(shown, movement.by_currency.values(), strict=True):
        _assert_bars_match(svg, own)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["movement", *WINDOW[:2], "--to", "2026-03-01"], "is after --to"),
        (["movement", "--from", "2026-03-01T00:00", "--to", "2026-03-09"], "needs a timezone"),
        (["movement", "--from", "monday", "--to", "2026-03-09"], "not an ISO 8601 date"),
        (["movement", *WINDOW, "--rate", "EUR=1.1"], "--rate needs --currency"),
        (["movement", *WINDOW, "--currency", "USD", "--rate", "EUR=0"], "positive"),
        (["movement", *WINDOW, "--currency", "USD", "--rate", "GBP=2"], "in EUR without a --rate"),
        (["movement", *WINDOW, "--pipeline", "nowhere"], "nowhere"),
        (["report", *WINDOW], "--format html only"),
        (["report", "--format", "html", "--from", "2026-03-01"], "both --from and --to"),
    ],
)
def test_bad_movement_options_are_one_line_errors(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    status, out, err = _run(capsys, argv[0], "--db", str(db), *argv[1:])
    assert (status, out) == (2, "")
    assert fragment in err and err.count("\n") == 1


def test_every_pipeline_is_one_json_line(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "movement", "--db", str(db), *WINDOW, "--format", "json")
    assert status == 0 and out.count("\n") == 1  # one pipeline recorded
    assert json.loads(out)["pipeline"] == "five_stage"
