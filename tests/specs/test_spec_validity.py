"""Structural checks of every spec in ``specs/``: OpenAPI validity and the rules of specs/CONVENTIONS.md."""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from _spec_helpers import (
    ERROR_SCHEMA_REF,
    PROVIDER_DOCS,
    SSE_DONE,
    SSE_MEDIA_TYPE,
    Operation,
    content_schema_pointers,
    deref,
    effective_security,
    find_operation,
    is_error_status,
    is_success_status,
    iter_operations,
    iter_responses,
    join_pointer,
    load_spec,
    operation_parameters,
    ref_pointer,
    required_properties,
    requires_auth,
    resolve_pointer,
    spec_names,
    sse_event_errors,
    walk,
)
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from schemathesis.core.result import Ok

from mockserver.resources import PROVIDER_IDS, spec_path

ALL_SPECS = spec_names()

# The operations every provider spec must have, exactly (the table in specs/CONVENTIONS.md).
EXPECTED_OPERATIONS: dict[str, dict[str, tuple[str, str]]] = {
    "studioaicore": {"createChat": ("post", "/v1/chat")},
    "modelstudio": {
        "createGenerationJob": ("post", "/api/v1/organizations/{organization_id}/generate"),
        "getGenerationJob": ("get", "/api/v1/organizations/{organization_id}/generate/{job_id}"),
    },
    "artificialstudio": {
        "createRun": ("post", "/api/run"),
        "getGeneration": ("get", "/api/generations/{id}"),
    },
    "pahlavan": {
        "getHealth": ("get", "/api/health"),
        "listModels": ("get", "/api/v1/models"),
        "createQuote": ("post", "/api/v1/quotes"),
        "createGeneration": ("post", "/api/v1/generations"),
        "createChatCompletion": ("post", "/api/v1/chat/completions"),
        "createVideoGeneration": ("post", "/api/v1/videos/generations"),
        "getVideoGeneration": ("get", "/api/v1/videos/generations/{id}"),
        "presignUpload": ("post", "/api/v1/storage/presign"),
        "uploadObject": ("put", "/api/v1/storage/upload"),
        "commitUpload": ("post", "/api/v1/storage/commit"),
        "signUrl": ("post", "/api/v1/storage/sign-url"),
        "downloadObject": ("get", "/api/v1/storage/object"),
    },
    "spaceai": {
        "listModels": ("get", "/v1/models"),
        "createChatCompletion": ("post", "/v1/chat/completions"),
    },
}

# Providers whose documents put rate-limit headers on every response:
#   000_9af6a9fc11991a0d.txt (StudioAICore): "Rate limit headers are included in every response:
#       X-RateLimit-Limit: 120 / X-RateLimit-Remaining: 115 / X-RateLimit-Reset: 1709900060"
#   seeds README, 004_1b2a7dc5ddf16a65.txt (SpaceAI): "rate-limit headers and error envelope as StudioAICore"
# The other three documents mention no rate-limit headers.
RATE_LIMITED_PROVIDERS = frozenset({"studioaicore", "spaceai"})
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")

# Security scheme per provider (CONVENTIONS.md "Security"): name and the fields it must have.
SECURITY_SCHEMES: dict[str, tuple[str, dict[str, str]]] = {
    "studioaicore": ("bearerAuth", {"type": "http", "scheme": "bearer"}),
    "modelstudio": ("bearerAuth", {"type": "http", "scheme": "bearer"}),
    "artificialstudio": ("apiKeyAuth", {"type": "apiKey", "in": "header", "name": "Authorization"}),
    "pahlavan": ("bearerAuth", {"type": "http", "scheme": "bearer"}),
    "spaceai": ("bearerAuth", {"type": "http", "scheme": "bearer"}),
}
# Pahlavan: "Public endpoints: GET /api/health, GET /api/v1/models."
PUBLIC_OPERATIONS: dict[str, frozenset[str]] = {"pahlavan": frozenset({"getHealth", "listModels"})}
# Pahlavan's inferred signed-URL transfer endpoints carry their authorisation in the query (key, expires,
# signature), so they are exempt from the bearer requirement either way.
SIGNED_URL_OPERATIONS: dict[str, frozenset[str]] = {"pahlavan": frozenset({"uploadObject", "downloadObject"})}

STREAMING_CHAT_OPERATIONS: dict[str, str] = {
    "spaceai": "createChatCompletion",
    "pahlavan": "createChatCompletion",
}

# create operation -> the poll operation its success response must link to.
ASYNC_LINKS: list[tuple[str, str, str]] = [
    ("modelstudio", "createGenerationJob", "getGenerationJob"),
    ("artificialstudio", "createRun", "getGeneration"),
    ("pahlavan", "createGeneration", "getVideoGeneration"),
    ("pahlavan", "createVideoGeneration", "getVideoGeneration"),
]

# Conventional component names of error responses (CONVENTIONS.md "Errors").
ERROR_RESPONSE_NAMES: dict[str, str] = {
    "BadRequest": "400",
    "Unauthorized": "401",
    "PaymentRequired": "402",
    "Forbidden": "403",
    "NotFound": "404",
    "MethodNotAllowed": "405",
    "UnprocessableEntity": "422",
    "RateLimited": "429",
    "ServerError": "500",
    "BadGateway": "502",
}
NOT_AN_ERROR = {"Unhealthy"}
"""Responses with a 4xx/5xx status that are not errors (CONVENTIONS.md): the control API's health report."""

VALID_CHUNK: dict[str, Any] = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion.chunk",
    "created": 1677652288,
    "model": "model-1",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}, "finish_reason": None}],
}
USAGE_CHUNK: dict[str, Any] = {
    **VALID_CHUNK,
    "choices": [],
    "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
}


def _fail_if(problems: list[str], name: str) -> None:
    if problems:
        pytest.fail(f"{name}:\n  " + "\n  ".join(problems))


def _api_operations(name: str) -> list[Operation]:
    return list(iter_operations(load_spec(name)))


@pytest.mark.parametrize("name", ALL_SPECS)
def test_valid_openapi_31(name: str) -> None:
    spec = load_spec(name)
    assert str(spec.get("openapi", "")).startswith("3.1"), f"{name}: openapi is {spec.get('openapi')!r}"
    validate(spec, cls=OpenAPIV31SpecValidator)


@pytest.mark.parametrize("name", ALL_SPECS)
def test_every_ref_resolves(name: str) -> None:
    spec = load_spec(name)
    problems = []
    for pointer, node in walk(spec):
        if isinstance(node, dict) and "$ref" in node:
            try:
                resolve_pointer(spec, ref_pointer(str(node["$ref"])))
            except LookupError as error:
                problems.append(f"{pointer}/$ref: {error}")
    _fail_if(problems, name)


@pytest.mark.parametrize("name", ALL_SPECS)
def test_operations_have_id_summary_and_declared_tag(name: str) -> None:
    spec = load_spec(name)
    declared_tags = {tag["name"] for tag in spec.get("tags", [])}
    problems = []
    seen: dict[str, str] = {}
    for operation in iter_operations(spec, webhooks=True):
        node = operation.node
        operation_id = node.get("operationId")
        if not operation_id:
            problems.append(f"{operation.pointer}: no operationId")
        elif operation_id in seen:
            problems.append(
                f"{operation.pointer}: operationId {operation_id!r} already used at {seen[operation_id]}"
            )
        else:
            seen[operation_id] = operation.pointer
        if not node.get("summary"):
            problems.append(f"{operation.pointer}: no summary")
        tags = node.get("tags") or []
        if not tags:
            problems.append(f"{operation.pointer}: no tags")
        problems += [
            f"{operation.pointer}: tag {tag!r} not declared in top-level tags"
            for tag in tags
            if tag not in declared_tags
        ]
    _fail_if(problems, name)


@pytest.mark.parametrize("provider", PROVIDER_IDS)
def test_documented_operations_exist(provider: str) -> None:
    actual = {op.operation_id: (op.method, op.path) for op in _api_operations(provider)}
    assert actual == EXPECTED_OPERATIONS[provider], f"{provider}: operations differ from CONVENTIONS.md"


@pytest.mark.parametrize("name", ALL_SPECS)
def test_authenticated_operations_declare_401(name: str) -> None:
    spec = load_spec(name)
    problems = [
        f"{op.operation_id} ({op.pointer}) requires auth but declares no 401"
        for op in _api_operations(name)
        if requires_auth(spec, op) and "401" not in (op.node.get("responses") or {})
    ]
    _fail_if(problems, name)


@pytest.mark.parametrize("name", ALL_SPECS)
def test_operations_with_input_declare_400(name: str) -> None:
    spec = load_spec(name)
    # The control API's parameters only select (an unknown id is a 404, an unknown filter value selects
    # nothing), so there only a body is input that can be invalid.
    body_only = name not in PROVIDER_IDS
    problems = [
        f"{op.operation_id} ({op.pointer}) takes input but declares no 400"
        for op in _api_operations(name)
        if ("requestBody" in op.node or (not body_only and operation_parameters(spec, op)))
        and "400" not in (op.node.get("responses") or {})
    ]
    _fail_if(problems, name)


@pytest.mark.parametrize("name", ALL_SPECS)
def test_error_responses_use_error_envelope(name: str) -> None:
    spec = load_spec(name)
    assert "Error" in spec.get("components", {}).get("schemas", {}), f"{name}: no components/schemas/Error"
    problems = []
    for op in _api_operations(name):
        for status, response, pointer in iter_responses(spec, op):
            if not is_error_status(status):
                continue
            where = f"{op.operation_id} {status} ({pointer})"
            raw_ref = op.node["responses"][status].get("$ref", "")
            if raw_ref.rsplit("/", 1)[-1] in NOT_AN_ERROR:
                continue
            if not raw_ref.startswith("#/components/responses/"):
                problems.append(f"{where}: not a $ref to components/responses")
            component = raw_ref.rsplit("/", 1)[-1]
            if ERROR_RESPONSE_NAMES.get(component, status) != status:
                problems.append(
                    f"{where}: component {component} is for status {ERROR_RESPONSE_NAMES[component]}"
                )
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if schema != {"$ref": ERROR_SCHEMA_REF}:
                problems.append(
                    f"{where}: application/json schema is {schema!r}, not {{$ref: {ERROR_SCHEMA_REF}}}"
                )
    _fail_if(problems, name)


@pytest.mark.parametrize("provider", sorted(RATE_LIMITED_PROVIDERS))
def test_rate_limit_headers_on_every_response(provider: str) -> None:
    spec = load_spec(provider)
    headers = spec.get("components", {}).get("headers", {})
    problems = []
    for header in (*RATE_LIMIT_HEADERS, "Retry-After"):
        if header not in headers:
            problems.append(f"components/headers/{header} missing")
            continue
        definition, pointer = deref(spec, headers[header], join_pointer("/components/headers", header))
        schema, _ = deref(spec, definition.get("schema", {}), join_pointer(pointer, "schema"))
        if schema.get("type") != "integer":
            problems.append(f"{pointer}: schema type is {schema.get('type')!r}, not integer")
        if definition.get("required") is not True:
            problems.append(f"{pointer}: not required: true")
    for op in _api_operations(provider):
        if "429" not in (op.node.get("responses") or {}):
            problems.append(f"{op.operation_id}: no 429 response")
        for status, response, pointer in iter_responses(spec, op):
            expected = RATE_LIMIT_HEADERS + (("Retry-After",) if status == "429" else ())
            declared = response.get("headers", {})
            for header in expected:
                expected_ref = f"#/components/headers/{header}"
                if declared.get(header) != {"$ref": expected_ref}:
                    problems.append(
                        f"{op.operation_id} {status} ({pointer}): {header} is not a $ref to {expected_ref}"
                    )
    _fail_if(problems, provider)


@pytest.mark.parametrize("provider", sorted(set(PROVIDER_IDS) - RATE_LIMITED_PROVIDERS))
def test_no_rate_limit_headers(provider: str) -> None:
    spec = load_spec(provider)
    problems = [
        pointer
        for pointer, node in walk(spec)
        if isinstance(node, dict)
        for key in node
        if str(key).lower().startswith("x-ratelimit")
    ]
    _fail_if([f"undocumented rate-limit header at {pointer}" for pointer in problems], provider)


@pytest.mark.parametrize("name", ALL_SPECS)
def test_servers_and_info(name: str) -> None:
    spec = load_spec(name)
    info = spec.get("info", {})
    description = str(info.get("description") or "")
    assert description.strip(), f"{name}: info.description is empty"
    assert info.get("x-provider-id") == spec_path(name).stem, (
        f"{name}: info.x-provider-id is {info.get('x-provider-id')!r}"
    )
    if name not in PROVIDER_DOCS:
        return
    document = PROVIDER_DOCS[name]
    servers = spec.get("servers", [])
    assert [server.get("url") for server in servers] == [document.base_url], (
        f"{name}: servers are {servers!r}"
    )
    assert document.seed in description or document.product in description, (
        f"{name}: info.description names neither {document.seed} nor {document.product}"
    )


@pytest.mark.parametrize("provider", PROVIDER_IDS)
def test_security_scheme_and_requirements(provider: str) -> None:
    spec = load_spec(provider)
    scheme_name, expected_fields = SECURITY_SCHEMES[provider]
    scheme = spec.get("components", {}).get("securitySchemes", {}).get(scheme_name, {})
    actual_fields = {key: str(scheme.get(key, "")) for key in expected_fields}
    if "scheme" in actual_fields:
        actual_fields["scheme"] = actual_fields["scheme"].lower()
    assert actual_fields == expected_fields, f"{provider}: securitySchemes/{scheme_name} is {scheme!r}"
    assert spec.get("security") == [{scheme_name: []}], (
        f"{provider}: top-level security is {spec.get('security')!r}"
    )
    public = PUBLIC_OPERATIONS.get(provider, frozenset())
    signed = SIGNED_URL_OPERATIONS.get(provider, frozenset())
    problems = []
    for op in _api_operations(provider):
        security = effective_security(spec, op)
        if op.operation_id in public and security != []:
            problems.append(f"{op.operation_id}: public per the document but security is {security!r}")
        elif op.operation_id not in public | signed and {scheme_name: []} not in security:
            problems.append(f"{op.operation_id}: does not require {scheme_name} (security {security!r})")
    _fail_if(problems, provider)


@pytest.mark.parametrize("provider", sorted(STREAMING_CHAT_OPERATIONS))
def test_streaming_chat_event_schema(provider: str) -> None:
    spec = load_spec(provider)
    op = find_operation(spec, STREAMING_CHAT_OPERATIONS[provider])
    response, pointer = deref(spec, op.node["responses"]["200"], join_pointer(op.pointer, "responses", "200"))
    content = response.get("content", {})
    assert {"application/json", SSE_MEDIA_TYPE} <= set(content), (
        f"{provider}: 200 media types are {sorted(content)}"
    )
    event_pointer = join_pointer(pointer, "content", SSE_MEDIA_TYPE, "schema")
    chunk_pointers = content_schema_pointers(spec, event_pointer)
    assert chunk_pointers, f"{provider}: {event_pointer} has no data.contentSchema"

    for event in ({"data": SSE_DONE}, {"data": json.dumps(VALID_CHUNK)}, {"data": json.dumps(USAGE_CHUNK)}):
        assert sse_event_errors(spec, event_pointer, event) == [], f"{provider}: rejects {event}"
    assert sse_event_errors(spec, event_pointer, {"data": "not json"}), f"{provider}: accepts non-JSON data"
    assert sse_event_errors(spec, event_pointer, {}), f"{provider}: accepts an event without data"

    required = set().union(*(required_properties(spec, chunk_pointer) for chunk_pointer in chunk_pointers))
    assert required, f"{provider}: the chunk schema requires no field"
    for field in sorted(required):
        broken = {key: value for key, value in VALID_CHUNK.items() if key != field}
        assert sse_event_errors(spec, event_pointer, {"data": json.dumps(broken)}), (
            f"{provider}: accepts a chunk without required field {field!r}"
        )


@pytest.mark.parametrize(("provider", "create_id", "poll_id"), ASYNC_LINKS)
def test_async_create_links_to_poll(provider: str, create_id: str, poll_id: str) -> None:
    spec = load_spec(provider)
    create = find_operation(spec, create_id)
    poll = find_operation(spec, poll_id)
    poll_path_parameters = {p["name"] for p in operation_parameters(spec, poll) if p["in"] == "path"}
    links = []
    for status, response, pointer in iter_responses(spec, create):
        if is_success_status(status):
            for name, raw_link in response.get("links", {}).items():
                link, _ = deref(spec, raw_link, join_pointer(pointer, "links", name))
                if link.get("operationId") == poll_id:
                    links.append(link)
    assert links, f"{provider}: no 2xx response of {create_id} links to {poll_id}"
    for link in links:
        parameters = link.get("parameters", {})
        assert set(parameters) >= poll_path_parameters, (
            f"{provider}: link {create_id} -> {poll_id} sets {sorted(parameters)}, "
            f"needs {sorted(poll_path_parameters)}"
        )
        assert all(str(value).startswith("$") for value in parameters.values()), (
            f"{provider}: link {create_id} -> {poll_id} parameters are not runtime expressions: {parameters}"
        )


def test_artificialstudio_webhook_delivers_generation() -> None:
    """The webhook body is the Generation schema itself or a schema extending it through ``allOf``."""
    spec = load_spec("artificialstudio")
    generation = "/components/schemas/Generation"
    webhooks = spec.get("webhooks", {})
    assert webhooks, "artificialstudio: no top-level webhooks"
    bodies: dict[str, set[str]] = {}
    for name, raw_item in webhooks.items():
        item, item_pointer = deref(spec, raw_item, join_pointer("/webhooks", name))
        if "post" not in item:
            continue
        _, body_pointer = deref(
            spec, item["post"].get("requestBody", {}), join_pointer(item_pointer, "post", "requestBody")
        )
        schema_pointer = join_pointer(body_pointer, "content", "application/json", "schema")
        schema, target = deref(spec, resolve_pointer(spec, schema_pointer), schema_pointer)
        parts = [
            deref(spec, part, join_pointer(target, "allOf", index))[1]
            for index, part in enumerate(schema.get("allOf", []))
        ]
        bodies[name] = {target, *parts}
    assert any(generation in schemas for schemas in bodies.values()), (
        f"artificialstudio: no webhook POST body is or extends {generation}: {bodies}"
    )


@pytest.mark.parametrize("name", ALL_SPECS)
def test_schemathesis_loads_every_operation(name: str) -> None:
    schema = schemathesis.openapi.from_path(spec_path(name))
    labels, problems = [], []
    for result in schema.get_all_operations():
        if isinstance(result, Ok):
            labels.append(result.ok().label)
        else:
            problems.append(f"schemathesis cannot load an operation: {result.err()}")
    _fail_if(problems, name)
    assert len(labels) == len(_api_operations(name)), f"{name}: schemathesis yields {labels}"
