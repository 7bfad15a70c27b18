"""Control routes for accounts and API keys, as a provider's dashboard offers them (provider-neutral).

* ``GET /_mock/accounts?provider=``, ``PUT /_mock/accounts/{provider}/{account_id}/wallet``
* ``GET /_mock/keys?provider=``, ``POST /_mock/keys``, ``PUT /_mock/keys/{provider}/{key_id}/spend-limit``,
  ``DELETE /_mock/keys/{provider}/{key_id}``

Keys are listed by their non-secret ``key_id`` and redacted form; the full secret appears only once, in
the answer to its creation. Everything here lives in the store, so ``POST /_mock/reset`` undoes it.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from aiohttp import web

from mockserver.control.base import MOCK, ControlError, ControlHandler, number, read_body
from mockserver.core.store import Account, ApiKey, ProviderState

_ACCOUNT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
"""Account ids become part of URLs and storage keys: no separators, spaces or control characters."""
_SECRET_HEX_CHARS = 32
_VISIBLE = re.compile(r"[^\t\n\x0b\x0c\r ]")
"""A name must show something: one character that is not ASCII whitespace (the spec's exact pattern)."""


def _state(request: web.Request, provider_id: str, *, in_path: bool) -> ProviderState:
    """A served provider's state: an unknown one is a 404 in the path, a 400 in a query or body."""
    store = request.app[MOCK].services.store
    if provider_id not in store.providers:
        if in_path:
            raise web.HTTPNotFound(text=f"unknown provider {provider_id!r}")
        raise ControlError(400, f"unknown provider {provider_id!r}")
    return store[provider_id]


def _queried(request: web.Request) -> list[ProviderState]:
    """The provider named by ``?provider=``, or every served provider."""
    provider_id = request.query.get("provider")
    if provider_id is None:
        return list(request.app[MOCK].services.store.providers.values())
    return [_state(request, provider_id, in_path=False)]


def _account_view(state: ProviderState, account: Account) -> dict[str, Any]:
    return {"provider": state.provider_id, "id": account.id, "wallet_cents": account.wallet_cents}


def _key_view(state: ProviderState, key: ApiKey) -> dict[str, Any]:
    """Everything about a key except its secret."""
    return {
        "provider": state.provider_id,
        "key_id": key.key_id,
        "name": key.name,
        "account": key.account,
        "organization": key.organization,
        "spend_limit_cents": key.spend_limit_cents,
        "spent_cents": key.spent_cents,
        "revoked": key.revoked,
        "redacted": key.redacted(),
    }


def _key(state: ProviderState, key_id: str) -> ApiKey:
    found = next((k for k in state.keys.values() if k.key_id == key_id), None)
    if found is None:
        raise web.HTTPNotFound(text=f"unknown key {key_id!r} for provider {state.provider_id!r}")
    return found


def _cents(data: dict[str, Any], name: str, *, nullable: bool) -> int | None:
    if name not in data:
        raise ControlError(400, f"'{name}' is required")
    value = data[name]
    if value is None and nullable:
        return None
    try:
        cents: int = number(data, name, integer=True)
    except ControlError:
        kind = "an integer >= 0 or null" if nullable else "an integer >= 0"
        raise ControlError(400, f"'{name}' must be {kind}") from None
    return cents


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and (not isinstance(value, str) or not _VISIBLE.search(value)):
        raise ControlError(400, f"'{name}' must be a string with a non-whitespace character")
    return value


def key_prefix(state: ProviderState) -> str:
    """The provider's key style: the primary key up to and including its last ``_`` or ``-``."""
    primary = state.primary_key().key
    return primary[: max(primary.rfind("_"), primary.rfind("-")) + 1]


async def list_accounts(request: web.Request) -> web.Response:
    """``GET /_mock/accounts?provider=``: accounts and their wallets."""
    accounts = [_account_view(s, a) for s in _queried(request) for a in s.accounts.values()]
    return web.json_response({"accounts": accounts})


async def set_wallet(request: web.Request) -> web.Response:
    """``PUT /_mock/accounts/{provider}/{account_id}/wallet {"wallet_cents"}``: set a balance."""
    state = _state(request, request.match_info["provider"], in_path=True)
    account = state.accounts.get(request.match_info["account_id"])
    if account is None:
        raise web.HTTPNotFound(text=f"unknown account {request.match_info['account_id']!r}")
    account.wallet_cents = _cents(await read_body(request), "wallet_cents", nullable=False)
    return web.json_response(_account_view(state, account))


async def list_keys(request: web.Request) -> web.Response:
    """``GET /_mock/keys?provider=``: keys without their secrets."""
    keys = [_key_view(s, k) for s in _queried(request) for k in s.keys.values()]
    return web.json_response({"keys": keys})


async def create_key(request: web.Request) -> web.Response:
    """``POST /_mock/keys``: a new key, usable at once; its secret is shown in this answer only."""
    data = await read_body(request)
    unknown = set(data) - {"provider", "account", "name", "spend_limit_cents", "organization"}
    if unknown:
        raise ControlError(400, f"unknown key fields: {sorted(unknown)}")
    provider_id = _text(data, "provider")
    name = _text(data, "name")
    if provider_id is None or name is None:
        raise ControlError(400, "'provider' and 'name' are required")
    state = _state(request, provider_id, in_path=False)
    account_id = _text(data, "account") or state.primary_key().account
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise ControlError(400, "'account' must be 1-128 letters, digits or '._:@-', starting alphanumeric")
    spend_limit = _cents(data, "spend_limit_cents", nullable=True) if "spend_limit_cents" in data else None
    # A new key of an existing account joins that account's organization unless told otherwise.
    inherited = next((k.organization for k in state.keys.values() if k.account == account_id), None)
    organization = _text(data, "organization") if "organization" in data else inherited
    if account_id not in state.accounts:
        state.accounts[account_id] = Account(id=account_id)
    secret = key_prefix(state) + secrets.token_hex(_SECRET_HEX_CHARS // 2)
    while secret in state.keys:  # practically never, but a clash would hijack another key
        secret = key_prefix(state) + secrets.token_hex(_SECRET_HEX_CHARS // 2)
    key = ApiKey(
        key=secret, account=account_id, name=name, spend_limit_cents=spend_limit, organization=organization
    )
    state.keys[secret] = key
    return web.json_response({**_key_view(state, key), "key": secret}, status=201)


async def set_spend_limit(request: web.Request) -> web.Response:
    """``PUT /_mock/keys/{provider}/{key_id}/spend-limit {"spend_limit_cents": int|null}``."""
    state = _state(request, request.match_info["provider"], in_path=True)
    key = _key(state, request.match_info["key_id"])
    key.spend_limit_cents = _cents(await read_body(request), "spend_limit_cents", nullable=True)
    return web.json_response(_key_view(state, key))


async def revoke_key(request: web.Request) -> web.Response:
    """``DELETE /_mock/keys/{provider}/{key_id}``: the key stops authenticating (401) at once."""
    state = _state(request, request.match_info["provider"], in_path=True)
    key = _key(state, request.match_info["key_id"])
    key.revoked = True
    return web.json_response(_key_view(state, key))


ACCOUNT_ROUTES: list[tuple[str, str, ControlHandler]] = [
    ("GET", "/accounts", list_accounts),
    ("PUT", "/accounts/{provider}/{account_id}/wallet", set_wallet),
    ("GET", "/keys", list_keys),
    ("POST", "/keys", create_key),
    ("PUT", "/keys/{provider}/{key_id}/spend-limit", set_spend_limit),
    ("DELETE", "/keys/{provider}/{key_id}", revoke_key),
]
"""Account and key routes of the ``/_mock`` control app."""
