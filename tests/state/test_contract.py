"""The ``State`` contract, one suite run on every backend (``memory`` and ``redis``).

Cross-instance behaviour uses ``pair``: two Redis instances on one prefix (for memory, the one state twice),
so "claimed once", "counted across both" and "the clock moves everywhere" are checked where they matter.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import pytest
from conftest import OTHER, PROVIDER, StateMaker

from mockserver.core.journal import ENTRY_BYTES, VIOLATIONS
from mockserver.core.ratelimit import WINDOW_SECONDS
from mockserver.state.api import State
from mockserver.state.records import (
    DeliveryRecord,
    FaultRecord,
    FileRecord,
    HoldRecord,
    JobRecord,
    KeyRecord,
)
from mockserver.state.seed import key_id_of

RICH = "key-rich-00000001"
LIMITED = "key-limited-000002"
POOR = "key-poor-000000003"
WAIT_SECONDS = 5.0
"""The longest a notice may take to reach the other instance (a bound, not a pace: polled every 10 ms)."""


async def eventually(check: Any, what: str) -> None:
    """Poll ``check()`` (sync or async) until true, for at most ``WAIT_SECONDS``."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.01)
    raise AssertionError(what)  # pragma: no cover (the timeout raises first)


@dataclass(slots=True)
class Widget:
    """A resource kind of the tests' own."""

    kind: ClassVar[str] = "widgets"
    id: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "size": self.size}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(id=data["id"], size=data["size"])


def hold(hold_id: str, key: str | None, cents: int, microcents: int, account: str = "acc_rich") -> HoldRecord:
    return HoldRecord(
        id=hold_id,
        provider=PROVIDER,
        account=account,
        key_id=None if key is None else key_id_of(key),
        cents=cents,
        estimated_cents=cents,
        metered_estimate="0",
        microcents=microcents,
    )


def new_key(secret: str, account: str = "acc_new", limit: int | None = None) -> KeyRecord:
    return KeyRecord(key=secret, account=account, key_id=key_id_of(secret), spend_limit_cents=limit)


# -- keys and accounts -------------------------------------------------------------------------------------


async def test_seeded_keys_and_accounts(state: State) -> None:
    key = await state.find_key(PROVIDER, RICH)
    assert key is not None
    assert (key.account, key.name, key.seeded, key.revoked) == ("acc_rich", "first", True, False)
    assert await state.find_key(PROVIDER, "no-such-key") is None
    assert await state.find_key(OTHER, RICH) is None  # keys are per provider
    assert [k.key for k in await state.keys(PROVIDER)] == [RICH, LIMITED, POOR]
    assert (await state.key_by_id(PROVIDER, key_id_of(LIMITED))).spend_limit_cents == 50  # type: ignore[union-attr]
    assert await state.key_by_id(PROVIDER, "key_000000000000") is None
    assert {a.id for a in await state.accounts(PROVIDER)} == {"acc_rich", "acc_poor", "acc_free"}
    rich = await state.account(PROVIDER, "acc_rich")
    assert rich is not None
    assert rich.extra == {"name": "Rich"}
    assert await state.account(PROVIDER, "acc_nobody") is None
    assert state.seed(PROVIDER).models.keys() == {"model-a"}
    assert state.seed(PROVIDER).extra["tools"] == [{"id": "tool-1"}]


async def test_add_and_update_keys_across_instances(pair: tuple[State, State]) -> None:
    a, b = pair
    assert await a.add_key(PROVIDER, new_key("key-created-000001", limit=7))
    assert not await b.add_key(PROVIDER, new_key("key-created-000001"))  # the secret is taken
    assert not await a.add_key(PROVIDER, new_key(RICH))
    found = await b.find_key(PROVIDER, "key-created-000001")
    assert found is not None
    assert found.account == "acc_new"
    assert found.spend_limit_cents == 7
    assert await b.account(PROVIDER, "acc_new") is not None  # its account was created
    assert [k.key for k in await b.keys(PROVIDER)][-1] == "key-created-000001"
    assert (await b.wallet(PROVIDER, "acc_new", found.key_id)).key_spend_limit_cents == 7

    updated = await a.update_key(PROVIDER, found.key_id, revoked=True, spend_limit_cents=None)
    assert updated is not None
    assert updated.revoked
    assert updated.spend_limit_cents is None
    assert await a.update_key(PROVIDER, "key_000000000000", revoked=True) is None

    async def revoked_on_b() -> bool:
        key = await b.find_key(PROVIDER, "key-created-000001")
        return key is not None and key.revoked

    await eventually(revoked_on_b, "the other instance still sees the key unrevoked")
    kept = await b.key_by_id(PROVIDER, found.key_id)
    assert kept is not None
    assert kept.spend_limit_cents is None
    assert kept.account == "acc_new"
    assert (await b.wallet(PROVIDER, "acc_new", found.key_id)).key_spend_limit_cents is None


# -- money -------------------------------------------------------------------------------------------------


async def test_reserve_settle_release_with_carry(state: State) -> None:
    rich = key_id_of(RICH)
    first = hold("h-1", RICH, 2, 1_500_000)
    assert await state.reserve(first) is None
    view = await state.wallet(PROVIDER, "acc_rich", rich)
    assert (view.wallet_cents, view.held_cents, view.key_held_cents) == (1000, 2, 2)
    assert await state.settle(first, 1_500_000) == 1  # 1.5 cents: 1 settled, 0.5 carried
    assert await state.settle(first, 1_500_000) is None  # once only
    await state.release(first)  # a no-op once settled
    view = await state.wallet(PROVIDER, "acc_rich", rich)
    assert (view.wallet_cents, view.held_cents, view.carry_microcents) == (999, 0, 500_000)
    assert (view.key_spent_cents, view.key_held_cents) == (1, 0)

    second = hold("h-2", RICH, 2, 1_500_000)
    assert await state.reserve(second) is None
    assert await state.settle(second, 1_500_000) == 2  # 1.5 + the carried 0.5
    third = hold("h-3", RICH, 3, 2_999_999)
    assert await state.reserve(third) is None
    await state.release(third)
    await state.release(third)
    assert await state.settle(third, 1) is None  # released: nothing charged
    view = await state.wallet(PROVIDER, "acc_rich", rich)
    assert (view.wallet_cents, view.held_cents, view.carry_microcents, view.key_spent_cents) == (997, 0, 0, 3)


async def test_refusals_hold_nothing(state: State) -> None:
    refusal = await state.reserve(hold("h-poor", POOR, 2, 2_000_000, account="acc_poor"))
    assert refusal is not None
    assert refusal.reason == "wallet"
    assert (refusal.view.wallet_cents, refusal.view.held_cents) == (1, 0)
    assert await state.reserve(hold("h-free", None, 1, 1, account="acc_free")) is not None  # no wallet
    assert await state.reserve(hold("h-zero", None, 0, 0, account="acc_free")) is None  # nothing to pay

    assert await state.reserve(hold("h-limit-1", LIMITED, 40, 40_000_000)) is None
    refusal = await state.reserve(hold("h-limit-2", LIMITED, 11, 11_000_000))  # 40 held + 11 > 50
    assert refusal is not None
    assert refusal.reason == "key"
    assert (refusal.view.key_spend_limit_cents, refusal.view.key_held_cents) == (50, 40)
    assert refusal.view.wallet_cents == 1000
    view = await state.wallet(PROVIDER, "acc_rich", key_id_of(LIMITED))
    assert (view.held_cents, view.key_held_cents) == (40, 40)  # the refused hold left nothing


async def test_set_wallet_and_large_amounts(state: State) -> None:
    big = 2**52  # cents: every Lua number stays exact below 2**53
    assert await state.set_wallet(PROVIDER, "acc_nobody", 5) is None
    view = await state.set_wallet(PROVIDER, "acc_rich", big)
    assert view is not None
    assert view.wallet_cents == big
    microcents = (big - 1) * 1_000_000 + 999_999  # more than 2**53: passed split into cents and the rest
    large = hold("h-big", None, big, microcents)
    assert await state.reserve(large) is None
    assert await state.settle(large, microcents) == big - 1
    view = await state.wallet(PROVIDER, "acc_rich", None)
    assert (view.wallet_cents, view.carry_microcents, view.held_cents) == (1, 999_999, 0)
    assert (await state.set_wallet(PROVIDER, "acc_rich", None)).wallet_cents is None  # type: ignore[union-attr]


async def test_wallet_invariant_under_concurrency(pair: tuple[State, State]) -> None:
    """>= 200 concurrent reserve/settle/release over two instances: never overdrawn, balance change = sum
    of the settled cents, the key's spent = its settled cents and within its limit, nothing left held."""
    a, b = pair
    await a.set_wallet(PROVIDER, "acc_rich", 300)
    rng = random.Random(14)
    settled: list[int] = []
    refused = 0

    async def one(n: int) -> None:
        nonlocal refused
        state = (a, b)[n % 2]
        key = (RICH, LIMITED)[n % 3 == 0]
        microcents = rng.randrange(1, 5_000_000)
        reserved = hold(f"h-{n}", key, -(-microcents // 1_000_000), microcents)
        if await state.reserve(reserved) is not None:
            refused += 1
            return
        await asyncio.sleep(0)
        other = (b, a)[n % 2]  # settled by the other instance, like a job finished elsewhere
        if n % 5 == 0:
            await other.release(reserved)
        else:
            cents = await other.settle(reserved, rng.randrange(0, microcents + 1))
            assert cents is not None
            settled.append(cents)

    await asyncio.gather(*(one(n) for n in range(240)))
    view = await a.wallet(PROVIDER, "acc_rich", key_id_of(LIMITED))
    assert view.wallet_cents is not None
    assert view.wallet_cents >= 0
    assert 300 - view.wallet_cents == sum(settled)
    assert view.held_cents == 0
    assert view.key_held_cents == 0
    assert view.key_spent_cents <= 50
    assert refused > 0
    assert settled


async def test_a_hold_never_settled_is_given_back_after_its_deadline(
    make_state: StateMaker, backend: str
) -> None:
    """A hold whose request never settled (its instance gone) is swept by any instance once its real-time
    deadline passed, charging nothing; a hold kept for a job is not; a late settle or release is a no-op."""
    rich = key_id_of(RICH)
    owner = await make_state(hold_seconds=0.3)
    sweeper = owner if backend == "memory" else await make_state(hold_seconds=0.3)
    lost = hold("h-lost", RICH, 2, 1_500_000)
    kept = hold("h-kept", RICH, 3, 2_500_000)
    unkeyed = hold("h-unkeyed", None, 4, 4_000_000)
    for reserved in (lost, kept, unkeyed):
        assert await owner.reserve(reserved) is None
    assert await owner.keep_hold(kept) is True
    if backend == "redis":
        await owner.close()  # the instance that made the holds is gone: only the other one sweeps
    await asyncio.sleep(0.4)  # real time past the deadline
    await sweeper.sweep_holds(100)  # its own sweeper may have been first: the wallet tells

    async def only_the_kept_hold() -> bool:
        view = await sweeper.wallet(PROVIDER, "acc_rich", rich)
        return (view.held_cents, view.key_held_cents) == (3, 3)

    await eventually(only_the_kept_hold, "the lost holds given back, the kept one still held")
    assert await sweeper.sweep_holds(100) == 0
    assert await sweeper.settle(lost, 1_500_000) is None  # ended by the sweep: nothing charged
    await sweeper.release(unkeyed)
    assert await sweeper.keep_hold(lost) is False
    assert await sweeper.settle(kept, 2_500_000) == 2  # the job's hold settles as ever
    view = await sweeper.wallet(PROVIDER, "acc_rich", rich)
    assert (view.wallet_cents, view.held_cents, view.key_held_cents, view.key_spent_cents) == (998, 0, 0, 2)


async def test_the_mock_clock_does_not_end_a_hold(make_state: StateMaker) -> None:
    """Deadlines are real time: advancing the mock's clock by days leaves an open hold open."""
    state = await make_state()  # the default deadline: an hour of real time
    held = hold("h-running", RICH, 2, 1_500_000)
    assert await state.reserve(held) is None
    await state.advance_clock(3 * 86_400)
    assert await state.sweep_holds(100) == 0
    assert (await state.wallet(PROVIDER, "acc_rich", None)).held_cents == 2
    assert await state.settle(held, 1_500_000) == 1


# -- admission: rate windows and faults --------------------------------------------------------------------


async def test_admit_counts_one_window_across_instances(pair: tuple[State, State]) -> None:
    a, b = pair
    seen = [await (a, b)[n % 2].admit(PROVIDER, "op", "key_x", 3) for n in range(4)]
    rates = [s.rate for s in seen]
    assert all(r is not None for r in rates)
    assert [(r.remaining, r.exceeded) for r in rates] == [(2, False), (1, False), (0, False), (0, True)]  # type: ignore[union-attr]
    window = int(a.clock.now() // WINDOW_SECONDS) * WINDOW_SECONDS
    assert {r.reset for r in rates} == {window + WINDOW_SECONDS}  # type: ignore[union-attr]
    assert (await a.admit(PROVIDER, "op", "key_y", 3)).rate.remaining == 2  # type: ignore[union-attr]
    assert (await a.admit(OTHER, "op", "key_x", 3)).rate.remaining == 2  # type: ignore[union-attr]
    assert (await b.admit(PROVIDER, None, None, 3)).rate is None  # not counted
    await a.advance_clock(WINDOW_SECONDS)
    fresh = (await b.admit(PROVIDER, "op", "key_x", 3)).rate
    assert fresh is not None
    assert (fresh.remaining, fresh.exceeded) == (2, False)


async def test_faults_are_taken_exactly_their_count(pair: tuple[State, State]) -> None:
    a, b = pair
    template = FaultRecord(id=0, provider=PROVIDER, operation_id="createThing", remaining=5, status=503)
    added = await a.add_fault(template)
    assert added.id > 0
    assert added.status == 503
    forever = await b.add_fault(
        FaultRecord(id=0, provider=None, operation_id="other", remaining=None, status=500)
    )
    assert [f.id for f in await b.faults()] == [added.id, forever.id]

    admissions = await asyncio.gather(
        *((a, b)[n % 2].admit(PROVIDER, "createThing", None, 10) for n in range(20))
    )
    taken = [adm.fault for adm in admissions if adm.fault is not None]
    assert len(taken) == 5
    assert all(f.id == added.id and f.status == 503 for f in taken)
    assert (await a.admit(OTHER, "createThing", None, 10)).fault is None  # another provider
    assert (await a.admit(PROVIDER, None, None, 10)).fault is None  # route errors take none
    for _ in range(3):
        fault = (await b.admit(OTHER, "other", None, 10)).fault
        assert fault is not None
        assert fault.remaining is None
    assert [f.id for f in await a.faults()] == [forever.id]
    await b.clear_faults()
    assert await a.faults() == []


# -- the clock ---------------------------------------------------------------------------------------------


async def test_clock_is_shared(pair: tuple[State, State]) -> None:
    a, b = pair
    before = b.clock.now()
    now = await a.advance_clock(3600)
    assert now >= before + 3600
    await eventually(lambda: b.clock.offset >= 3600, "the other instance's clock did not move")
    assert abs(b.clock.offset - a.clock.offset) < 1e-6
    with pytest.raises(ValueError, match="forward"):
        await a.advance_clock(-1)


# -- resources and files -----------------------------------------------------------------------------------


async def test_resources_ttl_and_cap(make_state: StateMaker) -> None:
    state = await make_state(resource_ttl=100.0, max_resources=2)
    await state.put(PROVIDER, Widget("w1", 1))
    await state.put(PROVIDER, Widget("w2", 2))
    assert await state.get(PROVIDER, Widget, "w1") == Widget("w1", 1)
    await state.put(PROVIDER, Widget("w3", 3))  # over the cap: the oldest goes
    assert await state.get(PROVIDER, Widget, "w1") is None
    assert [w.id for w in await state.resources(PROVIDER, Widget)] == ["w2", "w3"]
    await state.put(PROVIDER, Widget("w2", 20))  # replaced: the newest now
    assert [w.size for w in await state.resources(PROVIDER, Widget)] == [3, 20]
    assert await state.get(OTHER, Widget, "w2") is None
    assert (await state.counts())[PROVIDER]["widgets"] == 2
    await state.advance_clock(101)  # past the TTL
    assert await state.get(PROVIDER, Widget, "w3") is None
    assert await state.resources(PROVIDER, Widget) == []


async def test_files_and_blobs(pair: tuple[State, State]) -> None:
    a, b = pair
    await a.put_file(FileRecord("f1", "a.png", "image/png"), b"\x89PNG\x00\xff")
    await a.put_file(FileRecord("f2", "b.png", "image/png", recipe={"render": "image", "seed": 1}), None)
    found = await b.get_file("f1")
    assert found is not None
    assert found[1] == b"\x89PNG\x00\xff"
    assert found[0].filename == "a.png"
    lazy = await b.get_file("f2")
    assert lazy is not None
    assert lazy[1] is None
    assert lazy[0].recipe == {"render": "image", "seed": 1}
    await b.put_blob("f2", b"drawn")
    assert (await a.get_file("f2")) == (lazy[0], b"drawn")
    assert await a.get_file("nope") is None


# -- jobs and deliveries -----------------------------------------------------------------------------------


def job(state: State, job_id: str, seconds: float = 10.0) -> JobRecord:
    return JobRecord(
        id=job_id,
        provider=PROVIDER,
        owner="acc_rich",
        created_at=state.clock.now(),
        queue_seconds=0.0,
        task_seconds=seconds,
        task_count=1,
        failing_tasks=[],
        finisher="pahlavan.video",
        data={"origin": "http://127.0.0.1"},
    )


async def test_jobs_are_claimed_once(pair: tuple[State, State]) -> None:
    a, b = pair
    submitted = job(a, "job-1")
    await a.put_job(submitted)
    assert await a.next_job_due() == pytest.approx(submitted.done_at)
    assert await b.claim_due_jobs(b.clock.now(), 30, 10) == []  # not due yet
    assert not await b.claim_job(PROVIDER, "job-1", 30)
    assert (await b.get_job(PROVIDER, "job-1")) == submitted
    assert [j.id for j in await b.jobs()] == ["job-1"]
    await a.advance_clock(11)
    claims = await asyncio.gather(
        a.claim_due_jobs(a.clock.now(), 30, 10), b.claim_due_jobs(b.clock.now(), 30, 10)
    )
    assert sorted(len(c) for c in claims) == [0, 1]
    assert await a.next_job_due() is None  # the only due job is held
    assert not await b.claim_job(PROVIDER, "job-1", 30)  # leased
    finished = next(c[0] for c in claims if c)
    finished.finished, finished.data = True, {**finished.data, "outcome": "ok"}
    await b.finish_job(finished)
    assert await a.next_job_due() is None
    assert not await a.claim_job(PROVIDER, "job-1", 30)  # finished
    kept = await a.get_job(PROVIDER, "job-1")
    assert kept is not None
    assert kept.finished
    assert kept.data["outcome"] == "ok"


async def test_a_lapsed_job_lease_is_claimed_again(pair: tuple[State, State], backend: str) -> None:
    a, b = pair
    await a.put_job(job(a, "job-2", seconds=0.0))
    assert await a.claim_job(PROVIDER, "job-2", 0.2)
    if backend == "redis":  # another instance respects the lease
        assert await b.claim_due_jobs(b.clock.now(), 30, 10) == []
    await asyncio.sleep(0.3)  # real time: the claimer "died"
    taken = await b.claim_due_jobs(b.clock.now(), 30, 10)
    assert [j.id for j in taken] == ["job-2"]


async def test_deliveries_are_claimed_once(pair: tuple[State, State]) -> None:
    a, b = pair
    now = a.clock.now()
    delivery = DeliveryRecord(
        id="msg_1",
        provider=PROVIDER,
        event="video.completed",
        url="http://127.0.0.1:9/hook",
        payload={"id": "v1"},
        body='{"id":"v1"}',
        secret="whsec_x",
        created_at=now,
        next_attempt_at=now,
        rng_seed=7,
    )
    await a.put_delivery(delivery)
    assert await b.next_delivery_due() == pytest.approx(now)
    claims = await asyncio.gather(a.claim_delivery(a.clock.now(), 30), b.claim_delivery(b.clock.now(), 30))
    got = [c for c in claims if c is not None]
    assert len(got) == 1
    assert got[0] == delivery
    assert await a.claim_delivery(a.clock.now(), 30) is None
    assert await b.next_delivery_due() is None  # held
    retry = got[0]
    retry.next_attempt_at = now + 5  # the attempt failed: back, due later, lease gone
    await b.put_delivery(retry)
    assert await a.next_delivery_due() == pytest.approx(now + 5)
    assert await a.claim_delivery(a.clock.now(), 30) is None
    await a.advance_clock(6)
    again = await a.claim_delivery(a.clock.now(), 30)
    assert again is not None
    assert again.id == "msg_1"
    again.status, again.next_attempt_at = "delivered", None
    await a.put_delivery(again)
    assert await b.next_delivery_due() is None
    assert [d.status for d in await b.deliveries()] == ["delivered"]
    assert await b.deliveries(OTHER) == []
    assert (await b.get_delivery("msg_1")) == again
    assert await b.get_delivery("msg_2") is None


async def test_a_lapsed_delivery_lease_is_claimed_again(pair: tuple[State, State], backend: str) -> None:
    a, b = pair
    now = a.clock.now()
    await a.put_delivery(
        DeliveryRecord(
            id="msg_lapse",
            provider=PROVIDER,
            event="video.completed",
            url="http://127.0.0.1:9/hook",
            payload={},
            body="{}",
            secret="whsec_x",
            created_at=now,
            next_attempt_at=now,
        )
    )
    first = await a.claim_delivery(a.clock.now(), 0.2)
    assert first is not None
    if backend == "redis":
        assert await b.claim_delivery(b.clock.now(), 30) is None
    await asyncio.sleep(0.3)  # real time: the claimer "died" mid-attempt
    again = await b.claim_delivery(b.clock.now(), 30)
    assert again is not None
    assert again.id == "msg_lapse"


# -- journal and violations --------------------------------------------------------------------------------


async def test_journal_pages_and_caps(make_state: StateMaker) -> None:
    state = await make_state(journal_max_entries=5)
    ids = [
        state.record((state.clock.now(), (PROVIDER, OTHER)[n % 2], "GET", f"/v1/{n}", "op", 200, 1.23456))
        for n in range(8)
    ]
    assert ids == sorted(ids)
    assert len(set(ids)) == 8
    entries, cursor = await state.journal_page(None, 10)
    assert [e["path"] for e in entries] == [f"/v1/{n}" for n in range(3, 8)]  # the newest 5 kept
    assert cursor is None
    assert entries[0]["latency_ms"] == 1.235
    assert entries[0]["id"] == ids[3]
    newest, cursor = await state.journal_page(None, 2)
    assert [e["path"] for e in newest] == ["/v1/6", "/v1/7"]
    assert cursor == ids[6]
    older, cursor = await state.journal_page(None, 2, before=cursor)
    assert [e["path"] for e in older] == ["/v1/4", "/v1/5"]
    forward, cursor = await state.journal_page(PROVIDER, 1, after=ids[3])
    assert [e["path"] for e in forward] == ["/v1/4"]
    assert cursor == ids[4]
    forward, cursor = await state.journal_page(PROVIDER, 5, after=cursor)
    assert [e["path"] for e in forward] == ["/v1/6"]
    assert cursor is None
    long_path = "/" + "x" * 5000
    state.record((state.clock.now(), PROVIDER, "GET", long_path, None, 404, 0.5))
    last = (await state.journal_page(None, 1))[0][0]
    assert last["path"].endswith("...[truncated]")
    assert len(last["path"]) < 2100

    for n in range(VIOLATIONS + 5):
        await state.add_violation(
            {"provider": PROVIDER, "operation_id": "op", "status": 200, "problem": str(n)}
        )
    violations = await state.violations()
    assert len(violations) == VIOLATIONS
    assert violations[0]["problem"] == "5"
    await state.clear_journal()
    assert await state.journal_page(None, 10) == ([], None)
    assert await state.violations() == []


async def test_journal_byte_cap(make_state: StateMaker) -> None:
    state = await make_state(journal_max_bytes=3000)
    for n in range(10):
        state.record((state.clock.now(), PROVIDER, "GET", f"/{n}" + "p" * 600, "op", 200, 1.0))
    entries, _ = await state.journal_page(None, 100)
    assert 1 <= len(entries) <= 3  # ~920 bytes each against 3,000
    assert entries[-1]["path"].startswith("/9")
    count, size = await state.journal_size()
    assert count == len(entries)
    assert size == sum(ENTRY_BYTES + len(e["path"]) for e in entries) <= 3000


async def test_journal_is_shared(pair: tuple[State, State]) -> None:
    a, b = pair
    first = a.record((a.clock.now(), PROVIDER, "POST", "/from-a", "op", 201, 2.0))
    second = b.record((b.clock.now(), PROVIDER, "GET", "/from-b", "op", 200, 1.0))
    assert first != second
    await a.journal_page(None, 1)  # a read flushes its own instance's rows
    entries, _ = await b.journal_page(None, 10)
    assert {e["path"] for e in entries} == {"/from-a", "/from-b"}


# -- reset, isolation, instances, the shared secret --------------------------------------------------------


async def test_reset_is_for_every_instance(pair: tuple[State, State]) -> None:
    a, b = pair
    created = new_key("key-reset-0000001")
    await a.add_key(PROVIDER, created)
    assert await a.find_key(PROVIDER, created.key) is not None  # cached on a
    await a.set_wallet(PROVIDER, "acc_rich", 5)
    await a.put(PROVIDER, Widget("w1", 1))
    await a.put_job(job(a, "job-r"))
    await a.add_fault(FaultRecord(id=0, provider=None, operation_id=None, remaining=None, status=500))
    a.record((a.clock.now(), PROVIDER, "GET", "/before", "op", 200, 1.0))
    await a.advance_clock(500)

    await b.reset()
    for state in (b, a):
        await eventually(lambda s=state: s.clock.offset == 0, "the clock offset survived the reset")

        async def forgotten(s: State = state) -> bool:
            return await s.find_key(PROVIDER, created.key) is None

        await eventually(forgotten, "a key created before the reset is still found")
        assert (await state.wallet(PROVIDER, "acc_rich", None)).wallet_cents == 1000
        assert await state.get(PROVIDER, Widget, "w1") is None
        assert await state.jobs() == []
        assert await state.next_job_due() is None
        assert await state.faults() == []
        assert await state.journal_page(None, 10) == ([], None)
        assert [k.key for k in await state.keys(PROVIDER)] == [RICH, LIMITED, POOR]


async def test_what_follows_a_reset_is_kept(pair: tuple[State, State]) -> None:
    """A request journaled and a clock advanced just after a reset stay, once every instance has heard of
    the reset (its notice reaches the instance that made it too)."""
    a, b = pair
    await a.reset()
    a.record((a.clock.now(), PROVIDER, "GET", "/after-reset", "op", 200, 1.0))
    await a.advance_clock(100)
    await asyncio.sleep(0.3)  # the reset's notice arrives meanwhile (not a pace: anything later is fine)
    assert a.clock.offset == pytest.approx(100)
    await eventually(lambda: b.clock.offset == pytest.approx(100), "the other instance missed the advance")
    assert [e["path"] for e in (await a.journal_page(None, 10))[0]] == ["/after-reset"]


async def test_prefixes_are_isolated(make_state: StateMaker, backend: str) -> None:
    if backend == "memory":
        pytest.skip("prefixes are the Redis backend's")
    one = await make_state(state_prefix="iso-one")
    two = await make_state(state_prefix="iso-two")
    await one.reset()
    await two.reset()
    await one.add_key(PROVIDER, new_key("key-isolated-00001"))
    await one.set_wallet(PROVIDER, "acc_rich", 3)
    await one.advance_clock(100)
    assert await two.find_key(PROVIDER, "key-isolated-00001") is None
    assert (await two.wallet(PROVIDER, "acc_rich", None)).wallet_cents == 1000
    await one.reset()
    assert await two.find_key(PROVIDER, RICH) is not None
    await two.add_key(PROVIDER, new_key("key-isolated-00002"))
    await one.reset()
    assert await two.find_key(PROVIDER, "key-isolated-00002") is not None
    assert two.clock.offset == 0


async def test_instances_and_the_shared_secret(make_state: StateMaker, backend: str) -> None:
    a = await make_state()
    b = await make_state()
    if backend == "memory":
        assert a.instance == 0
    else:
        assert 0 < a.instance < b.instance
    assert await a.shared_secret("first-secret") == "first-secret"
    expected = "first-secret" if backend == "redis" else "second-secret"  # memory: one process each
    assert await b.shared_secret("second-secret") == expected


async def test_health_and_changed(state: State, backend: str) -> None:
    health = await state.health()
    assert health["backend"] == backend
    assert health["status"] == "ok"
    event = state.changed("jobs")
    event.clear()
    await state.put_job(job(state, "job-n"))
    await eventually(event.is_set, "putting a job did not set changed('jobs')")
