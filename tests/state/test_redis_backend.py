"""What only the Redis backend has: round trips, seeding by the first instance, durability across a restart,
and backend faults (unreachable at start, lost while running, a server that never answers, back again)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from conftest import PROVIDER, seeds
from redis import Redis as SyncRedis
from redis_fixture import RedisServer

from mockserver.core.clock import Clock
from mockserver.errors import StateError
from mockserver.settings import Settings
from mockserver.state.records import FileRecord, HoldRecord, JobRecord
from mockserver.state.redis import RedisState
from mockserver.state.redis.connection import SOCKET_TIMEOUT, safe_url
from mockserver.state.seed import key_id_of

RICH = "key-rich-00000001"
BOUND = SOCKET_TIMEOUT * 2 + 1.0
"""The longest any call may take against a lost or silent server (a timeout, at most one retry)."""

Opener = Callable[..., Awaitable[RedisState]]


@pytest.fixture
async def open_state() -> AsyncIterator[Opener]:
    """``await open_state(url, prefix)``: an opened ``RedisState`` (closed after the test)."""
    opened: list[RedisState] = []

    async def make(url: str, prefix: str = "aigen", **changes: object) -> RedisState:
        state = RedisState(Settings(state=url, state_prefix=prefix).with_changes(**changes), seeds(), Clock())
        await state.open()
        opened.append(state)
        return state

    yield make
    for state in opened:
        await state.close()


def count_round_trips(state: RedisState, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The commands the state's client sends from now on, one per round trip (a script is one EVALSHA;
    pipelines are counted by their own ``execute``)."""
    sent: list[str] = []
    client = state._conn.redis
    original = client.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return await original(*args, **options)

    monkeypatch.setattr(client, "execute_command", counted)
    return sent


async def test_round_trips_on_the_request_path(
    redis_server: RedisServer, redis_prefix: str, open_state: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``find_key`` on a warm cache makes no round trip, ``admit`` exactly one."""
    state = await open_state(redis_server.url, redis_prefix)
    assert await state.find_key(PROVIDER, RICH) is not None  # the miss warms the cache
    sent = count_round_trips(state, monkeypatch)
    for _ in range(10):
        assert await state.find_key(PROVIDER, RICH) is not None
    assert sent == []
    for _ in range(10):
        await state.admit(PROVIDER, "op", key_id_of(RICH), 100)
    assert sent == ["EVALSHA"] * 10


async def test_concurrent_admits_share_round_trips(
    redis_server: RedisServer, redis_prefix: str, open_state: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Admits made in one loop turn go as one pipeline, each counted once with its own window state, also
    right after Redis forgot the script (SCRIPT FLUSH, as after a restart)."""
    state = await open_state(redis_server.url, redis_prefix)
    await state.admit(PROVIDER, "op", "warm", 100)
    with SyncRedis.from_url(redis_server.url) as admin:
        admin.script_flush()
    sent = count_round_trips(state, monkeypatch)
    admissions = await asyncio.gather(*(state.admit(PROVIDER, "op", "shared", 100) for _ in range(30)))
    remaining = sorted(a.rate.remaining for a in admissions if a.rate is not None)
    assert remaining == list(range(70, 100))  # each call its own count: 30 distinct windows states
    assert sent == ["SCRIPT LOAD"]  # one pipeline, the script loaded once, the same pipeline again
    sent.clear()
    admissions = await asyncio.gather(*(state.admit(PROVIDER, "op", "shared", 100) for _ in range(30)))
    assert sorted(a.rate.remaining for a in admissions if a.rate is not None) == list(range(40, 70))
    assert sent == []  # one pipeline (its execute does not pass through execute_command)


async def test_the_first_instance_seeds_and_the_others_join(
    redis_server: RedisServer, redis_prefix: str, open_state: Opener
) -> None:
    states = await asyncio.gather(*(open_state(redis_server.url, redis_prefix) for _ in range(4)))
    assert len({s.instance for s in states}) == 4
    assert [k.key for k in await states[0].keys(PROVIDER)] == [k.key for k in seeds()[PROVIDER].keys]
    await states[0].set_wallet(PROVIDER, "acc_rich", 7)
    late = await open_state(redis_server.url, redis_prefix)  # joins: nothing is seeded again
    assert (await late.wallet(PROVIDER, "acc_rich", None)).wallet_cents == 7
    assert len(await late.keys(PROVIDER)) == len(seeds()[PROVIDER].keys)


async def test_reset_notices(redis_server: RedisServer, redis_prefix: str, open_state: Opener) -> None:
    """Another instance's reset sets ``changed("reset")`` (its owner then resets its local parts); an
    instance's own does not (it reset itself already); one made while the subscription was lost is found
    when it comes back."""
    a = await open_state(redis_server.url, redis_prefix)
    b = await open_state(redis_server.url, redis_prefix)
    a.changed("reset").clear()
    b.changed("reset").clear()
    await a.reset()
    await eventually_set(b.changed("reset"))
    await asyncio.sleep(0.2)  # a's own notice has arrived by now (a bound, not a pace)
    assert not a.changed("reset").is_set()

    b.changed("reset").clear()
    with SyncRedis.from_url(redis_server.url) as admin:
        admin.client_kill_filter(_type="pubsub")  # every subscription drops: they come back in 0.5 s
    await a.reset()  # b is not subscribed at this moment: it misses the notice
    await eventually_set(b.changed("reset"))
    assert not a.changed("reset").is_set()


async def test_a_wiped_redis_is_seeded_again(own_redis: RedisServer, open_state: Opener) -> None:
    """A Redis that lost everything (restarted without persistence) is seeded again by the instances when
    they reconnect, and they reset their local parts as for a reset."""
    state = await open_state(own_redis.url)
    state.changed("reset").clear()
    with SyncRedis.from_url(own_redis.url) as admin:
        admin.flushall()
        admin.client_kill_filter(_type="pubsub")
    await eventually_set(state.changed("reset"))
    assert await state.find_key(PROVIDER, "key-poor-000000003") is not None
    assert (await state.wallet(PROVIDER, "acc_rich", None)).wallet_cents == 1000


async def eventually_set(event: asyncio.Event) -> None:
    """Wait for ``event`` for at most 5 s."""
    async with asyncio.timeout(5):
        await event.wait()


async def test_state_survives_a_restart_of_redis(own_redis: RedisServer, open_state: Opener) -> None:
    """With the AOF on, stopping Redis and every instance keeps wallets, jobs, files and the journal."""
    first = await open_state(own_redis.url)
    hold = HoldRecord("h-durable", PROVIDER, "acc_rich", key_id_of(RICH), 3, 3, "0.03", 2_500_000)
    assert await first.reserve(hold) is None
    assert await first.settle(hold, 2_500_000) == 2
    submitted = JobRecord("job-d", PROVIDER, "acc_rich", first.clock.now(), 0.0, 60.0, 1, [], "x.y", {"n": 1})
    await first.put_job(submitted)
    await first.put_file(FileRecord("file-d", "d.png", "image/png"), b"bytes")
    first.record((first.clock.now(), PROVIDER, "GET", "/durable", "op", 200, 1.0))
    await first.close()
    own_redis.restart()

    second = await open_state(own_redis.url)
    assert second.instance == 2
    view = await second.wallet(PROVIDER, "acc_rich", key_id_of(RICH))
    assert (view.wallet_cents, view.carry_microcents, view.key_spent_cents) == (998, 500_000, 2)
    assert await second.get_job(PROVIDER, "job-d") == submitted
    assert await second.next_job_due() == pytest.approx(submitted.done_at)
    assert (await second.get_file("file-d"))[1] == b"bytes"  # type: ignore[index]
    assert [e["path"] for e in (await second.journal_page(None, 10))[0]] == ["/durable"]


async def test_unreachable_at_open_names_the_url_without_credentials(own_redis: RedisServer) -> None:
    own_redis.stop()
    url = f"redis://user:hunter2@127.0.0.1:{own_redis.port}/0"
    state = RedisState(Settings(state=url), seeds(), Clock())
    started = time.monotonic()
    with pytest.raises(StateError) as raised:
        await state.open()
    assert time.monotonic() - started < BOUND
    message = str(raised.value)
    assert f"redis://127.0.0.1:{own_redis.port}/0" in message
    assert "hunter2" not in message
    assert "\n" not in message
    await state.close()


async def test_lost_while_running_then_back(own_redis: RedisServer, open_state: Opener) -> None:
    state = await open_state(own_redis.url)
    other = await open_state(own_redis.url)
    own_redis.stop()
    for call in (
        lambda: state.find_key(PROVIDER, "key-poor-000000003"),  # not cached: needs Redis
        lambda: state.admit(PROVIDER, "op", "bucket", 10),
        lambda: state.reserve(HoldRecord("h-x", PROVIDER, "acc_rich", None, 1, 1, "0.01", 1)),
    ):
        started = time.monotonic()
        with pytest.raises(StateError, match=r"unreachable|timed out"):
            await call()
        assert time.monotonic() - started < BOUND
    health = await state.health()
    assert health["status"] == "down"
    assert health["backend"] == "redis"

    own_redis.start()  # the same port and data: service resumes without reopening
    assert await state.find_key(PROVIDER, "key-poor-000000003") is not None
    assert (await state.admit(PROVIDER, "op", "bucket", 10)).rate is not None
    assert (await state.health())["status"] == "ok"
    # Notices resume too: the other instance's clock advance reaches this one.
    async with asyncio.timeout(10):
        while True:
            await other.advance_clock(1)
            await asyncio.sleep(0.2)
            if state.clock.offset >= 1 and abs(state.clock.offset - other.clock.offset) < 1e-6:
                break


async def test_a_server_that_never_answers_times_out(open_state: Opener) -> None:
    """Connected but silent (a hung Redis): calls fail within the bound, health says down."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state = RedisState(Settings(state=f"redis://127.0.0.1:{port}/0"), seeds(), Clock())
    try:
        started = time.monotonic()
        with pytest.raises(StateError, match="timed out"):
            await state.open()
        assert time.monotonic() - started < BOUND
        started = time.monotonic()
        assert (await state.health())["status"] == "down"
        assert time.monotonic() - started < BOUND
    finally:
        await state.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


def test_safe_url_drops_credentials() -> None:
    assert safe_url("redis://u:secret@example.test:6380/2") == "redis://example.test:6380/2"
    assert safe_url("rediss://:secret@[::1]:6379/0") == "rediss://[::1]:6379/0"
    assert safe_url("unix://:secret@/run/redis.sock?db=1") == "unix:///run/redis.sock"


async def test_holds_a_lost_redis_cut_are_given_back_when_it_returns(
    own_redis: RedisServer, open_state: Opener
) -> None:
    """A settle and a release that met a lost Redis are retried by the outbox once it is back (not at the
    hour-long deadline), except on a hold kept for a job meanwhile: its job settles it."""
    state = await open_state(own_redis.url)
    rich = key_id_of(RICH)
    request = HoldRecord("h-request", PROVIDER, "acc_rich", rich, 2, 2, "0.015", 1_500_000)
    stream = HoldRecord("h-stream", PROVIDER, "acc_rich", rich, 3, 3, "0.025", 2_500_000)
    video = HoldRecord("h-video", PROVIDER, "acc_rich", rich, 5, 5, "0.05", 5_000_000)
    for hold in (request, stream, video):
        assert await state.reserve(hold) is None
    assert await state.keep_hold(video)
    own_redis.stop()
    with pytest.raises(StateError):
        await state.settle(request, 1_500_000)
    with pytest.raises(StateError):
        await state.release(stream)
    with pytest.raises(StateError):
        await state.settle(video, 5_000_000)  # a finisher meeting the outage: its job runs again
    own_redis.start()
    async with asyncio.timeout(15):  # the sweeper's next turn (every 5 s at the default deadline)
        while True:
            if (await state.wallet(PROVIDER, "acc_rich", rich)).held_cents == 5:
                break
            await asyncio.sleep(0.1)
    assert await state.settle(video, 5_000_000) == 5  # the job's retry settles its hold as ever
    view = await state.wallet(PROVIDER, "acc_rich", rich)
    assert (view.wallet_cents, view.held_cents, view.key_held_cents, view.key_spent_cents) == (995, 0, 0, 5)
    assert await state.settle(request, 1_500_000) is None  # given back: nothing charged for a 503
