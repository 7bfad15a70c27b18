"""Where webhooks may go: a target policy checked when a URL is accepted and again before each attempt.

A webhook URL comes from whoever holds an API key, so without a policy the mock is an open proxy and a port
scanner (it reports status, latency and errors of every attempt), and a URL to its own ``/_mock/reset``
resets it. The rules, in order:

* only ``http`` and ``https``; never an unspecified address (``0.0.0.0``, ``::``);
* never the mock itself: its listening port on any local address (learnt from settings, or from the socket
  the request carrying the URL arrived on when it was bound to port 0);
* link-local addresses (169.254.0.0/16, fe80::/10) only for a host a ``--webhook-host`` entry names, and
  cloud-metadata addresses and names only when an entry names that very address or metadata name;
* with ``--webhook-host`` entries (``HOST[:PORT]``), only the hosts (and ports) listed;
* without, any host on a loopback bind (a developer's receivers on ``localhost:OTHERPORT`` work), and only
  public (globally routable) addresses on any other bind.

What the URL alone decides is refused when the request arrives (the provider answers 400); a host name is
resolved before each attempt by ``CheckedResolver``, which hands the connector only the addresses it
checked, so a name that re-resolves elsewhere (DNS rebinding) never gets a connection.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from mockserver.errors import ConfigError, MockError
from mockserver.settings import is_loopback

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud (classic)
        "168.63.129.16",  # Azure WireServer
    )
)
METADATA_NAMES = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class WebhookRefused(MockError):
    """A webhook target the policy does not allow; the message says why."""


def _ipv4_behind(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped (``::ffff:a.b.c.d``) or NAT64 (``64:ff9b::/96``) address reaches."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _literal(host: str) -> IPAddress | None:
    try:
        return _ipv4_behind(ipaddress.ip_address(host))
    except ValueError:
        return None


def _normal(host: str) -> str:
    """A host as rules compare it: lowercase, no brackets or trailing dot, IPs in their canonical form."""
    host = host.strip("[]").lower().rstrip(".")
    address = _literal(host)
    return str(address) if address is not None else host


@dataclass(frozen=True, slots=True)
class HostRule:
    """One ``--webhook-host`` entry: a host name or address, and optionally a port."""

    host: str
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> HostRule:
        """``HOST``, ``HOST:PORT``, ``[IPV6]:PORT`` or a bare IPv6 address; ValueError when malformed."""
        entry = text.strip()
        host, port = entry, ""
        if entry.startswith("["):
            host, sep, rest = entry[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError(f"bad webhook host {text!r}: expected [IPV6] or [IPV6]:PORT")
            port = rest[1:]
        elif _literal(entry) is None and entry.count(":") == 1:
            host, port = entry.split(":")
        if not host or any(c in host for c in "/@?# ") or (":" in host and _literal(host) is None):
            raise ValueError(f"bad webhook host {text!r}: expected HOST[:PORT]")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"bad webhook host {text!r}: the port must be 1-65535")
        return cls(_normal(host), int(port) if port else None)

    def matches(self, host: str, port: int) -> bool:
        """Whether a (normalised) host and port fall under this entry."""
        return self.host == host and self.port in (None, port)


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook URL's host and port as the policy sees them."""

    host: str
    port: int
    address: IPAddress | None
    """The host as an address when the URL gives one literally (no DNS needed)."""
    named: bool
    """A ``--webhook-host`` entry names this host (its link-local addresses are allowed)."""
    metadata_allowed: bool
    """An entry names this metadata address or metadata host itself."""


class EgressPolicy:
    """Decides whether a webhook may go to a URL (before the request is answered) and to an address."""

    def __init__(self, bind_host: str, bind_port: int, allowed: tuple[str, ...] | None) -> None:
        try:
            self._rules = None if allowed is None else tuple(HostRule.parse(a) for a in allowed)
        except ValueError as exc:
            raise ConfigError(f"--webhook-host: {exc}") from None
        self._loopback_bind = is_loopback(bind_host)
        self._own_ports: set[int] = {bind_port} if bind_port else set()

    def note_local(self, sockname: Any) -> None:
        """Remember the port of a socket the mock accepted a request on (its own address, when bound to 0)."""
        if isinstance(sockname, tuple) and len(sockname) >= 2 and isinstance(sockname[1], int):
            self._own_ports.add(sockname[1])

    def target(self, host: str, port: int) -> Target:
        """The host and port's ``Target``, or ``WebhookRefused`` for what needs no DNS to refuse."""
        host = _normal(host)
        address = _literal(host)
        named = False
        if self._rules is not None:
            if not any(rule.matches(host, port) for rule in self._rules):
                label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                raise WebhookRefused(f"{label} is not an allowed webhook host (see --webhook-host)")
            named = True
        # A name an entry lists may resolve to link-local addresses, never to metadata ones (a rebound
        # name); metadata is reached only through an entry naming the metadata address or host itself.
        metadata = named and (address is not None or host in METADATA_NAMES)
        target = Target(host, port, address, named=named, metadata_allowed=metadata)
        if host in METADATA_NAMES and not metadata:
            raise WebhookRefused(f"{host} is a cloud metadata host")
        if address is not None:
            self.check_address(target, address)
        return target

    def check_url(self, url: str) -> Target:
        """A URL's ``Target``, or ``WebhookRefused`` for a bad scheme or a host refused without DNS."""
        try:
            parsed = URL(url)
            host, port = parsed.host, parsed.port
        except (ValueError, TypeError):
            raise WebhookRefused("not a valid URL") from None
        if parsed.scheme not in ("http", "https"):
            raise WebhookRefused("only http and https URLs can receive webhooks")
        if not host or port is None:
            raise WebhookRefused("the URL has no host")
        return self.target(host, port)

    def check_address(self, target: Target, address: IPAddress) -> None:
        """``WebhookRefused`` unless ``target`` may be reached at ``address`` (literal or resolved)."""
        address = _ipv4_behind(address)
        if address.is_unspecified or address.is_multicast:
            raise WebhookRefused(f"{address} is not a host address")
        if target.port in self._own_ports and _is_local(address):
            raise WebhookRefused(f"{address}:{target.port} is the mock's own address")
        if address in METADATA_ADDRESSES and not target.metadata_allowed:
            raise WebhookRefused(f"{address} is a cloud metadata address")
        if address.is_link_local and not target.named:
            raise WebhookRefused(f"{address} is a link-local address")
        if self._rules is None and not self._loopback_bind and not address.is_global:
            # Off loopback, receivers on private networks must be listed with --webhook-host.
            raise WebhookRefused(f"{address} is not a public address")


def _is_local(address: IPAddress) -> bool:
    """Whether ``address`` belongs to this machine (loopback, or an interface's): binding to it succeeds."""
    if address.is_loopback:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True


class CheckedResolver(AbstractResolver):
    """Resolves with ``base`` and keeps only the addresses the policy allows; none left: ``WebhookRefused``.

    The connector connects to exactly the addresses returned here, so the address checked is the address
    connected to, whatever the name resolves to a moment later.
    """

    def __init__(self, policy: EgressPolicy, base: AbstractResolver) -> None:
        self._policy = policy
        self._base = base

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The allowed addresses of ``host``."""
        target = self._policy.target(host, port)
        allowed: list[ResolveResult] = []
        refusal: WebhookRefused | None = None
        for result in await self._base.resolve(host, port, family):
            try:
                self._policy.check_address(target, ipaddress.ip_address(result["host"]))
            except (WebhookRefused, ValueError) as exc:
                refusal = refusal or WebhookRefused(f"{target.host} resolves to a refused address: {exc}")
                continue
            allowed.append(result)
        if not allowed:
            raise refusal or WebhookRefused(f"{target.host} resolves to no address")
        return allowed

    async def close(self) -> None:
        """Close the underlying resolver."""
        await self._base.close()
