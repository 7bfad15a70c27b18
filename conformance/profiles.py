"""What the suite must know about each provider that its spec cannot say in schema terms.

Everything else (auth scheme, rate-limit headers, streaming operations, webhooks, error schema) is read from
the spec; the behaviour checks bind to the CONVENTIONS' operation ids, never to a provider's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Profile:
    """One provider's cost, envelope and documented-rejection facts."""

    id: str
    costly: Mapping[str, str] = field(default_factory=dict)
    """Operations that cost money when they succeed (operationId -> what is billed)."""
    status_pointer: str | None = None
    """Pointer into the error envelope to a value that must equal the HTTP status (where the spec says so)."""
    needs_org: bool = False
    """Whether paths carry the caller's organization id (``--org-id``)."""
    runtime_rejections: Mapping[str, str] = field(default_factory=dict)
    """Operations the spec says may answer 400 to schema-valid input (operationId -> the documented rule)."""
    terminal: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    """Poll operations of asynchronous jobs: operationId -> (status field, the statuses that end a job)."""


PROFILES: dict[str, Profile] = {
    "studioaicore": Profile(
        id="studioaicore",
        costly={"createChat": "a billed chat completion"},
        status_pointer="/error/code",
    ),
    "spaceai": Profile(
        id="spaceai",
        costly={"createChatCompletion": "a billed chat completion"},
        status_pointer="/error/code",
    ),
    "modelstudio": Profile(
        id="modelstudio",
        costly={"createGenerationJob": "a billed batch generation job"},
        status_pointer="/error/status",
        needs_org=True,
        terminal={"getGenerationJob": ("job_status", ("completed", "failed"))},
        runtime_rejections={
            "createGenerationJob": "image_url parts are for vision models only (operation description)",
        },
    ),
    "artificialstudio": Profile(
        id="artificialstudio",
        costly={"createRun": "a billed generation (image/video/audio)"},
        terminal={"getGeneration": ("status", ("success", "failed"))},
        runtime_rejections={
            "createRun": "an unknown tool is 400 invalid_request (operation description)",
        },
    ),
    "pahlavan": Profile(
        id="pahlavan",
        costly={
            "createGeneration": "a billed generation (language/image/video)",
            "createChatCompletion": "a billed chat completion",
            "createVideoGeneration": "a billed video generation",
        },
        terminal={"getVideoGeneration": ("status", ("succeeded", "failed"))},
        runtime_rejections={
            "createGeneration": "model of the request type; messages or prompt as it needs (description)",
            "createChatCompletion": "the model and the `models` chain must be language models (description)",
            "createQuote": "the model must be of the quoted type (description)",
            "createVideoGeneration": "the model must be a video model (description)",
            # The body must also match the presigned size and type, but an upload URL the generator made
            # up is 403/404 before that; the 400 left is an empty body: schemathesis may send a `*/*` body
            # in a media type that cannot carry bytes (an empty form), though the schema says minLength 1.
            "uploadObject": "an empty body (schemathesis may serialize the `*/*` body as an empty form)",
        },
    ),
}


def profile(provider: str) -> Profile:
    """The profile of a provider id (an empty one for an id the suite does not know)."""
    return PROFILES.get(provider, Profile(id=provider))
