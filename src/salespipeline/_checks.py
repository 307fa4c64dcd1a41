"""Field checks and converters shared by the value classes (private)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from decimal import Context, Decimal, InvalidOperation
from typing import Any, Final, TypeGuard

from salespipeline import limits
from salespipeline.errors import ValidationError, shown

MAX_ID_LENGTH = limits.MAX_TEXT
MAX_TEXT_LENGTH = limits.MAX_TEXT
MAX_AMOUNT = Decimal(10) ** limits.MAX_AMOUNT_DIGITS
_PLACES = Decimal(1).scaleb(-limits.MAX_AMOUNT_PLACES)
_UNIT = Decimal(1)
_ZERO = Decimal(0)
_UTC = timezone.utc
_AMOUNTS = Context(prec=limits.MAX_AMOUNT_DIGITS + limits.MAX_AMOUNT_PLACES + 2, traps=[])
"""Amounts are normalised in this context, never the caller's (whose precision may be 3)."""

JSONValue = Any


def is_int(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an integer proper: ``bool`` is an ``int`` subclass, and refused."""
    return isinstance(value, int) and not isinstance(value, bool)


def to_position(value: object, name: str = "position", *, least: int = 0) -> int:
    """A log position (or an ``after`` one): an integer from ``least`` to
    ``limits.MAX_POSITION``, what every backend's position column holds."""
    if not is_int(value) or not least <= value <= limits.MAX_POSITION:
        raise ValidationError(
            f"{name} must be an integer from {least} to {limits.MAX_POSITION:,}, "
            f"not {shown(value)}"
        )
    return value


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is an int or a float, and not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_text(value: object, what: str, *, max_length: int = MAX_TEXT_LENGTH) -> str:
    """A string that storage backends can keep verbatim (no NUL, valid Unicode, bounded)."""
    problem = text_problem(value, what, max_length=max_length)
    if problem is not None:
        raise ValidationError(problem)
    assert isinstance(value, str)
    return value


def text_problem(value: object, what: str, *, max_length: int = MAX_TEXT_LENGTH) -> str | None:
    """Why ``value`` is not text every backend keeps alike, or None when it is."""
    if not isinstance(value, str):
        return f"{what} must be a string, not {type(value).__name__}"
    if len(value) > max_length:
        return f"{what} is longer than {max_length:,} characters"
    if "\x00" in value:
        return f"{what} must not contain NUL characters"
    if not value.isascii() and not is_encodable(value):
        return f"{what} is not valid Unicode text (it holds a lone surrogate)"
    return None


def is_encodable(text: str) -> bool:
    """Whether ``text`` is valid UTF-8 material (no lone surrogates), as every database needs."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_id(value: object, what: str = "deal id") -> str:
    """A deal id (or a key): text every backend keeps alike, not blank, at most
    ``MAX_ID_LENGTH`` characters. A plainly valid one (ASCII) is seen at a glance:
    every command checks one."""
    if (
        type(value) is str
        and value.isascii()
        and len(value) <= MAX_ID_LENGTH
        and "\x00" not in value
        and not value.isspace()
        and value
    ):
        return value
    text = check_text(value, what, max_length=MAX_ID_LENGTH)
    if not text.strip():
        raise ValidationError(f"{what} must not be blank")
    return text


def to_amount(value: object) -> Decimal:
    """An exact, finite, non-negative Decimal in canonical form; ints and decimal strings too.

    At most ``limits.MAX_AMOUNT_DIGITS`` digits before the point and
    ``MAX_AMOUNT_PLACES`` after it. A positive exponent is expanded (``"1e3"`` is
    ``1000``, ``"0E+20000000"`` is ``0``), so no stored amount carries an exponent
    that later arithmetic would have to unfold.
    """
    value = _to_decimal(value)
    if not value.is_finite():
        raise ValidationError(f"amount must be finite, not {value}")
    if value < 0:
        raise ValidationError(f"amount must not be negative, got {_amount_text(value)}")
    if value >= MAX_AMOUNT:
        raise ValidationError(f"amount {_amount_text(value)} is too large {_LIMIT}")
    if value.is_zero():
        value = value.copy_abs()  # "-0" is zero, kept with its places ("0.00")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if exponent > 0:
        return value.quantize(_UNIT, context=_AMOUNTS)
    if exponent < -limits.MAX_AMOUNT_PLACES:
        exact = value.quantize(_PLACES, context=_AMOUNTS)
        if exact != value:
            raise ValidationError(
                f"amount {_amount_text(value)} has more than {limits.MAX_AMOUNT_PLACES} "
                "decimal places"
            )
        return exact
    return value


_LIMIT = f"(limit {MAX_AMOUNT - 1:,})"


def _amount_text(value: Decimal) -> str:
    """The amount as a message shows it: in full, or in scientific form when it is long."""
    return str(value) if len(value.as_tuple().digits) <= 40 else f"{value:.6E}"


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, (bool, float)):
        raise ValidationError(
            f"amount must be a Decimal, int or decimal string, not {value!r} (no floats)"
        )
    if isinstance(value, int):
        if abs(value) >= MAX_AMOUNT:
            raise ValidationError(f"amount {shown(value)} is too large {_LIMIT}")
        return Decimal(value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 64:
            raise ValidationError("amount text is too long")
        try:
            return Decimal(text)
        except InvalidOperation:
            raise ValidationError(f"amount {text!r} is not a decimal number") from None
    if not isinstance(value, Decimal):
        raise ValidationError(
            f"amount must be a Decimal, int or decimal string, not {type(value).__name__}"
        )
    return value


def to_utc(value: object, what: str = "timestamp") -> datetime:
    """An aware datetime, normalised to UTC, in years ``limits.MIN_YEAR``-``MAX_YEAR``.

    Naive datetimes are refused, and so is a tzinfo whose offset is not a timedelta
    or whose conversion leaves the calendar.
    """
    if type(value) is datetime and value.tzinfo is _UTC and value.year <= limits.MAX_YEAR:
        return value
    if not isinstance(value, datetime):
        raise ValidationError(f"{what} must be a datetime, not {type(value).__name__}")
    wall = datetime(  # a plain datetime without the zone (timetuple() would call dst())
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )
    try:
        offset = value.utcoffset()
    except Exception as error:  # the tzinfo is code: an int offset, ±24 h, or it raised
        raise ValidationError(
            f"{what} has a time zone that cannot convert it to UTC: {type(error).__name__}: "
            f"{error}"
        ) from error
    if offset is None:
        raise ValidationError(f"{what} must be timezone-aware (got naive {wall.isoformat()})")
    try:
        utc = (wall - offset).replace(tzinfo=_UTC)
    except OverflowError:  # before year 1 or after 9999
        utc = None
    if utc is None or not limits.MIN_YEAR <= utc.year <= limits.MAX_YEAR:
        raise ValidationError(
            f"{what} {wall.isoformat()} (UTC offset {offset}) is outside the years "
            f"{limits.MIN_YEAR}-{limits.MAX_YEAR} in UTC"
        )
    return utc


def not_before(at: object, last: datetime, *, deal_id: str) -> datetime:
    """``at`` in UTC, refused when it is before ``last``: a deal's time never runs backwards."""
    when = to_utc(at, "at")
    if when < last:
        raise ValidationError(
            f"time runs backwards: {when.isoformat()} is before the deal's last change "
            f"at {last.isoformat()}",
            deal_id=deal_id,
            field="at",
        )
    return when


def to_optional_utc(value: object) -> datetime | None:
    return None if value is None else to_utc(value)


def to_probability(value: object, what: str = "probability") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValidationError(f"{what} must be a number, not {shown(value)}")
    try:
        number = float(value)
    except (ValueError, OverflowError):  # signalling NaN, or an int beyond any float
        number = math.nan
    if not (0.0 <= number <= 1.0):
        raise ValidationError(f"{what} must be between 0 and 1, got {shown(value)}")
    return number


def to_optional_probability(value: object) -> float | None:
    return None if value is None else to_probability(value)


def to_optional_text(value: object, what: str = "text") -> str | None:
    return None if value is None else check_text(value, what)


class FrozenMap(Mapping[str, JSONValue]):
    """A read-only, hashable, picklable mapping (custom fields and nested objects)."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, JSONValue] = {}) -> None:
        self._data = dict(data)
        self._hash: int | None = None

    @classmethod
    def _owning(cls, data: dict[str, JSONValue]) -> FrozenMap:
        """A FrozenMap of ``data`` itself, not a copy: for a dict just made that no one
        else holds (a save's ``changed``)."""
        made = cls.__new__(cls)
        made._data, made._hash = data, None
        return made

    def __getitem__(self, key: str) -> JSONValue:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return repr(self._data)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (self._data,))

    def thaw(self) -> dict[str, JSONValue]:
        """A plain, mutable, JSON-ready copy (nested maps and tuples thawed too)."""
        return {k: thaw(v) for k, v in self._data.items()}


def thaw(value: JSONValue) -> JSONValue:
    if isinstance(value, FrozenMap):
        return value.thaw()
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def freeze_json(value: object, path: str) -> JSONValue:
    """A deep read-only copy of a JSON-compatible value; anything else is refused.

    Bounded like stored ``fields``: nesting up to ``limits.MAX_DEPTH``, and at most
    ``limits.MAX_FIELDS_BYTES`` of content (integer digits included), counted as it
    is copied so an oversized value is refused before it is all read.
    """
    return _Freezer(path).freeze(value, path, 0)


_MAX_INT_BITS = 14_000
"""About 4,200 decimal digits: under the 4,300 Python converts to text by default."""


class _Freezer:
    __slots__ = ("budget", "root")

    def __init__(self, root: str) -> None:
        self.root = root
        self.budget = limits.MAX_FIELDS_BYTES

    def spend(self, size: int) -> None:
        self.budget -= size
        if self.budget < 0:
            raise ValidationError(
                f"{self.root} are larger than {limits.MAX_FIELDS_BYTES // 1024} KiB encoded"
            )

    def freeze(self, value: object, path: str, depth: int) -> JSONValue:
        if depth > limits.MAX_DEPTH:
            raise ValidationError(f"{path} is nested more than {limits.MAX_DEPTH} levels deep")
        self.spend(1)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            bits = value.bit_length()
            if bits > _MAX_INT_BITS:
                raise ValidationError(f"{path}: integer of {bits:,} bits is too long to store")
            self.spend(bits // 3)  # at least its decimal digits
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValidationError(f"{path} must be a finite number, not {value!r}")
            return value
        if isinstance(value, str):
            self.spend(len(value))
            return check_text(value, path, max_length=limits.MAX_FIELDS_BYTES)
        if isinstance(value, (list, tuple)):
            return tuple(self.freeze(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))
        if isinstance(value, Mapping):
            return FrozenMap(
                {
                    self.key(k, path): self.freeze(v, f"{path}.{k}", depth + 1)
                    for k, v in value.items()
                }
            )
        raise ValidationError(f"{path} must be JSON-compatible, not {type(value).__name__}")

    def key(self, key: object, path: str) -> str:
        text = check_text(key, f"key in {path}", max_length=MAX_ID_LENGTH)
        self.spend(len(text))
        return text


def data_problem(value: object, what: str) -> str | None:
    """Why parsers may not walk ``value``: nested past ``limits.MAX_DEPTH``, or keyed by non-text.

    Walked without recursion and stopped at the limit, so a self-containing list is
    refused like any other value nested too deeply.
    """
    todo: list[tuple[object, int]] = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, Mapping):
            key = next((k for k in item if not isinstance(k, str)), None)
            if key is not None:
                return f"{what} has a key that is not text: {shown(key)}"
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if children and depth >= limits.MAX_DEPTH:
            return f"{what} is nested more than {limits.MAX_DEPTH} levels deep"
        todo.extend((child, depth + 1) for child in children)
    return None


def to_fields(value: object) -> FrozenMap:
    if isinstance(value, FrozenMap):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError(f"fields must be a mapping, not {type(value).__name__}")
    if not value:  # most deals have none: one shared empty map, nothing to check
        return _NO_FIELDS
    frozen = freeze_json(value, "fields")
    assert isinstance(frozen, FrozenMap)
    if len(_compact(frozen.thaw()).encode()) > limits.MAX_FIELDS_BYTES:
        raise ValidationError(
            f"fields are larger than {limits.MAX_FIELDS_BYTES // 1024} KiB encoded"
        )
    return frozen


_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_NO_FIELDS: Final = FrozenMap()


def is_empty(value: JSONValue) -> bool:
    """Missing for ``requires_fields``: None, a blank string, an empty list or mapping."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (tuple, list, Mapping)):
        return len(value) == 0
    return False


def check_positive_timedelta(value: object, what: str) -> timedelta:
    if not isinstance(value, timedelta):
        raise ValidationError(f"{what} must be a timedelta, not {type(value).__name__}")
    if value <= timedelta(0):
        raise ValidationError(f"{what} must be positive")
    return value
