"""Where generated files go: the mock's file store, or the caller's storage when ``saveToStorage`` asks."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mockserver.core.calls import Call
from mockserver.core.media import Render, StoredFile
from mockserver.providers.pahlavan.storage import save_to_storage


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
    call: Call, data: bytes | Render, content_type: str, filename: str, settings: Mapping[str, Any]
) -> Output:
    """Keep a generated file where the request's ``settings`` say (``saveToStorage``/``storagePath``).

    ``data`` may be the render that makes the bytes: the mock's file store draws it on first download,
    storage needs the bytes now (rendered in a worker thread, off the event loop).
    """
    if settings.get("saveToStorage"):
        if not isinstance(data, bytes):
            data = await asyncio.to_thread(data)
        url = await save_to_storage(call, data, content_type, filename, settings.get("storagePath"))
        return Output(signed_url=url)
    return Output(stored=call.services.files.put(data, content_type, filename))
