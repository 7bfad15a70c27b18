"""A test's handle on a running mock: provider calls with the right credentials, and the control API.

Everything goes over real HTTP (``/_mock/...``), so the same handle drives an in-process server, a mock
started with ``python -m mockserver`` or one in a container.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests

from mockserver.core.spec import load_document
from mockserver.resources import spec_path
from mockserver.state.seed import key_id_of
from mockserver.testing.server import ServerThread
from mockserver.testing.webhooks import verify_signature

DEFAULT_TIMEOUT = 10.0
JOURNAL_PAGE = 1000
"""Journal entries read per request when following its pages (the control API's largest page)."""
TOKEN_VARIABLE = "MOCKSERVER_CONTROL_TOKEN"


@functools.cache
def auth_header(provider_id: str) -> tuple[str, str]:
    """(header name, value prefix) the provider's spec says its API key travels in."""
    document = load_document(spec_path(provider_id))
    scheme_name = next(iter(document["security"][0]))
    scheme = document["components"]["securitySchemes"][scheme_name]
    if scheme["type"] == "http" and scheme["scheme"].lower() == "bearer":
        return "Authorization", "Bearer "
    return str(scheme["name"]), ""


def key_id(key: str) -> str:
    """The non-secret handle (``key_...``) the control API lists a secret key under."""
    return key if key.startswith("key_") else key_id_of(key)


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """One provider as the mock serves it (an entry of ``GET /_mock/providers``)."""

    id: str
    base_url: str
    api_key: str
    organization_id: str | None = None
    models: list[Any] = field(default_factory=list)
    extra_keys: dict[str, str] = field(default_factory=dict)
    """The provider's other seeded keys by name (``limited``, ``poor``...)."""

    def auth_headers(self, key: str | None = None) -> dict[str, str]:
        """The credential header, with this provider's seeded key unless another is given."""
        name, prefix = auth_header(self.id)
        return {name: prefix + (self.api_key if key is None else key)}

    def url(self, path: str) -> str:
        """An absolute URL under the provider's base URL."""
        return self.base_url + path


class ControlError(AssertionError):
    """The control API refused a request (the message carries its answer)."""


class MockControl:
    """Provider requests and the ``/_mock`` control API of one running mock."""

    def __init__(
        self, base_url: str, server: ServerThread | None = None, *, token: str | None = None
    ) -> None:
        """``token``: the control token (default: the in-process server's, else $MOCKSERVER_CONTROL_TOKEN)."""
        self.base_url = base_url.rstrip("/")
        self.server = server
        """The in-process server, when the plugin started it (``None`` for a remote mock)."""
        self.http = requests.Session()
        if token is None:
            token = server.settings.control_token if server else os.environ.get(TOKEN_VARIABLE) or None
        # Sent on control calls only: provider calls through the same session must not carry it.
        self._control_headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._providers: dict[str, ProviderInfo] | None = None

    # -- providers ----------------------------------------------------------------------------------

    @property
    def providers(self) -> dict[str, ProviderInfo]:
        """Every served provider by id."""
        if self._providers is None:
            listing = self.control("GET", "/providers")["providers"]
            fields = ProviderInfo.__dataclass_fields__
            self._providers = {
                p["id"]: ProviderInfo(**{k: v for k, v in p.items() if k in fields}) for p in listing
            }
        return self._providers

    def provider(self, provider_id: str) -> ProviderInfo:
        """One served provider (``KeyError`` naming the served ones if it is not served)."""
        try:
            return self.providers[provider_id]
        except KeyError:
            raise KeyError(f"{provider_id!r} is not served; served: {sorted(self.providers)}") from None

    def url(self, provider_id: str, path: str) -> str:
        """An absolute URL under a provider's base URL."""
        return self.provider(provider_id).url(path)

    def request(
        self,
        provider_id: str,
        method: str,
        path: str,
        *,
        key: str | None = None,
        auth: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Call a provider with its seeded key (or ``key``; none if ``auth=False``); kwargs go to requests."""
        headers = self.provider(provider_id).auth_headers(key) if auth else {}
        headers.update(kwargs.pop("headers", None) or {})
        kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
        return self.http.request(method, self.url(provider_id, path), headers=headers, **kwargs)

    def get(self, provider_id: str, path: str, **kwargs: Any) -> requests.Response:
        """``GET`` on a provider."""
        return self.request(provider_id, "GET", path, **kwargs)

    def post(self, provider_id: str, path: str, **kwargs: Any) -> requests.Response:
        """``POST`` on a provider."""
        return self.request(provider_id, "POST", path, **kwargs)

    # -- the control API ------------------------------------------------------------------------------

    def control(self, method: str, path: str, json: Any = None) -> Any:
        """Call ``/_mock<path>`` and return its JSON (``ControlError`` with the answer on a 4xx/5xx)."""
        response = self.http.request(
            method,
            f"{self.base_url}/_mock{path}",
            json=json,
            headers=self._control_headers,
            timeout=DEFAULT_TIMEOUT,
        )
        if response.status_code >= 400:
            raise ControlError(f"{method} /_mock{path} answered {response.status_code}: {response.text}")
        return response.json()

    def reset(self) -> None:
        """Back to the seed: keys, wallets, resources, clock, rate-limit counters, journal and faults."""
        self.control("POST", "/reset")

    # clock

    def now(self) -> float:
        """The mock's clock (epoch seconds)."""
        return float(self.control("GET", "/clock")["now"])

    def advance(self, seconds: float) -> float:
        """Move the mock's clock forward (jobs and webhooks due by then are done on return); the new time.

        Pass it where a client expects ``time.sleep`` so that waiting costs no real time.
        """
        return float(self.control("POST", "/clock/advance", {"seconds": seconds})["now"])

    # faults

    def fault(
        self,
        status: int | None = None,
        *,
        provider: str | None = None,
        operation_id: str | None = None,
        count: int | None = 1,
        latency_ms: float | None = None,
        cut_after_events: int | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> int:
        """Make the next ``count`` matching calls fail with ``status``, wait ``latency_ms`` or cut their
        stream after ``cut_after_events`` events (``count=None``: until cleared); returns the fault id."""
        spec: dict[str, Any] = {"count": count}
        optional = {
            "status": status,
            "provider": provider,
            "operation_id": operation_id,
            "latency_ms": latency_ms,
            "cut_after_events": cut_after_events,
            "message": message,
            "headers": dict(headers) if headers else None,
            "body": body,
        }
        spec.update({k: v for k, v in optional.items() if v is not None})
        return int(self.control("POST", "/faults", spec)["id"])

    def faults(self) -> list[dict[str, Any]]:
        """The active faults."""
        active: list[dict[str, Any]] = self.control("GET", "/faults")["faults"]
        return active

    def clear_faults(self) -> None:
        """Remove every fault."""
        self.control("DELETE", "/faults")

    # accounts, wallets and keys

    def accounts(self, provider: str | None = None) -> list[dict[str, Any]]:
        """Accounts and their wallets (``wallet_cents``), of one provider or all."""
        query = f"?provider={provider}" if provider else ""
        listing: list[dict[str, Any]] = self.control("GET", f"/accounts{query}")["accounts"]
        return listing

    def keys(self, provider: str | None = None) -> list[dict[str, Any]]:
        """API keys without their secrets (``key_id``, account, spend limit, spent...)."""
        query = f"?provider={provider}" if provider else ""
        listing: list[dict[str, Any]] = self.control("GET", f"/keys{query}")["keys"]
        return listing

    def _account(self, provider: str, account: str | None) -> str:
        """The given account, or the one of the provider's seeded key."""
        if account is not None:
            return account
        wanted = key_id(self.provider(provider).api_key)
        return str(next(k["account"] for k in self.keys(provider) if k["key_id"] == wanted))

    def wallet(self, provider: str, account: str | None = None) -> int | None:
        """An account's balance in cents (default: the account of the seeded key)."""
        account_id = self._account(provider, account)
        found = next(a for a in self.accounts(provider) if a["id"] == account_id)
        return None if found["wallet_cents"] is None else int(found["wallet_cents"])

    def set_wallet(self, provider: str, cents: int, account: str | None = None) -> None:
        """Set an account's balance in cents (default: the account of the seeded key)."""
        account_id = self._account(provider, account)
        self.control("PUT", f"/accounts/{provider}/{account_id}/wallet", {"wallet_cents": cents})

    def create_key(
        self,
        provider: str,
        name: str,
        *,
        account: str | None = None,
        spend_limit_cents: int | None = None,
        organization: str | None = None,
    ) -> str:
        """A new API key, usable at once (a new account is created if needed); returns its secret."""
        body: dict[str, Any] = {"provider": provider, "name": name}
        optional = {"account": account, "spend_limit_cents": spend_limit_cents, "organization": organization}
        body.update({k: v for k, v in optional.items() if v is not None})
        return str(self.control("POST", "/keys", body)["key"])

    def set_spend_limit(self, provider: str, key: str, cents: int | None) -> None:
        """Limit what a key (its secret or ``key_id``) may spend, in cents (``None``: no limit)."""
        self.control("PUT", f"/keys/{provider}/{key_id(key)}/spend-limit", {"spend_limit_cents": cents})

    def revoke_key(self, provider: str, key: str) -> None:
        """Make a key (its secret or ``key_id``) stop authenticating."""
        self.control("DELETE", f"/keys/{provider}/{key_id(key)}")

    # journal and violations

    def journal(self, provider: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Answered requests, oldest first: method, path, operation_id, status, latency (no keys, bodies).

        Every page is read: all the journal keeps, or its newest ``limit`` entries.
        """
        params: dict[str, str] = {"provider": provider} if provider else {}
        if limit is None:
            params["after"] = "0"  # forwards from the oldest entry
        pages: list[list[dict[str, Any]]] = []
        count = 0
        while limit is None or count < limit:
            size = JOURNAL_PAGE if limit is None else min(JOURNAL_PAGE, limit - count)
            answer = self.control("GET", "/requests?" + urlencode({**params, "limit": size}))
            pages.append(answer["requests"])
            count += len(answer["requests"])
            if not answer.get("next"):
                break
            # The cursor as the mock wrote it ('after' forwards, 'before' backwards to older entries).
            params.update(parse_qsl(urlsplit(answer["next"]).query))
        if limit is not None:
            pages.reverse()  # read newest page first
        return [entry for page in pages for entry in page]

    def violations(self) -> list[dict[str, Any]]:
        """Responses the mock sent outside its own spec (empty unless the mock has a bug)."""
        found: list[dict[str, Any]] = self.control("GET", "/violations")["violations"]
        return found

    def assert_no_violations(self) -> None:
        """Fail if the mock answered anything its spec does not allow."""
        found = self.violations()
        assert not found, f"the mock answered outside its spec: {found}"

    # webhooks

    def webhooks(self, provider: str | None = None) -> list[dict[str, Any]]:
        """Webhook deliveries (status, attempts, payload), oldest first."""
        query = f"?provider={provider}" if provider else ""
        deliveries: list[dict[str, Any]] = self.control("GET", f"/webhooks{query}")["deliveries"]
        return deliveries

    def wait_for_webhooks(
        self, count: int = 1, *, provider: str | None = None, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` deliveries are finished (succeeded or failed after their retries)."""
        deadline = time.monotonic() + timeout
        while True:
            finished = [d for d in self.webhooks(provider) if d["status"] != "pending"]
            if len(finished) >= count:
                return finished
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(finished)} of {count} webhook deliveries finished in {timeout} s")
            time.sleep(0.02)  # real time: delivery attempts run on the server's event loop

    def resend_webhook(self, delivery_id: str) -> dict[str, Any]:
        """Deliver a finished webhook again (same ``webhook-id``)."""
        delivery: dict[str, Any] = self.control("POST", f"/webhooks/{delivery_id}/resend")
        return delivery

    def webhook_secret(self, provider: str, key: str | None = None) -> str:
        """The ``whsec_`` secret deliveries caused by ``key`` (default: the seeded key) are signed with."""
        secrets = self.control("GET", "/webhooks/secrets")
        if key is None:
            return str(secrets["secrets"][provider])
        wanted = key_id(key)
        return str(
            next(s["secret"] for s in secrets["keys"] if s["provider"] == provider and s["key_id"] == wanted)
        )

    def verify_webhook(
        self, provider: str, headers: Mapping[str, str], body: bytes | str, *, key: str | None = None
    ) -> bool:
        """Whether a received delivery carries a valid signature (Standard Webhooks, ``v1``)."""
        return verify_signature(self.webhook_secret(provider, key), headers, body)

    def close(self) -> None:
        """Release the HTTP connections."""
        self.http.close()

    def __enter__(self) -> MockControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
