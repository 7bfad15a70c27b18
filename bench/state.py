"""The state backends side by side: operations per second of the request path's calls, memory against Redis.

    python bench/state.py [--ops 5000] [--concurrency 1 32] [--redis redis://127.0.0.1:6379/0]

Without ``--redis`` it starts its own redis-server on a free loopback port in a temporary folder (AOF off)
and stops it after. Each figure is the best of three rounds of ``--ops`` operations, run with 1 and with N
concurrent tasks (Redis overlaps round trips across tasks; memory never waits), printed as ops/s and as
the ratio Redis / memory measured in the same run, with this process's CPU time per operation (the
client's share: what a mock process pays per call, whatever the server's machine does). ``admit`` is the
request path's one round trip; ``find_key`` is answered from the per-instance cache; ``reserve+settle`` is
a billed request's two scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mockserver.core.clock import Clock
from mockserver.resources import PROVIDER_IDS
from mockserver.settings import Settings
from mockserver.state.api import State
from mockserver.state.factory import create_state
from mockserver.state.records import HoldRecord
from mockserver.state.seed import read_seeds

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PROVIDER = "pahlavan"
ROUNDS = 3
Op = Callable[[int], Awaitable[object]]


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port; its URL."""
    program = shutil.which("redis-server")
    if program is None:
        raise SystemExit("redis-server is not installed (or pass --redis URL)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        process = subprocess.Popen(
            [program, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder, "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                        conn.sendall(b"PING\r\n")
                        if conn.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


def operations(state: State) -> dict[str, Op]:
    """The measured calls, each taking an operation number."""
    seed = state.seed(PROVIDER)
    key = seed.keys[0]
    account = key.account

    async def admit(n: int) -> object:
        return await state.admit(PROVIDER, "createVideo", key.key_id, 10**9)

    async def find_key(n: int) -> object:
        return await state.find_key(PROVIDER, key.key)

    async def reserve_settle(n: int) -> object:
        hold = HoldRecord(
            f"bench-{n}-{time.perf_counter_ns()}", PROVIDER, account, key.key_id, 1, 1, "0.01", 900_000
        )
        if await state.reserve(hold) is None:
            await state.settle(hold, 900_000)
        return None

    return {"admit": admit, "find_key (warm)": find_key, "reserve+settle": reserve_settle}


async def rate(op: Op, ops: int, concurrency: int) -> tuple[float, float]:
    """Operations per second: the best of ``ROUNDS`` rounds of ``ops`` operations over ``concurrency``
    tasks (they share one iterator of operation numbers)."""

    async def worker(numbers: Iterator[int]) -> None:
        for n in numbers:
            await op(n)

    best, cpu = 0.0, float("inf")
    for _ in range(ROUNDS):
        numbers = iter(range(ops))
        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(numbers) for _ in range(concurrency)))
        best = max(best, ops / (time.perf_counter() - started))
        cpu = min(cpu, (time.process_time() - cpu_started) / ops * 1e6)
    return best, cpu


async def measure(url: str, ops: int, levels: list[int]) -> dict[tuple[str, int], tuple[float, float]]:
    """(ops/s, this process's CPU us per op) by (operation, concurrency) on one backend."""
    seeds = read_seeds(FIXTURES, PROVIDER_IDS)
    settings = Settings(state=url, state_prefix="bench-state")
    state = create_state(settings, seeds, Clock())
    await state.open()
    try:
        await state.reset()
        await state.set_wallet(PROVIDER, state.seed(PROVIDER).keys[0].account, 10**12)
        found: dict[tuple[str, int], tuple[float, float]] = {}
        for name, op in operations(state).items():
            await op(-1)  # warm: scripts loaded, the key cached
            for level in levels:
                found[name, level] = await rate(op, ops, level)
        await state.reset()
        return found
    finally:
        await state.close()


def main() -> None:
    """Print ops/s per backend and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=5000, help="operations per round (default 5000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--redis", metavar="URL", help="an existing Redis (default: start one)")
    args = parser.parse_args()
    ops = max(1, min(args.ops, 200_000))  # bounded: this is a benchmark, not a soak
    levels = [max(1, min(level, 1000)) for level in args.concurrency]

    def run(url: str) -> None:
        memory = asyncio.run(measure("memory", ops, levels))
        redis = asyncio.run(measure(url, ops, levels))
        print(
            f"{'operation':<18} {'tasks':>5} {'memory ops/s':>13} {'redis ops/s':>12} {'redis/memory':>13}"
            f" {'CPU us/op memory':>17} {'redis':>6}"
        )
        for (name, level), (mem, mem_cpu) in memory.items():
            red, red_cpu = redis[name, level]
            print(
                f"{name:<18} {level:>5} {mem:>13,.0f} {red:>12,.0f} {red / mem:>13.3f}"
                f" {mem_cpu:>17.1f} {red_cpu:>6.1f}"
            )

    if args.redis:
        run(args.redis)
    else:
        with redis_server() as url:
            run(url)


if __name__ == "__main__":
    main()
