"""The servers the benchmarks start: the mock (from this checkout or another revision) and a redis-server.

Each is a context manager that stops what it started (by its PID) however the run ends. A mock's CPU time
and peak RSS are read per process of its tree (``--workers N`` runs several), from ``/proc``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from run import free_port, mock_command  # noqa: E402  (bench/ is a folder of scripts, not a package)


class BenchError(Exception):
    """A server the benchmark needs could not start; the message says which and why."""


def raise_nofile(wanted: int | None = None) -> int:
    """Raise this process's open-file limit to ``wanted`` (or its hard limit); returns the new soft limit.

    Run in a child before exec (``preexec_fn``) it raises the child's: 10,000 connections need 10,000 fds.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None else max(soft, wanted)
    if hard != resource.RLIM_INFINITY and target > hard:
        try:  # only root may raise the hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
            return target
        except (ValueError, OSError):
            target = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(entry.path, "stat").read_text()
                tree.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live descendant (a ``--workers N`` mock's worker processes), parents first."""
    tree, found = _children(), [pid]
    for parent in found:  # grows while walked: breadth first
        found.extend(sorted(tree.get(parent, [])))
    return found


def cpu_split(pid: int) -> tuple[float, float]:
    """User and kernel CPU seconds a live process has used (zeros if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User plus kernel CPU seconds a live process has used (0 if it is gone)."""
    return sum(cpu_split(pid))


def machine_cpu() -> tuple[float, float, float]:
    """The whole machine's CPU seconds so far (/proc/stat): in processes (user, nice, system), in interrupts
    (irq, softirq: loopback traffic is mostly softirq, counted in no process) and stolen by the VM's host."""
    with open("/proc/stat") as fh:
        ticks = [int(v) for v in fh.readline().split()[1:9]] + [0] * 8
    hz = os.sysconf("SC_CLK_TCK")
    return sum(ticks[0:3]) / hz, (ticks[5] + ticks[6]) / hz, ticks[7] / hz


def peak_rss_mib(pid: int) -> float:
    """A live process's peak resident memory (VmHWM) in MiB (NaN if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def _get(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status) == 200
    except OSError:
        return False


class Mock:
    """``python -m mockserver`` of a checkout on a free port, fd limit raised; its stderr kept for errors."""

    def __init__(
        self,
        name: str,
        extra: Sequence[str] = (),
        *,
        checkout: Path = ROOT,
        workers: int = 1,
        nofile: int | None = None,
    ) -> None:
        self.name, self.checkout, self.workers, self.nofile = name, checkout, workers, nofile
        self.port = free_port()
        self.command = [*mock_command(self.port), *extra]
        if workers > 1:
            self.command += ["--workers", str(workers)]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup = float("nan")
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (closed by __exit__)

    def __enter__(self) -> Mock:
        # The checkout first on the path, and as the working directory (``-m`` puts it first anyway): another
        # revision's package, and the specs beside it, are the ones that run.
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(self.checkout), os.environ.get("PYTHONPATH")])),
        }
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.command,
            cwd=self.checkout,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            preexec_fn=lambda: raise_nofile(self.nofile) and None,
        )
        try:
            self._wait_up(started)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_up(self, started: float, timeout: float = 60.0) -> None:
        assert self.proc is not None
        while not _get(f"{self.url}/_mock/providers"):
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name}: the mock exited ({self.proc.returncode}): {self.stderr()}")
            if time.perf_counter() - started > timeout:
                raise BenchError(f"{self.name}: the mock did not answer in {timeout:.0f} s: {self.stderr()}")
            time.sleep(0.02)
        self.startup = time.perf_counter() - started
        # With --workers, SO_REUSEPORT spreads new connections by their source port: fresh connections until
        # several in a row answer, so no worker still loading takes the benchmark's first connections.
        answered = 0
        while answered < 10 * self.workers:
            answered = answered + 1 if _get(f"{self.url}/_mock/providers") else 0
            if time.perf_counter() - started > timeout:
                raise BenchError(f"{self.name}: not every worker answers: {self.stderr()}")

    def stderr(self) -> str:
        """The last lines the mock wrote to stderr (why it did not start)."""
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        return " / ".join(lines[-3:]) or "(no output)"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pids(self) -> list[int]:
        """The mock's process and its workers."""
        return process_tree(self.pid)

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the mock's live processes together."""
        return sum(cpu_seconds(pid) for pid in self.pids())

    def peak_rss(self) -> dict[int, float]:
        """Peak RSS in MiB of each of the mock's processes."""
        return {pid: peak_rss_mib(pid) for pid in self.pids()}

    def __exit__(self, *_: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, int]]:
    """A redis-server of our own on a free loopback port in a temp dir; yields its URL (db 0) and PID.

    Persistence off (no AOF, no RDB snapshots): the benchmark measures the mock's round trips, not the
    disk. A shared service should run with AOF on (README, "Running as a shared service"); that costs a
    write per change, ``appendfsync everysec`` keeps it off the request's path.
    """
    if shutil.which("redis-server") is None:
        raise BenchError("redis-server is not installed (Debian package redis-server)")
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        port = free_port()
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp, "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--logfile", os.path.join(tmp, "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: raise_nofile() and None,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while not _ping(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(f"redis-server did not start on port {port}")
                time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0", proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=15)


@contextlib.contextmanager
def checkout_at(rev: str) -> Iterator[Path]:
    """The tree of git revision ``rev`` of this repository, unpacked into a temp dir for the run.

    ``git archive`` rather than ``git worktree add``: a copy, so a run that is killed leaves no worktree
    registered in the repository to prune.
    """
    try:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", rev], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise BenchError(f"git archive {rev}: {exc.stderr.decode(errors='replace').strip()}") from exc
    with tempfile.TemporaryDirectory(prefix="bench-rev-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp)
