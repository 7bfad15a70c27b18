"""Video generations: async jobs on the core engine, held at creation, charged only when they succeed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mockserver.core import billing, media
from mockserver.core.calls import Call, JsonReply, Reply, Services
from mockserver.core.jobs import FAIL_MARKER, Finisher, JobState
from mockserver.errors import ApiError, ErrorKind, StateError, invalid_request, not_found
from mockserver.providers.pahlavan.charges import billing_fields, caller, estimate_fields, reserve
from mockserver.providers.pahlavan.envelope import UPSTREAM_REQUEST_FAILED, input_required, upstream_failed
from mockserver.providers.pahlavan.models import DEFAULT_VIDEO_SECONDS, available, find_model, video_cost
from mockserver.providers.pahlavan.outputs import Output, Owner, deliver
from mockserver.state.records import HoldRecord, JobRecord, JsonRecord

log = logging.getLogger("mockserver.pahlavan")

VIDEO_ID_PREFIX = "vid_"
MAX_VIDEO_SECONDS = 60
FINISHER = "video"
STATUS = {
    JobState.QUEUED: "queued",
    JobState.RUNNING: "processing",
    JobState.SUCCEEDED: "succeeded",
    JobState.FAILED: "failed",
}


@dataclass(slots=True)
class Video(JsonRecord):
    """A video job's request, its hold and, once finished, its outcome (``JobRecord.data["video"]``; the
    outcome is final once the job is ``finished``)."""

    model: str
    prompt: str
    seconds: int
    cost: str
    """The metered cost in USD, as a decimal string."""
    hold: dict[str, Any]
    """The ``HoldRecord`` made at creation, in its stored form."""
    created: int
    settings: dict[str, Any]
    owner: dict[str, str]
    """The ``Owner`` of its output (account, the base URL the client used)."""
    output: dict[str, Any] | None = None
    """The ``Output`` once delivered, in its stored form."""
    charge: dict[str, Any] | None = None
    """The billing fields of the settled charge."""
    error: dict[str, str] | None = None

    @classmethod
    def of(cls, job: JobRecord) -> Video:
        """The video a job's data holds."""
        return cls.from_json(job.data["video"])


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
    hold = await reserve(call, cost)
    owner = Owner.of(call)
    video = Video(
        model=model["id"],
        prompt=prompt,
        seconds=seconds,
        cost=str(cost),
        hold=hold.to_json(),
        created=int(call.now()),
        settings=settings,
        owner={"account": owner.account, "base_url": owner.base_url},
    )
    job = await call.services.jobs.submit(
        call.state.provider_id,
        call.services.ids.new(VIDEO_ID_PREFIX),
        owner=hold.account,
        failing_tasks=[0] if FAIL_MARKER in prompt else [],
        data={"video": video.to_json()},
        finisher=FINISHER,
    )
    # Kept only once the job is stored: an instance lost before that leaves a hold no job would end, and
    # its deadline gives it back. A job runs on the mock's clock for as long as it takes, so its hold
    # has no deadline at all (a lease to renew would be lost with the instance anyway: the job engine
    # hands the job, and with it the hold, to another instance).
    await billing.keep(call.services.state, hold)
    if body.get("async", True):
        return JsonReply(_view(call, job), status=202)
    job = await call.services.jobs.wait(job)
    if not unified:
        return JsonReply(_view(call, job))
    video = Video.of(job)
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
            "output_urls": [Output.from_json(video.output).url(call.origin)],
            **video.charge,
        }
    )


def finishers() -> dict[str, Finisher]:
    """What runs when a video job is due."""
    return {FINISHER: _finish}


async def _finish(services: Services, job: JobRecord) -> None:
    """Release the hold of a failed job; deliver (drawn on download, or now for storage) and charge a
    succeeded one. The outcome goes into the job's data, stored with the job once it is finished."""
    video = Video.of(job)
    hold = HoldRecord.from_json(video.hold)
    state = services.state
    try:
        if services.jobs.view(job).state is JobState.FAILED:
            await billing.release(state, hold)
            video.error = {
                "code": UPSTREAM_REQUEST_FAILED,
                "message": f"Video generation failed: the prompt contains '{FAIL_MARKER}'.",
            }
            return
        recipe = {"render": "video", "prompt": video.prompt, "seed": services.settings.seed}
        owner = Owner(job.provider, video.owner["account"], video.owner["base_url"])
        output = await deliver(
            services, owner, {**recipe, "seconds": video.seconds}, media.MP4, f"{job.id}.mp4", video.settings
        )
        charge = await billing.settle(state, hold, Decimal(video.cost))
        video.output, video.charge = output.to_json(), billing_fields(charge)
    except StateError:
        raise  # not finished: the job is finished again once its lease ran out (the hold is still open)
    except Exception as exc:
        log.exception("video %s could not be finished", job.id)
        await billing.release(state, hold)
        video.output = None
        video.error = {"code": "INTERNAL_ERROR", "message": f"Video generation failed: {exc}"}
    finally:
        job.data["video"] = video.to_json()


def _view(call: Call, job: JobRecord) -> dict[str, Any]:
    """The ``VideoGeneration`` object now, with URLs as this caller reached the mock."""
    video = Video.of(job)
    if job.finished:
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
    if job.finished and video.charge is not None and video.output is not None:
        body["output_url"] = Output.from_json(video.output).url(call.origin)
        body.update(video.charge)
    else:
        body.update(estimate_fields(HoldRecord.from_json(video.hold)))
    if job.finished and video.error is not None:
        body["error"] = dict(video.error)
    return body


async def create_video_generation(call: Call) -> Reply:
    """``POST /api/v1/videos/generations``."""
    return await create(call, unified=False)


async def get_video_generation(call: Call) -> Reply:
    """``GET /api/v1/videos/generations/{id}``: another account's job is as unknown as a missing one."""
    video_id = str(call.input.path["id"])
    job = await call.services.jobs.get(call.state.provider_id, video_id)
    key = caller(call)
    if job is None or job.owner != key.account or "video" not in job.data:
        raise not_found(f"Video generation '{video_id}' not found.", id=video_id)
    job = await call.services.jobs.finish(job)
    return JsonReply(_view(call, job))
