"""Asynchronous work: create a job, poll it to a terminal state within a deadline, check progress and outputs.

Polling is plain client behaviour (a growing interval, capped like the documents' 2 s, and a deadline from
``--poll-timeout``), so the same check runs against a real deployment; a fast mock simply finishes sooner.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from conformance.checks import BehaviourCheck, Outcome, needs
from conformance.client import Exchange
from conformance.context import Context
from conformance.spec import OperationInfo

FIRST_POLL = 0.05
MAX_POLL = 2.0
PROMPT = "A lighthouse on a cliff at dawn, conformance test"
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}


class PollTimeout(Exception):
    """The job did not reach a terminal state before the deadline."""


def poll(
    ctx: Context, fetch: Callable[[], Exchange], done: Callable[[Any], bool], seen: Callable[[Exchange], None]
) -> Exchange:
    """Fetch until ``done(body)`` (or a non-200), calling ``seen`` on every answer; raises ``PollTimeout``."""
    deadline = time.monotonic() + ctx.settings.poll_timeout
    delay = FIRST_POLL
    while True:
        exchange = fetch()
        seen(exchange)
        if exchange.status != 200 or done(exchange.json()):
            return exchange
        if time.monotonic() + delay > deadline:
            raise PollTimeout(f"not finished within {ctx.settings.poll_timeout:g} s (--poll-timeout)")
        time.sleep(delay)
        delay = min(MAX_POLL, delay * 1.6)


def validate(ctx: Context, out: Outcome, check: str, op: OperationInfo, exchange: Exchange) -> Any:
    """Check a JSON answer against the schema declared for its status; returns the body."""
    body = exchange.json()
    schema = ctx.spec.response_schema(op, exchange.status)
    if op.response_key(exchange.status) is None:
        out.add(ctx.violation(check, op, f"status {exchange.status} is not declared", exchange))
    elif schema is not None:
        for error in ctx.spec.errors(schema, body)[:3]:
            out.add(ctx.violation(check, op, f"response body {error}", exchange), key=f"{op.label}|{error}")
    return body


def check_media(ctx: Context, out: Outcome, check: str, label: str, url: Any, expected: str) -> None:
    """An output URL answers 200 with the expected media type (``image``, ``video/mp4``) and such bytes."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        out.add(ctx.violation(check, label, f"output URL {url!r} is not an absolute http(s) URL"))
        return
    exchange = ctx.client.request("GET", url)
    media = exchange.media_type
    kind = expected if "/" in expected else expected + "/"
    if exchange.status != 200:
        out.add(ctx.violation(check, label, f"output {url} answered {exchange.status}", exchange))
    elif not (media == kind or media.startswith(kind)):
        out.add(
            ctx.violation(
                check, label, f"output {url} is {media or 'untyped'}, expected {expected}", exchange
            )
        )
    elif media in SIGNATURES and not exchange.content.startswith(SIGNATURES[media]):
        out.add(
            ctx.violation(check, label, f"output {url} is labelled {media} but its bytes are not", exchange)
        )
    elif media.startswith("video/mp4") and exchange.content[4:8] != b"ftyp":
        out.add(
            ctx.violation(check, label, f"output {url} is labelled {media} but is not an MP4 file", exchange)
        )


def example_tool(ctx: Context, op: OperationInfo) -> str:
    """The tool the operation's documented examples run (``create-image``)."""
    tools = [e["tool"] for e in ctx.spec.examples(op).values() if isinstance(e, dict) and "tool" in e]
    return str(tools[0]) if tools else "create-image"


def _timeout(ctx: Context, out: Outcome, check: str, op: OperationInfo, exc: PollTimeout) -> Outcome:
    out.add(ctx.violation(check, op, str(exc)))
    return out


def check_batch(ctx: Context) -> Outcome:
    """ModelStudio-style batch job: progress never goes back, results one per input, in input order."""
    ctx.require_spend("a batch generation job")
    create, get = ctx.require_operations("createGenerationJob", "getGenerationJob")
    out, check = Outcome(), "jobs.batch"
    inputs = ["First input", "Second input", "Third input"]
    body = {
        "model_id": ctx.model(),
        "messages": [[{"role": "user", "content": t}] for t in inputs],
        "max_tokens": 16,
    }
    created = ctx.call(create, json_body=body)
    data = validate(ctx, out, check, create, created)
    if created.status != 200 or not isinstance(data, dict) or "job_id" not in data:
        out.add(ctx.violation(check, create, f"job creation answered {created.status}", created))
        return out
    job_id = str(data["job_id"])
    history: list[tuple[int, str]] = []

    def seen(exchange: Exchange) -> None:
        job = validate(ctx, out, check, get, exchange)
        if exchange.status != 200 or not isinstance(job, dict):
            return
        total, completed = job.get("total_tasks"), job.get("completed_tasks")
        if job.get("job_id") != job_id:
            out.add(ctx.violation(check, get, f"polled job_id {job.get('job_id')!r} != {job_id!r}", exchange))
        if total != len(inputs):
            out.add(ctx.violation(check, get, f"total_tasks {total} for {len(inputs)} inputs", exchange))
        if isinstance(completed, int) and isinstance(total, int):
            if completed > total:
                out.add(
                    ctx.violation(check, get, f"completed_tasks {completed} > total_tasks {total}", exchange)
                )
            if history and completed < history[-1][0]:
                message = f"completed_tasks went back from {history[-1][0]} to {completed}"
                out.add(ctx.violation(check, get, message, exchange))
            history.append((completed, str(job.get("job_status"))))
            results = job.get("results")
            if isinstance(completed, int) and isinstance(results, list):
                # "Number of tasks that have finished (completed or failed)": the results say which.
                finished = sum(
                    1 for r in results if isinstance(r, dict) and r.get("status") in ("completed", "failed")
                )
                if completed != finished:
                    message = f"completed_tasks {completed} but {finished} finished tasks in results"
                    out.add(ctx.violation(check, get, message, exchange))

    def fetch() -> Exchange:
        return ctx.call(get, params={"job_id": job_id})

    try:
        last = poll(
            ctx, fetch, lambda j: isinstance(j, dict) and j.get("job_status") in ("completed", "failed"), seen
        )
    except PollTimeout as exc:
        return _timeout(ctx, out, check, get, exc)
    job = last.json()
    if last.status != 200 or not isinstance(job, dict):
        out.add(ctx.violation(check, get, f"polling answered {last.status}", last))
        return out
    results = job.get("results") or []
    if len(results) != len(inputs):
        out.add(ctx.violation(check, get, f"{len(results)} results for {len(inputs)} inputs", last))
    for index, result in enumerate(results):
        if not isinstance(result, dict):
            continue
        if result.get("task_index") != index:
            message = f"results[{index}] has task_index {result.get('task_index')}: not in input order"
            out.add(ctx.violation(check, get, message, last))
        if result.get("status") not in ("completed", "failed"):
            out.add(
                ctx.violation(
                    check, get, f"results[{index}] is {result.get('status')} in a finished job", last
                )
            )
        if result.get("status") == "completed" and not isinstance(result.get("result"), str):
            out.add(ctx.violation(check, get, f"results[{index}] completed without a result", last))
    if job.get("completed_tasks") != job.get("total_tasks"):
        out.add(ctx.violation(check, get, "a finished job must count every task as completed", last))
    statuses = [r.get("status") for r in results if isinstance(r, dict)]
    if job.get("job_status") == "failed" and "completed" in statuses:
        out.add(ctx.violation(check, get, "job_status failed although a task completed", last))
    out.detail = f"job {job_id} {job.get('job_status')} after {len(history)} polls"
    return out


def check_run(ctx: Context) -> Outcome:
    """Artificial Studio-style run: processing until success/failed; outputs served with their media type."""
    ctx.require_spend("a generation run")
    create, get = ctx.require_operations("createRun", "getGeneration")
    out, check = Outcome(), "jobs.run"
    tool = example_tool(ctx, create)
    created = ctx.call(create, json_body={"tool": tool, "input": {"prompt": PROMPT}})
    data = validate(ctx, out, check, create, created)
    if created.status != 200 or not isinstance(data, dict) or "id" not in data:
        out.add(ctx.violation(check, create, f"the run answered {created.status}", created))
        return out
    generation_id = str(data["id"])
    statuses: list[str] = []

    def seen(exchange: Exchange) -> None:
        body = validate(ctx, out, check, get, exchange)
        if isinstance(body, dict):
            status = str(body.get("status"))
            if statuses and statuses[-1] in ("success", "failed") and status != statuses[-1]:
                out.add(ctx.violation(check, get, f"status went from {statuses[-1]} to {status}", exchange))
            statuses.append(status)
            if body.get("id") != generation_id:
                out.add(
                    ctx.violation(check, get, f"polled id {body.get('id')!r} != {generation_id!r}", exchange)
                )

    def fetch() -> Exchange:
        return ctx.call(get, params={"id": generation_id})

    try:
        last = poll(
            ctx, fetch, lambda b: isinstance(b, dict) and b.get("status") in ("success", "failed"), seen
        )
    except PollTimeout as exc:
        return _timeout(ctx, out, check, get, exc)
    body = last.json()
    if isinstance(body, dict) and body.get("status") == "success":
        check_media(ctx, out, check, get.label, body.get("output"), str(body.get("type") or "image"))
        if "thumbnail" in body:
            check_media(ctx, out, check, get.label, body.get("thumbnail"), "image")
    ctx.cache["run"] = body
    out.detail = f"generation {generation_id} {statuses[-1] if statuses else '?'} after {len(statuses)} polls"
    return out


def _points_at(url: str, base: str, path: str) -> bool:
    """Whether ``url`` is an absolute URL of ``path`` (an operation's path) for the target at ``base``.

    Another host may serve it (the documents do not say where), but on the base URL's own host the path
    must be the base URL's path plus the operation's: a URL that loses a gateway's path prefix fails.
    """
    got, root = urlsplit(url), urlsplit(base)
    if got.scheme not in ("http", "https") or not got.path.endswith(path):
        return False
    return got.netloc.lower() != root.netloc.lower() or got.path == root.path.rstrip("/") + path


def check_video(ctx: Context) -> Outcome:
    """Pahlavan-style video: 202 with status_url, queued/processing then succeeded/failed, an MP4 output."""
    ctx.require_spend("a video generation")
    create, get = ctx.require_operations("createVideoGeneration", "getVideoGeneration")
    out, check = Outcome(), "jobs.video"
    body = {"model": ctx.model("video"), "prompt": PROMPT, "settings": {"duration_seconds": 1}}
    created = ctx.call(create, json_body=body)
    data = validate(ctx, out, check, create, created)
    if created.status not in (200, 202) or not isinstance(data, dict) or "id" not in data:
        out.add(ctx.violation(check, create, f"the video request answered {created.status}", created))
        return out
    video_id = str(data["id"])
    expected_path = ctx.path(get, id=video_id)
    if not _points_at(str(data.get("status_url", "")), ctx.settings.base, expected_path):
        message = f"status_url {data.get('status_url')!r} does not point at {expected_path}"
        out.add(ctx.violation(check, create, message, created))
    order = {"queued": 0, "processing": 1, "succeeded": 2, "failed": 2}
    statuses: list[str] = [str(data.get("status"))]

    def seen(exchange: Exchange) -> None:
        polled = validate(ctx, out, check, get, exchange)
        if isinstance(polled, dict):
            status = str(polled.get("status"))
            if order.get(status, 0) < order.get(statuses[-1], 0) or (
                statuses[-1] in ("succeeded", "failed") and status != statuses[-1]
            ):
                out.add(ctx.violation(check, get, f"status went from {statuses[-1]} to {status}", exchange))
            statuses.append(status)

    def fetch() -> Exchange:
        return ctx.call(get, params={"id": video_id})

    try:
        last = poll(
            ctx, fetch, lambda b: isinstance(b, dict) and b.get("status") in ("succeeded", "failed"), seen
        )
    except PollTimeout as exc:
        return _timeout(ctx, out, check, get, exc)
    final = last.json()
    if isinstance(final, dict) and final.get("status") == "succeeded":
        check_media(ctx, out, check, get.label, final.get("output_url"), "video")
    ctx.cache["video"] = final
    out.detail = f"video {video_id} {statuses[-1]} after {len(statuses) - 1} polls"
    return out


CHECKS = [
    BehaviourCheck(
        "jobs.batch", "Batch job progress and result order", needs("createGenerationJob"), check_batch
    ),
    BehaviourCheck("jobs.run", "Run reaches success/failed; outputs typed", needs("createRun"), check_run),
    BehaviourCheck(
        "jobs.video", "Video job reaches a terminal state", needs("createVideoGeneration"), check_video
    ),
]
