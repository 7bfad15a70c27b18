"""Benchmarks of the mock server, reported as ratios against a baseline measured in the same run.

    python bench/run.py [--duration 10] [--rounds 2] [--streams 1000] [--response-validation warn|off]

1. Throughput: a non-streamed SpaceAI chat completion (authenticated, validated, rate-limited with a high
   --rate-limit, response validation on) against a bare aiohttp handler returning a fixed completion;
   `wrk -t1 -c32` against each, alternating, so both see the same machine load. Reported as the median of
   the rounds' ratios (each round runs bare then mock back to back) and as best mock over best bare.
   Each server's CPU time per request (user and kernel, from /proc) is reported beside it: on a VM the
   kernel part grows when the load generator's CPU idles between slower responses (waking it costs more).
2. Start-up: seconds from process start until the mock answers `GET /_mock/providers`.
3. Peak memory: the mock's peak RSS (VmHWM) after the throughput runs.
4. Streaming: N concurrent streamed completions with usage from one client process; all must end in
   `[DONE]` with the full content; reports the wall time and the mock's peak RSS.

Needs `wrk` (Debian package `wrk`). Only loopback is used; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY = "sk-spaceai-mockkey-0001"
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 32}
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, timeout: float = 20.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return time.perf_counter() - started
        except OSError:
            time.sleep(0.005)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def mock_command(port: int, response_validation: str = "warn") -> list[str]:
    """The mock as every benchmark runs it: the CLI, with a rate limit no run reaches."""
    return [
        sys.executable,
        "-m",
        "mockserver",
        "--port",
        str(port),
        "--rate-limit",
        "100000000",
        "--response-validation",
        response_validation,
    ]


def start_mock(port: int, response_validation: str) -> tuple[subprocess.Popen[bytes], float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        mock_command(port, response_validation), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_until_up(f"http://127.0.0.1:{port}/_mock/providers")
    return proc, time.perf_counter() - started


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and kernel CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def wrk(url: str, duration: int, script: Path) -> tuple[float, int]:
    """Requests per second and the number of requests of one wrk run."""
    out = subprocess.run(
        ["wrk", "-t1", "-c32", f"-d{duration}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 30,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match is None or count is None or non2xx is not None:
        raise RuntimeError(f"wrk run failed or saw errors:\n{out}")
    return float(match.group(1)), int(count.group(1))


def measured_run(url: str, duration: int, script: Path, pid: int, cpu: list[tuple[float, float]]) -> float:
    """One wrk run against the server ``pid``; appends its (user, kernel) CPU microseconds per request."""
    user, kernel = cpu_seconds(pid)
    rps, count = wrk(url, duration, script)
    user_after, kernel_after = cpu_seconds(pid)
    cpu.append(((user_after - user) / count * 1e6, (kernel_after - kernel) / count * 1e6))
    return rps


async def stream_many(base: str, count: int) -> tuple[float, int]:
    import aiohttp

    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    headers = {"Authorization": f"Bearer {KEY}"}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)

    async def one(session: aiohttp.ClientSession) -> bool:
        async with session.post(f"{base}/spaceai/v1/chat/completions", json=body, headers=headers) as resp:
            text = await resp.text()
        events = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
        return resp.status == 200 and events[-1] == "[DONE]" and "usage" in json.loads(events[-2])

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        results = await asyncio.gather(*(one(session) for _ in range(count)))
        return time.perf_counter() - started, sum(results)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument(
        "--response-validation",
        choices=("off", "warn"),
        default="warn",
        help="the mock's check of its own responses (warn, the CLI default, checks every response)",
    )
    args = parser.parse_args()

    mock_port, bare_port = free_port(), free_port()
    mock, startup = start_mock(mock_port, args.response_validation)
    bare = subprocess.Popen([sys.executable, str(HERE / "bare_server.py"), str(bare_port)])
    try:
        time.sleep(0.5)  # the bare server has no GET route to poll; it starts in ~0.2 s
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
            fh.write(WRK_SCRIPT.format(body=json.dumps(BODY), key=KEY))
            script = Path(fh.name)
        path = "/spaceai/v1/chat/completions"
        mock_rps: list[float] = []
        bare_rps: list[float] = []
        mock_cpu: list[tuple[float, float]] = []
        bare_cpu: list[tuple[float, float]] = []
        for _ in range(args.rounds):
            bare_url, mock_url = f"http://127.0.0.1:{bare_port}{path}", f"http://127.0.0.1:{mock_port}{path}"
            bare_rps.append(measured_run(bare_url, args.duration, script, bare.pid, bare_cpu))
            mock_rps.append(measured_run(mock_url, args.duration, script, mock.pid, mock_cpu))
        mock_peak = peak_rss_mib(mock.pid)
        stream_time, ok = asyncio.run(stream_many(f"http://127.0.0.1:{mock_port}", args.streams))
        stream_peak = peak_rss_mib(mock.pid)
    finally:
        for proc in (mock, bare):
            proc.terminate()
            proc.wait(timeout=10)
    best_mock, best_bare = max(mock_rps), max(bare_rps)
    print(f"bare aiohttp req/s per round: {[round(r) for r in bare_rps]}")
    mode = f"response validation {args.response_validation}"
    print(f"mock (SpaceAI chat, {mode}) req/s per round: {[round(r) for r in mock_rps]}")
    # Each round measures bare then mock back to back, so a round's ratio sees one machine state; the
    # median of those is robust to a neighbour's burst, which "best of" is not.
    pairs = sorted(m / b for m, b in zip(mock_rps, bare_rps, strict=True))
    median, rounds = statistics.median(pairs), [round(p, 2) for p in pairs]
    print(f"throughput ratio mock/bare: median of rounds {median:.2f} {rounds}")
    print(f"throughput ratio mock/bare: best of {args.rounds} rounds {best_mock / best_bare:.2f}")
    for name, cpu in (("bare", bare_cpu), ("mock", mock_cpu)):
        user = statistics.median(u for u, _ in cpu)
        kernel = statistics.median(k for _, k in cpu)
        print(f"{name} CPU per request (median of rounds): user {user:.1f} us, kernel {kernel:.1f} us")
    print(f"mock start-up: {startup:.2f} s; peak RSS after load: {mock_peak:.0f} MiB")
    print(
        f"{args.streams} concurrent streams: {ok} done in {stream_time:.2f} s; peak RSS {stream_peak:.0f} MiB"
    )
    return 0 if ok == args.streams else 1


if __name__ == "__main__":
    sys.exit(main())
