"""The running mock's state and machinery, built once from settings, specs and fixtures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client.registry import CollectorRegistry

from mockserver.core import media, metrics
from mockserver.core.calls import IdFactory, LoadedProvider, Services
from mockserver.core.clock import Clock
from mockserver.core.egress import EgressPolicy
from mockserver.core.feed import Feed
from mockserver.core.health import HealthCheck
from mockserver.core.jobs import JobEngine, Timing
from mockserver.core.journal import Journal, violation
from mockserver.core.media import FileStore
from mockserver.core.metrics import MockCollector
from mockserver.core.pipeline import ProviderService
from mockserver.core.replay import Replay
from mockserver.core.signing import SigningKeys
from mockserver.core.spec import load_spec
from mockserver.core.textgen import TextGenerator, sentences
from mockserver.core.webhooks import WebhookDispatcher, compile_webhooks
from mockserver.errors import StateError
from mockserver.providers import load_module
from mockserver.resources import fixtures_dir, spec_path
from mockserver.settings import Settings
from mockserver.state.api import State, Topic
from mockserver.state.factory import create_state
from mockserver.state.seed import read_seeds

log = logging.getLogger("mockserver")
NOTICE_POLL_SECONDS = 5.0
"""How long a watcher waits on a notice before re-reading anyway (a lost notice only delays)."""


@dataclass(slots=True)
class Mock:
    """Everything a running mock holds; the control API and the pytest plugin work through it."""

    settings: Settings
    services: Services
    journal: Journal
    """This process's request totals, open streams and taps (the journal's entries live in the state)."""
    providers: dict[str, ProviderService]
    metrics: CollectorRegistry
    """This mock's own Prometheus registry (``GET /_mock/metrics``)."""
    collector: MockCollector
    feed: Feed
    """The live feed of requests for the dashboard (``GET /_mock/events``); idle until someone listens."""
    replay: Replay | None = None
    """``--replay DIR``: the recorded exchanges answering requests (``GET /_mock/replay``)."""
    secrets: list[str] = field(default_factory=list)
    """Every key's secret (the feed masks them): the seed's at first, re-read when keys change."""
    _watchers: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def state(self) -> State:
        """Everything the mock remembers (shared by every instance on the same backend)."""
        return self.services.state

    def health_checks(self) -> dict[str, HealthCheck]:
        """What the mock depends on, by name (``GET /_mock/health``)."""
        return {"state": self.services.state}

    async def reset(self) -> None:
        """Restore the seed state for every instance (``State.reset``), then this process's parts.

        Pending webhook deliveries keep running (their remaining wait is kept across the clock's jump);
        finished ones leave the delivery log.
        """
        before = self.services.clock.now()
        pending = await self.services.webhooks.pending()
        await self.services.state.reset()
        await self.services.webhooks.restore(pending, clock_shift=self.services.clock.now() - before)
        self.reset_local(clock_shift=self.services.clock.now() - before)
        # This process is reset already: the notice its own reset raised needs no second pass.
        self.services.state.changed("reset").clear()

    def reset_local(self, clock_shift: float = 0.0) -> None:
        """Reset what this process keeps beside the state: id counters, files, jobs, deliveries, the feed."""
        self.services.files.reset()
        self.services.ids.reset()
        self.journal.clear()
        self.feed.clear()
        self.services.jobs.reset()
        if self.replay is not None:
            self.replay.reset()

    async def open(self) -> None:
        """Open the state (connect, seed or join) and take what it decides: the instance number, the
        shared signing secret, the keys to mask."""
        state = self.services.state
        await state.open()
        self.services.ids.bind(state.instance)
        await self.services.signing.share(state)
        await self._read_secrets()

    async def close(self) -> None:
        """Close the state (flushing what it buffers)."""
        await self.services.state.close()

    async def start(self) -> None:
        """Start background machinery (the job loop, the webhook client, the notice watchers); called
        from the app's startup, after ``open``."""
        self.services.jobs.start()
        await self.services.webhooks.start()
        loop = asyncio.get_running_loop()
        self._watchers = [
            loop.create_task(self._watch("reset", self._on_reset), name="mockserver-reset-watch"),
            loop.create_task(self._watch("keys", self._read_secrets), name="mockserver-keys-watch"),
        ]
        # Heavy imports the first chat or video would otherwise pay for, done off the event loop after
        # the server already answers (they are not needed to start).
        loop.run_in_executor(None, _warm_up)

    async def stop(self) -> None:
        """Stop background machinery cleanly; called on shutdown."""
        for task in self._watchers:
            task.cancel()
        for task in self._watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watchers = []
        await self.services.jobs.stop()
        await self.services.webhooks.stop()

    async def _on_reset(self) -> None:
        self.reset_local()

    async def _read_secrets(self) -> None:
        state = self.services.state
        self.secrets = [key.key for pid in self.providers for key in await state.keys(pid)]

    async def _watch(self, topic: Topic, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` whenever another instance (or a path that does not act itself) changes ``topic``."""
        changed = self.services.state.changed(topic)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), NOTICE_POLL_SECONDS)
            if not changed.is_set():
                continue
            changed.clear()
            try:
                await action()
            except StateError as exc:
                log.warning("the state backend failed while handling a %s notice: %s", topic, exc)


def _warm_up() -> None:
    sentences()
    media.preload()


MOCK = web.AppKey("mock", Mock)


def build_mock(settings: Settings) -> Mock:
    """Load every served provider's spec, module and seed (once), and make the state (opened by the app's
    ``cleanup_ctx``: ``Mock.open``)."""
    provider_ids = settings.served_providers()
    seeds = read_seeds(settings.fixtures or fixtures_dir(), provider_ids, fallback=fixtures_dir())
    clock = Clock()
    state = create_state(settings, seeds, clock)
    text = TextGenerator(settings.seed)
    journal = Journal()
    violations: set[asyncio.Task[None]] = set()

    def webhook_violation(provider: str, event: str, problem: str) -> None:
        if settings.response_validation != "off":
            # A webhook has no response status; 0 marks the entry as an outgoing payload.
            found = violation(provider, event, 0, problem)
            journal.publish_violation(found)
            task = asyncio.get_running_loop().create_task(_store_violation(state, found))
            violations.add(task)
            task.add_done_callback(violations.discard)

    signing = SigningKeys.from_settings(settings)
    egress = EgressPolicy(settings.host, settings.port, settings.webhook_hosts)
    services = Services(
        settings=settings,
        clock=clock,
        state=state,
        text=text,
        ids=IdFactory(text),
        jobs=JobEngine(state, Timing().scaled(settings.job_speed)),
        # Files are one store for every provider, and a generation may have two (output and thumbnail).
        files=FileStore(state),
        webhooks=WebhookDispatcher(state, settings.seed, signing, egress, on_violation=webhook_violation),
        signing=signing,
    )
    services.jobs.bind(services)
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
        services.jobs.register(provider_id, loaded.module.finishers())
        mount = "" if settings.provider else f"/{provider_id}"
        attached = replay.attach(provider_id, loaded.spec) if replay is not None else None
        providers[provider_id] = ProviderService(loaded, services, journal, mount, attached)
    collector = MockCollector(journal, services.webhooks, state)
    registry = metrics.registry(collector)
    mock = Mock(
        settings,
        services,
        journal,
        providers,
        registry,
        collector,
        Feed(journal, lambda: mock.secrets),
        replay,
    )
    mock.secrets = [key.key for pid in provider_ids for key in seeds[pid].keys]
    return mock


async def _store_violation(state: State, found: dict[str, Any]) -> None:
    try:
        await state.add_violation(found)
    except StateError as exc:
        log.warning("the state backend failed storing a webhook violation: %s", exc)
