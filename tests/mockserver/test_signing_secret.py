"""Signing keys over real HTTP: random per start by default, stable with ``--signing-secret``, seed-derived
only on loopback (``--signing-secret seed``, what the test servers use)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import requests

from mockserver.core.signing import UrlSigner, seed_webhook_secret, signed_url

PAHLAVAN, ARTIFICIAL = "pahlavan", "artificialstudio"
PAHLAVAN_KEY = {"Authorization": "Bearer sp_live_mockkey0001"}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


def stored_object(origin: str) -> str:
    """Presign, upload and commit a small PNG on the mock at ``origin``; returns its storage key."""
    base = f"{origin}/{PAHLAVAN}/api/v1/storage"
    body = {"filename": "logo.png", "content_type": "image/png", "bytes": len(PNG)}
    presigned = requests.post(f"{base}/presign", json=body, headers=PAHLAVAN_KEY, timeout=10)
    assert presigned.status_code == 200, presigned.text
    upload = presigned.json()
    assert requests.put(upload["upload_url"], data=PNG, headers=upload["headers"], timeout=10).ok
    committed = requests.post(f"{base}/commit", json={"key": upload["key"]}, headers=PAHLAVAN_KEY, timeout=10)
    assert committed.status_code == 200, committed.text
    return str(upload["key"])


def signed_download(origin: str, key: str) -> str:
    """``POST /storage/sign-url`` for ``key``: the signed download URL's path and query (no origin)."""
    base = f"{origin}/{PAHLAVAN}/api/v1/storage"
    signed = requests.post(f"{base}/sign-url", json={"key": key}, headers=PAHLAVAN_KEY, timeout=10)
    assert signed.status_code == 200, signed.text
    url = str(signed.json()["url"])
    return url[len(origin) :]


def error_code(response: requests.Response) -> str:
    return str(response.json()["details"]["code"])


def seed_forged_url(mock: Any, key: str) -> str:
    """A download URL for ``key`` signed with the secret the seed (0, printed at start) derives."""
    expires = int(mock.now()) + 600
    signature = UrlSigner.for_seed(0, "storage").sign("GET", key, expires)
    return signed_url(
        mock.url(PAHLAVAN, "/api/v1/storage/object"), key=key, expires=expires, signature=signature
    )


def test_a_default_mock_refuses_urls_and_secrets_derived_from_the_seed(start_mock: Any) -> None:
    mock = start_mock(signing_secret=None)  # what `python -m mockserver` runs with
    key = stored_object(mock.base_url)
    forged = mock.http.get(seed_forged_url(mock, key), timeout=10)
    assert forged.status_code == 403, forged.text
    assert error_code(forged) == "INVALID_SIGNATURE"
    # Its own signed URLs still work, and its webhook secrets are not the seed's either.
    assert mock.http.get(mock.base_url + signed_download(mock.base_url, key), timeout=10).content == PNG
    primary = mock.webhook_secret(ARTIFICIAL)
    assert primary.startswith("whsec_")
    assert primary != seed_webhook_secret(0, ARTIFICIAL, "as_test_mockkey_0001")


def test_seed_mode_keeps_the_test_servers_reproducible(start_mock: Any) -> None:
    mock = start_mock()  # the test servers: signing_secret="seed"
    key = stored_object(mock.base_url)
    assert mock.http.get(seed_forged_url(mock, key), timeout=10).content == PNG
    assert mock.webhook_secret(ARTIFICIAL) == seed_webhook_secret(0, ARTIFICIAL, "as_test_mockkey_0001")


def test_signing_secret_makes_signatures_stable_across_restarts(mock_cli: Any) -> None:
    with mock_cli("--signing-secret", "s3cret-for-this-team") as origin:
        secrets = requests.get(f"{origin}/_mock/webhooks/secrets", timeout=10).json()
        path = signed_download(origin, stored_object(origin))
    with mock_cli("--signing-secret", "s3cret-for-this-team") as origin:
        assert requests.get(f"{origin}/_mock/webhooks/secrets", timeout=10).json() == secrets
        # The signature still holds; only the object is gone (state lives in memory).
        after_restart = requests.get(origin + path, timeout=10)
        assert after_restart.status_code == 404, after_restart.text
        assert error_code(after_restart) == "NOT_FOUND"
    with mock_cli() as origin:
        assert requests.get(f"{origin}/_mock/webhooks/secrets", timeout=10).json() != secrets
        assert error_code(requests.get(origin + path, timeout=10)) == "INVALID_SIGNATURE"


def test_seed_mode_is_refused_off_loopback_with_one_line_and_exit_2() -> None:
    base = [sys.executable, "-m", "mockserver", "--host", "192.0.2.1", "--port", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKSERVER_")}
    # Refused before anything is bound (192.0.2.1, a documentation address, could not be bound anyway),
    # from the flag and from the environment alike.
    for command, extra in (
        ([*base, "--signing-secret", "seed"], {}),
        (base, {"MOCKSERVER_SIGNING_SECRET": "seed"}),
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, env={**env, **extra})
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines() == [
            "mockserver: --signing-secret seed derives secrets from the public seed: "
            "only for a loopback --host, not '192.0.2.1'"
        ]
