"""StoreContract: the storage contract as a pytest base class, shipped to users.

Subclass it in a test module, implement ``make_store()`` (and ``reopen_store()``
for a store that keeps its data somewhere that outlives it), and pytest runs every
check the shipped stores pass: exact round trips, duplicate and missing deals,
optimistic concurrency, atomic saves, ``find`` and ``count`` filters, keyset pages
and streaming, unknown names refused, definitions, bulk adds (all or nothing),
reports, the change log (one change per version, positions, keys, consumers,
``verify``), reopening and threads racing for one deal.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from salespipeline import guards, limits, log, metrics
from salespipeline.deal import Bant, Deal
from salespipeline.errors import (
    ConcurrencyError,
    DealNotFoundError,
    DuplicateDealError,
    StorageError,
    UnknownPipelineError,
    UnknownStageError,
    ValidationError,
)
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON, Stage
from salespipeline.storage.base import DealStore
from salespipeline.testing import strategies
from salespipeline.testing._stories import deal_stories, windows
from salespipeline.tracker import Tracker

__all__ = ["StoreContract"]

T0: Final = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=timezone.utc)
SEOUL: Final = timezone(timedelta(hours=9))
QUALIFIED: Final = Bant(budget=True, authority=True, need=True, timeline=True)


def contract_pipeline(name: str = "contract", *, version: int = 1) -> Pipeline:
    """Three open stages, BANT before the proposal, Korean labels."""
    return Pipeline(
        name,
        [
            Stage("lead", label="리드", probability=0.1),
            Stage("proposal", label="제안", probability=0.5, requires=guards.bant()),
            Stage("closing", label="클로징", probability=0.8),
        ],
        lost_reasons=["price", "timing", "no decision"],
        version=version,
    )


def _later(step: int) -> datetime:
    return T0 + timedelta(hours=step, microseconds=step)


def rich_deal(pipeline: Pipeline, id: str = "deal-1") -> Deal:
    """A deal using every field: exact amount, Unicode, a lost-and-reopened history."""
    deal = pipeline.start(
        id,
        amount=Decimal("1234567890.123456"),  # at the limit: 6 places
        currency="krw",
        bant=QUALIFIED,
        fields={
            "담당자": "김민수",
            "tags": ["엔터프라이즈", "renewal"],
            "nested": {"seats": 120, "discount": 0.125, "note": None, "ok": True},
            "big": 10**20,
        },
        probability=0.35,
        at=T0.astimezone(SEOUL),
    )
    deal = deal.evolve(next_action="견적서 발송", next_action_at=_later(30).astimezone(SEOUL))
    deal = pipeline.advance(deal, at=_later(1))
    deal = pipeline.lose(deal, "price", at=_later(2))
    deal = pipeline.reopen(deal, at=_later(3))
    return pipeline.move(deal, "closing", at=_later(4), reason="고객 요청")


def _renamed(deal: Deal, id: str) -> Deal:
    """``deal`` under another id (generated deals may repeat ids across examples)."""
    history = tuple(attrs.evolve(change, deal_id=id) for change in deal.history)
    return attrs.evolve(deal, id=id, history=history)


def _walk(pipeline: Pipeline, id: str, start: datetime, *moves: tuple[str, int]) -> list[Deal]:
    """The versions of a deal opened at ``start``: each move (stage or "+" for an
    update, hour) applied in turn, every version kept."""
    deals = [pipeline.start(id, bant=QUALIFIED, at=start)]
    for to, hour in moves:
        deal = deals[-1]
        if to == "+":
            deals.append(deal.evolve(amount=deal.amount + 1))
        elif to == LOST:
            deals.append(pipeline.lose(deal, "price", at=_later(hour)))
        else:
            deals.append(pipeline.move(deal, to, at=_later(hour)))
    return deals


def _other_created_at(pipeline: Pipeline) -> tuple[list[Deal], Deal]:
    stored = _walk(pipeline, "forged", T0, ("proposal", 1))
    fake = _walk(pipeline, "forged", T0 - timedelta(hours=1), ("proposal", 1), ("+", 0))
    return stored, fake[-1]


def _rewritten_time(pipeline: Pipeline) -> tuple[list[Deal], Deal]:
    stored = _walk(pipeline, "forged", T0, ("proposal", 1), ("closing", 3))
    fake = _walk(pipeline, "forged", T0, ("proposal", 2), ("closing", 3), (WON, 4))
    return stored, fake[-1]


def _rewritten_stages(pipeline: Pipeline) -> tuple[list[Deal], Deal]:
    stored = _walk(pipeline, "forged", T0, ("proposal", 1), (LOST, 2), ("proposal", 3))
    fake = _walk(pipeline, "forged", T0, ("proposal", 1), ("closing", 2), ("proposal", 3))
    return stored, fake[-1].evolve(amount=5)


def _rewritten_reason(pipeline: Pipeline) -> tuple[list[Deal], Deal]:
    stored = _walk(pipeline, "forged", T0, ("proposal", 1), (LOST, 2), ("proposal", 3))
    fake = stored[-1]
    history = list(fake.history)
    history[2] = attrs.evolve(history[2], reason="timing")
    return stored, attrs.evolve(fake, history=tuple(history)).evolve(amount=5)


def _renumbered(pipeline: Pipeline) -> tuple[list[Deal], Deal]:
    stored = _walk(pipeline, "forged", T0, ("+", 0), ("proposal", 1))
    fake = _walk(pipeline, "forged", T0, ("proposal", 1), ("+", 0), ("+", 0))
    return stored, fake[-1]


def _dropped_entries(pipeline: Pipeline) -> tuple[list[Deal], Deal]:
    stored = _walk(pipeline, "forged", T0, ("proposal", 1), (LOST, 2), ("proposal", 3))
    fake = _walk(pipeline, "forged", T0, ("proposal", 3), ("+", 0), ("+", 0), ("+", 0))
    return stored, fake[-1]


FORGERIES: Final[dict[str, Callable[[Pipeline], tuple[list[Deal], Deal]]]] = {
    "another created_at": _other_created_at,
    "an earlier entry at another time": _rewritten_time,
    "earlier entries in other stages": _rewritten_stages,
    "an earlier entry with another reason": _rewritten_reason,
    "entries under other versions": _renumbered,
    "earlier entries left out": _dropped_entries,
}
"""Each: the versions a deal was stored through, and a forged next version of it."""


class StoreContract:
    """Every behaviour a ``DealStore`` promises, as pytest tests.

    Implement ``make_store()`` to return a new, empty store. A store whose data
    outlives it (a file, a server) also implements ``reopen_store()`` returning a
    second store over the same data; the reopen tests are skipped otherwise.
    """

    #: how many threads race in the concurrency tests
    threads: int = 6

    def make_store(self) -> DealStore:
        raise NotImplementedError("a StoreContract subclass implements make_store()")

    def reopen_store(self) -> DealStore:
        pytest.skip("this store has no reopen_store(): its data does not outlive it")

    @pytest.fixture
    def store(self) -> Iterator[DealStore]:
        store = self.make_store()
        try:
            yield store
        finally:
            store.close()

    @pytest.fixture
    def pipeline(self) -> Pipeline:
        return contract_pipeline()

    # -- round trips ---------------------------------------------------------------------

    def test_add_then_get_returns_an_equal_deal(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        deal = rich_deal(pipeline)
        store.add(deal)
        assert store.get(deal.id) == deal

    def test_amount_keeps_every_digit_and_its_scale(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        amounts = ["1.50", "0.000001", "999999999999999999.999999", "0", "1E+3"]
        for index, amount in enumerate(amounts):
            store.add(pipeline.start(f"amount-{index}", amount=amount, at=T0))
        for index, amount in enumerate(amounts):
            stored = store.get(f"amount-{index}").amount
            assert stored == Decimal(amount)
            assert isinstance(stored, Decimal)
        assert str(store.get("amount-0").amount) == "1.50"
        assert str(store.get("amount-4").amount) == "1000"  # canonical: no exponent kept

    def test_unicode_text_and_fields_come_back_unchanged(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        deal = rich_deal(pipeline, id="거래-😀-1")
        store.add(deal)
        got = store.get("거래-😀-1")
        assert got.fields["담당자"] == "김민수"
        assert got.fields["tags"] == ("엔터프라이즈", "renewal")
        assert got.fields["nested"]["discount"] == 0.125
        assert got.fields["big"] == 10**20
        assert got.next_action == "견적서 발송"
        assert got.history[-1].reason == "고객 요청"

    def test_times_come_back_aware_utc_to_the_microsecond(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        deal = rich_deal(pipeline)
        store.add(deal)
        got = store.get(deal.id)
        moments = [got.created_at, got.stage_entered_at, got.next_action_at]
        moments += [change.at for change in got.history]
        assert all(m is not None and m.utcoffset() == timedelta(0) for m in moments)
        assert got.created_at == T0 and got.created_at.microsecond == T0.microsecond
        assert got.next_action_at == _later(30)

    def test_history_comes_back_in_order_with_reasons(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        deal = rich_deal(pipeline)
        store.add(deal)
        assert store.history(deal.id) == deal.history
        assert [c.to_stage for c in store.history(deal.id)] == [
            "lead",
            "proposal",
            LOST,
            "proposal",
            "closing",
        ]
        assert [c.reason for c in store.history(deal.id)][2] == "price"

    def test_a_long_history_loads_for_a_change_as_it_was_stored(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        """``load`` (which may read older entries lazily) and ``get`` give the same deal,
        and a deal moved from a loaded one saves; ``last_known`` is None or that deal."""
        deal = pipeline.start("long", bant=QUALIFIED, at=T0)
        for step in range(1, 81):
            at = _later(step)
            deal = (
                pipeline.reopen(deal, at=at)
                if deal.stage == LOST
                else pipeline.lose(deal, "price", at=at)
            )
        store.add(deal)
        loaded = store.load("long")
        assert loaded.history[-1] == deal.history[-1] and len(loaded.history) == 81
        assert loaded == deal == store.get("long")
        known = store.last_known("long")
        assert known is None or known.id == "long"
        moved = pipeline.lose(store.load("long"), "timing", at=_later(90))
        store.save(moved)
        assert store.get("long") == moved and len(store.get("long").history) == 82

    def test_generated_deals_round_trip(self, pipeline: Pipeline) -> None:
        store = self.make_store()
        counter = itertools.count()
        try:
            # Local, not global: drawing a deal is quick, but a user's store over a network
            # may take long enough per example for Hypothesis to count it as generation.
            @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
            @given(strategies.deals(pipeline))
            def round_trip(deal: Deal) -> None:
                deal = _renamed(deal, f"{deal.id}#{next(counter)}")
                store.add(deal)
                assert store.get(deal.id) == deal
                assert store.history(deal.id) == deal.history

            round_trip()
        finally:
            store.close()

    # -- adding and finding by id --------------------------------------------------------

    def test_adding_an_existing_id_is_refused_and_keeps_the_original(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        original = pipeline.start("dup", amount=10, at=T0)
        store.add(original)
        with pytest.raises(DuplicateDealError) as error:
            store.add(pipeline.start("dup", amount=99, at=_later(1)))
        assert error.value.deal_id == "dup"
        assert store.get("dup") == original

    def test_getting_a_missing_deal_raises_deal_not_found(self, store: DealStore) -> None:
        with pytest.raises(DealNotFoundError) as error:
            store.get("nobody")
        assert error.value.deal_id == "nobody"
        with pytest.raises(DealNotFoundError):
            store.history("nobody")

    def test_values_that_are_not_deals_are_refused(self, store: DealStore) -> None:
        bad: Any = {"id": "x"}
        with pytest.raises(ValidationError):
            store.add(bad)
        with pytest.raises(ValidationError):
            store.save(bad)
        with pytest.raises(ValidationError):
            store.get(bad)

    @pytest.mark.parametrize("text", ["a\x00b", "\ud800", "lone \udfff surrogate", " "])
    def test_lookups_no_deal_can_match_are_validation_errors(
        self, store: DealStore, text: str
    ) -> None:
        """Text no deal can carry (NUL, lone surrogates, blank ids) is refused alike everywhere."""
        with pytest.raises(ValidationError):
            store.get(text)
        with pytest.raises(ValidationError):
            store.history(text)
        if text.strip():
            with pytest.raises(ValidationError):
                list(store.find(stage=text))
            with pytest.raises(ValidationError):
                list(store.find(pipeline=text))

    # -- saving ---------------------------------------------------------------------------

    def test_save_writes_the_next_version(self, store: DealStore, pipeline: Pipeline) -> None:
        deal = pipeline.start("s", bant=QUALIFIED, at=T0)
        store.add(deal)
        moved = pipeline.advance(deal, at=_later(1))
        store.save(moved)
        updated = moved.evolve(amount=Decimal("12.34"), fields={"k": "v"})
        store.save(updated)
        assert store.get("s") == updated
        assert [c.version for c in store.history("s")] == [1, 2]
        assert store.get("s").version == 3

    def test_a_stale_save_raises_and_changes_nothing(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        deal = pipeline.start("stale", bant=QUALIFIED, at=T0)
        store.add(deal)
        winner = pipeline.advance(deal, at=_later(1))
        loser = pipeline.lose(deal, "timing", at=_later(2))
        store.save(winner)
        with pytest.raises(ConcurrencyError) as error:
            store.save(loser)
        assert (error.value.deal_id, error.value.expected, error.value.actual) == ("stale", 1, 2)
        assert store.get("stale") == winner

    def test_a_failed_save_leaves_no_partial_history(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        deal = pipeline.start("atomic", bant=QUALIFIED, at=T0)
        store.add(deal)
        skipped = pipeline.advance(pipeline.advance(deal, at=_later(1)), at=_later(2))
        with pytest.raises(ConcurrencyError):
            store.save(skipped)  # carries two new entries but the store is at version 1
        assert store.history("atomic") == deal.history
        assert store.get("atomic") == deal
        store.save(pipeline.advance(deal, at=_later(3)))
        assert [c.version for c in store.history("atomic")] == [1, 2]

    def test_saving_a_deal_that_was_never_added_raises_concurrency_error(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        moved = pipeline.lose(pipeline.start("ghost", at=T0), "price", at=_later(1))
        with pytest.raises(ConcurrencyError) as error:
            store.save(moved)
        assert error.value.actual is None
        with pytest.raises(DealNotFoundError):
            store.get("ghost")

    def test_a_deal_from_another_history_is_refused(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        stored = pipeline.start("twin", at=T0)
        store.add(stored)
        impostor = pipeline.lose(pipeline.start("twin", at=_later(1)), "price", at=_later(2))
        with pytest.raises(ValidationError):
            store.save(impostor)
        assert store.get("twin") == stored

    @pytest.mark.parametrize("forgery", sorted(FORGERIES))
    def test_a_forged_deal_is_refused_and_nothing_is_written(
        self, store: DealStore, pipeline: Pipeline, forgery: str
    ) -> None:
        """A deal whose history is not the stored one plus new entries is never saved.

        Each forgery keeps the stored stage, version and time of the last known entry,
        so only a store that compares the whole history (and ``created_at``) refuses it.
        """
        stored, forged = FORGERIES[forgery](pipeline)
        store.add(stored[0])
        for deal in stored[1:]:
            store.save(deal)
        with pytest.raises(ValidationError) as error:
            store.save(forged)
        assert error.value.deal_id == forged.id
        assert store.get(forged.id) == stored[-1]
        assert store.history(forged.id) == stored[-1].history
        now = _later(100)
        expected = metrics.report([stored[-1]], pipeline, as_of=now)
        assert store.report(pipeline, as_of=now) == expected
        store.save(pipeline.lose(store.get(forged.id), "price", at=_later(50)))

    def test_closed_deals_keep_closing_fields(self, store: DealStore, pipeline: Pipeline) -> None:
        won = pipeline.start("w", bant=QUALIFIED, at=T0)
        store.add(won)
        for step in range(1, 3):
            won = pipeline.advance(won, at=_later(step))
            store.save(won)
        won = pipeline.win(won, at=_later(3))
        store.save(won)
        got = store.get("w")
        assert (got.stage, got.closed_at, got.lost_reason) == (WON, _later(3), None)

    # -- the change log -----------------------------------------------------------------

    def test_every_version_has_one_change_and_the_log_replays_to_the_deal(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        deal = rich_deal(pipeline)
        store.add(deal)
        moved = pipeline.win(store.get(deal.id), at=_later(5), actor="지민")
        store.save(moved)
        changes = store.changes(deal.id)
        assert [c.version for c in changes] == list(range(1, moved.version + 1))
        assert log.replay(changes) == {deal.id: store.get(deal.id)}
        assert changes[-1].kind == "move" and changes[-1].actor == "지민"
        assert store.get(deal.id).history[-1].actor == "지민"
        assert store.verify() == ()

    def test_a_save_logs_what_changed_with_old_and_new_values(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        deal = pipeline.start("c1", amount=100, at=T0)
        opened = store.add(deal, actor="ann")
        assert isinstance(opened, log.Change)
        assert (opened.kind, opened.version, opened.actor) == ("open", 1, "ann")
        assert opened.changed["amount"] == (None, "100")
        updated = deal.evolve(amount=250, owner="bob", at=_later(1))
        change = store.save(updated, actor="ann", reason="bigger scope", key="u-1")
        assert isinstance(change, log.Change) and change.position is not None
        assert opened.position is not None and change.position > opened.position
        assert (change.kind, change.at, change.reason, change.key) == (
            "update",
            _later(1),
            "bigger scope",
            "u-1",
        )
        assert dict(change.changed) == {"amount": ("100", "250"), "owner": (None, "bob")}
        lost = pipeline.lose(updated, "price", at=_later(2))
        change = store.save(lost)
        assert isinstance(change, log.Change)
        assert (change.kind, change.from_stage, change.to_stage, change.reason) == (
            "move",
            "lead",
            LOST,
            "price",
        )
        assert store.changes("c1", key="u-1") == (store.changes("c1")[1],)
        assert store.changes("c1", key="nope") == ()

    def test_a_refused_save_writes_no_change(self, store: DealStore, pipeline: Pipeline) -> None:
        deal = pipeline.start("r1", at=T0)
        store.add(deal)
        store.save(deal.evolve(amount=1, at=_later(1)), key="k")
        before = store.log()
        attempts: list[Callable[[], object]] = [
            lambda: store.save(deal.evolve(amount=2, at=_later(1))),  # stale
            lambda: store.save(store.get("r1").evolve(amount=3), key="k"),  # key reused
            lambda: store.save(store.get("r1").evolve(amount=4), actor="  "),
            lambda: store.save(store.get("r1").evolve(amount=5), key="k" * 201),
        ]
        for attempt in attempts:
            with pytest.raises((ConcurrencyError, ValidationError)):
                attempt()
        assert store.log() == before
        assert store.get("r1").amount == 1

    def test_the_log_pages_in_position_order_without_gaps_or_repeats(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        for n in range(7):
            deal = pipeline.start(f"p{n}", at=T0)
            store.add(deal)
            store.save(deal.evolve(amount=n + 1, at=_later(n)))
        whole = store.log(limit=1000)
        assert len(whole) == 14
        positions = [c.position or 0 for c in whole]
        assert positions == sorted(positions) and len(set(positions)) == 14
        paged: list[log.Change] = []
        after = 0
        while page := store.log(after=after, limit=3):
            paged.extend(page)
            after = page[-1].position or 0
        assert paged == list(whole)
        past = limits.MAX_POSITION + 1  # beyond every backend's 64-bit position column
        for bad in (
            {"after": -1},
            {"after": past},
            {"limit": 0},
            {"limit": 10**6},
            {"after": "0"},
        ):
            with pytest.raises(ValidationError):
                store.log(**bad)
        assert store.log(after=limits.MAX_POSITION) == ()
        with pytest.raises(DealNotFoundError):
            store.changes("missing")

    def test_a_consumer_handles_each_change_once_in_order_and_resumes(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        for n in range(5):
            store.add(pipeline.start(f"k{n}", at=T0))
        seen: list[int] = []
        consumer = store.consumer("mailer")
        assert consumer.position == 0
        assert consumer.poll(lambda c: seen.append(c.position or 0), limit=2) == 2
        assert store.consumer("mailer").poll(lambda c: seen.append(c.position or 0)) == 3
        assert consumer.poll(lambda c: seen.append(c.position or 0)) == 0
        assert seen == [c.position for c in store.log()]

        def fails_on_third(change: log.Change) -> None:
            if change.deal_id == "k2":
                raise RuntimeError("mail server down")

        other = store.consumer("crm")
        with pytest.raises(RuntimeError):
            other.poll(fails_on_third)
        assert other.position == store.log()[1].position  # k0 and k1 are recorded
        assert other.poll(lambda c: None) == 3  # k2 is delivered again
        with pytest.raises(ValidationError):
            store.consumer("")
        with pytest.raises(ValidationError):
            other.poll("not callable")  # type: ignore[arg-type]
        reached = other.position
        for position in (-1, limits.MAX_POSITION + 1, True, "3"):
            with pytest.raises(ValidationError):
                other.seek(position)  # type: ignore[arg-type]
        assert other.position == reached  # refused before any write

    def test_verify_finds_nothing_wrong_in_a_store_the_library_wrote(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        self._populate(store, pipeline)
        store.add(rich_deal(pipeline, "rich"))
        assert store.verify() == ()

    # -- find -----------------------------------------------------------------------------

    def _populate(self, store: DealStore, pipeline: Pipeline) -> dict[str, Deal]:
        other = contract_pipeline("other")
        deals = {
            "c": pipeline.start("c", bant=QUALIFIED, at=T0),
            "a": pipeline.lose(pipeline.start("a", at=T0), "price", at=_later(1)),
            "가": pipeline.advance(pipeline.start("가", bant=QUALIFIED, at=T0), at=_later(1)),
            "B": other.start("B", at=T0),
            "b": pipeline.start("b", at=T0),
        }
        for deal in deals.values():
            store.add(deal)
        return deals

    def test_find_without_filters_yields_every_deal_in_id_order(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        deals = self._populate(store, pipeline)
        found = store.find()
        assert isinstance(found, Iterator)
        assert list(found) == [deals[k] for k in sorted(deals)]

    def test_find_filters_by_pipeline_stage_and_openness(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        self._populate(store, pipeline)

        def ids(**filters: Any) -> list[str]:
            return [deal.id for deal in store.find(**filters)]

        assert ids(pipeline="contract") == ["a", "b", "c", "가"]
        assert ids(pipeline="other") == ["B"]
        assert ids(stage="lead") == ["B", "b", "c"]
        assert ids(open=False) == ["a"]
        assert ids(open=True) == ["B", "b", "c", "가"]
        assert ids(pipeline="contract", stage="lead", open=True) == ["b", "c"]
        assert ids(pipeline="contract", stage=LOST, open=True) == []

    def test_find_refuses_filters_of_the_wrong_type(self, store: DealStore) -> None:
        bad: Any = 1
        with pytest.raises(ValidationError):
            list(store.find(pipeline=bad))
        with pytest.raises(ValidationError):
            list(store.find(open=bad))

    def test_find_streams_across_batches_with_histories(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        if hasattr(store, "find_batch"):
            setattr(store, "find_batch", 3)  # noqa: B010  (an instance override)
        deals = [
            pipeline.advance(pipeline.start(f"d{i:02}", bant=QUALIFIED, at=T0), at=_later(i))
            for i in range(10)
        ]
        for deal in deals:
            store.add(deal)
        assert list(store.find(pipeline="contract")) == deals
        assert list(store.find(stage="proposal")) == deals

    def test_deals_may_be_saved_while_find_is_iterating(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        for i in range(7):
            store.add(pipeline.start(f"n{i}", bant=QUALIFIED, at=T0))
        seen = []
        for deal in store.find(stage="lead"):
            store.save(pipeline.advance(deal, at=_later(1)))
            seen.append(deal.id)
        assert seen == [f"n{i}" for i in range(7)]
        assert [d.id for d in store.find(stage="proposal")] == seen

    def _populate_owned(self, store: DealStore, pipeline: Pipeline) -> list[Deal]:
        """Deals with owners, custom fields and update times to filter on, in id order."""
        made = [
            ("o1", "ann", {"tier": 1, "vip": True, "region": "서울"}, 1),
            ("o2", "bob", {"tier": 1.0, "vip": False, "region": None}, 2),
            ("o3", "ann", {"tier": "1", "vip": 1}, 3),
            ("o4", None, {"tier": 2, "nested": {"tier": 1}}, 4),
            ("o5", "ann", {}, 5),
        ]
        deals = []
        for id, owner, fields, hour in made:
            deal = pipeline.start(id, bant=QUALIFIED, at=T0)
            deals.append(deal.evolve(owner=owner, fields=fields, at=_later(hour)))
            store.add(deals[-1])
        return deals

    def test_find_filters_by_owner_fields_and_update_time(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        self._populate_owned(store, pipeline)

        def ids(**filters: Any) -> list[str]:
            found = [deal.id for deal in store.find(**filters)]
            assert store.count(**filters) == len(found)
            return found

        assert ids(owner="ann") == ["o1", "o3", "o5"]
        assert ids(owner="carol") == []
        assert ids(updated_since=_later(3)) == ["o3", "o4", "o5"]
        assert ids(updated_since=_later(3).astimezone(SEOUL), owner="ann") == ["o3", "o5"]
        assert ids(fields={"region": "서울"}) == ["o1"]
        assert ids(fields={"tier": 1, "vip": True}) == ["o1"]
        assert ids(pipeline="contract", stage="lead", owner="ann", open=True) == [
            "o1",
            "o3",
            "o5",
        ]
        assert store.count() == 5

    def test_fields_filters_compare_json_values(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        """Numbers equal by value (1 is 1.0), never a boolean or text; null is not absent."""
        self._populate_owned(store, pipeline)

        def ids(fields: dict[str, Any]) -> list[str]:
            return [deal.id for deal in store.find(fields=fields)]

        assert ids({"tier": 1}) == ids({"tier": 1.0}) == ["o1", "o2"]
        assert ids({"tier": "1"}) == ["o3"]
        assert ids({"vip": True}) == ["o1"]
        assert ids({"vip": 1}) == ["o3"]
        assert ids({"vip": False}) == ["o2"]
        assert ids({"region": None}) == ["o2"]
        assert ids({"nested": 1}) == ids({"missing": None}) == []
        assert ids({}) == ["o1", "o2", "o3", "o4", "o5"]

    def test_find_pages_by_keyset_with_limit_and_after(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        deals = self._populate_owned(store, pipeline)
        pages: list[list[str]] = []
        after = None
        while page := [d.id for d in store.find(limit=2, after=after)]:
            pages.append(page)
            after = page[-1]
        assert pages == [["o1", "o2"], ["o3", "o4"], ["o5"]]
        assert list(store.find(owner="ann", after="o1", limit=1)) == [deals[2]]
        assert list(store.find(after="o", order_by="id")) == deals
        assert list(store.find(limit=0)) == list(store.find(after="o5")) == []
        assert [d.id for d in store.find(after="없음")] == []

    def test_find_and_count_refuse_bad_arguments(self, store: DealStore) -> None:
        bad: list[dict[str, Any]] = [
            {"limit": -1},
            {"limit": True},
            {"limit": 2.0},
            {"limit": limits.MAX_FIND_PAGE + 1},
            {"after": 5},
            {"after": "x" * (limits.MAX_TEXT + 1)},
            {"after": " "},
            {"order_by": "amount"},
            {"owner": 7},
            {"updated_since": datetime(2026, 1, 1)},
            {"updated_since": "2026-01-01T00:00:00Z"},
            {"fields": "tier"},
            {"fields": {"tier": [1]}},
            {"fields": {"tier": {"a": 1}}},
            {"fields": {"tier": float("nan")}},
            {"fields": {"tier": 2**60}},
            {"fields": {1: "a"}},
            {"fields": {f"k{i}": 1 for i in range(limits.MAX_FIND_FIELDS + 1)}},
        ]
        for arguments in bad:
            with pytest.raises(ValidationError):
                list(store.find(**arguments))
            if not {"limit", "after", "order_by"} & set(arguments):
                with pytest.raises(ValidationError):
                    store.count(**arguments)

    def test_unknown_pipeline_and_stage_names_are_errors_not_empty_results(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        self._populate(store, pipeline)
        for call in (lambda **f: list(store.find(**f)), lambda **f: store.count(**f)):
            with pytest.raises(UnknownPipelineError):
                call(pipeline="nowhere")
            with pytest.raises(UnknownStageError):
                call(stage="negotiation")
            with pytest.raises(UnknownStageError):
                call(pipeline="other", stage="nowhere")
        store.save_pipeline(contract_pipeline("empty"))
        assert list(store.find(pipeline="empty")) == [] and store.count(pipeline="empty") == 0
        assert list(store.find(pipeline="empty", stage="closing")) == []
        assert list(store.find(stage=WON)) == [] and store.count(stage="closing") == 0
        with pytest.raises(UnknownStageError):
            store.count(pipeline="empty", stage="negotiation")

    # -- pipeline definitions and reports -------------------------------------------------

    def test_saved_definitions_come_back_newest_version_per_name(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        assert store.pipelines() == ()
        newer = contract_pipeline(version=2)
        other = contract_pipeline("another")
        for definition in (newer, other, pipeline):
            store.save_pipeline(definition)
        store.save_pipeline(newer)
        assert store.pipelines() == (other, newer)
        assert store.pipelines()[1].stage("proposal").label == "제안"

    def test_one_definition_is_read_by_name(self, store: DealStore, pipeline: Pipeline) -> None:
        newer = contract_pipeline(version=2)
        for definition in (newer, contract_pipeline("another"), pipeline):
            store.save_pipeline(definition)
        assert store.pipeline("contract") == newer
        assert store.pipeline("another") == contract_pipeline("another")
        with pytest.raises(UnknownPipelineError) as error:
            store.pipeline("nowhere")
        assert error.value.known == ("another", "contract")
        bad: Any = 7
        for name in (bad, "a\x00b"):
            with pytest.raises(ValidationError):
                store.pipeline(name)

    def test_save_pipeline_refuses_what_is_not_a_pipeline(self, store: DealStore) -> None:
        deep: Any = []
        for _ in range(100_000):  # a message quoting it must not recurse
            deep = [deep]
        values: list[Any] = [{"name": "x"}, "contract", deep]
        for bad in values:
            with pytest.raises(ValidationError):
                store.save_pipeline(bad)
        assert store.pipelines() == ()

    def test_report_equals_the_pure_report_over_the_same_deals(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        self._populate(store, pipeline)
        now = _later(100)
        expected = metrics.report(list(store.find(pipeline=pipeline.name)), pipeline, as_of=now)
        assert store.report(pipeline, as_of=now) == expected
        store.save_pipeline(pipeline)
        assert store.report("contract", as_of=now) == expected
        with pytest.raises(UnknownPipelineError):
            store.report("nowhere", as_of=now)

    def test_report_in_one_currency_equals_the_pure_report(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        """Filtered to a currency, converted into one, or split per currency: as pure."""
        deals = [
            pipeline.start("e1", amount=Decimal("100.5"), currency="EUR", at=T0),
            pipeline.lose(
                pipeline.start("e2", amount=250, currency="EUR", at=T0), "price", at=_later(1)
            ),
            pipeline.start("k1", amount=1_000_000, currency="KRW", probability=0.25, at=T0),
            pipeline.start("u1", amount=Decimal("99.99"), at=T0),
        ]
        for deal in deals:
            store.add(deal)
        now = _later(100)
        rates = {"KRW": Decimal("0.000683"), "USD": Decimal("0.92")}
        for options in ({}, {"currency": "EUR"}, {"currency": "EUR", "rates": rates}):
            expected = metrics.report(deals, pipeline, as_of=now, **options)
            assert store.report(pipeline, as_of=now, **options) == expected
        converted = store.report(pipeline, as_of=now, currency="eur", rates=rates)
        assert converted.open_value == Decimal("100.5") + 683 + Decimal("91.9908")
        with pytest.raises(ValidationError, match="KRW"):
            store.report(pipeline, as_of=now, currency="EUR", rates={"USD": 1})

    def test_report_by_category_equals_the_pure_one(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        """Open deals per forecast category, own categories and their changes included."""
        store.add(pipeline.start("c1", amount=100, forecast_category="commit", at=T0))
        store.add(pipeline.start("c2", amount=40, probability=0.9, at=T0))
        store.add(pipeline.start("c3", amount=7, currency="EUR", at=T0))
        store.save(store.get("c1").evolve(forecast_category="omitted", at=_later(2)))
        changes = [change for id in ("c1", "c2", "c3") for change in store.changes(id)]
        rates = {"EUR": Decimal("1.08")}
        for at in (_later(1), _later(3)):
            stood = list(log.replay(changes, until=at).values())
            for options in ({}, {"currency": "USD"}, {"currency": "USD", "rates": rates}):
                expected = metrics.report(stood, pipeline, as_of=at, **options)
                got = store.report(pipeline, as_of=at, **options)
                assert got.by_category == expected.by_category
                assert got.by_currency == expected.by_currency
        assert store.report(pipeline, as_of=_later(3), currency="USD").by_category[
            "omitted"
        ] == metrics.CategoryFigures(deals=1, value=Decimal(100))

    def test_report_as_of_describes_the_pipeline_as_it_stood_then(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        """At any instant, owner or not, equal to the pure report over the replayed log."""
        store.add(pipeline.advance(pipeline.start("a1", bant=QUALIFIED, at=T0), at=_later(1)))
        store.add(pipeline.start("a2", amount=50, at=_later(3)))
        store.save(store.get("a1").evolve(owner="kim", amount=300, at=_later(4)))
        store.save(pipeline.lose(store.get("a1"), "price", at=_later(6)))
        changes = [change for id in ("a1", "a2") for change in store.changes(id)]
        for at in (*map(_later, range(-1, 8)), _later(4) - timedelta(microseconds=1)):
            stood = list(log.replay(changes, until=at).values())
            for owner in (None, "kim"):
                expected = metrics.report(stood, pipeline, as_of=at, owner=owner)
                assert store.report(pipeline, as_of=at, owner=owner) == expected
            assert store.by_owner(pipeline, as_of=at) == metrics.by_owner(
                stood, pipeline, as_of=at
            )
        assert store.report(pipeline, as_of=_later(-1)).deals == 0
        assert store.report(pipeline, as_of=_later(5), owner="kim").open_value == 300
        assert store.report(pipeline, as_of=_later(3), owner="kim").deals == 0

    def test_movement_equals_the_pure_movement_over_the_log(self, pipeline: Pipeline) -> None:
        """Any story's waterfall, for any window and money, as ``metrics.movement`` gives."""
        store = self.make_store()
        counter = itertools.count()
        try:

            @settings(max_examples=15, deadline=None)
            @given(st.data())
            def story(data: st.DataObject) -> None:
                prefix = f"m{next(counter)}-"
                _write_story(store, data.draw(deal_stories(pipeline, T0, prefix=prefix)))
                if self.erasure and data.draw(st.booleans()):
                    with contextlib.suppress(DealNotFoundError):
                        store.erase(f"{prefix}0", actor="dpo", reason="request")
                start, end = data.draw(windows(T0))
                changes = list(_whole_log(store))
                for money in _MOVEMENT_MONEY:
                    pure = metrics.movement(changes, pipeline, start=start, end=end, **money)
                    assert store.movement(pipeline, start=start, end=end, **money) == pure

            story()
        finally:
            store.close()

    def test_movement_refuses_bad_arguments_before_reading(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        store.add(pipeline.start("m", amount=5, currency="EUR", at=T0))
        with pytest.raises(ValidationError, match="start"):
            store.movement(pipeline, start=T0.replace(tzinfo=None), end=T0)
        with pytest.raises(ValidationError, match="after end"):
            store.movement(pipeline, start=_later(2), end=_later(1))
        with pytest.raises(ValidationError, match="EUR"):
            store.movement(pipeline, start=T0, end=_later(1), currency="USD", rates={"KRW": 2})
        with pytest.raises(UnknownPipelineError):
            store.movement("nowhere", start=T0, end=_later(1))
        store.save_pipeline(pipeline)
        moved = store.movement("contract", start=T0, end=_later(1))
        assert (moved.created.count, moved.end.value) == (1, Decimal(5))

    def test_forecast_accuracy_equals_the_pure_one_over_the_log(self, pipeline: Pipeline) -> None:
        """Any story's forecast accuracy, for any window and instant, as ``metrics`` gives."""
        store = self.make_store()
        counter = itertools.count()
        try:

            @settings(max_examples=10, deadline=None)
            @given(st.data())
            def story(data: st.DataObject) -> None:
                prefix = f"f{next(counter)}-"
                _write_story(store, data.draw(deal_stories(pipeline, T0, prefix=prefix)))
                start, end = data.draw(windows(T0))
                made_at = start - timedelta(days=data.draw(st.integers(-2, 5)))
                changes = list(_whole_log(store))
                for money in _MOVEMENT_MONEY:
                    pure = metrics.forecast_accuracy(
                        changes, pipeline, made_at=made_at, start=start, end=end, **money
                    )
                    got = store.forecast_accuracy(
                        pipeline, made_at=made_at, start=start, end=end, **money
                    )
                    assert got == pure

            story()
        finally:
            store.close()

    def test_forecast_accuracy_refuses_bad_arguments(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        closing = (T0 + timedelta(days=1)).date()
        store.add(pipeline.start("f", amount=5, currency="EUR", close_date=closing, at=T0))
        end = T0 + timedelta(days=7)
        with pytest.raises(ValidationError, match="made_at"):
            store.forecast_accuracy(pipeline, made_at=T0.replace(tzinfo=None), start=T0, end=end)
        with pytest.raises(ValidationError, match="after end"):
            store.forecast_accuracy(pipeline, made_at=T0, start=_later(2), end=_later(1))
        with pytest.raises(ValidationError, match="EUR"):
            store.forecast_accuracy(
                pipeline, made_at=T0, start=T0, end=end, currency="USD", rates={"KRW": 2}
            )
        with pytest.raises(UnknownPipelineError):
            store.forecast_accuracy("nowhere", made_at=T0, start=T0, end=end)
        store.save_pipeline(pipeline)
        result = store.forecast_accuracy("contract", made_at=T0, start=T0, end=end)
        assert result.forecast_deals == 1
        assert result == metrics.forecast_accuracy(
            list(_whole_log(store)), pipeline, made_at=T0, start=T0, end=end
        )

    # -- lifecycle ------------------------------------------------------------------------

    def test_a_closed_store_refuses_work(self, pipeline: Pipeline) -> None:
        with self.make_store() as store:
            store.add(pipeline.start("x", at=T0))
        with pytest.raises(StorageError):
            store.get("x")
        store.close()  # closing twice is harmless

    def test_a_reopened_store_has_the_same_deals_and_definitions(self, pipeline: Pipeline) -> None:
        deal = rich_deal(pipeline)
        with self.make_store() as store:
            store.add(pipeline.start(deal.id, bant=QUALIFIED, at=T0))
            store.save_pipeline(pipeline)
        with self.reopen_store() as store:
            first = store.get(deal.id)
            store.save(pipeline.advance(first, at=_later(1)))
        with self.reopen_store() as store:
            assert [c.to_stage for c in store.history(deal.id)] == ["lead", "proposal"]
            assert store.pipelines() == (pipeline,)

    # -- threads --------------------------------------------------------------------------

    def _race(self, count: int, work: Callable[[int], Any]) -> list[Any]:
        """Run ``work(i)`` on ``count`` threads released together; results or exceptions."""
        barrier = threading.Barrier(count)
        results: list[Any] = [None] * count

        def run(index: int) -> None:
            barrier.wait()
            try:
                results[index] = work(index)
            except Exception as error:  # collected and asserted on by the caller
                results[index] = error

        workers = [threading.Thread(target=run, args=(i,)) for i in range(count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        return results

    def test_threads_saving_the_same_version_let_exactly_one_win(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        deal = pipeline.start("race", bant=QUALIFIED, at=T0)
        store.add(deal)
        loaded = [store.get("race") for _ in range(self.threads)]

        def save(index: int) -> Deal:
            moved = pipeline.lose(loaded[index], "price", at=_later(index + 1))
            store.save(moved)
            return moved

        results = self._race(self.threads, save)
        winners = [r for r in results if isinstance(r, Deal)]
        assert len(winners) == 1
        assert all(isinstance(r, ConcurrencyError) for r in results if r not in winners)
        assert store.get("race") == winners[0]
        assert [c.version for c in store.history("race")] == [1, 2]

    def test_threads_retrying_on_conflicts_lose_no_update(
        self, store: DealStore, pipeline: Pipeline
    ) -> None:
        store.add(pipeline.start("counter", at=T0))
        rounds = 5

        def bump(index: int) -> int:
            for _ in range(rounds):
                for _attempt in range(1000):
                    deal = store.get("counter")
                    try:
                        store.save(deal.evolve(amount=deal.amount + 1))
                        break
                    except ConcurrencyError:
                        continue
                else:
                    raise AssertionError("1000 conflicts in a row: saves never get through")
            return index

        assert self._race(self.threads, bump) == list(range(self.threads))
        final = store.get("counter")
        assert final.amount == self.threads * rounds
        assert final.version == 1 + self.threads * rounds

    # -- bulk: add_many ------------------------------------------------------------------

    @pytest.fixture
    def bulk_store(self, store: DealStore) -> DealStore:
        if not self.transactions:  # the default add_many is one store.transaction()
            pytest.skip("this store does not join calls into one transaction")
        return store

    def test_add_many_logs_each_deal_as_add_does_in_order(
        self, bulk_store: DealStore, pipeline: Pipeline
    ) -> None:
        store = bulk_store
        store.add(pipeline.start("first", at=T0))
        deals = [
            pipeline.start("b1", amount=10, owner="ann", at=T0),
            rich_deal(pipeline, "b2"),
            pipeline.start("b3", at=T0).evolve(amount=3, at=_later(1)),
        ]
        before = store.log()
        last = store.add_many(deals, actor="importer")
        assert [c.deal_id for c in last] == ["b1", "b2", "b3"]
        for deal, change in zip(deals, last, strict=True):
            expected = log.recorded(deal, actor="importer")
            kept = store.changes(deal.id)
            assert [attrs.evolve(c, position=None) for c in kept] == list(expected)
            assert change == kept[-1] and change.position is not None
            assert store.get(deal.id) == log.replay(kept)[deal.id]
        added = store.log(after=before[-1].position or 0)
        assert [(c.deal_id, c.version) for c in added] == [
            (d.id, v) for d in deals for v in range(1, d.version + 1)
        ]
        assert store.add_many([]) == ()
        assert store.verify() == ()

    def test_add_many_writes_nothing_when_any_deal_is_refused(
        self, bulk_store: DealStore, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = bulk_store
        store.add(pipeline.start("taken", at=T0))
        before = store.log()
        fresh = [pipeline.start(f"n{n}", at=T0) for n in range(4)]
        with pytest.raises(DuplicateDealError) as taken:
            store.add_many([*fresh[:2], rich_deal(pipeline, "rich"), store.get("taken"), fresh[2]])
        assert taken.value.deal_id == "taken"
        with pytest.raises(DuplicateDealError) as twice:
            store.add_many([fresh[0], fresh[1], fresh[0]])
        assert twice.value.deal_id == "n0"
        refusals: list[Callable[[], object]] = [
            lambda: store.add_many([fresh[0], "not a deal", fresh[1]]),  # type: ignore[list-item]
            lambda: store.add_many("n0"),  # type: ignore[arg-type]
            lambda: store.add_many(fresh, actor="  "),
            lambda: store.add_many(
                [fresh[0], pipeline.start("a", at=T0).evolve(at=_later(1))], imported=True
            ),
        ]
        for refused in refusals:
            with pytest.raises(ValidationError):
                refused()
        monkeypatch.setattr(limits, "MAX_BULK", 3)
        with pytest.raises(ValidationError, match="at most 3"):
            store.add_many(fresh)
        assert store.log() == before
        assert store.count() == 1
        assert store.verify() == ()

    def test_add_many_imported_logs_import_changes_that_replay_to_the_deal(
        self, bulk_store: DealStore, pipeline: Pipeline
    ) -> None:
        store = bulk_store
        deal = pipeline.start("imp", at=T0)
        deal = pipeline.lose(deal, "price", at=_later(1))
        deal = pipeline.reopen(deal, "closing", at=_later(2))
        (change,) = store.add_many([deal], actor="crm", key="row-7", imported=True)
        kept = store.changes("imp")
        assert [c.kind for c in kept] == ["import"] * 3
        assert (change.version, change.key, change.actor) == (3, "row-7", "crm")
        assert log.replay(kept) == {"imp": store.get("imp")}
        assert store.get("imp").history[1].reason == "price"
        assert store.verify() == ()

    def test_add_many_with_a_key_logs_it_on_each_deal_and_finds_each_by_it(
        self, bulk_store: DealStore, pipeline: Pipeline
    ) -> None:
        store = bulk_store
        deals = [pipeline.start(f"k{n}", at=T0) for n in range(3)]
        last = store.add_many(deals, key="batch-1")
        assert [c.key for c in last] == ["batch-1"] * 3
        for deal in deals:
            (found,) = store.changes(deal.id, key="batch-1")
            assert (found.kind, found.version, found.deal_id) == ("open", 1, deal.id)
        assert store.changes("k0", key="batch-2") == ()
        assert store.verify() == ()

    def test_add_many_joins_a_transaction_and_rolls_back_with_it(
        self, bulk_store: DealStore, pipeline: Pipeline
    ) -> None:
        store = bulk_store
        store.add(pipeline.start("kept", at=T0))
        before = store.log()
        _rolled_back(
            store, lambda: store.add_many([pipeline.start(f"t{n}", at=T0) for n in range(3)])
        )
        assert store.log() == before and store.count() == 1
        with store.transaction():
            store.add_many([pipeline.start(f"t{n}", at=T0) for n in range(3)])
        assert store.count() == 4
        assert store.verify() == ()

    # -- transactions --------------------------------------------------------------------

    #: whether the store joins calls into one transaction (``store.transaction()``);
    #: a store that does not must refuse the block with ``StorageError``
    transactions: bool = True

    @pytest.fixture
    def block_store(self, store: DealStore) -> DealStore:
        if not self.transactions:
            with pytest.raises(StorageError), store.transaction():
                pass  # pragma: no cover - the block is refused before it runs
            pytest.skip("this store does not join calls into one transaction")
        return store

    def test_a_transaction_commits_every_call_made_in_it(
        self, block_store: DealStore, pipeline: Pipeline
    ) -> None:
        store = block_store
        store.add(pipeline.start("kept", bant=QUALIFIED, at=T0))
        with store.transaction():
            store.save(pipeline.advance(store.get("kept"), at=_later(1)))
            store.add(pipeline.start("new", at=_later(2)))
        assert store.get("kept").stage == "proposal"
        assert store.get("new").version == 1
        assert [c.kind for c in store.log()] == ["open", "move", "open"]
        assert store.verify() == ()

    def test_an_error_in_a_transaction_undoes_every_call_made_in_it(
        self, block_store: DealStore, pipeline: Pipeline
    ) -> None:
        store = block_store
        store.add(pipeline.start("kept", bant=QUALIFIED, at=T0))
        store.record_consumer_position("mailer", 1)
        before, log_before = store.get("kept"), store.log()

        def work() -> None:
            store.save(pipeline.advance(store.get("kept"), at=_later(1)))
            store.add(pipeline.start("new", at=_later(2)))
            store.record_consumer_position("mailer", 2)
            assert store.get("kept").stage == "proposal"  # seen inside the block

        _rolled_back(store, work)
        assert store.get("kept") == before
        with pytest.raises(DealNotFoundError):
            store.get("new")
        assert store.log() == log_before
        assert store.consumer_position("mailer") == 1
        store.save(pipeline.advance(before, at=_later(3)))  # the stored version is the old one
        assert [c.version for c in store.changes("kept")] == [1, 2]
        assert store.verify() == ()

    def test_tracker_calls_join_the_transaction_and_listeners_wait_for_its_commit(
        self, block_store: DealStore, pipeline: Pipeline
    ) -> None:
        store = block_store
        times = iter(_later(step) for step in range(100))
        tracker = Tracker(store, pipeline, clock=lambda: next(times))
        heard: list[str] = []
        tracker.subscribe(lambda change, deal: heard.append(change.kind), event="win")
        tracker.open("contract", "deal", bant=QUALIFIED)
        for _ in range(2):
            tracker.advance("deal")
        _rolled_back(store, lambda: tracker.win("deal"))
        assert tracker.get("deal").stage == "closing"
        assert [c.kind for c in store.changes("deal")] == ["open", "move", "move"]
        assert heard == []
        with store.transaction():
            tracker.win("deal")
            assert heard == []  # not committed yet
        assert heard == ["move"]
        assert tracker.get("deal").stage == WON

    def test_an_inner_transaction_that_fails_undoes_only_its_own_calls(
        self, block_store: DealStore, pipeline: Pipeline
    ) -> None:
        store = block_store
        store.add(pipeline.start("deal", bant=QUALIFIED, at=T0))
        with store.transaction():
            store.save(pipeline.advance(store.get("deal"), at=_later(1)))
            _rolled_back(
                store, lambda: store.save(pipeline.advance(store.get("deal"), at=_later(2)))
            )
            assert store.get("deal").version == 2
            store.save(pipeline.lose(store.get("deal"), "price", at=_later(3)))
        assert [(c.version, c.to_stage) for c in store.changes("deal")] == [
            (1, "lead"),
            (2, "proposal"),
            (3, LOST),
        ]
        assert store.verify() == ()

    def test_another_thread_s_calls_stay_out_of_a_transaction(
        self, block_store: DealStore, pipeline: Pipeline
    ) -> None:
        store = block_store
        for id in ("mine", "theirs"):
            store.add(pipeline.start(id, bant=QUALIFIED, at=T0))
        other = threading.Thread(
            target=lambda: store.save(pipeline.advance(store.get("theirs"), at=_later(1)))
        )

        def work() -> None:
            store.save(pipeline.advance(store.get("mine"), at=_later(1)))
            other.start()  # it may wait for the block to end; it must not join it

        _rolled_back(store, work)
        other.join(timeout=60)
        assert store.get("theirs").version == 2
        assert store.get("mine").version == 1

    # -- erasure -------------------------------------------------------------------------

    #: whether the store erases deals (``store.erase``); a store that does not must
    #: refuse with ``StorageError``
    erasure: bool = True

    @pytest.fixture
    def erase_store(self, store: DealStore) -> DealStore:
        if not self.erasure:
            with pytest.raises(StorageError):
                store.erase("nobody", actor="dpo", reason="request")
            pytest.skip("this store does not erase deals")
        return store

    def _personal(self, store: DealStore, pipeline: Pipeline, id: str = "erased") -> Deal:
        """A deal carrying personal data in every place a deal can, stored with its past."""
        deal = pipeline.start(
            id,
            bant=QUALIFIED,
            fields={"email": "kim@example.com", "담당자": "김민수"},
            owner="owner-kim",
            next_action="call Kim at home",
            at=T0,
        )
        store.add(deal, actor="agent-lee", key="open-key")
        store.save(pipeline.advance(store.get(id), at=_later(1)), actor="agent-lee")
        lost = pipeline.lose(store.get(id), "price", at=_later(2))
        store.save(lost, actor="agent-park", key="lose-key")
        return store.get(id).evolve(owner="owner-choi", at=_later(3))

    def test_an_erased_deal_is_gone_and_only_its_erase_change_stays(
        self, erase_store: DealStore, pipeline: Pipeline
    ) -> None:
        store = erase_store
        deal = self._personal(store, pipeline)
        store.save(deal, reason="handed over")
        store.add(pipeline.start("kept", at=_later(4)))
        change = store.erase("erased", actor="dpo", reason="request 17", at=_later(5))
        assert (change.kind, change.version, change.at) == ("erase", 5, _later(5))
        assert (change.actor, change.reason, dict(change.changed)) == ("dpo", "request 17", {})
        assert change.from_stage is None and change.to_stage is None
        assert change.position == max(c.position or 0 for c in store.log())
        with pytest.raises(DealNotFoundError):
            store.get("erased")
        with pytest.raises(DealNotFoundError):
            store.history("erased")
        assert [d.id for d in store.find()] == ["kept"] and store.count() == 1
        assert store.changes("erased") == (change,)
        assert [c.deal_id for c in store.log()] == ["kept", "erased"]
        assert log.replay(store.log()) == {"kept": store.get("kept")}
        assert store.verify() == ()

    def test_readers_positioned_before_an_erasure_skip_no_other_change(
        self, erase_store: DealStore, pipeline: Pipeline
    ) -> None:
        store = erase_store
        store.add(pipeline.start("first", at=T0))
        self._personal(store, pipeline)
        store.add(pipeline.start("last", at=_later(4)))
        consumer = store.consumer("mailer")
        assert consumer.poll(lambda change: None, limit=1) == 1
        store.erase("erased", actor="dpo", reason="request 17")
        seen: list[tuple[str, str]] = []
        assert consumer.poll(lambda change: seen.append((change.deal_id, change.kind))) == 2
        assert seen == [("last", "open"), ("erased", "erase")]
        paged, after = [], 0
        while page := store.log(after=after, limit=1):
            paged.append(page[0])
            after = page[0].position or 0
        assert paged == list(store.log())
        assert consumer.poll(lambda change: None) == 0

    def test_an_erased_id_stays_taken(self, erase_store: DealStore, pipeline: Pipeline) -> None:
        store = erase_store
        self._personal(store, pipeline)
        store.erase("erased", actor="dpo", reason="request 17")
        before = store.log()
        with pytest.raises(DuplicateDealError):
            store.add(pipeline.start("erased", at=_later(9)))
        with pytest.raises(DuplicateDealError):
            store.add_many(
                [pipeline.start("fresh", at=_later(9)), pipeline.start("erased", at=_later(9))]
            )
        assert store.log() == before and store.verify() == ()

    @pytest.mark.parametrize(
        "arguments",
        [
            {"actor": None, "reason": "request 17"},
            {"actor": " ", "reason": "request 17"},
            {"actor": "dpo", "reason": None},
            {"actor": "dpo", "reason": " \t"},
            {"actor": "dpo", "reason": "x" * 100_000},
            {"actor": "dpo", "reason": "request 17", "key": ""},
            {"actor": "dpo", "reason": "request 17", "at": datetime(2026, 1, 1)},
        ],
    )
    def test_an_erase_without_a_proper_actor_or_reason_writes_nothing(
        self, erase_store: DealStore, pipeline: Pipeline, arguments: dict[str, Any]
    ) -> None:
        store = erase_store
        deal = self._personal(store, pipeline)
        before = store.log()
        with pytest.raises(ValidationError):
            store.erase("erased", **arguments)
        assert store.log() == before
        assert store.get("erased").version == deal.version - 1

    def test_erasing_a_deal_that_is_not_there_writes_nothing(
        self, erase_store: DealStore, pipeline: Pipeline
    ) -> None:
        store = erase_store
        self._personal(store, pipeline)
        before = store.log()
        with pytest.raises(DealNotFoundError) as error:
            store.erase("nobody", actor="dpo", reason="request 17")
        assert error.value.deal_id == "nobody"
        with pytest.raises(ValidationError):
            store.erase("", actor="dpo", reason="request 17")
        assert store.log() == before

    def test_an_erase_retried_with_its_key_returns_its_change_and_writes_nothing(
        self, erase_store: DealStore, pipeline: Pipeline
    ) -> None:
        store = erase_store
        self._personal(store, pipeline)
        first = store.erase("erased", actor="dpo", reason="request 17", key="gdpr-17")
        assert first.key == "gdpr-17"
        assert store.erase("erased", actor="dpo", reason="request 17", key="gdpr-17") == first
        with pytest.raises(DealNotFoundError):
            store.erase("erased", actor="dpo", reason="request 17", key="another")
        with pytest.raises(DealNotFoundError):
            store.erase("erased", actor="dpo", reason="request 17")
        assert store.changes("erased") == (first,)

    def test_an_erase_is_never_earlier_than_the_deal_s_last_change(
        self, erase_store: DealStore, pipeline: Pipeline
    ) -> None:
        store = erase_store
        deal = self._personal(store, pipeline)
        store.save(deal)
        change = store.erase("erased", actor="dpo", reason="request 17", at=T0)
        assert change.at == deal.updated_at

    def test_an_erase_in_a_failed_transaction_is_undone(
        self, block_store: DealStore, pipeline: Pipeline
    ) -> None:
        if not self.erasure:
            pytest.skip("this store does not erase deals")
        store = block_store
        deal = self._personal(store, pipeline)
        store.add(pipeline.start("kept", bant=QUALIFIED, at=_later(4)))
        before = store.log()

        def work() -> None:
            store.erase("erased", actor="dpo", reason="request 17")
            store.save(pipeline.advance(store.get("kept"), at=_later(5)))

        _rolled_back(store, work)
        assert store.log() == before
        assert store.get("erased").version == deal.version - 1
        assert store.verify() == ()
        with store.transaction():
            store.erase("erased", actor="dpo", reason="request 17")
        assert [d.id for d in store.find()] == ["kept"] and store.verify() == ()

    def test_tracker_erase_needs_an_actor_and_takes_the_tracker_s(
        self, erase_store: DealStore, pipeline: Pipeline
    ) -> None:
        store = erase_store
        times = iter(_later(step) for step in range(100))
        tracker = Tracker(store, pipeline, clock=lambda: next(times))
        tracker.open("contract", "a", owner="owner-kim")
        tracker.open("contract", "b", owner="owner-kim")
        with pytest.raises(ValidationError):
            tracker.erase("a", reason="request 17")
        assert tracker.get("a").version == 1
        change = tracker.erase("a", reason="request 17", actor="dpo", key="k")
        assert (change.kind, change.actor, change.key) == ("erase", "dpo", "k")
        assert tracker.erase("a", reason="request 17", actor="dpo", key="k") == change
        with pytest.raises(DealNotFoundError):
            tracker.get("a")
        keeper = Tracker(store, pipeline, actor="dpo-desk")
        assert keeper.erase("b", reason="request 18").actor == "dpo-desk"
        assert list(tracker.deals()) == [] and store.verify() == ()

    def test_an_erase_racing_saves_comes_after_every_change_they_committed(
        self, erase_store: DealStore, pipeline: Pipeline
    ) -> None:
        """Whichever commits first, the erase change's version is above every saved
        one (a consumer deduplicating on deal and version never drops it), and no
        change of the deal outlives it."""
        store = erase_store
        store.add(pipeline.start("raced", at=T0))
        store.add(pipeline.start("kept", at=T0))

        def work(index: int) -> object:
            if index == 0:
                return store.erase("raced", actor="dpo", reason="request 17")
            saved = []
            for _ in range(20):
                try:
                    deal = store.get("raced")
                    saved.append(store.save(deal.evolve(amount=deal.amount + 1)))
                except (ConcurrencyError, DealNotFoundError):
                    continue
            return saved

        results = self._race(self.threads, work)
        erased = results[0]
        assert isinstance(erased, log.Change) and erased.kind == "erase"
        saved = [c for r in results[1:] for c in r if isinstance(r, list)]
        assert all(not isinstance(r, Exception) for r in results)
        assert all(c.version < erased.version for c in saved if c is not None)
        assert store.changes("raced") == (erased,)
        assert [d.id for d in store.find()] == ["kept"] and store.verify() == ()

    def test_any_story_of_opens_updates_and_erasures_replays_to_the_stored_deals(
        self, pipeline: Pipeline
    ) -> None:
        if not self.erasure:
            pytest.skip("this store does not erase deals")
        store = self.make_store()
        counter = itertools.count()
        try:

            @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
            @given(st.lists(st.tuples(st.sampled_from("ouxe"), st.integers(0, 2)), max_size=12))
            def story(steps: list[tuple[str, int]]) -> None:
                run = next(counter)
                erased: set[str] = set()
                for what, n in steps:
                    _apply_story_step(store, pipeline, f"s{run}-{n}", what, erased)
                deals = {d.id: d for d in store.find() if d.id.startswith(f"s{run}-")}
                ours = [c for c in store.log() if c.deal_id.startswith(f"s{run}-")]
                assert log.replay(ours) == deals
                assert {c.deal_id for c in ours if c.kind == "erase"} == erased
                for id in erased:
                    assert [c.kind for c in store.changes(id)] == ["erase"]
                positions = [c.position or 0 for c in store.log()]
                assert positions == sorted(set(positions))
                assert store.verify() == ()

            story()
        finally:
            store.close()


_MOVEMENT_MONEY: Final[tuple[dict[str, Any], ...]] = (
    {},
    {"currency": "EUR"},
    {"currency": "USD", "rates": {"EUR": Decimal("1.08"), "KRW": Decimal("0.00074")}},
)


def _write_story(store: DealStore, story: list[tuple[Deal | None, Deal]]) -> None:
    """Each step of a generated story, added or saved."""
    for before, after in story:
        if before is None:
            store.add(after)
        else:
            store.save(after)


def _whole_log(store: DealStore) -> Iterator[log.Change]:
    """Every change in ``store``'s log, page by page."""
    after = 0
    while page := store.log(after=after, limit=7):
        yield from page
        after = page[-1].position or 0


def _apply_story_step(
    store: DealStore, pipeline: Pipeline, id: str, what: str, erased: set[str]
) -> None:
    """One step of a story: ``o`` open, ``u`` update, ``x`` erase, ``e`` erase again;
    each refused the way the contract says when the deal is not (or no longer) there."""
    exists = any(True for _ in store.find(owner=f"owner-{id}"))
    if what == "o":
        if id in erased or exists:
            with pytest.raises(DuplicateDealError):
                store.add(pipeline.start(id, owner=f"owner-{id}", at=T0))
        else:
            store.add(pipeline.start(id, owner=f"owner-{id}", at=T0))
    elif what == "u" and exists:
        deal = store.get(id)
        store.save(deal.evolve(amount=deal.amount + 1, at=deal.updated_at), actor=f"by-{id}")
    elif what in "xe" and exists:
        store.erase(id, actor="dpo", reason="request")
        erased.add(id)
    elif what in "xe":
        with pytest.raises(DealNotFoundError):
            store.erase(id, actor="dpo", reason="request")


class _Boom(Exception):
    """The error a test raises inside a transaction."""


def _rolled_back(store: DealStore, work: Callable[[], object]) -> None:
    """Run ``work`` in a transaction that then fails with ``_Boom``."""

    def fail() -> None:
        with store.transaction():
            work()
            raise _Boom

    with pytest.raises(_Boom):
        fail()
