"""Throughput of the state backends, as ratios measured in one run (issue 14, Performance).

    python bench/shared.py [--duration 5] [--rounds 3] [--baseline-rev REV] [--only memory,redis,...]

Rows, each a mock started once and loaded in turn, round after round (A B C, then C B A, ...), with
``wrk -t1 -c32`` POSTing a non-streamed SpaceAI chat completion (as bench/run.py does):

- ``memory``: this checkout's mock (or ``--rev REV``'s), state in memory, one process (the default
  ``--state``);
- ``redis``: the same with ``--state redis://...``, one process;
- ``workers2``: the same Redis with ``--workers 2`` (two processes on one port);
- ``baseline``: with ``--baseline-rev REV``, the memory mock of another git revision (``git archive`` of
  REV into a temp dir, run from there), for "memory backend vs the commit before this work".

The script starts its own redis-server on a free loopback port in a temp dir, persistence off (no AOF, no
snapshots), and stops it at the end. Ratios are medians of the rounds' ratios (each round loads every row
back to back, so a round's ratio sees one machine state): redis/memory (goal >= 0.5), workers2/redis,
memory/baseline (goal: no slower, ~1.0). CPU per request is the mock's processes' user+kernel time over
the requests served (and redis-server's beside it). Rows the checkout cannot run yet (no ``--state``) are
left out with ``--only``. Needs ``wrk``; only loopback is used; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from run import BODY, KEY, WRK_SCRIPT
from servers import ROOT, BenchError, Mock, checkout_at, cpu_seconds, machine_cpu, redis_server


def children_cpu() -> float:
    """CPU seconds of this process's finished children (the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


ROWS = ("memory", "redis", "workers2", "baseline")
PATH = "/spaceai/v1/chat/completions"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class WrkRun:
    """One wrk run's figures."""

    rps: float
    requests: int
    p99_ms: float
    errors: int  # non-2xx responses plus socket errors


def wrk(url: str, duration: int, script: Path, connections: int = 32) -> WrkRun:
    """``wrk -t1 -cN --latency`` against ``url``; its req/s, request count, p99 and errors."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if rps is None or count is None or p99 is None:
        raise BenchError(f"cannot read wrk's output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return WrkRun(
        float(rps.group(1)), int(count.group(1)), float(p99.group(1)) * _UNITS[p99.group(2)], errors
    )


@dataclass
class Row:
    """A row's mock and what its runs measured."""

    name: str
    mock: Mock
    redis_pid: int | None = None
    runs: list[WrkRun] = field(default_factory=list)
    others: list[float] = field(default_factory=list)  # cores busy with neither the row nor wrk, each run
    cpu_us: list[float] = field(default_factory=list)  # the mock's CPU per request, each run
    redis_cpu_us: list[float] = field(default_factory=list)

    def measure(self, duration: int, script: Path) -> None:
        """One wrk run, with the CPU the mock (and redis-server) spent on it."""
        mock_before = self.mock.cpu_seconds()
        redis_before = cpu_seconds(self.redis_pid) if self.redis_pid else 0.0
        machine_before, wrk_before, since = machine_cpu()[0], children_cpu(), time.monotonic()
        run = wrk(f"{self.mock.url}{PATH}", duration, script)
        busy, wall = machine_cpu()[0] - machine_before, time.monotonic() - since
        self.runs.append(run)
        served = max(run.requests, 1)
        mock = self.mock.cpu_seconds() - mock_before
        redis = cpu_seconds(self.redis_pid) - redis_before if self.redis_pid else 0.0
        self.cpu_us.append(mock / served * 1e6)
        if self.redis_pid:
            self.redis_cpu_us.append(redis / served * 1e6)
        # Whatever else ran meanwhile (neighbours, kernel threads): a run they crowded says less.
        self.others.append(max(busy - mock - redis - (children_cpu() - wrk_before), 0.0) / wall)


def ratio(top: Row, bottom: Row) -> str:
    """Median and per-round list of top/bottom req/s, and the same for CPU per request (bottom/top)."""
    pairs = sorted(t.rps / b.rps for t, b in zip(top.runs, bottom.runs, strict=True))
    # CPU per request moves less than req/s when neighbours take the CPU: a second view of the same runs.
    cpu = sorted(b / t for t, b in zip(top.cpu_us, bottom.cpu_us, strict=True))
    return (
        f"{statistics.median(pairs):.2f}  (rounds: {', '.join(f'{p:.2f}' for p in pairs)});"
        f"  by CPU per request: {statistics.median(cpu):.2f}  (rounds: {', '.join(f'{c:.2f}' for c in cpu)})"
    )


def report(rows: dict[str, Row], rev: str | None) -> None:
    """The table of medians and the ratios between rows."""
    print(f"\n{'row':<10} {'req/s median':>12} {'per round':<28} {'p99 ms':>7} {'CPU us/req':>10} "
          f"{'redis us/req':>12} {'errors':>6} {'start s':>7}  peak RSS MiB per process")  # fmt: skip
    for row in rows.values():
        rps = [r.rps for r in row.runs]
        redis_cpu = f"{statistics.median(row.redis_cpu_us):.1f}" if row.redis_cpu_us else "-"
        rss = ", ".join(f"{pid}: {mib:.0f}" for pid, mib in row.mock.peak_rss().items())
        print(
            f"{row.name:<10} {statistics.median(rps):>12.0f} {' '.join(f'{r:.0f}' for r in rps):<28} "
            f"{statistics.median(r.p99_ms for r in row.runs):>7.1f} {statistics.median(row.cpu_us):>10.1f} "
            f"{redis_cpu:>12} {sum(r.errors for r in row.runs):>6} {row.mock.startup:>7.2f}  {rss}"
        )
    print()
    for row in rows.values():
        if row.redis_cpu_us and statistics.median(row.redis_cpu_us) < 0.5:
            # A request on the Redis backend costs redis-server several microseconds; none means no Redis.
            print(f"warning: redis-server did almost no work for the {row.name} row: is it on Redis at all?")
    if "redis" in rows and "memory" in rows:
        print(f"redis / memory, 1 process (goal >= 0.5):   {ratio(rows['redis'], rows['memory'])}")
    if "workers2" in rows and "redis" in rows:
        print(f"redis --workers 2 / 1:                     {ratio(rows['workers2'], rows['redis'])}")
    if "memory" in rows and "baseline" in rows:
        print(f"memory / baseline {rev} (goal ~1.0): {ratio(rows['memory'], rows['baseline'])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every row (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of load per row first (default 1)")
    parser.add_argument("--baseline-rev", metavar="REV", help="also run the memory mock of this git revision")
    parser.add_argument(
        "--rev", metavar="REV", help="run the other rows from this git revision (default: the working tree)"
    )
    parser.add_argument(
        "--only", metavar="ROWS", help=f"comma-separated rows to run, of {','.join(ROWS)} (default: all)"
    )
    args = parser.parse_args()
    wanted = args.only.split(",") if args.only else [r for r in ROWS if r != "baseline" or args.baseline_rev]
    if unknown := set(wanted) - set(ROWS):
        parser.error(f"unknown rows: {', '.join(sorted(unknown))} (rows: {', '.join(ROWS)})")
    if "baseline" in wanted and not args.baseline_rev:
        parser.error("the baseline row needs --baseline-rev REV")

    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp, "chat.lua")
        script.write_text(WRK_SCRIPT.format(body=json.dumps(BODY), key=KEY))
        rows: dict[str, Row] = {}
        try:
            redis_url, redis_pid = (
                stack.enter_context(redis_server()) if {"redis", "workers2"} & set(wanted) else ("", None)
            )
            tree = stack.enter_context(checkout_at(args.rev)) if args.rev else ROOT
            for name in (r for r in ROWS if r in wanted):  # the table's order, whatever --only's
                if name == "memory":
                    rows[name] = Row(name, stack.enter_context(Mock(name, checkout=tree)))
                elif name == "baseline":
                    checkout = stack.enter_context(checkout_at(args.baseline_rev))
                    rows[name] = Row(name, stack.enter_context(Mock(name, checkout=checkout)))
                else:
                    workers = 2 if name == "workers2" else 1
                    state = ["--state", redis_url, "--state-prefix", f"bench-{name}"]
                    mock = stack.enter_context(Mock(name, state, checkout=tree, workers=workers))
                    rows[name] = Row(name, mock, redis_pid)
        except BenchError as exc:
            print(f"shared.py: {exc}\n(leave out rows this checkout cannot run with --only)", file=sys.stderr)
            return 2
        if args.warmup > 0:
            for row in rows.values():
                wrk(f"{row.mock.url}{PATH}", args.warmup, script)
        for number in range(args.rounds):
            # Every other round in reverse (A B C, C B A, ...): a load that drifts through the run
            # favours no row.
            for row in list(rows.values())[:: -1 if number % 2 else 1]:
                row.measure(args.duration, script)
                run = row.runs[-1]
                print(
                    f"round {number + 1} {row.name:<9} {run.rps:8.0f} req/s  p99 {run.p99_ms:6.1f} ms  "
                    f"(other processes took {row.others[-1]:.2f} cores)",
                    flush=True,
                )
        report(rows, args.baseline_rev)
    return 1 if any(r.errors for row in rows.values() for r in row.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
