"""Progress on stderr: a live display on a terminal (rich), plain periodic lines when stderr is piped.

The display shows, per provider, its current phase (schemathesis' examples/coverage/fuzzing, then each
behaviour check), the requests sent, the time since the provider started and the violations found so far.
A background thread refreshes it, so nothing is silent for more than ``interval`` seconds even while one
slow request or one long schemathesis phase runs. Events (a check finished) are printed as they happen.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

INTERVAL = 1.0
"""Seconds between two status lines when stderr is not a terminal (and between refreshes on one)."""
Counter = Callable[[], int]


def _zero() -> int:
    return 0


@dataclass(slots=True)
class _Stage:
    provider: str
    phase: str
    started: float
    requests: Counter = _zero
    violations: Counter = _zero
    done: bool = False

    def line(self, now: float) -> str:
        found = self.violations()
        return (
            f"[{self.provider}] {self.phase}: {self.requests()} requests, {now - self.started:.0f} s, "
            f"{found} violation{'s' if found != 1 else ''} so far"
        )


@dataclass
class Progress:
    """A progress reporter: call it with an event line; ``stage`` says what is running now."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    live: bool | None = None
    """Use the live display; ``None``: when ``stream`` is a terminal."""
    interval: float = INTERVAL
    _stages: dict[str, _Stage] = field(default_factory=dict)
    _current: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _live: Live | None = None
    _last_line: float = 0.0

    def __call__(self, message: str) -> None:
        """Print one event line now."""
        with self._lock:
            if self._live is not None:
                self._live.console.print(Text(message), soft_wrap=True)
            else:
                print(message, file=self.stream, flush=True)
                self._last_line = time.monotonic()

    def stage(
        self,
        provider: str,
        phase: str,
        *,
        requests: Counter | None = None,
        violations: Counter | None = None,
    ) -> None:
        """What runs now for a provider (counters are read at each refresh)."""
        with self._lock:
            stage = self._stages.get(provider)
            if stage is None or stage.done:
                stage = _Stage(provider, phase, time.monotonic())
                self._stages[provider] = stage
            stage.phase = phase
            if requests is not None:
                stage.requests = requests
            if violations is not None:
                stage.violations = violations
            self._current = provider

    def finish(self, provider: str) -> None:
        """A provider's run ended: its line stays, frozen, on the live display."""
        with self._lock:
            stage = self._stages.get(provider)
            if stage is not None:
                stage.phase, stage.done = "done", True
                count, found = stage.requests(), stage.violations()
                stage.requests, stage.violations = (lambda: count), (lambda: found)

    # -- the refresher ------------------------------------------------------------------------------

    def start(self) -> Progress:
        """Start refreshing (a live display on a terminal, periodic lines otherwise)."""
        use_live = self.live if self.live is not None else self.stream.isatty()
        if use_live:
            console = Console(file=self.stream)
            self._live = Live(
                console=console,
                get_renderable=self._render,
                refresh_per_second=1 / self.interval,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        else:
            self._last_line = time.monotonic()
            self._thread = threading.Thread(target=self._tick, name="conformance-progress", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop refreshing (the live display is removed; plain lines simply stop)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __enter__(self) -> Progress:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def _render(self) -> Text:
        now = time.monotonic()
        with self._lock:
            lines = [stage.line(now) for stage in self._stages.values()]
        return Text("\n".join(lines) or "starting")

    def status_line(self) -> str:
        """The current stage in one line (what the periodic output prints)."""
        with self._lock:
            stage = self._stages.get(self._current) if self._current else None
        return stage.line(time.monotonic()) if stage is not None else "conformance: starting"

    def _tick(self) -> None:
        # Sleep in short steps so that an event line just printed postpones the next status line.
        while not self._stop.wait(min(0.2, self.interval)):
            if time.monotonic() - self._last_line >= self.interval:
                self(self.status_line())
