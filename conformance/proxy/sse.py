"""Server-sent events read incrementally from the bytes passing through, as the stream arrives."""

from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    """One event: its ``data`` (lines joined by newlines) and, when sent, its ``event`` and ``id``."""

    data: str
    event: str | None = None
    id: str | None = None


class EventReader:
    """Feed it chunks as they arrive; it returns the events each completes (a chunk may end mid-line)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by this chunk."""
        self._pending += self._decoder.decode(chunk)
        return self._lines(final=False)

    def close(self) -> list[Event]:
        """The event left open when the stream ended without a blank line (still an event for checking)."""
        self._pending += self._decoder.decode(b"", final=True)
        found = self._lines(final=True)
        if self._data:
            found.append(self._take())
        return found

    def _lines(self, *, final: bool) -> list[Event]:
        found: list[Event] = []
        text = self._pending.replace("\r\n", "\n")
        # A lone \r may be the first half of a \r\n still in flight: keep it unless the stream is over.
        if text.endswith("\r") and not final:
            text, tail = text[:-1], "\r"
        else:
            tail = ""
        lines = text.replace("\r", "\n").split("\n")
        self._pending = (lines.pop() if not final else "") + tail
        if final and lines and lines[-1] == "" and not text.endswith("\n"):
            lines.pop()
        for line in lines:
            if line == "":
                if self._data:
                    found.append(self._take())
                self._event = self._id = None
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    self._data.append(value)
                elif name == "event":
                    self._event = value
                elif name == "id":
                    self._id = value
        return found

    def _take(self) -> Event:
        event = Event("\n".join(self._data), self._event, self._id)
        self._data, self._event, self._id = [], None, None
        return event
