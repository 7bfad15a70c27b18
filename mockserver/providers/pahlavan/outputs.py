"""Where generated files go: the mock's file store, or the caller's storage when ``saveToStorage`` asks.

The storage operations live in ``storage.py``, written separately; until it exists the mock still starts
(its operations answer 500) and ``saveToStorage`` is refused the same way.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mockserver.core.calls import Call, Handler, Reply
from mockserver.core.media import StoredFile
from mockserver.errors import ApiError, ErrorKind

STORAGE_MODULE = "mockserver.providers.pahlavan.storage"
STORAGE_OPERATIONS = ("presignUpload", "uploadObject", "commitUpload", "signUrl", "downloadObject")

SaveToStorage = Callable[[Call, bytes, str, str, str | None], Awaitable[str]]


def _storage_module() -> Any:
    # find_spec first: a missing module is expected, but an import error inside it must surface.
    if importlib.util.find_spec(STORAGE_MODULE) is None:
        return None
    return importlib.import_module(STORAGE_MODULE)


def _unavailable() -> ApiError:
    return ApiError(500, ErrorKind.INTERNAL, "Storage is not available in this build of the mock.")


async def _storage_missing(call: Call) -> Reply:
    raise _unavailable()


def storage_handlers() -> dict[str, Handler]:
    """The storage operations' handlers (stand-ins answering 500 while ``storage.py`` is missing)."""
    module = _storage_module()
    if module is None:
        return dict.fromkeys(STORAGE_OPERATIONS, _storage_missing)
    handlers: dict[str, Handler] = module.storage_handlers()
    return handlers


def storage_saver() -> SaveToStorage | None:
    """``storage.save_to_storage``, or None while the module is missing."""
    module = _storage_module()
    saver: SaveToStorage | None = None if module is None else module.save_to_storage
    return saver


@dataclass(frozen=True, slots=True)
class Output:
    """A delivered file: in the mock's file store (URL built per request) or a signed storage URL."""

    stored: StoredFile | None = None
    signed_url: str | None = None

    def url(self, call: Call) -> str:
        """The absolute URL a client downloads the file from, as ``call``'s client reached the mock."""
        if self.signed_url is not None:
            return self.signed_url
        assert self.stored is not None
        return call.services.files.url(call.origin, self.stored)


async def deliver(
    call: Call, data: bytes, content_type: str, filename: str, settings: Mapping[str, Any]
) -> Output:
    """Keep a generated file where the request's ``settings`` say (``saveToStorage``/``storagePath``)."""
    if settings.get("saveToStorage"):
        save = storage_saver()
        if save is None:
            raise _unavailable()
        return Output(signed_url=await save(call, data, content_type, filename, settings.get("storagePath")))
    return Output(stored=call.services.files.put(data, content_type, filename))
