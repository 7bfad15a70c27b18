"""Schemathesis sweeps each provider's spec against the running mock: the mock must never answer outside it.

One pytest test per provider; schemathesis reports each operation as a subtest
(``test_sweep[spaceai][POST /v1/chat/completions]``) with the failing check and a curl line to replay it.
Phases: examples, coverage and fuzzing; positive and negative data; every default check; SSE events are
validated one by one. The server runs with strict response validation, so anything outside the spec is
also a 500 (caught by ``not_a_server_error``) and a recorded violation (checked after the test).

Half of the generated model ids are the seeded ones (a schemathesis dictionary), so positive cases reach
the mock's real behaviour instead of stopping at "unknown model".
"""

from __future__ import annotations

import collections
import importlib
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from _mock_test_helpers import sweep_run

from mockserver.core.spec import load_document
from mockserver.resources import PROVIDER_IDS, spec_path

MAX_EXAMPLES = 100
MAX_EXAMPLES_REDIS = 30
"""Fuzzed examples per operation on Redis: the memory half sweeps the spec in full; the Redis half (same
examples and coverage phases) looks for what only the backend refuses (an integer past 64 bits was one), at a
third of the CI time."""
"""Fuzzing examples per operation; the examples and coverage phases add their own (~40 per operation)."""
MAX_STREAM_EVENTS = 1000
"""Read whole SSE streams (schemathesis stops after 20 events by default)."""
MODEL_FIELDS = ("model", "model_id", "tool")
"""Body fields naming a seeded model (or tool); a field a spec does not have is ignored by schemathesis."""

sweep_schema = schemathesis.pytest.from_fixture("provider_schema")


def _implemented(provider_id: str) -> bool:
    try:
        module = importlib.import_module(f"mockserver.providers.{provider_id}")
    except ImportError:
        return False
    return hasattr(module, "PROVIDER")


def documented_upstream_errors(provider_id: str) -> list[str]:
    """5xx statuses other than 500 that the spec declares (e.g. a documented 502 when every model fails).

    They are the provider's contract, so ``not_a_server_error`` accepts them; a 500 is always a failure,
    and ``status_code_conformance`` still rejects any status an operation does not declare.
    """
    document = load_document(spec_path(provider_id))
    statuses = {
        str(status)
        for path_item in document.get("paths", {}).values()
        for operation in path_item.values()
        if isinstance(operation, dict)
        for status in operation.get("responses", {})
        if str(status).startswith("5") and str(status) != "500"
    }
    return sorted(statuses)


SEMANTIC_400 = {
    # Rules the specs state in prose but JSON Schema cannot express, so schema-valid data may get a 400.
    "createGenerationJob": "image parts need a vision model",
    "createQuote": "the model's type must match `type`",
    "createGeneration": "`async` is for video, `models` for language, inputs depend on `type`",
    "createChatCompletion": "the model must be a language model",
    "createVideoGeneration": "the model must be a video model",
    "createRun": "a `webhook` URL the mock may not deliver to (a host outside --webhook-host) is refused",
    # Not a rule of the spec (the body has minLength 1): for a `*/*` body schemathesis may pick a media type
    # that cannot carry raw bytes (x-www-form-urlencoded) and send nothing, which is 400 "body is required".
    "uploadObject": "schemathesis may send the `*/*` body empty (as an empty form)",
}


def sweep_config(provider: Any, max_examples: int = MAX_EXAMPLES) -> schemathesis.Config:
    """The run's configuration (the same keys a ``schemathesis.toml`` would hold)."""
    parameters: dict[str, Any] = {}
    if provider.organization_id:
        # Positive cases must hit the seeded organization, not a random one.
        parameters["organization_id"] = provider.organization_id
    for field in MODEL_FIELDS:
        parameters[f"body.{field}"] = {"dictionary": "seeded_models", "probability": 0.5}
    return schemathesis.Config.from_dict(
        {
            "seed": 0,
            "dictionaries": {"seeded_models": {"values": list(provider.models)}},
            "base-url": provider.base_url,
            "headers": provider.auth_headers(),
            "max-stream-events": MAX_STREAM_EVENTS,
            "parameters": parameters,
            "checks": {
                "not_a_server_error": {
                    "expected-statuses": ["2xx", "3xx", "4xx", *documented_upstream_errors(provider.id)]
                }
            },
            "operations": [
                {
                    "include-operation-id": operation_id,
                    "checks": {
                        "positive_data_acceptance": {
                            # schemathesis' defaults, plus 400
                            "expected-statuses": [
                                "2xx",
                                "3xx",
                                "400",
                                "401",
                                "403",
                                "404",
                                "409",
                                "429",
                                "5xx",
                            ]
                        }
                    },
                }
                for operation_id in SEMANTIC_400
            ],
            **sweep_run(max_examples),
        }
    )


@pytest.fixture(params=PROVIDER_IDS)
def sweep_target(request: pytest.FixtureRequest, server_pool: Any, attach_mock: Any) -> Iterator[Any]:
    """The provider under test, served alone by a strict server (violations are checked afterwards)."""
    provider_id: str = request.param
    if not _implemented(provider_id):
        pytest.skip("provider module not implemented yet")
    mock = attach_mock(server_pool(providers=(provider_id,)))
    yield mock.provider(provider_id)
    statuses = collections.Counter((e["operation_id"], e["status"]) for e in mock.journal(provider_id))
    print(f"\n{provider_id}: {sum(statuses.values())} requests;", dict(sorted(statuses.items(), key=str)))


@pytest.fixture
def provider_schema(sweep_target: Any, state_backend: str) -> Any:
    """The provider's spec, aimed at the mock with its key."""
    config = sweep_config(sweep_target, MAX_EXAMPLES if state_backend == "memory" else MAX_EXAMPLES_REDIS)
    return schemathesis.openapi.from_path(spec_path(sweep_target.id), config=config)


@pytest.mark.slow
@sweep_schema.parametrize()
def test_sweep(case: schemathesis.Case) -> None:
    case.call_and_validate()
