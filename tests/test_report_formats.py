"""A report as JSON, CSV and HTML, in Python and from ``salespipeline report``.

The CSV is read back with the ``csv`` module into the report's own figures; the HTML's
SVG funnel is parsed with ``xml.etree`` and its bars measured against the stage counts;
the page is checked for scripts and for anything it would fetch. Then every option of
the command, and its one-line refusals of bad input.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _dataset import AS_OF, EUR_PER_USD, NOW, abc, hand_worked, two_currencies
from salespipeline import metrics
from salespipeline.cli import main
from salespipeline.deal import Deal
from salespipeline.errors import ValidationError
from salespipeline.metrics import PipelineReport
from salespipeline.metrics._csv import COLUMNS, days_text
from salespipeline.metrics._funnel import BAR_HEIGHT, BAR_WIDTH
from salespipeline.metrics._html import MOVEMENT_SLOT
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON
from salespipeline.storage import SQLiteStore
from salespipeline.testing import strategies as sps

AS_OF_TEXT = AS_OF.isoformat()
AFTER_ALL = datetime(2200, 1, 1, tzinfo=timezone.utc)
"""After every generated change (``strategies.timestamps`` end in 2100)."""


@pytest.fixture
def single() -> PipelineReport:
    p = abc()
    return metrics.report(hand_worked(p), p, as_of=AS_OF)


@pytest.fixture
def mixed() -> PipelineReport:
    p = abc()
    return metrics.report(two_currencies(p), p, as_of=AS_OF)


def _converted() -> PipelineReport:
    p = abc()
    return metrics.report(
        two_currencies(p), p, as_of=AS_OF, currency="EUR", rates={"USD": EUR_PER_USD}
    )


# -- CSV ---------------------------------------------------------------------------


def _read_csv(text: str) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert all(tuple(row) == COLUMNS for row in rows)
    return rows


def _value(row: dict[str, str]) -> object:
    """A CSV value read back as the report's type, by its unit."""
    text, unit = row["value"], row["unit"]
    if text == "":
        return None
    if unit == "deals":
        return int(text)
    if unit == "share":
        return float(text)
    if unit == "days":
        return timedelta(microseconds=round(Decimal(text) * 86_400_000_000))
    return Decimal(text)


def _figures_from_csv(rows: list[dict[str, str]], report: PipelineReport) -> dict[str, Any]:
    """The report's fields, rebuilt from the CSV rows of one pipeline."""
    mine = [r for r in rows if r["pipeline"] == report.pipeline]
    assert {r["as_of"] for r in mine} == {report.as_of.isoformat()}
    out: dict[str, Any] = {"by_currency": {}, "stage": {}, "category": {}}
    for row in mine:
        if row["section"] == "pipeline":
            out[row["figure"]] = _value(row)
            if row["unit"].startswith("money") or row["figure"] == "win_rate_by_value":
                assert row["currency"] == (report.currency or "")
        elif row["section"] == "stage":
            out["stage"].setdefault(row["stage"], {})[row["figure"]] = _value(row)
        elif row["section"] == "category":
            out["category"].setdefault(row["stage"], {})[row["figure"]] = _value(row)
        elif row["section"] == "currency_category":
            figures = out["by_currency"].setdefault(row["currency"], {})
            figures.setdefault("by_category", {}).setdefault(row["stage"], {})[row["figure"]] = (
                _value(row)
            )
        else:
            assert row["section"] == "currency"
            out["by_currency"].setdefault(row["currency"], {})[row["figure"]] = _value(row)
    return out


def _assert_csv_is_the_report(text: str, report: PipelineReport) -> None:
    got = _figures_from_csv(_read_csv(text), report)
    for name in ("deals", "open_deals", "won", "lost", "stalled", "win_rate"):
        assert got[name] == getattr(report, name)
    for name in ("overall_conversion", "cycle_length", *metrics.CurrencyFigures.__attrs_attrs__):
        field = name if isinstance(name, str) else name.name
        if field != "by_category":
            assert got[field] == getattr(report, field), field
    assert got["category"] == {
        name: {"deals": figures.deals, "value": figures.value}
        for name, figures in report.by_category.items()
    }
    stages = got["stage"]
    assert list(stages) == list(report.stage_counts)
    calibration = {c.stage: c for c in report.calibration}
    for stage, count in report.stage_counts.items():
        assert stages[stage]["deals"] == count
        if stage in report.conversion_rates:
            assert stages[stage]["conversion"] == report.conversion_rates[stage]
            assert stages[stage]["time_in_stage"] == report.time_in_stage[stage]
            assert stages[stage]["stalled"] == report.stalled_by_stage[stage]
            assert stages[stage]["probability"] == calibration[stage].probability
            assert stages[stage]["empirical_win_rate"] == calibration[stage].empirical
        else:
            assert set(stages[stage]) == {"deals"}
    for code, figures in report.by_currency.items():
        categories = got["by_currency"][code].pop("by_category")
        assert categories == {
            name: {"deals": item.deals, "value": item.value}
            for name, item in figures.by_category.items()
        }
    assert got["by_currency"] == {
        code: {f: getattr(figures, f) for f in got["by_currency"][code]}
        for code, figures in report.by_currency.items()
    }
    for code in report.by_currency:
        assert len(got["by_currency"][code]) == 7


def test_csv_reads_back_to_the_figures_of_one_currency(single: PipelineReport) -> None:
    _assert_csv_is_the_report(metrics.render_csv(single), single)


def test_csv_reads_back_to_the_figures_of_several_currencies(mixed: PipelineReport) -> None:
    text = metrics.render_csv(mixed)
    _assert_csv_is_the_report(text, mixed)
    headline = [r for r in _read_csv(text) if r["figure"] == "open_value"]
    assert [(r["section"], r["currency"], r["value"]) for r in headline] == [
        ("pipeline", "", ""),  # never a total across currencies
        ("currency", "EUR", "500"),
        ("currency", "USD", "400"),
    ]


def test_csv_of_a_converted_report_names_its_currency() -> None:
    report = _converted()
    text = metrics.render_csv(report)
    _assert_csv_is_the_report(text, report)
    row = next(
        r for r in _read_csv(text) if r["section"] == "pipeline" and r["figure"] == "open_value"
    )
    assert (row["currency"], row["value"], row["unit"]) == ("EUR", "860", "money")


def test_csv_holds_several_reports_told_apart_by_pipeline(
    single: PipelineReport, mixed: PipelineReport
) -> None:
    other = PipelineReport(**{**_fields(mixed), "pipeline": "abc2"})
    text = metrics.render_csv(single, other)
    _assert_csv_is_the_report(text, single)
    _assert_csv_is_the_report(text, other)
    assert text.startswith(",".join(COLUMNS) + "\r\n")
    assert text.count("\r\n") == len(_read_csv(text)) + 1


def _fields(report: PipelineReport) -> dict[str, Any]:
    return {f.name: getattr(report, f.name) for f in report.__attrs_attrs__}


def test_csv_refuses_what_is_not_a_report(single: PipelineReport) -> None:
    with pytest.raises(ValidationError, match="report 2 is"):
        metrics.render_csv(single, {"pipeline": "abc"})  # type: ignore[arg-type]


@given(st.timedeltas(min_value=timedelta(0)))
def test_days_text_gives_back_every_microsecond(value: timedelta) -> None:
    text = days_text(value)
    assert "e" not in text.lower()
    assert timedelta(microseconds=round(Decimal(text) * 86_400_000_000)) == value


@st.composite
def datasets(draw: st.DrawFn) -> tuple[Pipeline, list[Deal]]:
    pipeline = draw(sps.pipelines(max_stages=5, guards=False))
    deals = draw(st.lists(sps.deals(pipeline, max_steps=6), max_size=12, unique_by=lambda d: d.id))
    return pipeline, deals


@settings(max_examples=40, deadline=None)
@given(datasets())
def test_csv_reads_back_to_any_report(dataset: tuple[Pipeline, list[Deal]]) -> None:
    pipeline, deals = dataset
    report = metrics.report(deals, pipeline, as_of=AFTER_ALL)
    _assert_csv_is_the_report(metrics.render_csv(report), report)


# -- HTML and its SVG funnel ----------------------------------------------------------


def _svg(html: str) -> ET.Element:
    found = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
    assert len(found) == 1
    return ET.fromstring(found[0])


def _assert_bars_match(svg: ET.Element, report: PipelineReport) -> None:
    bars = [e for e in svg.iter() if e.tag.endswith("rect") and "bar" in e.get("class", "")]
    expected = [*report.conversion_rates, WON]
    assert [b.get("data-stage") for b in bars] == expected
    counts = [report.stage_counts[stage] for stage in expected]
    widest = max(counts)
    for bar, count in zip(bars, counts, strict=True):
        width = float(bar.get("width", "nan"))
        share = 0 if widest == 0 else count / widest
        assert width == pytest.approx(BAR_WIDTH * share, abs=0.006)
        assert float(bar.get("height", "nan")) == BAR_HEIGHT
        centre = float(bar.get("x", "nan")) + width / 2
        assert centre == pytest.approx(
            float(bars[0].get("x", "0")) + float(bars[0].get("width", "0")) / 2, abs=0.01
        )
    tops = [float(b.get("y", "nan")) for b in bars]
    assert tops == sorted(tops) and len(set(tops)) == len(tops)


def _conversions(svg: ET.Element) -> dict[str, str]:
    return {
        e.get("data-stage", ""): "".join(e.itertext())
        for e in svg.iter()
        if e.tag.endswith("text") and e.get("class") == "conversion"
    }


def test_the_funnel_bars_are_as_wide_as_the_stage_counts(single: PipelineReport) -> None:
    svg = _svg(metrics.render_html(single))
    _assert_bars_match(svg, single)
    assert _conversions(svg) == {
        "a": "\u2193 66.7% went on",
        "b": "\u2193 50.0% went on",
        "c": "\u2193 100.0% went on",
    }
    lost = next(e for e in svg.iter() if e.get("class") == "lost")
    assert (lost.get("data-deals"), "".join(lost.itertext())) == (
        "2",
        "lost: 2 deals left the funnel",
    )


def test_the_standalone_funnel_is_an_svg_document(single: PipelineReport) -> None:
    svg = ET.fromstring(metrics.render_funnel(single))
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    _assert_bars_match(svg, single)


@settings(max_examples=40, deadline=None)
@given(datasets())
def test_the_funnel_matches_any_report(dataset: tuple[Pipeline, list[Deal]]) -> None:
    pipeline, deals = dataset
    report = metrics.report(deals, pipeline, as_of=AFTER_ALL)
    svg = _svg(metrics.render_html(report))
    _assert_bars_match(svg, report)
    undefined = {s for s, rate in report.conversion_rates.items() if rate is None}
    said = {s for s, text in _conversions(svg).items() if "no deal reached it" in text}
    assert said == undefined


def _assert_self_contained(html: str) -> None:
    lowered = html.lower()
    for fetching in ("<script", "javascript:", "<link", "<img", "<iframe", "@import", "url("):
        assert fetching not in lowered
    assert not re.search(r"\b(src|href|xlink:href|action)\s*=", lowered)
    assert not re.search(r"(https?:)?//[a-z0-9]", lowered.replace("<!--", "").replace("-->", ""))
    assert lowered.startswith("<!doctype html>")
    assert '<meta charset="utf-8">' in lowered


def test_the_page_is_self_contained(single: PipelineReport, mixed: PipelineReport) -> None:
    html = metrics.render_html(single, mixed, title="Q2 <review> & plan")
    _assert_self_contained(html)
    assert "<title>Q2 &lt;review&gt; &amp; plan</title>" in html
    assert html.count('<section class="report"') == 2
    assert html.count(MOVEMENT_SLOT) == 2  # the waterfall's place, kept empty


def test_the_page_shows_money_per_currency_never_added(mixed: PipelineReport) -> None:
    html = metrics.render_html(mixed)
    money = re.search(r'<table class="money">(.*?)</table>', html, flags=re.S)
    assert money is not None
    assert "<th>EUR deals, in EUR</th><th>USD deals, in USD</th>" in money.group(1)
    assert "<td>open value</td><td>500.00 EUR</td><td>400.00 USD</td>" in money.group(1)
    assert "never added across currencies" in html


def test_a_converted_page_shows_the_total_then_each_currency() -> None:
    html = metrics.render_html(_converted())
    assert "<th>EUR, every deal converted</th><th>EUR deals, in EUR</th>" in html
    assert "<td>open value</td><td>860.00 EUR</td><td>500.00 EUR</td><td>400.00 USD</td>" in html


def test_the_page_escapes_every_text_of_the_report(single: PipelineReport) -> None:
    hostile = PipelineReport(**{**_fields(single), "pipeline": '<script>alert("x")</script>'})
    html = metrics.render_html(hostile)
    _assert_self_contained(html)
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize(
    ("args", "kwargs", "fragment"),
    [
        ((), {}, "at least one report"),
        (("abc",), {}, "report 1 is"),
        (None, {"title": 3}, "title"),
    ],
)
def test_the_page_refuses_bad_arguments(
    single: PipelineReport, args: Any, kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValidationError, match=fragment):
        metrics.render_html(*(args if args is not None else (single,)), **kwargs)


# -- the command line -------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A database holding the two-currency dataset (EUR and USD) on ``abc``."""
    path = tmp_path / "deals.sqlite"
    p = abc()
    with SQLiteStore(path) as store:
        store.save_pipeline(p)
        for deal in two_currencies(p):
            store.add(deal)
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def _report(db: Path, **money: Any) -> PipelineReport:
    with SQLiteStore(db) as store:
        return store.report("abc", as_of=AS_OF, **money)


def test_json_is_the_reports_to_dict(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(
        capsys, "report", "--db", str(db), "--as-of", AS_OF_TEXT, "--format", "json"
    )
    assert (status, err) == (0, "")
    assert json.loads(out) == _report(db).to_dict()
    assert out.count("\n") == 1


def test_csv_from_the_command_line(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(
        capsys, "report", "--db", str(db), "--as-of", AS_OF_TEXT, "--format", "csv"
    )
    assert status == 0
    assert out == metrics.render_csv(_report(db))


def test_html_from_the_command_line(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(
        capsys, "report", "--db", str(db), "--as-of", AS_OF_TEXT, "--format", "html"
    )
    assert status == 0
    assert out == metrics.render_html(_report(db))
    _assert_self_contained(out)


def test_text_stays_the_default(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, default, _ = _run(capsys, "report", "--db", str(db), "--as-of", AS_OF_TEXT)
    _, text, _ = _run(capsys, "report", "--db", str(db), "--as-of", AS_OF_TEXT, "--format", "text")
    assert default == text
    assert default.startswith(_report(db).render())
    assert "overdue follow-ups" in default


@pytest.mark.parametrize("form", ["text", "json", "csv", "html"])
def test_output_writes_the_file_and_nothing_to_stdout(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    target = tmp_path / f"report.{form}"
    target.write_text("an older report, replaced\n" * 1000)
    _, expected, _ = _run(
        capsys, "report", "--db", str(db), "--as-of", AS_OF_TEXT, "--format", form
    )
    status, out, err = _run(
        capsys,
        "report",
        "--db",
        str(db),
        "--as-of",
        AS_OF_TEXT,
        "--format",
        form,
        "--output",
        str(target),
    )
    assert (status, out, err) == (0, "", "")
    assert target.read_bytes() == expected.encode()


def test_currency_alone_reports_only_its_deals(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "report",
        "--db",
        str(db),
        "--as-of",
        AS_OF_TEXT,
        "--format",
        "json",
        "--currency",
        "USD",
    ]
    status, out, _ = _run(capsys, *argv)
    assert status == 0
    data = json.loads(out)
    assert data == _report(db, currency="USD").to_dict()
    assert (data["currency"], data["deals"], data["open_value"]) == ("USD", 2, "400")


def test_rates_convert_every_deal(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["report", "--db", str(db), "--as-of", AS_OF_TEXT, "--format", "json"]
    status, out, _ = _run(
        capsys, *argv, "--currency", "EUR", "--rate", "USD=0.9", "--rate", "GBP=1.15"
    )
    assert status == 0
    data = json.loads(out)
    assert data == _report(db, currency="EUR", rates={"USD": Decimal("0.9")}).to_dict()
    assert (data["deals"], data["open_value"]) == (5, "860")


def test_several_pipelines_are_one_json_line_each_and_one_csv(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = abc()
    other = Pipeline("other", list(p.stages))
    with SQLiteStore(db) as store:
        store.save_pipeline(other)
        store.add(other.start("o1", amount=5, currency="EUR", at=NOW - timedelta(days=1)))
    base = ["report", "--db", str(db), "--as-of", AS_OF_TEXT, "--format"]
    _, out, _ = _run(capsys, *base, "json")
    assert sorted(json.loads(line)["pipeline"] for line in out.splitlines()) == ["abc", "other"]
    _, out, _ = _run(capsys, *base, "csv")
    assert {row["pipeline"] for row in _read_csv(out)} == {"abc", "other"}
    _, out, _ = _run(capsys, *base, "html")
    assert out.count('<section class="report"') == 2
    assert out.count("<svg") == 2


def _assert_one_line_error(status: int, err: str, fragment: str) -> None:
    assert status == 2
    assert err.startswith("salespipeline: error: ")
    assert err.count("\n") == 1
    assert fragment in err, err


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--rate", "USD=0.9"], "--rate needs --currency"),
        (["--currency", "EUR", "--rate", "USD"], "--rate takes CODE=RATE"),
        (["--currency", "EUR", "--rate", "=0.9"], "--rate takes CODE=RATE"),
        (["--currency", "EUR", "--rate", "USD=abc"], "'abc' is not a decimal number"),
        (["--currency", "EUR", "--rate", "USD=-1"], "must be a positive finite number"),
        (["--currency", "EUR", "--rate", "USD=NaN"], "must be a positive finite number"),
        (["--currency", "EUR", "--rate", "USD=0.0000000000001"], "decimal places"),
        (["--currency", "EUR", "--rate", "US=1"], "--rate 'US=1'"),
        (["--currency", "EUR", "--rate", "USD=1", "--rate", "usd=2"], "--rate names USD twice"),
        (["--currency", "EUR", "--rate", "EUR=2"], "EUR is the report's currency"),
        (["--currency", "EURO"], "--currency: currency must be a three-letter code"),
        (["--currency", "EUR", "--rate", "GBP=1.1"], "has deals in USD without a --rate"),
        (["--format", "pdf"], "invalid choice: 'pdf'"),
        (["--output", "no/such/folder/r.html"], "No such file or directory"),
    ],
)
def test_bad_report_options_are_one_line_errors(
    db: Path, capsys: pytest.CaptureFixture[str], extra: list[str], fragment: str
) -> None:
    status, out, err = _run(capsys, "report", "--db", str(db), "--as-of", AS_OF_TEXT, *extra)
    _assert_one_line_error(status, err, fragment)
    assert out == ""


def test_output_never_overwrites_the_database(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = db.read_bytes()
    status, _, err = _run(
        capsys, "report", "--db", str(db), "--format", "csv", "--output", str(db)
    )
    _assert_one_line_error(status, err, "is the database itself")
    assert db.read_bytes() == before


def test_a_refused_report_writes_no_file(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "r.csv"
    argv = ["report", "--db", str(db), "--format", "csv", "--output", str(target)]
    status, _, err = _run(capsys, *argv, "--currency", "EUR", "--rate", "GBP=2")
    _assert_one_line_error(status, err, "without a --rate")
    assert not target.exists()
    status, _, err = _run(capsys, *argv[:-1], "r\x00.csv")
    _assert_one_line_error(status, err, "cannot name a file")


def test_lost_stays_out_of_the_bars(single: PipelineReport) -> None:
    svg = _svg(metrics.render_html(single))
    assert LOST not in {e.get("data-stage") for e in svg.iter()}


def test_text_takes_the_currency_and_rates_too(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["report", "--db", str(db), "--as-of", AS_OF_TEXT, "--currency", "eur"]
    status, out, _ = _run(capsys, *argv, "--rate", "usd=0.9")
    assert status == 0
    assert out.startswith(_report(db, currency="EUR", rates={"USD": Decimal("0.9")}).render())
    assert "open value               860.00 EUR" in out
    assert "Money in EUR, the other currencies converted at the rates given" in out
