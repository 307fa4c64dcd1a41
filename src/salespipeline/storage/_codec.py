"""Deals to database rows and back (private): exact amounts, UTC microseconds, JSON.

Decoding never repairs: a row that does not make a valid ``Deal`` raises
``CorruptRecordError`` naming the deal, with the underlying problem chained.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Final, cast

import attrs

from salespipeline._checks import (
    MAX_ID_LENGTH,
    FrozenMap,
    check_id,
    check_text,
    freeze_json,
    is_encodable,
    to_optional_text,
)
from salespipeline._unchecked import generate
from salespipeline._unchecked import stage_change as _unchecked_change
from salespipeline.deal import MAX_VERSION, Bant, Deal, History, StageChange, to_actor
from salespipeline.errors import CorruptRecordError, SalesPipelineError, ValidationError
from salespipeline.limits import MAX_DEPTH, MAX_YEAR, MIN_YEAR
from salespipeline.log import ATTRIBUTES, KINDS, Change
from salespipeline.metrics._time import EPOCH, ONE_US, to_us

__all__ = [
    "CHANGE_COLUMNS",
    "DEAL_COLUMNS",
    "ENCODERS",
    "LOG_COLUMNS",
    "amount_parts",
    "change_values",
    "deal_values",
    "decode_change",
    "decode_deal",
    "decode_found",
    "decode_history",
    "dumps",
    "from_us",
    "loads",
    "log_values",
    "to_us",
]

FRACTION_UNITS: Final = 10**12
_KINDS: Final = frozenset(KINDS)
_STRINGS: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS: Final = re.compile(r"[\[\]{}]")

DEAL_COLUMNS: Final = (
    "id",
    "pipeline",
    "stage",
    "amount",
    "currency",
    "bant_budget",
    "bant_authority",
    "bant_need",
    "bant_timeline",
    "fields",
    "probability",
    "lost_reason",
    "next_action",
    "next_action_at_us",
    "created_at_us",
    "stage_entered_at_us",
    "closed_at_us",
    "version",
    "owner",
    "close_date",
    "forecast_category",
    "updated_at_us",
)
CHANGE_COLUMNS: Final = (
    "deal_id",
    "version",
    "from_stage",
    "to_stage",
    "at_us",
    "reason",
    "actor",
)
"""The history view of ``sp_changes``: its rows that moved a stage, as ``StageChange``."""

LOG_COLUMNS: Final = (
    "position",
    "deal_id",
    "version",
    "at_us",
    "kind",
    "actor",
    "reason",
    "key",
    "from_stage",
    "to_stage",
    "changed",
)

_DECODE_ERRORS: Final = (
    SalesPipelineError,
    ValueError,
    TypeError,
    KeyError,
    OverflowError,
    InvalidOperation,
)


def from_us(value: object) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a timestamp column holds {value!r}, not integer microseconds")
    return EPOCH + timedelta(microseconds=value)


def _optional_us(moment: datetime | None) -> int | None:
    return None if moment is None else to_us(moment)


def _plain(value: object) -> object:
    """What JSON makes of a read-only map (tuples are already arrays)."""
    if isinstance(value, FrozenMap):
        return value._data
    raise TypeError(f"{type(value).__name__} is not JSON data")


_encode: Final = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_plain
).encode


def _acyclic_encoder() -> Callable[[object], str]:
    """``_encode`` for data that cannot hold a cycle, without its cost per call.

    ``JSONEncoder.encode`` builds its C encoder anew on every call; a change's
    ``changed`` is encoded on every save, from a checked deal whose values nest at
    most ``MAX_DEPTH`` deep, so one encoder without the cycle check serves them all.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return _encode
    basestring = json.encoder.encode_basestring
    chunks = make(None, _plain, basestring, None, ":", ",", False, False, False)
    return lambda data: "".join(chunks(data, 0))


_encode_acyclic: Final = _acyclic_encoder()


def dumps(data: object) -> str:
    """Compact JSON that keeps non-ASCII text as it is (Korean labels stay readable);
    read-only maps and tuples are written as objects and arrays.

    Text no database can encode (a lone surrogate) is a ``ValidationError`` here,
    before any write, whatever part of a deal or definition it came from.
    """
    return _checked_text(_encode(data))


def _checked_text(text: str) -> str:
    if not text.isascii() and not is_encodable(text):
        raise ValidationError("the data holds text that is not valid Unicode (a lone surrogate)")
    return text


def loads(text: str | bytes) -> Any:
    """Stored JSON text parsed; ``ValueError`` when it nests deeper than ``MAX_DEPTH``.

    Every stored JSON value (fields, definitions, report figures) is read here, so no
    parser recurses as deep as a damaged value goes (``RecursionError``).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        raise ValueError(f"the stored JSON is nested more than {MAX_DEPTH} deep")
    return json.loads(text)


def _depth(text: str) -> int:
    """How deep ``text``'s arrays and objects nest (brackets inside strings ignored)."""
    depth = deepest = 0
    for bracket in _BRACKETS.finditer(_STRINGS.sub("", text)):
        depth += 1 if bracket.group() in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
    return deepest


def amount_parts(amount: Decimal) -> tuple[int, int]:
    """The integer part and the fraction in 10**-12 units, both exact integers."""
    _, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int) or exponent < -12:
        raise ValueError(f"amount {amount} has more than 12 decimal places")
    coefficient = int("".join(map(str, digits)) or "0")
    whole, fraction = divmod(coefficient * 10 ** (exponent + 12), FRACTION_UNITS)
    return whole, fraction


ENCODERS: Final[dict[str, Callable[[Deal], tuple[Any, ...]]]] = {
    "id": lambda deal: (deal.id,),
    "pipeline": lambda deal: (deal.pipeline,),
    "stage": lambda deal: (deal.stage,),
    "amount": lambda deal: (deal.amount,),
    "currency": lambda deal: (deal.currency,),
    "bant": lambda deal: _bant_values(deal.bant),
    "fields": lambda deal: (dumps(deal.fields),),
    "probability": lambda deal: (deal.probability,),
    "lost_reason": lambda deal: (deal.lost_reason,),
    "next_action": lambda deal: (deal.next_action,),
    "next_action_at": lambda deal: (_optional_us(deal.next_action_at),),
    "created_at": lambda deal: (to_us(deal.created_at),),
    "stage_entered_at": lambda deal: (to_us(deal.stage_entered_at),),
    "closed_at": lambda deal: (_optional_us(deal.closed_at),),
    "version": lambda deal: (deal.version,),
    "owner": lambda deal: (deal.owner,),
    "close_date": lambda deal: (None if deal.close_date is None else deal.close_date.isoformat(),),
    "forecast_category": lambda deal: (deal.forecast_category,),
    "updated_at": lambda deal: (to_us(deal.updated_at),),
}
"""Per deal attribute, in ``DEAL_COLUMNS`` order, the values of the columns that hold it:
the amount a Decimal, the fields JSON text, times integer microseconds."""


def _bant_values(bant: Bant) -> tuple[bool, bool, bool, bool]:
    return (bant.budget, bant.authority, bant.need, bant.timeline)


def deal_values(deal: Deal) -> list[Any]:
    """The ``DEAL_COLUMNS`` values (``ENCODERS`` one after another)."""
    return [value for encode in ENCODERS.values() for value in encode(deal)]


def log_values(change: Change) -> tuple[Any, ...]:
    """The ``LOG_COLUMNS`` values of one change but its position (the store assigns it)."""
    changed = change.changed  # its own dict: the encoder then calls no _plain back
    return (
        change.deal_id,
        change.version,
        to_us(change.at),
        change.kind,
        change.actor,
        change.reason,
        change.key,
        change.from_stage,
        change.to_stage,
        _checked_text(_encode_acyclic(changed._data if type(changed) is FrozenMap else changed)),
    )


def decode_change(row: Sequence[Any]) -> Change:
    """The Change a ``LOG_COLUMNS`` row describes; ``CorruptRecordError`` if it is not one.

    Every scalar is checked as ``Change`` checks it, but cheaply (names and ids repeat,
    so their checks are remembered), and the value is built without running the
    constructor's converters again. ``at`` and ``changed`` are built when first read
    (``log._Stored``): a consumer that routes on kind and stage never pays for them.
    The time is range-checked here, so building it cannot fail; a damaged ``changed``
    raises ``CorruptRecordError`` when it is read.
    """
    position, deal_id, version, at_us, kind, actor, reason, key, source, target, changed = row
    try:
        if type(position) is not int or position < 1:  # bool is not int here
            raise ValueError(f"a log row holds position {position!r}")
        if type(version) is not int or not 1 <= version <= MAX_VERSION:
            raise ValueError(f"a log row holds version {version!r}")
        if type(at_us) is not int or not _FIRST_US <= at_us <= _LAST_US:
            raise ValueError(f"a log row holds the time {at_us!r}, not microseconds in range")
        if kind not in _KINDS:
            raise ValueError(f"a log row holds kind {kind!r}")
        if not isinstance(changed, (str, bytes, Mapping)):
            raise TypeError(f"the changed column holds {type(changed).__name__}")
        change = _deferred_change(
            _known_id(deal_id),
            version,
            kind,
            None if actor is None else _known_actor(actor),
            None if reason is None else check_text(reason, "reason"),
            None if key is None else check_text(key, "key"),
            None if source is None else _stage_name(source),
            None if target is None else _stage_name(target),
            position,
        )
        _set_stored(change, row)
        change.__attrs_post_init__()  # the kind agrees with the stages
        return change
    except _DECODE_ERRORS as error:
        raise CorruptRecordError(
            str(deal_id), f"its change log row is damaged: {error}"
        ) from error


def _deferred_part(row: Sequence[Any], name: str) -> Any:
    """A decoded row's ``at`` or ``changed``, built when first read."""
    if name == "at":
        return EPOCH + timedelta(0, 0, row[3])
    deal_id, stored = row[1], row[10]
    try:
        pairs = loads(stored) if isinstance(stored, (str, bytes)) else stored
        if not isinstance(pairs, Mapping):
            raise TypeError(f"the changed column holds {type(pairs).__name__}, not an object")
        return FrozenMap({_attribute(key): _pair(key, pair) for key, pair in pairs.items()})
    except _DECODE_ERRORS as error:
        raise CorruptRecordError(deal_id, f"its change log row is damaged: {error}") from error


Change._decode_stored = staticmethod(_deferred_part)  # type: ignore[method-assign, assignment]
_FIRST_US: Final = to_us(datetime(MIN_YEAR, 1, 1, tzinfo=timezone.utc))
_LAST_US: Final = to_us(datetime(MAX_YEAR + 1, 1, 1, tzinfo=timezone.utc)) - 1
_set_stored: Final = Change._stored.__set__  # type: ignore[attr-defined]
_LATER: Final = ("at", "changed")
_deferred_change: Final[Callable[..., Change]] = generate(
    Change,
    "deferred_change",
    "A Change from a log row's checked scalars; ``at`` and ``changed`` are left to read.",
    given=tuple(a.name for a in attrs.fields(Change) if a.name not in _LATER),
    unset=_LATER,
)


@functools.lru_cache(maxsize=4096)
def _known_id(value: str) -> str:
    return check_id(value)


@functools.lru_cache(maxsize=1024)
def _known_actor(value: str) -> str | None:
    return to_actor(value)


def _attribute(name: object) -> str:
    if not isinstance(name, str) or name not in ATTRIBUTES:
        raise ValueError(f"a log row changes {name!r}, which is not a deal attribute")
    return name


def _pair(name: str, pair: object) -> tuple[Any, Any]:
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise ValueError(f"a log row's change of {name} is not an (old, new) pair")
    old, new = pair
    return (_frozen(old, name), _frozen(new, name))


def _frozen(value: object, name: str) -> Any:
    """A stored JSON value made read-only; scalars are already."""
    if isinstance(value, (dict, list)):
        return freeze_json(value, f"changed[{name!r}]")
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise TypeError(f"a log row's change of {name} holds {type(value).__name__}")


def change_values(change: StageChange) -> tuple[Any, ...]:
    """The ``CHANGE_COLUMNS`` values of one history entry."""
    return (
        change.deal_id,
        change.version,
        change.from_stage,
        change.to_stage,
        to_us(change.at),
        change.reason,
        change.actor,
    )


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"a BANT column holds {value!r}, not a boolean")


def _amount(value: object) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        return Decimal(value)
    raise TypeError(f"the amount column holds {value!r}, not exact decimal text")


def _amount_text(value: object) -> str:
    """A Decimal amount's exact text (which ``Decimal`` reads back as the same value,
    places and sign included); ``TypeError`` for anything else."""
    if type(value) is Decimal:
        return str(value)
    raise TypeError(f"the amount column holds {value!r}, not exact decimal text")


def _fields(value: object) -> Mapping[str, Any]:
    data = loads(value) if isinstance(value, str) else value
    if not isinstance(data, Mapping):
        raise TypeError(f"the fields column holds {type(data).__name__}, not a JSON object")
    return data


def _date(value: object) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value)
    raise TypeError(f"the close_date column holds {value!r}, not an ISO date")


@functools.lru_cache(maxsize=1024)
def _stage_name(value: str) -> str:
    """A stored stage name, checked as ``StageChange`` checks it (remembered: names repeat)."""
    return check_text(value, "stage", max_length=64)


def _version(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        raise ValueError(f"a history row holds version {value!r}")
    return value


def _change(deal_id: str, row: Sequence[Any]) -> StageChange:
    """One history row (``CHANGE_COLUMNS``), checked as ``_entry`` checks it."""
    owner, version, from_stage, to_stage, at_us, reason, actor = row
    if owner != deal_id:
        raise ValueError(f"a history row belongs to deal {owner!r}")
    return _entry(deal_id, version, from_stage, to_stage, at_us, reason, actor)


def _entry(
    deal_id: str,
    version: object,
    from_stage: object,
    to_stage: object,
    at_us: object,
    reason: object,
    actor: object,
    *,
    times: tuple[object, datetime | None, object, datetime | None] = (None, None, None, None),
) -> StageChange:
    """One history entry of deal ``deal_id``, every value checked as ``StageChange``
    checks it, built directly. ``times`` are the deal's ``(created_us, created_at,
    entered_us, entered_at)`` when already built: an entry at the same instant shares
    the datetime.

    (The history's chain, order and times are checked by ``Deal`` itself.)
    """
    created_us, created_at, entered_us, entered_at = times
    if created_at is not None and type(at_us) is int and at_us == created_us:
        at = created_at
    else:
        at = _time(at_us, entered_us, entered_at)
    return _unchecked_change(
        deal_id,
        None if from_stage is None else _stage_name(from_stage),
        _stage_name(to_stage),
        at,
        _version(version),
        to_optional_text(reason),
        None if actor is None else _known_actor(actor),
    )


def decode_deal(
    row: Sequence[Any],
    changes: Sequence[Sequence[Any]],
    *,
    older: int = 0,
    fetch: Callable[[], Sequence[StageChange]] | None = None,
) -> Deal:
    """The Deal a ``DEAL_COLUMNS`` row and its ``CHANGE_COLUMNS`` rows describe.

    With ``older``, the rows are the latest history entries and ``fetch`` reads the
    ``older`` ones before them when they are first needed (``History.lazy``).
    """
    deal_id = str(row[0])
    try:
        if not changes:
            raise ValueError("the deal has no history rows")
        entries = decode_history(deal_id, changes)
        if older:
            assert fetch is not None
            return _build(row, History.lazy(entries, older, fetch))
        return _build(row, History._trusted(entries))
    except _DECODE_ERRORS as error:
        raise CorruptRecordError(deal_id, str(error)) from error


def decode_found(row: Sequence[Any]) -> Deal:
    """The Deal of a ``find`` page's row: its ``DEAL_COLUMNS``, then its history as the
    JSON text of ``Statements.page_history`` (``[]`` or NULL: the deal has no history
    rows, which is corrupt).

    The JSON is built by the database from the history's columns as the page is read,
    never stored, so it is an array of flat arrays: ``json.loads`` cannot recurse deep.
    The deal's times are built first, so the entries made at the same instants (the
    first at ``created_at``, the last at ``stage_entered_at``) share them.
    """
    deal_id = str(row[0])
    try:
        created_us, entered_us, updated_us, history = row[14], row[15], row[21], row[22]
        created_at = _time(created_us)
        entered_at = _time(entered_us, created_us, created_at)
        updated_at = _time(updated_us, entered_us, entered_at)
        times = (created_us, created_at, entered_us, entered_at)
        rows = () if history is None else _json_array(history)
        entries = [_entry(deal_id, *values, times=times) for values in rows]
        if not entries:
            raise ValueError("the deal has no history rows")
        return _deal(row, History._trusted(entries), created_at, entered_at, updated_at)
    except _DECODE_ERRORS as error:
        raise CorruptRecordError(deal_id, str(error)) from error


def _json_array(text: object) -> Any:
    """The JSON text the database built, parsed by the C scanner itself (``json.loads``
    adds a few layers of Python a call); ``ValueError`` if it is not one whole value."""
    if not isinstance(text, str):
        raise TypeError(f"a page's history is {type(text).__name__}, not JSON text")
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        raise ValueError("a page's history is not JSON") from None
    if end != len(text):
        raise ValueError("a page's history is not one JSON value")
    return value


_scan_json: Final[Callable[[str, int], tuple[Any, int]]] = cast(Any, json.JSONDecoder()).scan_once


def decode_history(deal_id: str, rows: Sequence[Sequence[Any]]) -> list[StageChange]:
    """History entries from ``CHANGE_COLUMNS`` rows, each checked (not their chain)."""
    try:
        return [_change(deal_id, row) for row in rows]
    except _DECODE_ERRORS as error:
        raise CorruptRecordError(deal_id, str(error)) from error


def _build(row: Sequence[Any], history: History) -> Deal:
    """The Deal of a ``DEAL_COLUMNS`` row and its history (``_deal``), its times built
    from the row."""
    created_us, entered_us, updated_us = row[14], row[15], row[21]
    created_at = _time(created_us)
    entered_at = _time(entered_us, created_us, created_at)
    return _deal(row, history, created_at, entered_at, _time(updated_us, entered_us, entered_at))


def _deal(
    row: Sequence[Any],
    history: History,
    created_at: datetime,
    stage_entered_at: datetime,
    updated_at: datetime,
) -> Deal:
    """The Deal of a ``DEAL_COLUMNS`` row, its history and times already built, every
    value checked as the Deal constructor checks it, but cheaply: with the
    constructor's own converters, their answers for names that repeat (pipeline,
    stage, owner, ...) remembered, a value the converter would keep as it is (None, an
    ASCII id, a version in range) seen at a glance, and the value made without running
    the converters again; then the Deal's own cross-checks (``__attrs_post_init__``)."""
    (id, pipeline, stage, amount, currency, budget, authority, need, timeline) = row[:9]
    (fields, probability, lost_reason, next_action, next_us, _, _, closed_us) = row[9:17]
    (version, owner, close_date, forecast_category) = row[17:21]
    if type(amount) is not str:
        amount = _amount_text(amount)
    deal = _stored_deal(
        id if _plain_id(id) else _DEAL_ID(id),
        _PIPELINES[pipeline] if pipeline in _PIPELINES else _PIPELINE(pipeline),
        _STAGES[stage] if stage in _STAGES else _STAGE(stage),
        _AMOUNT_VALUES[amount] if amount in _AMOUNT_VALUES else _AMOUNTS(amount),
        _CURRENCIES[currency] if currency in _CURRENCIES else _CURRENCY(currency),
        _bant(budget, authority, need, timeline),
        _NO_FIELDS if fields == "{}" else _FIELDS(_fields(fields)),
        None if probability is None else _PROBABILITY(probability),
        None if lost_reason is None else _LOST_REASON(lost_reason),
        None if next_action is None else _NEXT_ACTION(next_action),
        None if next_us is None else _time(next_us),
        _OWNERS[owner] if owner in _OWNERS else _OWNER(owner),
        None if close_date is None else _CLOSE_DATE(_date(close_date)),
        None if forecast_category is None else _FORECAST_CATEGORY(forecast_category),
        created_at,
        stage_entered_at,
        None if closed_us is None else _time(closed_us),
        updated_at,
        version if type(version) is int and 1 <= version <= MAX_VERSION else _VERSION(version),
        history,
    )
    deal.__attrs_post_init__()
    return deal


def _plain_id(value: object) -> bool:
    """Whether ``value`` is an id ``check_id`` keeps as it is, seen at a glance: ASCII
    text, not too long, not blank, no NUL (anything else is left to ``check_id``)."""
    return (
        type(value) is str
        and value.isascii()
        and 0 < len(value) <= MAX_ID_LENGTH
        and "\x00" not in value
        and not value.isspace()
    )


def _time(value: object, known: object = None, known_time: datetime | None = None) -> datetime:
    """A stored time (integer microseconds), in the years ``to_utc`` accepts; ``known``
    is a time already built (``known_time``), reused when the value is the same.

    (``ONE_US * value`` is the same exact timedelta as ``timedelta(microseconds=value)``,
    made in two thirds of the time: no keywords to parse.)
    """
    if type(value) is not int or not _FIRST_US <= value <= _LAST_US:
        raise ValueError(f"a timestamp column holds {value!r}, not microseconds in range")
    if known_time is not None and value == known and type(known) is int:
        return known_time
    return EPOCH + ONE_US * value


def _bant(budget: object, authority: object, need: object, timeline: object) -> Bant:
    """The Bant of four stored flags (booleans, or SQLite's 0 and 1), one of sixteen."""
    flags = (budget, authority, need, timeline)
    if type(budget) is type(authority) is type(need) is type(timeline) is bool:
        return _BANTS[flags]  # type: ignore[index]
    return _BANTS[_flag(budget), _flag(authority), _flag(need), _flag(timeline)]


class _Known:
    """A Deal converter, its answers for the text (or None) it accepted remembered by
    value in ``answers``: names repeat from deal to deal, and a plain dict's lookup is
    the cheapest check there is (the decoders look there first; a dict subclass's
    subscript would go through Python). Only text and None are kept (no other value
    equals them), at most ``_KNOWN`` of them; anything else is converted, or refused,
    each time."""

    __slots__ = ("_convert", "answers")

    def __init__(self, convert: Callable[[Any], Any]) -> None:
        self.answers: dict[object, Any] = {}
        self._convert = convert

    def __call__(self, value: object) -> Any:
        answers = self.answers
        if value in answers:
            return answers[value]
        converted = self._convert(value)
        if type(value) is str or value is None:
            if len(answers) >= _KNOWN:
                answers.clear()
            answers[value] = converted
        return converted


_KNOWN: Final = 1024


_CONVERT: Final[dict[str, Callable[[Any], Any]]] = {
    a.name: cast(Callable[[Any], Any], a.converter) for a in attrs.fields(Deal)
}
_DEAL_ID: Final = _CONVERT["id"]
_PIPELINE: Final = _Known(_CONVERT["pipeline"])
_PIPELINES: Final = _PIPELINE.answers
_STAGE: Final = _Known(_CONVERT["stage"])
_STAGES: Final = _STAGE.answers
_AMOUNTS: Final = _Known(lambda text: _CONVERT["amount"](_amount(text)))
"""Amounts by their exact text (``Decimal`` values that are equal may differ in places)."""
_AMOUNT_VALUES: Final = _AMOUNTS.answers
_CURRENCY: Final = _Known(_CONVERT["currency"])
_CURRENCIES: Final = _CURRENCY.answers
_FIELDS: Final = _CONVERT["fields"]
_NO_FIELDS: Final = _FIELDS({})
_PROBABILITY: Final = _CONVERT["probability"]
_LOST_REASON: Final = _Known(_CONVERT["lost_reason"])
_NEXT_ACTION: Final = _CONVERT["next_action"]
_OWNER: Final = _Known(_CONVERT["owner"])
_OWNERS: Final = _OWNER.answers
_CLOSE_DATE: Final = _CONVERT["close_date"]
_FORECAST_CATEGORY: Final = _Known(_CONVERT["forecast_category"])
_VERSION: Final = _CONVERT["version"]
_BANTS: Final = {flags: Bant(*flags) for flags in itertools.product((False, True), repeat=4)}
"""Every Bant value, by its four flags: a stored deal's is one of the sixteen."""
_stored_deal: Final[Callable[..., Deal]] = generate(
    Deal,
    "stored_deal",
    "A Deal from a stored row's checked values (``_build``), without the converters.",
    given=tuple(a.name for a in attrs.fields(Deal)),
)
