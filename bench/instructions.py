"""CPU instructions per request, counted by valgrind's callgrind: a measure the machine's noise cannot move.

    python bench/instructions.py [--requests 1000] [--response-validation warn|off]

Runs the bare aiohttp baseline and the mock under callgrind, each twice (300 requests, then 300 plus
``--requests``), and reports the difference per request, so start-up cancels out. Wall-clock ratios on a
shared machine swing by +-0.05 from one run to the next; this count repeats within about 1% (two runs at
``--requests 1500`` agreed within 0.1%). It is a proxy: it does not see cache misses or the kernel. Needs
Debian's ``valgrind``; takes a few minutes (callgrind runs Python ~50x slower). Only loopback is used.
Work the mock does on a timer while idle is counted too, and grows with the run's length: under callgrind
an idle loop waking every second cost ~0.25M instructions a second, which moved the per-request figure by
~15k until the memory backend's loops stopped waking on a timer.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import BODY, KEY, free_port, mock_command  # noqa: E402  (bench/ is a folder of scripts, not a package)

PATH = "/spaceai/v1/chat/completions"
WARM_UP = 300


def drive(port: int, count: int, timeout: float = 300.0) -> None:
    """Send ``count`` completions over one keep-alive connection, once the server answers.

    Each request leaves in one write, as a load generator sends it: a request split over two writes
    reaches the server in one read or two depending on timing, and the count would vary with it.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=120)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    body = json.dumps(BODY).encode()
    request = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with sock, sock.makefile("rb") as stream:
        for _ in range(count):
            sock.sendall(request)
            status = stream.readline()
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            stream.read(length)
            if b" 200 " not in status:
                raise RuntimeError(f"status line {status!r}")


def instructions(command: list[str], port: int, count: int) -> int:
    """Instructions callgrind counted for a server that answered ``count`` requests, then stopped."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        # A fixed hash seed: dict and set layouts, hence start-up work, repeat exactly between runs.
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            drive(port, count)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=300)
        match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
        if match is None:
            raise RuntimeError("callgrind wrote no totals")
        return int(match.group(1))


def per_request(command: list[str], port: int, requests: int) -> float:
    """Instructions per request: the difference between a short and a longer run, per extra request."""
    short = instructions(command, port, WARM_UP)
    long = instructions(command, port, WARM_UP + requests)
    return (long - short) / requests


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--response-validation", choices=("off", "warn"), default="warn")
    args = parser.parse_args()
    bare_port, mock_port = free_port(), free_port()
    bare_command = [sys.executable, str(HERE / "bare_server.py"), str(bare_port)]
    bare = per_request(bare_command, bare_port, args.requests)
    mock = per_request(mock_command(mock_port, args.response_validation), mock_port, args.requests)
    print(f"bare aiohttp: {bare / 1000:.0f}k instructions/request")
    print(f"mock (SpaceAI chat, response validation {args.response_validation}): {mock / 1000:.0f}k")
    print(f"mock / bare: {mock / bare:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
