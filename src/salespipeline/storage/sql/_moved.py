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
currency changed, or (SQLite) with an amount written in exponent form, is left to
the streamed path (``ODD``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Final

import attrs

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

__all__ = ["KINDS", "ODD", "RULES", "Rules", "moved", "read_tallies"]

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
class Amounts:
    """How one database holds an exact amount in SQL: as parts counting units of
    ``10 ** exponent`` (summed as quotient and remainder by ``split`` when set)."""

    exponents: tuple[int, ...]
    splits: tuple[int | None, ...]
    row: tuple[str, ...]
    """The deal row's amount (table ``d``), part by part."""
    patterns: tuple[str, ...]
    """The parts of a decimal text ``{t}``."""
    odd: str
    """Whether the text ``{t}`` is not one the parts read (streamed instead)."""
    collate: str
    """Appended to a text so it compares by code point."""

    def parts(self, text: str) -> tuple[str, ...]:
        """The part expressions of the decimal text expression ``text``."""
        return tuple(pattern.replace("{t}", text) for pattern in self.patterns)


_WHOLE: Final = "CAST(substr({t}, 1, instr({t} || '.', '.') - 1) AS INTEGER)"
_FRACTION: Final = (
    "CAST(substr(substr({t}, instr({t} || '.', '.') + 1) || '000000000000', 1, 12) AS INTEGER)"
)
SQLITE: Final = Amounts(
    exponents=(9, 0, -12),
    splits=(None, None, 10**6),
    row=("d.amount_whole / 1000000000", "d.amount_whole % 1000000000", "d.amount_frac"),
    patterns=(f"{_WHOLE} / 1000000000", f"{_WHOLE} % 1000000000", _FRACTION),
    odd="{t} GLOB '*[^0-9.]*'",
    collate="",
)
"""SQLite: integer parts of 10**9, 1 and 10**-12 (amounts are below 10**18 with at
most 12 places), so a deal's net change of many steps cannot overflow 64 bits."""
POSTGRES: Final = Amounts(
    exponents=(0,),
    splits=(None,),
    row=("d.amount",),
    patterns=("CAST({t} AS NUMERIC)",),
    odd="FALSE",
    collate=' COLLATE "C"',
)


def amounts(dialect: Dialect) -> Amounts:
    """The ``Amounts`` of ``dialect``'s database."""
    return SQLITE if dialect.name == "sqlite" else POSTGRES


def _names(prefix: str, money: Amounts) -> list[str]:
    return [f"{prefix}{k}" for k in range(len(money.exponents))]


def _old(attribute: str) -> str:
    return f"c.changed -> '{attribute}' ->> 0"


ODD: Final = (
    "EXISTS (SELECT 1 FROM sp_changes x WHERE x.deal_id = d.id "
    "AND x.at_us >= CAST(:start AS BIGINT) AND x.version <= d.version "
    "AND (x.changed -> 'currency' ->> 0 IS NOT NULL OR {odd}))"
)
"""A deal changed from ``start`` on whose currency changed then (or whose amounts the
SQL cannot read): the streamed path sorts it."""


def odd(money: Amounts) -> str:
    """``ODD`` for the deal ``d`` in ``money``'s database."""
    return ODD.replace("{odd}", money.odd.replace("{t}", "x.changed -> 'amount' ->> 0"))


def _candidates(money: Amounts) -> str:
    rows = ", ".join(f"{part} AS r_a{k}" for k, part in enumerate(money.row))
    return (
        "SELECT d.id AS id, d.version AS dv, d.currency AS cur, d.pipeline AS r_p, "
        f"d.stage AS r_s, d.close_date AS r_c, {rows} FROM sp_deals d "
        "WHERE d.updated_at_us >= CAST(:start AS BIGINT) AND (d.pipeline = :pipeline "
        "OR EXISTS (SELECT 1 FROM sp_changes m WHERE m.deal_id = d.id AND m.kind = 'migrate')) "
        f"AND NOT {odd(money)}"
    )


_ATTRIBUTES: Final = {"p": "pipeline", "s": "stage", "c": "close_date", "a": "amount"}


def _changes(money: Amounts) -> str:
    """Each change from ``start`` on of a candidate, with what it altered and the old values."""
    touched = ", ".join(
        f"CASE WHEN c.changed -> '{name}' IS NULL THEN 0 ELSE 1 END AS t_{key}"
        for key, name in _ATTRIBUTES.items()
    )
    olds = [f"{_old(name)} AS o_{key}" for key, name in _ATTRIBUTES.items() if key != "a"]
    parts = money.parts(_old("amount"))
    olds += [f"{part} AS o_a{k}" for k, part in enumerate(parts)]
    return (
        f"SELECT r.*, c.version AS v, c.at_us AS at_us, {touched}, {', '.join(olds)} "
        "FROM sp_changes c JOIN cand r ON r.id = c.deal_id "
        "WHERE c.at_us >= CAST(:start AS BIGINT) AND c.version <= r.dv"
    )


def _groups() -> str:
    """Per attribute, the changes up to the next one that alters it share a group."""
    earlier = "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
    groups = ", ".join(
        f"COALESCE(SUM(t_{key}) OVER (PARTITION BY id ORDER BY v {earlier}), 0) AS g_{key}"
        for key in _ATTRIBUTES
    )
    return f"SELECT ch.*, {groups} FROM ch"


def _before(money: Amounts) -> str:
    """Each change with the state before it: its group's altering change's old values."""
    columns = [(key, f"o_{key}", f"r_{key}") for key in "psc"]
    columns += [("a", f"o_a{k}", f"r_a{k}") for k in range(len(money.exponents))]
    values = []
    for key, old, row in columns:
        group = f"OVER (PARTITION BY id, g_{key})"
        values.append(
            f"CASE WHEN MAX(t_{key}) {group} = 1 THEN MAX(CASE WHEN t_{key} = 1 THEN {old} END) "
            f"{group} ELSE {row} END AS b_{old[2:]}"
        )
    return f"SELECT g.*, {', '.join(values)} FROM g"


def _after(money: Amounts) -> str:
    """Each change with the state after it (the next change's before, or the row's)."""
    keys = ["p", "s", "c", *(f"a{k}" for k in range(len(money.exponents)))]
    values = ", ".join(f"LEAD(b_{key}, 1, r_{key}) OVER w AS a_{key}" for key in keys)
    return (
        f"SELECT b.*, {values}, ROW_NUMBER() OVER w AS rn, LEAD(at_us) OVER w AS next_at "
        "FROM b WINDOW w AS (PARTITION BY id ORDER BY v)"
    )


def _kind(side: str) -> str:
    """The code in ``KINDS`` of the state ``side`` (``b``: before, ``a``: after)."""
    return (
        f"CASE WHEN {side}_p <> :pipeline THEN 1 WHEN {side}_s = :won THEN 2 "
        f"WHEN {side}_s = :lost THEN 3 ELSE 4 END"
    )


def _kinds() -> str:
    """Each change's kinds of state, whether it is inside the window (a step), and
    whether the state at ``end`` is read from it (``last``)."""
    return (
        f"SELECT s.*, CASE WHEN v = 1 THEN 0 ELSE {_kind('b')} END AS kb, {_kind('a')} AS ka, "
        "CASE WHEN at_us < CAST(:end AS BIGINT) THEN 1 ELSE 0 END AS step, "
        "CASE WHEN at_us < CAST(:end AS BIGINT) AND (next_at IS NULL "
        "OR next_at >= CAST(:end AS BIGINT)) THEN 1 "
        "WHEN rn = 1 AND at_us >= CAST(:end AS BIGINT) THEN 1 ELSE 0 END AS is_last FROM s"
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


def _rowed(money: Amounts) -> str:
    """Each step's row (``RULES.events``), whether its amount change counts in the net
    change, whether it slipped; the state at ``end`` of the ``last`` change."""
    n = len(money.exponents)
    later = (
        f"{_within(RULES.slips)} = 1 AND b_c IS NOT NULL AND a_c IS NOT NULL "
        f"AND a_c{money.collate} > b_c{money.collate}"
    )
    ends = ", ".join(f"CASE WHEN step = 1 THEN a_a{k} ELSE b_a{k} END AS l_a{k}" for k in range(n))
    events = _case({pair: f"'{row}'" for pair, row in RULES.events.items()}, "NULL")
    return (
        f"SELECT k.*, CASE WHEN step = 1 THEN {events} END AS ev, "
        f"CASE WHEN step = 1 AND {_within(RULES.deltas)} = 1 THEN 1 ELSE 0 END AS dl, "
        f"CASE WHEN step = 1 AND {later} THEN 1 ELSE 0 END AS slip, "
        "CASE WHEN step = 1 THEN ka ELSE kb END AS kl, "
        f"CASE WHEN step = 1 THEN a_c ELSE b_c END AS l_c, {ends} FROM k"
    )


def _last_slips() -> str:
    return (
        "SELECT e.*, COALESCE(SUM(slip) OVER (PARTITION BY id ORDER BY v "
        "ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0) AS later_slips FROM e"
    )


def _flag(condition: str) -> str:
    return f"MAX(CASE WHEN {condition} THEN 1 ELSE 0 END)"


def _sums(name: str, condition: str, value: str, n: int) -> list[str]:
    """The parts of ``value`` (``{k}`` for the part) summed where ``condition`` holds."""
    return [
        f"SUM(CASE WHEN {condition} THEN {value.format(k=k)} ELSE 0 END) AS {name}{k}"
        for k in range(n)
    ]


def _per_deal(money: Amounts) -> str:
    """Each deal's rows: flags and exact value parts, the net change's parts, and
    whether any state of its path is in the open pipeline (``touched``)."""
    n, c = len(money.exponents), money.collate
    opened, ended = f"rn = 1 AND {_member('kb')}", f"is_last = 1 AND {_member('kl')}"
    final, entered = "slip = 1 AND later_slips = 0", f"step = 1 AND {_member('ka')}"
    columns = [
        "id",
        "MAX(cur) AS cur",
        f"{_flag(opened)} AS n_start",
        *_sums("v_start", opened, "b_a{k}", n),
        f"{_flag(ended)} AS n_end",
        *_sums("v_end", ended, "l_a{k}", n),
        f"{_flag(f'rn = 1 AND b_c{c} >= :first_day AND b_c{c} < :after_day')} AS due",
        f"{_flag(f'is_last = 1 AND l_c{c} >= :after_day')} AS late",
        "MAX(CASE WHEN rn = 1 THEN kb END) AS kf",
        "MAX(CASE WHEN is_last = 1 THEN kl END) AS kt",
        *_sums("net", "dl = 1", "a_a{k} - b_a{k}", n),
        f"{_flag(final)} AS n_slipped",
        *_sums("v_slipped", final, "a_a{k}", n),
        f"{_flag(f'({opened}) OR ({entered})')} AS touched",
    ]
    for row in _EVENTS:
        columns.append(f"SUM(CASE WHEN ev = '{row}' THEN 1 ELSE 0 END) AS n_{row}")
        columns += _sums(f"v_{row}", f"ev = '{row}'", "a_a{k}", n)
    return f"SELECT {', '.join(columns)} FROM f GROUP BY id"


def _sign(money: Amounts) -> str:
    """The sign of a deal's net change (as an expression with that sign) from its parts:
    each part's carry moved up, so every remainder is smaller than a unit above it and
    the first part that is not zero, from the top, has the sign of the whole."""
    names = [f"net{k}" for k in range(len(money.exponents))]
    carried, remainders = names[-1], []
    for k in range(len(names) - 1, 0, -1):
        unit = 10 ** (money.exponents[k - 1] - money.exponents[k])
        remainders.append(f"(({carried}) % {unit})")
        carried = f"({names[k - 1]} + ({carried}) / {unit})"
    ordered = [carried, *reversed(remainders)]
    whens = " ".join(f"WHEN {part} <> 0 THEN {part}" for part in ordered[:-1])
    return f"CASE {whens} ELSE {ordered[-1]} END" if whens else ordered[0]


def _signed(money: Amounts) -> str:
    pushed = f"CASE WHEN due = 1 AND late = 1 AND {_within(RULES.pushes, ('kf', 'kt'))} = 1 "
    return (
        f"SELECT deal.*, {_sign(money)} AS net_sign, {pushed}THEN 1 ELSE 0 END AS pushed "
        "FROM deal WHERE touched = 1"
    )


def _row_sums(money: Amounts) -> dict[str, tuple[str, str]]:
    """Per waterfall row, the count and the value part (``{k}``) a deal adds to it."""
    per = {row: (f"n_{row}", f"v_{row}{{k}}") for row in ("start", "end", "slipped", *_EVENTS)}
    per["increased"] = (
        "CASE WHEN net_sign > 0 THEN 1 ELSE 0 END",
        "CASE WHEN net_sign > 0 THEN net{k} ELSE 0 END",
    )
    per["decreased"] = (
        "CASE WHEN net_sign < 0 THEN 1 ELSE 0 END",
        "CASE WHEN net_sign < 0 THEN -net{k} ELSE 0 END",
    )
    per["pushed_out"] = ("pushed", "CASE WHEN pushed = 1 THEN v_end{k} ELSE 0 END")
    return per


def _totals(money: Amounts, dialect: Dialect) -> str:
    """Per currency, each row's count and exact value parts."""
    columns = ["cur AS currency"]
    for row, (count, value) in _row_sums(money).items():
        columns.append(f"SUM({count}) AS {row}_n")
        for k, split in enumerate(money.splits):
            part = value.format(k=k)
            if split is None:
                columns.append(f"SUM({part}) AS {row}_{k}")
            else:
                columns.append(dialect.split_sum(f"{row}_{k}", part, split))
    return f"SELECT {', '.join(columns)} FROM signed GROUP BY cur"


_MARK: Final = re.compile(r":(\w+)")


def moved(dialect: Dialect, pipeline: str, window: Window) -> tuple[str, list[object]]:
    """The statement whose rows ``read_tallies`` reads, and its parameters."""
    money = amounts(dialect)
    first_day, after_day = (_NO_DAY if day is None else day.isoformat() for day in window.days())
    ctes = {
        "cand": _candidates(money),
        "ch": _changes(money),
        "g": _groups(),
        "b": _before(money),
        "s": _after(money),
        "k": _kinds(),
        "e": _rowed(money),
        "f": _last_slips(),
        "deal": _per_deal(money),
        "signed": _signed(money),
    }
    sql = "WITH " + ", ".join(f"{name} AS ({body})" for name, body in ctes.items())
    sql += " " + _totals(money, dialect)
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
    money = amounts(dialect)
    tallies = []
    for row in rows:
        tally = Tally()
        for name in ROWS:
            tally.counts[name] = read_int(row[f"{name}_n"])
            tally.values[name] = _value(row, name, money)
        tallies.append((str(row["currency"]), tally))
    return tallies


def _value(row: Row, name: str, money: Amounts) -> Decimal:
    total = Decimal(0)
    for k, (exponent, split) in enumerate(zip(money.exponents, money.splits, strict=True)):
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
