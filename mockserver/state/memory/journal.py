"""The memory backend's request journal: the newest entries within an entry cap and a byte cap, read in
pages by an id cursor, and the spec violations the mock committed."""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any, Final

from mockserver.core.journal import ENTRY_BYTES, MAX_PATH_CHARS, TRUNCATED, VIOLATIONS
from mockserver.state.api import JournalRow

_PATH: Final = 3
"""A journal row's path (``JournalRow``: time, provider, method, path, operation, status, latency)."""


class JournalRing:
    """Journal rows as given, made into dicts only when read. Ids are consecutive, so a row's id is worked
    out from its place (``_last_id`` is the newest's) instead of being stored with it."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        # When the entry cap full of the longest entries fits the byte cap (the defaults), the byte cap
        # cannot bind and recording skips the accounting (about 3,000 CPU instructions a request, measured).
        self._count_bytes = max_entries * (ENTRY_BYTES + MAX_PATH_CHARS + len(TRUNCATED)) > max_bytes
        self._entries: deque[JournalRow] = deque(maxlen=max_entries)
        self._bytes = 0
        self._last_id = 0
        self.violations: deque[dict[str, Any]] = deque(maxlen=VIOLATIONS)

    def record(self, row: JournalRow) -> int:
        """Append one answered request (paths cut to ``MAX_PATH_CHARS``); its id."""
        if len(row[_PATH]) > MAX_PATH_CHARS:
            time_, provider, method, path, operation_id, status, latency_ms = row
            row = (
                time_,
                provider,
                method,
                path[:MAX_PATH_CHARS] + TRUNCATED,
                operation_id,
                status,
                latency_ms,
            )
        entries = self._entries
        if self._count_bytes:
            if len(entries) == self._max_entries:
                self._bytes -= ENTRY_BYTES + len(entries[0][_PATH])  # the entry the append drops
            self._bytes += ENTRY_BYTES + len(row[_PATH])
            entries.append(row)
            while entries and self._bytes > self._max_bytes:
                self._bytes -= ENTRY_BYTES + len(entries.popleft()[_PATH])
        else:
            entries.append(row)  # the deque drops the oldest past the entry cap itself
        self._last_id += 1
        return self._last_id

    def size(self) -> tuple[int, int]:
        """Entries kept and their approximate size: ``ENTRY_BYTES`` plus its path's length each."""
        entries = self._entries
        return len(entries), ENTRY_BYTES * len(entries) + sum(len(row[_PATH]) for row in entries)

    def page(
        self, provider: str | None, limit: int, *, after: int | None = None, before: int | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Up to ``limit`` entries, oldest first, and the next page's cursor (``State.journal_page``)."""
        entries = self._entries
        if not entries:
            return [], None
        first = self._last_id - len(entries) + 1
        stop = None
        if after is not None:
            start = max(0, after + 1 - first)
            walk: Any = zip(
                itertools.count(first + start), itertools.islice(entries, start, None), strict=False
            )
            stop = before
        else:
            skip = 0 if before is None else max(0, self._last_id + 1 - before)
            walk = zip(
                itertools.count(self._last_id - skip, -1),
                itertools.islice(reversed(entries), skip, None),
                strict=False,
            )
        selected: list[tuple[int, JournalRow]] = []
        more = False
        for entry_id, row in walk:
            if stop is not None and entry_id >= stop:
                break
            if provider is None or row[1] == provider:
                if len(selected) == limit:
                    more = True
                    break
                selected.append((entry_id, row))
        if after is None:
            selected.reverse()
        cursor = (selected[-1][0] if after is not None else selected[0][0]) if more else None
        return [_entry(entry_id, row) for entry_id, row in selected], cursor

    def clear(self) -> None:
        """Forget every entry and violation (ids go on counting)."""
        self._entries.clear()
        self._bytes = 0
        self.violations.clear()


def _entry(entry_id: int, row: JournalRow) -> dict[str, Any]:
    time_, provider, method, path, operation_id, status, latency_ms = row
    return {
        "id": entry_id,
        "time": time_,
        "provider": provider,
        "method": method,
        "path": path,
        "operation_id": operation_id,
        "status": status,
        "latency_ms": round(latency_ms, 3),
    }
