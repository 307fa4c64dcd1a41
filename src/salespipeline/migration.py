"""Migrations: move deals from one pipeline definition to another, keeping their history.

A ``Migration`` maps every stage of the source pipeline to a stage of the target
(identical names map to themselves unless told otherwise; WON and LOST always do).
Applying it to a deal keeps the old history, whose entries still name the old
stages, and appends one entry from the old stage to the new one, so the move is on
record like any other. ``migrate_store`` does this for every deal in a store.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Final

import attrs

from salespipeline import _checks as c
from salespipeline.deal import Deal, StageChange
from salespipeline.errors import (
    ConcurrencyError,
    DefinitionError,
    UnknownStageError,
    ValidationError,
    shown,
)
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, TERMINAL, WON

if TYPE_CHECKING:
    from salespipeline.storage.base import DealStore

__all__ = ["Migration", "migrate_store"]

Progress = Callable[[int], None]
_ATTEMPTS: Final = 3
MAX_BATCH: Final = 1_000_000
"""The most deals ``migrate_store`` holds in memory at once."""


def _to_mapping(value: object) -> c.FrozenMap:
    if not isinstance(value, Mapping):
        raise DefinitionError([f"mapping must be a mapping of stage names, not {shown(value)}"])
    return c.FrozenMap(value)


@attrs.frozen
class Migration:
    """How deals of ``source`` become deals of ``target``: stage ``mapping`` (old -> new).

    Stages missing from ``mapping`` map to the target stage of the same name.
    Construction refuses, in one ``DefinitionError``, every stage left unmapped and
    every name that either pipeline does not have.
    """

    source: Pipeline
    target: Pipeline
    mapping: Mapping[str, str] = attrs.field(factory=c.FrozenMap, converter=_to_mapping)
    stages: Mapping[str, str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        problems = _pipeline_problems(self.source, self.target)
        if not problems:
            resolved, problems = _resolve(self.source, self.target, self.mapping)
            object.__setattr__(self, "stages", c.FrozenMap(resolved))
        if problems:
            name = getattr(self.target, "name", None)
            raise DefinitionError(problems, pipeline=name if isinstance(name, str) else None)

    @property
    def reason(self) -> str:
        """The reason written on each migrated deal's new history entry."""
        s, t = self.source, self.target
        return f"migrated from {s.name} v{s.version} to {t.name} v{t.version}"

    def done(self, deal: Deal) -> bool:
        """Whether ``deal`` was already moved by this migration."""
        if not isinstance(deal, Deal):
            raise ValidationError(f"expected a Deal, not {type(deal).__name__}")
        return deal.pipeline == self.target.name and any(
            change.reason == self.reason for change in deal.history
        )

    def apply(self, deal: Deal, *, at: datetime | None = None) -> Deal:
        """``deal`` as a deal of the target pipeline, one history entry longer (pure).

        A deal this migration already moved is returned unchanged. Target guards are
        not checked: a migration relabels where deals are, it is not a sales move.
        ``at`` defaults to the target pipeline's clock.
        """
        if not isinstance(deal, Deal):
            raise ValidationError(f"expected a Deal, not {type(deal).__name__}")
        if self.done(deal):
            return deal
        if deal.pipeline != self.source.name:
            raise ValidationError(
                f"belongs to pipeline {deal.pipeline!r}, not {self.source.name!r}",
                deal_id=deal.id,
            )
        to = self.stages.get(deal.stage)
        if to is None:
            raise UnknownStageError(deal.stage, pipeline=self.source.name, deal_id=deal.id)
        return self._moved(deal, to, self._at(deal, at))

    def _at(self, deal: Deal, at: datetime | None) -> datetime:
        when = self.target.clock() if at is None else at
        return c.not_before(when, deal.updated_at, deal_id=deal.id)

    def _moved(self, deal: Deal, to: str, when: datetime) -> Deal:
        version = deal.version + 1
        change = StageChange(deal.id, deal.stage, to, when, version, self.reason)
        return attrs.evolve(
            deal,
            pipeline=self.target.name,
            stage=to,
            stage_entered_at=when,
            updated_at=when,
            version=version,
            history=(*deal.history, change),
        )


def _pipeline_problems(source: object, target: object) -> list[str]:
    problems = [
        f"{what} must be a Pipeline, not {type(value).__name__}"
        for what, value in (("source", source), ("target", target))
        if not isinstance(value, Pipeline)
    ]
    if (
        not problems
        and isinstance(source, Pipeline)
        and isinstance(target, Pipeline)
        and (source.name, source.version) == (target.name, target.version)
    ):
        problems.append(
            f"source and target are both {source.name} v{source.version}: "
            "give the target a new name or version"
        )
    return problems


def _resolve(
    source: Pipeline, target: Pipeline, mapping: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The full old -> new stage table, and every problem with ``mapping``."""
    problems = [
        f"mapping names stage {shown(old)}, which {source.name} does not have"
        for old in mapping
        if old not in source.stage_names
    ]
    open_targets = {s.name for s in target.stages}
    for old, new in mapping.items():
        if old in TERMINAL and new != old:
            problems.append(f"{old} always maps to {old}, not {shown(new)}")
        elif old not in TERMINAL and (not isinstance(new, str) or new not in open_targets):
            problems.append(
                f"mapping sends {shown(old)} to {shown(new)}, which is not an open stage of "
                f"{target.name}"
            )
    resolved: dict[str, str] = {WON: WON, LOST: LOST}
    for stage in source.stages:
        new = mapping.get(stage.name, stage.name)
        if isinstance(new, str) and new in open_targets:
            resolved[stage.name] = new
        elif stage.name not in mapping:
            problems.append(
                f"stage {stage.name!r} is not mapped and {target.name} has no stage of that name"
            )
    return resolved, problems


_STORE_METHODS: Final = ("find", "get", "save", "save_pipeline")
"""What ``migrate_store`` uses of a store (the core does not import ``storage``)."""


def migrate_store(
    store: DealStore,
    migration: Migration,
    *,
    at: datetime | None = None,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> int:
    """Migrate every deal of ``migration.source`` in ``store``; return how many moved.

    Deals are read and saved ``batch_size`` at a time; each save is atomic, and a
    run that stops half way can simply be run again (moved deals are skipped). A
    deal changed concurrently is reloaded and migrated again. ``progress(done)``
    is called after each batch. ``at`` defaults to the target pipeline's clock.
    """
    if not all(callable(getattr(store, name, None)) for name in _STORE_METHODS):
        raise ValidationError(f"migrate_store() needs a DealStore, not {type(store).__name__}")
    if not isinstance(migration, Migration):
        raise ValidationError(f"migrate_store() needs a Migration, not {type(migration).__name__}")
    if not c.is_int(batch_size) or not 1 <= batch_size <= MAX_BATCH:
        raise ValidationError(
            f"batch_size must be an integer from 1 to {MAX_BATCH:,}, not {shown(batch_size)}"
        )
    if progress is not None and not callable(progress):
        raise ValidationError("progress must be a callable taking the number of deals moved")
    when = c.to_utc(migration.target.clock() if at is None else at, "at")
    store.save_pipeline(migration.target)
    deals = store.find(pipeline=migration.source.name)
    moved = 0
    while batch := list(itertools.islice(deals, batch_size)):
        moved += sum(_migrate_one(store, migration, deal, when) for deal in batch)
        if progress is not None:
            progress(moved)
    return moved


def _migrate_one(store: DealStore, migration: Migration, deal: Deal, when: datetime) -> bool:
    """Save ``deal`` migrated; on a concurrent change reload it and try again."""
    for attempt in range(_ATTEMPTS):
        migrated = migration.apply(deal, at=max(when, deal.updated_at))
        if migrated is deal:
            return False
        try:
            store.save(migrated)
        except ConcurrencyError:
            if attempt == _ATTEMPTS - 1:
                raise
            deal = store.get(deal.id)
            if deal.pipeline != migration.source.name and not migration.done(deal):
                return False
        else:
            return True
    return False  # pragma: no cover - the loop returns or raises
