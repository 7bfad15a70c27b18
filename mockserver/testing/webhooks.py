"""A local webhook endpoint for tests, and the Standard Webhooks signature check receivers must make.

The mock signs each delivery the Standard Webhooks way: ``webhook-signature: v1,<base64 HMAC-SHA256 of
"<webhook-id>.<webhook-timestamp>.<raw body>">`` keyed with the base64 part of a ``whsec_`` secret.
``verify_signature`` is written from that scheme (not from the mock's signer), so it checks the mock the
way a real receiver would.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mockserver.testing.server import LOOPBACK

SECRET_PREFIX = "whsec_"


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance_seconds: float | None = None,
    now: float | None = None,
) -> bool:
    """Whether a delivery's ``webhook-signature`` holds a valid ``v1`` signature made with ``secret``.

    ``tolerance_seconds`` also rejects a ``webhook-timestamp`` further than that from ``now`` (default:
    the real time; pass the mock's clock when it was advanced).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        message_id, timestamp = lowered["webhook-id"], lowered["webhook-timestamp"]
        signatures = lowered["webhook-signature"]
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (KeyError, binascii.Error):
        return False
    if tolerance_seconds is not None:
        reference = time.time() if now is None else now
        if not timestamp.isdigit() or abs(reference - int(timestamp)) > tolerance_seconds:
            return False
    raw = body.encode() if isinstance(body, str) else body
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + raw, hashlib.sha256).digest()
    expected = base64.b64encode(mac).decode()
    # The header may carry several space-separated signatures (key rotation); one valid v1 is enough.
    for candidate in signatures.split():
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


@dataclass(frozen=True, slots=True)
class ReceivedWebhook:
    """One request the receiver got: its path, headers (lower-cased names) and raw body."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def id(self) -> str:
        """The ``webhook-id`` header (the same on every retry of one delivery)."""
        return self.headers.get("webhook-id", "")


class WebhookReceiver:
    """An HTTP endpoint on 127.0.0.1 that records every POST and answers scripted statuses (then 200)."""

    def __init__(self, statuses: Iterable[int] = ()) -> None:
        self.received: list[ReceivedWebhook] = []
        self._statuses = list(statuses)
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where to send webhooks: ``http://127.0.0.1:<port>/webhook``."""
        return f"http://{LOOPBACK}:{self._server.server_address[1]}/webhook"

    def respond_with(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, in order (then 200 again)."""
        with self._changed:
            self._statuses.extend(statuses)

    def wait(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedWebhook]:
        """Block until at least ``count`` requests arrived (raises ``TimeoutError`` after ``timeout`` s)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= count, timeout):
                raise TimeoutError(
                    f"expected {count} webhook(s) within {timeout} s, got {len(self.received)}"
                )
            return list(self.received)

    def start(self) -> WebhookReceiver:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _record(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self._changed:
            self.received.append(ReceivedWebhook(path, headers, body))
            status = self._statuses.pop(0) if self._statuses else 200
            self._changed.notify_all()
        return status

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                status = receiver._record(self.path, headers, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output clean."""

        return Handler
