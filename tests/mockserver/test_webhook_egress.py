"""Where webhooks may go, over real HTTP: never the mock itself nor metadata; ``--webhook-host HOST[:PORT]``.

A URL refused without DNS is a 400 in Artificial Studio's envelope when the run is created; a name that
resolves to a refused address makes the delivery ``refused`` without a connection. Replies are read up to
64 KiB and only an excerpt is logged.
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import pytest
from _mock_test_helpers import listen
from aiohttp.abc import AbstractResolver, ResolveResult

from mockserver.app import create_app
from mockserver.core.egress import EgressPolicy, HostRule, WebhookRefused
from mockserver.core.webhooks import EXCERPT_BYTES, REPLY_CAP
from mockserver.errors import ConfigError
from mockserver.mock import build_mock
from mockserver.settings import Settings
from mockserver.testing.webhooks import WebhookReceiver

PROVIDER = "artificialstudio"
KEY = "as_test_mockkey_0001"
PAST_ANY_JOB = 3600


def run(mock: Any, webhook: str) -> Any:
    """``POST /api/run`` with a webhook URL (the response, unchecked)."""
    body = {"tool": "create-image", "input": {"prompt": "a lighthouse"}, "webhook": webhook}
    return mock.post(PROVIDER, "/api/run", json=body)


def assert_refused_400(response: Any) -> str:
    """A 400 in Artificial Studio's envelope naming the ``webhook`` field; returns the message."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error", "code"}
    assert body["code"] == "invalid_request"
    assert "'webhook'" in body["error"]
    return str(body["error"])


def finished_delivery(mock: Any) -> dict[str, Any]:
    """Finish the run's job (advancing the clock settles due attempts) and return its one delivery."""
    mock.advance(PAST_ANY_JOB)
    (delivery,) = mock.webhooks(PROVIDER)
    return delivery


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as hook:
        yield hook


# -- the mock itself -------------------------------------------------------------------------------------


def test_a_webhook_to_the_mocks_own_reset_is_refused_and_does_not_reset_it(start_mock: Any) -> None:
    mock = start_mock(webhook_hosts=None)  # the loopback default: any host but the mock itself
    mock.advance(100)
    before = mock.now()
    for host in ("127.0.0.1", "[::ffff:127.0.0.1]", "0.0.0.0"):
        assert_refused_400(run(mock, f"http://{host}:{mock.server.port}/_mock/reset"))
    assert mock.webhooks() == []
    assert mock.now() >= before  # a reset would have moved the clock back to real time


def test_a_name_resolving_to_the_mock_itself_gives_a_refused_delivery_without_a_connection(
    start_mock: Any,
) -> None:
    mock = start_mock()  # the test servers allow 127.0.0.1 and localhost, on any port
    created = run(mock, f"http://localhost:{mock.server.port}/_mock/reset")
    assert created.status_code == 200, created.text  # a name: only resolving it tells where it goes
    delivery = finished_delivery(mock)
    assert delivery["status"] == "refused"
    (attempt,) = delivery["attempts"]
    assert attempt["status"] is None
    assert attempt["error"].startswith("refused: localhost resolves to a refused address")
    assert "the mock's own address" in attempt["error"]
    # Not reset: the generation (forgotten by a reset) is still there.
    generation = mock.get(PROVIDER, f"/api/generations/{created.json()['id']}")
    assert generation.status_code == 200
    assert generation.json()["status"] == "success"


# -- link-local and metadata -----------------------------------------------------------------------------

REFUSED_ALWAYS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.1.1:8080/",
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "ftp://127.0.0.1/hook",
    "file:///etc/passwd",
]


@pytest.mark.parametrize("url", REFUSED_ALWAYS)
@pytest.mark.parametrize("hosts", [None, ("127.0.0.1", "localhost")], ids=["default", "listed"])
def test_link_local_metadata_and_other_schemes_are_400(
    server_pool: Any, attach_mock: Any, hosts: tuple[str, ...] | None, url: str
) -> None:
    mock = attach_mock(server_pool(providers=(PROVIDER,), webhook_hosts=hosts))
    assert_refused_400(run(mock, url))
    assert mock.webhooks() == []


def test_a_metadata_address_named_in_webhook_host_is_allowed(start_mock: Any) -> None:
    mock = start_mock(providers=(PROVIDER,), webhook_hosts=("169.254.169.254",))
    assert run(mock, "http://169.254.169.254/hook").status_code == 200
    assert_refused_400(run(mock, "http://169.254.169.253/hook"))


# -- --webhook-host HOST[:PORT] --------------------------------------------------------------------------


def test_webhook_host_entries_match_host_and_port(start_mock: Any, receiver: WebhookReceiver) -> None:
    port = int(receiver.url.split(":")[2].split("/")[0])
    mock = start_mock(providers=(PROVIDER,), webhook_hosts=(f"127.0.0.1:{port}", "localhost"))
    assert run(mock, receiver.url).status_code == 200
    message = assert_refused_400(run(mock, f"http://127.0.0.1:{port + 1}/webhook"))
    assert f"127.0.0.1:{port + 1} is not an allowed webhook host" in message
    assert_refused_400(run(mock, f"http://[::1]:{port}/webhook"))
    # An entry without a port allows every port of that host.
    assert run(mock, f"http://localhost:{port}/webhook").status_code == 200
    mock.advance(PAST_ANY_JOB)
    assert len(receiver.wait(2)) == 2
    assert {d["status"] for d in mock.webhooks(PROVIDER)} == {"succeeded"}


def test_host_rules_parse_host_port_and_bracketed_ipv6() -> None:
    assert HostRule.parse("Example.COM.") == HostRule("example.com")
    assert HostRule.parse("localhost:8080") == HostRule("localhost", 8080)
    assert HostRule.parse("[::1]:9000") == HostRule("::1", 9000)
    assert HostRule.parse("[::1]") == HostRule("::1")
    assert HostRule.parse("::1") == HostRule("::1")
    assert HostRule.parse("[::ffff:127.0.0.1]") == HostRule("127.0.0.1")
    for bad in ("", "host:0", "host:99999", "host:port", "a:b:c", "[::1", "[::1]x", "http://host", "u@h"):
        with pytest.raises(ValueError, match="bad webhook host"):
            HostRule.parse(bad)
    with pytest.raises(ConfigError, match="--webhook-host"):
        build_mock(Settings(webhook_hosts=("a:b:c",)))


def test_a_malformed_webhook_host_stops_the_cli_with_one_line_and_exit_2() -> None:
    command = [sys.executable, "-m", "mockserver", "--port", "0", "--webhook-host", "host:port"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "mockserver: --webhook-host: bad webhook host 'host:port': the port must be 1-65535"
    ]


def test_off_loopback_the_default_allows_public_addresses_only() -> None:
    # The policy alone: the tests may not bind anything but loopback.
    shared, local = EgressPolicy("0.0.0.0", 8080, None), EgressPolicy("127.0.0.1", 8080, None)
    for url in ("http://10.0.0.5/hook", "http://192.168.1.1/", "http://127.0.0.1:9000/", "http://[fc00::1]/"):
        with pytest.raises(WebhookRefused, match="not a public address"):
            shared.check_url(url)
        local.check_url(url)  # a developer's receivers, containers, LAN: fine on a loopback bind
    for policy in (shared, local):
        policy.check_url("https://93.184.216.34/hook")
        policy.check_url("https://hooks.example.com/x")  # a name: its addresses are checked at delivery
        with pytest.raises(WebhookRefused, match="own address"):
            policy.check_url("http://127.0.0.1:8080/_mock/reset")
    # A listed name may resolve to link-local addresses (a device on the link), never to metadata ones.
    named = EgressPolicy("127.0.0.1", 8080, ("receiver.lan", "metadata.google.internal"))
    receiver = named.check_url("http://receiver.lan/hook")
    named.check_address(receiver, ipaddress.ip_address("169.254.10.5"))
    with pytest.raises(WebhookRefused, match="cloud metadata address"):
        named.check_address(receiver, ipaddress.ip_address("169.254.169.254"))
    metadata = named.check_url("http://metadata.google.internal/computeMetadata/v1/")
    named.check_address(metadata, ipaddress.ip_address("169.254.169.254"))
    with pytest.raises(WebhookRefused, match="link-local address"):
        shared.check_address(shared.check_url("http://receiver.lan/"), ipaddress.ip_address("169.254.10.5"))
    listed = EgressPolicy("0.0.0.0", 8080, ("10.0.0.5",))
    listed.check_url("http://10.0.0.5/hook")  # listed: private receivers off loopback
    with pytest.raises(WebhookRefused, match="not an allowed webhook host"):
        listed.check_url("https://93.184.216.34/hook")


# -- names resolved at delivery --------------------------------------------------------------------------


class FakeDns(AbstractResolver):
    """Resolves a few made-up names (the tests have no DNS but loopback's)."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for address in self.names[host]
        ]

    async def close(self) -> None:
        pass


async def test_a_name_resolving_to_a_metadata_address_is_refused_at_delivery(
    receiver: WebhookReceiver,
) -> None:
    settings = Settings(providers=(PROVIDER,), response_validation="strict")
    mock = build_mock(settings)
    dns = FakeDns(
        {"metadata.evil.test": ["169.254.169.254"], "rebind.test": ["169.254.169.254", "127.0.0.1"]}
    )
    mock.services.webhooks.resolver = dns
    port = receiver.url.split(":")[2].split("/")[0]
    async with listen(create_app(settings, mock)) as origin, aiohttp.ClientSession(origin) as http:
        for url in ("http://metadata.evil.test/latest/meta-data/", f"http://rebind.test:{port}/webhook"):
            body = {"tool": "create-image", "input": {"prompt": "a kite"}, "webhook": url}
            async with http.post("/artificialstudio/api/run", json=body, headers={"Authorization": KEY}) as r:
                assert r.status == 200, await r.text()
        async with http.post("/_mock/clock/advance", json={"seconds": PAST_ANY_JOB}) as r:
            assert r.status == 200
        async with http.get("/_mock/webhooks") as r:
            refused, rebound = (await r.json())["deliveries"]
    assert dns.asked == ["metadata.evil.test", "rebind.test"]
    assert refused["status"] == "refused"
    (attempt,) = refused["attempts"]
    assert attempt["status"] is None
    assert attempt["latency_ms"] == 0.0
    assert "169.254.169.254 is a cloud metadata address" in attempt["error"]
    # Of a name's addresses only the allowed ones are connected to (DNS rebinding gets nowhere).
    assert rebound["status"] == "succeeded"
    assert [w.path for w in receiver.wait(1)] == ["/webhook"]


# -- the receiver's reply --------------------------------------------------------------------------------


class EndlessReply(BaseHTTPRequestHandler):
    """Answers 200 with a body that never ends (paced, bounded in time), until the client hangs up."""

    protocol_version = "HTTP/1.1"
    hung_up = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 30))
        self.end_headers()
        deadline = time.monotonic() + 30  # bounded: far longer than an attempt may take
        try:
            while time.monotonic() < deadline:
                self.wfile.write(b"A" * 65536)
                time.sleep(0.005)
        except OSError:
            type(self).hung_up.set()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endless() -> Iterator[tuple[str, threading.Event]]:
    handler = type("Endless", (EndlessReply,), {"hung_up": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler.hung_up
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_huge_reply_is_read_up_to_the_cap_and_excerpted(start_mock: Any, endless: Any) -> None:
    url, hung_up = endless
    mock = start_mock(providers=(PROVIDER,))
    assert run(mock, url).status_code == 200
    delivery = finished_delivery(mock)
    # Today's full read of a 1 GiB reply would time out (5 s) and be retried; the cap makes it a success.
    assert delivery["status"] == "succeeded", delivery["attempts"]
    (attempt,) = delivery["attempts"]
    assert attempt["response_excerpt"] == "A" * EXCERPT_BYTES
    assert attempt["latency_ms"] < 5000
    assert hung_up.wait(10), "the mock kept reading past its cap"
    assert REPLY_CAP == 64 * 1024
