"""Deals and their history: frozen values, validated on construction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Final

import attrs

from salespipeline import _checks as c
from salespipeline import limits
from salespipeline._currencies import CODES as CURRENCIES
from salespipeline._history import History
from salespipeline.errors import ValidationError, shown
from salespipeline.stages import LOST, STAGE_CATEGORIES, WON

__all__ = [
    "BANT_CRITERIA",
    "FORECAST_CATEGORIES",
    "STATE",
    "Bant",
    "Deal",
    "History",
    "StageChange",
    "chain_problem",
    "decode_value",
    "encode_value",
]

BANT_CRITERIA: Final = ("budget", "authority", "need", "timeline")
FORECAST_CATEGORIES: Final = ("pipeline", "best_case", "commit", "omitted", "closed")
"""The forecast categories, least to most certain; ``closed`` is WON's (LOST is omitted)."""


def _bool(instance: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise ValidationError(f"bant.{attribute.name} must be True or False, not {shown(value)}")


@attrs.frozen
class Bant:
    """BANT qualification: Budget, Authority, Need, Timeline."""

    budget: bool = attrs.field(default=False, validator=_bool)
    authority: bool = attrs.field(default=False, validator=_bool)
    need: bool = attrs.field(default=False, validator=_bool)
    timeline: bool = attrs.field(default=False, validator=_bool)

    @property
    def score(self) -> int:
        """How many of the four criteria are met (0-4)."""
        return self.budget + self.authority + self.need + self.timeline

    @property
    def missing(self) -> tuple[str, ...]:
        """The unmet criteria, in B-A-N-T order."""
        return tuple(name for name in BANT_CRITERIA if not getattr(self, name))

    @property
    def qualified(self) -> bool:
        """All four criteria are met."""
        return self.score == 4


def _stage_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _required_stage_name(instance, attribute, value)


def _required_stage_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    c.check_text(value, attribute.name, max_length=limits.MAX_NAME)


MAX_VERSION: Final = limits.MAX_VERSION
"""The highest version every store can keep (PostgreSQL's INTEGER column)."""


def _to_version(value: object) -> int:
    if not c.is_int(value) or not 1 <= value <= MAX_VERSION:
        raise ValidationError(
            f"version must be an integer from 1 to {MAX_VERSION}, not {shown(value)}"
        )
    return value


def to_actor(value: object, what: str = "actor") -> str | None:
    """Who made a change: None, or non-blank text within the text limit."""
    if value is None:  # most changes: every save checks its actor
        return None
    text = c.check_text(value, what)
    if not text.strip():
        raise ValidationError(f"{what} must not be blank (use None for nobody in particular)")
    return text


@attrs.frozen
class StageChange:
    """One entry in a deal's append-only history; ``from_stage`` is None on entry.

    ``actor`` is who made the move, when someone said so.
    """

    deal_id: str = attrs.field(converter=c.check_id)
    from_stage: str | None = attrs.field(validator=_stage_name)
    to_stage: str = attrs.field(validator=_required_stage_name)
    at: datetime = attrs.field(converter=c.to_utc)
    version: int = attrs.field(converter=_to_version)
    reason: str | None = attrs.field(default=None, converter=c.to_optional_text)
    actor: str | None = attrs.field(default=None, converter=to_actor)


History.entry_type = StageChange


def _to_bant(value: object) -> Bant:
    if not isinstance(value, Bant):
        raise ValidationError(f"bant must be a Bant, not {type(value).__name__}")
    return value


def _to_currency(value: object) -> str:
    if not isinstance(value, str) or len(value) != 3 or not value.isascii() or not value.isalpha():
        raise ValidationError(
            f"currency must be a three-letter code such as 'USD', not {shown(value)}"
        )
    code = value.upper()
    if code not in CURRENCIES:
        raise ValidationError(f"currency {value!r} is not an ISO 4217 currency code")
    return code


def _to_history(value: object) -> History:
    if isinstance(value, History):
        return value
    if not isinstance(value, Sequence) or not all(isinstance(v, StageChange) for v in value):
        raise ValidationError("history must be a sequence of StageChange")
    return History._trusted(list(value))


def _pipeline_name(value: object) -> str:
    return c.check_id(value, "pipeline")


def _stage(value: object) -> str:
    return c.check_id(value, "stage")


def _lost_reason(value: object) -> str | None:
    return c.to_optional_text(value, "lost_reason")


def _next_action(value: object) -> str | None:
    text = c.to_optional_text(value, "next_action")
    if text is not None and not text.strip():
        raise ValidationError("next_action must not be blank (use None for no next action)")
    return text


def _owner(value: object) -> str | None:
    return to_actor(value, "owner")


def _close_date(value: object) -> date | None:
    if value is None:
        return None
    if type(value) is not date:
        raise ValidationError(
            f"close_date must be a datetime.date (not a datetime), not {shown(value)}"
        )
    if not limits.MIN_YEAR <= value.year <= limits.MAX_YEAR:
        raise ValidationError(
            f"close_date {value.isoformat()} is outside the years {limits.MIN_YEAR}-"
            f"{limits.MAX_YEAR}"
        )
    return value


def to_forecast_category(value: object, what: str = "forecast_category") -> str | None:
    """None, or a category a deal may be put in (``stages.STAGE_CATEGORIES``: closing is
    for the stages WON and LOST to say)."""
    if value is None or (isinstance(value, str) and value in STAGE_CATEGORIES):
        return value
    raise ValidationError(f"{what} must be one of {list(STAGE_CATEGORIES)}, not {shown(value)}")


def _history_problem(deal: Deal) -> str | None:
    """Why the history does not describe this deal, or None when it does.

    Of a history loaded lazily only the entries in memory are checked here; the store
    checks the older ones when it reads them.
    """
    history = deal.history
    if not history:
        return "history must not be empty"
    entries = history.latest()
    whole = len(entries) == len(history)
    problem = chain_problem(deal.id, entries, created_at=deal.created_at if whole else None)
    if problem is not None:
        return problem
    last = entries[-1]
    if last.to_stage != deal.stage:
        return f"history ends in {last.to_stage!r} but the deal is in {deal.stage!r}"
    if last.version > deal.version:
        return f"history reaches v{last.version} beyond the deal's version {deal.version}"
    if last.at != deal.stage_entered_at:
        return "stage_entered_at must equal the time of the last history entry"
    if deal.updated_at < last.at:
        return "updated_at must not be before the last history entry"
    return None


def chain_problem(
    deal_id: str, entries: Sequence[StageChange], *, created_at: datetime | None = None
) -> str | None:
    """Why consecutive history ``entries`` of deal ``deal_id`` do not form a chain, or None.

    Each entry leaves the stage the one before it entered, at a higher version and
    no earlier. With ``created_at`` the entries begin the history: the first enters
    the deal's first stage at ``created_at``.
    """
    if created_at is not None and entries:
        if entries[0].from_stage is not None:
            return "the first history entry must have from_stage None"
        if entries[0].at != created_at:
            return "created_at must equal the time of the first history entry"
    previous: StageChange | None = None
    for change in entries:
        if change.deal_id != deal_id:
            return f"history entry v{change.version} belongs to deal {change.deal_id!r}"
        if previous is not None:
            if change.from_stage != previous.to_stage:
                return (
                    f"history is broken at v{change.version}: from {change.from_stage!r} "
                    f"after entering {previous.to_stage!r}"
                )
            if change.version <= previous.version:
                return f"history versions must rise (v{previous.version} then v{change.version})"
            if change.at < previous.at:
                return f"history runs backwards in time at v{change.version}"
        previous = change
    return None


def _closing_problem(deal: Deal) -> str | None:
    if deal.stage in (WON, LOST):
        if deal.closed_at is None:
            return f"a deal in {deal.stage!r} must have closed_at"
    elif deal.closed_at is not None:
        return "an open deal must not have closed_at"
    if deal.stage == LOST and deal.lost_reason is None:
        return "a lost deal must have a lost_reason"
    if deal.stage != LOST and deal.lost_reason is not None:
        return "only a lost deal has a lost_reason"
    return None


# Fields that only Pipeline operations (or a store loading a deal) may set.
_LIFECYCLE: Final = frozenset(
    {"id", "pipeline", "stage", "created_at", "stage_entered_at", "closed_at", "lost_reason"}
    | {"version", "history", "updated_at"}
)


@attrs.frozen(kw_only=True)
class Deal:
    """One opportunity in one pipeline, with its full stage history.

    Deals are made by ``Pipeline.start`` (or loaded by a store); constructing one by
    hand checks the same rules. Change fields with ``evolve``; move stages with a
    ``Pipeline`` operation.
    """

    id: str = attrs.field(kw_only=False, converter=c.check_id)
    pipeline: str = attrs.field(kw_only=False, converter=_pipeline_name)
    stage: str = attrs.field(kw_only=False, converter=_stage)
    amount: Decimal = attrs.field(default=Decimal(0), converter=c.to_amount)
    currency: str = attrs.field(default="USD", converter=_to_currency)
    bant: Bant = attrs.field(factory=Bant, converter=_to_bant)
    fields: Mapping[str, Any] = attrs.field(factory=c.FrozenMap, converter=c.to_fields)
    probability: float | None = attrs.field(default=None, converter=c.to_optional_probability)
    lost_reason: str | None = attrs.field(default=None, converter=_lost_reason)
    next_action: str | None = attrs.field(default=None, converter=_next_action)
    next_action_at: datetime | None = attrs.field(default=None, converter=c.to_optional_utc)
    owner: str | None = attrs.field(default=None, converter=_owner)
    close_date: date | None = attrs.field(default=None, converter=_close_date)
    forecast_category: str | None = attrs.field(default=None, converter=to_forecast_category)
    created_at: datetime = attrs.field(converter=c.to_utc)
    stage_entered_at: datetime = attrs.field(converter=c.to_utc)
    closed_at: datetime | None = attrs.field(default=None, converter=c.to_optional_utc)
    updated_at: datetime = attrs.field(
        default=attrs.Factory(lambda deal: deal.stage_entered_at, takes_self=True),
        converter=c.to_utc,
    )
    version: int = attrs.field(default=1, converter=_to_version)
    history: History = attrs.field(factory=History, converter=_to_history)

    def __attrs_post_init__(self) -> None:
        problem = _history_problem(self) or _closing_problem(self)
        if problem is not None:
            raise ValidationError(problem, deal_id=self.id)

    @property
    def is_open(self) -> bool:
        """True unless the deal is won or lost."""
        return self.stage != WON and self.stage != LOST

    def evolve(self, *, at: datetime | None = None, **changes: Any) -> Deal:
        """A copy with ``changes`` applied and validated, version + 1, no history entry.

        ``updated_at`` becomes ``at``, which must not be before the last change. Without
        ``at`` it stays as it is: the core reads no clock of its own, so code with an
        injected clock keeps working (the Tracker passes its clock's time). Stages and
        history change only through ``Pipeline`` operations.
        """
        refused = sorted(_LIFECYCLE.intersection(changes))
        if refused:
            raise ValidationError(
                f"{', '.join(refused)} cannot be changed with evolve(); "
                "move stages with a Pipeline operation",
                deal_id=self.id,
                field=refused[0],
            )
        unknown = sorted(set(changes) - _FIELD_NAMES)
        if unknown:
            raise ValidationError(f"Deal has no field {unknown[0]!r}", deal_id=self.id)
        when = (
            self.updated_at if at is None else c.not_before(at, self.updated_at, deal_id=self.id)
        )
        try:
            return attrs.evolve(self, version=self.version + 1, updated_at=when, **changes)
        except ValidationError as error:
            if error.deal_id is None:
                raise ValidationError(str(error), deal_id=self.id, field=error.field) from None
            raise

    def to_dict(self) -> dict[str, Any]:
        """The deal as JSON-compatible data keyed by attribute name; ``from_dict`` reverses it.

        Amounts are decimal strings, times ISO 8601 in UTC, dates ``YYYY-MM-DD``, each
        attribute as the change log records it; history entries omit the implied ``deal_id``.
        """
        data: dict[str, Any] = {"id": self.id}
        data.update((name, encode_value(name, getattr(self, name))) for name in _DICT_STATE)
        data["history"] = [_entry_dict(entry) for entry in self.history]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Deal:
        """The deal ``to_dict`` wrote, checked as every Deal is.

        Unknown or missing keys and bad values are a ``ValidationError`` whose ``field``
        is the key (``history[2].at`` inside the history), before a Deal is built.
        """
        return _deal_from_dict(cls, data)


_FIELD_NAMES: Final = frozenset(a.name for a in attrs.fields(Deal))

STATE: Final = tuple(
    a.name for a in attrs.fields(Deal) if a.name not in {"id", "updated_at", "version", "history"}
)
"""The attributes a change log entry records (``id``, ``version``, ``updated_at`` and
``history`` are the change's own ``deal_id``, ``version``, ``at`` and stage moves)."""

_TIMES: Final = frozenset(
    {"next_action_at", "created_at", "stage_entered_at", "closed_at", "updated_at"}
)


_LAST_TIME: Final[list[tuple[object, str]]] = [(None, "")]
"""The time ``_encode_time`` encoded last and its text (held, so its identity is its own)."""


def _encode_time(value: datetime) -> str:
    """A time as JSON: ISO 8601 with its (UTC) offset.

    ``isoformat`` is slow for an aware time, and a move encodes the stage's entry
    time twice: as the new value of one change, then as the old value of the next,
    the very same object. So the last one encoded is kept with its text, and a time
    that *is* it (not merely equal: identity, never a lookup) is not encoded again.
    """
    last = _LAST_TIME[0]
    if last[0] is value:
        return last[1]
    text = _iso_text(value)
    _LAST_TIME[0] = (value, text)
    return text


_ISO_UTC: Final = "%sT%02d:%02d:%02d.%06d+00:00"
_DAY_TEXT: Final[dict[int, str]] = {}
"""The ISO text of the days ``_iso_text`` wrote, by ordinal (a bounded few)."""


def _iso_text(value: datetime) -> str:
    """``value.isoformat()``, which a UTC time with microseconds is written as from its
    fields and its day's remembered text: a third cheaper, and every save writes one."""
    if value.tzinfo is not timezone.utc or not value.microsecond:
        return value.isoformat()
    ordinal = value.toordinal()
    day = _DAY_TEXT.get(ordinal)
    if day is None:
        day = value.date().isoformat()
        if len(_DAY_TEXT) < 4096:
            _DAY_TEXT[ordinal] = day
    return _ISO_UTC % (day, value.hour, value.minute, value.second, value.microsecond)


def encode_value(name: str, value: Any) -> Any:
    """Attribute ``name``'s ``value`` as JSON-compatible data (as ``Deal.to_dict`` has it)."""
    if value is None:
        return None
    if name in _TIMES:
        return _encode_time(value)
    if name == "amount":
        return str(value)
    if name == "bant":
        return {criterion: getattr(value, criterion) for criterion in BANT_CRITERIA}
    if name == "fields":
        return c.thaw(value)
    if name == "close_date":
        return value.isoformat()
    return value


def decode_value(name: str, data: Any) -> Any:
    """``encode_value`` reversed; the result is checked again when a Deal is built."""
    if data is None:
        return None
    if name in _TIMES:
        return _decode_time(data, name)
    if name == "bant":
        if not isinstance(data, Mapping) or set(data) - set(BANT_CRITERIA):
            raise ValidationError(f"bant must be a mapping of {list(BANT_CRITERIA)} to booleans")
        return Bant(**data)
    if name == "close_date":
        if not isinstance(data, str):
            raise ValidationError(f"close_date must be an ISO date text, not {shown(data)}")
        try:
            return date.fromisoformat(data)
        except ValueError:
            raise ValidationError(f"close_date {shown(data)} is not an ISO date") from None
    if name == "probability" and c.is_int(data):
        return c.to_probability(data)  # float() of a huge integer overflows
    return data


def _decode_time(data: object, what: str) -> datetime:
    if not isinstance(data, str):
        raise ValidationError(f"{what} must be ISO 8601 text, not {shown(data)}")
    try:
        moment = datetime.fromisoformat(data)
    except ValueError:
        raise ValidationError(f"{what} {shown(data)} is not an ISO 8601 time") from None
    return c.to_utc(moment, what)


# -- Deal.to_dict / Deal.from_dict ------------------------------------------------------

_DICT_STATE: Final = (*STATE, "updated_at", "version")
"""The keys of ``to_dict`` between ``id`` and ``history``, each encoded by ``encode_value``."""

_DICT_KEYS: Final = frozenset({"id", *_DICT_STATE, "history"})
_REQUIRED_KEYS: Final = tuple(
    a.name for a in attrs.fields(Deal) if a.default is attrs.NOTHING or a.name == "history"
)
_Check = Callable[[Any], Any]
_CONVERTERS: Final[Mapping[str, Any]] = {a.name: a.converter for a in attrs.fields(Deal)}
"""Each attribute's converter: ``from_dict`` checks each key alone, to name it when refused."""


def _deal_from_dict(cls: type[Deal], data: object) -> Deal:
    _check_keys(data, _DICT_KEYS, _REQUIRED_KEYS, "Deal.from_dict data")
    assert isinstance(data, Mapping)
    deal_id = _keyed("id", None, c.check_id, data["id"])
    values = {
        name: _keyed(name, deal_id, _decoded_attribute(name), data[name])
        for name in _DICT_STATE
        if name in data
    }
    history = _history_from_dict(deal_id, data["history"])
    return cls(deal_id, history=history, **values)


def _check_keys(
    data: object, known: frozenset[str], required: Sequence[str], what: str, *, at: str = ""
) -> None:
    """Refuse ``data`` unless it is a mapping holding every ``required`` key and no unknown one."""
    if not isinstance(data, Mapping):
        raise ValidationError(
            f"{what} must be a mapping, not {type(data).__name__}", field=at.rstrip(".") or None
        )
    unknown = [key for key in data if not (isinstance(key, str) and key in known)]
    if unknown:
        key = unknown[0] if isinstance(unknown[0], str) else shown(unknown[0])
        raise ValidationError(f"{what} has an unknown key {shown(unknown[0])}", field=f"{at}{key}")
    missing = [key for key in required if key not in data]
    if missing:
        raise ValidationError(f"{what} lacks the key {missing[0]!r}", field=f"{at}{missing[0]}")


def _decoded_attribute(name: str) -> _Check:
    """Decode a ``to_dict`` value of attribute ``name`` and check it as the Deal will."""
    convert = _CONVERTERS[name]
    return lambda data: convert(decode_value(name, data))


def _keyed(key: str, deal_id: str | None, check: _Check, data: object) -> Any:
    """``check(data)``, a refusal re-raised naming ``key`` (its ``field`` and its message)."""
    try:
        return check(data)
    except ValidationError as error:
        message = str(error).removeprefix(f"deal {deal_id!r}: ")
        name = key.rsplit(".", 1)[-1]
        if message.startswith(f"{name} "):
            message = key + message.removeprefix(name)
        elif not message.startswith(key):
            message = f"{key}: {message}"
        raise ValidationError(message, deal_id=deal_id, field=key) from None


def _entry_dict(entry: StageChange) -> dict[str, Any]:
    return {
        "from_stage": entry.from_stage,
        "to_stage": entry.to_stage,
        "at": _encode_time(entry.at),
        "version": entry.version,
        "reason": entry.reason,
        "actor": entry.actor,
    }


def _entry_to_stage(value: object) -> str:
    return c.check_text(value, "to_stage", max_length=limits.MAX_NAME)


def _entry_from_stage(value: object) -> str | None:
    return None if value is None else c.check_text(value, "from_stage", max_length=limits.MAX_NAME)


_ENTRY_CHECKS: Final[Mapping[str, _Check]] = {
    "from_stage": _entry_from_stage,
    "to_stage": _entry_to_stage,
    "at": lambda data: _decode_time(data, "at"),
    "version": _to_version,
    "reason": lambda data: c.to_optional_text(data, "reason"),
    "actor": to_actor,
}
_ENTRY_KEYS: Final = frozenset(_ENTRY_CHECKS)


def _history_from_dict(deal_id: str, data: object) -> tuple[StageChange, ...]:
    if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
        raise ValidationError(
            f"Deal.from_dict: history must be a list, not {type(data).__name__}",
            deal_id=deal_id,
            field="history",
        )
    return tuple(_entry_from_dict(deal_id, f"history[{i}]", entry) for i, entry in enumerate(data))


def _entry_from_dict(deal_id: str, at: str, data: object) -> StageChange:
    try:
        _check_keys(data, _ENTRY_KEYS, ("to_stage", "at", "version"), at, at=f"{at}.")
    except ValidationError as error:
        raise ValidationError(str(error), deal_id=deal_id, field=error.field) from None
    assert isinstance(data, Mapping)
    values = {
        key: _keyed(f"{at}.{key}", deal_id, check, data[key])
        for key, check in _ENTRY_CHECKS.items()
        if key in data
    }
    return StageChange(deal_id, values.pop("from_stage", None), **values)


def checked_deals(deals: object, what: str) -> Iterator[Deal]:
    """``deals`` streamed, each checked to be a Deal; a non-iterable is refused at once.

    For the functions that take "an iterable of deals": a ``ValidationError`` naming
    ``what`` instead of a ``TypeError`` or ``AttributeError`` from deep inside them.
    """
    if isinstance(deals, (str, bytes, Mapping)) or not isinstance(deals, Iterable):
        raise ValidationError(f"{what} takes an iterable of Deal, not {type(deals).__name__}")
    return _each_deal(deals, what)


def _each_deal(deals: Iterable[object], what: str) -> Iterator[Deal]:
    for deal in deals:
        if not isinstance(deal, Deal):
            raise ValidationError(f"{what} takes Deal values, not {shown(deal)}")
        yield deal
