"""Where generated files go: the mock's file store, or the caller's storage when ``saveToStorage`` asks."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mockserver.core import media
from mockserver.core.calls import Call, Services
from mockserver.core.media import Recipe
from mockserver.providers.pahlavan.storage import save_to_storage
from mockserver.state.records import JsonRecord


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose output it is and how they reached the mock (kept in a job's data for its finisher)."""

    provider: str
    account: str
    base_url: str
    """The provider's base URL as the requesting client reached it (signed storage URLs start with it)."""

    @classmethod
    def of(cls, call: Call) -> Owner:
        """The owner of a request's outputs."""
        assert call.key is not None  # billed operations require a key
        return cls(call.state.provider_id, call.key.account, call.base_url)


@dataclass(frozen=True, slots=True)
class Output(JsonRecord):
    """A delivered file: in the mock's file store (URL built per request) or a signed storage URL."""

    file: tuple[str, str] | None = None
    """``(file id, filename)`` in the file store."""
    signed_url: str | None = None

    def url(self, origin: str) -> str:
        """The absolute URL a client downloads the file from, as it reached the mock at ``origin``."""
        if self.signed_url is not None:
            return self.signed_url
        assert self.file is not None
        return origin + media.files_path(*self.file)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Output:
        """The output from its stored form (JSON has lists, not tuples)."""
        file = data.get("file")
        return cls(file=(str(file[0]), str(file[1])) if file else None, signed_url=data.get("signed_url"))


async def deliver(
    services: Services,
    owner: Owner,
    data: bytes | Recipe,
    content_type: str,
    filename: str,
    settings: Mapping[str, Any],
) -> Output:
    """Keep a generated file where the request's ``settings`` say (``saveToStorage``/``storagePath``).

    ``data`` may be the recipe that draws the bytes: the mock's file store draws it on first download,
    storage needs the bytes now (drawn in a worker thread, off the event loop).
    """
    if settings.get("saveToStorage"):
        if not isinstance(data, bytes):
            data = await asyncio.to_thread(media.draw, data)
        url = await save_to_storage(
            services,
            owner.provider,
            owner.account,
            owner.base_url,
            data,
            content_type,
            filename,
            settings.get("storagePath"),
        )
        return Output(signed_url=url)
    if isinstance(data, bytes):
        record = await services.files.put(data, content_type, filename)
    else:
        record = await services.files.put_recipe(data, content_type, filename)
    return Output(file=(record.id, record.filename))
