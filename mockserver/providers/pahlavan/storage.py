"""Pahlavan's R2-style storage: presign, PUT through a signed URL, commit, then signed temporary retrieval.

Keys are laid out ``user/<account id>/<path>/YYYY/MM/DD/<id>-<filename>`` (``<path>`` omitted when absent;
the date is the mock clock's, in UTC; ``<id>`` is short hex). An object is pending after its upload and
becomes visible (signable, downloadable) only once committed. Upload and retrieval URLs are served by
this mock and authorized by an HMAC signature in their query string, not by the API key:

* upload:    ``HMAC("PUT\\n<key>\\n<expires>\\n<content_type>\\n<bytes>")``, 15 minutes of mock time;
* retrieval: ``HMAC("GET\\n<key>\\n<expires>")``, ``expires_in`` seconds (spec default 3600).

Objects are ``StoredObject`` resources of the state (kind ``storage_objects``), their bytes a file of the
file store that ``/_mock/files`` does not serve (``public=False``), so a state reset drops both. Neither keys
nor signatures are ever logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from mockserver.core.calls import BytesReply, Call, Handler, JsonReply, Reply, Services
from mockserver.core.signing import UrlSigner, signed_url
from mockserver.errors import ApiError, ErrorKind
from mockserver.state.records import JsonRecord

TABLE = "storage_objects"
UPLOAD_TTL_SECONDS = 15 * 60
"""How long a presigned upload URL stays valid (mock time)."""
DEFAULT_URL_TTL_SECONDS = 3600
"""Retrieval URL lifetime when the request gives none (the spec's ``expires_in`` default)."""
UPLOAD_ROUTE = "/api/v1/storage/upload"
DOWNLOAD_ROUTE = "/api/v1/storage/object"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}( *;.*)?", re.DOTALL)
"""type/subtype, optional parameters: the same rule as PresignRequest.content_type's pattern in the spec."""


@dataclass(slots=True)
class StoredObject(JsonRecord):
    """One presigned object: its declared shape, its bytes once uploaded, and whether it is committed."""

    kind: ClassVar[str] = TABLE
    id: str
    """The storage key."""
    account: str
    content_type: str
    declared_bytes: int
    blob: str | None = None
    """The file (not served under ``/_mock/files``) holding the uploaded bytes, once uploaded."""
    size: int = 0
    """Bytes uploaded."""
    committed: bool = False

    @property
    def key(self) -> str:
        """The storage key."""
        return self.id


# -- errors in Pahlavan's vocabulary (explicit codes, whatever the envelope's default mapping) ----------


def _bad(message: str, field: str, location: str = "body") -> ApiError:
    return ApiError(
        400,
        ErrorKind.INVALID_REQUEST,
        message,
        code="INVALID_REQUEST",
        details={"field": field, "location": location},
    )


def _forbidden(message: str, code: str = "FORBIDDEN") -> ApiError:
    return ApiError(403, ErrorKind.FORBIDDEN, message, code=code)


def _not_found(message: str) -> ApiError:
    return ApiError(404, ErrorKind.NOT_FOUND, message, code="NOT_FOUND")


# -- input the schema cannot fully check ------------------------------------------------------------


def check_filename(value: str, field: str) -> None:
    """A single safe name: no separators, no control characters, not ``.``/``..`` (400 naming ``field``)."""
    if not value or value in (".", ".."):
        raise _bad(f"Invalid field '{field}': must be a file name, not empty, '.' or '..'.", field)
    if "/" in value or "\\" in value:
        raise _bad(f"Invalid field '{field}': a file name may not contain '/' or '\\'.", field)
    if _CONTROL.search(value):
        raise _bad(f"Invalid field '{field}': control characters are not allowed.", field)


def check_path(value: str, field: str) -> None:
    """A relative folder inside the caller's storage; path traversal and odd segments are 400s."""
    if value.startswith("/"):
        raise _bad(f"Invalid field '{field}': absolute paths are not allowed.", field)
    if "\\" in value:
        raise _bad(f"Invalid field '{field}': backslashes are not allowed.", field)
    if _CONTROL.search(value):
        raise _bad(f"Invalid field '{field}': control characters are not allowed.", field)
    for segment in value.split("/"):
        if not segment:
            raise _bad(f"Invalid field '{field}': empty path segments are not allowed.", field)
        if segment in (".", ".."):
            raise _bad(f"Invalid field '{field}': '.' and '..' segments are not allowed.", field)


def check_media_type(value: str, field: str) -> None:
    """A ``type/subtype[; params]`` MIME type; it is signed and echoed as a header, so no control chars."""
    if _CONTROL.search(value) or not _MEDIA_TYPE.fullmatch(value):
        raise _bad(f"Invalid field '{field}': expected a MIME type such as 'image/png'.", field)


# -- helpers ---------------------------------------------------------------------------------------------


def _signer(services: Services) -> UrlSigner:
    return services.signing.url_signer("storage")


def _timestamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _account(call: Call) -> str:
    assert call.key is not None  # storage operations other than the signed URLs require a key
    return call.key.account


def _new_key(services: Services, account: str, path: str | None, filename: str) -> str:
    day = datetime.fromtimestamp(services.clock.now(), UTC).strftime("%Y/%m/%d")
    folder = f"{path}/" if path else ""
    object_id = services.ids.new("", 12)
    return f"user/{account}/{folder}{day}/{object_id}-{filename}"


def _download_url(services: Services, base_url: str, key: str, expires_in: int) -> tuple[str, int]:
    expires = int(services.clock.now()) + expires_in
    signature = _signer(services).sign("GET", key, expires)
    url = signed_url(base_url + DOWNLOAD_ROUTE, key=key, expires=expires, signature=signature)
    return url, expires


async def _owned(call: Call, key: str) -> StoredObject:
    """The caller's object under ``key``: 403 when the key is in another account's space, else 404."""
    account = _account(call)
    own = {f"user/{account}/"}
    if call.key is not None and call.key.organization:
        own.add(f"org/{call.key.organization}/")
    obj = await call.state.get(StoredObject, key)
    # A key in someone else's namespace is 403 whether or not it exists, so keys cannot be probed.
    namespaced = key.startswith(("user/", "org/"))
    if (obj is not None and obj.account != account) or (namespaced and not key.startswith(tuple(own))):
        raise _forbidden("The storage key belongs to another account.")
    if obj is None:
        raise _not_found("No such storage object.")
    return obj


def _check_signature(call: Call, *fields: str | int) -> None:
    query = call.input.query
    if not _signer(call.services).verify(str(query["signature"]), *fields):
        raise _forbidden("The URL signature does not match.", "INVALID_SIGNATURE")
    if call.now() > int(query["expires"]):
        raise _forbidden("The signed URL has expired.", "SIGNATURE_EXPIRED")


# -- handlers --------------------------------------------------------------------------------------------


async def presign_upload(call: Call) -> Reply:
    """Reserve a key in the caller's storage and hand out a signed PUT URL bound to type and size."""
    body = call.body
    filename, content_type, size = str(body["filename"]), str(body["content_type"]), int(body["bytes"])
    path = body.get("path")
    check_filename(filename, "filename")
    check_media_type(content_type, "content_type")
    if path is not None:
        check_path(str(path), "path")
    key = _new_key(call.services, _account(call), str(path) if path is not None else None, filename)
    expires = int(call.now()) + UPLOAD_TTL_SECONDS
    signature = _signer(call.services).sign("PUT", key, expires, content_type, size)
    await call.state.put(StoredObject(key, _account(call), content_type, size))
    upload_url = signed_url(call.base_url + UPLOAD_ROUTE, key=key, expires=expires, signature=signature)
    return JsonReply(
        {
            "key": key,
            "upload_url": upload_url,
            "method": "PUT",
            "headers": {"Content-Type": content_type},
            "expires_at": _timestamp(expires),
            "max_bytes": size,
        }
    )


async def upload_object(call: Call) -> Reply:
    """Store the bytes of a presigned upload as pending; they must match the declared type and size."""
    key = str(call.input.query["key"])
    obj = await call.state.get(StoredObject, key)
    if obj is None:
        raise _not_found("No upload was presigned for this key.")
    _check_signature(call, "PUT", key, int(call.input.query["expires"]), obj.content_type, obj.declared_bytes)
    if obj.committed:
        raise _bad("The object is already committed; presign a new upload to replace it.", "key", "query")
    sent_type = call.request.headers.get("Content-Type", "").strip()
    if sent_type.lower() != obj.content_type.lower():
        raise _bad(
            f"Invalid header 'Content-Type': the upload was presigned for '{obj.content_type}'.",
            "Content-Type",
            "header",
        )
    data = call.input.raw_body
    if len(data) > obj.declared_bytes:
        raise ApiError(
            413,
            ErrorKind.PAYLOAD_TOO_LARGE,
            f"The upload is {len(data)} bytes; {obj.declared_bytes} were declared at presign.",
            code="PAYLOAD_TOO_LARGE",
        )
    if len(data) < obj.declared_bytes:
        raise _bad(f"The upload is {len(data)} bytes; {obj.declared_bytes} were declared at presign.", "body")
    # A repeated upload before commit replaces the bytes (a new file; the old one ages out).
    blob = await call.services.files.put(data, obj.content_type, "object", public=False)
    obj.blob, obj.size = blob.id, len(data)
    await call.state.put(obj)
    return JsonReply({"key": key, "bytes": len(data), "status": "uploaded"})


async def commit_upload(call: Call) -> Reply:
    """Make an uploaded object visible."""
    obj = await _owned(call, str(call.body["key"]))
    if obj.blob is None:
        raise _not_found("Nothing was uploaded for this key yet.")
    obj.committed = True
    await call.state.put(obj)
    return JsonReply(
        {"key": obj.key, "status": "committed", "bytes": obj.size, "content_type": obj.content_type}
    )


async def sign_url(call: Call) -> Reply:
    """A temporary retrieval URL for a committed object of the caller's account."""
    obj = await _owned(call, str(call.body["key"]))
    if not obj.committed:
        raise _not_found("No committed storage object under this key.")
    defaults = call.operation.body.defaults if call.operation.body is not None else {}
    expires_in = int(call.body.get("expires_in", defaults.get("expires_in", DEFAULT_URL_TTL_SECONDS)))
    url, expires = _download_url(call.services, call.base_url, obj.key, expires_in)
    return JsonReply({"key": obj.key, "url": url, "expires_at": _timestamp(expires)})


async def download_object(call: Call) -> Reply:
    """The committed bytes behind a valid, unexpired retrieval signature, with their content type."""
    key = str(call.input.query["key"])
    # The signature is checked first: without it nobody learns whether a key exists.
    _check_signature(call, "GET", key, int(call.input.query["expires"]))
    obj = await call.state.get(StoredObject, key)
    opened = await call.services.files.open(obj.blob) if obj is not None and obj.blob else None
    if obj is None or not obj.committed or opened is None:
        raise _not_found("No committed storage object under this key.")
    # aiohttp refuses parameters (charset) in ``content_type``; the full value goes in as a header.
    base_type = obj.content_type.split(";", 1)[0].strip()
    return BytesReply(opened[1], base_type, headers={"Content-Type": obj.content_type})


def storage_handlers() -> dict[str, Handler]:
    """Behaviour of the storage operations, by operationId."""
    return {
        "presignUpload": presign_upload,
        "uploadObject": upload_object,
        "commitUpload": commit_upload,
        "signUrl": sign_url,
        "downloadObject": download_object,
    }


async def save_to_storage(
    services: Services,
    provider: str,
    account: str,
    base_url: str,
    data: bytes,
    content_type: str,
    filename: str,
    storage_path: str | None,
) -> str:
    """Store and commit ``data`` for ``account``; a signed download URL for it under ``base_url``."""
    check_filename(filename, "filename")
    check_media_type(content_type, "content_type")
    if storage_path is not None:
        check_path(storage_path, "settings.storagePath")
    key = _new_key(services, account, storage_path, filename)
    blob = await services.files.put(data, content_type, "object", public=False)
    stored = StoredObject(key, account, content_type, len(data), blob.id, len(data), committed=True)
    await services.state.put(provider, stored)
    url, _ = _download_url(services, base_url, key, DEFAULT_URL_TTL_SECONDS)
    return url
