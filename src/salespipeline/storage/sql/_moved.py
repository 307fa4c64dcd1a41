"""The waterfall rows of the deals changed in a window, sorted in SQL (private).

A deal's state after each of its changes is rebuilt backwards from its row (the
log's projection, as it stands now): an attribute's value just before a change is
the old value of the first change from there on that altered it (``changed`` holds
``{attribute: [old, new]}``), or the row's value when none did. Window functions
give every change from the window's start on its state before and after; the state
at ``start`` is the one before the first of them (none: opened inside the window),
the state at ``end`` the one after the last change before ``end``.

The rules that sort those states into rows are not written again here. They read a
state only through whether it is the pipeline's, WON, LOST or open (``KINDS``), so
running ``metrics._waterfall``'s own ``step``, ``slipped`` and ``tally_deal`` once on
a state of each kind gives a table (``RULES``) the SQL looks its rows up in; it
adds only the amounts and the comparisons of close dates. Each deal's rows are
summed per currency in the database: one row per currency comes back.

Only deals that kept one currency from ``start`` on are sorted so (for them every
view of the waterfall gives the same rows, ``Waterfall.add_tallied``); one whose
currency changed since is left to the streamed path (``ODD``).

The per-attribute search is one pass: each change that altered an attribute is keyed
by its version (ten digits) and old value, so the least key over the changes from
one on (a running ``MIN`` over each deal's changes, last first) is the first such
change's, and its old value the attribute's value before that one.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Final

import attrs

from salespipeline import limits
from salespipeline.metrics._report import EXACT
from salespipeline.metrics._time import to_us
from salespipeline.metrics._waterfall import (
    ROWS,
    Path,
    State,
    Tally,
    View,
    Window,
    slipped,
    step,
    tally_deal,
)
from salespipeline.stages import LOST, WON
from salespipeline.storage.sql._dialect import Dialect, Row, read_int, read_split

__all__ = [
    "KINDS",
    "ODD",
    "RULES",
    "Rules",
    "Spelling",
    "moved",
    "odd",
    "read_tallies",
    "spelling",
]

_HERE, _ELSEWHERE, _OPEN = "p", "q", "open"
KINDS: Final = (
    None,
    State(_ELSEWHERE, _OPEN, Decimal(0), "USD", None),
    State(_HERE, WON, Decimal(0), "USD", None),
    State(_HERE, LOST, Decimal(0), "USD", None),
    State(_HERE, _OPEN, Decimal(0), "USD", None),
)
"""A state of each kind, by code: none yet, in another pipeline, WON, LOST, open."""

_EVENTS: Final = ("created", "reopened", "won", "lost", "migrated_out")
_DUE: Final = Window(
    datetime(2026, 3, 2, tzinfo=timezone.utc), datetime(2026, 3, 4, tzinfo=timezone.utc)
)
_NO_DAY: Final = "9999-99-99"
"""Sorts after every ISO date text: the bound of a window no day begins in."""


@attrs.frozen
class Rules:
    """The waterfall's rules over kinds of state (codes into ``KINDS``)."""

    member: frozenset[int]
    events: Mapping[tuple[int, int], str]
    deltas: frozenset[tuple[int, int]]
    slips: frozenset[tuple[int, int]]
    pushes: frozenset[tuple[int, int]]


def _priced(kind: int, amount: int, day: int) -> State | None:
    """The state of ``kind`` at ``amount``, due on day ``day`` of March 2026."""
    state = KINDS[kind]
    if state is None:
        return None
    return attrs.evolve(state, amount=Decimal(amount), close_date=date(2026, 3, day))


def _reached(kind: int, amount: int, day: int) -> State:
    """``_priced`` of a kind a change can lead to (any but none)."""
    state = _priced(kind, amount, day)
    assert state is not None
    return state


def _stepped(view: View, before: int, after: int) -> tuple[str | None, bool]:
    """The row ``step`` puts a change in (at the amount after it), and whether the
    amount change it makes counts in the deal's net change."""
    tally = Tally()
    net = step(tally, view, _priced(before, 1, 1), _reached(after, 3, 1))
    [*hits] = (row for row in ROWS if tally.counts[row])
    assert not hits or tally.values[hits[0]] == 3, "a change's row is worth the amount after it"
    assert net in (0, 2)
    return (hits[0] if hits else None), net == 2


def _pushes(view: View, first: int, last: int) -> bool:
    """Whether a deal due inside the window at start and after its end at end is
    ``pushed_out`` (and so in ``end``), for these kinds of state at start and end."""
    tally = Tally()
    tally_deal(tally, view, Path(_priced(first, 1, 3), (), _priced(last, 1, 9)), _DUE)
    return tally.counts["pushed_out"] == 1


def rules() -> Rules:
    """``step``, ``slipped`` and ``tally_deal`` run on a state of every kind."""
    view = View(_HERE, None, lambda state: state.amount)
    kinds = range(len(KINDS))
    pairs = [(b, a) for b in kinds for a in kinds if a]
    stepped = {pair: _stepped(view, *pair) for pair in pairs}
    return Rules(
        member=frozenset(k for k in kinds if view.member(KINDS[k])),
        events={pair: row for pair, (row, _) in stepped.items() if row is not None},
        deltas=frozenset(pair for pair, (_, counts) in stepped.items() if counts),
        slips=frozenset(
            pair
            for pair in pairs
            if slipped(view, _priced(pair[0], 1, 1), _reached(pair[1], 1, 2))
        ),
        pushes=frozenset((f, t) for f in kinds for t in kinds if _pushes(view, f, t)),
    )


RULES: Final = rules()


@attrs.frozen
class Spelling:
    """What one database spells its own way here: an exact amount as parts counting
    units of ``10 ** exponent`` (summed as quotient and remainder by ``split`` when
    set), a version as fixed-width text, a key of ``changed``."""

    exponents: tuple[int, ...]
    splits: tuple[int | None, ...]
    row_amount: str
    """The deal row's amount (table ``d``) as decimal text."""
    patterns: tuple[str, ...]
    """The parts of a decimal text ``{t}``."""
    padded: str
    """The version ``{v}`` as text of ten digits (versions are below 2**31)."""
    pair: str
    """The ``[old, new]`` pair of key ``{k}`` of the change ``c``, NULL when absent."""
    old: str
    """The old value of the pair ``{j}`` as SQL text (NULL for JSON null)."""
    materialized: str
    """Written after ``AS`` of a common table whose rows are read many times over."""
    collate: str
    """Appended to a text so it compares by code point."""

    def parts(self, text: str) -> tuple[str, ...]:
        """The part expressions of the decimal text expression ``text``."""
        return tuple(pattern.replace("{t}", text) for pattern in self.patterns)


_WHOLE: Final = "CAST(substr({t}, 1, instr({t} || '.', '.') - 1) AS INTEGER)"
_FRACTION: Final = (
    "CAST(substr(substr({t}, instr({t} || '.', '.') + 1) || '000000000000', 1, 12) AS INTEGER)"
)
SQLITE: Final = Spelling(
    exponents=(9, 0, -12),
    splits=(None, None, 10**6),
    row_amount="d.amount",
    patterns=(f"{_WHOLE} / 1000000000", f"{_WHOLE} % 1000000000", _FRACTION),
    padded="printf('%010d', {v})",
    pair="CASE WHEN instr(c.changed, '\"{k}\":[') > 0 THEN json_extract(c.changed, '$.{k}') END",
    old="json_extract({j}, '$[0]')",
    materialized="MATERIALIZED " if sqlite3.sqlite_version_info >= (3, 35) else "",
    collate="",
)
"""SQLite: integer parts of 10**9, 1 and 10**-12 (amounts are below 10**18 with at
most 12 places), so a deal's net change of many steps cannot overflow 64 bits. Its
JSON is text, parsed on every read: a key is looked for as text first (a key of the
change itself holds an array; a match elsewhere is only parsed for nothing)."""
POSTGRES: Final = Spelling(
    exponents=(0,),
    splits=(None,),
    row_amount="CAST(d.amount AS TEXT)",
    patterns=("CAST({t} AS NUMERIC)",),
    padded="lpad(CAST({v} AS TEXT), 10, '0')",
    pair="c.changed -> '{k}'",
    old="{j} ->> 0",
    materialized="MATERIALIZED ",
    collate=' COLLATE "C"',
)

# ``str`` of an amount of at most 6 places writes no exponent, so the parts read every
# amount a log holds as text; more places or digits would need another reading.
if limits.MAX_AMOUNT_PLACES > 6 or limits.MAX_AMOUNT_DIGITS > 18:  # pragma: no cover
    raise ImportError("the SQL amount parts read at most 18 digits and 6 places")


def spelling(dialect: Dialect) -> Spelling:
    """The ``Spelling`` of ``dialect``'s database."""
    return SQLITE if dialect.name == "sqlite" else POSTGRES


ODD: Final = (
    "EXISTS (SELECT 1 FROM sp_changes c WHERE c.deal_id = d.id "
    "AND c.at_us >= CAST(:start AS BIGINT) AND c.version <= d.version "
    "AND {currency} IS NOT NULL)"
)
"""A deal changed from ``start`` on whose currency changed then: the streamed path
sorts it."""


def odd(spelt: Spelling) -> str:
    """``ODD`` for the deal ``d`` in ``spelt``'s database."""
    pair = f"({spelt.pair.replace('{k}', 'currency')})"
    return ODD.replace("{currency}", spelt.old.replace("{j}", pair))


def _candidates(spelt: Spelling) -> str:
    return (
        "SELECT d.id AS id, d.version AS dv, d.currency AS cur, d.pipeline AS r_p, "
        f"d.stage AS r_s, d.close_date AS r_c, {spelt.row_amount} AS r_a FROM sp_deals d "
        "WHERE d.updated_at_us >= CAST(:start AS BIGINT) AND (d.pipeline = :pipeline "
        "OR EXISTS (SELECT 1 FROM sp_changes m WHERE m.deal_id = d.id AND m.kind = 'migrate')) "
        f"AND NOT {odd(spelt)}"
    )


_ATTRIBUTES: Final = {"p": "pipeline", "s": "stage", "c": "close_date", "a": "amount"}


def _changes(spelt: Spelling) -> str:
    """Each change from ``start`` on of a candidate, with the pairs of what it altered."""
    pairs = ", ".join(
        f"{spelt.pair.replace('{k}', name)} AS j_{key}" for key, name in _ATTRIBUTES.items()
    )
    return (
        f"SELECT r.*, c.version AS v, c.at_us AS at_us, {pairs} "
        "FROM sp_changes c JOIN cand r ON r.id = c.deal_id "
        "WHERE c.at_us >= CAST(:start AS BIGINT) AND c.version <= r.dv"
    )


def _keyed(spelt: Spelling, key: str) -> str:
    """Where a change altered the attribute: its version then its old value (``1`` before
    a value, ``0`` for none), so the least key of a range is its first such change's."""
    old = spelt.old.replace("{j}", f"j_{key}")
    padded = spelt.padded.replace("{v}", "v")
    return (
        f"CASE WHEN j_{key} IS NOT NULL THEN {padded} || COALESCE('1' || ({old}), '0') END"
        f"{spelt.collate}"
    )


def _states() -> str:
    """Per change and attribute, the least key from it on (the value before it) and
    after it (the value after it), in one pass over each deal's changes, last first."""
    frames = {"b": "CURRENT ROW", "a": "1 PRECEDING"}
    keys = ", ".join(
        f"MIN(k_{key}) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND {bound}) AS {side}k_{key}"
        for key in _ATTRIBUTES
        for side, bound in frames.items()
    )
    return (
        f"SELECT id, cur, v, at_us, r_p, r_s, r_c, r_a, {keys}, "
        "LAG(at_us) OVER w AS next_at, CASE WHEN LEAD(v) OVER w IS NULL THEN 1 ELSE 0 END "
        "AS is_first FROM keyed WINDOW w AS (PARTITION BY id ORDER BY v DESC)"
    )


def _keys(spelt: Spelling) -> str:
    keys = ", ".join(f"{_keyed(spelt, key)} AS k_{key}" for key in _ATTRIBUTES)
    return f"SELECT ch.*, {keys} FROM ch"


def _decoded() -> str:
    """The states before and after each change: a key's value, or the row's without one."""
    values = ", ".join(
        f"CASE WHEN {side}k_{key} IS NULL THEN r_{key} WHEN substr({side}k_{key}, 11, 1) = '0' "
        f"THEN NULL ELSE substr({side}k_{key}, 12) END AS {side}_{key}"
        for key in _ATTRIBUTES
        for side in "ba"
    )
    return f"SELECT id, cur, v, at_us, next_at, is_first, {values} FROM st"


def _kind(side: str) -> str:
    """The code in ``KINDS`` of the state ``side`` (``b``: before, ``a``: after)."""
    return (
        f"CASE WHEN {side}_p <> :pipeline THEN 1 WHEN {side}_s = :won THEN 2 "
        f"WHEN {side}_s = :lost THEN 3 ELSE 4 END"
    )


def _parts(spelt: Spelling, side: str) -> list[str]:
    """The columns that hold the parts of the amount of state ``side``."""
    return [f"{side}_a{k}" for k in range(len(spelt.exponents))]


def _kinds(spelt: Spelling) -> str:
    """Each change's kinds of state, the parts of its amounts, whether it is inside the
    window (a step), and whether the state at ``end`` is read from it (``is_last``)."""
    parts = ", ".join(
        f"{part} AS {name}"
        for side in "ba"
        for part, name in zip(spelt.parts(f"{side}_a"), _parts(spelt, side), strict=True)
    )
    return (
        f"SELECT s.*, CASE WHEN v = 1 THEN 0 ELSE {_kind('b')} END AS kb, {_kind('a')} AS ka, "
        f"{parts}, "
        "CASE WHEN at_us < CAST(:end AS BIGINT) THEN 1 ELSE 0 END AS step, "
        "CASE WHEN at_us < CAST(:end AS BIGINT) AND (next_at IS NULL "
        "OR next_at >= CAST(:end AS BIGINT)) THEN 1 "
        "WHEN is_first = 1 AND at_us >= CAST(:end AS BIGINT) THEN 1 ELSE 0 END AS is_last FROM s"
    )


def _case(
    pairs: Mapping[tuple[int, int], str], default: str, kinds: tuple[str, str] = ("kb", "ka")
) -> str:
    """A lookup of the pair of kinds ``kinds`` in ``pairs``."""
    n = len(KINDS)
    whens = " ".join(f"WHEN {b * n + a} THEN {row}" for (b, a), row in pairs.items())
    return f"CASE {kinds[0]} * {n} + {kinds[1]} {whens} ELSE {default} END"


def _within(pairs: frozenset[tuple[int, int]], kinds: tuple[str, str] = ("kb", "ka")) -> str:
    return _case(dict.fromkeys(pairs, "1"), "0", kinds)


def _member(kind: str) -> str:
    return f"{kind} IN ({', '.join(map(str, sorted(RULES.member)))})"


def _rowed(spelt: Spelling) -> str:
    """Each step's row (``RULES.events``), whether its amount change counts in the net
    change, whether it slipped; the state at ``end`` of the ``is_last`` change."""
    c = spelt.collate
    later = (
        f"{_within(RULES.slips)} = 1 AND b_c IS NOT NULL AND a_c IS NOT NULL AND a_c{c} > b_c{c}"
    )
    events = _case({pair: f"'{row}'" for pair, row in RULES.events.items()}, "NULL")
    ends = ", ".join(
        f"CASE WHEN step = 1 THEN {a} ELSE {b} END AS {a.replace('a_', 'l_', 1)}"
        for a, b in zip(_parts(spelt, "a"), _parts(spelt, "b"), strict=True)
    )
    return (
        f"SELECT k.*, CASE WHEN step = 1 THEN {events} END AS ev, "
        f"CASE WHEN step = 1 AND {_within(RULES.deltas)} = 1 THEN 1 ELSE 0 END AS dl, "
        f"CASE WHEN step = 1 AND {later} THEN 1 ELSE 0 END AS slip, "
        "CASE WHEN step = 1 THEN ka ELSE kb END AS kl, "
        "CASE WHEN step = 1 THEN a_c ELSE b_c END AS l_c, "
        f"{ends} FROM k"
    )


def _flag(condition: str) -> str:
    return f"MAX(CASE WHEN {condition} THEN 1 ELSE 0 END)"


def _sums(name: str, condition: str, parts: Sequence[str]) -> list[str]:
    """The exact ``parts`` of an amount summed where ``condition`` holds."""
    return [
        f"SUM(CASE WHEN {condition} THEN {part} ELSE 0 END) AS {name}{k}"
        for k, part in enumerate(parts)
    ]


def _per_deal(spelt: Spelling) -> str:
    """Each deal's rows: flags and exact value parts, the net change's parts, its last
    slip (version and amount, as a key), and whether any state of its path is in the
    open pipeline (``touched``)."""
    c, after = spelt.collate, _parts(spelt, "a")
    opened, ended = f"is_first = 1 AND {_member('kb')}", f"is_last = 1 AND {_member('kl')}"
    entered = f"step = 1 AND {_member('ka')}"
    slip_key = f"{spelt.padded.replace('{v}', 'v')} || a_a"
    net = [f"{a} - {b}" for a, b in zip(after, _parts(spelt, "b"), strict=True)]
    columns = [
        "id",
        "MAX(cur) AS cur",
        f"{_flag(opened)} AS n_start",
        *_sums("v_start", opened, _parts(spelt, "b")),
        f"{_flag(ended)} AS n_end",
        *_sums("v_end", ended, _parts(spelt, "l")),
        f"{_flag(f'is_first = 1 AND b_c{c} >= :first_day AND b_c{c} < :after_day')} AS due",
        f"{_flag(f'is_last = 1 AND l_c{c} >= :after_day')} AS late",
        "MAX(CASE WHEN is_first = 1 THEN kb END) AS kf",
        "MAX(CASE WHEN is_last = 1 THEN kl END) AS kt",
        *_sums("net", "dl = 1", net),
        f"MAX(CASE WHEN slip = 1 THEN {slip_key} END){c} AS slip_key",
        f"{_flag(f'({opened}) OR ({entered})')} AS touched",
    ]
    for row in _EVENTS:
        columns.append(f"SUM(CASE WHEN ev = '{row}' THEN 1 ELSE 0 END) AS n_{row}")
        columns += _sums(f"v_{row}", f"ev = '{row}'", after)
    return f"SELECT {', '.join(columns)} FROM e GROUP BY id"


def _sign(spelt: Spelling) -> str:
    """The sign of a deal's net change (as an expression with that sign) from its parts:
    each part's carry moved up, so every remainder is smaller than a unit above it and
    the first part that is not zero, from the top, has the sign of the whole."""
    names = [f"net{k}" for k in range(len(spelt.exponents))]
    carried, remainders = names[-1], []
    for k in range(len(names) - 1, 0, -1):
        unit = 10 ** (spelt.exponents[k - 1] - spelt.exponents[k])
        remainders.append(f"(({carried}) % {unit})")
        carried = f"({names[k - 1]} + ({carried}) / {unit})"
    ordered = [carried, *reversed(remainders)]
    whens = " ".join(f"WHEN {part} <> 0 THEN {part}" for part in ordered[:-1])
    return f"CASE {whens} ELSE {ordered[-1]} END" if whens else ordered[0]


def _signed(spelt: Spelling) -> str:
    """Each touched deal with its net change's sign, whether it was pushed out, and the
    amount after its last slip."""
    pushed = f"CASE WHEN due = 1 AND late = 1 AND {_within(RULES.pushes, ('kf', 'kt'))} = 1 "
    slip = spelt.parts("substr(slip_key, 11)")
    slips = ", ".join(
        f"CASE WHEN slip_key IS NULL THEN 0 ELSE {part} END AS v_slipped{k}"
        for k, part in enumerate(slip)
    )
    return (
        f"SELECT deal.*, {_sign(spelt)} AS net_sign, {pushed}THEN 1 ELSE 0 END AS pushed, "
        f"CASE WHEN slip_key IS NULL THEN 0 ELSE 1 END AS n_slipped, {slips} "
        "FROM deal WHERE touched = 1"
    )


def _row_sums() -> dict[str, tuple[str, str]]:
    """Per waterfall row, the count and the value part (``{k}``) a deal adds to it."""
    per = {row: (f"n_{row}", f"v_{row}{{k}}") for row in ("start", "end", "slipped", *_EVENTS)}
    for row, test, value in (("increased", ">", "net{k}"), ("decreased", "<", "-net{k}")):
        per[row] = (
            f"CASE WHEN net_sign {test} 0 THEN 1 ELSE 0 END",
            f"CASE WHEN net_sign {test} 0 THEN {value} ELSE 0 END",
        )
    per["pushed_out"] = ("pushed", "CASE WHEN pushed = 1 THEN v_end{k} ELSE 0 END")
    return per


def _totals(spelt: Spelling, dialect: Dialect) -> str:
    """Per currency, each row's count and exact value parts."""
    columns = ["cur AS currency"]
    for row, (count, value) in _row_sums().items():
        columns.append(f"SUM({count}) AS {row}_n")
        for k, split in enumerate(spelt.splits):
            part = value.format(k=k)
            if split is None:
                columns.append(f"SUM({part}) AS {row}_{k}")
            else:
                columns.append(dialect.split_sum(f"{row}_{k}", part, split))
    return f"SELECT {', '.join(columns)} FROM signed GROUP BY cur"


_MARK: Final = re.compile(r":(\w+)")


def moved(dialect: Dialect, pipeline: str, window: Window) -> tuple[str, list[object]]:
    """The statement whose rows ``read_tallies`` reads, and its parameters."""
    spelt = spelling(dialect)
    first_day, after_day = (_NO_DAY if day is None else day.isoformat() for day in window.days())
    ctes = {
        "cand": _candidates(spelt),
        "ch": _changes(spelt),
        "keyed": _keys(spelt),
        "st": _states(),
        "s": _decoded(),
        "k": _kinds(spelt),
        "e": _rowed(spelt),
        "deal": _per_deal(spelt),
        "signed": _signed(spelt),
    }
    sql = "WITH " + ", ".join(
        f"{name} AS {spelt.materialized if name == 'k' else ''}({body})"
        for name, body in ctes.items()
    )
    sql += " " + _totals(spelt, dialect)
    values: dict[str, object] = {
        "start": to_us(window.start),
        "end": to_us(window.end),
        "pipeline": pipeline,
        "won": WON,
        "lost": LOST,
        "first_day": first_day,
        "after_day": after_day,
    }
    names = _MARK.findall(sql)
    return dialect.q(_MARK.sub("?", sql)), [values[name] for name in names]


def read_tallies(rows: Sequence[Row], dialect: Dialect) -> list[tuple[str, Tally]]:
    """Each currency's tally from the rows of ``moved``, read by column name."""
    spelt = spelling(dialect)
    tallies = []
    for row in rows:
        tally = Tally()
        for name in ROWS:
            tally.counts[name] = read_int(row[f"{name}_n"])
            tally.values[name] = _value(row, name, spelt)
        tallies.append((str(row["currency"]), tally))
    return tallies


def _value(row: Row, name: str, spelt: Spelling) -> Decimal:
    total = Decimal(0)
    for k, (exponent, split) in enumerate(zip(spelt.exponents, spelt.splits, strict=True)):
        alias = f"{name}_{k}"
        part = Decimal(read_split(row, alias, split)) if split else _decimal(row[alias])
        total = EXACT.add(total, EXACT.scaleb(part, exponent))
    return total


def _decimal(value: object) -> Decimal:
    """An exact sum: an integer (SQLite), a NUMERIC (PostgreSQL), or NULL (no rows)."""
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    return Decimal(read_int(value))
