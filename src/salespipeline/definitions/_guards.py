"""Guards as data: a registered kind plus parameters, and back again (private).

Only kinds in the ``guards`` registry (and the ``all_of``/``any_of`` combinators)
can be read: data names a kind, never code, so reading a definition can only call
factories that the application registered itself.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from salespipeline.errors import ValidationError
from salespipeline.guards import AllOf, AnyOf, Guard, all_of, any_of, registered

COMBINATORS: Final[dict[str, Callable[..., Guard]]] = {"all_of": all_of, "any_of": any_of}
MAX_DEPTH: Final = 16
_LIST_OF_TEXT: Final = {"bant": "criteria", "requires_fields": "names"}
_INT64: Final = 2**63


class NotData(Exception):
    """A guard that cannot be written as data; the message says which and why."""


# -- guard -> data -------------------------------------------------------------------


def to_spec(guard: Guard) -> dict[str, Any]:
    """``{"guard": kind, **parameters}``; combinators nest their guards."""
    if isinstance(guard, (AllOf, AnyOf)):
        kind = "all_of" if isinstance(guard, AllOf) else "any_of"
        return {"guard": kind, "guards": [to_spec(g) for g in guard.guards]}
    spec = getattr(guard, "spec", None)
    if not callable(spec):
        return _registered_spec(guard)
    try:
        data = spec()
    except Exception as error:
        name = getattr(guard, "name", repr(guard))
        raise NotData(f"guard {name!r}: spec() raised {type(error).__name__}: {error}") from None
    return _checked_spec(guard, data)


def _checked_spec(guard: Guard, data: object) -> dict[str, Any]:
    name = getattr(guard, "name", repr(guard))
    if not isinstance(data, Mapping) or not isinstance(data.get("guard"), str):
        raise NotData(f"guard {name!r}: spec() must return a table with a 'guard' kind name")
    kind = data["guard"]
    if kind not in registered():
        raise NotData(
            f"guard {name!r}: spec() names kind {kind!r}, which is not registered "
            "(use guards.register)"
        )
    try:
        return {str(k): plain(v, k) for k, v in data.items()}
    except ValueError as error:
        raise NotData(f"guard {name!r}: spec() is not TOML-safe data: {error}") from None


def _registered_spec(guard: Guard) -> dict[str, Any]:
    """A guard without ``spec()`` is data only if its registered kind rebuilds it from nothing."""
    name = getattr(guard, "name", None)
    factory = registered().get(name) if isinstance(name, str) else None
    if factory is not None:
        try:
            if factory() == guard:
                return {"guard": name}
        except Exception:  # a factory that needs parameters cannot rebuild it
            pass
    raise NotData(
        f"guard {name!r} cannot be written as data: give it a spec() method that returns "
        "its registered kind and parameters (see guards.register)"
    )


def plain(value: object, where: object) -> Any:
    """A deep copy of ``value`` as TOML-safe data (tuples become lists); else ValueError."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ValueError(f"{where}: integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not a finite number")
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v, f"{where}.{k}") for k, v in value.items()}
    raise ValueError(f"{where}: {type(value).__name__} is not TOML-safe data")


# -- data -> guard -------------------------------------------------------------------


def known_kinds() -> list[str]:
    return sorted(set(registered()) | set(COMBINATORS))


def read_all(value: object, where: str, problems: list[str]) -> tuple[Guard, ...]:
    """The guards of a ``requires`` list; unreadable ones are reported and left out."""
    if not isinstance(value, (list, tuple)):
        return ()
    found = [read(spec, f"{where}: requires[{i}]", problems) for i, spec in enumerate(value)]
    return tuple(g for g in found if g is not None)


def read(spec: object, where: str, problems: list[str], depth: int = 0) -> Guard | None:
    """The guard ``spec`` describes, or None with the reasons appended to ``problems``."""
    if depth > MAX_DEPTH:
        problems.append(f"{where}: guards are nested more than {MAX_DEPTH} deep")
        return None
    split = _split(spec, where, problems)
    if split is None:
        return None
    kind, params = split
    if kind in COMBINATORS:
        return _read_combinator(kind, params, where, problems, depth)
    factory = registered().get(kind)
    if factory is None:
        problems.append(f"{where}: unknown guard {kind!r}; known kinds: {known_kinds()}")
        return None
    return _build(kind, factory, params, where, problems)


def _split(spec: object, where: str, problems: list[str]) -> tuple[str, dict[str, Any]] | None:
    if isinstance(spec, str):
        return spec, {}
    if not isinstance(spec, Mapping):
        problems.append(f"{where}: a guard must be a table such as {{guard = 'bant'}}")
        return None
    kind = spec.get("guard")
    if not isinstance(kind, str):
        problems.append(f"{where}: the guard table needs a 'guard' key naming its kind")
        return None
    return kind, {str(k): v for k, v in spec.items() if k != "guard"}


def _read_combinator(
    kind: str, params: dict[str, Any], where: str, problems: list[str], depth: int
) -> Guard | None:
    extra = sorted(set(params) - {"guards"})
    items = params.get("guards")
    if extra:
        problems.append(f"{where}: {kind} takes only 'guards', not {extra}")
    if not isinstance(items, (list, tuple)) or not items:
        problems.append(f"{where}: {kind} needs a non-empty list 'guards'")
        return None
    inner = [
        read(item, f"{where}.guards[{i}]", problems, depth + 1) for i, item in enumerate(items)
    ]
    if extra or any(g is None for g in inner):
        return None
    return COMBINATORS[kind](*inner)


def _build(
    kind: str,
    factory: Callable[..., Guard],
    params: dict[str, Any],
    where: str,
    problems: list[str],
) -> Guard | None:
    problem = _param_problem(kind, factory, params)
    if problem is None:
        try:
            guard = factory(**params)
        except ValidationError as error:
            problem = str(error)
        except Exception as error:
            problem = f"its factory raised {type(error).__name__}: {error}"
        else:
            if isinstance(guard, Guard) and isinstance(getattr(guard, "name", None), str):
                return guard
            problem = f"its factory returned {guard!r}, not a guard"
    problems.append(f"{where}: guard {kind!r}: {problem}")
    return None


def _param_problem(kind: str, factory: Callable[..., Guard], params: dict[str, Any]) -> str | None:
    try:
        inspect.signature(factory).bind(**params)
    except TypeError as error:
        return f"bad parameters ({error})"
    except ValueError:  # no signature to check against; the factory will tell
        pass
    key = _LIST_OF_TEXT.get(kind)
    if key in params:
        value = params[key]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            return f"{key} must be a list of strings, not {value!r}"
    return None
