"""The change log as values: one ``Change`` per deal version, and ``replay`` (pure).

Every version of a deal has exactly one ``Change``, versions 1..n without gaps.
``changed`` holds each altered attribute's old and new value, encoded as in
``Deal.to_dict``, so the log alone rebuilds every deal as it stood at any time.
A store derives the Change from the deal it stored and the one it is given
(``derive``); nothing a caller computes is trusted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Final

import attrs

from salespipeline import _checks as c
from salespipeline import limits
from salespipeline._unchecked import differing, generate, stage_change
from salespipeline.deal import STATE, Deal, StageChange, decode_value, encode_value, to_actor
from salespipeline.errors import ValidationError, shown

__all__ = ["ATTRIBUTES", "KINDS", "PRE_LOG", "Change", "derive", "imported", "recorded", "replay"]

KINDS: Final = ("open", "move", "update", "migrate", "import", "erase")
"""What a change did: opened a deal, moved its stage, changed other attributes, moved it
to another pipeline (a migration), brought it from another system, or erased it."""

ATTRIBUTES: Final = STATE
"""The attribute names ``changed`` may hold."""

PRE_LOG: Final = "recorded before the change log"
"""The reason on changes made up for versions that were stored before the log existed.

They are the ``update`` changes of versions without a history entry; their
``changed`` is empty, because what those versions altered was never recorded. The
``open`` change of such a deal lists the attributes as they were known when the log
was written (the stage path comes from the history, which was always kept)."""

_STAGE_KINDS: Final = frozenset({"open", "move", "migrate", "import"})
_STAGE_FACTS: Final = ("stage", "stage_entered_at", "closed_at", "lost_reason")
_LIFECYCLE: Final = frozenset({"pipeline", "created_at", *_STAGE_FACTS})


def _kind(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or value not in KINDS:
        raise ValidationError(f"a change's kind must be one of {list(KINDS)}, not {shown(value)}")


def _stage(value: object) -> str | None:
    return None if value is None else c.check_text(value, "stage", max_length=limits.MAX_NAME)


def _reason(value: object) -> str | None:
    return c.to_optional_text(value, "reason")


def _key(value: object) -> str | None:
    return None if value is None else c.check_id(value, "key")


def _version(value: object) -> int:
    if not c.is_int(value) or not 1 <= value <= limits.MAX_VERSION:
        raise ValidationError(
            f"a change's version must be an integer from 1 to {limits.MAX_VERSION}, "
            f"not {shown(value)}"
        )
    return value


def _position(value: object) -> int | None:
    return None if value is None else c.to_position(value, least=1)


def _changed(value: object) -> Mapping[str, tuple[Any, Any]]:
    if not isinstance(value, Mapping):
        raise ValidationError(f"changed must be a mapping, not {type(value).__name__}")
    pairs: dict[str, tuple[Any, Any]] = {}
    for name, pair in value.items():
        if not isinstance(name, str) or name not in ATTRIBUTES:
            raise ValidationError(
                f"changed names {shown(name)}, which is not a deal attribute the log records"
            )
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValidationError(f"changed[{name!r}] must be an (old, new) pair")
        old, new = (c.freeze_json(v, f"changed[{name!r}]") for v in pair)
        pairs[name] = (old, new)
    return c.FrozenMap(pairs)  # read-only like a mappingproxy, and it pickles


class _Stored:
    """Room in a Change for the parts a store decodes only when they are first read.

    A consumer draining the log routes most changes on kind, deal and stage; building
    every row's ``at`` and parsing its ``changed`` JSON up front would double what a
    page costs. A store checks a row's scalars (the time's range too) when it decodes
    it, keeps the row in ``_stored`` and leaves ``at`` and ``changed`` unset; the first
    read of one fills it through ``_decode_stored(row, name)``, which raises
    ``CorruptRecordError`` for a damaged ``changed``.
    """

    __slots__ = ("_stored",)

    @staticmethod
    def _decode_stored(stored: Any, name: str) -> Any:
        """Set by the store codec, the only maker of changes with a ``_stored`` row."""
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        if name not in _DEFERRED:  # only an unset slot or an unknown name comes here
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        value = self._decode_stored(self._stored, name)
        _DEFERRED[name](self, value)
        return value


@attrs.frozen
class Change(_Stored):
    """One version of one deal: what changed, when, who did it and why.

    ``at`` is the deal's ``updated_at`` after the change; ``position`` is set by the
    store when the change is committed (strictly increasing in commit order).
    """

    deal_id: str = attrs.field(converter=c.check_id)
    version: int = attrs.field(converter=_version)
    at: datetime = attrs.field(converter=c.to_utc)
    kind: str = attrs.field(validator=_kind)
    actor: str | None = attrs.field(default=None, kw_only=True, converter=to_actor)
    reason: str | None = attrs.field(default=None, kw_only=True, converter=_reason)
    key: str | None = attrs.field(default=None, kw_only=True, converter=_key)
    from_stage: str | None = attrs.field(default=None, kw_only=True, converter=_stage)
    to_stage: str | None = attrs.field(default=None, kw_only=True, converter=_stage)
    changed: Mapping[str, tuple[Any, Any]] = attrs.field(
        factory=dict, kw_only=True, converter=_changed, hash=False
    )
    position: int | None = attrs.field(default=None, kw_only=True, converter=_position)

    def __attrs_post_init__(self) -> None:
        moves = self.kind in _STAGE_KINDS
        if moves and self.to_stage is None:
            raise ValidationError(f"a {self.kind!r} change needs to_stage", deal_id=self.deal_id)
        if not moves and (self.to_stage is not None or self.from_stage is not None):
            raise ValidationError(
                f"a {self.kind!r} change moves no stage: from_stage and to_stage must be None",
                deal_id=self.deal_id,
            )
        if self.kind == "open" and self.from_stage is not None:
            raise ValidationError("an 'open' change has no from_stage", deal_id=self.deal_id)

    @property
    def entry(self) -> StageChange | None:
        """The history entry this change made, or None when it moved no stage."""
        if self.to_stage is None:
            return None
        return stage_change(  # from this change's own checked parts
            self.deal_id,
            self.from_stage,
            self.to_stage,
            self.at,
            self.version,
            self.reason,
            self.actor,
        )

    def with_position(self, position: int) -> Change:
        """This change as committed at ``position``."""
        return _positioned(self, position=_position(position))


_new_change: Final[Callable[..., Change]] = generate(
    Change,
    "new_change",
    "A Change from parts already checked, in field order (a save's hot path).",
    given=tuple(a.name for a in attrs.fields(Change)),
)
_DEFERRED: Final[dict[str, Callable[[Any, Any], None]]] = {
    "at": Change.at.__set__,  # type: ignore[attr-defined]
    "changed": Change.changed.__set__,  # type: ignore[attr-defined]
}
_positioned: Final[Callable[..., Change]] = generate(
    Change, "positioned", "A copy of a Change with its position set.", given=("position",)
)
_set_position: Final[Callable[[Any, Any], None]] = Change.position.__set__  # type: ignore[union-attr]


def committed_at(change: Change, position: int) -> Change:
    """``change``, which a store has just derived and not yet handed to anyone, given the
    ``position`` it was committed at in place (a save's hot path; ``with_position``
    copies a change others may hold)."""
    _set_position(change, _position(position))
    return change


def derive(
    before: Deal | None,
    after: Deal,
    *,
    actor: str | None = None,
    reason: str | None = None,
    key: str | None = None,
) -> Change:
    """The Change that turns ``before`` (None: nothing yet) into ``after``, one version on.

    A move's actor and reason are its history entry's; ``actor=``/``reason=`` may
    repeat them or fill in an actor the entry lacks, never contradict them. A deal
    that is not one version on, that adds more than one history entry (or one of
    another version), whose time runs backwards, whose move is not at its
    ``updated_at``, or whose stage facts change without a move is refused with
    ``ValidationError``. That the earlier entries are ``before``'s is the store's
    check (``storage.base.new_entries``), which compares them once.
    """
    if before is None:
        if after.version != 1 or len(after.history) != 1:
            raise ValidationError(
                "a new deal's first change is version 1 with one history entry; "
                "use log.recorded() for a deal with a past",
                deal_id=after.id,
            )
        entry = after.history[0]
        changed = {name: (None, encode_value(name, getattr(after, name))) for name in STATE}
        return _change(after, "open", entry, changed, actor, reason, key)
    if after.version != before.version + 1 or after.id != before.id:
        raise ValidationError(
            f"its version {after.version} does not follow the stored version {before.version}",
            deal_id=after.id,
        )
    if after.updated_at < before.updated_at:
        raise ValidationError(
            "time runs backwards: updated_at is before the last change", deal_id=after.id
        )
    added = len(after.history) - len(before.history)
    new = (after.history[-1],) if added == 1 else after.history[len(before.history) :]
    changed = _difference(before, after)
    if not new:
        touched = sorted(_LIFECYCLE.intersection(changed))
        if touched or after.created_at != before.created_at:
            raise ValidationError(
                f"{', '.join(touched) or 'created_at'} changed without a stage move",
                deal_id=after.id,
            )
        return _change(after, "update", None, changed, actor, reason, key)
    if len(new) != 1 or new[0].version != after.version:
        raise ValidationError(
            "a save adds at most one history entry, of the deal's version", deal_id=after.id
        )
    if "created_at" in changed:
        raise ValidationError("created_at cannot change", deal_id=after.id)
    kind = "migrate" if "pipeline" in changed else "move"
    return _change(after, kind, new[0], changed, actor, reason, key)


def _difference(before: Deal, after: Deal) -> dict[str, tuple[Any, Any]]:
    """Each attribute whose encoded value differs, as its encoded (old, new) pair.

    Attributes a derived deal shares with ``before`` are skipped by identity, by
    generated code that reads each slot directly; text encodes as itself, so two
    texts are compared as they are.
    """
    changed: dict[str, tuple[Any, Any]] = {}
    for name, old, new in differing(before, after):
        if type(old) is str and type(new) is str:
            if old != new:
                changed[name] = (old, new)
            continue
        pair = (encode_value(name, old), encode_value(name, new))
        if _differ(*pair):
            changed[name] = pair
    return changed


def _differ(old: Any, new: Any) -> bool:
    """Whether two encoded values differ as JSON does, not only as Python's ``==``.

    Equal values may encode differently: ``1``, ``1.0`` and ``True`` in ``fields``,
    amounts ``1.0`` and ``1.00``, probabilities ``0.0`` and ``-0.0``. A change
    between them is a change, or the log would not rebuild the deal exactly.
    """
    if type(old) is not type(new):
        return True
    if isinstance(old, dict):
        return old.keys() != new.keys() or any(_differ(old[k], new[k]) for k in old)
    if isinstance(old, list):
        return len(old) != len(new) or any(map(_differ, old, new))
    if isinstance(old, float):
        return old != new or math.copysign(1.0, old) != math.copysign(1.0, new)
    return bool(old != new)


def _change(
    deal: Deal,
    kind: str,
    entry: StageChange | None,
    changed: dict[str, tuple[Any, Any]],
    actor: str | None,
    reason: str | None,
    key: str | None,
) -> Change:
    if entry is not None:
        _check_timed(deal, entry)
        actor = _agreed(deal, "actor", entry.actor, actor)
        reason = _agreed(deal, "reason", entry.reason, reason, fill=False)
    return _new_change(  # every part comes from a checked deal or is checked here
        deal.id,
        deal.version,
        deal.updated_at,
        kind,
        None if actor is None else to_actor(actor),
        None if reason is None else _reason(reason),
        None if key is None else _key(key),
        None if entry is None else entry.from_stage,
        None if entry is None else entry.to_stage,
        c.FrozenMap._owning(_frozen_pairs(changed)),
        None,
    )


def _frozen_pairs(changed: dict[str, tuple[Any, Any]]) -> dict[str, tuple[Any, Any]]:
    """``changed`` with its pairs read-only (only BANT and fields encode as dicts)."""
    if "bant" not in changed and "fields" not in changed:
        return changed
    return {name: _frozen(name, pair) for name, pair in changed.items()}


def _frozen(name: str, pair: tuple[Any, Any]) -> tuple[Any, Any]:
    """An encoded (old, new) pair made read-only; only BANT and fields encode as dicts."""
    if name in ("bant", "fields"):
        return (c.freeze_json(pair[0], name), c.freeze_json(pair[1], name))
    return pair


def _check_timed(deal: Deal, entry: StageChange) -> None:
    """Refuse a deal whose version moved it at one time but says it changed at another.

    A move's change is timed by the move (its history entry's ``at``); a later
    ``updated_at`` belongs to a later version, so the log could not rebuild the deal.
    """
    if entry.at != deal.updated_at:
        raise ValidationError(
            f"updated_at {deal.updated_at.isoformat()} is not the time of the move its "
            f"version {deal.version} made ({entry.at.isoformat()})",
            deal_id=deal.id,
            field="updated_at",
        )


def _agreed(
    deal: Deal, what: str, kept: str | None, given: str | None, *, fill: bool = True
) -> str | None:
    """The history entry's ``what``, which a save's argument may repeat but not contradict."""
    if given is None or given == kept:
        return kept
    if kept is None and fill:
        return given
    raise ValidationError(
        f"the move's {what} is {shown(kept)} on its history entry, not {shown(given)}; "
        f"pass {what}= to the Pipeline operation",
        deal_id=deal.id,
        field=what,
    )


def recorded(
    deal: Deal, *, actor: str | None = None, reason: str | None = None, key: str | None = None
) -> tuple[Change, ...]:
    """Changes for versions 1..n of a deal whose past was not logged (``PRE_LOG``).

    For a new deal (version 1) this is ``derive(None, deal)``. Otherwise each history
    entry becomes an ``open`` or ``move`` change and each other version an ``update``
    with nothing in ``changed`` (timed at the change before it, the last at
    ``updated_at``); the first change lists the attributes as they are now, with
    the stage facts of the first entry (the last move ends at the deal's own stage
    facts). Replaying them gives ``deal`` back exactly; a deal whose last version is
    a move but whose ``updated_at`` is later than it is refused, as ``derive`` does.
    ``actor`` goes on the last change; on a move, as in ``derive``, it may fill in the
    actor its history entry lacks (the replayed entry then has it) but not contradict it.
    """
    if deal.version == 1 and len(deal.history) == 1:
        return (derive(None, deal, actor=actor, reason=reason, key=key),)
    if deal.version > limits.MAX_PAST_VERSIONS:
        raise ValidationError(
            f"it is at version {deal.version:,}; a deal stored with its past may have at most "
            f"{limits.MAX_PAST_VERSIONS:,} versions (each becomes a change in the log)",
            deal_id=deal.id,
        )
    first = deal.history[0]
    if first.version != 1:
        raise ValidationError(
            f"its history starts at version {first.version}, not 1: the log cannot describe it",
            deal_id=deal.id,
        )
    entries = {entry.version: entry for entry in deal.history}
    state = {name: encode_value(name, getattr(deal, name)) for name in STATE}
    state.update(_facts(deal, first))
    changes = [
        Change(
            deal.id,
            1,
            first.at,
            "open",
            actor=first.actor,
            reason=first.reason,
            to_stage=first.to_stage,
            changed={name: (None, value) for name, value in state.items()},
        )
    ]
    at = first.at
    for version in range(2, deal.version + 1):
        entry = entries.get(version)
        last = version == deal.version
        if entry is None:
            when = deal.updated_at if last else at
            changes.append(Change(deal.id, version, when, "update", reason=PRE_LOG))
            continue
        facts = _facts(deal, entry)
        changed = {n: (state[n], v) for n, v in facts.items() if state[n] != v}
        state.update(facts)
        if last:
            _check_timed(deal, entry)
        at = entry.at
        changes.append(
            Change(
                deal.id,
                version,
                at,
                "move",
                actor=entry.actor,
                reason=entry.reason,
                from_stage=entry.from_stage,
                to_stage=entry.to_stage,
                changed=changed,
            )
        )
    if actor is not None or key is not None:
        final = changes[-1]
        if final.to_stage is not None:  # a move: its actor is its history entry's
            actor = _agreed(deal, "actor", final.actor, actor)
        changes[-1] = attrs.evolve(final, actor=actor or final.actor, key=key)
    return tuple(changes)


def imported(
    deal: Deal, *, actor: str | None = None, reason: str | None = None, key: str | None = None
) -> tuple[Change, ...]:
    """The ``import`` changes of a deal brought from another system: one per history entry.

    Each version must be a history entry (a past of stage moves only); the changes are
    ``recorded``'s, each of kind ``import``, so replaying them gives ``deal`` back.
    """
    if len(deal.history) != deal.version:
        raise ValidationError(
            f"an imported deal has one history entry per version, not {len(deal.history)} "
            f"entries for version {deal.version}",
            deal_id=deal.id,
        )
    return tuple(
        _kinded(change, kind="import")
        for change in recorded(deal, actor=actor, reason=reason, key=key)
    )


_kinded: Final[Callable[..., Change]] = generate(
    Change, "kinded", "A copy of a Change of another kind with a stage.", given=("kind",)
)


def _facts(deal: Deal, entry: StageChange) -> dict[str, Any]:
    """The stage attributes a history entry sets, encoded: the deal's own after its last.

    Earlier ones are inferred from the entry; the last entry's are the deal's, which
    may differ (a migration into LOST keeps the time and reason the deal was lost).
    """
    if entry is deal.history[-1]:
        return {name: encode_value(name, getattr(deal, name)) for name in _STAGE_FACTS}
    closed = entry.to_stage in ("won", "lost")
    return {
        "stage": entry.to_stage,
        "stage_entered_at": entry.at.isoformat(),
        "closed_at": entry.at.isoformat() if closed else None,
        "lost_reason": entry.reason if entry.to_stage == "lost" else None,
    }


def replay(changes: Iterable[Change], *, until: datetime | None = None) -> dict[str, Deal]:
    """The deals ``changes`` describe, as they stood at ``until`` (None: after them all).

    Changes are taken per deal in version order, whatever order they come in; each
    deal's versions must run 1..n without gaps, each change's old values must be the
    values before it, and times must not run backwards (else ``ValidationError``).
    A deal opened after ``until``, or erased by then, is not in the result; nor is one
    whose log holds only its ``erase`` change (a store deletes an erased deal's past).
    """
    limit = None if until is None else c.to_utc(until, "until")
    by_deal: dict[str, list[Change]] = {}
    if isinstance(changes, (str, bytes, Mapping)) or not isinstance(changes, Iterable):
        raise ValidationError(f"replay() takes an iterable of Change, not {shown(changes)}")
    for change in changes:
        if not isinstance(change, Change):
            raise ValidationError(f"replay() takes Change values, not {shown(change)}")
        by_deal.setdefault(change.deal_id, []).append(change)
    deals: dict[str, Deal] = {}
    for deal_id in sorted(by_deal):
        deal = _rebuilt(deal_id, sorted(by_deal[deal_id], key=_by_version), limit)
        if deal is not None:
            deals[deal_id] = deal
    return deals


def _by_version(change: Change) -> int:
    return change.version


def _rebuilt(deal_id: str, changes: list[Change], until: datetime | None) -> Deal | None:
    state: dict[str, Any] = {}
    history: list[StageChange] = []
    last: Change | None = None
    for expected, change in enumerate(changes, start=1):
        if last is None and change.kind == "erase":
            return None  # its earlier changes were deleted with its personal data
        if change.version != expected:
            raise ValidationError(
                f"the log has version {change.version} where version {expected} belongs",
                deal_id=deal_id,
            )
        if last is not None and change.at < last.at:
            raise ValidationError(
                f"the log runs backwards in time at version {change.version}", deal_id=deal_id
            )
        if until is not None and change.at > until:
            break
        if change.kind == "erase":
            return None
        for name, (old, new) in change.changed.items():
            if state.get(name) != old and not (expected == 1 and old is None):
                raise ValidationError(
                    f"the log's version {change.version} changes {name} from {shown(old)}, "
                    f"but it was {shown(state.get(name))}",
                    deal_id=deal_id,
                )
            state[name] = new
        entry = change.entry
        if entry is not None:
            history.append(entry)
        last = change
    if last is None:
        return None
    missing = [
        name
        for name in ("pipeline", "stage", "created_at", "stage_entered_at")
        if state.get(name) is None
    ]
    if missing:
        raise ValidationError(
            f"the log does not say the deal's {missing[0]} (it must start with an 'open' "
            "or 'import' change listing every attribute)",
            deal_id=deal_id,
        )
    values = {name: decode_value(name, data) for name, data in state.items()}
    return Deal(
        deal_id,
        updated_at=last.at,
        version=last.version,
        history=tuple(history),
        **values,
    )
