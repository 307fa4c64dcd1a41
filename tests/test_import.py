"""``salespipeline import``: a CRM's CSV export into a database, all or nothing.

The export in tests/data/crm_export.csv is shaped like a real one (accounts, owners,
their stage names, amounts with currency symbols and thousands separators, created,
stage and close dates, open, won and lost deals) with a malformed row of each kind.
"""

from __future__ import annotations

import argparse
import csv
import io
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _backends import Backend
from salespipeline import Pipeline, Stage, Tracker, guards, presets
from salespipeline.cli import _import, main
from salespipeline.cli._cells import Cells, Money
from salespipeline.cli._mapping import default_map, load_map
from salespipeline.cli._rows import bind, plan
from salespipeline.errors import UnknownStageError, ValidationError
from salespipeline.limits import MAX_AMOUNT_DIGITS, MAX_AMOUNT_PLACES
from salespipeline.stages import LOST, WON
from salespipeline.storage import MemoryStore, SQLiteStore

DATA = Path(__file__).resolve().parent / "data"
EXPORT = DATA / "crm_export.csv"
MAP = DATA / "crm_map.toml"
PIPELINE = presets.five_stage()
NAME = PIPELINE.name
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
UTC = timezone.utc

REJECTED = [
    "row 6: Amount: '12,34,5' is not an amount (decimal mark '.')",
    "row 7: Stage: 'Demo Booked' is neither in the mapping's [stages] nor a stage of "
    "pipeline 'five_stage'",
    "row 8: Lost Reason: the deal was lost but its lost reason is empty (map lost_reason "
    "or set defaults.lost_reason)",
    "row 9: Created: '31/02/2026' is not a time (ISO 8601)",
    "row 10: Deal ID: deal id 'D-1002' repeats the id of row 3",
    "row 11: Deal ID: the deal id is empty",
    "row 14: it has 5 cells where the header has 15",
]
GOOD = ["D-1001", "D-1002", "D-1003", "D-1004", "D-1009", "D-1010"]


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_import, "clock", lambda: NOW)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "deals.sqlite"
    with SQLiteStore(path) as store:
        Tracker(store, PIPELINE)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, list[str]]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err.splitlines()


def imported(capsys: pytest.CaptureFixture[str], db: Path, path: Path, *more: str) -> Any:
    return run(capsys, "import", "--db", str(db), "--pipeline", NAME, str(path), *more)


def rejected(path: Path, lines: list[str]) -> list[str]:
    prefix = f"{path}: "
    assert all(line.startswith(prefix) for line in lines), lines
    return [line.removeprefix(prefix) for line in lines]


def stored(db: Path) -> tuple[list[Any], list[Any]]:
    with SQLiteStore(db) as store:
        return list(store.find()), list(store.log())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- the export, end to end ---------------------------------------------------------------


def test_skip_bad_writes_the_good_rows_and_names_every_rejected_one(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = imported(capsys, db, EXPORT, "--map", str(MAP), "--skip-bad")
    assert status == 1
    assert rejected(EXPORT, err) == REJECTED
    assert out == (
        f"{EXPORT}: imported 6 deal(s) into five_stage (5 with their past, 1 opened); "
        "7 row(s) rejected and skipped\n"
    )
    deals, log = stored(db)
    assert [d.id for d in deals] == GOOD
    by_id = {d.id: d for d in deals}
    assert [(c.deal_id, c.kind, c.version, c.actor) for c in log] == [
        ("D-1001", "open", 1, "import"),
        *[("D-1002", "import", v, "import") for v in (1, 2)],
        *[("D-1003", "import", v, "import") for v in (1, 2, 3, 4)],
        *[("D-1004", "import", v, "import") for v in (1, 2, 3)],
        *[("D-1009", "import", v, "import") for v in (1, 2, 3)],
        *[("D-1010", "import", v, "import") for v in (1, 2, 3, 4)],
    ]
    won, lost = by_id["D-1003"], by_id["D-1004"]
    assert [(e.to_stage, e.at) for e in won.history] == [
        ("prospecting", at("2025-11-03T14:30")),
        ("qualification", at("2025-11-05T00:00")),
        ("proposal", at("2025-11-20T00:00")),
        (WON, at("2025-12-15T00:00")),
    ]
    assert (won.amount, won.currency, won.owner) == (Decimal("40000"), "USD", "kim")
    assert (lost.stage, lost.lost_reason, lost.amount) == (LOST, "Price", Decimal("7500.00"))
    assert by_id["D-1009"].fields == {
        "name": "Hooli, EMEA",
        "account": "Hooli",
        "source": "Partner",
    }
    assert (by_id["D-1010"].stage, by_id["D-1010"].amount) == ("closing", Decimal("18250.75"))
    assert by_id["D-1002"].close_date == date(2026, 3, 31)
    with SQLiteStore(db) as store:
        assert store.verify() == ()


def test_the_cli_writes_what_the_tracker_s_open_many_and_import_deal_write(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    imported(capsys, db, EXPORT, "--map", str(MAP), "--skip-bad")
    deals = {d.id: d for d in stored(db)[0]}
    memory = MemoryStore()
    tracker = Tracker(memory, PIPELINE, clock=lambda: NOW, actor="import")
    fields = {"name": "Acme rollout", "account": "Acme Corp", "source": "Web"}
    (opened,) = tracker.open_many(
        NAME,
        [
            {
                "id": "D-1001",
                "amount": Decimal("12000.00"),
                "currency": "USD",
                "owner": "kim",
                "close_date": date(2026, 4, 30),
                "fields": fields,
            }
        ],
    )
    lost = tracker.import_deal(
        NAME,
        "D-1004",
        history=[
            ("prospecting", at("2025-12-01T00:00")),
            ("qualification", at("2025-12-02T00:00")),
            (LOST, at("2026-01-20T00:00")),
        ],
        lost_reason="Price",
        amount=Decimal("7500.00"),
        currency="USD",
        owner="park",
        close_date=date(2026, 1, 31),
        fields={"name": "Umbrella renewal", "account": "Umbrella", "source": "Web"},
    )
    assert deals["D-1001"] == opened and deals["D-1004"] == lost


def test_rejected_rows_roll_back_every_row_and_exit_1(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = stored(db)
    status, out, err = imported(capsys, db, EXPORT, "--map", str(MAP))
    assert status == 1 and rejected(EXPORT, err) == REJECTED
    assert "nothing imported" in out and "--skip-bad to import the other 6" in out
    assert stored(db) == before == ([], [])


def test_a_dry_run_checks_every_row_and_writes_nothing(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content = db.read_bytes()
    status, out, err = imported(capsys, db, EXPORT, "--map", str(MAP), "--dry-run", "--skip-bad")
    assert status == 1 and rejected(EXPORT, err) == REJECTED
    assert out == (
        f"{EXPORT}: dry run: 6 deal(s) would be imported (5 with their past, 1 opened), "
        "7 row(s) rejected; nothing written\n"
    )
    assert stored(db) == ([], []) and db.read_bytes() == content


def good_rows(tmp_path: Path, *, delimiter: str = ",", bom: bool = False) -> Path:
    """The export without its malformed rows, written with ``delimiter`` (and a BOM)."""
    with EXPORT.open(encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))
    kept = [
        rows[0],
        *(row for row in rows[1:] if row and row[0] in GOOD and row[1] != "Globex pilot (copy)"),
    ]
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter, lineterminator="\r\n").writerows(kept)
    path = tmp_path / f"export-{ord(delimiter)}-{bom}.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + text.getvalue().encode("utf-8"))
    return path


def test_a_clean_file_imports_with_exit_0_and_a_dry_run_of_it_too(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = good_rows(tmp_path)
    status, out, err = imported(capsys, db, path, "--map", str(MAP), "--dry-run")
    assert (status, err, stored(db)) == (0, [], ([], []))
    assert "dry run: 6 deal(s) would be imported" in out
    status, out, err = imported(capsys, db, path, "--map", str(MAP))
    assert (status, err) == (0, [])
    assert out == f"{path}: imported 6 deal(s) into five_stage (5 with their past, 1 opened)\n"
    assert [d.id for d in stored(db)[0]] == GOOD


@pytest.mark.parametrize(("delimiter", "bom"), [(";", False), (",", True), (";", True)])
def test_semicolons_and_a_bom_read_as_the_plain_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], delimiter: str, bom: bool
) -> None:
    plain, other = tmp_path / "plain.sqlite", tmp_path / "other.sqlite"
    for path in (plain, other):
        with SQLiteStore(path) as store:
            Tracker(store, PIPELINE)
    assert imported(capsys, plain, good_rows(tmp_path), "--map", str(MAP))[0] == 0
    variant = good_rows(tmp_path, delimiter=delimiter, bom=bom)
    assert imported(capsys, other, variant, "--map", str(MAP))[0] == 0
    assert stored(other)[0] == stored(plain)[0]


def test_a_file_that_is_not_utf8_is_refused_before_any_row(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("Deal ID,Owner\nD-1,kim\nD-2,Müller\n".encode("cp1252"))
    status, out, err = imported(capsys, db, path, "--map", str(MAP))
    assert status == 2 and out == ""
    assert len(err) == 1 and "is not UTF-8 (byte 27, line 3)" in err[0]
    assert stored(db) == ([], [])


@given(
    before=st.text(st.characters(exclude_categories=["Cs"]), max_size=30),
    chunk=st.integers(1, 7),
)
def test_the_first_byte_that_is_not_utf8_is_found_across_chunks(
    before: str, chunk: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("utf8") / "file.csv"
    head = before.encode("utf-8")
    path.write_bytes(head + b"\xff" + "tail é".encode())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_import, "_CHUNK", chunk)
        with pytest.raises(ValidationError) as refused:
            _import.scan(path)
    line = head.count(b"\n") + 1
    assert f"(byte {len(head):,}, line {line:,})" in str(refused.value)


# -- the mapping -------------------------------------------------------------------------


def write_map(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "map.toml"
    path.write_text(MAP.read_text(encoding="utf-8") + text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("extra", "error", "named"),
    [
        ('colour = "Colour"\n', ValidationError, "columns.colour"),
        ('entered.haggling = "Haggled"\n', UnknownStageError, "columns.entered.haggling"),
        ('bant.budgets = "B"\n', ValidationError, "columns.bant.budgets"),
        ('\n[stages]\n"Won" = "winning"\n', UnknownStageError, "stages.Won"),
        ('\n[defaults]\nid = "x"\n', ValidationError, "defaults.id"),
        ('\n[defaults]\nflavour = "x"\n', ValidationError, "defaults.flavour"),
        ('\n[parse]\ntimezone = "Mars/Olympus"\n', ValidationError, "parse.timezone"),
        ('\n[parse]\ndecimal = ";"\n', ValidationError, "parse.decimal"),
        ('\n[parse]\nstyle = "x"\n', ValidationError, "parse.style"),
        ('\n[layout]\nx = "y"\n', ValidationError, "'layout'"),
        ("next_action = 5\n", ValidationError, "columns.next_action"),
    ],
)
def test_a_mapping_naming_an_unknown_key_is_a_typed_error_naming_it(
    tmp_path: Path, extra: str, error: type[Exception], named: str
) -> None:
    text = MAP.read_text(encoding="utf-8")
    if extra.startswith("\n["):
        table = extra.split("]")[0].strip().lstrip("[")
        if f"[{table}]" in text:
            text = text.replace(f"[{table}]\n", extra.lstrip("\n"))
        else:
            text += extra
    else:
        text = text.replace("[columns]\n", "[columns]\n" + extra)
    path = tmp_path / "map.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(error) as refused:
        load_map(path, PIPELINE)
    assert str(path) in str(refused.value) and named in str(refused.value)


def test_a_bad_mapping_ends_the_command_with_one_line_and_writes_nothing(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_map(tmp_path, '\n[defaults]\nflavour = "x"\n')
    status, _, err = imported(capsys, db, EXPORT, "--map", str(path))
    assert status == 2 and len(err) == 1 and "defaults.flavour" in err[0]
    assert stored(db) == ([], [])


def test_a_mapped_column_the_file_lacks_is_refused_naming_both(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "map.toml"
    path.write_text('[columns]\nid = "Deal ID"\nowner = "Deal Owner"\n', encoding="utf-8")
    status, _, err = imported(capsys, db, EXPORT, "--map", str(path))
    assert status == 2 and "columns.owner: column 'Deal Owner' is not in the header" in err[0]


def test_without_a_map_the_columns_are_named_for_the_attributes(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "own.csv"
    path.write_text(
        "id,stage,amount,owner,created_at,entered.proposal,fields.region,bant.budget\n"
        "a,prospecting,10,kim,,,north,yes\n"
        'b,proposal,"1,500.25",lee,2026-01-02T10:00:00+02:00,2026-01-09,south,no\n',
        encoding="utf-8",
    )
    assert imported(capsys, db, path)[0] == 0
    a, b = stored(db)[0]
    assert (a.stage, a.created_at, a.bant.budget, a.fields) == (
        "prospecting",
        NOW,
        True,
        {"region": "north"},
    )
    assert [(e.to_stage, e.at) for e in b.history] == [
        ("prospecting", at("2026-01-02T08:00")),
        ("proposal", at("2026-01-09T00:00")),
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,colour\na,red\n", encoding="utf-8")
    status, _, err = imported(capsys, db, bad)
    assert status == 2 and "column 'colour' is not a deal attribute" in err[0]


def test_parse_options_read_european_numbers_dates_and_local_times(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "de.csv"
    path.write_text(
        "Nr;Phase;Betrag;Angelegt;Abschluss\n"
        "K-1;Gewonnen;1.234,50 €;05.01.2026 09:30;20.02.2026\n",
        encoding="utf-8",
    )
    mapping = tmp_path / "de.toml"
    mapping.write_text(
        '[columns]\nid = "Nr"\nstage = "Phase"\namount = "Betrag"\ncreated_at = "Angelegt"\n'
        'closed_at = "Abschluss"\n[stages]\nGewonnen = "won"\n'
        '[parse]\ndecimal = ","\ntime_format = "%d.%m.%Y %H:%M"\ndate_format = "%d.%m.%Y"\n'
        'timezone = "Europe/Berlin"\nsymbols = { "€" = "EUR" }\n',
        encoding="utf-8",
    )
    assert imported(capsys, db, path, "--map", str(mapping))[0] == 0
    (deal,) = stored(db)[0]
    assert (deal.amount, deal.currency) == (Decimal("1234.50"), "EUR")
    assert [(e.to_stage, e.at) for e in deal.history] == [
        ("prospecting", at("2026-01-05T08:30")),
        (WON, at("2026-02-19T23:00")),
    ]


@pytest.mark.parametrize(
    ("row", "line"),
    [
        ("a,-5,USD,,,", "row 2: amount: amount must not be negative, got -5"),
        ("a,5,dollars,,,", "row 2: currency: currency must be a three-letter code"),
        ("a,5,USD,150%,,", "row 2: probability: probability must be between 0 and 1"),
        ("a,1e5,USD,,,", "row 2: amount: '1e5' is not an amount"),
        ("a,5,USD,,won,", "row 2: stage: the deal is in 'won' but no cell says since when"),
        ("a,5,USD,,proposal,2026-01-01", "row 2: stage: the deal is in 'proposal' but no"),
        ("a,5,USD,,lost,2026-01-01", "row 2: stage: the deal is in 'lost' but no"),
        ("a,5,USD,,haggling,", "row 2: stage: 'haggling' is neither in the mapping's"),
    ],
)
def test_a_row_a_deal_could_not_hold_is_rejected_naming_its_column(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], row: str, line: str
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(f"id,amount,currency,probability,stage,created_at\n{row}\n", "utf-8")
    status, _, err = imported(capsys, db, path, "--skip-bad")
    assert status == 1 and len(err) == 1
    assert rejected(path, err)[0].startswith(line)
    assert stored(db) == ([], [])


def test_a_first_stage_guard_rejects_an_opened_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    strict = Pipeline(
        "strict",
        [
            Stage("lead", probability=0.1, requires=guards.requires_fields("source")),
            Stage("closing", probability=0.5),
        ],
    )
    db = tmp_path / "strict.sqlite"
    with SQLiteStore(db) as store:
        Tracker(store, strict)
    path = tmp_path / "rows.csv"
    path.write_text("id,fields.source\na,web\nb,\n", "utf-8")
    status, _, err = run(capsys, "import", "--db", str(db), "--pipeline", "strict", str(path))
    assert status == 1 and len(err) == 1 and "row 3:" in err[0] and "source" in err[0]


# -- the database ------------------------------------------------------------------------


def test_a_stored_id_rejects_its_row_in_any_batch(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_import, "BATCH", 2)
    with SQLiteStore(db) as store:
        Tracker(store, PIPELINE).open(NAME, "D-1009")
    path = good_rows(tmp_path)
    status, _, err = imported(capsys, db, path, "--map", str(MAP))
    assert status == 1
    assert rejected(path, err) == [
        "row 6: Deal ID: deal id 'D-1009' is taken, by a stored deal or an earlier row"
    ]
    assert [d.id for d in stored(db)[0]] == ["D-1009"]  # the batches before it rolled back too
    assert imported(capsys, db, path, "--map", str(MAP), "--skip-bad")[0] == 1
    assert sorted(d.id for d in stored(db)[0]) == GOOD


def test_an_id_repeated_across_batches_is_rejected_by_the_store(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_import, "BATCH", 1)
    path = tmp_path / "twice.csv"
    path.write_text("id,amount\na,1\nb,2\na,3\n", encoding="utf-8")
    status, _, err = imported(capsys, db, path, "--skip-bad")
    assert status == 1 and rejected(path, err) == [
        "row 4: id: deal id 'a' is taken, by a stored deal or an earlier row"
    ]
    assert [(d.id, d.amount) for d in stored(db)[0]] == [("a", 1), ("b", 2)]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--db", "missing.sqlite", "--pipeline", NAME, str(EXPORT)], "no database at"),
        (["--pipeline", "nope", str(EXPORT)], "unknown pipeline 'nope'"),
        (["--pipeline", NAME, "missing.csv"], "missing.csv"),
        (["--pipeline", NAME, str(EXPORT), "--actor", " "], "actor"),
    ],
)
def test_bad_options_are_one_line_errors(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    if "--db" not in argv:
        argv = ["--db", str(db), *argv]
    status, _, err = run(capsys, "import", *argv)
    assert status == 2 and len(err) == 1 and fragment in err[0]


def test_an_empty_file_is_refused(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    status, _, err = imported(capsys, db, path)
    assert status == 2 and "is empty" in err[0]


def test_any_sql_store_takes_the_import(backend: Backend) -> None:
    args = argparse.Namespace(dry_run=False, skip_bad=True)
    with backend.open() as store:
        Tracker(store, PIPELINE)
        source = _import.scan(EXPORT)
        tally = _import.imported(
            store, PIPELINE, load_map(MAP, PIPELINE), source, args, actor="import"
        )
        assert (tally.opened, tally.imported, tally.rejected, tally.written) == (1, 5, 7, True)
        assert [d.id for d in store.find()] == GOOD and store.verify() == ()


def test_a_dry_run_on_any_store_leaves_it_as_it_was(backend: Backend) -> None:
    args = argparse.Namespace(dry_run=True, skip_bad=True)
    with backend.open() as store:
        Tracker(store, PIPELINE)
        tally = _import.imported(
            store, PIPELINE, load_map(MAP, PIPELINE), _import.scan(EXPORT), args, actor="import"
        )
        assert tally.written is False and store.count() == 0 and store.log() == ()


# -- cells and pasts, for any value -------------------------------------------------------


SYMBOLS = {"$": "USD", "€": "EUR", "US$": "USD", "£": "GBP", "kr": "SEK"}


@st.composite
def amount_cells(draw: st.DrawFn) -> tuple[str, Cells, Decimal, str | None]:
    """A Decimal within the published limits, written in one of the supported shapes."""
    places = draw(st.integers(0, MAX_AMOUNT_PLACES))
    amount = draw(
        st.decimals(
            min_value=-(10**MAX_AMOUNT_DIGITS) + 1,
            max_value=10**MAX_AMOUNT_DIGITS - 1,
            places=places,
        )
    )
    mark = draw(st.sampled_from([".", ","]))
    group = draw(st.sampled_from(["", "'", " ", "\u00a0", "\u202f", "," if mark == "." else "."]))
    number = f"{abs(amount):,f}".replace(",", "_").replace(".", mark).replace("_", group)
    unit = draw(st.sampled_from([None, "EUR", "USD", "JPY", "usd", *SYMBOLS]))
    space = draw(st.sampled_from(["", " ", "\u00a0"]))
    written = (
        number
        if unit is None
        else draw(st.sampled_from([f"{unit}{space}{number}", f"{number}{space}{unit}"]))
    )
    sign = "-" if amount < 0 else ""
    code = None if unit is None else SYMBOLS.get(unit, unit.upper())
    return f"{sign}{written}", Cells(decimal=mark, symbols=SYMBOLS), amount, code


@given(amount_cells())
def test_any_amount_in_any_shape_reads_back_with_its_currency(
    case: tuple[str, Cells, Decimal, str | None],
) -> None:
    text, cells, amount, code = case
    assert cells.money(text) == Money(amount, code)


@pytest.mark.parametrize(
    ("text", "decimal", "read"),
    [
        ("EUR 12,000.00", ".", Money(Decimal("12000.00"), "EUR")),
        ("12.000,00 €", ",", Money(Decimal("12000.00"), "EUR")),
        ("$1,200.50", ".", Money(Decimal("1200.50"), "USD")),
        ("1200 USD", ".", Money(Decimal("1200"), "USD")),
        ("USD1200", ".", Money(Decimal("1200"), "USD")),
        ("1 234,5 sek", ",", Money(Decimal("1234.5"), "SEK")),
        ("-$5", ".", Money(Decimal("-5"), "USD")),
        ("$ -5", ".", Money(Decimal("-5"), "USD")),
        ("1,234", ".", Money(Decimal("1234"), None)),
    ],
)
def test_each_shape_of_amount_cell_reads(text: str, decimal: str, read: Money) -> None:
    assert Cells(decimal=decimal, symbols={"$": "USD", "€": "EUR"}).money(text) == read


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("12,34,5", "is not an amount"),
        ("1.2.3", "is not an amount"),
        ("abc", "is not an amount"),
        ("", "is not an amount"),
        ("$", "is not an amount"),
        ("1,0000", "is not an amount"),
        ("1.5.", "is not an amount"),
        ("EUR 5 USD", "is not an amount"),
        ("-$-5", "is not an amount"),
        ("12 XYZ", "currency 'XYZ' is not an ISO 4217 currency code"),
        ("£12", "'£' is neither an ISO 4217 code nor a symbol the mapping names; add"),
        ("12a", "'a' is neither an ISO 4217 code"),
    ],
)
def test_text_that_is_no_amount_is_refused(text: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Cells(symbols={"$": "USD"}).money(text)
    assert fragment in str(refused.value)


@given(
    gaps=st.lists(st.integers(0, 10**6), min_size=5, max_size=5),
    entered=st.lists(st.booleans(), min_size=5, max_size=5),
    current=st.integers(0, 4),
)
def test_any_row_s_past_runs_forward_and_ends_in_its_stage(
    gaps: list[int], entered: list[bool], current: int
) -> None:
    stages = [s.name for s in PIPELINE.stages]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = [start + timedelta(seconds=sum(gaps[: n + 1])) for n in range(5)]
    header = ["id", "stage", *(f"entered.{s}" for s in stages)]
    cells = ["d", stages[current]]
    cells += [
        times[n].isoformat() if (entered[n] and n <= current) or n == current else ""
        for n in range(5)
    ]
    columns = bind(default_map(header, PIPELINE), header, PIPELINE)
    planned = plan(cells, 2, columns, now=NOW, actor="import")
    history = [(e.to_stage, e.at) for e in planned.deal.history]
    assert history[-1] == (stages[current], times[current])
    assert [at for _, at in history] == sorted(at for _, at in history)
    assert planned.imported and planned.deal.stage == stages[current]


# -- currencies in amount cells -----------------------------------------------------------


def money_map(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "money.toml"
    path.write_text(
        '[columns]\nid = "Id"\namount = "Amount"\ncurrency = "Currency"\n'
        f'[parse.symbols]\n"$" = "USD"\n"€" = "EUR"\n{extra}',
        encoding="utf-8",
    )
    return path


def test_the_currency_in_an_amount_cell_is_the_deal_s(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "money.csv"
    path.write_text(
        "Id,Amount,Currency\n"
        'a,"EUR 12,000.00",\n'
        "b,$1200.50,USD\n"
        "c,1200 JPY,jpy\n"
        "d,700,GBP\n"
        "e,€5,\n",
        encoding="utf-8",
    )
    status, _, err = imported(capsys, db, path, "--map", str(money_map(tmp_path)))
    assert (status, err) == (0, [])
    assert [(d.id, d.amount, d.currency) for d in stored(db)[0]] == [
        ("a", Decimal("12000.00"), "EUR"),
        ("b", Decimal("1200.50"), "USD"),
        ("c", Decimal("1200"), "JPY"),
        ("d", Decimal("700"), "GBP"),
        ("e", Decimal("5"), "EUR"),
    ]


def test_an_amount_cell_s_currency_must_agree_with_the_currency_column_and_default(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "money.csv"
    path.write_text("Id,Amount,Currency\na,EUR 5,USD\nb,$5,\nc,5 EUR,\nd,5,\n", encoding="utf-8")
    mapping = money_map(tmp_path, '[defaults]\ncurrency = "EUR"\n')
    status, _, err = imported(capsys, db, path, "--map", str(mapping), "--skip-bad")
    assert status == 1
    assert rejected(path, err) == [
        "row 2: Amount: the amount is in EUR but column 'Currency' says 'USD'",
        "row 3: Amount: the amount is in USD but defaults.currency says 'EUR'",
    ]
    assert [(d.id, d.currency) for d in stored(db)[0]] == [("c", "EUR"), ("d", "EUR")]


def test_an_unknown_code_or_unmapped_symbol_rejects_its_row_with_the_fix(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "money.csv"
    path.write_text("Id,Amount,Currency\na,12 XYZ,\nb,£12,\nc,12 GBP,\n", encoding="utf-8")
    status, _, err = imported(capsys, db, path, "--map", str(money_map(tmp_path)), "--skip-bad")
    assert status == 1
    assert rejected(path, err) == [
        "row 2: Amount: '12 XYZ': currency 'XYZ' is not an ISO 4217 currency code",
        "row 3: Amount: '£12': '£' is neither an ISO 4217 code nor a symbol the mapping "
        'names; add "£" = "<code>" to [parse.symbols] (say "£" = "USD")',
    ]
    assert [d.id for d in stored(db)[0]] == ["c"]


def test_without_a_map_a_symbol_is_rejected_and_a_code_is_read(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "own.csv"
    path.write_text("id,amount\na,$5\nb,5 CHF\n", encoding="utf-8")
    status, _, err = imported(capsys, db, path, "--skip-bad")
    assert status == 1 and len(err) == 1 and "row 2: amount: '$5': '$' is neither" in err[0]
    assert [(d.id, d.currency) for d in stored(db)[0]] == [("b", "CHF")]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ('"1$" = "USD"\n', "parse.symbols.'1$': a symbol has no digits"),
        ('"$" = "dollars"\n', "parse.symbols.'$': currency must be a three-letter code"),
        ('"$" = "XYZ"\n', "parse.symbols.'$': currency 'XYZ' is not an ISO 4217"),
    ],
)
def test_a_bad_symbol_in_the_mapping_is_refused_naming_it(
    tmp_path: Path, extra: str, fragment: str
) -> None:
    path = tmp_path / "money.toml"
    path.write_text(f'[columns]\nid = "Id"\n[parse.symbols]\n{extra}', encoding="utf-8")
    with pytest.raises(ValidationError) as refused:
        load_map(path, PIPELINE)
    assert fragment in str(refused.value) and str(path) in str(refused.value)
