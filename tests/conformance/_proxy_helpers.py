"""Helpers for the proxy tests: an aiohttp app in a thread, the proxy as a subprocess, bad upstreams.

``AppThread``      an aiohttp app on 127.0.0.1 and a free port, served by its own loop in a background thread
``ProxyProcess``   ``python -m conformance proxy ...`` as a user runs it; ``stop()`` sends SIGTERM, returns
                   the exit status
``breaking_app``   a small upstream speaking SpaceAI's and Pahlavan's chat API that breaks ONE thing at a
                   time: the request header ``X-Break`` names it (``ok`` or absent: a conforming answer)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from aiohttp import web

from conformance.proxy.server import create_app
from conformance.proxy.settings import ProxySettings

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0
SLOW_PAUSE = 1.0
"""Seconds the ``slow`` stream waits after its first event."""


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


class AppThread:
    """An aiohttp app served on a free loopback port by an event loop in a daemon thread."""

    def __init__(
        self, factory: Callable[[], web.Application], ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._factory = factory
        self._ssl = ssl_context
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https`` when served with TLS)."""
        return f"{'https' if self._ssl else 'http'}://{LOOPBACK}:{self.port}"

    def start(self) -> AppThread:
        """Serve; returns once the port is bound."""
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError("the app did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=15)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            runner = web.AppRunner(self._factory(), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, LOOPBACK, 0, ssl_context=self._ssl)
            await site.start()
            self.port = int(runner.addresses[0][1])
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()


def proxy_thread(provider: str, upstream: str, **changes: Any) -> AppThread:
    """The proxy app in-process, in front of ``upstream``."""
    settings = ProxySettings(provider=provider, upstream=upstream, port=0, **changes)
    return AppThread(lambda: create_app(settings)).start()


def violations(proxy_url: str, side: str | None = None) -> list[dict[str, Any]]:
    """``GET /_proxy/violations``, optionally one side's only."""
    found: list[dict[str, Any]] = requests.get(f"{proxy_url}/_proxy/violations", timeout=10).json()[
        "violations"
    ]
    return [v for v in found if side is None or v["side"] == side]


class ProxyProcess:
    """``python -m conformance proxy ARGS --port PORT`` in a subprocess, its stdout and stderr in files."""

    def __init__(
        self,
        args: list[str],
        port: int,
        folder: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port
        self.out, self.err = folder / "proxy.out", folder / "proxy.err"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "conformance", "proxy", *args, "--port", str(port)],
                stdout=out,
                stderr=err,
                env=env,
                cwd=cwd,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while "conformance proxy:" not in self.err.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"the proxy did not start: {self.err.read_text()}")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{LOOPBACK}:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send the signal and wait for the exit status."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise

    def output(self) -> str:
        """Everything it printed, stdout then stderr."""
        return self.out.read_text() + self.err.read_text()


# -- a contract-breaking upstream ------------------------------------------------------------------------

CREATED = 1_796_000_000
RATE_HEADERS = {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "59", "X-RateLimit-Reset": "1796000060"}


def _completion(model: str, breaks: str, billed: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-test0001",
        "object": "chat.completion",
        "created": str(CREATED) if breaks == "created_string" else CREATED,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hello there."}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
    }
    if billed:
        body |= {
            "estimated_charge_cents": 2,
            "final_charge_cents": 2,
            "estimated_charge_usd": 0.02,
            "final_charge_usd": 0.5 if breaks == "billing_mismatch" else 0.02,
            "metered_estimated_charge_usd": 0.0195,
            "metered_final_charge_usd": 0.0195,
        }
    return body


def _chunks(model: str, breaks: str, include_usage: bool) -> list[str]:
    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        kind = "chat.completion" if breaks == "chunk_object" else "chat.completion.chunk"
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {
            "id": "chatcmpl-test0002",
            "object": kind,
            "created": CREATED,
            "model": model,
            "choices": [choice],
        }

    events = [
        chunk({"role": "assistant", "content": ""}, None),
        chunk({"content": "Hello"}, None),
        chunk({"content": " there."}, None),
        chunk({}, "stop"),
    ]
    if include_usage:
        usage = {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
        events.append({**chunk({}, None), "choices": [], "usage": usage})
    data = [json.dumps(e) for e in events]
    return data if breaks == "no_done" else [*data, "[DONE]"]


def breaking_app() -> web.Application:
    """The upstream: ``/v1/chat/completions`` (SpaceAI) and ``/api/v1/chat/completions`` (Pahlavan)."""

    async def chat(request: web.Request) -> web.StreamResponse:
        breaks = request.headers.get("X-Break", "ok")
        billed = request.path.startswith("/api/")
        headers = {} if billed else dict(RATE_HEADERS)
        if breaks == "no_ratelimit":
            headers.pop("X-RateLimit-Remaining")
        if not request.headers.get("Authorization", "").endswith("-good"):
            if breaks == "flat_error":
                error: dict[str, Any] = {"message": "Invalid API key.", "type": "authentication_error"}
            else:
                error = {
                    "error": {"type": "authentication_error", "message": "Invalid API key.", "code": 401}
                }
            return web.json_response(error, status=401, headers=headers)
        if breaks == "bad_ratelimit":
            headers["X-RateLimit-Limit"] = "sixty"
        body = await request.json()
        model = str(body.get("model", "gpt-4o"))
        if breaks == "teapot":
            error = {"error": {"type": "invalid_request_error", "message": "I'm a teapot.", "code": 418}}
            return web.json_response(error, status=418, headers=headers)
        if breaks == "text_plain":
            return web.Response(text="Hello there.", content_type="text/plain", headers=headers)
        if breaks == "deep_json":
            # Deeper than Python's parser goes: a RecursionError, not a ValueError, when read naively.
            return web.Response(body=b"[" * 100_000, content_type="application/json", headers=headers)
        if not body.get("stream"):
            return web.json_response(_completion(model, breaks, billed), headers=headers)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, data in enumerate(_chunks(model, breaks, include_usage)):
            await response.write(f"data: {data}\n\n".encode())
            if index == 0 and breaks == "slow":
                await asyncio.sleep(SLOW_PAUSE)
            if index == 1 and breaks == "cut":
                raise ConnectionAbortedError("the upstream breaks off mid-stream")
        await response.write_eof()
        return response

    async def echo(request: web.Request) -> web.Response:
        """What arrived, exactly: method, raw path and query, headers, body (hex)."""
        seen = {
            "method": request.method,
            "raw_path": request.raw_path,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body": (await request.read()).hex(),
        }
        # A hop-by-hop header of the upstream's own: the proxy must not pass it on.
        headers = {"Connection": "X-Upstream-Hop", "X-Upstream-Hop": "1", "Set-Cookie": "upstream=1; Path=/"}
        return web.json_response(seen, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/api/v1/chat/completions", chat)
    return app
