"""``python -m mockserver`` as a process: how it logs bad requests, how it stops, how it fails to start."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest
import requests
from test_cli import START_TIMEOUT, clean_env, serving

from mockserver.logs import MalformedRequestFilter, RedactingFormatter, Redactor

SIGNATURE = "c2lnbmF0dXJlLXNlY3JldC0wMTIzNDU2Nzg5"
"""A signed URL's ``signature=`` value sent in malformed requests; it must never reach the log."""


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send bytes as they are on a new connection; what the server answers before it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def finish(process: subprocess.Popen[str], signum: int = signal.SIGINT) -> tuple[int, str, float]:
    """Send a signal; the exit code, the standard error and the seconds the process took to exit."""
    sent = time.monotonic()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    return process.returncode, stderr, time.monotonic() - sent


# -- secrets in logs --------------------------------------------------------------------------------


def test_malformed_requests_are_logged_on_one_line_without_secrets() -> None:
    with serving() as (providers, process):
        port = int(providers["spaceai"][0].rsplit(":", 1)[1].split("/")[0])
        bearer_key = providers["spaceai"][1].encode()
        raw_key = providers["artificialstudio"][1].encode()
        signed = b"/pahlavan/storage/a.png?key=a.png&expires=1999999999&signature=" + SIGNATURE.encode()
        malformed = [
            # A control character in the Authorization value: aiohttp quotes the whole header line.
            b"GET /spaceai/v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + bearer_key
            + b"\x01\r\n\r\n",
            # Artificial Studio's raw-key Authorization, with a DEL in it.
            b"GET /artificialstudio/api/generations/1 HTTP/1.1\r\nAuthorization: "
            + raw_key
            + b"\x7f\r\n\r\n",
            # A bad request line quoting a signed URL, then a valid credential.
            b"GET " + signed + b" HTTP/1.1 junk\r\nAuthorization: Bearer " + bearer_key + b"\r\n\r\n",
            # A header line without a colon after the credential.
            b"GET " + signed + b" HTTP/1.1\r\nAuthorization: Bearer " + bearer_key + b"\r\nno colon\r\n\r\n",
            b"GET /x HTTP/1.1\r\nX-API-Key: " + raw_key + b"\x00\r\n\r\n",
        ]
        for data in malformed:
            assert raw_exchange(port, data).startswith(b"HTTP/1.0 400 "), data
        # The server still answers, and normal requests are not logged.
        assert requests.get(providers["spaceai"][0] + "/v1/models", timeout=10).status_code == 401
        code, stderr, _ = finish(process)
    assert code == 0, stderr
    for secret in (bearer_key.decode(), raw_key.decode(), SIGNATURE):
        assert secret not in stderr
    assert "Traceback" not in stderr
    logged = [line for line in stderr.splitlines() if "malformed request from 127.0.0.1: 400" in line]
    assert len(logged) == len(malformed), stderr
    assert all(" WARNING aiohttp.server: " in line for line in logged), logged
    # Only the secret values are replaced: the request line (a signed URL's other fields included) and the
    # header's name stay, so the log still says what was wrong.
    assert any(
        "(GET /pahlavan/storage/a.png?key=a.png&expires=1999999999&signature=*** HTTP/1.1 junk)" in line
        for line in logged
    )
    assert any("(header Authorization)" in line for line in logged), logged
    assert any("(header X-API-Key)" in line for line in logged), logged


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("b'Authorization: Bearer sk-abc\\x01def'", "b'Authorization: Bearer ***'"),
        ("{'Authorization': 'raw-key-1', 'Host': 'a'}", "{'Authorization': '***', 'Host': 'a'}"),
        ('{"x-api-key": "k1", "api-key": "k2"}', '{"x-api-key": "***", "api-key": "***"}'),
        (
            "b'Authorization: Bearer abc\\r\\nHost: example'",
            "b'Authorization: Bearer ***\\r\\nHost: example'",
        ),
        ("token Bearer abc.def-ghi rest", "token Bearer *** rest"),
        (
            "GET /f?key=a.png&signature=abc&expires=1 HTTP/1.1",
            "GET /f?key=a.png&signature=***&expires=1 HTTP/1.1",
        ),
        ("/o?X-Amz-Signature=beef&X-Amz-Date=20240101", "/o?X-Amz-Signature=***&X-Amz-Date=20240101"),
        (
            "secret whsec_AbC+/= and key sk-spaceai-mockkey-9f8e in a message",
            "secret *** and key *** in a message",
        ),
        ("nothing secret: max_tokens=5, key=a.png", "nothing secret: max_tokens=5, key=a.png"),
    ],
)
def test_redactor_replaces_only_secret_values(text: str, expected: str) -> None:
    assert Redactor(["sk-spaceai-mockkey-0001"])(text) == expected


def test_a_real_server_error_keeps_its_traceback_redacted() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(RedactingFormatter(Redactor(["as_test_mockkey_0001"])))
    logger = logging.getLogger("tests.cli_process.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise KeyError("as_test_mockkey_0042 with Authorization: Bearer tok-123")
        except KeyError:
            logger.exception("unhandled error in %s", "createRun")
    finally:
        logger.removeHandler(handler)
    written = out.getvalue()
    assert "Traceback" in written
    assert "unhandled error in createRun" in written
    assert "as_test_mockkey_0042" not in written
    assert "tok-123" not in written
    assert "KeyError: '*** with Authorization: Bearer ***'" in written


# -- shutdown -----------------------------------------------------------------------------------------


@dataclass(eq=False)
class Stream:
    """One streamed chat completion read in a thread: how many events arrived and how it ended."""

    max_tokens: int | None
    events: int = 0
    done: bool = False
    """Whether the ``[DONE]`` event arrived."""
    error: str | None = None


def read_stream(base: str, key: str, into: Stream) -> None:
    """Read one stream to its end (or until the server closes it) into ``into``."""
    body: dict[str, object] = {
        "model": "gpt-4o",
        "stream": True,
        "messages": [{"role": "user", "content": "tell me a long story"}],
    }
    if into.max_tokens is not None:
        body["max_tokens"] = into.max_tokens
    try:
        with requests.post(
            base + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            stream=True,
            timeout=60,
        ) as response:
            for line in response.iter_lines():
                if line.startswith(b"data:"):
                    into.events += 1
                    into.done = into.done or line == b"data: [DONE]"
    except requests.RequestException as exc:
        into.error = type(exc).__name__


TOKENS_PER_SECOND = 2
SHUTDOWN_TIMEOUT = 2.0
EXIT_MARGIN = 3.0
"""Seconds beyond the shutdown timeout the process may take to exit (cleanup, interpreter exit, load)."""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_lets_streams_finish_within_the_shutdown_timeout(signum: int) -> None:
    args = ("--provider", "spaceai", "--tokens-per-second", str(TOKENS_PER_SECOND))
    with serving(*args, "--shutdown-timeout", str(SHUTDOWN_TIMEOUT)) as (providers, process):
        base, key = providers["spaceai"]
        # Ten one-token streams (role, token, finish, [DONE]: about 2 s at 2 events a second) and ten full
        # replies (about 30 tokens: some 15 s), all open at once.
        short, long = [Stream(max_tokens=1) for _ in range(10)], [Stream(max_tokens=None) for _ in range(10)]
        threads = [
            threading.Thread(target=read_stream, args=(base, key, s), daemon=True) for s in short + long
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        # Signal once the short streams have one event (and one second) left: they can finish in time.
        while not (all(s.events >= 3 for s in short) and all(s.events >= 1 for s in long)):
            assert time.monotonic() < deadline, (short, long)
            time.sleep(0.02)  # real time: waiting for another process's streams
        code, stderr, took = finish(process, signum)
        for thread in threads:
            thread.join(10)
    assert code == 0, stderr
    assert took < SHUTDOWN_TIMEOUT + EXIT_MARGIN, (took, stderr)
    assert all(s.done and s.error is None for s in short), short
    # The long ones were closed at the deadline, before their end.
    assert not any(s.done for s in long), long
    assert "Traceback" not in stderr


def test_idle_keep_alive_connections_do_not_delay_the_stop() -> None:
    with serving("--provider", "spaceai") as (providers, process), requests.Session() as session:
        base, key = providers["spaceai"]
        # The session keeps its connection open (idle, keep-alive) after the answer.
        models = session.get(base + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert models.status_code == 200
        code, stderr, took = finish(process, signal.SIGTERM)
    assert code == 0, stderr
    # Far below the default 10 s grace period: only requests in flight are waited for.
    assert took < EXIT_MARGIN, (took, stderr)


def advance_clock(base: str, seconds: float) -> None:
    """Advance the mock's clock; the answer may never come when the server stops meanwhile."""
    with contextlib.suppress(requests.RequestException):
        requests.post(base + "/_mock/clock/advance", json={"seconds": seconds}, timeout=30)


def test_pending_webhook_deliveries_are_counted_at_shutdown() -> None:
    # A receiver that accepts the connection and never answers: the delivery stays pending.
    with socket.create_server(("127.0.0.1", 0)) as receiver:
        receiver.settimeout(START_TIMEOUT)
        hook = f"http://127.0.0.1:{receiver.getsockname()[1]}/hook"
        args = ("--provider", "artificialstudio", "--webhook-host", "127.0.0.1", "--shutdown-timeout", "1")
        with serving(*args) as (providers, process):
            base, key = providers["artificialstudio"]
            created = requests.post(
                base + "/api/run",
                json={"tool": "create-image", "input": {"prompt": "a lighthouse"}, "webhook": hook},
                headers={"Authorization": key},
                timeout=10,
            )
            assert created.status_code == 200, created.text
            # Finishing the job sends the webhook; the advance waits for that attempt, so it runs aside.
            advance = threading.Thread(target=advance_clock, args=(base, 3600), daemon=True)
            advance.start()
            connection, _ = receiver.accept()
            with connection:
                code, stderr, _ = finish(process, signal.SIGTERM)
            advance.join(10)
    assert code == 0, stderr
    assert "mockserver.webhooks: left 1 pending webhook delivery in the state" in stderr, stderr
    assert "Traceback" not in stderr


# -- start-up errors ------------------------------------------------------------------------------


def test_a_port_in_use_is_one_line_and_exit_code_2() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "mockserver", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            env=clean_env(),
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"mockserver: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    # No banner: it would announce a server that is not there.
    assert result.stdout == ""


def test_aiohttp_shutdown_race_is_one_line() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(RedactingFormatter(Redactor()))
    handler.addFilter(MalformedRequestFilter())
    logger = logging.getLogger("aiohttp.server")
    logger.addHandler(handler)
    previous, logger.propagate = logger.propagate, False

    def _handle_request() -> None:  # the aiohttp function whose late set_result() raises
        raise asyncio.InvalidStateError("invalid state")

    try:
        try:
            _handle_request()
        except asyncio.InvalidStateError as exc:
            logger.error("Unhandled exception", exc_info=exc)
        try:
            raise asyncio.InvalidStateError("invalid state")
        except asyncio.InvalidStateError as exc:  # the same error from anywhere else is a real bug
            logger.error("Unhandled exception", exc_info=exc)
    finally:
        logger.removeHandler(handler)
        logger.propagate = previous
    first, *rest = out.getvalue().splitlines()
    assert first.endswith("INFO aiohttp.server: a request ended as the shutdown stopped waiting for it")
    assert rest[0].endswith("ERROR aiohttp.server: Unhandled exception")
    assert rest[1] == "Traceback (most recent call last):"
