"""Artificial Studio: run a tool, poll the generation, or get it POSTed to a webhook when it finishes."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from mockserver.core.calls import Call, Handler, JsonReply, Reply, Services
from mockserver.core.jobs import FAIL_MARKER, Finisher, JobState
from mockserver.core.media import JPEG, MP4, PNG, FileStore, files_path
from mockserver.errors import ApiError, not_found
from mockserver.providers._snake_case import ERROR_CODES
from mockserver.state.api import ProviderState
from mockserver.state.records import FileRecord, JobRecord, JsonRecord

log = logging.getLogger("mockserver.artificialstudio")

WEBHOOK_EVENT = "generationCompleted"
"""The spec's ``webhooks`` entry a finished generation is delivered as."""
FINISHER = "generation"

_SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")


def iso_millis(timestamp: float) -> str:
    """``2024-01-15T10:30:00.000Z``: ISO-8601 in UTC with milliseconds, as the document shows."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Generation(JsonRecord):
    """One run of a tool and, once it finished, its outputs (files by id and name)."""

    kind: ClassVar[str] = "generations"
    id: str
    account: str
    tool: str
    output_type: str
    """The tool's type (``image``, ``video``): the Generation's ``type``."""
    prompt: str
    created_at: float
    status: str = "processing"
    output: list[str] | None = None
    """``[file id, filename]`` of the output in the file store."""
    thumbnail: list[str] | None = None
    error: str | None = None

    def body(self, origin: str) -> dict[str, Any]:
        """The Generation object, with file URLs under ``origin``."""
        body: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "tool": self.tool,
            "createdAt": iso_millis(self.created_at),
        }
        if self.output is not None:
            body["output"] = origin + files_path(*self.output)
            body["type"] = self.output_type
        if self.thumbnail is not None:
            body["thumbnail"] = origin + files_path(*self.thumbnail)
        if self.error is not None:
            body["error"] = self.error
        return body


async def _store_outputs(
    files: FileStore, generation: Generation, seed: int
) -> tuple[FileRecord, FileRecord]:
    """The output and thumbnail files of a generation's tool kind, drawn when first downloaded."""
    drawn = {"prompt": generation.prompt, "seed": seed}
    if generation.output_type == "video":
        output = await files.put_recipe({"render": "video", **drawn}, MP4, f"{generation.id}.mp4")
        thumbnail = await files.put_recipe(
            {"render": "video_thumbnail", **drawn}, JPEG, f"{generation.id}.jpg"
        )
        return output, thumbnail
    output = await files.put_recipe({"render": "image", **drawn}, PNG, f"{generation.id}.png")
    # The thumbnail is made from the image itself (drawn once, whichever is fetched first).
    thumbnail = await files.put_recipe(
        {"render": "thumbnail", "source": output.id}, JPEG, f"{generation.id}.jpg"
    )
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
            output_type=str(tool.get("type", "image")),
            prompt=prompt,
            created_at=call.now(),
        )
        await call.state.put(generation)
        # The finisher runs outside any request (on whichever instance claims the job): keep what it needs.
        await services.jobs.submit(
            self.id,
            generation.id,
            owner=call.key.account,
            failing_tasks=[0] if FAIL_MARKER in prompt else [],
            # "kind": what the job makes (the control API's resource listing shows it).
            data={
                "kind": Generation.kind,
                "webhook": webhook or None,
                "key_id": call.key.key_id,
                "origin": call.origin,
            },
            finisher=FINISHER,
        )
        return JsonReply(
            {
                "id": generation.id,
                "status": "processing",
                "tool": generation.tool,
                "createdAt": iso_millis(generation.created_at),
            }
        )

    def finishers(self) -> Mapping[str, Finisher]:
        """What runs when a generation's job is due."""
        return {FINISHER: self._finish}

    async def _finish(self, services: Services, job: JobRecord) -> None:
        generation = await services.state.get(self.id, Generation, job.id)
        if generation is None:
            return  # dropped by its retention meanwhile
        if services.jobs.view(job).state is JobState.FAILED:
            generation.error = (
                f"The generation failed: the prompt contains the failure marker '{FAIL_MARKER}'."
            )
            generation.status = "failed"
        else:
            # Stored as recipes, drawn on first download: thousands of generations finishing at one
            # clock advance must not hold the event loop for a render each (~10 ms).
            output, thumbnail = await _store_outputs(services.files, generation, services.settings.seed)
            generation.output = [output.id, output.filename]
            generation.thumbnail = [thumbnail.id, thumbnail.filename]
            generation.status = "success"
        await services.state.put(self.id, generation)
        webhook = job.data.get("webhook")
        if webhook:
            key = await services.state.key_by_id(self.id, str(job.data["key_id"]))
            if key is None:
                log.warning("generation %s: its key is gone; no webhook", generation.id)
                return
            await services.webhooks.deliver(
                webhook,
                generation.body(str(job.data["origin"])),
                secret=services.webhooks.secret_for(self.id, key.key),
                provider=self.id,
                event=WEBHOOK_EVENT,
                # One delivery per job, even when the job is finished again (an instance died mid-way).
                once=f"{job.id}@{job.created_at!r}",
            )

    async def get_generation(self, call: Call) -> Reply:
        """A generation of the caller's account: ``processing`` until its job finished."""
        assert call.key is not None
        generation_id = call.input.path["id"]
        generation = await call.state.get(Generation, generation_id)
        # Another account's generation is indistinguishable from a missing one.
        if generation is None or generation.account != call.key.account:
            raise not_found("Generation not found")
        job = await call.services.jobs.get(self.id, generation_id)
        if job is not None and not job.finished:
            await call.services.jobs.finish(job)
            # The finisher stored the outcome: read it again.
            generation = await call.state.get(Generation, generation_id) or generation
        return JsonReply(generation.body(call.origin))

    def render_error(self, error: ApiError) -> dict[str, Any]:
        """`{"error": "<message>", "code": "<snake_case>"}`."""
        code = error.code if error.code and _SNAKE_CASE.match(error.code) else ERROR_CODES[error.kind]
        return {"error": error.message, "code": code}

    def describe(self, state: ProviderState) -> dict[str, Any]:
        """The tool ids, listed as models."""
        return {"models": [str(t["id"]) for t in state.extra.get("tools") or []]}


PROVIDER = ArtificialStudio()
