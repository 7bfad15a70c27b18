"""Artificial Studio: run a tool, poll the generation, or get it POSTed to a webhook when it finishes."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mockserver.core.calls import Call, Handler, JsonReply, Reply, Services
from mockserver.core.jobs import FAIL_MARKER, Job, JobState
from mockserver.core.media import (
    JPEG,
    MP4,
    PNG,
    FileStore,
    StoredFile,
    render_image,
    render_thumbnail,
    render_video,
    video_poster,
)
from mockserver.errors import ApiError, not_found
from mockserver.providers._snake_case import ERROR_CODES
from mockserver.state.api import ProviderState

log = logging.getLogger("mockserver.artificialstudio")

WEBHOOK_EVENT = "generationCompleted"
"""The spec's ``webhooks`` entry a finished generation is delivered as."""

_SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")


def iso_millis(timestamp: float) -> str:
    """``2024-01-15T10:30:00.000Z``: ISO-8601 in UTC with milliseconds, as the document shows."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Generation:
    """One run of a tool and, once it finished, its outputs."""

    id: str
    account: str
    tool: str
    kind: str
    prompt: str
    created_at: float
    status: str = "processing"
    output: StoredFile | None = None
    thumbnail: StoredFile | None = None
    error: str | None = None

    def body(self, services: Services, origin: str) -> dict[str, Any]:
        """The Generation object, with file URLs under ``origin``."""
        body: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "tool": self.tool,
            "createdAt": iso_millis(self.created_at),
        }
        if self.output is not None:
            body["output"] = services.files.url(origin, self.output)
            body["type"] = self.kind
        if self.thumbnail is not None:
            body["thumbnail"] = services.files.url(origin, self.thumbnail)
        if self.error is not None:
            body["error"] = self.error
        return body


def _store_outputs(files: FileStore, generation: Generation, seed: int) -> tuple[StoredFile, StoredFile]:
    """The output and thumbnail files of a generation's tool kind, drawn when first downloaded."""
    prompt = generation.prompt
    if generation.kind == "video":
        output = files.put(lambda: render_video(prompt, seed), MP4, f"{generation.id}.mp4")
        thumbnail = files.put(
            lambda: render_thumbnail(video_poster(prompt, seed)), JPEG, f"{generation.id}.jpg"
        )
        return output, thumbnail
    output = files.put(lambda: render_image(prompt, seed), PNG, f"{generation.id}.png")
    # The thumbnail is made from the image itself (rendered once, whichever is fetched first).
    thumbnail = files.put(lambda: render_thumbnail(output.data), JPEG, f"{generation.id}.jpg")
    return output, thumbnail


class ArtificialStudio:
    """Artificial Studio's quirks: raw-key auth, 24-hex ids, `processing`/`success`/`failed`, webhooks."""

    id = "artificialstudio"

    def handlers(self) -> Mapping[str, Handler]:
        """Behaviour per operationId."""
        return {"createRun": self.create_run, "getGeneration": self.get_generation}

    async def create_run(self, call: Call) -> Reply:
        """Start a generation: answered at once with status ``processing``."""
        assert call.key is not None
        body = call.body
        tools = {str(t["id"]): t for t in call.state.extra.get("tools") or []}
        tool = tools.get(body["tool"])
        if tool is None:
            raise not_found(f"Unknown tool: {body['tool']}", field="tool")
        webhook = body.get("webhook")
        services = call.services
        if webhook:
            services.webhooks.check_target(webhook, call.request, field="webhook")
        prompt = str(body["input"]["prompt"])
        generation = Generation(
            id=services.ids.new("", 24),
            account=call.key.account,
            tool=str(tool["id"]),
            kind=str(tool.get("type", "image")),
            prompt=prompt,
            created_at=call.now(),
        )
        call.state.table("generations")[generation.id] = generation
        # The finish callback runs outside any request: keep what it needs from this one.
        secret = services.webhooks.secret_for(self.id, call.key.key) if webhook else ""
        origin = call.origin

        def finish(job: Job) -> None:
            self._finish(services, generation, job, webhook, secret, origin)

        services.jobs.submit(
            self.id,
            generation.id,
            owner=call.key.account,
            failing_tasks=frozenset({0}) if FAIL_MARKER in prompt else frozenset(),
            on_finish=finish,
        )
        return JsonReply(
            {
                "id": generation.id,
                "status": "processing",
                "tool": generation.tool,
                "createdAt": iso_millis(generation.created_at),
            }
        )

    def _finish(
        self,
        services: Services,
        generation: Generation,
        job: Job,
        webhook: str | None,
        secret: str,
        origin: str,
    ) -> None:
        if services.jobs.view(job).state is JobState.FAILED:
            generation.error = (
                f"The generation failed: the prompt contains the failure marker '{FAIL_MARKER}'."
            )
            generation.status = "failed"
        else:
            # Stored as renders, drawn on first download: thousands of generations finishing at one
            # clock advance must not hold the event loop for a render each (~10 ms). The callback never
            # yields, so whoever settles or polls the job sees the outputs (and the webhook) when it returns.
            generation.output, generation.thumbnail = _store_outputs(
                services.files, generation, services.settings.seed
            )
            generation.status = "success"
        if webhook:
            services.webhooks.deliver(
                webhook,
                generation.body(services, origin),
                secret=secret,
                provider=self.id,
                event=WEBHOOK_EVENT,
            )

    async def get_generation(self, call: Call) -> Reply:
        """A generation of the caller's account: ``processing`` until its job finished."""
        assert call.key is not None
        generation_id = call.input.path["id"]
        generation = call.state.table("generations").get(generation_id)
        # Another account's generation is indistinguishable from a missing one.
        if not isinstance(generation, Generation) or generation.account != call.key.account:
            raise not_found("Generation not found")
        job = call.services.jobs.get(self.id, generation_id)
        if job is not None:
            await call.services.jobs.finish(job)
        return JsonReply(generation.body(call.services, call.origin))

    def render_error(self, error: ApiError) -> dict[str, Any]:
        """`{"error": "<message>", "code": "<snake_case>"}`."""
        code = error.code if error.code and _SNAKE_CASE.match(error.code) else ERROR_CODES[error.kind]
        return {"error": error.message, "code": code}

    def describe(self, state: ProviderState) -> dict[str, Any]:
        """The tool ids, listed as models."""
        return {"models": [str(t["id"]) for t in state.extra.get("tools") or []]}


PROVIDER = ArtificialStudio()
