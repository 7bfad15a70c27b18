"""HTTP parser limits: spec-valid long URLs and headers reach the pipeline (JSON envelope), not aiohttp's 400.

aiohttp refuses request lines and header fields over 8190 bytes with a plain-text 400 before any handler
runs; a Pahlavan storage key may be 1024 characters, about 12 KB once percent-encoded. ``create_app`` gives
every server the larger limits of ``mockserver.app.SERVER_HANDLER_ARGS``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from conformance.embedded import EmbeddedMock, mock_settings
from mockserver.app import MAX_LINE_BYTES

PAHLAVAN = "pahlavan"
LONG_KEY = "user/user_123/" + "\N{GRINNING FACE}" * 1000
"""1014 characters (the spec allows 1024), 12 bytes each once percent-encoded."""


def long_download_url(base_url: str) -> str:
    url = f"{base_url}/api/v1/storage/object?key={quote(LONG_KEY)}&expires=1&signature=ab"
    assert 12_000 < len(url) < MAX_LINE_BYTES
    return url


def assert_pahlavan_error(response: requests.Response, statuses: set[int]) -> None:
    assert response.status_code in statuses, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json"), response.text[:300]
    assert "code" in response.json()["details"]  # Pahlavan's envelope, written by the pipeline


def test_long_storage_key_reaches_the_pipeline(mock: Any) -> None:
    base_url = mock.provider(PAHLAVAN).base_url
    response = requests.get(long_download_url(base_url), timeout=10)
    # The signature is checked first: a made-up one is 403 (never aiohttp's text/plain 400).
    assert_pahlavan_error(response, {403, 404})


def test_long_header_reaches_the_pipeline(mock: Any) -> None:
    base_url = mock.provider(PAHLAVAN).base_url
    headers = {"Authorization": "Bearer sp_live_" + "x" * 12_000}
    response = requests.post(f"{base_url}/api/v1/storage/presign", json={}, headers=headers, timeout=10)
    assert_pahlavan_error(response, {401})


def test_beyond_the_limit_is_still_refused(mock: Any) -> None:
    base_url = mock.provider(PAHLAVAN).base_url
    too_long = "a" * (MAX_LINE_BYTES + 1024)
    response = requests.get(f"{base_url}/api/v1/storage/object?key={too_long}", timeout=10)
    assert response.status_code in {400, 414, 431}


def test_embedded_conformance_mock_has_the_same_limits() -> None:
    with EmbeddedMock(mock_settings(providers=(PAHLAVAN,))) as embedded:
        response = requests.get(long_download_url(f"{embedded.base_url}/{PAHLAVAN}"), timeout=10)
    assert_pahlavan_error(response, {403, 404})
