"""Pahlavan storage over real HTTP: presign -> PUT to the signed URL -> commit -> sign-url -> GET."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests

from mockserver.core.signing import UrlSigner, signed_url

PROVIDER = "pahlavan"
ACCOUNT = "user_123"
BINARY = bytes(range(256)) * 3 + b"\x00\x00\x00\xff\x00"
"""Every byte value, runs of zero bytes, and a size that is not a round number."""


@pytest.fixture(scope="session")
def pahlavan_server(server_pool: Callable[..., Any]) -> Any:
    """A shared Pahlavan-only server (strict response validation, seed 0)."""
    return server_pool(providers=(PROVIDER,))


@pytest.fixture
def mock(pahlavan_server: Any, attach_mock: Callable[[Any], Any]) -> Any:
    """A reset handle on the Pahlavan server, checked for spec violations after the test."""
    return attach_mock(pahlavan_server)


# -- helpers ---------------------------------------------------------------------------------------------


def presign_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "filename": "result.png",
        "content_type": "image/png",
        "bytes": len(BINARY),
        "path": "website-a/assets",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def presign(mock: Any, key: str | None = None, **changes: Any) -> dict[str, Any]:
    response = mock.post(PROVIDER, "/api/v1/storage/presign", json=presign_body(**changes), **auth(key))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def auth(key: str | None) -> dict[str, Any]:
    """Request options: the provider's own key unless another is given."""
    return {} if key is None else {"auth": False, "headers": bearer(key)}


def put(mock: Any, url: str, data: bytes, content_type: str | None) -> requests.Response:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    response: requests.Response = mock.http.put(url, data=data, headers=headers, timeout=10)
    return response


def commit(mock: Any, storage_key: str, key: str | None = None) -> requests.Response:
    response: requests.Response = mock.post(
        PROVIDER, "/api/v1/storage/commit", json={"key": storage_key}, **auth(key)
    )
    return response


def sign(mock: Any, storage_key: str, key: str | None = None, **extra: Any) -> requests.Response:
    response: requests.Response = mock.post(
        PROVIDER, "/api/v1/storage/sign-url", json={"key": storage_key, **extra}, **auth(key)
    )
    return response


def stored(mock: Any, data: bytes = BINARY, content_type: str = "image/png", **changes: Any) -> str:
    """Presign, upload and commit an object; its key."""
    presigned = presign(mock, content_type=content_type, bytes=len(data), **changes)
    assert put(mock, presigned["upload_url"], data, content_type).status_code == 200
    assert commit(mock, presigned["key"]).status_code == 200
    return str(presigned["key"])


def download_url(mock: Any, storage_key: str, **extra: Any) -> str:
    response = sign(mock, storage_key, **extra)
    assert response.status_code == 200, response.text
    return str(response.json()["url"])


def with_query(url: str, **changes: str) -> str:
    """``url`` with some query parameters replaced."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def tamper(signature: str) -> str:
    return signature[:-1] + ("0" if signature[-1] != "0" else "1")


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def assert_error(response: requests.Response, status: int, code: str, names: str | None = None) -> None:
    """Pahlavan's documented envelope with the expected code (and a message naming the field)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "details"}
    assert isinstance(body["error"], str)
    assert body["error"]
    assert body["details"]["code"] == code
    if names is not None:
        assert names in body["error"], body["error"]


def utc_day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y/%m/%d")


# -- the round trip --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (BINARY, "application/octet-stream"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "image/png"),
        ("héllo, wörld\n".encode(), "text/plain; charset=utf-8"),
        (b"\x00", "application/x-custom"),
    ],
)
def test_round_trip_returns_the_same_bytes_and_type(mock: Any, data: bytes, content_type: str) -> None:
    presigned = presign(mock, content_type=content_type, bytes=len(data))
    assert presigned["method"] == "PUT"
    assert presigned["headers"] == {"Content-Type": content_type}
    assert presigned["max_bytes"] == len(data)

    uploaded = put(mock, presigned["upload_url"], data, presigned["headers"]["Content-Type"])
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json() == {"key": presigned["key"], "bytes": len(data), "status": "uploaded"}

    committed = commit(mock, presigned["key"])
    assert committed.status_code == 200, committed.text
    assert committed.json() == {
        "key": presigned["key"],
        "status": "committed",
        "bytes": len(data),
        "content_type": content_type,
    }

    signed = sign(mock, presigned["key"])
    assert signed.status_code == 200, signed.text
    assert signed.json()["key"] == presigned["key"]
    url = signed.json()["url"]
    assert url.startswith(mock.url(PROVIDER, "/api/v1/storage/object?"))

    downloaded = mock.http.get(url, timeout=10)
    assert downloaded.status_code == 200
    assert downloaded.content == data
    assert downloaded.headers["Content-Type"] == content_type


def test_presign_documents_key_layout_and_signed_upload_url(mock: Any) -> None:
    now = mock.now()
    presigned = presign(mock)
    key = presigned["key"]
    day = utc_day(now)
    assert re.fullmatch(rf"user/{ACCOUNT}/website-a/assets/{day}/[0-9a-f]+-result\.png", key), key
    url = presigned["upload_url"]
    assert url.startswith(mock.url(PROVIDER, "/api/v1/storage/upload?"))
    query = query_of(url)
    assert query["key"] == key
    assert re.fullmatch(r"[0-9a-f]{64}", query["signature"])
    # Upload URLs live 15 minutes of mock time; expires_at says the same instant as the query.
    assert abs(int(query["expires"]) - (now + 15 * 60)) <= 5
    expires_at = datetime.strptime(presigned["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert int(expires_at.timestamp()) == int(query["expires"])


def test_key_without_path_and_date_from_the_mock_clock(mock: Any) -> None:
    first = presign(mock, path=None)["key"]
    assert re.fullmatch(rf"user/{ACCOUNT}/{utc_day(mock.now())}/[0-9a-f]+-result\.png", first), first
    later = mock.advance(3 * 86400)
    second = presign(mock, path="deep/er/folder", filename="a b.txt")["key"]
    assert re.fullmatch(rf"user/{ACCOUNT}/deep/er/folder/{utc_day(later)}/[0-9a-f]+-a b\.txt", second)
    assert first != second


def test_unicode_file_name_round_trips(mock: Any) -> None:
    key = stored(mock, filename="résumé ✓.png")
    assert key.endswith("-résumé ✓.png")
    assert mock.http.get(download_url(mock, key), timeout=10).content == BINARY


def test_presign_needs_an_api_key(mock: Any) -> None:
    response = mock.post(PROVIDER, "/api/v1/storage/presign", json=presign_body(), auth=False)
    assert_error(response, 401, "UNAUTHORIZED")


# -- uploads ---------------------------------------------------------------------------------------------


def test_upload_with_tampered_signature_is_refused(mock: Any) -> None:
    presigned = presign(mock)
    url = presigned["upload_url"]
    bad = with_query(url, signature=tamper(query_of(url)["signature"]))
    assert_error(put(mock, bad, BINARY, "image/png"), 403, "INVALID_SIGNATURE")
    # A later expiry is not signed either.
    longer = with_query(url, expires=str(int(query_of(url)["expires"]) + 3600))
    assert_error(put(mock, longer, BINARY, "image/png"), 403, "INVALID_SIGNATURE")
    assert commit(mock, presigned["key"]).status_code == 404


def test_upload_after_expiry_is_refused(mock: Any) -> None:
    presigned = presign(mock)
    mock.advance(15 * 60 + 5)
    assert_error(put(mock, presigned["upload_url"], BINARY, "image/png"), 403, "SIGNATURE_EXPIRED")


@pytest.mark.parametrize("content_type", ["image/jpeg", "application/octet-stream", None])
def test_upload_must_carry_the_declared_content_type(mock: Any, content_type: str | None) -> None:
    presigned = presign(mock)
    assert_error(
        put(mock, presigned["upload_url"], BINARY, content_type), 400, "INVALID_REQUEST", "Content-Type"
    )


def test_upload_larger_than_declared_is_413(mock: Any) -> None:
    presigned = presign(mock)
    assert_error(put(mock, presigned["upload_url"], BINARY + b"\x00", "image/png"), 413, "PAYLOAD_TOO_LARGE")


def test_upload_smaller_than_declared_is_400(mock: Any) -> None:
    presigned = presign(mock)
    assert_error(put(mock, presigned["upload_url"], BINARY[:-1], "image/png"), 400, "INVALID_REQUEST")


def test_upload_to_a_key_never_presigned_is_404(mock: Any) -> None:
    presigned = presign(mock)
    other = presigned["key"].rsplit("/", 1)[0] + "/000000000000-other.png"
    assert_error(
        put(mock, with_query(presigned["upload_url"], key=other), BINARY, "image/png"), 404, "NOT_FOUND"
    )


def test_reupload_before_commit_replaces_the_bytes(mock: Any) -> None:
    presigned = presign(mock)
    replacement = bytes(reversed(BINARY))
    assert put(mock, presigned["upload_url"], BINARY, "image/png").status_code == 200
    assert put(mock, presigned["upload_url"], replacement, "image/png").status_code == 200
    assert commit(mock, presigned["key"]).status_code == 200
    assert mock.http.get(download_url(mock, presigned["key"]), timeout=10).content == replacement
    # Once committed the object is final.
    assert_error(put(mock, presigned["upload_url"], BINARY, "image/png"), 400, "INVALID_REQUEST")


# -- commit and sign-url ----------------------------------------------------------------------------------


def test_commit_of_unknown_key_is_404(mock: Any) -> None:
    key = f"user/{ACCOUNT}/website-a/assets/2026/02/26/abc-result.png"
    assert_error(commit(mock, key), 404, "NOT_FOUND")
    assert_error(sign(mock, key), 404, "NOT_FOUND")


def test_commit_before_upload_is_404_and_pending_objects_are_invisible(mock: Any) -> None:
    presigned = presign(mock)
    assert_error(commit(mock, presigned["key"]), 404, "NOT_FOUND")
    assert put(mock, presigned["upload_url"], BINARY, "image/png").status_code == 200
    assert_error(sign(mock, presigned["key"]), 404, "NOT_FOUND")
    assert commit(mock, presigned["key"]).status_code == 200
    assert commit(mock, presigned["key"]).status_code == 200  # committing again is harmless
    assert sign(mock, presigned["key"]).status_code == 200


def test_another_accounts_key_cannot_commit_or_sign(mock: Any) -> None:
    created = mock.control("POST", "/keys", {"provider": PROVIDER, "account": "user_999", "name": "other"})
    other_key = created["key"]
    presigned = presign(mock)
    assert put(mock, presigned["upload_url"], BINARY, "image/png").status_code == 200
    assert_error(commit(mock, presigned["key"], other_key), 403, "FORBIDDEN")
    assert commit(mock, presigned["key"]).status_code == 200
    assert_error(sign(mock, presigned["key"], other_key), 403, "FORBIDDEN")
    # Keys in another account's space are 403 whether they exist or not: nothing can be probed.
    assert_error(commit(mock, presigned["key"] + "-missing", other_key), 403, "FORBIDDEN")
    # The other account stores under its own prefix.
    own = presign(mock, other_key)["key"]
    assert own.startswith("user/user_999/website-a/assets/")
    assert_error(commit(mock, own), 403, "FORBIDDEN")


def test_sign_url_expiry_default_and_custom(mock: Any) -> None:
    key = stored(mock)
    now = mock.now()
    default = sign(mock, key).json()
    assert abs(int(query_of(default["url"])["expires"]) - (now + 3600)) <= 5
    short = sign(mock, key, expires_in=60).json()
    expires = int(query_of(short["url"])["expires"])
    assert abs(expires - (now + 60)) <= 5
    assert short["expires_at"] == datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- downloads -------------------------------------------------------------------------------------------


def test_download_with_tampered_signature_is_refused(mock: Any) -> None:
    key = stored(mock)
    url = download_url(mock, key)
    query = query_of(url)
    assert_error(
        mock.http.get(with_query(url, signature=tamper(query["signature"]))), 403, "INVALID_SIGNATURE"
    )
    later = str(int(query["expires"]) + 86400)
    assert_error(mock.http.get(with_query(url, expires=later)), 403, "INVALID_SIGNATURE")
    # The signature is bound to the key: it opens no other object.
    other = stored(mock, filename="other.png")
    assert_error(mock.http.get(with_query(url, key=other)), 403, "INVALID_SIGNATURE")


def test_download_after_expiry_is_refused(mock: Any) -> None:
    url = download_url(mock, stored(mock), expires_in=60)
    assert mock.http.get(url, timeout=10).status_code == 200
    mock.advance(61)
    assert_error(mock.http.get(url, timeout=10), 403, "SIGNATURE_EXPIRED")


def test_download_of_uncommitted_or_unknown_objects_is_404(mock: Any) -> None:
    # A validly signed URL (seed 0's secret) for an object that was only uploaded, never committed.
    presigned = presign(mock)
    assert put(mock, presigned["upload_url"], BINARY, "image/png").status_code == 200
    expires = int(mock.now()) + 600
    signature = UrlSigner.for_seed(0, "storage").sign("GET", presigned["key"], expires)
    base = mock.url(PROVIDER, "/api/v1/storage/object")
    forged = signed_url(base, key=presigned["key"], expires=expires, signature=signature)
    assert_error(mock.http.get(forged, timeout=10), 404, "NOT_FOUND")
    # A reset forgets every object: the URL of a committed one stops resolving.
    url = download_url(mock, stored(mock))
    mock.reset()
    assert_error(mock.http.get(url, timeout=10), 404, "NOT_FOUND")


# -- unsafe names ----------------------------------------------------------------------------------------

UNSAFE_FILENAMES = [
    "..",
    ".",
    "../etc/passwd",
    "/abs.png",
    "a\x01b.png",
    "back\\slash.png",
    "nul\x00.png",
    "del\x7f",
]
UNSAFE_PATHS = [
    "..",
    "a/../b",
    "a/..",
    "/abs",
    "/",
    "a\x01b",
    "back\\slash",
    "a\\..\\b",
    "a//b",
    "a/",
    "./a",
    "tab\there",
]


@pytest.mark.parametrize("filename", UNSAFE_FILENAMES)
def test_unsafe_file_names_are_400(mock: Any, filename: str) -> None:
    response = mock.post(PROVIDER, "/api/v1/storage/presign", json=presign_body(filename=filename))
    assert_error(response, 400, "INVALID_REQUEST", "filename")


@pytest.mark.parametrize("path", UNSAFE_PATHS)
def test_unsafe_paths_are_400(mock: Any, path: str) -> None:
    response = mock.post(PROVIDER, "/api/v1/storage/presign", json=presign_body(path=path))
    assert_error(response, 400, "INVALID_REQUEST", "path")


@pytest.mark.parametrize("content_type", ["image/png\nX-Evil: 1", "png", "", "image/png\r"])
def test_unsafe_content_types_are_400(mock: Any, content_type: str) -> None:
    response = mock.post(PROVIDER, "/api/v1/storage/presign", json=presign_body(content_type=content_type))
    assert_error(response, 400, "INVALID_REQUEST", "content_type")


def stored_objects(mock: Any) -> int:
    """Storage objects the mock keeps (``/_mock/resources``' counts)."""
    listing = mock.http.get(f"{mock.base_url}/_mock/resources?provider={PROVIDER}", timeout=10)
    return int(listing.json()["counts"][PROVIDER].get("storage_objects", 0))


def test_nothing_unsafe_was_stored(mock: Any) -> None:
    for filename in UNSAFE_FILENAMES:
        mock.post(PROVIDER, "/api/v1/storage/presign", json=presign_body(filename=filename))
    assert stored_objects(mock) == 0


def test_journal_never_records_keys_or_signatures(mock: Any) -> None:
    key = stored(mock)
    url = download_url(mock, key)
    assert mock.http.get(url, timeout=10).status_code == 200
    journal = str(mock.journal(PROVIDER))
    assert query_of(url)["signature"] not in journal
    assert "signature" not in journal
    assert key not in journal


# -- saveToStorage (image generations) ---------------------------------------------------------------------


def generate_image(mock: Any, **settings: Any) -> requests.Response:
    body = {"model": "flux-schnell", "type": "image", "prompt": "a red kite", "settings": settings}
    response: requests.Response = mock.post(PROVIDER, "/api/v1/generations", json=body)
    return response


def test_save_to_storage_returns_signed_storage_urls(mock: Any) -> None:
    response = generate_image(mock, saveToStorage=True, storagePath="generated/images")
    assert response.status_code == 200, response.text
    [url] = response.json()["output_urls"]
    assert url.startswith(mock.url(PROVIDER, "/api/v1/storage/object?"))
    key = query_of(url)["key"]
    assert re.fullmatch(rf"user/{ACCOUNT}/generated/images/{utc_day(mock.now())}/[0-9a-f]+-[^/]+\.png", key)
    downloaded = mock.http.get(url, timeout=10)
    assert downloaded.status_code == 200
    assert downloaded.headers["Content-Type"] == "image/png"
    assert downloaded.content.startswith(b"\x89PNG\r\n\x1a\n")
    # The object is committed in the caller's storage: it can be signed again like any upload.
    again = download_url(mock, key)
    assert mock.http.get(again, timeout=10).content == downloaded.content
    mock.advance(3601)
    assert_error(mock.http.get(url, timeout=10), 403, "SIGNATURE_EXPIRED")


@pytest.mark.parametrize("path", ["../up", "/abs", "back\\slash", "a\x01b", "a//b"])
def test_save_to_storage_rejects_unsafe_paths(mock: Any, path: str) -> None:
    response = generate_image(mock, saveToStorage=True, storagePath=path)
    assert_error(response, 400, "INVALID_REQUEST", "storagePath")
    assert stored_objects(mock) == 0
