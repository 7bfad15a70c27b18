"""Many concurrent paced SSE streams against the mock: do they all complete, and how soon does each start?

    python bench/sse_streams.py [--streams 10000] [--state redis://...] [--workers 2] [--url URL]

Each stream is a streamed SpaceAI chat completion (``stream: true``, ``max_tokens`` 20: 23 events with the
role and finish events and ``[DONE]``), the mock started with ``--tokens-per-second 20`` (it sleeps 1/20 s
after each event, so one stream lasts ~1.1 s). Without ``--url`` the script starts the mock itself (this
checkout; ``--state``, ``--state-prefix``, ``--workers`` passed through; with a Redis ``--state`` and no
server at hand, ``--state redis`` starts a redis-server of its own, persistence off).

The client runs in ``--clients`` processes (default 2), each one event loop of plain asyncio protocols (no
HTTP library: a stream costs the client a callback per chunk), fd limits raised for them and the mock. New
connections are paced so the mock's listen backlog (aiohttp's default, 128 per listening socket) does not
overflow: ``--window`` bounds the requests sent and not yet answered by a first event, ``--rate`` the
connections opened per second (0: no bound). An overflowing backlog drops SYNs, which the client's kernel
resends after 1 s, 3 s, 7 s...: the ``ListenOverflows`` counter of ``/proc/net/netstat`` is reported.

Reported: streams completed / started with errors by kind; time to first event p50/p99/max from sending
the request (and the connect time before it); the ramp (when the last stream was sent); peak concurrent
streams (first event received, not yet ended); total time; CPU of the mock's processes and of each client
process (a client near 100% of a core is the bottleneck, not the mock); peak RSS per mock process (VmHWM).
Goal (issue 14): all complete, p99 time to first event under 1 s, with ``--workers 2`` on Redis. Only
loopback is used; ``--timeout`` bounds the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import math
import multiprocessing
import os
import resource
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.queues import Queue
from typing import Any
from urllib.parse import urlsplit

from run import KEY
from servers import (
    ROOT,
    BenchError,
    Mock,
    checkout_at,
    cpu_split,
    machine_cpu,
    peak_rss_mib,
    process_tree,
    raise_nofile,
    redis_server,
)

PATH = "/spaceai/v1/chat/completions"
DONE = b"data: [DONE]\n\n"
OK = "ok"


@dataclass(frozen=True)
class Plan:
    """What one client process runs."""

    host: str
    port: int
    streams: int
    window: int  # requests awaiting their first event at once (0: no bound)
    rate: float  # connections opened per second (0: no bound)
    tokens: int
    start_at: float  # time.monotonic() (one clock for every process on Linux)
    stream_timeout: float
    deadline: float  # time.monotonic() by which the client reports, finished or not


class Stream(asyncio.Protocol):
    """One request over its own connection (``Connection: close``): timestamps and how it ended."""

    def __init__(self, request: bytes, on_first: asyncio.Semaphore | None) -> None:
        self.request, self.on_first = request, on_first
        self.started = time.monotonic()
        self.sent = self.first = self.ended = math.nan
        self.head = b""  # bytes up to the first event
        self.tail = b""  # the last bytes, to see the stream's clean end
        self.outcome: str | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)
        self.sent = time.monotonic()

    def data_received(self, data: bytes) -> None:
        if math.isnan(self.first):
            self.head += data
            if b"data: " in self.head:
                self.first = time.monotonic()
                if not self.head.startswith(b"HTTP/1.1 200 "):
                    self.outcome = f"status {self.head[9:12].decode(errors='replace')}"
                self.release()
            elif b"\r\n\r\n" in self.head and not self.head.startswith(b"HTTP/1.1 200 "):
                self.outcome = f"status {self.head[9:12].decode(errors='replace')}"
        self.tail = (self.tail + data)[-64:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = time.monotonic()
        if self.outcome is None:
            if exc is not None:
                self.outcome = _kind(exc)
            elif math.isnan(self.first):
                self.outcome = "closed before the first event"
            else:
                # A chunked response ends with the zero-length chunk: anything else is a cut stream.
                self.outcome = OK if self.tail.endswith(DONE + b"\r\n0\r\n\r\n") else "cut (no [DONE])"
        self.release()
        if not self.closed.done():
            self.closed.set_result(None)

    def release(self) -> None:
        """Free this request's place in the window (once)."""
        if self.on_first is not None:
            self.on_first.release()
            self.on_first = None

    def fail(self, outcome: str) -> None:
        """End the stream here (connect error, timeout) unless it already ended."""
        if self.outcome is None:
            self.outcome = outcome
        if self.transport is not None:
            self.transport.abort()
        elif math.isnan(self.ended):
            self.connection_lost(None)


def _kind(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__} {errno.errorcode.get(exc.errno, exc.errno)}"
    return type(exc).__name__


def request_bytes(host: str, port: int, tokens: int) -> bytes:
    """The HTTP request every stream sends."""
    body = json.dumps(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "Hello!"}],
            "max_tokens": tokens,
            "stream": True,
        }
    ).encode()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {KEY}\r\nAccept: text/event-stream\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def run_client(plan: Plan) -> list[tuple[float, float, float, float, str]]:
    """Run ``plan``'s streams; each as (started, sent, first event, ended, outcome) on the monotonic clock."""
    loop = asyncio.get_running_loop()
    request = request_bytes(plan.host, plan.port, plan.tokens)
    window = asyncio.Semaphore(plan.window) if plan.window else None
    streams: list[Stream] = []

    async def one(stream: Stream) -> None:
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: stream, plan.host, plan.port), timeout=plan.stream_timeout
            )
            remaining = plan.stream_timeout - (time.monotonic() - stream.started)
            await asyncio.wait_for(asyncio.shield(stream.closed), timeout=max(remaining, 0.001))
        except TimeoutError:
            stream.fail("timeout (connect)" if stream.transport is None else "timeout (stream)")
        except OSError as exc:
            stream.fail(_kind(exc))

    tasks: list[asyncio.Task[None]] = []

    async def launch() -> None:
        await asyncio.sleep(max(plan.start_at - time.monotonic(), 0))
        for number in range(plan.streams):
            if plan.rate:
                await asyncio.sleep(max(plan.start_at + number / plan.rate - time.monotonic(), 0))
            if window is not None:
                await window.acquire()
            streams.append(Stream(request, window))
            tasks.append(asyncio.create_task(one(streams[-1])))

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(launch(), timeout=max(plan.deadline - time.monotonic(), 0.001))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=max(plan.deadline - time.monotonic(), 0.001))
    for stream in streams:
        stream.fail("timeout (run)")
    return [(s.started, s.sent, s.first, s.ended, s.outcome or "timeout (run)") for s in streams]


def client_main(plan: Plan, results: Queue[Any]) -> None:
    """A client process: raise the fd limit, run the streams, send back the records and its CPU time."""
    raise_nofile(plan.streams + 64)
    try:
        records = asyncio.run(
            asyncio.wait_for(run_client(plan), timeout=plan.deadline - time.monotonic() + 5)
        )
        error = None
    except BaseException as exc:  # reported to the parent, which reports it
        records, error = [], repr(exc)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    results.put((os.getpid(), records, usage.ru_utime + usage.ru_stime, error))


def listen_overflows() -> int:
    """The kernel's count of connections dropped by full listen backlogs (this network namespace)."""
    with open("/proc/net/netstat") as fh:
        lines = [line.split() for line in fh if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1], strict=True))["ListenOverflows"])


def pct(values: list[float], q: float) -> float:
    """The q-th percentile by nearest rank (NaN for no values)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)] if ordered else math.nan


def spread(values: list[float]) -> str:
    """p50, p99 and max of millisecond figures."""
    return f"p50 {pct(values, 50):.1f}  p99 {pct(values, 99):.1f}  max {max(values, default=math.nan):.1f}"


def peak_concurrent(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant."""
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def drive(
    args: argparse.Namespace, url: str
) -> tuple[list[tuple[float, float, float, float, str]], float, list[str], float]:
    """Run the client processes against ``url``: the streams' records, the start time, a line per client
    and the clients' CPU seconds."""
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    start_at = time.monotonic() + 1.0  # every client process up and waiting
    deadline = start_at + args.timeout
    context = multiprocessing.get_context("fork")  # no event loop runs yet in this process
    results: Queue[Any] = context.Queue()
    procs = []
    for index in range(args.clients):
        share = args.streams // args.clients + (index < args.streams % args.clients)
        plan = Plan(
            host, port, share, math.ceil(args.window / args.clients) if args.window else 0,
            args.rate / args.clients, args.tokens, start_at, args.stream_timeout, deadline,
        )  # fmt: skip
        procs.append(context.Process(target=client_main, args=(plan, results), daemon=True))
        procs[-1].start()
    records: list[tuple[float, float, float, float, str]] = []
    lines, client_cpu = [], 0.0
    try:
        for _ in procs:
            pid, got, cpu, error = results.get(timeout=max(deadline - time.monotonic(), 0) + 30)
            records, client_cpu = records + got, client_cpu + cpu
            wall = time.monotonic() - start_at
            lines.append(f"client {pid}: {len(got)} streams, CPU {cpu:.1f} s ({cpu / wall:.0%} of one core)")
            if error:
                lines.append(f"client {pid} failed: {error}")
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    return records, start_at, lines, client_cpu


def report(
    args: argparse.Namespace, records: list[tuple[float, float, float, float, str]], start_at: float
) -> bool:
    """Print the streams' figures; True when the goal is met (all complete, p99 first event < 1 s)."""
    outcomes = Counter(r[4] for r in records)
    ok = outcomes[OK]
    first = [(r[2] - r[1]) * 1000 for r in records if not math.isnan(r[2]) and not math.isnan(r[1])]
    connect = [(r[1] - r[0]) * 1000 for r in records if not math.isnan(r[1])]
    ends = [r[3] for r in records if not math.isnan(r[3])]
    print(f"streams: {ok} completed / {len(records)} started / {args.streams} asked")
    for kind, count in sorted(outcomes.items(), key=lambda item: -item[1]):
        if kind != OK:
            print(f"  error {kind}: {count}")
    wait = [(r[2] - r[0]) * 1000 for r in records if not math.isnan(r[2])]
    print(f"time to first event from sending, ms: {spread(first)}")
    print(f"connect time before sending, ms: {spread(connect)}")
    print(f"time to first event from the start of connect (what a user waits), ms: {spread(wait)}")
    # Paced at --tokens-per-second, a stream lasts (events - 1) / pace; longer means the mock fell behind.
    lasted = [(r[3] - r[2]) * 1000 for r in records if r[4] == OK]
    print(f"stream duration, first event to end, ms: {spread(lasted)}")
    sent = [r[1] for r in records if not math.isnan(r[1])]
    print(f"ramp: last request sent {max(sent, default=start_at) - start_at:.2f} s after the start")
    spans = [(r[2], r[3]) for r in records if not math.isnan(r[2]) and not math.isnan(r[3])]
    peak = peak_concurrent(spans)
    print(f"peak concurrent streams (first event received, not yet ended): {peak}")
    print(f"total time: {max(ends, default=start_at) - start_at:.2f} s")
    # The goal, all three parts: every stream completes, p99 of what a user waits (connect included)
    # under 1 s, and the streams really were concurrent (a slow ramp would meet the first two one by one).
    p99 = pct(wait, 99)
    missed = [f"{args.streams - ok} not completed"] if ok < args.streams else []
    missed += [f"p99 {p99 / 1000:.2f} s"] if not p99 < 1000 else []
    missed += [f"peak concurrency {peak} of {args.streams}"] if peak < args.streams else []
    met = not missed
    verdict = "met" if met else f"missed: {'; '.join(missed)}"
    print(f"goal (all complete, p99 time to first event < 1 s, all concurrent): {verdict}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--url", help="a running mock (default: start one from this checkout)")
    parser.add_argument("--rev", metavar="REV", help="start the mock of this git revision instead")
    parser.add_argument(
        "--mock-pid", type=int, help="with --url: the mock's PID, for its (and its workers') CPU and peak RSS"
    )
    parser.add_argument("--state", help="passed to the mock; 'redis': a redis-server started here")
    parser.add_argument("--state-prefix", help="passed to the mock")
    parser.add_argument("--workers", type=int, default=1, help="passed to the mock")
    parser.add_argument(
        "--mock-arg", action="append", default=[], metavar="ARG",
        help="another argument for the mock, e.g. --mock-arg=--response-validation=off (repeatable)",
    )  # fmt: skip
    parser.add_argument("--tokens", type=int, default=20, help="max_tokens of each stream (default 20)")
    parser.add_argument("--tokens-per-second", type=float, default=20.0, help="the mock's pace (default 20)")
    parser.add_argument("--clients", type=int, default=2, help="client processes (default 2)")
    parser.add_argument(
        "--window", type=int, default=100,
        help="requests awaiting their first event at once, over all clients (default 100, under the mock's "
        "listen backlog of 128; 0: no bound)",
    )  # fmt: skip
    parser.add_argument("--rate", type=float, default=0.0, help="new connections per second (0: no bound)")
    parser.add_argument("--stream-timeout", type=float, default=60.0, help="seconds a stream may take")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds the whole run may take")
    args = parser.parse_args()
    # A last resort: whatever hangs, the run ends (the mock and redis-server go with the context managers).
    signal_deadline = int(args.timeout + args.stream_timeout + 120)
    signal.signal(signal.SIGALRM, lambda *_: sys.exit("sse_streams.py: hard timeout"))
    signal.alarm(signal_deadline)
    raise_nofile(args.streams + 1024)
    with contextlib.ExitStack() as stack:
        mock: Mock | None = None
        redis_pid: int | None = None
        try:
            if args.url is None:
                extra = ["--tokens-per-second", str(args.tokens_per_second), *args.mock_arg]
                state = args.state
                if state == "redis":
                    state, redis_pid = stack.enter_context(redis_server())
                if state is not None:
                    extra += ["--state", state]
                if args.state_prefix is not None:
                    extra += ["--state-prefix", args.state_prefix]
                name = f"mock ({state or 'memory'}, {args.workers} worker(s))"
                tree = stack.enter_context(checkout_at(args.rev)) if args.rev else ROOT
                mock = stack.enter_context(
                    Mock(name, extra, checkout=tree, workers=args.workers, nofile=args.streams + 1024)
                )
        except BenchError as exc:
            print(f"sse_streams.py: {exc}", file=sys.stderr)
            return 2
        url = mock.url if mock is not None else args.url
        # The mock's processes: with --workers, its workers too (children of the process started).
        pids = process_tree(mock.pid if mock is not None else args.mock_pid) if mock or args.mock_pid else []
        watched = [*pids, *([redis_pid] if redis_pid else [])]
        cpu_before = {pid: cpu_split(pid) for pid in watched}
        overflows, machine_before, since = listen_overflows(), machine_cpu(), time.monotonic()
        records, start_at, lines, client_cpu = drive(args, url)
        wall = time.monotonic() - start_at
        tasks, irq, steal = (now - then for now, then in zip(machine_cpu(), machine_before, strict=True))
        machine_wall = time.monotonic() - since
        print(
            f"{args.streams} streams of {args.tokens} tokens at {args.tokens_per_second:g} tokens/s against "
            f"{url}; {args.clients} client process(es), window {args.window or 'unbounded'}, "
            f"rate {args.rate or 'unbounded'}"
        )
        met = report(args, records, start_at)
        overflows = listen_overflows() - overflows
        print(f"listen backlog overflows during the run (ListenOverflows, whole machine): {overflows}")
        for line in lines:
            print(line)
        streams, total = max(len(records), 1), 0.0
        for pid in watched:
            user, kernel = (now - then for now, then in zip(cpu_split(pid), cpu_before[pid], strict=True))
            cpu, rss = user + kernel, peak_rss_mib(pid)
            total += cpu if pid != redis_pid else 0.0
            print(
                f"{'redis-server' if pid == redis_pid else 'mock process'} {pid}: CPU {cpu:.1f} s "
                f"({cpu / wall:.0%} of a core; user {user:.1f} s, kernel {kernel:.1f} s; "
                f"{cpu / streams * 1e3:.2f} ms per stream of the run), peak RSS {rss:.0f} MiB"
            )
        if len(pids) > 1:
            print(f"mock, all processes: CPU {total:.1f} s, {total / streams * 1e3:.2f} ms per stream")
        # Beside the mock, redis-server and the clients: did other processes (neighbours, kernel threads) or
        # the VM's host take the CPU? A run they crowded says little about the mock.
        ours = sum(sum(cpu_split(pid)) - sum(cpu_before[pid]) for pid in watched) + client_cpu
        print(
            f"machine: {(tasks + irq) / machine_wall:.2f} of {os.cpu_count()} cores busy over the run: "
            f"{max(tasks - ours, 0.0) / machine_wall:.2f} in other processes, {irq / machine_wall:.2f} in "
            f"interrupts; {steal / machine_wall:.2f} stolen by the VM's host"
        )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
