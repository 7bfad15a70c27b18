"""Bounded resource tables: what requests create is kept for a time on the mock clock, and only so many.

Every table of created resources (jobs, generations, storage objects, generated files) is a
``ResourceTable``: entries in insertion order, each stamped with the mock's time when it was stored. An
entry older than the TTL reads as missing (the provider's ordinary 404), and inserting drops, oldest first,
what is past the TTL or over the cap. No request scans a table: a lookup checks one entry, an insert drops
at most the entries it makes due (each entry is dropped once), so the work is amortized O(1).
"""

from __future__ import annotations

import math
import sys
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from mockserver.core.clock import Clock

FILES_PER_RESOURCE = 2
"""Generated files kept per resource the cap allows (an output and its thumbnail): the files' table, one for
every provider, holds ``FILES_PER_RESOURCE * max_resources * providers``."""
DELIVERIES_KEPT = 1000
"""Finished webhook deliveries kept in the delivery log (pending ones are always kept)."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Retention:
    """How long (mock-clock seconds) and how many resources of one kind are kept."""

    clock: Clock
    ttl: float
    cap: int

    @classmethod
    def unlimited(cls) -> Retention:
        """Keep everything, for ever (state built outside a running mock, e.g. in tests)."""
        return cls(Clock(), math.inf, sys.maxsize)


class ResourceTable(Generic[K, V]):
    """Resources of one kind by id, oldest first; past the TTL or the cap they are gone."""

    __slots__ = ("_entries", "_retention")

    def __init__(self, retention: Retention) -> None:
        self._retention = retention
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __setitem__(self, key: K, value: V) -> None:
        now = self._retention.clock.now()
        entries = self._entries
        entries[key] = (now, value)
        entries.move_to_end(key)  # a replaced entry starts its time again, as the newest
        self._drop_due(now)

    def get(self, key: K, default: V | None = None) -> V | None:
        """The live resource under ``key``, else ``default`` (an expired one is dropped on the way)."""
        entry = self._entries.get(key)
        if entry is None:
            return default
        if entry[0] + self._retention.ttl <= self._retention.clock.now():
            del self._entries[key]
            return default
        return entry[1]

    def __getitem__(self, key: K) -> V:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._entries and self.get(key) is not None  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._entries)

    def values(self) -> Iterator[V]:
        """Every stored resource, oldest first (those past their TTL but not yet dropped included)."""
        return (value for _, value in self._entries.values())

    def live(self) -> list[V]:
        """Every resource within its TTL, oldest first."""
        expired_before = self._retention.clock.now() - self._retention.ttl
        return [value for stored, value in self._entries.values() if stored > expired_before]

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()

    def _drop_due(self, now: float) -> None:
        entries, retention = self._entries, self._retention
        expired_before = now - retention.ttl
        while entries:
            oldest = next(iter(entries.values()))
            if len(entries) <= retention.cap and oldest[0] > expired_before:
                return
            entries.popitem(last=False)
