"""The account and key control routes over real HTTP: wallets, key creation shown once, limits, revocation."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
import requests

from mockserver.control.accounts import key_prefix
from mockserver.core.billing import MAX_CHARGE_CENTS
from mockserver.state.records import KeyRecord
from mockserver.state.seed import key_id_of

PAHLAVAN = "pahlavan"
ACCOUNT = "user_123"
PRIMARY_KEY = "sp_live_mockkey0001"
POOR_ACCOUNT = "user_poor"
"""Seeded with one cent and the key ``poor``, for provoking INSUFFICIENT_BALANCE."""
SEEDED_KEYS = {"demo": ACCOUNT, "limited": ACCOUNT, "poor": POOR_ACCOUNT}
KEY_FIELDS = {
    "provider",
    "key_id",
    "name",
    "account",
    "organization",
    "spend_limit_cents",
    "spent_cents",
    "revoked",
    "redacted",
}


@pytest.fixture(scope="session")
def pahlavan_server(server_pool: Callable[..., Any]) -> Any:
    """A shared Pahlavan-only server (strict response validation, seed 0)."""
    return server_pool(providers=(PAHLAVAN,))


@pytest.fixture
def mock(pahlavan_server: Any, attach_mock: Callable[[Any], Any]) -> Any:
    """A reset handle on the Pahlavan server, checked for spec violations after the test."""
    return attach_mock(pahlavan_server)


def call(mock: Any, method: str, path: str, body: Any = None) -> requests.Response:
    """A control request whose status the test checks itself."""
    response: requests.Response = mock.http.request(
        method, f"{mock.base_url}/_mock{path}", json=body, timeout=10
    )
    return response


def assert_control_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


def presign_with(mock: Any, key: str) -> requests.Response:
    """A storage call authenticated by ``key`` (any authenticated Pahlavan operation would do)."""
    body = {"filename": "a.txt", "content_type": "text/plain", "bytes": 1}
    response: requests.Response = mock.post(
        PAHLAVAN, "/api/v1/storage/presign", json=body, auth=False, headers={"Authorization": f"Bearer {key}"}
    )
    return response


def keys(mock: Any) -> list[dict[str, Any]]:
    listing: list[dict[str, Any]] = mock.control("GET", f"/keys?provider={PAHLAVAN}")["keys"]
    return listing


# -- wallets ---------------------------------------------------------------------------------------------


def test_list_accounts_shows_seeded_wallets(mock: Any) -> None:
    accounts = mock.control("GET", f"/accounts?provider={PAHLAVAN}")["accounts"]
    assert accounts == [
        {"provider": PAHLAVAN, "id": ACCOUNT, "wallet_cents": 100000},
        {"provider": PAHLAVAN, "id": POOR_ACCOUNT, "wallet_cents": 1},
    ]
    everything = mock.control("GET", "/accounts")["accounts"]
    assert everything == accounts  # only Pahlavan is served here


def test_set_wallet(mock: Any) -> None:
    updated = mock.control("PUT", f"/accounts/{PAHLAVAN}/{ACCOUNT}/wallet", {"wallet_cents": 5})
    assert updated == {"provider": PAHLAVAN, "id": ACCOUNT, "wallet_cents": 5}
    assert mock.control("GET", f"/accounts?provider={PAHLAVAN}")["accounts"][0]["wallet_cents"] == 5
    assert (
        mock.control("PUT", f"/accounts/{PAHLAVAN}/{ACCOUNT}/wallet", {"wallet_cents": 0})["wallet_cents"]
        == 0
    )
    mock.reset()
    assert mock.control("GET", f"/accounts?provider={PAHLAVAN}")["accounts"][0]["wallet_cents"] == 100000


@pytest.mark.parametrize("body", [{"wallet_cents": -1}, {"wallet_cents": "5"}, {"wallet_cents": True}, {}])
def test_set_wallet_rejects_bad_values(mock: Any, body: Any) -> None:
    assert_control_error(
        call(mock, "PUT", f"/accounts/{PAHLAVAN}/{ACCOUNT}/wallet", body), 400, "invalid_request"
    )


def test_unknown_accounts_and_providers(mock: Any) -> None:
    body = {"wallet_cents": 1}
    assert_control_error(call(mock, "PUT", f"/accounts/{PAHLAVAN}/nobody/wallet", body), 404, "not_found")
    assert_control_error(call(mock, "PUT", f"/accounts/nowhere/{ACCOUNT}/wallet", body), 404, "not_found")
    assert_control_error(call(mock, "GET", "/accounts?provider=nowhere"), 400, "invalid_request")
    assert_control_error(call(mock, "GET", "/keys?provider=nowhere"), 400, "invalid_request")


# -- keys ------------------------------------------------------------------------------------------------


def test_list_keys_never_shows_secrets(mock: Any) -> None:
    response = call(mock, "GET", f"/keys?provider={PAHLAVAN}")
    assert response.status_code == 200
    assert PRIMARY_KEY not in response.text
    assert "sp_live_mockkey0002" not in response.text
    assert "sp_live_mockkey0003" not in response.text
    listing = response.json()["keys"]
    assert {k["name"]: k["account"] for k in listing} == SEEDED_KEYS
    for entry in listing:
        assert set(entry) == KEY_FIELDS
        assert re.fullmatch(r"key_[0-9a-f]{12}", entry["key_id"])
        assert entry["revoked"] is False
        assert entry["spent_cents"] == 0
    assert [k["spend_limit_cents"] for k in listing] == [None, 100, None]
    assert listing[0]["redacted"].endswith("0001")
    assert PRIMARY_KEY not in listing[0]["redacted"]


def test_created_key_is_shown_once_and_works_at_once(mock: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    response = call(mock, "POST", "/keys", {"provider": PAHLAVAN, "name": "ci", "spend_limit_cents": 250})
    assert response.status_code == 201, response.text
    created = response.json()
    secret = created.pop("key")
    assert set(created) == KEY_FIELDS
    assert re.fullmatch(r"sp_live_[0-9a-f]{32}", secret), "the seeded key's prefix style"
    assert created["account"] == ACCOUNT  # the primary key's account by default
    assert created["name"] == "ci"
    assert created["spend_limit_cents"] == 250
    assert created["revoked"] is False

    assert presign_with(mock, secret).status_code == 200
    listing = call(mock, "GET", f"/keys?provider={PAHLAVAN}")
    assert secret not in listing.text
    assert [k for k in listing.json()["keys"] if k["key_id"] == created["key_id"]] == [created]
    # Neither the journal nor the logs ever carry the secret.
    assert secret not in str(mock.journal())
    assert secret not in caplog.text
    # A reset drops keys created at runtime.
    mock.reset()
    assert presign_with(mock, secret).status_code == 401


def test_key_for_a_new_account_creates_the_account(mock: Any) -> None:
    created = mock.control("POST", "/keys", {"provider": PAHLAVAN, "account": "user_999", "name": "other"})
    assert created["account"] == "user_999"
    assert presign_with(mock, created["key"]).json()["key"].startswith("user/user_999/")
    accounts = mock.control("GET", f"/accounts?provider={PAHLAVAN}")["accounts"]
    assert {"provider": PAHLAVAN, "id": "user_999", "wallet_cents": None} in accounts
    updated = mock.control("PUT", f"/accounts/{PAHLAVAN}/user_999/wallet", {"wallet_cents": 42})
    assert updated["wallet_cents"] == 42


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x"},
        {"provider": PAHLAVAN},
        {"provider": "nowhere", "name": "x"},
        {"provider": PAHLAVAN, "name": ""},
        {"provider": PAHLAVAN, "name": "x", "account": "a/b"},
        {"provider": PAHLAVAN, "name": "x", "account": "bad\nid"},
        {"provider": PAHLAVAN, "name": "x", "spend_limit_cents": -1},
        {"provider": PAHLAVAN, "name": "x", "organization": 7},
        {"provider": PAHLAVAN, "name": "x", "key": "sp_live_chosen"},
    ],
)
def test_create_key_validation(mock: Any, body: Any) -> None:
    assert_control_error(call(mock, "POST", "/keys", body), 400, "invalid_request")
    assert len(keys(mock)) == len(SEEDED_KEYS)


def test_spend_limit_update(mock: Any) -> None:
    key_id = keys(mock)[0]["key_id"]
    path = f"/keys/{PAHLAVAN}/{key_id}/spend-limit"
    assert mock.control("PUT", path, {"spend_limit_cents": 500})["spend_limit_cents"] == 500
    assert keys(mock)[0]["spend_limit_cents"] == 500
    assert mock.control("PUT", path, {"spend_limit_cents": None})["spend_limit_cents"] is None
    for bad in ({"spend_limit_cents": -5}, {"spend_limit_cents": 1.5}, {}):
        assert_control_error(call(mock, "PUT", path, bad), 400, "invalid_request")
    missing = call(mock, "PUT", f"/keys/{PAHLAVAN}/key_000000000000/spend-limit", {"spend_limit_cents": 1})
    assert_control_error(missing, 404, "not_found")


@pytest.mark.parametrize("too_many", [MAX_CHARGE_CENTS + 1, 2**64, 2**64 + 1, 10**40])
def test_cents_past_the_largest_charge_are_a_400_and_change_nothing(mock: Any, too_many: int) -> None:
    """Past 2^53 - 1 a wallet or a spend limit is refused in the control envelope (on Redis, past 64 bits,
    it was a 500: its encoder refuses such integers), and nothing stored changes."""
    wallet = f"/accounts/{PAHLAVAN}/{ACCOUNT}/wallet"
    assert mock.control("PUT", wallet, {"wallet_cents": MAX_CHARGE_CENTS})["wallet_cents"] == MAX_CHARGE_CENTS
    refused = call(mock, "PUT", wallet, {"wallet_cents": too_many})
    assert_control_error(refused, 400, "invalid_request")
    assert str(MAX_CHARGE_CENTS) in refused.json()["error"]["message"]
    assert mock.control("GET", f"/accounts?provider={PAHLAVAN}")["accounts"][0]["wallet_cents"] == (
        MAX_CHARGE_CENTS
    )

    created = call(mock, "POST", "/keys", {"provider": PAHLAVAN, "name": "x", "spend_limit_cents": too_many})
    assert_control_error(created, 400, "invalid_request")
    assert len(keys(mock)) == len(SEEDED_KEYS)

    key_id = keys(mock)[0]["key_id"]
    limit = f"/keys/{PAHLAVAN}/{key_id}/spend-limit"
    assert mock.control("PUT", limit, {"spend_limit_cents": MAX_CHARGE_CENTS})["spend_limit_cents"] == (
        MAX_CHARGE_CENTS
    )
    assert_control_error(call(mock, "PUT", limit, {"spend_limit_cents": too_many}), 400, "invalid_request")
    assert keys(mock)[0]["spend_limit_cents"] == MAX_CHARGE_CENTS


def test_revoked_key_is_401_in_the_providers_envelope(mock: Any) -> None:
    assert presign_with(mock, PRIMARY_KEY).status_code == 200
    key_id = keys(mock)[0]["key_id"]
    revoked = mock.control("DELETE", f"/keys/{PAHLAVAN}/{key_id}")
    assert revoked["revoked"] is True
    assert revoked["key_id"] == key_id
    response = presign_with(mock, PRIMARY_KEY)
    assert response.status_code == 401
    assert response.json()["details"]["code"] == "UNAUTHORIZED"
    assert keys(mock)[0]["revoked"] is True
    assert presign_with(mock, "sp_live_mockkey0002").status_code == 200  # other keys are untouched
    assert_control_error(call(mock, "DELETE", f"/keys/{PAHLAVAN}/key_000000000000"), 404, "not_found")


# -- provider-neutral --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("primary", "prefix"),
    [
        ("sp_live_mockkey0001", "sp_live_"),
        ("sk-spaceai-mockkey-0001", "sk-spaceai-mockkey-"),
        ("as_test_mockkey_0001", "as_test_mockkey_"),
        ("plainkey", ""),
    ],
)
def test_key_prefix_follows_the_primary_key(primary: str, prefix: str) -> None:
    assert key_prefix(KeyRecord(primary, "a", key_id_of(primary))) == prefix


def test_created_keys_work_for_another_provider(
    server_pool: Callable[..., Any], attach_mock: Callable[[Any], Any]
) -> None:
    mock = attach_mock(server_pool(providers=("spaceai",)))
    created = mock.control("POST", "/keys", {"provider": "spaceai", "name": "ci"})
    assert created["key"].startswith("sk-spaceai-mockkey-")
    assert created["account"] == "acct_space_demo"
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {created['key']}"}
    response = mock.post("spaceai", "/v1/chat/completions", json=body, auth=False, headers=headers)
    assert response.status_code == 200, response.text
    mock.control("DELETE", f"/keys/spaceai/{created['key_id']}")
    response = mock.post("spaceai", "/v1/chat/completions", json=body, auth=False, headers=headers)
    assert response.status_code == 401
