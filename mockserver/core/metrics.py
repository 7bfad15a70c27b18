"""Prometheus metrics of one mock, computed when scraped from counters the mock keeps anyway.

The request path only adds to plain lists in the journal (``Journal.totals``: per process, as Prometheus
scrapes each replica); nothing here runs per request. Each mock gets its own ``CollectorRegistry``
(``registry``), so mocks sharing a process (tests) never share counts.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from mockserver.core.journal import LATENCY_BUCKETS_MS, Journal
from mockserver.core.webhooks import ATTEMPT_OUTCOMES, WebhookDispatcher
from mockserver.state.api import State

UNMATCHED = "unmatched"
"""The ``operation`` label of requests that matched no operation (404, 405)."""
_BOUNDS = [str(ms / 1000) for ms in LATENCY_BUCKETS_MS] + ["+Inf"]
"""The buckets' ``le`` labels, in seconds."""


class MockCollector(Collector):
    """Yields the mock's metric families from its journal, webhook dispatcher and state."""

    def __init__(self, journal: Journal, webhooks: WebhookDispatcher, state: State) -> None:
        self._journal = journal
        self._webhooks = webhooks
        self._state = state
        self.journal_size = (0, 0)
        """The state journal's (entries, bytes), read by the scrape handler before it collects (reading
        the state is a coroutine; collecting is not)."""

    async def refresh(self) -> None:
        """Read what the state knows (the journal's size) ahead of a scrape."""
        self.journal_size = await self._state.journal_size()

    def collect(self) -> Iterable[Metric]:
        """Every family, read now (the scrape runs on the event loop, like the counting)."""
        yield from self._requests()
        yield GaugeMetricFamily(
            "mockserver_open_streams", "Event streams (SSE) being written now.", self._journal.open_streams
        )
        attempts = CounterMetricFamily(
            "mockserver_webhook_attempts",
            "Webhook delivery attempts by outcome: delivered (2xx), rejected (another status), "
            "failed (no answer: connection refused, unreachable, timed out), refused (the webhook policy "
            "refused the target: no connection made).",
            labels=["outcome"],
        )
        counted = self._webhooks.attempt_outcomes
        for outcome in dict.fromkeys([*ATTEMPT_OUTCOMES, *counted]):
            attempts.add_metric([outcome], counted.get(outcome, 0))
        yield attempts
        yield CounterMetricFamily(
            "mockserver_state_errors", "Errors raised by the state backend.", self._state.errors
        )
        yield GaugeMetricFamily(
            "mockserver_journal_entries", "Entries in the request journal.", self.journal_size[0]
        )
        yield GaugeMetricFamily(
            "mockserver_journal_bytes",
            "Approximate size of the request journal's entries.",
            self.journal_size[1],
        )

    def _requests(self) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            "mockserver_requests",
            "Provider requests answered, by provider, operation and status.",
            labels=["provider", "operation", "status"],
        )
        latency = HistogramMetricFamily(
            "mockserver_request_duration_seconds",
            "Time to answer a provider request (streams: until their last event), by provider and operation.",
            labels=["provider", "operation"],
        )
        by_operation: dict[tuple[str, str], list[float]] = {}
        for (provider, operation_id, status), row in list(self._journal.totals.items()):
            operation = operation_id or UNMATCHED
            requests.add_metric([provider, operation, str(status)], sum(row[:-1]))
            merged = by_operation.setdefault((provider, operation), [0.0] * len(row))
            for index, value in enumerate(row):
                merged[index] += value
        for labels, row in by_operation.items():
            cumulative = itertools.accumulate(row[:-1])
            latency.add_metric(list(labels), list(zip(_BOUNDS, cumulative, strict=True)), row[-1] / 1000)
        yield requests
        yield latency


def registry(collector: MockCollector) -> CollectorRegistry:
    """A registry of its own for one mock, holding its collector."""
    found = CollectorRegistry(auto_describe=True)
    found.register(collector)
    return found
