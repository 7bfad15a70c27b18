"""A small HTTP server that records webhook deliveries (``--webhook-listen``), acknowledging each with 200."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    received: float

    def header(self, name: str) -> str | None:
        """A header, case-insensitively."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


class WebhookReceiver:
    """Records POSTs on ``host:port`` in a background thread; ``public_url`` is where the target posts to."""

    def __init__(self, host: str, port: int, public_url: str | None = None) -> None:
        self._deliveries: list[Delivery] = []
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                body = self.rfile.read(length)
                receiver._record(Delivery(self.path, dict(self.headers.items()), body, time.time()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return  # deliveries are reported by the check, not logged to stderr

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        bound_host, bound_port = self._server.server_address[:2]
        host_text = bound_host.decode() if isinstance(bound_host, bytes) else str(bound_host)
        self.public_url = (public_url or f"http://{host_text}:{bound_port}").rstrip("/")
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )

    def start(self) -> WebhookReceiver:
        """Start serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()

    def _record(self, delivery: Delivery) -> None:
        with self._arrived:
            self._deliveries.append(delivery)
            self._arrived.notify_all()

    def wait_for(self, path: str, timeout: float) -> list[Delivery]:
        """Deliveries to ``path``, waiting up to ``timeout`` seconds for the first one."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [d for d in self._deliveries if d.path == path]
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    return found
                self._arrived.wait(remaining)
