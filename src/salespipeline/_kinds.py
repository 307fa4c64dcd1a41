"""Values written as data by the name of their kind, and read back (private).

A ``Kinds`` registry holds the kinds that data may name: guards under the key
``"guard"``, scoring rules under ``"rule"``. A value is written as
``{key: kind, **parameters}`` by its ``spec()``; reading calls only a registered
factory, checks the parameter names against its signature first, and collects
every problem as a string that starts with where it was found.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Generic, TypeGuard, TypeVar

from salespipeline.errors import ValidationError

__all__ = ["MAX_DEPTH", "Kinds", "NotData", "plain"]

T = TypeVar("T")
MAX_DEPTH: Final = 16
_INT64: Final = 2**63


class NotData(Exception):
    """A value that cannot be written as data; the message says which and why."""


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


class Kinds(Generic[T]):
    """The kinds of ``T`` data may name, each a factory taking the kind's parameters.

    ``combinators`` take their parts, nested specs, as a list under the plural key
    (``{"guard": "all_of", "guards": [...]}``). ``register_with`` names the public
    function that registers a kind, for the messages.
    """

    __slots__ = ("_accepts", "combinators", "factories", "key", "register_with")

    def __init__(
        self,
        key: str,
        accepts: Callable[[object], TypeGuard[T]],
        factories: dict[str, Callable[..., T]],
        *,
        combinators: Mapping[str, Callable[..., T]] | None = None,
        register_with: str = "",
    ) -> None:
        self.key = key
        self.factories = factories
        self.combinators = dict(combinators or {})
        self.register_with = register_with
        self._accepts = accepts

    # -- the registry ------------------------------------------------------------------

    def register(self, name: str, factory: Callable[..., T]) -> None:
        """Make ``name`` a kind data may name; ``factory(**parameters)`` builds its values."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValidationError(f"{self.key} kind name must be an identifier, not {name!r}")
        if not callable(factory):
            raise ValidationError(f"{self.key} kind {name!r}: factory must be callable")
        self.factories[name] = factory

    def known(self) -> list[str]:
        """Every kind name data may use, combinators included, sorted."""
        return sorted(set(self.factories) | set(self.combinators))

    # -- value -> data -----------------------------------------------------------------

    def write(self, value: object) -> dict[str, Any]:
        """``{key: kind, **parameters}`` from the value's ``spec()``; ``NotData`` says why not."""
        spec = getattr(value, "spec", None)
        if not callable(spec):
            return self._by_name(value)
        try:
            data = spec()
        except NotData:
            raise
        except Exception as error:
            cause = f"{type(error).__name__}: {error}"
            raise NotData(f"{self._label(value)}: spec() raised {cause}") from None
        return self._checked(value, data)

    def _checked(self, value: object, data: object) -> dict[str, Any]:
        label = self._label(value)
        if not isinstance(data, Mapping) or not isinstance(data.get(self.key), str):
            raise NotData(f"{label}: spec() must return a table with a {self.key!r} kind name")
        kind = data[self.key]
        if kind not in self.factories and kind not in self.combinators:
            raise NotData(
                f"{label}: spec() names kind {kind!r}, which is not registered{self._hint('use')}"
            )
        try:
            return {str(k): plain(v, k) for k, v in data.items()}
        except ValueError as error:
            raise NotData(f"{label}: spec() is not TOML-safe data: {error}") from None

    def _by_name(self, value: object) -> dict[str, Any]:
        """Without ``spec()``, a value is data if the kind it names rebuilds it from nothing."""
        name = getattr(value, "name", None)
        factory = self.factories.get(name) if isinstance(name, str) else None
        if factory is not None:
            try:
                if factory() == value:
                    return {self.key: name}
            except Exception:  # a factory that needs parameters cannot rebuild it
                pass
        raise NotData(
            f"{self._label(value)} cannot be written as data: give it a spec() method that "
            f"returns its registered kind and parameters{self._hint('see')}"
        )

    def _label(self, value: object) -> str:
        return f"{self.key} {getattr(value, 'name', repr(value))!r}"

    def _hint(self, verb: str) -> str:
        return f" ({verb} {self.register_with})" if self.register_with else ""

    # -- data -> value -----------------------------------------------------------------

    def read_list(self, specs: Sequence[object], where: str, problems: list[str]) -> tuple[T, ...]:
        """The values ``specs`` describe, ``where[i]`` each; unreadable ones are left out."""
        found = [self.read(spec, f"{where}[{i}]", problems) for i, spec in enumerate(specs)]
        return tuple(v for v in found if v is not None)

    def read(self, spec: object, where: str, problems: list[str], depth: int = 0) -> T | None:
        """The value ``spec`` describes, or None with the reasons appended to ``problems``."""
        if depth > MAX_DEPTH:
            problems.append(f"{where}: {self.key}s are nested more than {MAX_DEPTH} deep")
            return None
        split = self._split(spec, where, problems)
        if split is None:
            return None
        kind, params = split
        if kind in self.combinators:
            return self._combine(kind, params, where, problems, depth)
        if kind not in self.factories:
            problems.append(f"{where}: unknown {self.key} {kind!r}; known kinds: {self.known()}")
            return None
        return self._build(kind, params, where, problems)

    def _split(
        self, spec: object, where: str, problems: list[str]
    ) -> tuple[str, dict[str, Any]] | None:
        """A kind and its parameters; a bare string is a kind without parameters."""
        if isinstance(spec, str):
            return spec, {}
        if not isinstance(spec, Mapping):
            example = next(iter(self.factories), "name")
            problems.append(
                f"{where}: a {self.key} must be a table such as {{{self.key} = {example!r}}}"
            )
            return None
        kind = spec.get(self.key)
        if not isinstance(kind, str):
            problems.append(
                f"{where}: the {self.key} table needs a {self.key!r} key naming its kind"
            )
            return None
        return kind, {str(k): v for k, v in spec.items() if k != self.key}

    def _combine(
        self, kind: str, params: dict[str, Any], where: str, problems: list[str], depth: int
    ) -> T | None:
        parts = f"{self.key}s"
        extra = sorted(set(params) - {parts})
        if extra:
            problems.append(f"{where}: {kind} takes only {parts!r}, not {extra}")
        items = params.get(parts)
        if not isinstance(items, (list, tuple)) or not items:
            problems.append(f"{where}: {kind} needs a non-empty list {parts!r}")
            return None
        inner = [
            self.read(item, f"{where}.{parts}[{i}]", problems, depth + 1)
            for i, item in enumerate(items)
        ]
        if extra or any(v is None for v in inner):
            return None
        return self.combinators[kind](*inner)

    def _build(
        self, kind: str, params: dict[str, Any], where: str, problems: list[str]
    ) -> T | None:
        factory = self.factories[kind]
        problem = _parameter_problem(factory, params)
        if problem is None:
            value, problem = self._call(factory, params)
            if value is not None:
                return value
        problems.append(f"{where}: {self.key} {kind!r}: {problem}")
        return None

    def _call(self, factory: Callable[..., T], params: dict[str, Any]) -> tuple[T | None, str]:
        """The factory's value, or None and why: its own ``ValidationError`` is the reason."""
        try:
            value = factory(**params)
        except ValidationError as error:
            return None, str(error)
        except Exception as error:
            return None, f"its factory raised {type(error).__name__}: {error}"
        if self._accepts(value):
            return value, ""
        return None, f"its factory returned {value!r}, not a {self.key}"


def _parameter_problem(factory: Callable[..., object], params: Mapping[str, object]) -> str | None:
    try:
        inspect.signature(factory).bind(**params)
    except TypeError as error:
        return f"bad parameters ({error})"
    except ValueError:  # no signature to check against; the factory will tell
        pass
    return None
