"""Video generations: async jobs on the core engine, held at creation, charged only when they succeed."""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from mockserver.core import billing, media
from mockserver.core.billing import Charge
from mockserver.core.calls import Call, JsonReply, Reply
from mockserver.core.jobs import FAIL_MARKER, Job, JobState
from mockserver.errors import ApiError, ErrorKind, invalid_request, not_found
from mockserver.providers.pahlavan.charges import billing_fields, caller, estimate_fields, reserve
from mockserver.providers.pahlavan.envelope import UPSTREAM_REQUEST_FAILED, input_required, upstream_failed
from mockserver.providers.pahlavan.models import DEFAULT_VIDEO_SECONDS, available, find_model, video_cost
from mockserver.providers.pahlavan.outputs import Output, deliver
from mockserver.state.records import HoldRecord as Hold  # import only: state-engines moves this module

log = logging.getLogger("mockserver.pahlavan")

VIDEO_ID_PREFIX = "vid_"
MAX_VIDEO_SECONDS = 60
STATUS = {
    JobState.QUEUED: "queued",
    JobState.RUNNING: "processing",
    JobState.SUCCEEDED: "succeeded",
    JobState.FAILED: "failed",
}


@dataclass(slots=True)
class Video:
    """A video job's request, its hold and, once finished, its outcome (``Job.data["video"]``)."""

    model: str
    prompt: str
    seconds: int
    cost: Decimal
    hold: Hold
    created: int
    settings: dict[str, Any]
    done: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the outcome below is final (the finish callback may still be rendering after the job's
    clock-derived state turned terminal)."""
    output: Output | None = None
    charge: Charge | None = None
    error: dict[str, str] | None = None


def _seconds(settings: dict[str, Any]) -> int:
    # The unified endpoint's settings are an open object, so the schema does not check this field there.
    seconds = settings.get("duration_seconds", DEFAULT_VIDEO_SECONDS)
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= MAX_VIDEO_SECONDS:
        raise invalid_request(
            f"settings.duration_seconds must be an integer from 1 to {MAX_VIDEO_SECONDS}.",
            field="settings.duration_seconds",
        )
    return seconds


async def create(call: Call, *, unified: bool) -> Reply:
    """Submit a video job: 202 at once (default), or the final state when ``async`` is false."""
    body = call.body
    model = find_model(call, body["model"], kind="video")
    prompt = body.get("prompt")
    if not prompt:
        raise input_required("prompt", "video")
    settings = dict(body.get("settings") or {})
    seconds = _seconds(settings)
    if not available(model):
        raise upstream_failed([model["id"]])
    cost = video_cost(model, seconds)
    hold = reserve(call, cost)
    video = Video(model["id"], prompt, seconds, cost, hold, int(call.now()), settings)
    job = call.services.jobs.submit(
        call.state.provider_id,
        call.services.ids.new(VIDEO_ID_PREFIX),
        owner=hold.account.id,
        failing_tasks=frozenset({0}) if FAIL_MARKER in prompt else frozenset(),
        data={"video": video},
        on_finish=lambda finished: _finish(call, finished),
    )
    if body.get("async", True):
        return JsonReply(_view(call, job), status=202)
    await call.services.jobs.wait(job)
    await video.done.wait()
    if not unified:
        return JsonReply(_view(call, job))
    if video.output is None or video.charge is None:
        # The unified endpoint's 200 is a succeeded Generation; a failed sync video is an upstream error.
        error = video.error or {}
        raise ApiError(
            502,
            ErrorKind.UPSTREAM,
            error.get("message", "Video generation failed."),
            code=UPSTREAM_REQUEST_FAILED,
            details={"id": job.id, "models": [video.model]},
        )
    return JsonReply(
        {
            "id": job.id,
            "object": "generation",
            "type": "video",
            "model": video.model,
            "created": video.created,
            "status": "succeeded",
            "output_urls": [video.output.url(call)],
            **billing_fields(video.charge),
        }
    )


async def _finish(call: Call, job: Job) -> None:
    """Release the hold of a failed job; render, deliver and charge a succeeded one."""
    video: Video = job.data["video"]
    try:
        if call.services.jobs.view(job).state is JobState.FAILED:
            billing.release(video.hold)
            video.error = {
                "code": UPSTREAM_REQUEST_FAILED,
                "message": f"Video generation failed: the prompt contains '{FAIL_MARKER}'.",
            }
            return
        prompt, seed, seconds = video.prompt, call.services.settings.seed, video.seconds
        # A render, drawn on first download (or now, off the event loop, when it goes to storage).
        mp4 = functools.partial(media.render_video, prompt, seed, seconds=seconds)
        video.output = await deliver(call, mp4, media.MP4, f"{job.id}.mp4", video.settings)
        video.charge = billing.settle(video.hold, video.cost)
    except Exception as exc:
        log.exception("video %s could not be finished", job.id)
        billing.release(video.hold)
        video.output = None
        video.error = {"code": "INTERNAL_ERROR", "message": f"Video generation failed: {exc}"}
    finally:
        video.done.set()


def _view(call: Call, job: Job) -> dict[str, Any]:
    """The ``VideoGeneration`` object now, with URLs as this caller reached the mock."""
    video: Video = job.data["video"]
    if video.done.is_set():
        status = "failed" if video.error else "succeeded"
    else:
        state = call.services.jobs.view(job).state
        # Terminal by the clock but its outcome still being written: not done yet for the client.
        status = "processing" if state.terminal else STATUS[state]
    body: dict[str, Any] = {
        "id": job.id,
        "object": "video.generation",
        "model": video.model,
        "status": status,
        "status_url": f"{call.base_url}/api/v1/videos/generations/{job.id}",
        "created": video.created,
    }
    if video.charge is not None and video.output is not None:
        body["output_url"] = video.output.url(call)
        body.update(billing_fields(video.charge))
    else:
        body.update(estimate_fields(video.hold))
    if video.error is not None:
        body["error"] = dict(video.error)
    return body


async def create_video_generation(call: Call) -> Reply:
    """``POST /api/v1/videos/generations``."""
    return await create(call, unified=False)


async def get_video_generation(call: Call) -> Reply:
    """``GET /api/v1/videos/generations/{id}``: another account's job is as unknown as a missing one."""
    video_id = str(call.input.path["id"])
    job = call.services.jobs.get(call.state.provider_id, video_id)
    account, _ = caller(call)
    if job is None or job.owner != account.id or "video" not in job.data:
        raise not_found(f"Video generation '{video_id}' not found.", id=video_id)
    await call.services.jobs.finish(job)
    video: Video = job.data["video"]
    if call.services.jobs.view(job).state.terminal:
        await video.done.wait()
    return JsonReply(_view(call, job))
