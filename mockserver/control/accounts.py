"""Control routes for accounts and API keys, as a provider's dashboard offers them (provider-neutral).

* ``GET /_mock/accounts?provider=``, ``PUT /_mock/accounts/{provider}/{account_id}/wallet``
* ``GET /_mock/keys?provider=``, ``POST /_mock/keys``, ``PUT /_mock/keys/{provider}/{key_id}/spend-limit``,
  ``DELETE /_mock/keys/{provider}/{key_id}``

Keys are listed by their non-secret ``key_id`` and redacted form; the full secret appears only once, in
the answer to its creation. Everything here lives in the state, so ``POST /_mock/reset`` undoes it.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from aiohttp import web

from mockserver.control.base import MOCK, ControlError, ControlHandler, number, read_body
from mockserver.core.billing import MAX_CHARGE_CENTS
from mockserver.state.api import State
from mockserver.state.records import KeyRecord, WalletView
from mockserver.state.seed import key_id_of

_ACCOUNT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
"""Account ids become part of URLs and storage keys: no separators, spaces or control characters."""
_SECRET_HEX_CHARS = 32
_VISIBLE = re.compile(r"[^\t\n\x0b\x0c\r ]")
"""A name must show something: one character that is not ASCII whitespace (the spec's exact pattern)."""


def _state(request: web.Request) -> State:
    return request.app[MOCK].services.state


def _provider(request: web.Request, provider_id: str, *, in_path: bool) -> str:
    """A served provider: an unknown one is a 404 in the path, a 400 in a query or body."""
    if provider_id not in request.app[MOCK].providers:
        if in_path:
            raise web.HTTPNotFound(text=f"unknown provider {provider_id!r}")
        raise ControlError(400, f"unknown provider {provider_id!r}")
    return provider_id


def _queried(request: web.Request) -> list[str]:
    """The provider named by ``?provider=``, or every served provider."""
    provider_id = request.query.get("provider")
    if provider_id is None:
        return list(request.app[MOCK].providers)
    return [_provider(request, provider_id, in_path=False)]


def _account_view(provider_id: str, account_id: str, wallet: WalletView) -> dict[str, Any]:
    return {"provider": provider_id, "id": account_id, "wallet_cents": wallet.wallet_cents}


async def _key_view(state: State, provider_id: str, key: KeyRecord) -> dict[str, Any]:
    """Everything about a key except its secret."""
    wallet = await state.wallet(provider_id, key.account, key.key_id)
    return {
        "provider": provider_id,
        "key_id": key.key_id,
        "name": key.name,
        "account": key.account,
        "organization": key.organization,
        "spend_limit_cents": key.spend_limit_cents,
        "spent_cents": wallet.key_spent_cents,
        "revoked": key.revoked,
        "redacted": key.redacted(),
    }


def _cents(data: dict[str, Any], name: str, *, nullable: bool) -> int | None:
    if name not in data:
        raise ControlError(400, f"'{name}' is required")
    value = data[name]
    if value is None and nullable:
        return None
    # Capped at the largest charge priced: past it cents are not exact as a JSON number for most
    # clients, and the Redis backend's encoder refuses integers past 64 bits (a 500 before).
    try:
        cents: int = number(data, name, integer=True, maximum=MAX_CHARGE_CENTS)
    except ControlError:
        kind = f"an integer from 0 to {MAX_CHARGE_CENTS}" + (" or null" if nullable else "")
        raise ControlError(400, f"'{name}' must be {kind}") from None
    return cents


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and (not isinstance(value, str) or not _VISIBLE.search(value)):
        raise ControlError(400, f"'{name}' must be a string with a non-whitespace character")
    return value


def key_prefix(primary: KeyRecord) -> str:
    """The provider's key style: the primary key up to and including its last ``_`` or ``-``."""
    secret = primary.key
    return secret[: max(secret.rfind("_"), secret.rfind("-")) + 1]


async def list_accounts(request: web.Request) -> web.Response:
    """``GET /_mock/accounts?provider=``: accounts and their wallets."""
    state = _state(request)
    accounts = [
        _account_view(p, a.id, await state.wallet(p, a.id, None))
        for p in _queried(request)
        for a in await state.accounts(p)
    ]
    return web.json_response({"accounts": accounts})


async def set_wallet(request: web.Request) -> web.Response:
    """``PUT /_mock/accounts/{provider}/{account_id}/wallet {"wallet_cents"}``: set a balance."""
    provider_id = _provider(request, request.match_info["provider"], in_path=True)
    account_id = request.match_info["account_id"]
    state = _state(request)
    if await state.account(provider_id, account_id) is None:
        raise web.HTTPNotFound(text=f"unknown account {account_id!r}")
    cents = _cents(await read_body(request), "wallet_cents", nullable=False)
    wallet = await state.set_wallet(provider_id, account_id, cents)
    if wallet is None:
        raise web.HTTPNotFound(text=f"unknown account {account_id!r}")
    return web.json_response(_account_view(provider_id, account_id, wallet))


async def list_keys(request: web.Request) -> web.Response:
    """``GET /_mock/keys?provider=``: keys without their secrets."""
    state = _state(request)
    keys = [await _key_view(state, p, k) for p in _queried(request) for k in await state.keys(p)]
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
    _provider(request, provider_id, in_path=False)
    state = _state(request)
    primary = state.seed(provider_id).keys[0]
    account_id = _text(data, "account") or primary.account
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise ControlError(400, "'account' must be 1-128 letters, digits or '._:@-', starting alphanumeric")
    spend_limit = _cents(data, "spend_limit_cents", nullable=True) if "spend_limit_cents" in data else None
    # A new key of an existing account joins that account's organization unless told otherwise.
    existing = await state.keys(provider_id)
    inherited = next((k.organization for k in existing if k.account == account_id), None)
    organization = _text(data, "organization") if "organization" in data else inherited
    while True:  # a clash (practically never) would hijack another key: add_key refuses it, draw again
        secret = key_prefix(primary) + secrets.token_hex(_SECRET_HEX_CHARS // 2)
        key = KeyRecord(
            key=secret,
            account=account_id,
            key_id=key_id_of(secret),
            name=name,
            spend_limit_cents=spend_limit,
            organization=organization,
        )
        if await state.add_key(provider_id, key):
            break
    return web.json_response({**await _key_view(state, provider_id, key), "key": secret}, status=201)


async def _update(request: web.Request, **changes: Any) -> web.Response:
    provider_id = _provider(request, request.match_info["provider"], in_path=True)
    key_id = request.match_info["key_id"]
    state = _state(request)
    if await state.key_by_id(provider_id, key_id) is None:
        raise web.HTTPNotFound(text=f"unknown key {key_id!r} for provider {provider_id!r}")
    if "spend_limit_cents" in changes:
        changes["spend_limit_cents"] = _cents(await read_body(request), "spend_limit_cents", nullable=True)
    key = await state.update_key(provider_id, key_id, **changes)
    if key is None:
        raise web.HTTPNotFound(text=f"unknown key {key_id!r} for provider {provider_id!r}")
    return web.json_response(await _key_view(state, provider_id, key))


async def set_spend_limit(request: web.Request) -> web.Response:
    """``PUT /_mock/keys/{provider}/{key_id}/spend-limit {"spend_limit_cents": int|null}``."""
    return await _update(request, spend_limit_cents=None)


async def revoke_key(request: web.Request) -> web.Response:
    """``DELETE /_mock/keys/{provider}/{key_id}``: the key stops authenticating (401) at once."""
    return await _update(request, revoked=True)


ACCOUNT_ROUTES: list[tuple[str, str, ControlHandler]] = [
    ("GET", "/accounts", list_accounts),
    ("PUT", "/accounts/{provider}/{account_id}/wallet", set_wallet),
    ("GET", "/keys", list_keys),
    ("POST", "/keys", create_key),
    ("PUT", "/keys/{provider}/{key_id}/spend-limit", set_spend_limit),
    ("DELETE", "/keys/{provider}/{key_id}", revoke_key),
]
"""Account and key routes of the ``/_mock`` control app."""
