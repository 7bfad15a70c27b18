"""Unit tests of the memory backend (``state.memory.MemoryState``); the behaviour every backend shares is
checked by the contract tests (``test_contract.py``), over real HTTP by the behaviour tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from mockserver.core.clock import Clock
from mockserver.core.journal import MAX_PATH_CHARS, TRUNCATED
from mockserver.resources import PROVIDER_IDS, fixtures_dir
from mockserver.settings import Settings
from mockserver.state.api import State
from mockserver.state.factory import create_state
from mockserver.state.records import (
    DeliveryRecord,
    FaultRecord,
    FileRecord,
    HoldRecord,
    JobRecord,
    JsonRecord,
    KeyRecord,
)
from mockserver.state.seed import key_id_of, read_seeds

SEEDS = read_seeds(fixtures_dir(), PROVIDER_IDS)


def make(**changes: Any) -> State:
    return create_state(Settings(**changes), SEEDS, Clock())


@dataclass(slots=True)
class Thing(JsonRecord):
    kind: ClassVar[str] = "things"
    id: str
    value: int = 0


def hold(cents: int, *, account: str, key_id: str | None, hold_id: str = "h1") -> HoldRecord:
    return HoldRecord(hold_id, "pahlavan", account, key_id, cents, cents, f"{cents / 100}", cents * 1_000_000)


def wallet_key(state: State) -> KeyRecord:
    return state.seed("pahlavan").keys[0]


async def test_the_factory_makes_a_memory_state_answering_health() -> None:
    state = make()
    await state.open()
    assert state.backend == "memory"
    assert state.instance == 0
    assert await state.health() == {"backend": "memory", "status": "ok"}
    await state.close()


async def test_keys_are_found_by_secret_and_id_and_revocation_makes_a_new_record() -> None:
    state = make()
    seeded = state.seed("spaceai").keys[0]
    found = await state.find_key("spaceai", seeded.key)
    assert found is not None
    assert found.key_id == seeded.key_id
    assert found is not seeded  # the seed stays untouched by what requests change
    assert await state.find_key("spaceai", "sk-nope") is None
    revoked = await state.update_key("spaceai", seeded.key_id, revoked=True)
    assert revoked is not None
    assert revoked.revoked
    assert not found.revoked  # a record handed out earlier is not changed behind its holder's back
    again = await state.find_key("spaceai", seeded.key)
    assert again is not None
    assert again.revoked
    assert await state.update_key("spaceai", "key_000000000000", revoked=True) is None


async def test_a_new_key_joins_or_creates_its_account_and_secrets_are_unique() -> None:
    state = make()
    secret = "sk-new-secret-0123456789"
    key = KeyRecord(secret, "acct_new", key_id_of(secret), name="ci")
    assert await state.add_key("spaceai", key)
    assert not await state.add_key("spaceai", key)
    assert (await state.keys("spaceai"))[-1].key == secret
    assert (await state.keys("spaceai"))[0].seeded
    assert await state.account("spaceai", "acct_new") is not None
    assert (await state.wallet("spaceai", "acct_new", key.key_id)).wallet_cents is None


async def test_reserve_settle_release_keep_the_wallet_invariant() -> None:
    state = make()
    key = wallet_key(state)
    start = (await state.wallet("pahlavan", key.account, key.key_id)).wallet_cents
    assert start is not None
    assert start > 10
    first = hold(10, account=key.account, key_id=key.key_id)
    assert await state.reserve(first) is None
    view = await state.wallet("pahlavan", key.account, key.key_id)
    assert (view.held_cents, view.key_held_cents) == (10, 10)
    # 2.5 cents settles 2 now and carries half a cent: the next half cent makes a whole one.
    assert await state.settle(first, 2_500_000) == 2
    assert await state.settle(first, 2_500_000) is None  # settled once only
    second = hold(1, account=key.account, key_id=key.key_id, hold_id="h2")
    assert await state.reserve(second) is None
    assert await state.settle(second, 500_000) == 1
    third = hold(5, account=key.account, key_id=key.key_id, hold_id="h3")
    assert await state.reserve(third) is None
    await state.release(third)
    await state.release(third)
    view = await state.wallet("pahlavan", key.account, key.key_id)
    assert view.wallet_cents == start - 3
    assert (view.held_cents, view.key_held_cents, view.key_spent_cents, view.carry_microcents) == (0, 0, 3, 0)


async def test_a_reservation_the_wallet_or_key_cannot_cover_holds_nothing() -> None:
    state = make()
    key = wallet_key(state)
    balance = (await state.wallet("pahlavan", key.account, None)).wallet_cents
    assert balance is not None
    refusal = await state.reserve(hold(balance + 1, account=key.account, key_id=key.key_id))
    assert refusal is not None
    assert refusal.reason == "wallet"
    assert refusal.view.wallet_cents == balance
    await state.update_key("pahlavan", key.key_id, spend_limit_cents=4)
    assert await state.reserve(hold(3, account=key.account, key_id=key.key_id)) is None
    refused = await state.reserve(hold(2, account=key.account, key_id=key.key_id, hold_id="h2"))
    assert refused is not None
    assert refused.reason == "key"
    assert refused.view.key_held_cents == 3
    assert (await state.wallet("pahlavan", key.account, key.key_id)).held_cents == 3
    with pytest.raises(ValueError, match="exceeds its hold"):
        await state.settle(hold(3, account=key.account, key_id=key.key_id), 4_000_000)


async def test_set_wallet_on_unknown_and_known_accounts() -> None:
    state = make()
    key = wallet_key(state)
    assert await state.set_wallet("pahlavan", "nobody", 5) is None
    view = await state.set_wallet("pahlavan", key.account, 7)
    assert view is not None
    assert view.wallet_cents == 7


async def test_admit_counts_one_minute_windows_and_takes_faults_in_order() -> None:
    clock = Clock()
    state = create_state(Settings(), SEEDS, clock)
    nothing = await state.admit("spaceai", "createChatCompletion", None, 2)
    assert nothing.rate is None
    assert nothing.fault is None
    rates = [(await state.admit("spaceai", "op", "key_a", 2)).rate for _ in range(3)]
    assert [(r.remaining, r.exceeded) for r in rates if r] == [(1, False), (0, False), (0, True)]
    other = (await state.admit("spaceai", "op", "key_b", 2)).rate
    assert other is not None
    assert other.remaining == 1
    clock.advance(60)
    fresh = (await state.admit("spaceai", "op", "key_a", 2)).rate
    assert fresh is not None
    assert not fresh.exceeded
    assert fresh.remaining == 1
    first = await state.add_fault(FaultRecord(0, "spaceai", "op", 1, status=503))
    second = await state.add_fault(FaultRecord(0, None, None, None, latency_ms=5))
    assert (first.id, second.id) == (1, 2)
    assert (await state.admit("spaceai", None, None, 1)).fault is None  # route errors take none
    taken = [(await state.admit("spaceai", "op", None, 1)).fault for _ in range(2)]
    assert [f.id for f in taken if f] == [1, 2]
    assert [f.id for f in await state.faults()] == [2]
    await state.clear_faults()
    assert await state.faults() == []


async def test_resources_expire_by_the_clock_and_count_by_kind() -> None:
    clock = Clock()
    state = create_state(Settings(resource_ttl=10, max_resources=2), SEEDS, clock)
    for index in range(3):
        await state.put("spaceai", Thing(f"t{index}", index))
    assert await state.get("spaceai", Thing, "t0") is None  # over the cap
    got = await state.get("spaceai", Thing, "t2")
    assert got is not None
    assert got.value == 2
    assert await state.get("modelstudio", Thing, "t2") is None
    assert [t.id for t in await state.resources("spaceai", Thing)] == ["t1", "t2"]
    assert (await state.counts())["spaceai"] == {"things": 2}
    clock.advance(11)
    assert await state.get("spaceai", Thing, "t2") is None
    assert await state.resources("spaceai", Thing) == []


async def test_files_keep_their_recipe_until_a_blob_is_put() -> None:
    state = make()
    record = FileRecord("f1", "a.png", "image/png", {"render": "image", "prompt": "p", "seed": 1})
    await state.put_file(record, None)
    assert await state.get_file("f1") == (record, None)
    await state.put_blob("f1", b"png")
    assert await state.get_file("f1") == (record, b"png")
    assert await state.get_file("f2") is None


def job(job_id: str, created_at: float, **changes: Any) -> JobRecord:
    return JobRecord(job_id, "modelstudio", "acct", created_at, 1.0, 1.0, 1, [], "video", **changes)


async def test_due_jobs_are_claimed_once_under_a_lease_until_finished() -> None:
    state = make()
    changed = state.changed("jobs")
    await state.put_job(job("late", 100.0))
    await state.put_job(job("early", 50.0))
    assert changed.is_set()
    assert await state.next_job_due() == 52.0
    assert await state.claim_due_jobs(51.0, 30, 10) == []
    claimed = await state.claim_due_jobs(200.0, 30, 1)
    assert [j.id for j in claimed] == ["early"]
    assert await state.next_job_due() == 102.0  # the leased one is nobody else's to run
    assert not await state.claim_job("modelstudio", "early", 30)
    assert await state.claim_job("modelstudio", "late", 30)  # now() is well past 102
    assert await state.claim_due_jobs(200.0, 30, 10) == []
    assert await state.next_job_due() is None
    done = job("early", 50.0, finished=True, data={"out": 1})
    await state.finish_job(done)
    stored = await state.get_job("modelstudio", "early")
    assert stored is not None
    assert stored.finished
    assert stored.data == {"out": 1}
    assert [j.id for j in await state.jobs()] == ["early", "late"]


async def test_a_job_whose_lease_ran_out_is_due_again() -> None:
    state = make()
    await state.put_job(job("j", 10.0))
    assert [j.id for j in await state.claim_due_jobs(100.0, 0.01, 5)] == ["j"]
    await asyncio.sleep(0.05)
    assert [j.id for j in await state.claim_due_jobs(100.0, 30, 5)] == ["j"]


def delivery(delivery_id: str, due: float | None, status: str = "pending") -> DeliveryRecord:
    return DeliveryRecord(
        id=delivery_id,
        provider="modelstudio",
        event="job.done",
        url="http://127.0.0.1:9/hook",
        payload={},
        body="{}",
        secret="whsec_x",
        created_at=0.0,
        status=status,
        next_attempt_at=due,
    )


async def test_deliveries_are_claimed_in_due_order_and_put_back() -> None:
    state = make()
    await state.put_delivery(delivery("d2", 20.0))
    await state.put_delivery(delivery("d1", 10.0))
    assert await state.next_delivery_due() == 10.0
    assert await state.claim_delivery(5.0, 30) is None
    first = await state.claim_delivery(15.0, 30)
    assert first is not None
    assert first.id == "d1"
    assert await state.claim_delivery(15.0, 30) is None  # d1 is leased, d2 not due
    await state.put_delivery(delivery("d1", 30.0))  # a retry later, lease ended
    assert await state.next_delivery_due() == 20.0
    await state.put_delivery(delivery("d2", None, "succeeded"))
    assert await state.next_delivery_due() == 30.0
    assert [d.id for d in await state.deliveries()] == ["d2", "d1"]
    assert await state.deliveries("spaceai") == []
    assert (await state.get_delivery("d2")) is not None


async def test_the_journal_pages_by_cursor_and_keeps_its_caps() -> None:
    state = make(journal_max_entries=5)
    ids = [
        state.record((float(i), "spaceai" if i % 2 else "pahlavan", "GET", f"/p{i}", None, 200, 1.0))
        for i in range(8)
    ]
    assert ids == list(range(1, 9))
    page, cursor = await state.journal_page(None, 3)
    assert [e["id"] for e in page] == [6, 7, 8]
    assert cursor == 6
    page, cursor = await state.journal_page(None, 3, before=6)
    assert [e["id"] for e in page] == [4, 5]
    assert cursor is None
    page, cursor = await state.journal_page("spaceai", 10, after=0)
    assert [e["id"] for e in page] == [4, 6, 8]
    assert cursor is None
    assert page[0] == {
        "id": 4,
        "time": 3.0,
        "provider": "spaceai",
        "method": "GET",
        "path": "/p3",
        "operation_id": None,
        "status": 200,
        "latency_ms": 1.0,
    }
    page, cursor = await state.journal_page(None, 2, after=4)
    assert [e["id"] for e in page] == [5, 6]
    assert cursor == 6
    await state.add_violation({"problem": "x"})
    assert await state.violations() == [{"problem": "x"}]
    await state.clear_journal()
    assert await state.journal_page(None, 10) == ([], None)
    assert await state.violations() == []
    assert state.record((0.0, "spaceai", "GET", "/", None, 200, 1.0)) == 9  # ids go on counting


async def test_the_byte_cap_drops_the_oldest_and_long_paths_are_cut() -> None:
    state = make(journal_max_entries=100, journal_max_bytes=3000)
    state.record((0.0, "spaceai", "GET", "/" + "x" * 5000, None, 200, 1.0))
    entries, size = await state.journal_size()
    assert entries == 1
    assert size == 320 + MAX_PATH_CHARS + len(TRUNCATED)
    page, _ = await state.journal_page(None, 1)
    assert page[0]["path"].endswith(TRUNCATED)
    for index in range(20):
        state.record((0.0, "spaceai", "GET", f"/{index}", None, 200, 1.0))
    entries, size = await state.journal_size()
    assert size <= 3000
    assert entries == 3000 // (320 + 3)


async def test_reset_restores_the_seed_and_forgets_everything_else() -> None:
    clock = Clock()
    state = create_state(Settings(), SEEDS, clock)
    reset = state.changed("reset")
    key = wallet_key(state)
    await state.update_key("pahlavan", key.key_id, revoked=True)
    await state.reserve(hold(1, account=key.account, key_id=key.key_id))
    await state.put("pahlavan", Thing("t"))
    await state.put_job(job("j", 0.0))
    await state.put_delivery(delivery("d", 1.0))
    await state.add_fault(FaultRecord(0, None, None, None, status=500))
    state.record((0.0, "pahlavan", "GET", "/", None, 200, 1.0))
    assert await state.shared_secret("one") == "one"
    assert await state.shared_secret("two") == "one"
    await state.advance_clock(100)
    await state.reset()
    assert reset.is_set()
    found = await state.find_key("pahlavan", key.key)
    assert found is not None
    assert not found.revoked
    view = await state.wallet("pahlavan", key.account, key.key_id)
    assert (view.held_cents, view.wallet_cents) == (0, SEEDS["pahlavan"].wallets[key.account])
    assert await state.get("pahlavan", Thing, "t") is None
    assert await state.jobs() == []
    assert await state.next_job_due() is None
    assert await state.deliveries() == []
    assert await state.next_delivery_due() is None
    assert await state.faults() == []
    assert await state.journal_page(None, 10) == ([], None)
    assert clock.offset == 0


async def test_windows_of_past_minutes_are_dropped() -> None:
    clock = Clock()
    state = create_state(Settings(), SEEDS, clock)
    for bucket in ("ip:1", "ip:2", "key_a"):
        await state.admit("spaceai", "op", bucket, 5)
    assert len(state._windows) == 3  # type: ignore[attr-defined]
    clock.advance(60)
    await state.admit("spaceai", "op", "key_a", 5)
    assert len(state._windows) == 1  # type: ignore[attr-defined]  # only this minute's bucket is kept


async def test_a_refused_request_takes_no_fault() -> None:
    state = make()
    await state.add_fault(FaultRecord(0, None, None, 1, status=500))
    await state.admit("spaceai", "op", "key_a", 1)  # the fault goes to the first request
    await state.add_fault(FaultRecord(0, None, None, 1, status=500))
    refused = await state.admit("spaceai", "op", "key_a", 1)
    assert refused.rate is not None
    assert refused.rate.exceeded
    assert refused.fault is None
    assert len(await state.faults()) == 1
