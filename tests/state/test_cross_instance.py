"""Two live mocks on one prefix of a real redis-server, over real HTTP: a job made on one and finished alike
on both, the wallet invariant under concurrent billed requests spread over both, a webhook delivered once
(and by the other instance when the one delivering it is killed), a restart of both mocks and of Redis,
a reset on one for both, prefixes that do not see each other, and a billed request cut by a lost Redis.

Complements tests/state/test_redis_http.py (clock, faults, rate limit, journal, health) and
tests/mockserver/test_shared_service.py (``--workers``, a ModelStudio job polled on the other instance).
Where an instance must be killed or restarted, it runs as ``python -m mockserver`` (a process).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from redis_fixture import RedisServer

from mockserver.core.webhooks import LEASE_SECONDS
from mockserver.state.redis.keys import KeyNames
from mockserver.testing.control import MockControl

PV_KEY = {"Authorization": "Bearer sp_live_mockkey0001"}
PV_ACCOUNT = "user_123"
AS_KEY = {"Authorization": "as_test_mockkey_0001"}
MS_KEY = {"Authorization": "Bearer ms_test_mockkey_0001"}
MS_ORG = "/modelstudio/api/v1/organizations/org_mock_demo"
MS_JOB: dict[str, Any] = {"model_id": "ms-demo-chat", "messages": [[{"role": "user", "content": "Hello"}]]}
IMAGE = {"model": "flux-schnell", "type": "image", "prompt": "a red kite"}
PAST_ANY_JOB = 600.0
START_SECONDS = 30.0
WAIT_SECONDS = 15.0


def wait_until(condition: Callable[[], Any], what: str, seconds: float = WAIT_SECONDS) -> Any:
    """Poll ``condition()`` (real time: other threads and processes) until truthy; its value."""
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def pair(start_mock: Callable[..., MockControl], url: str, prefix: str, **changes: Any) -> list[MockControl]:
    return [start_mock(state=url, state_prefix=prefix, **changes) for _ in range(2)]


def origin(mock: MockControl) -> str:
    return mock.base_url


def advance(base: str, seconds: float) -> None:
    requests.post(base + "/_mock/clock/advance", json={"seconds": seconds}, timeout=10).raise_for_status()


def wallet_hash(url: str, prefix: str, provider: str, account: str) -> dict[str, int]:
    """The wallet as Redis holds it (balance, held, carry): what no HTTP view shows (the holds)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        raw = client.hgetall(KeyNames(prefix).wallet(provider, account))
    finally:
        client.close()
    return {str(name): int(value) for name, value in raw.items()}


# -- mocks as processes ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MOCKSERVER_")}


class Instance:
    """``python -m mockserver --port P ARGS`` with its output in a file; started, killed, started again."""

    def __init__(self, log: Path, *args: str) -> None:
        self.port = free_port()
        self.args = args
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Instance:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mockserver", "--port", str(self.port), "--signing-secret", "cross",
                 *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=clean_env(),
            )  # fmt: skip
        deadline = time.monotonic() + START_SECONDS
        while not self._answers():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the mock did not start:\n" + self.log.read_text()
            time.sleep(0.05)
        return self

    def _answers(self) -> bool:
        try:
            return requests.get(self.origin + "/_mock/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def instances(tmp_path: Path, count: int, *args: str) -> Iterator[list[Instance]]:
    started = [Instance(tmp_path / f"mock{n}.log", *args) for n in range(count)]
    try:
        for one in started:
            one.start()
        yield started
    finally:
        for one in started:
            one.stop()


def pid_of_peer(port: int) -> int | None:
    """The process that owns the TCP socket bound to local port ``port`` on loopback (read from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                for fd in (entry / "fd").iterdir():
                    with contextlib.suppress(OSError):
                        if os.readlink(fd) in inodes:
                            return int(entry.name)
    return None


class StallingReceiver:
    """A webhook endpoint on loopback: records each POST (headers, the sender's port) and, while
    ``stall`` is set, holds the first one open until released."""

    def __init__(self, stall: bool = False) -> None:
        self.received: list[tuple[dict[str, str], int]] = []
        self.changed = threading.Condition()
        self.release = threading.Event()
        self.stall = stall
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.changed:
                    receiver.received.append(
                        ({k.lower(): v for k, v in self.headers.items()}, self.client_address[1])
                    )
                    first = len(receiver.received) == 1
                    receiver.changed.notify_all()
                if first and receiver.stall:
                    receiver.release.wait(WAIT_SECONDS * 2)
                with contextlib.suppress(OSError):
                    self.send_response(204)
                    self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhook"

    def wait(self, count: int, seconds: float = WAIT_SECONDS) -> list[tuple[dict[str, str], int]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.received) >= count, seconds), (
                f"{len(self.received)} of {count} webhook(s) within {seconds} s"
            )
            return list(self.received)

    def __enter__(self) -> StallingReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


# -- jobs across instances ---------------------------------------------------------------------------------


def test_jobs_made_on_one_finish_alike_on_both(
    start_mock: Callable[..., MockControl], redis_server: RedisServer, redis_prefix: str
) -> None:
    one, two = (origin(m) for m in pair(start_mock, redis_server.url, redis_prefix))
    generation = requests.post(
        one + "/artificialstudio/api/run",
        json={"tool": "create-image", "input": {"prompt": "a lighthouse"}},
        headers=AS_KEY,
        timeout=10,
    )
    assert generation.status_code == 200, generation.text
    video = requests.post(
        two + "/pahlavan/api/v1/generations",
        json={"model": "veo-lite", "type": "video", "prompt": "waves"},
        headers=PV_KEY,
        timeout=10,
    )
    assert video.status_code == 202, video.text
    job = requests.post(one + MS_ORG + "/generate", json=MS_JOB, headers=MS_KEY, timeout=10)
    assert job.status_code == 200, job.text
    polls = [
        ("/artificialstudio/api/generations/" + generation.json()["id"], AS_KEY, "status", "success"),
        ("/pahlavan/api/v1/videos/generations/" + video.json()["id"], PV_KEY, "status", "succeeded"),
        (MS_ORG + "/generate/" + job.json()["job_id"], MS_KEY, "job_status", "completed"),
    ]
    for path, key, field, _ in polls:  # unfinished, and seen as such from the other instance
        for base in (two, one):
            seen = requests.get(base + path, headers=key, timeout=10)
            assert seen.status_code == 200, (path, seen.text)
            assert seen.json()[field] not in ("success", "succeeded", "completed")

    advance(one, PAST_ANY_JOB)
    for path, key, field, done in polls:
        # Polled first on the other instance (it runs the finisher or waits for the one that does).
        first = requests.get(two + path, headers=key, timeout=20)
        assert first.status_code == 200, first.text
        assert first.json()[field] == done, first.json()
        second = requests.get(one + path, headers=key, timeout=20)
        # Identical but for the host: output URLs follow the host the client used.
        assert second.text.replace(one, two) == first.text
        for name in ("output", "output_url"):
            if name in first.json():  # the file drawn once, served alike by both
                files = [requests.get(u, timeout=20) for u in (first.json()[name], second.json()[name])]
                assert [f.status_code for f in files] == [200, 200]
                assert files[0].content == files[1].content
    # The video was charged once, from either instance's point of view.
    wallets = [requests.get(b + "/_mock/accounts?provider=pahlavan", timeout=10).json() for b in (one, two)]
    assert wallets[0] == wallets[1]
    balance = next(a["wallet_cents"] for a in wallets[0]["accounts"] if a["id"] == PV_ACCOUNT)
    assert balance == 100_000 - 25
    assert wallet_hash(redis_server.url, redis_prefix, "pahlavan", PV_ACCOUNT)["held"] == 0


# -- money --------------------------------------------------------------------------------------------------


def test_the_wallet_invariant_holds_over_both_instances(
    start_mock: Callable[..., MockControl], redis_server: RedisServer, redis_prefix: str
) -> None:
    mocks = pair(start_mock, redis_server.url, redis_prefix)
    seeded = 25  # cents: an image costs 0.3 cent on a 1-cent hold, so 120 need 36: the wallet runs dry
    mocks[0].set_wallet("pahlavan", seeded, PV_ACCOUNT)
    bases = [origin(m) + "/pahlavan/api/v1/generations" for m in mocks]

    def generate(n: int) -> requests.Response:
        return requests.post(bases[n % 2], json=IMAGE, headers=PV_KEY, timeout=30)

    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(generate, range(120)))
    statuses = sorted({r.status_code for r in answers})
    assert statuses == [200, 402], statuses
    charged = sum(r.json()["final_charge_cents"] for r in answers if r.status_code == 200)
    for refused in (r for r in answers if r.status_code == 402):
        assert refused.json()["details"]["code"] == "INSUFFICIENT_BALANCE"
    wallet = wallet_hash(redis_server.url, redis_prefix, "pahlavan", PV_ACCOUNT)
    assert wallet["held"] == 0
    assert 0 <= wallet["balance"] == seeded - charged
    for mock in mocks:
        assert mock.wallet("pahlavan", PV_ACCOUNT) == seeded - charged


# -- webhooks -----------------------------------------------------------------------------------------------


def run_with_webhook(base: str, url: str) -> str:
    created = requests.post(
        base + "/artificialstudio/api/run",
        json={"tool": "create-image", "input": {"prompt": "a kite"}, "webhook": url},
        headers=AS_KEY,
        timeout=10,
    )
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


def deliveries(base: str) -> list[dict[str, Any]]:
    listing = requests.get(base + "/_mock/webhooks?provider=artificialstudio", timeout=10).json()
    return list(listing["deliveries"])


def test_a_webhook_is_delivered_once_by_two_instances(
    start_mock: Callable[..., MockControl], redis_server: RedisServer, redis_prefix: str
) -> None:
    one, two = (origin(m) for m in pair(start_mock, redis_server.url, redis_prefix))
    with StallingReceiver() as receiver:
        for n in range(3):
            run_with_webhook((one, two)[n % 2], receiver.url)
        advance(two, PAST_ANY_JOB)
        received = receiver.wait(3)
        time.sleep(1.0)  # long enough for a second claim to have delivered again
        ids = [headers["webhook-id"] for headers, _ in receiver.received]
        assert len(ids) == len(set(ids)) == 3, ids
        for base in (one, two):

            def succeeded(at: str = base) -> list[dict[str, Any]]:
                return [d for d in deliveries(at) if d["status"] == "succeeded"]

            wait_until(lambda: len(succeeded()) == 3, "3 deliveries logged as succeeded")
            logged = succeeded()
            assert sorted(d["id"] for d in logged) == sorted(ids)
            assert all(len(d["attempts"]) == 1 for d in logged), logged
        assert len(received) == 3


def test_a_killed_instance_leaves_its_delivery_to_the_other(
    redis_server: RedisServer, redis_prefix: str, tmp_path: Path
) -> None:
    args = ("--state", redis_server.url, "--state-prefix", redis_prefix, "--webhook-host", "127.0.0.1")
    with instances(tmp_path, 2, *args) as mocks, StallingReceiver(stall=True) as receiver:
        run_with_webhook(mocks[0].origin, receiver.url)
        advance(mocks[1].origin, PAST_ANY_JOB)
        ((headers, port),) = receiver.wait(1)
        pids = {m.process.pid: m for m in mocks if m.process is not None}
        # /proc is read while the processes run (file descriptors come and go under the scan): look again
        # for a while rather than once (a single look found no owner once in a CI run).
        sender = wait_until(lambda: (pid := pid_of_peer(port)) in pids and pid, "the sending mock")
        claimer = pids[sender]
        (other,) = [m for m in mocks if m is not claimer]
        claimer.stop(signal.SIGKILL)  # mid-delivery: the attempt is never recorded
        time.sleep(0.5)
        assert len(receiver.received) == 1  # the claim's lease still holds
        # Leases are real time (core.webhooks.LEASE_SECONDS, 30 s): the other takes it over after it.
        (_, (again, again_port)) = receiver.wait(2, LEASE_SECONDS + 15)
        assert again["webhook-id"] == headers["webhook-id"]
        assert pid_of_peer(again_port) in (None, other.process.pid if other.process else None)
        (delivery,) = wait_until(
            lambda: [d for d in deliveries(other.origin) if d["status"] == "succeeded"], "the delivery logged"
        )
        assert delivery["id"] == headers["webhook-id"]
        assert len(delivery["attempts"]) == 1
        time.sleep(0.5)
        assert len(receiver.received) == 2


# -- durability ---------------------------------------------------------------------------------------------


def upload(base: str, data: bytes) -> str:
    presigned = requests.post(
        base + "/pahlavan/api/v1/storage/presign",
        json={"filename": "kept.bin", "content_type": "application/octet-stream", "bytes": len(data)},
        headers=PV_KEY,
        timeout=10,
    )
    assert presigned.status_code == 200, presigned.text
    body = presigned.json()
    put = requests.put(body["upload_url"], data=data, headers=body["headers"], timeout=10)
    assert put.status_code == 200, put.text
    committed = requests.post(
        base + "/pahlavan/api/v1/storage/commit", json={"key": body["key"]}, headers=PV_KEY, timeout=10
    )
    assert committed.status_code == 200, committed.text
    return str(body["key"])


def download(base: str, storage_key: str) -> bytes:
    signed = requests.post(
        base + "/pahlavan/api/v1/storage/sign-url", json={"key": storage_key}, headers=PV_KEY, timeout=10
    )
    assert signed.status_code == 200, signed.text
    got = requests.get(signed.json()["url"], timeout=10)
    assert got.status_code == 200, got.text
    return got.content


def journal(base: str) -> list[dict[str, Any]]:
    page = requests.get(base + "/_mock/requests", params={"limit": 500}, timeout=10).json()
    return list(page["requests"])


def test_a_restart_of_both_mocks_and_redis_keeps_jobs_wallets_uploads_and_the_journal(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    args = ("--state", own_redis.url, "--state-prefix", "kept")
    data = bytes(range(256)) * 40
    with instances(tmp_path, 2, *args) as mocks:
        one, two = (m.origin for m in mocks)
        job = requests.post(one + MS_ORG + "/generate", json=MS_JOB, headers=MS_KEY, timeout=10)
        assert job.status_code == 200, job.text
        job_path = MS_ORG + "/generate/" + job.json()["job_id"]
        generation = requests.post(
            two + "/pahlavan/api/v1/generations", json=IMAGE, headers=PV_KEY, timeout=10
        )
        assert generation.status_code == 200, generation.text
        requests.put(
            one + f"/_mock/accounts/pahlavan/{PV_ACCOUNT}/wallet", json={"wallet_cents": 777}, timeout=10
        ).raise_for_status()
        for _ in range(4):  # 4 x 0.3 cent: one cent charged, 0.2 carried
            assert requests.post(
                two + "/pahlavan/api/v1/generations", json=IMAGE, headers=PV_KEY, timeout=10
            ).ok
        storage_key = upload(one, data)
        advance(two, 5)
        before_wallet = wallet_hash(own_redis.url, "kept", "pahlavan", PV_ACCOUNT)
        assert before_wallet["balance"] < 777
        # Each instance writes its journal rows in batches: wait until both are in.
        before = wait_until(lambda: (rows := journal(one)) and len(rows) >= 8 and rows, "the journal")
        time.sleep(0.3)
        before = journal(one)
        for mock in mocks:
            mock.stop()
        own_redis.restart()
        for mock in mocks:
            mock.start()
        one, two = (m.origin for m in mocks)
        assert requests.get(one + "/_mock/clock", timeout=10).json()["offset"] == 5
        polled = requests.get(two + job_path, headers=MS_KEY, timeout=10)
        assert polled.status_code == 200, polled.text
        assert polled.json()["job_id"] == job.json()["job_id"]
        assert wallet_hash(own_redis.url, "kept", "pahlavan", PV_ACCOUNT) == before_wallet
        assert download(two, storage_key) == data
        after = journal(two)
        assert {row["id"] for row in before} <= {row["id"] for row in after}
        advance(one, PAST_ANY_JOB)
        assert requests.get(one + job_path, headers=MS_KEY, timeout=20).json()["job_status"] == "completed"


# -- reset and prefixes -------------------------------------------------------------------------------------


def test_a_reset_on_one_returns_both_to_the_seed(
    start_mock: Callable[..., MockControl], redis_server: RedisServer, redis_prefix: str
) -> None:
    one, two = pair(start_mock, redis_server.url, redis_prefix)
    key = one.create_key("pahlavan", "runtime", account=PV_ACCOUNT)
    assert (
        two.post("pahlavan", "/api/v1/quotes", json=IMAGE, key=key).status_code == 200
    )  # the new key works on two
    one.set_wallet("pahlavan", 5, PV_ACCOUNT)
    assert two.wallet("pahlavan", PV_ACCOUNT) == 5
    job = requests.post(origin(two) + MS_ORG + "/generate", json=MS_JOB, headers=MS_KEY, timeout=10)
    job_path = MS_ORG + "/generate/" + job.json()["job_id"]

    two.reset()
    for mock in (one, two):
        assert mock.wallet("pahlavan", PV_ACCOUNT) == 100_000
        assert "runtime" not in {k.get("name") for k in mock.keys("pahlavan")}
        refused = mock.post("pahlavan", "/api/v1/quotes", json=IMAGE, key=key)
        assert refused.status_code == 401, refused.text
        assert requests.get(origin(mock) + job_path, headers=MS_KEY, timeout=10).status_code == 404


def test_two_prefixes_on_one_redis_see_nothing_of_each_other(
    start_mock: Callable[..., MockControl], redis_server: RedisServer, redis_prefix: str
) -> None:
    mine = start_mock(state=redis_server.url, state_prefix=redis_prefix)
    theirs = start_mock(state=redis_server.url, state_prefix=redis_prefix + "-other")
    job = requests.post(origin(mine) + MS_ORG + "/generate", json=MS_JOB, headers=MS_KEY, timeout=10)
    assert job.status_code == 200
    mine.set_wallet("pahlavan", 42, PV_ACCOUNT)
    mine.advance(1234)
    key = mine.create_key("pahlavan", "runtime", account=PV_ACCOUNT)
    assert mine.post("pahlavan", "/api/v1/quotes", json=IMAGE, key=key).status_code == 200
    wait_until(lambda: mine.journal("pahlavan"), "my journal rows")
    assert theirs.journal() == []

    assert requests.get(origin(theirs) + MS_ORG + "/generate/" + job.json()["job_id"], headers=MS_KEY,
                        timeout=10).status_code == 404  # fmt: skip
    assert theirs.wallet("pahlavan", PV_ACCOUNT) == 100_000
    assert theirs.now() < mine.now() - 1000
    assert requests.get(origin(theirs) + "/_mock/clock", timeout=10).json()["offset"] == 0
    assert theirs.post("pahlavan", "/api/v1/quotes", json=IMAGE, key=key).status_code == 401
    theirs.reset()
    assert mine.wallet("pahlavan", PV_ACCOUNT) == 42


# -- Redis lost mid-request ---------------------------------------------------------------------------------

BOUND = 8.0
"""Seconds a request or a health check may take against a lost Redis (2 s timeouts, one retry)."""


HOLD_SECONDS = 3.0
"""The hold deadline of the tests below (``--hold-seconds``): far past what one request takes here."""
SLOW_JOBS = 0.01
"""``job_speed`` keeping a video running (its hold open) through the waits below."""
SWEPT_WITHIN = HOLD_SECONDS + 5.0 + BOUND
"""A hold made before it is given back within its deadline, a sweep interval (at most 5 s) and slack."""


@pytest.mark.parametrize(
    "hold_seconds",
    [
        HOLD_SECONDS,  # the deadline sweep gives the cut requests' holds back (the outbox may be first)
        600.0,  # far past the wait below: only the instance's outbox, retried when Redis is back, can
    ],
    ids=["deadline", "outbox"],
)
def test_a_billed_request_cut_by_a_lost_redis_charges_nothing_half_way(
    own_redis: RedisServer, start_mock: Callable[..., MockControl], hold_seconds: float
) -> None:
    # Jobs 100 times slower: the video runs on while the cut requests' holds reach their deadline.
    mock = start_mock(state=own_redis.url, state_prefix="cut", hold_seconds=hold_seconds, job_speed=SLOW_JOBS)
    video = {"model": "veo-lite", "type": "video", "prompt": "waves"}
    url = mock.url("pahlavan", "/api/v1/generations")
    # A video holds 25 cents until it finishes: the hold is open when Redis goes.
    created = requests.post(url, json=video, headers=PV_KEY, timeout=10)
    assert created.status_code == 202, created.text
    status_url = created.json()["status_url"]
    assert wallet_hash(own_redis.url, "cut", "pahlavan", PV_ACCOUNT)["held"] == 25

    def burst() -> list[int]:
        return [requests.post(url, json=IMAGE, headers=PV_KEY, timeout=30).status_code for _ in range(20)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        running = [pool.submit(burst) for _ in range(4)]
        time.sleep(0.2)
        own_redis.stop()
        statuses = [s for future in running for s in future.result(timeout=60)]
    assert set(statuses) <= {200, 503}, statuses
    assert 503 in statuses

    started = time.monotonic()
    health = requests.get(mock.base_url + "/_mock/health", timeout=30)
    assert time.monotonic() - started < BOUND
    assert health.status_code == 503
    answer = requests.post(url, json=IMAGE, headers=PV_KEY, timeout=30)
    assert answer.status_code == 503
    assert "Traceback" not in answer.text

    own_redis.start()
    wait_until(
        lambda: requests.get(mock.base_url + "/_mock/health", timeout=10).status_code == 200,
        "health back to 200",
        BOUND,
    )
    # Every image that answered 200 was fully charged; the holds of those cut between reserve and settle
    # are given back by the sweep at their deadline; the video's is kept for its job.
    wait_until(
        lambda: wallet_hash(own_redis.url, "cut", "pahlavan", PV_ACCOUNT)["held"] == 25,
        "the cut requests' holds given back",
        SWEPT_WITHIN,
    )
    time.sleep(1.0)  # several sweeps later: still the video's hold, no more given back
    wallet = wallet_hash(own_redis.url, "cut", "pahlavan", PV_ACCOUNT)
    assert wallet["held"] == 25, wallet
    mock.advance(PAST_ANY_JOB / SLOW_JOBS)
    done = requests.get(status_url, headers=PV_KEY, timeout=20)
    assert done.json()["status"] == "succeeded", done.text
    wallet = wallet_hash(own_redis.url, "cut", "pahlavan", PV_ACCOUNT)
    assert wallet["held"] == 0, wallet
    images = statuses.count(200)
    # 0.3 cent an image, settled in whole cents with a carry: the video and whole cents of the images
    # that answered 200 (an image cut after its settle may be charged too: at most one cent each).
    assert 100_000 - 25 - images <= wallet["balance"] <= 100_000 - 25 - (images * 3) // 10, (wallet, images)


def test_a_killed_instance_s_open_hold_is_given_back_by_the_other(
    redis_server: RedisServer, redis_prefix: str, tmp_path: Path
) -> None:
    """An instance killed (SIGKILL) between a stream's reserve and its settle never gives the hold back
    itself: the other instance's sweep does, after the hold's deadline, charging nothing."""
    args = ("--state", redis_server.url, "--state-prefix", redis_prefix, "--hold-seconds", str(HOLD_SECONDS))
    # Paced: a 200-token stream takes ~40 s, so it is mid-way (its hold open) when its instance dies.
    with instances(tmp_path, 2, *args, "--tokens-per-second", "5") as (doomed, other):
        seeded = wallet_hash(redis_server.url, redis_prefix, "pahlavan", PV_ACCOUNT)
        assert seeded.get("held", 0) == 0, seeded
        stream = requests.post(
            doomed.origin + "/pahlavan/api/v1/chat/completions",
            json={"model": "glm-4.5", "messages": [{"role": "user", "content": "hi"}], "stream": True,
                  "max_tokens": 200},
            headers=PV_KEY,
            stream=True,
            timeout=30,
        )  # fmt: skip
        try:
            assert stream.status_code == 200, stream.text
            next(stream.iter_lines())  # the first event: reserved, streaming
            held = wallet_hash(redis_server.url, redis_prefix, "pahlavan", PV_ACCOUNT)
            assert held.get("held", 0) > 0, held
            doomed.stop(signal.SIGKILL)
        finally:
            stream.close()
        wait_until(
            lambda: wallet_hash(redis_server.url, redis_prefix, "pahlavan", PV_ACCOUNT).get("held", 0) == 0,
            "the killed instance's hold given back by the other",
            SWEPT_WITHIN,
        )
        wallet = wallet_hash(redis_server.url, redis_prefix, "pahlavan", PV_ACCOUNT)
        assert wallet["balance"] == seeded["balance"], (wallet, seeded)  # nothing charged half-way
        assert requests.get(other.origin + "/_mock/health", timeout=10).status_code == 200
        # The survivor's sweeper gave it back (the killed one never came back), and says so.
        assert "gave back 1 wallet hold(s) past their deadline" in other.log.read_text()


def test_a_running_video_s_hold_is_not_swept(
    redis_server: RedisServer, redis_prefix: str, start_mock: Callable[..., MockControl]
) -> None:
    """A video's hold outlasts any deadline while its job runs, then its job settles it."""
    mock = start_mock(
        state=redis_server.url, state_prefix=redis_prefix, hold_seconds=0.2, job_speed=SLOW_JOBS
    )
    created = requests.post(
        mock.url("pahlavan", "/api/v1/videos/generations"),
        json={"model": "veo-lite", "prompt": "waves"},
        headers=PV_KEY,
        timeout=10,
    )
    assert created.status_code == 202, created.text
    seeded = 100_000
    assert wallet_hash(redis_server.url, redis_prefix, "pahlavan", PV_ACCOUNT) == {
        "balance": seeded,
        "held": 25,
    }
    # Real time: 10 deadlines and several sweeps (every 50 ms at this deadline) while the job runs.
    time.sleep(2.0)
    assert wallet_hash(redis_server.url, redis_prefix, "pahlavan", PV_ACCOUNT)["held"] == 25
    mock.advance(PAST_ANY_JOB / SLOW_JOBS)
    done = requests.get(created.json()["status_url"], headers=PV_KEY, timeout=20)
    assert done.json()["status"] == "succeeded", done.text
    wallet = wallet_hash(redis_server.url, redis_prefix, "pahlavan", PV_ACCOUNT)
    assert (wallet["balance"], wallet["held"]) == (seeded - 25, 0), wallet
