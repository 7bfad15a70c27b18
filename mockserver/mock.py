"""The running mock's state and machinery, built once from settings, specs and fixtures."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from aiohttp import web
from prometheus_client.registry import CollectorRegistry

from mockserver.core import media, metrics
from mockserver.core.calls import IdFactory, LoadedProvider, Services
from mockserver.core.clock import Clock
from mockserver.core.egress import EgressPolicy
from mockserver.core.faults import Faults
from mockserver.core.feed import Feed
from mockserver.core.health import HealthCheck
from mockserver.core.jobs import JobEngine, Timing
from mockserver.core.journal import Journal
from mockserver.core.media import FileStore
from mockserver.core.pipeline import ProviderService
from mockserver.core.ratelimit import RateLimiter
from mockserver.core.replay import Replay
from mockserver.core.retention import Retention
from mockserver.core.signing import SigningKeys
from mockserver.core.spec import load_spec
from mockserver.core.store import Store, read_seed_files
from mockserver.core.textgen import TextGenerator, sentences
from mockserver.core.webhooks import WebhookDispatcher, compile_webhooks
from mockserver.providers import load_module
from mockserver.resources import fixtures_dir, spec_path
from mockserver.settings import Settings


@dataclass(slots=True)
class Mock:
    """Everything a running mock holds; the control API and the pytest plugin work through it."""

    settings: Settings
    services: Services
    limiter: RateLimiter
    journal: Journal
    faults: Faults
    providers: dict[str, ProviderService]
    metrics: CollectorRegistry
    """This mock's own Prometheus registry (``GET /_mock/metrics``)."""
    feed: Feed
    """The live feed of requests for the dashboard (``GET /_mock/events``); idle until someone listens."""
    replay: Replay | None = None
    """``--replay DIR``: the recorded exchanges answering requests (``GET /_mock/replay``)."""

    def health_checks(self) -> dict[str, HealthCheck]:
        """What the mock depends on, by name (``GET /_mock/health``)."""
        return {"state": self.services.store}

    def reset(self) -> None:
        """Restore the seed state: store, clock, counters, journal, faults and files.

        Pending webhook deliveries keep running (their remaining wait is kept across the clock's jump);
        finished ones leave the delivery log.
        """
        self.services.store.reset()
        before = self.services.clock.now()
        self.services.clock.reset()
        self.services.webhooks.reset(clock_shift=self.services.clock.now() - before)
        self.services.files.reset()
        self.services.ids.reset()
        self.limiter.reset()
        self.journal.clear()
        self.feed.clear()
        self.faults.clear()
        self.services.jobs.reset()
        if self.replay is not None:
            self.replay.reset()

    async def start(self) -> None:
        """Start background machinery (the job loop, the webhook client); called from the app's startup."""
        self.services.jobs.start()
        await self.services.webhooks.start()
        # Heavy imports the first chat or video would otherwise pay for, done off the event loop after
        # the server already answers (they are not needed to start).
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, _warm_up)

    async def stop(self) -> None:
        """Stop background machinery cleanly; called on shutdown."""
        await self.services.jobs.stop()
        await self.services.webhooks.stop()


def _warm_up() -> None:
    sentences()
    media.preload()


MOCK = web.AppKey("mock", Mock)
FILES_PER_RESOURCE = 2
"""Generated files kept per resource the cap allows (an output and its thumbnail)."""


def build_mock(settings: Settings) -> Mock:
    """Load every served provider's spec, module and seed (once), ready to serve."""
    provider_ids = settings.served_providers()
    seeds = read_seed_files(settings.fixtures or fixtures_dir(), provider_ids, fallback=fixtures_dir())
    clock = Clock()
    retention = Retention(clock, settings.resource_ttl, settings.max_resources)
    text = TextGenerator(settings.seed)
    limiter, faults = RateLimiter(clock), Faults()
    journal = Journal(settings.journal_max_entries, settings.journal_max_bytes)

    def webhook_violation(provider: str, event: str, problem: str) -> None:
        if settings.response_validation != "off":
            # A webhook has no response status; 0 marks the entry as an outgoing payload.
            journal.violation(provider, event, 0, problem)

    signing = SigningKeys.from_settings(settings)
    egress = EgressPolicy(settings.host, settings.port, settings.webhook_hosts)
    services = Services(
        settings=settings,
        clock=clock,
        store=Store(seeds, retention),
        text=text,
        ids=IdFactory(text),
        jobs=JobEngine(clock, Timing().scaled(settings.job_speed), retention),
        # Files are one store for every provider, and a generation may have two (output and thumbnail).
        files=FileStore(replace(retention, cap=FILES_PER_RESOURCE * retention.cap * len(provider_ids))),
        webhooks=WebhookDispatcher(clock, settings.seed, signing, egress, on_violation=webhook_violation),
        signing=signing,
    )
    # A malformed recording is a FixtureError naming its file (the CLI's exit 2), before anything serves.
    replay = (
        Replay.load(settings.replay, settings.replay_speed, settings.replay_strict)
        if settings.replay
        else None
    )
    providers: dict[str, ProviderService] = {}
    for provider_id in provider_ids:
        loaded = LoadedProvider(module=load_module(provider_id), spec=load_spec(spec_path(provider_id)))
        services.webhooks.register(provider_id, compile_webhooks(loaded.spec))
        mount = "" if settings.provider else f"/{provider_id}"
        attached = replay.attach(provider_id, loaded.spec) if replay is not None else None
        providers[provider_id] = ProviderService(loaded, services, limiter, journal, faults, mount, attached)
    registry = metrics.registry(journal, services.webhooks, services.store)
    feed = Feed(journal, lambda: [key for state in services.store.providers.values() for key in state.keys])
    return Mock(settings, services, limiter, journal, faults, providers, registry, feed, replay)
