"""Property: schema-valid extremes on every operation of every provider never get a 5xx, and jobs end.

For each operation, hypothesis draws requests whose parameters and JSON body sit at the edges the spec
allows (``_extreme_strategies``): bounds of integers and numbers, 1e20 written as a float, empty, very long
and lone-surrogate strings, and free-form objects nested 100 levels deep. Known model ids and tools stand
in for half of the model fields, so requests reach the behaviour behind validation. Each answer must be
below 500 (a 5xx the operation declares, such as Pahlavan's 502 for a failed upstream, excepted); each
answer that starts a job (its response ``links`` to a poll operation) is polled after the mock's clock is
advanced half a day, and the job must be in a terminal state. The server validates its responses strictly, so
an answer outside the spec is a 500 too, and the test fails on any recorded violation.

Bounded: a few examples per operation, derandomized (the same requests every run), no example database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from _extreme_strategies import strategy, without_surrogates
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.checks.extremes import leaves, set_path
from conformance.profiles import profile
from conformance.spec import SpecInfo
from mockserver.core.spec import JSON_MEDIA_TYPE, Operation, load_spec, resolve
from mockserver.resources import PROVIDER_IDS, spec_path
from mockserver.testing.control import MockControl
from mockserver.testing.server import ServerThread

EXAMPLES = 16
"""Examples per operation (19 operations): a few hundred requests, well under a minute in all."""
JOB_SPEED = 1000.0
"""Jobs a thousand times faster, so a synchronous video (``async: false``) ends within milliseconds."""
HALF_A_DAY = 43_200.0
"""Far past any job's length, and short of the default resource TTL (a day), after which it is forgotten."""
MODEL_FIELDS = ("model", "model_id", "tool")

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

OPERATIONS = [(p, op.operation_id) for p in PROVIDER_IDS for op in load_spec(spec_path(p)).operations]


@pytest.fixture(scope="module")
def fast_jobs_server(server_pool: Callable[..., ServerThread]) -> ServerThread:
    """A shared server whose jobs run a thousand times faster (strict validation, seed 0)."""
    return server_pool(job_speed=JOB_SPEED)


def _allowed_5xx(op: Operation) -> set[int]:
    return {int(s) for s in op.responses if s.isdigit() and s.startswith("5") and s != "500"}


def _request(mock: MockControl, provider: str, op: Operation) -> st.SearchStrategy[dict[str, Any]]:
    """Path, query and body of one extreme request (bodies only when the schema accepts them)."""
    info = mock.provider(provider)
    document = load_spec(spec_path(provider)).document
    known = sorted(info.models) or ["unknown"]
    overrides = {
        name: st.sampled_from(known) | st.sampled_from(["", "\ud800", "x" * 10_000]) for name in MODEL_FIELDS
    }
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for param in op.parameters:
        if param.location not in ("path", "query"):
            continue
        values = strategy(document, param.schema, url_safe=True)
        if param.name == "organization_id" and info.organization_id:
            values = st.just(info.organization_id) | values
        parts[f"{param.location}:{param.name}"] = values if param.required else st.none() | values
    body = op.body
    if body is not None and JSON_MEDIA_TYPE in body.media_types:
        schema = _raw_body_schema(document, op)
        validator = body.media_types[JSON_MEDIA_TYPE]
        assert validator is not None
        drawn = strategy(document, schema, overrides)
        # Mostly a request type that matches the model (else most bodies stop at "wrong model type").
        kinds = _model_types(mock, provider)
        aligned = drawn.map(lambda body: _align(body, kinds))
        # Documented examples with one field at an extreme: requests that pass rules schemas can't state.
        bases = _documented_bodies(document, op, kinds, known)
        paths = sorted(
            {path for base in bases for path, _ in leaves(SpecInfo(provider), schema, base)}, key=str
        )
        leaf_schemas = {
            path: leaf for base in bases for path, leaf in leaves(SpecInfo(provider), schema, base)
        }
        one_field = (
            st.tuples(st.sampled_from(bases), st.sampled_from(paths)).flatmap(
                lambda pick: strategy(document, leaf_schemas[pick[1]]).map(
                    lambda value: set_path(pick[0], pick[1], value)
                )
            )
            if bases and paths
            else drawn
        )
        parts["json"] = st.one_of(one_field, one_field, one_field, aligned, drawn).filter(
            lambda value: value is not None and validator.is_valid(without_surrogates(value))
        )
    elif body is not None:
        parts["data"] = st.sampled_from([b"", b"\x00" * 1024, b"x" * 100_000]) | st.binary(max_size=64)
    return st.fixed_dictionaries(parts)


def _model_types(mock: MockControl, provider: str) -> dict[str, str]:
    """Model id -> type, from the provider's model listing where it says (Pahlavan's)."""
    listing = load_spec(spec_path(provider))
    op = next((o for o in listing.operations if o.operation_id == "listModels"), None)
    if op is None:
        return {}
    data = (
        mock.get(provider, op.path, params={"limit": "200"} if op.parameters else None).json().get("data", [])
    )
    return {str(m["id"]): str(m["type"]) for m in data if isinstance(m, dict) and "type" in m}


def _documented_bodies(
    document: dict[str, Any], op: Operation, kinds: dict[str, str], known: list[str]
) -> list[dict[str, Any]]:
    """The operation's documented JSON examples with known models (of the body's type) and no placeholders."""
    raw = resolve(document, document["paths"][op.path])[op.method.lower()]
    media = resolve(document, raw["requestBody"])["content"][JSON_MEDIA_TYPE]
    bodies = []
    for example in media.get("examples", {}).values():
        body = resolve(document, example).get("value")
        if not isinstance(body, dict):
            continue
        body = {k: v for k, v in body.items() if not (isinstance(v, list) and "<" in str(v))}
        body = {k: v for k, v in body.items() if not (isinstance(v, str) and v.startswith("http"))}
        for name in MODEL_FIELDS[:2]:
            if isinstance(body.get(name), str) and "<" in body[name]:
                fitting = [m for m, kind in kinds.items() if kind == body.get("type")]
                body[name] = (fitting or known)[0]
        bodies.append(body)
    return bodies


def _align(body: Any, kinds: dict[str, str]) -> Any:
    if isinstance(body, dict) and "type" in body and body.get("model") in kinds:
        return {**body, "type": kinds[body["model"]]}
    return body


def _raw_body_schema(document: dict[str, Any], op: Operation) -> Any:
    raw = resolve(document, document["paths"][op.path])[op.method.lower()]
    return resolve(document, raw["requestBody"])["content"][JSON_MEDIA_TYPE]["schema"]


def _send(mock: MockControl, provider: str, op: Operation, drawn: dict[str, Any]) -> Any:
    path, query, kwargs = op.path, {}, {}
    for key, value in drawn.items():
        location, _, name = key.partition(":")
        if location == "path":
            path = path.replace("{" + name + "}", quote(_text(value), safe=""))
        elif location == "query" and value is not None:
            query[name] = _text(value)
        elif location in ("json", "data"):
            kwargs[location] = value
    return mock.request(provider, op.method, path, params=query, **kwargs)


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _ends(mock: MockControl, provider: str, spec: SpecInfo, op: Operation, response: Any) -> None:
    """Every job the answer links to is terminal once the clock moved a day."""
    raw = spec.operation(op.operation_id)
    assert raw is not None
    declared = resolve(spec.document, raw.raw.get("responses", {}).get(str(response.status_code), {}))
    links = [resolve(spec.document, link) for link in declared.get("links", {}).values()]
    terminal = profile(provider).terminal
    body = response.json() if response.headers.get("content-type", "").startswith(JSON_MEDIA_TYPE) else None
    for link in links:
        poll = spec.operation(str(link.get("operationId")))
        if poll is None or poll.operation_id not in terminal or not isinstance(body, dict):
            continue
        path = poll.path
        for name, expression in link.get("parameters", {}).items():
            value = (
                mock.provider(provider).organization_id
                if str(expression).startswith("$request.path.")
                else body.get(str(expression).removeprefix("$response.body#/"))
            )
            path = path.replace("{" + name + "}", quote(str(value), safe=""))
        mock.advance(HALF_A_DAY)
        polled = mock.get(provider, path)
        field, statuses = terminal[poll.operation_id]
        assert polled.status_code == 200, (path, polled.text)
        assert polled.json().get(field) in statuses, (
            f"{path} is not terminal a day later: {polled.text[:300]}"
        )


@pytest.mark.parametrize(("provider", "operation_id"), OPERATIONS, ids=[f"{p}-{o}" for p, o in OPERATIONS])
def test_extremes_never_get_a_server_error_and_jobs_end(
    provider: str,
    operation_id: str,
    fast_jobs_server: ServerThread,
    attach_mock: Callable[[ServerThread], MockControl],
) -> None:
    mock = attach_mock(fast_jobs_server)
    op = load_spec(spec_path(provider)).operation(operation_id)
    spec = SpecInfo(provider)
    allowed = _allowed_5xx(op)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(drawn=_request(mock, provider, op))
    def check(drawn: dict[str, Any]) -> None:
        response = _send(mock, provider, op, drawn)
        assert response.status_code < 500 or response.status_code in allowed, response.text[:500]
        if 200 <= response.status_code < 300:
            _ends(mock, provider, spec, op, response)

    check()
