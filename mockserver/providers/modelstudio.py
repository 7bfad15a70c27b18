"""ModelStudio: batch generation jobs scoped to an organization, created once and polled until done."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mockserver.core.calls import Call, Handler, JsonReply, Reply
from mockserver.core.jobs import FAIL_MARKER, Job, JobState, TaskState
from mockserver.core.textgen import message_text
from mockserver.core.validation import field_name
from mockserver.errors import ApiError, forbidden, invalid_request, not_found
from mockserver.providers._snake_case import ERROR_CODES
from mockserver.state.api import ProviderState
from mockserver.state.records import KeyRecord as ApiKey  # import only: state-engines moves this module

JOB_STATUS = {
    JobState.QUEUED: "created",
    JobState.RUNNING: "processing",
    JobState.SUCCEEDED: "completed",
    JobState.FAILED: "failed",
}
TASK_STATUS = {
    TaskState.PENDING: "pending",
    TaskState.RUNNING: "processing",
    TaskState.SUCCEEDED: "completed",
    TaskState.FAILED: "failed",
}
CREATED_MESSAGE = "Generation job created successfully"


def organization_of(key: ApiKey) -> str:
    """The organization a key belongs to (the seed's ``organization``, else its account)."""
    return key.organization or key.account


def _last_user_text(conversation: Sequence[Any]) -> str:
    return next((message_text(m["content"]) for m in reversed(conversation) if m["role"] == "user"), "")


def _image_part(conversation: Sequence[Any], index: int) -> str | None:
    """The field name of the first ``image_url`` part of a conversation, if it has one."""
    for m_index, message in enumerate(conversation):
        content = message["content"]
        if isinstance(content, list):
            for p_index, part in enumerate(content):
                if part.get("type") == "image_url":
                    return field_name("body", ["messages", index, m_index, "content", p_index])
    return None


class ModelStudio:
    """ModelStudio's quirks: organization-scoped paths and models, `job_` ids, upper/lower-case states."""

    id = "modelstudio"

    def handlers(self) -> Mapping[str, Handler]:
        """Behaviour per operationId."""
        return {"createGenerationJob": self.create_job, "getGenerationJob": self.get_job}

    def _organization(self, call: Call) -> str:
        """The path's organization, once the key is shown to belong to it."""
        assert call.key is not None  # both operations require a key; the pipeline answered 401 otherwise
        organization = str(call.input.path["organization_id"])
        # A key only ever grants its own organization. An unknown organization is 403 too, not 404, so
        # that a key cannot probe which organizations exist (the spec's 403 is "insufficient permissions").
        if organization != organization_of(call.key):
            raise forbidden("Insufficient permissions: the API key does not belong to this organization.")
        return organization

    async def create_job(self, call: Call) -> Reply:
        """Submit one job whose tasks are the request's conversations."""
        organization = self._organization(call)
        body = call.body
        model_id = body["model_id"]
        model = call.state.models.get(model_id)
        if model is None or model.get("organization") != organization:
            raise not_found(
                f"Model '{model_id}' not found in organization '{organization}'.",
                code="model_not_found",
                field="model_id",
            )
        conversations: list[list[dict[str, Any]]] = body["messages"]
        if not model.get("vision"):
            for index, conversation in enumerate(conversations):
                where = _image_part(conversation, index)
                if where is not None:
                    raise invalid_request(
                        f"Invalid body field '{where}': model '{model_id}' is not a vision model; "
                        "image_url content parts need a vision model.",
                        field=where,
                        location="body",
                    )
        assert call.operation.body is not None  # the spec declares this operation's body
        defaults = call.operation.body.defaults
        temperature = body.get("temperature", defaults.get("temperature"))
        max_tokens = body.get("max_tokens", defaults.get("max_tokens"))
        texts: list[str | None] = []
        failing: set[int] = set()
        for index, conversation in enumerate(conversations):
            prompt = _last_user_text(conversation)
            if FAIL_MARKER in prompt:
                failing.add(index)
                texts.append(None)
                continue
            # The whole conversation salts the answer: the same last question in another context differs.
            salt = (self.id, model_id, conversation, temperature)
            texts.append(call.services.text.reply(prompt, salt=salt, max_tokens=max_tokens).text)
        job_id = call.services.ids.new("job_", 16)
        call.services.jobs.submit(
            self.id,
            job_id,
            owner=organization,
            tasks=len(conversations),
            failing_tasks=frozenset(failing),
            data={"model_id": model_id, "texts": texts},
        )
        return JsonReply({"job_id": job_id, "status": "CREATED", "message": CREATED_MESSAGE})

    async def get_job(self, call: Call) -> Reply:
        """The job's progress; results appear task by task, in input order."""
        organization = self._organization(call)
        job_id = str(call.input.path["job_id"])
        job = call.services.jobs.get(self.id, job_id)
        # Another organization's job is as unknown as a missing one: ids must not leak across organizations.
        if job is None or job.owner != organization:
            raise not_found(f"Job '{job_id}' not found.", code="job_not_found", field="job_id")
        return JsonReply(self._job_body(call, job))

    def _job_body(self, call: Call, job: Job) -> dict[str, Any]:
        view = call.services.jobs.view(job)
        texts: list[str | None] = job.data["texts"]
        results = []
        for index, task in enumerate(view.tasks):
            failed = task is TaskState.FAILED
            results.append(
                {
                    "task_index": index,
                    "status": TASK_STATUS[task],
                    "result": texts[index] if task is TaskState.SUCCEEDED else None,
                    "error": f"Task {index} failed: its prompt contains '{FAIL_MARKER}'." if failed else None,
                }
            )
        return {
            "job_id": job.id,
            "job_status": JOB_STATUS[view.state],
            "total_tasks": job.task_count,
            "completed_tasks": view.completed_tasks,
            "results": results,
        }

    def render_error(self, error: ApiError) -> dict[str, Any]:
        """`{"error": {"code", "message", "status"}}` (the spec's inferred envelope)."""
        return {
            "error": {
                "code": error.code or ERROR_CODES[error.kind],
                "message": error.message,
                "status": error.status,
            }
        }

    def describe(self, state: ProviderState) -> dict[str, Any]:
        """The primary key's organization and that organization's models, for ``/_mock/providers``."""
        organization = organization_of(state.seed.keys[0])
        models = [m_id for m_id, m in state.models.items() if m.get("organization") == organization]
        return {"organization_id": organization, "models": models}


PROVIDER = ModelStudio()
